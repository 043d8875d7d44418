"""The live state of a run: what the dashboard, ``/api/state`` and Jupyter show.

:class:`LiveState` is an :class:`~swarmopt.observe.Observer` that keeps, per
agent, its last window row, its SLO status, health score and autonomy and the
key metrics of the last hour of simulated time; the optimizer's autonomy and
its latest decisions; the Orchestrator's autonomy changes; and counts of the
judged changes by decision and verdict. Every figure comes from the run's rows
and events. It is thread-safe: the run writes, a server thread reads.
"""

from __future__ import annotations

import html
import math
import threading
from collections import Counter, deque
from typing import Any

from swarmopt.metrics import health_score, system_score
from swarmopt.observe import Observer
from swarmopt.schema import Scenario, Thresholds

HISTORY_METRICS = ("response_time_ms_mean", "response_time_ms_p95", "success_rate", "error_rate",
                   "coordination_score", "cost_per_decision_usd", "decision_count")
LAST_METRICS = HISTORY_METRICS + ("queue_wait_ms_mean", "cache_hit_rate", "cost_usd", "arrival_rate_per_s")
DECISION_EVENTS = ("optimization.scheduled", "optimization.kept", "optimization.rolled_back",
                   "optimization.reverted", "optimization.restored", "strategy.recommended", "strategy.rejected")
DECISION_FIELDS = ("t_s", "event", "agent", "kind", "knob", "old", "new", "improvement_pct", "verdict", "detail")


def slo_status(row: dict, th: Thresholds) -> dict[str, bool | None]:
    """Whether one window ``row`` meets each SLO of the source design's
    thresholds (``th``): ``response_time`` (mean <= ``response_time_ms``),
    ``success_rate`` (>= ``success_rate_medium``), ``error_rate`` (<=
    ``error_rate_medium``), ``coordination`` (>= ``coordination_medium``).
    None when the window has no value for the metric (NaN)."""
    checks = {
        "response_time": (row.get("response_time_ms_mean", math.nan), lambda v: v <= th.response_time_ms),
        "success_rate": (row.get("success_rate", math.nan), lambda v: v >= th.success_rate_medium),
        "error_rate": (row.get("error_rate", math.nan), lambda v: v <= th.error_rate_medium),
        "coordination": (row.get("coordination_score", math.nan), lambda v: v >= th.coordination_medium),
    }
    return {name: (None if v != v else bool(ok(v))) for name, (v, ok) in checks.items()}


