"""Per-run measures of a load test (pure; one row of the ``runs`` table).

All figures come from the run's metrics and events tables:

* the *incidents* of a scenario: each fault target and onset (faults on one
  agent starting together are one incident; a ``relay_delay`` hits the
  agents whose messages route through its relay, not the relay); a scenario with no fault but a
  ``surge`` or ``ramp`` load shape has one incident per agent at the load's
  ``start_s``. The *onset* is the first incident's; the *faulted agents* are
  the incidents' agents (all agents when there is no incident);
* an agent-window *meets the SLO* when it served at least one decision and
  every objective holds; an objective whose metric is NaN in a window with
  decisions (e.g. no message to coordinate) is not held against it;
* SLO attainment: the share of agent-windows starting at or after the onset
  that meet the SLO, over all agents and over the faulted agents only;
* MTTR of an incident: minutes from its onset to the start of the first run
  of 3 consecutive windows of its agent meeting the SLO after its first
  violating window (0 when it never violates); censored at the end of the run
  (then the time to the end, and ``censored``) when no such run comes;
* p95 response time: the decision-weighted mean of the per-window p95 over the
  faulted agents' windows after the onset;
* cost: total ``cost_usd`` of every agent over the run, and per successful
  decision (decision count x success rate);
* review wait: the mean wait of an escalated decision in the reviewer's
  queue (``review_wait_ms_mean`` weighted by the window's escalated decisions)
  over every agent's windows after the onset; NaN without a reviewer's queue
  or an escalation; ``autonomy_changes``: the Orchestrator's changes of agent
  autonomy (``autonomy.agent`` events);
* changes attempted (``optimization.scheduled``), kept, rolled back, reverted,
  restored; knob reversals: a ``knob.applied`` that moves a knob of an agent
  in the direction opposite to that knob's previous move less than
  ``reversal_window_s`` earlier (rollbacks and restores included: they move
  the knob back too).
"""

from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from swarmopt.knobs import KnobChange
from swarmopt.optimizer import split, switchback
from swarmopt.optimizer.stabilize import direction
from swarmopt.schema import SHAPES, Scenario
from swarmopt.sim.inbox import STORM
from swarmopt.sim.topology import Routes

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
RECOVERY_WINDOWS = 3
COUNTED = {"changes_attempted": "optimization.scheduled", "changes_kept": "optimization.kept",
           "changes_rolled_back": "optimization.rolled_back", "changes_reverted": "optimization.reverted",
           "changes_restored": "optimization.restored"}


@dataclass(frozen=True)
class Incident:
    """Trouble hitting ``agent`` from ``onset_s`` (simulated s)."""

    agent: str
    onset_s: float


def incidents(sc: Scenario) -> list[Incident]:
    """The scenario's incidents, sorted by onset then agent (see the module doc)."""
    found = {(a, float(f.at_s)) for f in sc.faults for a in (_relayed(sc, f.target) if f.kind == "relay_delay"
                                                             else [f.target])}
    if not found and sc.load.kind in ("surge", "ramp"):
        found = {(a.id, float(sc.load.start_s)) for a in sc.agents}
    return [Incident(a, t) for a, t in sorted(found, key=lambda x: (x[1], x[0]))]


def _relayed(sc: Scenario, relay: str) -> list[str]:
    """The agents with a link whose route, under the topology they start with,
    passes through ``relay`` (``[relay]`` when none does)."""
    names = sorted({a.id for a in sc.agents} | {STORM})
    routes = Routes(sc.topology, names, [a.id for a in sc.agents], sc.faults)
    hop = names.index(relay)
    senders = [a.id for a in sc.agents
               if any(hop in routes.relays(SHAPES.index(a.knobs.topology), names.index(a.id), names.index(to))
                      for link in a.downstream for to in link.receivers)]
    return senders or [relay]


def onset_s(sc: Scenario) -> float:
    """The first incident's onset (0 when there is none)."""
    return min((i.onset_s for i in incidents(sc)), default=0.0)


