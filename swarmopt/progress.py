"""A progress bar for a run: simulated time, speed (simulated s per wall s) and ETA.

On a terminal (the CLI) it is a rich progress bar on stderr, which prints the
narrative above itself; in Jupyter it is ``tqdm.auto`` (a widget where
ipywidgets is installed: ``pip install "swarmopt[jupyter]"``; text otherwise). It only reads the simulated clock,
so it never changes results.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (an IPython ZMQ shell)."""
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return type(ip).__name__ == "ZMQInteractiveShell"


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


@contextmanager
def _rich_bar(label: str, start_s: float, end_s: float) -> Iterator[Callable[[float], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class SimClock(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{_hms(task.completed)} / {_hms(task.total)} simulated")

    class Speed(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} sim s/s" if task.speed else "… sim s/s")

    bar = Progress(TextColumn("{task.description}"), BarColumn(), SimClock(), Speed(), TextColumn("ETA"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True, redirect_stderr=True,
                   redirect_stdout=False)
    task = bar.add_task(label, total=end_s, completed=start_s)
    with bar:
        yield lambda t: bar.update(task, completed=t)


@contextmanager
def _tqdm_bar(label: str, start_s: float, end_s: float) -> Iterator[Callable[[float], None]]:
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:  # what tqdm.auto falls back to, without its warning (pip install "swarmopt[jupyter]" for the widget)
        from tqdm.std import tqdm

    bar = tqdm(total=end_s, initial=start_s, desc=label, unit="sim s", unit_scale=True, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} sim s [{elapsed}<{remaining}, "
                          "{rate_fmt}]")
    done = [start_s]

    def update(t: float) -> None:
        bar.update(t - done[0])
        done[0] = t

    try:
        yield update
    finally:
        bar.close()


@contextmanager
def progress(label: str, start_s: float, end_s: float, enabled: bool | None = None
             ) -> Iterator[Callable[[float], None]]:
    """Context manager yielding ``update(t_s)`` for a run going from simulated
    ``start_s`` to ``end_s``. ``enabled``: True shows a bar (tqdm in Jupyter,
    rich elsewhere), False a no-op, None (auto) a bar in Jupyter only."""
    if enabled is None:
        enabled = in_jupyter()
    if not enabled or end_s <= start_s:
        yield lambda t: None
        return
    with (_tqdm_bar if in_jupyter() else _rich_bar)(label, start_s, end_s) as update:
        yield update