def clean(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, deque)):
        return [clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return clean(value.item())
    return value


class LiveState(Observer):
    """The live state of one run of ``scenario``; ``history_s`` simulated
    seconds of window rows are kept per agent (default: the last hour) and the
    latest ``keep`` decisions and autonomy changes."""

    def __init__(self, scenario: Scenario, history_s: float = 3600.0, keep: int = 12) -> None:
        self.scenario = scenario
        self.thresholds = scenario.optimizer.thresholds
        self.history_s = history_s
        self.agent_ids = [a.id for a in scenario.agents]
        self.names = {a.id: a.name for a in scenario.agents}
        self.autonomy = {a.id: a.autonomy for a in scenario.agents}
        self.optimizer_autonomy = scenario.optimizer.initial_autonomy
        self.optimizer_history: list[tuple[float, float]] = [(0.0, self.optimizer_autonomy)]
        self.now_s = 0.0
        self.last: dict[str, dict] = {}
        self.history: dict[str, deque] = {a: deque() for a in self.agent_ids}
        self.decisions: deque = deque(maxlen=keep)
        self.autonomy_changes: deque = deque(maxlen=keep)
        self.judged: Counter = Counter()  # (decision, verdict) -> changes
        self.bottlenecks: Counter = Counter()  # (agent, type, severity) -> detections
        self.totals: dict[str, dict[str, float]] = {a: {"decisions": 0.0, "cost_usd": 0.0} for a in self.agent_ids}
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ observer
    def rows(self, rows: list[dict]) -> None:
        with self.lock:
            for r in rows:
                a = r["agent"]
                self.now_s = max(self.now_s, r["t_end_s"])
                self.last[a] = r
                self.history[a].append({m: r.get(m, math.nan) for m in ("t_end_s",) + HISTORY_METRICS})
                tot = self.totals[a]
                tot["decisions"] += r["decision_count"]
                tot["cost_usd"] += r["cost_usd"] if r["cost_usd"] == r["cost_usd"] else 0.0
            for h in self.history.values():
                while h and h[0]["t_end_s"] <= self.now_s - self.history_s:
                    h.popleft()

    def events(self, events: list[dict]) -> None:
        with self.lock:
            for e in events:
                name = e["event"]
                if name == "autonomy.optimizer":
                    self.optimizer_autonomy = e["new"]
                    self.optimizer_history.append((e["t_s"], e["new"]))
                elif name == "autonomy.applied":
                    self.autonomy[e["agent"]] = e["new"]
                elif name == "autonomy.agent":
                    self.autonomy_changes.append({k: e.get(k) for k in ("t_s", "agent", "old", "new", "effective_s",
                                                                        "detail")})
                elif name == "optimization.measured" and e["decision"]:
                    # a look with no decision yet (the change is measured on) is not a judged change
                    self.judged[(e["decision"], e["verdict"])] += 1
                elif name == "bottleneck.detected":
                    self.bottlenecks[(e["agent"], e["type"], e["severity"])] += 1
                if name in DECISION_EVENTS:
                    self.decisions.append({k: e.get(k) for k in DECISION_FIELDS})

    # ------------------------------------------------------------------ views
    def _agent_status(self, agent: str) -> dict:
        """One agent now: ``health`` (:func:`~swarmopt.metrics.health_score` of
        its last window), ``slo`` (:func:`slo_status`), ``slo_met`` (all known
        SLOs met; None before the first window), ``autonomy``, ``last`` (key
        metrics of the last window) and ``history`` (each key metric over the
        last ``history_s``, with the windows' end times ``t_end_s``)."""
        row = self.last.get(agent)
        slo = slo_status(row, self.thresholds) if row else {}
        known = [ok for ok in slo.values() if ok is not None]
        hist = list(self.history[agent])
        return {
            "id": agent, "name": self.names[agent], "autonomy": self.autonomy[agent],
            "health": health_score(row, self.thresholds.response_time_ms) if row else None,
            "slo": slo, "slo_met": all(known) if known else None,
            "last": {m: row.get(m) for m in ("t_start_s", "t_end_s") + LAST_METRICS} if row else None,
            "totals": dict(self.totals[agent]),
            "history": {m: [h[m] for h in hist] for m in ("t_end_s",) + HISTORY_METRICS},
        }

    def snapshot(self) -> dict:
        """The whole state as strict-JSON-ready data (NaN -> None): ``scenario``,
        ``seed``, ``now_s``, ``duration_s``, ``system_score`` (decision-weighted
        health of the last windows), ``agents`` (one dict each, see :meth:`_agent_status`),
        ``optimizer`` (``autonomy``, ``history`` of (t_s, autonomy), latest
        ``decisions``, ``judged`` counts by decision and verdict) and
        ``orchestrator`` (latest ``autonomy_changes``)."""
        with self.lock:
            rows = list(self.last.values())
            return clean({
                "scenario": self.scenario.name, "seed": self.scenario.seed, "now_s": self.now_s,
                "duration_s": self.scenario.duration_s, "window_s": self.scenario.window_s,
                "thresholds": {"response_time_ms": self.thresholds.response_time_ms,
                               "success_rate": self.thresholds.success_rate_medium},
                "system_score": system_score(rows, self.thresholds.response_time_ms) if rows else None,
                "agents": [self._agent_status(a) for a in self.agent_ids],
                "optimizer": {"autonomy": self.optimizer_autonomy, "history": self.optimizer_history,
                              "decisions": list(reversed(self.decisions)),
                              "judged": [{"decision": d, "verdict": v, "changes": n}
                                         for (d, v), n in sorted(self.judged.items())]},
                "orchestrator": {"autonomy_changes": list(reversed(self.autonomy_changes))},
            })

    def html(self, now_s: float | None = None) -> str:
        """A small HTML summary (for Jupyter): the simulated time ``now_s``
        (default: the end of the last closed window), one row per agent, then
        the optimizer's autonomy and latest decisions and the Orchestrator's
        autonomy changes."""
        s = self.snapshot()
        now_s = s["now_s"] if now_s is None else now_s
        esc = html.escape

        def pct(v: float | None) -> str:
            return "–" if v is None else f"{v:.0%}"

        def num(v: float | None, fmt: str) -> str:
            return "–" if v is None else format(v, fmt)

        rows = []
        for a in s["agents"]:
            last = a["last"] or {}
            slo = "–" if a["slo_met"] is None else ("met" if a["slo_met"] else "breached: " + ", ".join(
                k for k, ok in a["slo"].items() if ok is False))
            cells = [esc(a["id"]), pct(a["health"]), esc(slo), pct(a["autonomy"]),
                     num(last.get("response_time_ms_mean"), ".0f"), num(last.get("response_time_ms_p95"), ".0f"),
                     pct(last.get("success_rate")), pct(last.get("error_rate")),
                     num(last.get("decision_count"), ".0f")]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        dec = "".join(f"<li>{d['t_s']:.0f}s {esc(str(d['event']))} {esc(str(d['agent'] or ''))} "
                      f"{esc(str(d['knob'] or ''))} {esc(str(d['old'] or ''))} → {esc(str(d['new'] or ''))}</li>"
                      for d in s["optimizer"]["decisions"][:5])
        orch = "".join(f"<li>{c['t_s']:.0f}s {esc(c['agent'])} {c['old']:.0%} → {c['new']:.0%} "
                       f"({esc(c['detail'])})</li>" for c in s["orchestrator"]["autonomy_changes"][:5])
        return (f"<div class='swarmopt-live'><b>{esc(s['scenario'])}</b> seed {s['seed']}: "
                f"t = {now_s:.0f} s of {s['duration_s']:.0f} s, system score {pct(s['system_score'])}"
                "<table><tr><th>agent</th><th>health</th><th>SLO (last window)</th><th>autonomy</th>"
                "<th>mean ms</th><th>p95 ms</th><th>success</th><th>errors</th><th>decisions</th></tr>"
                + "".join(rows) + "</table>"
                f"<p>Optimizer autonomy {pct(s['optimizer']['autonomy'])}; latest decisions:</p>"
                f"<ul>{dec or '<li>none</li>'}</ul>"
                f"<p>Orchestrator autonomy changes:</p><ul>{orch or '<li>none</li>'}</ul></div>")