def faulted_agents(sc: Scenario) -> list[str]:
    """The incidents' agents, or every agent when there is no incident."""
    return sorted({i.agent for i in incidents(sc)}) or [a.id for a in sc.agents]


def slo_met(metrics: pd.DataFrame, slo: Sequence) -> np.ndarray:
    """Boolean per row of ``metrics``: the agent-window meets every objective
    of ``slo`` (:class:`~swarmopt.loadtest.spec.Objective`: one with an
    ``agent`` applies to that agent's windows only). Raises KeyError naming
    the allowed columns for an unknown metric."""
    ok = metrics["decision_count"].to_numpy() > 0
    for o in slo:
        if o.metric not in metrics:
            raise KeyError(f"unknown SLO metric '{o.metric}'; allowed: {sorted(metrics.columns)}")
        v = metrics[o.metric].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            met = OPERATORS[o.op](v, o.value) | np.isnan(v)
        if o.agent is not None:
            met |= (metrics["agent"] != o.agent).to_numpy()
        ok &= met
    return ok


def attainment(metrics: pd.DataFrame, met: np.ndarray, start_s: float, agents: Sequence[str] | None = None,
               end_s: float = math.inf) -> float:
    """Share of the agent-windows (of ``agents``, default all) starting in
    [``start_s``, ``end_s``) that meet the SLO (``met`` from :func:`slo_met`);
    NaN when there is none."""
    t = metrics["t_start_s"].to_numpy()
    sel = (t >= start_s - 1e-9) & (t < end_s - 1e-9)
    if agents is not None:
        sel &= metrics["agent"].isin(list(agents)).to_numpy()
    return float(met[sel].mean()) if sel.any() else math.nan


def mttr(t_start: np.ndarray, met: np.ndarray, onset: float, end: float,
         k: int = RECOVERY_WINDOWS) -> tuple[float, bool]:
    """(minutes from ``onset`` to recovery, censored) for one agent's windows
    (``t_start`` sorted, ``met`` per window): recovery is the start of the
    first run of ``k`` consecutive windows meeting the SLO after the first
    violating window at or after the onset; 0 when none violates; the time to
    ``end`` and censored=True when no such run comes."""
    after = t_start >= onset - 1e-9
    t, m = t_start[after], met[after]
    bad = np.flatnonzero(~m)
    if not len(bad):
        return 0.0, False
    run = 0
    for i in range(bad[0] + 1, len(m)):
        run = run + 1 if m[i] else 0
        if run == k:
            return float(t[i - k + 1] - onset) / 60.0, False
    return float(end - onset) / 60.0, True


def _value(number, text):
    """A knob value from the events table's typed columns (:mod:`swarmopt.event_table`):
    the number (a boolean as 1/0), else the text (a tier name)."""
    return text if pd.isna(number) else float(number)


def knob_reversals(events: pd.DataFrame, window_s: float, planned_only: bool = False) -> int:
    """Number of ``knob.applied`` events that move a knob opposite to its
    previous move on the same agent less than ``window_s`` seconds earlier.
    With ``planned_only``, only those that a new change makes (its ``ref`` a
    strategy id): not the rollbacks, reverts and restores that undo a judged
    change, which the stabilization window does not hold back (an undo of a
    change that failed is not a flap). The flips of a switchback trial
    (``ref`` ``switchback:<id>``) and the start and end of a split (``ref``
    ``split:<id>``) are never counted nor moves: the trial ends in the
    configuration its change set."""
    if events.empty or "knob" not in events:
        return 0
    applied = events[events["event"] == "knob.applied"].sort_values("t_s", kind="stable")
    if "ref" in applied:  # a switchback's flips and a split are experiments, not moves: they end where the change did
        applied = applied[~applied["ref"].astype(str).str.startswith((switchback.REF, split.REF))]
    last: dict[tuple[str, str], tuple[float, int]] = {}
    count = 0
    for r in applied.itertuples():
        try:
            d = direction(KnobChange(r.agent, r.knob, _value(r.old_value, r.old_text), _value(r.new_value, r.new_text)))
        except (TypeError, ValueError):
            continue  # a knob with no order (none today): it cannot be reversed
        if d == 0:
            continue
        key = (r.agent, r.knob)
        prev = last.get(key)
        undo = str(getattr(r, "ref", "")).startswith(("rollback:", "restore:"))
        if prev is not None and prev[1] == -d and r.t_s - prev[0] < window_s and not (planned_only and undo):
            count += 1
        last[key] = (float(r.t_s), d)
    return count


