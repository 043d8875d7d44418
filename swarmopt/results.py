"""Run results: the tables a run produces, its summary, and the run directory.

Tables (pandas DataFrames):

* ``metrics``: one row per agent per window (:func:`swarmopt.metrics.window_metrics`);
* ``events``: bottlenecks, strategies, approvals, scheduled/applied changes,
  measurements, keeps, rollbacks (a measured degradation), reverts (no
  measured benefit), autonomy changes (``event`` column);
* ``autonomy``: the optimizer's and every agent's autonomy over time;
* ``process``: real CPU and RSS of each actor process (psutil) — kept apart from
  ``metrics`` because, unlike simulated figures, it differs between runs.

:class:`Collector` appends rows as they arrive, so a run that fails half way
still has what it produced (:func:`swarmopt.report.write_run` writes it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from swarmopt.logs import narrate
from swarmopt.schema import Scenario

KEY_METRICS = ("response_time_ms_mean", "response_time_ms_p95", "success_rate", "coordination_score",
               "error_rate", "cost_per_decision_usd", "decision_count")


@dataclass
class RunResult:
    """What :func:`swarmopt.run_scenario` returns."""

    scenario: Scenario
    seed: int
    runtime: str
    metrics: pd.DataFrame
    events: pd.DataFrame
    autonomy: pd.DataFrame
    process: pd.DataFrame
    summary: dict = field(default_factory=dict)
    out_dir: Path | None = None

    def agent(self, agent_id: str) -> pd.DataFrame:
        """The metrics rows of one agent, indexed by window start (s)."""
        return self.metrics[self.metrics["agent"] == agent_id].set_index("t_start_s")


class Collector:
    """A driver sink that keeps every row, narrates events and can write partial output."""

    def __init__(self, scenario: Scenario, narrate_events: bool = True) -> None:
        self.scenario = scenario
        self.narrate = narrate_events
        self.metric_rows: list[dict] = []
        self.event_rows: list[dict] = []
        self.process_rows: list[dict] = []
        self._narrated = 0
        self.autonomy_rows: list[dict] = [
            {"t_s": 0.0, "entity": "performance-optimizer", "autonomy": scenario.optimizer.initial_autonomy,
             "reason": "initial"}
        ] + [{"t_s": 0.0, "entity": a.id, "autonomy": a.autonomy, "reason": "initial"} for a in scenario.agents]

    def rows(self, rows: list[dict]) -> None:
        self.metric_rows += rows

    def events(self, events: list[dict]) -> None:
        narrated = len(self.event_rows) >= self._narrated
        self.event_rows += events
        self._narrated = max(self._narrated, len(self.event_rows))
        for e in events:
            if e["event"] == "autonomy.optimizer":
                self.autonomy_rows.append({"t_s": e["t_s"], "entity": "performance-optimizer",
                                           "autonomy": e["new"], "reason": e.get("detail", "")})
            elif e["event"] == "autonomy.applied":
                self.autonomy_rows.append({"t_s": e["t_s"], "entity": e["agent"], "autonomy": e["new"],
                                           "reason": e.get("ref", "")})
        if self.narrate and narrated:  # a replay after a restart is not narrated twice
            narrate(events)

    def process(self, samples: list[dict]) -> None:
        self.process_rows += samples

    def samples(self, samples: list) -> None:
        """Per-task samples are the optimizer's evidence, not a table of the run: nothing is kept."""

    def mark(self) -> tuple[int, int, int, int]:
        """Lengths of the tables now (see :meth:`rewind`)."""
        return len(self.metric_rows), len(self.event_rows), len(self.process_rows), len(self.autonomy_rows)

    def rewind(self, mark: tuple[int, int, int, int]) -> None:
        """Drop what arrived after :meth:`mark` (a replay from a checkpoint sends it again)."""
        m, e, p, a = mark
        del self.metric_rows[m:], self.event_rows[e:], self.process_rows[p:], self.autonomy_rows[a:]

    def metrics_frame(self) -> pd.DataFrame:
        """The metrics table so far, sorted by window start then agent."""
        if not self.metric_rows:  # the key columns even before the first window closes
            return pd.DataFrame(columns=["agent", "window", "t_start_s", "t_end_s"])
        metrics = pd.DataFrame(self.metric_rows)
        return metrics.sort_values(["t_start_s", "agent"], kind="stable").reset_index(drop=True)

    def events_frame(self) -> pd.DataFrame:
        """The events table so far."""
        events = pd.DataFrame(self.event_rows, columns=None if self.event_rows else ["t_s", "event", "agent"])
        for col in ("old", "new"):
            if col in events:
                events[col] = events[col].map(lambda v: v if v is None or isinstance(v, str) else repr(v))
        return events

    def result(self, seed: int, runtime: str) -> RunResult:
        """The run's :class:`RunResult` with its summary."""
        res = RunResult(self.scenario, seed, runtime, self.metrics_frame(), self.events_frame(),
                        pd.DataFrame(self.autonomy_rows), pd.DataFrame(self.process_rows))
        res.summary = summarize(res)
        return res


