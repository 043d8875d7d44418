"""What the optimizer keeps of each agent's past (pure).

Per agent: its window rows (and the same rows as float vectors of
:data:`~swarmopt.optimizer.detect.SNAPSHOT_FIELDS`, which detection, level
shifts and the forecast read as one matrix), the per-task samples the canary
judge needs, and when a knob or autonomy change last took effect on it (a
reverted change and its undo excepted once the optimizer calls them
transparent: :meth:`History.forget`).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from swarmopt.metrics import TaskSample, pool_samples
from swarmopt.optimizer.detect import SNAPSHOT_FIELDS, window_vectors

_CHANGES_KEPT = 64  # applied records kept per agent: a trial's own, its undo's and the autonomy moves between
_T_START, _T_END = operator.itemgetter("t_start_s"), operator.itemgetter("t_end_s")
HISTORY_WINDOWS = 360  # window rows kept per agent at least: anomalies and forecasts look back at most 65


def kept_windows(long_windows: int) -> int:
    """Window rows kept per agent (the history holds between this and twice
    as many): :data:`HISTORY_WINDOWS`, or the multi-window alert's
    ``long_windows`` (``optimizer.long_windows``, up to 1,440) if longer."""
    return max(HISTORY_WINDOWS, long_windows)


class History:
    """Window rows, vectors and per-task samples of ``agents``.

    ``window_s`` is the metric window and ``before_windows`` the longest
    before-span a change is judged against (samples are kept for that long);
    ``keep``: window rows kept per agent (:func:`kept_windows`).
    """

    def __init__(self, agents, window_s: float, before_windows: int, keep: int = HISTORY_WINDOWS) -> None:
        self.window_s = window_s
        self.keep = keep
        self.before_windows = before_windows
        self.rows: dict[str, list[dict]] = {a: [] for a in agents}
        self._index = {a: i for i, a in enumerate(self.rows)}
        # per agent, its window vectors as the first ``self.held[agent]`` rows of a matrix that grows by doubling:
        # a cycle reads every agent's recent rows as a view, with no per-agent array built
        self.vectors: dict[str, np.ndarray] = {a: np.empty((0, len(SNAPSHOT_FIELDS))) for a in agents}
        self.held: dict[str, int] = dict.fromkeys(agents, 0)
        self.samples: dict[str, list[TaskSample]] = {a: [] for a in agents}
        self.last_change_s: dict[str, float] = {a: 0.0 for a in agents}
        # per agent, the latest changes as (time, ref), newest last: enough to step back over a reverted change
        self._changes: dict[str, deque[tuple[float, str]]] = {a: deque(maxlen=_CHANGES_KEPT) for a in agents}
        self._forgotten: set[str] = set()

    def __getstate__(self) -> dict:
        # a copy (a checkpoint, a fork) holds what a consumer can still read: each agent's last ``keep`` rows and
        # vectors, not the up to ``keep`` more that wait to be trimmed nor the matrix's spare capacity
        state = dict(self.__dict__)
        state["rows"] = {a: r[-self.keep:] for a, r in self.rows.items()}
        state["held"] = {a: min(n, self.keep) for a, n in self.held.items()}
        state["vectors"] = {a: m[n - state["held"][a]:n].copy() for (a, m), n in
                            zip(self.vectors.items(), self.held.values(), strict=True)}
        return state

    def forget(self, agent: str, refs: set[str]) -> None:
        """Treat the changes applied under ``refs`` (a reverted change and its
        undo) as no change: :attr:`last_change_s` steps back to the agent's
        latest other change, so the windows under the reverted change may serve
        as the next change's before-span (the judge found it indistinguishable
        from no change)."""
        self._forgotten |= refs
        kept = [t for t, ref in self._changes[agent] if ref not in self._forgotten]
        self.last_change_s[agent] = max(kept, default=0.0)

    def add(self, rows: list[dict], applied: list[dict], samples: list[TaskSample],
            in_flight_since: Mapping[str, float]) -> None:
        """Take new window rows, the knob/autonomy changes agents applied and the
        per-task samples of the new windows (in time order per agent).

        Samples are kept only while a judgement may need them: per agent, the
        last ``before_windows`` windows (the longest before-span of a change
        scheduled now) and, while a change is in flight (``in_flight_since``:
        agent -> the time it took effect), everything since its longest
        before-span began. Memory is thus about (2 x before_windows + cycle
        windows) x decisions per window x 10 bytes per agent at most.
        """
        if rows:
            # rows come window by window: a stable sort by agent makes each agent's rows one slice, in time order
            index = self._index
            ids = np.fromiter((index[r["agent"]] for r in rows), np.int64, len(rows))
            order = np.argsort(ids, kind="stable")
            vectors = window_vectors(rows)[order]
            ordered = [rows[i] for i in order.tolist()]
            cuts = np.concatenate(([0], np.flatnonzero(np.diff(ids[order])) + 1, [len(rows)])).tolist()
            for a, b in itertools.pairwise(cuts):
                agent = ordered[a]["agent"]
                hist = self.rows[agent]
                hist += ordered[a:b]
                self._append(agent, vectors[a:b])
                if len(hist) > 2 * self.keep:  # every consumer looks back at most ``keep``
                    del hist[:-self.keep]
        for a in applied:
            agent, ref = a["agent"], a.get("ref", "")
            self._changes[agent].append((a["t_s"], ref))
            if ref not in self._forgotten:
                self.last_change_s[agent] = max(self.last_change_s[agent], a["t_s"])
        for smp in samples:
            self.samples[smp.agent].append(smp)
        for agent in {smp.agent for smp in samples}:
            self._prune(agent, in_flight_since.get(agent))

    def _prune(self, agent: str, effective_s: float | None) -> None:
        kept = self.samples[agent]
        k = self.before_windows * self.window_s
        floor = kept[-1].t_end_s - k
        if effective_s is not None:
            floor = min(floor, effective_s - k)
        self.samples[agent] = [smp for smp in kept if smp.t_end_s > floor + 1e-9]

    def _append(self, agent: str, block: np.ndarray) -> None:
        m, n = self.vectors[agent], self.held[agent]
        if n + len(block) > len(m):
            grown = np.empty((max(16, 2 * (n + len(block))), m.shape[1]))
            grown[:n] = m[:n]
            self.vectors[agent] = m = grown
        m[n:n + len(block)] = block
        n += len(block)
        if n > 2 * self.keep:  # as the rows: keep the last ``keep``
            m[:self.keep] = m[n - self.keep:n].copy()
            n = self.keep
        self.held[agent] = n

    def matrices(self, depth: int) -> dict[str, np.ndarray]:
        """Each agent's last ``depth`` window vectors as one (rows, fields)
        matrix, oldest first (a read-only view: the next :meth:`add` may
        overwrite it); agents with no row yet are left out."""
        out = {}
        for a, n in self.held.items():
            if n:
                view = self.vectors[a][max(0, n - depth):n]
                view.flags.writeable = False
                out[a] = view
        return out

    def recent(self, agent: str, n: int) -> tuple[Mapping, ...]:
        """``agent``'s last ``n`` window rows, oldest first, as read-only mappings
        (what plug-in rules and policies see)."""
        return tuple(MappingProxyType(r) for r in self.rows[agent][-n:])

    def window_rows(self, agent: str, start: float, end: float) -> list[dict]:
        """``agent``'s window rows within [start, end] (s): a slice, the rows being in time order."""
        rows = self.rows[agent]
        lo = bisect.bisect_left(rows, start - 1e-9, key=_T_START)
        return rows[lo:bisect.bisect_right(rows, end + 1e-9, lo=lo, key=_T_END)]

    def windows(self, agent: str, starts: list[float]) -> tuple[list[dict], TaskSample]:
        """``agent``'s window rows and pooled per-task samples of the windows
        starting at ``starts`` (s): one arm of a switchback trial."""
        keys = {round(t / self.window_s) for t in starts}
        rows = [r for r in self.rows[agent] if round(r["t_start_s"] / self.window_s) in keys]
        return rows, pool_samples([smp for smp in self.samples[agent]
                                   if round(smp.t_start_s / self.window_s) in keys])

    def task_sample(self, agent: str, start: float, end: float) -> TaskSample:
        """``agent``'s per-task samples of the windows within [start, end] (s), pooled."""
        return pool_samples([smp for smp in self.samples[agent]
                             if start - 1e-9 <= smp.t_start_s and smp.t_end_s <= end + 1e-9])
