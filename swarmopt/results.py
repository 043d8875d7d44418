"""Run results: the tables a run produces, its summary, and the run directory.

Tables (pandas DataFrames):

* ``metrics``: one row per agent per window (:func:`swarmopt.metrics.window_metrics`);
* ``events``: bottlenecks, strategies, approvals, scheduled/applied changes,
  measurements, keeps, rollbacks (a measured degradation), reverts (no
  measured benefit), autonomy changes (``event`` column), with the typed
  schema of :mod:`swarmopt.event_table`;
* ``autonomy``: the optimizer's and every agent's autonomy over time;
* ``process``: real CPU and RSS of each actor process (psutil) — kept apart from
  ``metrics`` because, unlike simulated figures, it differs between runs.

:class:`Collector` appends rows as they arrive, so a run that fails half way
still has what it produced (:func:`swarmopt.report.write_run` writes the run
directory). Given part files (:class:`~swarmopt.spool.PartFiles`), it writes
the ``metrics``, ``events`` and ``process`` rows out in chunks as the run goes
and keeps only the rows since in memory; a :class:`RunResult` of such a run
reads its tables from disk when they are asked for.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from swarmopt.costs import cost_breakdown
from swarmopt.event_table import event_records, events_frame, strategy_kinds
from swarmopt.impact import impact_summary
from swarmopt.logs import narrate
from swarmopt.schema import Scenario
from swarmopt.spool import Filters, PartFiles, StoredTable, in_memory

KEY_METRICS = ("response_time_ms_mean", "response_time_ms_p95", "success_rate", "coordination_score",
               "error_rate", "cost_per_decision_usd", "decision_count")
TABLES = ("metrics", "events", "autonomy", "process")
STREAMED = ("metrics", "events", "process")  # written out in chunks; autonomy is a few rows per change


@dataclass(repr=False)
class RunResult:
    """What :func:`swarmopt.run_scenario` returns: the tables (``metrics``,
    ``events``, ``autonomy``, ``process``), the ``summary`` and, once written,
    ``out_dir``. In Jupyter it shows a short HTML summary.

    ``tables`` holds each table as a :class:`~swarmopt.spool.StoredTable`: rows
    in memory, or (a run streamed to a run directory) chunks on disk read when
    the table is first asked for. :meth:`read` and :meth:`count` take some
    columns and rows, or count them, without loading a whole table."""

    scenario: Scenario
    seed: int
    runtime: str
    tables: dict[str, StoredTable]
    summary: dict = field(default_factory=dict)
    out_dir: Path | None = None
    run_id: str = ""
    _loaded: dict[str, pd.DataFrame] = field(default_factory=dict, init=False)

    def table(self, name: str) -> pd.DataFrame:
        """The whole table ``name`` (one of :data:`TABLES`), loaded once."""
        if name not in self._loaded:
            self._loaded[name] = self.tables[name].load()
        return self._loaded[name]

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per agent per window, sorted by window start then agent."""
        return self.table("metrics")

    @property
    def events(self) -> pd.DataFrame:
        """One row per event, in order (:mod:`swarmopt.event_table`)."""
        return self.table("events")

    @property
    def autonomy(self) -> pd.DataFrame:
        """The optimizer's and every agent's autonomy over time."""
        return self.table("autonomy")

    @property
    def process(self) -> pd.DataFrame:
        """Real CPU and RSS of each actor process."""
        return self.table("process")

    def _stored(self, name: str) -> StoredTable:
        return StoredTable((), self._loaded[name]) if name in self._loaded else self.tables[name]

    def read(self, name: str, columns: list[str] | None = None, filters: Filters | None = None) -> pd.DataFrame:
        """The rows of table ``name`` for which ``filters`` hold, with ``columns``
        (:meth:`~swarmopt.spool.StoredTable.load`); from the loaded table if it is."""
        return self._stored(name).load(columns, filters)

    def scan(self, name: str, columns: list[str] | None = None,
             filters: Filters | None = None) -> Iterator[pd.DataFrame]:
        """The same rows as :meth:`read`, in pieces (:meth:`~swarmopt.spool.StoredTable.scan`)."""
        return self._stored(name).scan(columns, filters)

    def count(self, name: str, filters: Filters | None = None) -> int:
        """Number of rows of table ``name`` for which ``filters`` hold."""
        return self._stored(name).count(filters)

    def agent(self, agent_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The metrics rows of one agent (``columns`` of them, all by default), indexed by window start (s)."""
        cols = None if columns is None else ["t_start_s", *columns]
        return self.read("metrics", cols, [("agent", "==", agent_id)]).set_index("t_start_s")

    @property
    def changes(self) -> pd.DataFrame:
        """One row per change the optimizer made, with the judgement that
        decided it and its outcome (:func:`change_outcomes`)."""
        return change_outcomes(self.read("events", filters=[("event", "in", CHANGE_EVENTS)]))

    def plot(self, agent: str, metric: str | None = None):
        """A matplotlib Figure of ``agent``: ``metric`` per window, or with None
        one panel per metric a change on the agent targeted (response time if
        none), with the changes marked by outcome and the faults shaded
        (:func:`swarmopt.plots.plot_changes`). Raises KeyError naming the
        allowed agents and metrics."""
        from swarmopt.plots import plot_changes

        return plot_changes(self, agent, None if metric is None else [metric])

    def __repr__(self) -> str:
        o = self.summary.get("optimizations", {})
        where = f", out_dir='{self.out_dir}'" if self.out_dir else ""
        return (f"RunResult({self.scenario.name!r}, seed={self.seed}, runtime={self.runtime!r}, "
                f"{self.scenario.duration_s:g} s, {self.count('metrics')} metric rows, {self.count('events')} "
                f"events, {o.get('attempted', 0)} changes: {o.get('kept', 0)} kept, {o.get('rolled_back', 0)} "
                f"rolled back, {o.get('reverted', 0)} reverted{where})")

    def _repr_html_(self) -> str:
        from swarmopt.report import summary_html

        return summary_html(self)


class Collector:
    """A driver sink that keeps every row, narrates events and can write partial output.

    With ``spool`` (part files in the run directory) it keeps in memory only the
    rows of ``metrics``, ``events`` and ``process`` not written out yet: at every
    :meth:`mark` (the driver's checkpoint, before each optimizer cycle) a table
    holding ``chunk_rows`` rows or more (default :data:`~swarmopt.spool.CHUNK_ROWS`)
    writes them as its next part. Rows before a mark never change (a recovery
    rewinds to the latest mark at most), so what is written is final. Without
    ``spool`` every row stays in memory, as the lists ``metric_rows``,
    ``event_rows`` and ``process_rows``; with it those lists hold the rows since
    the last part.
    """

    def __init__(self, scenario: Scenario, narrate_events: bool = True, run_id: str = "",
                 spool: PartFiles | None = None, chunk_rows: int | None = None) -> None:
        from swarmopt import spool as spool_module  # read at call time: tests shrink the chunks

        self.scenario = scenario
        self.narrate = narrate_events
        self.run_id = run_id
        self.spool = spool
        self.chunk_rows = spool_module.CHUNK_ROWS if chunk_rows is None else chunk_rows
        self.metric_rows: list[dict] = []
        self.event_rows: list[dict] = []
        self.process_rows: list[dict] = []
        self.chunks: dict[str, list] = {name: [] for name in STREAMED}  # written out: part files, Arrow tables
        self.written: dict[str, int] = dict.fromkeys(STREAMED, 0)      # rows in the chunks, per table
        self.kinds: dict[str, str] = {}  # strategy id -> remedy kind, of the events written out
        self._narrated = 0
        self.autonomy_rows: list[dict] = [
            {"t_s": 0.0, "entity": "performance-optimizer", "autonomy": scenario.optimizer.initial_autonomy,
             "reason": "initial"}
        ] + [{"t_s": 0.0, "entity": a.id, "autonomy": a.autonomy, "reason": "initial"} for a in scenario.agents]

    def _rows(self, name: str) -> list[dict]:
        return {"metrics": self.metric_rows, "events": self.event_rows, "process": self.process_rows}[name]

    def _count(self, name: str) -> int:
        return self.written[name] + len(self._rows(name))

    def rows(self, rows: list[dict]) -> None:
        self.metric_rows += rows

    def events(self, events: list[dict]) -> None:
        narrated = self._count("events") >= self._narrated
        self.event_rows += events
        self._narrated = max(self._narrated, self._count("events"))
        for e in events:
            if e["event"] == "autonomy.optimizer":
                self.autonomy_rows.append({"t_s": e["t_s"], "entity": "performance-optimizer",
                                           "autonomy": e["new"], "reason": e.get("detail", "")})
            elif e["event"] == "autonomy.applied":
                self.autonomy_rows.append({"t_s": e["t_s"], "entity": e["agent"], "autonomy": e["new"],
                                           "reason": e.get("ref", "")})
        if self.narrate and narrated:  # a replay after a restart is not narrated twice
            narrate(events, self.run_id)

    def process(self, samples: list[dict]) -> None:
        self.process_rows += samples

    def samples(self, samples: list) -> None:
        """Per-task samples are the optimizer's evidence, not a table of the run: nothing is kept."""

    def mark(self) -> tuple[int, int, int, int]:
        """Lengths of the tables now (see :meth:`rewind`). With a spool, the
        rows before this mark are final: a table holding at least
        ``chunk_rows`` of them writes them out as a part first."""
        if self.spool is not None:
            for name in STREAMED:
                if len(self._rows(name)) >= self.chunk_rows:
                    self._write_part(name)
        return (*(self._count(name) for name in STREAMED), len(self.autonomy_rows))

    def rewind(self, mark: tuple[int, int, int, int]) -> None:
        """Drop what arrived after :meth:`mark` (a replay from a checkpoint sends
        it again). Raises RuntimeError for a mark before rows written out (only
        the latest mark may be rewound to)."""
        *counts, a = mark
        for name, n in zip(STREAMED, counts, strict=True):
            if n < self.written[name]:
                raise RuntimeError(f"cannot rewind the {name} table before the rows written out")
            del self._rows(name)[n - self.written[name]:]
        del self.autonomy_rows[a:]

    def _frame(self, name: str, rows: list[dict]) -> pd.DataFrame:
        if name == "events":
            return events_frame(rows, self.kinds)
        if name == "process":
            return pd.DataFrame(rows)
        if not rows:  # the key columns even before the first window closes
            return pd.DataFrame(columns=["agent", "window", "t_start_s", "t_end_s"])
        # sorting each chunk sorts the table: every agent's windows that end by a cycle are closed before its mark;
        # sorted rows also give the per-tool columns one order, whichever agent group reported first
        return pd.DataFrame(sorted(rows, key=lambda r: (r["t_start_s"], r["agent"])))

    def _write_part(self, name: str) -> None:
        rows = self._rows(name)
        self.chunks[name].append(self.spool.write(name, self._frame(name, rows)))
        if name == "events":
            self.kinds.update(strategy_kinds(rows))
        self.written[name] += len(rows)
        rows.clear()

    def table(self, name: str) -> StoredTable:
        """Table ``name`` so far: the chunks written out, then the rows in memory."""
        if name == "autonomy":
            return StoredTable((), pd.DataFrame(self.autonomy_rows))
        return StoredTable(tuple(self.chunks[name]), self._frame(name, self._rows(name)))

    def metrics_frame(self) -> pd.DataFrame:
        """The metrics table so far, sorted by window start then agent."""
        return self.table("metrics").load()

    def events_frame(self) -> pd.DataFrame:
        """The events table so far (:func:`swarmopt.event_table.events_frame`)."""
        return self.table("events").load()

    def replay(self, observer: Any) -> None:
        """Send ``observer`` the metrics rows and events so far, in order (those
        written out read back, events as :func:`~swarmopt.event_table.event_records`)."""
        for chunk in self.chunks["metrics"]:
            observer.rows(in_memory(chunk).to_pandas().to_dict("records"))
        if self.metric_rows:
            observer.rows(self.metric_rows)
        for chunk in self.chunks["events"]:
            observer.events(event_records(in_memory(chunk).to_pandas()))
        if self.event_rows:
            observer.events(self.event_rows)

    def finished(self, out: Path) -> None:
        """The run is over and its tables are written to ``out``
        (``<table>.parquet``, chunks and rows in memory together): read them
        from there from now on and delete the part files."""
        for name in STREAMED:
            if self.chunks[name]:
                self.chunks[name] = [out / f"{name}.parquet"]
                self.written[name] += len(self._rows(name))
                self._rows(name).clear()
        if self.spool is not None:
            self.spool.remove()
            self.spool = None

    def fork(self) -> "Collector":
        """An independent copy at the same point that keeps its rows in memory
        (the chunks written out so far are read into memory, not shared)."""
        other = copy.copy(self)
        other.metric_rows, other.event_rows, other.process_rows, other.autonomy_rows = copy.deepcopy(
            (self.metric_rows, self.event_rows, self.process_rows, self.autonomy_rows))
        other.chunks = {name: [in_memory(c) for c in chunks] for name, chunks in self.chunks.items()}
        other.written, other.kinds, other.spool = dict(self.written), dict(self.kinds), None
        return other

    def result(self, seed: int, runtime: str) -> RunResult:
        """The run's :class:`RunResult` with its summary."""
        res = RunResult(self.scenario, seed, runtime, {name: self.table(name) for name in TABLES},
                        run_id=self.run_id)
        res.summary = summarize(res)
        return res


SPANS = ("baseline", "before", "after")
_SPAN_LABELS = {"response_time_ms_mean": "response time", "success_rate": "success",
                "coordination_score": "coordination"}
DECIDED = {"optimization.kept": "kept", "optimization.rolled_back": "rolled back",
           "optimization.reverted": "reverted"}
# the events that change_outcomes and summarize read: a few per change, however long the run
COST_COLUMNS = ("agent", "t_start_s", "t_end_s", "decision_count", "success_rate", "cost_usd", "model_cost_usd",
                "tool_cost_usd")
COST_PREFIXES = ("model_cost_usd.", "tool_cost_usd.", "tool_calls.")
"""The metrics columns :func:`swarmopt.costs.cost_breakdown` reads."""
CHANGE_EVENTS = ["optimization.scheduled", "optimization.measured", "rollback.measured", *DECIDED,
                 "optimization.restored", "knob.applied"]


def _minutes(t: float) -> str:
    return f"{t / 60:.0f}"


def _span(res: RunResult, agent: str, start: float, end: float, reached_s: float) -> dict:
    """Means of the key metrics of ``agent`` over the windows in [start, end],
    with ``windows`` (how many) and a ``note`` saying why a figure is missing
    (None when all is there). Reads only those rows and columns."""
    rows = res.read("metrics", list(KEY_METRICS), [("agent", "==", agent), ("t_start_s", ">=", start),
                                                   ("t_end_s", "<=", end)])
    out: dict[str, Any] = {m: (float(rows[m].mean()) if len(rows) else math.nan)
                           for m in KEY_METRICS if m != "decision_count"}
    out["decision_count"] = int(rows["decision_count"].sum()) if len(rows) else 0
    out["from_s"], out["to_s"], out["windows"], out["note"] = start, end, len(rows), None
    if not len(rows):
        out["note"] = (f"the run stopped at {_minutes(reached_s)} min, before this span" if reached_s < end - 1e-9
                       else "no windows in this span")
    elif not out["decision_count"]:
        out["note"] = "no decisions in this span"
    return out


def _no_span(note: str) -> dict:
    return {**{m: math.nan for m in KEY_METRICS if m != "decision_count"}, "decision_count": 0,
            "from_s": None, "to_s": None, "windows": 0, "note": note}


def change_outcomes(events: pd.DataFrame) -> pd.DataFrame:
    """One row per change the optimizer scheduled (``optimization.scheduled``),
    in order: ``strategy_id``, ``agent``, ``kind``, ``type``, ``knob``,
    ``old_value``/``new_value``/``old_text``/``new_text``, ``scheduled_s``,
    ``effective_s``, the target ``metric`` and the judgement that decided
    (``verdict``, ``decision``, ``improvement_pct`` with ``ci_low_pct``/``ci_high_pct``,
    ``p_value``; missing while still being measured), and ``status``: ``kept``,
    ``rolled back``, ``reverted``, ``restored`` (reverted, then re-applied
    because undoing it made its metric significantly worse) or ``measuring``
    (no verdict by the end). ``undone_s``/``restored_s``: when the undo and
    the restore took effect; ``undo_verdict``: the verdict on the undo
    (``rollback.measured``; ``fail`` means undoing it made things worse),
    missing where the undo was not measured (a rollback's, or a revert's whose
    estimate was no gain: :mod:`swarmopt.optimizer.trial`)."""
    cols = ["strategy_id", "agent", "kind", "type", "knob", "old_value", "new_value", "old_text", "new_text",
            "scheduled_s", "effective_s", "metric", "before", "after", "improvement_pct", "ci_low_pct",
            "ci_high_pct", "p_value", "verdict", "decision", "status", "undone_s", "undo_verdict", "restored_s"]
    if events.empty:
        return pd.DataFrame(columns=cols)
    from swarmopt.optimizer.strategies import TYPES

    sched = events[events["event"] == "optimization.scheduled"]
    out = sched[["strategy_id", "agent", "kind", "type", "knob", "old_value", "new_value", "old_text", "new_text",
                 "t_s", "effective_s"]].rename(columns={"t_s": "scheduled_s"}).reset_index(drop=True)
    measured = events[events["event"] == "optimization.measured"].drop_duplicates("strategy_id", keep="last")
    judged = measured.set_index("strategy_id")[["metric", "before", "after", "improvement_pct", "ci_low_pct",
                                                "ci_high_pct", "p_value", "verdict", "decision"]]
    out = out.join(judged, on="strategy_id")
    undo = events[events["event"] == "rollback.measured"].drop_duplicates("strategy_id", keep="last")
    undo_verdict = dict(zip(undo["strategy_id"].str.removeprefix("rollback:"), undo["verdict"], strict=True))
    out["metric"] = out["metric"].fillna(out["type"].map(lambda t: TYPES[t].target if t in TYPES else None))
    status = {r.strategy_id: DECIDED[r.event] for r in events[events["event"].isin(list(DECIDED))].itertuples()}
    restored = events[events["event"] == "optimization.restored"].set_index("strategy_id")["effective_s"]
    undone = events[events["event"].isin(["optimization.reverted", "optimization.rolled_back"])]
    out["status"] = [("restored" if sid in restored.index else status.get(sid, "measuring")) for sid in
                     out["strategy_id"]]
    out["undone_s"] = out["strategy_id"].map(undone.set_index("strategy_id")["effective_s"]).astype("float64")
    out["undo_verdict"] = out["strategy_id"].map(undo_verdict).astype("string")
    out["restored_s"] = out["strategy_id"].map(restored).astype("float64")
    return out[cols]


def count_outcomes(changes: pd.DataFrame, rejected: int = 0, bottlenecks: int = 0) -> dict[str, int]:
    """Counts that add up: ``attempted`` = ``kept`` + ``rolled_back`` +
    ``reverted`` + ``measuring``; ``restored`` counts the reverted changes that
    were re-applied; ``in_force_at_end`` = ``kept`` + ``restored`` +
    ``measuring``. Also ``rejected`` (strategies the Orchestrator turned down)
    and ``bottlenecks_detected``, as given."""
    st = changes["status"].value_counts() if len(changes) else pd.Series(dtype=int)

    def n(name: str) -> int:
        return int(st.get(name, 0))

    return {"attempted": len(changes), "kept": n("kept"), "rolled_back": n("rolled back"),
            "reverted": n("reverted") + n("restored"), "measuring": n("measuring"), "restored": n("restored"),
            "in_force_at_end": n("kept") + n("restored") + n("measuring"), "rejected": rejected,
            "bottlenecks_detected": bottlenecks}


def summarize(res: RunResult) -> dict:
    """Per agent the key metrics over three spans of one optimizer cycle:
    ``baseline`` (before the first fault), ``before`` (before the first change
    took effect on the agent, or on any agent), ``after`` (the last cycle),
    each with ``windows`` and a ``note`` when a figure is missing (no fault, no
    change, the run ended before the span, no decisions); optimization counts
    (:func:`count_outcomes`); the source's overall ``impact`` summary
    (:func:`swarmopt.impact.impact_summary`); the ``costs`` per agent, tier
    and tool with the budget (:func:`swarmopt.costs.cost_breakdown`); the
    autonomy trajectories. Reads only what it needs of the tables: two columns
    of the metrics a chunk at a time, the rows of each span, the cost columns,
    the events of :data:`CHANGE_EVENTS`, the cost-burn alerts and counts of
    two more."""
    sc = res.scenario
    span = sc.optimizer.cycle_s
    end = sc.duration_s
    reached, windows = 0.0, set()
    for piece in res.scan("metrics", ["window", "t_end_s"]):
        if len(piece):
            reached = max(reached, float(piece["t_end_s"].max()))
            windows.update(piece["window"].unique().tolist())
    ev = res.read("events", filters=[("event", "in", CHANGE_EVENTS)])
    first_fault = min((f.at_s for f in sc.faults), default=None)
    applied = ev[ev["event"] == "knob.applied"] if not ev.empty else ev
    first_any = float(applied["t_s"].min()) if len(applied) else None
    agents = {}
    for a in sc.agents:
        mine = applied[applied["agent"] == a.id] if len(applied) else applied
        first = float(mine["t_s"].min()) if len(mine) else first_any
        if first_fault is None:
            baseline = _no_span("no fault in the scenario")
        elif first_fault < span:
            baseline = _no_span(f"the first fault starts at {_minutes(first_fault)} min, before one cycle has passed")
        else:
            baseline = _span(res, a.id, first_fault - span, first_fault, reached)
        before = _no_span("no change took effect") if first is None else _span(res, a.id, first - span, first,
                                                                               reached)
        agents[a.id] = {"baseline": baseline, "before": before, "after": _span(res, a.id, end - span, end, reached)}
    auto = res.autonomy
    counts = {e: res.count("events", [("event", "==", e)]) for e in ("strategy.rejected", "bottleneck.detected")}
    changes = change_outcomes(ev)
    cost_cols = [c for c in res._stored("metrics").columns() if c in COST_COLUMNS or c.startswith(COST_PREFIXES)]
    alerts = res.read("events", filters=[("event", "==", "bottleneck.detected")])
    return {
        "scenario": sc.name, "seed": res.seed, "runtime": res.runtime, "run_id": res.run_id,
        "duration_s": sc.duration_s, "windows": len(windows),
        "agents": agents,
        "optimizations": count_outcomes(changes, counts["strategy.rejected"], counts["bottleneck.detected"]),
        "impact": impact_summary(changes),
        "costs": cost_breakdown(res.read("metrics", cost_cols), alerts, sc),
        "optimizer_autonomy": [
            {"t_s": float(r.t_s), "autonomy": float(r.autonomy)}
            for r in auto[auto["entity"] == "performance-optimizer"].itertuples()
        ],
        "agent_autonomy_final": {
            e: float(g["autonomy"].iloc[-1])
            for e, g in auto[auto["entity"] != "performance-optimizer"].groupby("entity")
        },
    }


def format_summary(summary: dict) -> list[str]:
    """The run's summary as lines for a terminal: outcome counts that add up,
    and per agent the key metrics of each span, ``n/a`` with the reason where
    a span or a figure has no data."""
    o = summary["optimizations"]
    lines = [
        f"optimizations: {o['attempted']} attempted = {o['kept']} kept + {o['rolled_back']} rolled back + "
        f"{o['reverted']} reverted + {o['measuring']} still being measured at the end",
        f"  in force at the end: {o['in_force_at_end']} = {o['kept']} kept + {o['restored']} restored (reverted, "
        f"then re-applied when undoing them made things worse) + {o['measuring']} being measured",
        f"  {o['rejected']} rejected by the orchestrator, {o['bottlenecks_detected']} bottleneck detections",
        f"{'agent':24s} {'span':9s} {'minutes':>9s} {'response time':>14s} {'success':>8s} {'coordination':>13s}",
    ]
    for agent, spans in summary["agents"].items():
        for i, name in enumerate(SPANS):
            v = spans[name]
            head = f"{agent if i == 0 else '':24s} {name:9s} "
            head += f"{_minutes(v['from_s']) + '-' + _minutes(v['to_s']):>9s} " if v["from_s"] is not None \
                else f"{'':>9s} "
            if not v["windows"] or not v["decision_count"]:
                lines.append(head + f"n/a: {v['note']}")
                continue
            rt, ok, co = (v[k] for k in _SPAN_LABELS)
            cells = [f"{rt:,.0f} ms" if rt == rt else "n/a", f"{ok:.0%}" if ok == ok else "n/a",
                     f"{co:.0%}" if co == co else "n/a"]
            lines.append(head + f"{cells[0]:>14s} {cells[1]:>8s} {cells[2]:>13s}")
    return lines