def _span_means(df: pd.DataFrame, agent: str, start: float, end: float) -> dict:
    rows = df[(df["agent"] == agent) & (df["t_start_s"] >= start) & (df["t_end_s"] <= end)]
    out = {m: (float(rows[m].mean()) if len(rows) else math.nan) for m in KEY_METRICS if m != "decision_count"}
    out["decision_count"] = int(rows["decision_count"].sum()) if len(rows) else 0
    out["from_s"], out["to_s"] = start, end
    return out


def summarize(res: RunResult) -> dict:
    """Per agent: ``baseline`` (the cycle before the first fault, if any),
    ``before`` (the cycle before the first optimization took effect on the
    agent, or on any agent), ``after`` (the last cycle); optimization counts;
    the autonomy trajectories."""
    sc, m, ev = res.scenario, res.metrics, res.events
    span = sc.optimizer.cycle_s
    end = sc.duration_s
    first_fault = min((f.at_s for f in sc.faults), default=None)
    applied = ev[ev["event"] == "knob.applied"] if not ev.empty else ev
    first_any = float(applied["t_s"].min()) if len(applied) else None
    agents = {}
    for a in sc.agents:
        mine = applied[applied["agent"] == a.id] if len(applied) else applied
        first = float(mine["t_s"].min()) if len(mine) else first_any
        entry = {}
        if first_fault is not None and first_fault >= span:
            entry["baseline"] = _span_means(m, a.id, first_fault - span, first_fault)
        if first is not None:
            entry["before"] = _span_means(m, a.id, first - span, first)
        entry["after"] = _span_means(m, a.id, end - span, end)
        agents[a.id] = entry

    def count(name: str) -> int:
        return int((ev["event"] == name).sum()) if not ev.empty else 0

    auto = res.autonomy
    return {
        "scenario": sc.name, "seed": res.seed, "runtime": res.runtime, "duration_s": sc.duration_s,
        "windows": int(m["window"].nunique()) if not m.empty else 0,
        "agents": agents,
        "optimizations": {
            "attempted": count("optimization.scheduled"), "kept": count("optimization.kept"),
            "rolled_back": count("optimization.rolled_back"), "reverted": count("optimization.reverted"),
            "restored": count("optimization.restored"), "rejected": count("strategy.rejected"),
            "bottlenecks_detected": count("bottleneck.detected"),
        },
        "optimizer_autonomy": [
            {"t_s": float(r.t_s), "autonomy": float(r.autonomy)}
            for r in auto[auto["entity"] == "performance-optimizer"].itertuples()
        ],
        "agent_autonomy_final": {
            e: float(g["autonomy"].iloc[-1])
            for e, g in auto[auto["entity"] != "performance-optimizer"].groupby("entity")
        },
    }