def _review_wait(metrics: pd.DataFrame, start: float) -> float:
    """Escalation-weighted mean of ``review_wait_ms_mean`` over the windows starting at or after ``start``."""
    if "review_wait_ms_mean" not in metrics or metrics["review_utilization"].isna().all():
        return math.nan
    after = metrics[metrics["t_start_s"] >= start - 1e-9]
    wait = after["review_wait_ms_mean"].to_numpy(dtype=float)
    esc = (after["decision_count"] * after["escalation_rate"]).to_numpy(dtype=float)
    w = np.where(np.isnan(wait), 0.0, np.nan_to_num(esc))
    return float((w * np.nan_to_num(wait)).sum() / w.sum()) if w.sum() > 0 else math.nan


def run_measures(sc: Scenario, metrics: pd.DataFrame, events: pd.DataFrame, slo: Sequence,
                 reversal_window_s: float) -> dict:
    """The measures of one run (flat dict: a row of the ``runs`` table; see the
    module doc). ``mttr_detail`` is JSON: one entry per incident."""
    met = slo_met(metrics, slo)
    start, end = onset_s(sc), sc.duration_s
    faulted = faulted_agents(sc)
    detail = []
    for inc in incidents(sc):
        rows = (metrics["agent"] == inc.agent).to_numpy()
        minutes, censored = mttr(metrics["t_start_s"].to_numpy()[rows], met[rows], inc.onset_s, end)
        detail.append({"agent": inc.agent, "onset_s": inc.onset_s, "mttr_min": minutes, "censored": censored})
    sel = (metrics["agent"].isin(faulted) & (metrics["t_start_s"] >= start - 1e-9)).to_numpy()
    n = metrics["decision_count"].to_numpy(dtype=float)
    p95 = metrics["response_time_ms_p95"].to_numpy(dtype=float)
    w = np.where(sel & ~np.isnan(p95), n, 0.0)
    successes = float((n * metrics["success_rate"].fillna(0.0).to_numpy()).sum())
    cost = float(metrics["cost_usd"].sum())
    ev_names = events["event"] if not events.empty else pd.Series([], dtype=str)
    return {
        "onset_s": start, "duration_s": float(end), "agents": len(sc.agents),
        "agent_hours": len(sc.agents) * float(end) / 3600.0, "faulted_agents": ",".join(faulted),
        "agent_windows": int((metrics["t_start_s"] >= start - 1e-9).sum()),
        "slo_attainment": attainment(metrics, met, start),
        "slo_attainment_faulted": attainment(metrics, met, start, faulted),
        "incidents": len(detail),
        "mttr_min": float(np.mean([d["mttr_min"] for d in detail])) if detail else math.nan,
        "mttr_censored": sum(d["censored"] for d in detail),
        "mttr_detail": json.dumps(detail),
        "p95_response_time_ms": float((w * np.nan_to_num(p95)).sum() / w.sum()) if w.sum() > 0 else math.nan,
        "cost_usd": cost,
        "cost_per_success_usd": cost / successes if successes > 0 else math.nan,
        "review_wait_ms": _review_wait(metrics, start),
        "autonomy_changes": int((ev_names == "autonomy.agent").sum()),
        **{k: int((ev_names == e).sum()) for k, e in COUNTED.items()},
        "knob_reversals": knob_reversals(events, reversal_window_s),
        "planned_reversals": knob_reversals(events, reversal_window_s, planned_only=True),
    }
