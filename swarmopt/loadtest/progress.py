"""The progress display of a load test: runs done, failures, ETA.

``tqdm.auto`` in Jupyter (tqdm's text bar where ipywidgets is missing), a ``rich`` progress bar in a terminal,
and one plain line per finished run elsewhere (CI logs), all on stderr.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Protocol


class Progress(Protocol):
    """Told of every finished run."""

    def advance(self, failed: bool) -> None: ...

    def close(self) -> None: ...


def in_jupyter() -> bool:
    """Whether this process is a Jupyter kernel."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and "IPKernelApp" in getattr(shell, "config", {})


class _Silent:
    def advance(self, failed: bool) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


class _Lines:
    """One line per finished run: ``loadtest: 3/12 runs, 0 failed, ETA 0:00:21``."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done, self.failed = total, done, 0
        self.start, self.first = time.monotonic(), done

    def advance(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        rate = (self.done - self.first) / max(time.monotonic() - self.start, 1e-9)
        eta = int((self.total - self.done) / rate) if rate > 0 else 0
        print(f"loadtest: {self.done}/{self.total} runs, {self.failed} failed, "
              f"ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Lines need no closing."""


class _Tqdm:
    def __init__(self, total: int, done: int) -> None:
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.auto import tqdm  # the notebook widget
        else:  # tqdm.auto would fall back to this with a warning
            from tqdm import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, initial=done, desc="loadtest", unit="run")
        self.bar.set_postfix(failed=0)

    def advance(self, failed: bool) -> None:
        self.failed += failed
        self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class _Rich:
    def __init__(self, total: int, done: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.failed = 0
        self.bar = Progress(TextColumn("loadtest"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                            TextColumn("{task.fields[failed]} failed"), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True))
        self.task = self.bar.add_task("runs", total=total, completed=done, failed=0)
        self.bar.start()

    def advance(self, failed: bool) -> None:
        self.failed += failed
        self.bar.update(self.task, advance=1, failed=self.failed)

    def close(self) -> None:
        self.bar.stop()


def make_progress(total: int, done: int, show: bool = True) -> Progress:
    """A progress display for ``total`` runs of which ``done`` are already finished."""
    if not show:
        return _Silent()
    if in_jupyter():
        return _Tqdm(total, done)
    if sys.stderr.isatty():
        return _Rich(total, done)
    return _Lines(total, done)
