"""Finished runs on disk, as they finish: append-only JSON lines, read back by ``--resume``.

``runs.jsonl`` gets one line per finished run (its row of the ``runs`` table)
and ``decisions.jsonl`` the run's ground-truth rows, written before the run's
line, so a run that has its line has all its decisions. Each line is written
with one ``write`` and flushed, so an interrupt loses no finished run; a torn
last line is ignored. NaN and infinities are written as Python's ``json`` does
(``NaN``, ``Infinity``) and read back exactly. Rows carry their task's ``task_id`` and are reused only
while it matches the current plan.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from swarmopt.loader import InputError

RUNS = "runs.jsonl"
DECISIONS = "decisions.jsonl"


def _read(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by an interrupt: that run is simply not finished
    return rows


class RunStore:
    """Finished runs of one load test, in memory and (with ``out_dir``) on disk.

    Without ``resume`` an ``out_dir`` that already holds finished runs raises
    :class:`InputError` (exit 2), so a finished load test is never overwritten
    by accident; with ``resume`` its rows are loaded.
    """

    def __init__(self, out_dir: str | Path | None, resume: bool = False) -> None:
        self.out = Path(out_dir) if out_dir is not None else None
        self.runs: list[dict] = []
        self.decisions: list[dict] = []
        if self.out is None:
            return
        old = _read(self.out / RUNS)
        if old and not resume:
            raise InputError(f"{self.out}: already holds {len(old)} finished runs; pass --resume to continue "
                             "that load test, or choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.runs = old
            self.decisions = _read(self.out / DECISIONS)
        else:
            for name in (RUNS, DECISIONS):
                (self.out / name).unlink(missing_ok=True)

    def done(self) -> set[str]:
        """Task ids of the finished runs."""
        return {r["task_id"] for r in self.runs}

    def add(self, row: dict, decisions: list[dict]) -> None:
        """Keep a finished run (and append it to disk at once)."""
        if self.out is not None:
            for name, items in ((DECISIONS, decisions), (RUNS, [row])):
                if items:
                    text = "".join(json.dumps(r) + "\n" for r in items)
                    with open(self.out / name, "a") as f:
                        f.write(text)
                        f.flush()
                        os.fsync(f.fileno())
        self.runs.append(row)
        self.decisions += decisions

    def select(self, task_ids: set[str]) -> tuple[list[dict], list[dict]]:
        """The runs of ``task_ids`` (the last row of each) and their decisions
        (those of a run stored twice after a torn write: once)."""
        runs = {r["task_id"]: r for r in self.runs if r["task_id"] in task_ids}
        decisions = {(d["task_id"], d["strategy_id"]): d for d in self.decisions if d["task_id"] in runs}
        return list(runs.values()), list(decisions.values())
