"""Ground truth of every judged change: fork the run at the decision, run it both ways.

A policy's run is driven cycle by cycle with :class:`swarmopt.Simulation`.
Before a cycle that may judge a change (one is in flight) the simulation is
forked (``pre``). For every change that cycle keeps, rolls back or reverts,
two arms are forked from ``pre``: one with the decision as made and one with
it flipped (keep -> rollback; rollback or revert -> keep), each forced with
``Simulation.override``, with planning frozen (no new strategy in either arm)
and the Orchestrator's autonomy changes frozen (else a kept change would be
credited with the autonomy raise its verdict earns its agent), and both run to
the end. Then, comparing the arm that kept the change with the arm that undid
it:

* the target metric: mean of the change's agent's window values over the
  measurement horizon, which starts when the undo takes effect (in the arm
  that undid it) and lasts as long as the judge's after-span;
  ``target_effect_pct`` is the relative change, positive when keeping the
  change made the metric better;
* the agent's SLO attainment from the decision to the end of the run;
  ``slo_effect_points`` = kept minus undone, in percentage points.

(The decisions table also has the target from the horizon's start to the end
and the attainment over the horizon; they do not enter the label.) The two arms
start from the same state and random streams, so a change that alters no draw
shows an effect of exactly 0; once a change alters how many draws an agent
makes, the arms' later draws differ, so a small effect is within noise — which
is what the thresholds below are for.

The change *helped* when ``slo_effect_points`` > ``helped_slo_points`` or,
with the SLO effect within +-``helped_slo_points``, ``target_effect_pct`` >
``helped_target_pct``; it *hurt* in the mirror cases; else it had *no
effect*. Labels: a keep of a change that helped is a correct keep, of any
other a false keep; a rollback (or revert) of a change that helped is a false
rollback (revert), of any other a correct one. Everything runs on the local
runtime, in the process (the load test's Ray task) that runs the policy.

With ``replicas`` K > 1 the pair of arms is run K times: once from the
decision's state as the run made it, then from K - 1 forks of it each reseeded
with its own replica stream (:meth:`swarmopt.Simulation.reseed`: the same state
continued in another random world, common random numbers within each pair).
The effects are then means over the pairs, the label is that of the means, and
the row has the SLO effect's spread (``slo_effect_points_sd``) and the share of
pairs whose own label is the row's (``truth_agreement``): the expected effect of
the decision given its state, not one continuation's.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from swarmopt.loadtest.measures import attainment, slo_met
from swarmopt.results import RunResult
from swarmopt.schema import Scenario

JUDGED = {"optimization.kept": "keep", "optimization.rolled_back": "rollback", "optimization.reverted": "revert"}
UNDONE = ("optimization.rolled_back", "optimization.reverted")
FLIP = {"keep": "rollback", "rollback": "keep", "revert": "keep"}
LABELS = ("correct keep", "false keep", "correct rollback", "false rollback", "correct revert", "false revert")


def simulation_class():
    """``swarmopt.Simulation``, or None where this build of swarmopt has none."""
    import swarmopt

    try:
        return swarmopt.Simulation
    except AttributeError:
        return None


@dataclass(frozen=True)
class Judged:
    """A change judged at ``t_s``: its strategy, agents, remedy ``kind``, the
    bottleneck ``type`` it answered, the ``knob`` it changed (several joined
    by ``;``: a bundle, README "Decision quality"), ``decision``
    (keep/rollback/revert), target ``metric`` (``better`` lower/higher), the
    length of the judge's after-span and the improvement the judge measured."""

    strategy_id: str
    agents: tuple[str, ...]
    kind: str
    type: str
    knob: str
    decision: str
    t_s: float
    metric: str
    better: str
    horizon_s: float
    measured_improvement_pct: float


def judged_changes(events: pd.DataFrame) -> list[Judged]:
    """The keep/rollback/revert decisions among ``events`` (one cycle's new
    events), with their ``optimization.measured`` details, in event order."""
    if "strategy_id" not in events:
        return []
    measured = {r.strategy_id: r for r in events[events["event"] == "optimization.measured"].itertuples()}
    out = []
    for r in events[events["event"].isin(list(JUDGED))].itertuples():
        m = measured[r.strategy_id]
        out.append(Judged(r.strategy_id, tuple(str(r.agent).split(",")), str(r.kind), str(r.type), str(r.knob),
                          JUDGED[r.event], float(r.t_s), str(m.metric), str(m.better),
                          float(m.after_end_s - m.after_start_s), float(m.improvement_pct)))
    return out


def in_flight(events: pd.DataFrame) -> bool:
    """Whether a scheduled change has not been judged yet (so the next cycle may judge it)."""
    if "strategy_id" not in events:  # no strategy event yet, so no column for it
        return False
    ev = events["event"]
    scheduled = set(events.loc[ev == "optimization.scheduled", "strategy_id"])
    judged = set(events.loc[ev.isin(list(JUDGED)), "strategy_id"])
    return bool(scheduled - judged)


def classify(slo_points: float, target_pct: float, helped_slo_points: float = 2.0,
             helped_target_pct: float = 2.0) -> str:
    """``helped``, ``hurt`` or ``no effect`` (see the module doc); NaN effects count as none."""
    if slo_points > helped_slo_points:
        return "helped"
    if slo_points < -helped_slo_points:
        return "hurt"
    if target_pct > helped_target_pct:
        return "helped"
    if target_pct < -helped_target_pct:
        return "hurt"
    return "no effect"


def label(decision: str, truth: str) -> str:
    """The decision's label: ``correct``/``false`` + keep/rollback/revert."""
    if decision == "keep":
        return "correct keep" if truth == "helped" else "false keep"
    return f"{'false' if truth == 'helped' else 'correct'} {decision}"


def _window_mean(metrics: pd.DataFrame, agents: Sequence[str], metric: str, start: float, end: float) -> float:
    rows = metrics[metrics["agent"].isin(list(agents)) & (metrics["t_start_s"] >= start - 1e-9)
                   & (metrics["t_end_s"] <= end + 1e-9)]
    v = rows[metric].dropna()
    return float(v.mean()) if len(v) else math.nan


def relative_gain(kept: float, undone: float, better: str) -> float:
    """Percent by which ``kept`` is better than ``undone`` (positive = better;
    +-inf from a zero ``undone``; NaN when either is NaN)."""
    if math.isnan(kept) or math.isnan(undone):
        return math.nan
    if kept == undone:
        return 0.0
    sign = 1.0 if better == "higher" else -1.0
    if undone == 0:
        return sign * math.copysign(math.inf, kept - undone)
    return sign * (kept - undone) / abs(undone) * 100.0


def true_effect(kept: pd.DataFrame, undone: pd.DataFrame, agents: Sequence[str], metric: str, better: str,
                horizon: tuple[float, float], from_s: float, slo: Sequence) -> dict:
    """The effect of keeping a change, from the metrics of the arm that kept it
    and of the arm that undid it: the target ``metric`` over ``horizon``
    (start, end s) and the ``agents``' SLO attainment from ``from_s`` to the
    end (see the module doc), which decide the label; beside them the target
    from the horizon's start to the end (``target_effect_pct_to_end``), the
    attainment over the horizon (``slo_effect_points_horizon``) and the
    ``agents``' cost per decision (USD) over the horizon (``cost_kept``,
    ``cost_undone``, ``cost_effect_pct``, positive when keeping the change made
    decisions cheaper), which a cost guardrail's rollback is about and the label
    does not count."""
    end = math.inf
    tk, tu = (_window_mean(m, agents, metric, *horizon) for m in (kept, undone))
    tk_end, tu_end = (_window_mean(m, agents, metric, horizon[0], end) for m in (kept, undone))
    ck, cu = (_window_mean(m, agents, "cost_per_decision_usd", *horizon) for m in (kept, undone))
    met_k, met_u = slo_met(kept, slo), slo_met(undone, slo)
    sk, su = attainment(kept, met_k, from_s, agents), attainment(undone, met_u, from_s, agents)
    hk, hu = (attainment(m, met, horizon[0], agents, horizon[1]) for m, met in ((kept, met_k), (undone, met_u)))
    return {"horizon_start_s": horizon[0], "horizon_end_s": horizon[1], "target_kept": tk, "target_undone": tu,
            "target_effect_pct": relative_gain(tk, tu, better),
            "target_effect_pct_to_end": relative_gain(tk_end, tu_end, better),
            "slo_kept": sk, "slo_undone": su, "slo_effect_points": 100.0 * (sk - su),
            "slo_effect_points_horizon": 100.0 * (hk - hu), "cost_kept": ck, "cost_undone": cu,
            "cost_effect_pct": relative_gain(ck, cu, "lower")}


def _finish(sim) -> None:
    while not sim.done:
        sim.step()


def _undo_effective_s(events: pd.DataFrame, strategy_id: str, default: float) -> float:
    rows = events[events["event"].isin(UNDONE) & (events["strategy_id"] == strategy_id)]
    return float(rows["effective_s"].iloc[0]) if len(rows) else default


def _both_ways(pre, j: Judged, end_s: float, slo: Sequence, stream: int) -> dict:
    """:func:`true_effect` of ``j`` from the arms run from ``pre``, or with
    ``stream`` >= 1 from a fork of it reseeded with that replica stream."""
    if stream:
        pre = pre.fork()
        pre.reseed(stream)
    arms = {}
    for decision in (j.decision, FLIP[j.decision]):
        arm = pre.fork()
        arm.override(j.strategy_id, decision)
        arm.freeze_planning()
        arm.freeze_autonomy()
        _finish(arm)
        arms[decision] = arm
    kept = arms["keep"]
    undone = arms[j.decision if j.decision != "keep" else FLIP["keep"]]
    start = _undo_effective_s(undone.events, j.strategy_id, j.t_s)
    return true_effect(kept.metrics, undone.metrics, j.agents, j.metric, j.better,
                       (start, min(end_s, start + j.horizon_s)), j.t_s, slo)


def _mean(values: list[float]) -> float:
    # sum, not math.fsum: a relative gain may be +inf in one pair and -inf in another (a zero undone arm), and
    # fsum raises on that where the mean is NaN
    known = [v for v in values if not math.isnan(v)]
    return sum(known) / len(known) if known else math.nan


def decide_both_ways(pre, j: Judged, end_s: float, slo: Sequence, helped_slo_points: float = 2.0,
                     helped_target_pct: float = 2.0, replicas: int = 1) -> dict:
    """Ground truth of judged change ``j`` from ``pre``, a Simulation stopped
    before the cycle that judged it: the two arms (``replicas`` pairs of them,
    see the module doc), the true effect and the label (one row of the
    ``decisions`` table). Raises ValueError for ``replicas`` < 1."""
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    effs = [_both_ways(pre, j, end_s, slo, r) for r in range(replicas)]
    eff = {k: _mean([e[k] for e in effs]) for k in effs[0]}
    truth = classify(eff["slo_effect_points"], eff["target_effect_pct"], helped_slo_points, helped_target_pct)
    own = [classify(e["slo_effect_points"], e["target_effect_pct"], helped_slo_points, helped_target_pct)
           for e in effs]
    slo_pts = [e["slo_effect_points"] for e in effs]
    return {"strategy_id": j.strategy_id, "agent": ",".join(j.agents), "kind": j.kind, "type": j.type,
            "knob": j.knob, "decision": j.decision, "t_s": j.t_s, "metric": j.metric, "better": j.better,
            "measured_improvement_pct": j.measured_improvement_pct, **eff, "replicas": replicas,
            "slo_effect_points_sd": statistics.stdev(slo_pts) if replicas > 1 else math.nan,
            "truth_agreement": own.count(truth) / replicas, "truth": truth,
            "label": label(j.decision, truth), "correct": label(j.decision, truth).startswith("correct")}


def run_with_truth(scenario: Scenario, seed: int, slo: Sequence, helped_slo_points: float = 2.0,
                   helped_target_pct: float = 2.0, simulation=None, replicas: int = 1,
                   **sim_kwargs: Any) -> tuple[RunResult, list[dict]]:
    """Run ``scenario`` with ``seed`` cycle by cycle on the local runtime and
    give every judged change its ground truth. Returns the run's
    :class:`~swarmopt.results.RunResult` (the same tables as
    :func:`swarmopt.run_scenario`) and one dict per judged change (see
    :func:`decide_both_ways`); a judgement whose undo would take effect at or
    after the end has no horizon and is left out; ``replicas``: pairs of
    arms per judged change (see the module doc). ``simulation``: the
    Simulation class (default ``swarmopt.Simulation``); ``sim_kwargs`` go to
    its constructor (e.g. ``policy=``). Raises RuntimeError when there is no
    Simulation class."""
    cls = simulation or simulation_class()
    if cls is None:
        raise RuntimeError("ground truth needs swarmopt.Simulation, which this build of swarmopt lacks")
    sim = cls(scenario, seed, runtime="local", **sim_kwargs)
    end = scenario.duration_s
    rows = []
    while (t := sim.next_cycle_s) is not None:
        if sim.now < t:
            sim.run(until=t)
        pre = sim.fork() if in_flight(sim.events) else None
        seen = len(sim.events)
        sim.step()  # the cycle due at t (it judges, plans), then one tick
        if pre is None:
            continue
        for j in judged_changes(sim.events.iloc[seen:]):
            if j.t_s + scenario.optimizer.rollback_time_s < end:  # else the undo would come too late to matter
                rows.append(decide_both_ways(pre, j, end, slo, helped_slo_points, helped_target_pct, replicas))
    return sim.result(), rows


def label_counts(decisions: Sequence[dict]) -> dict:
    """Per-run counts of the decision labels (``truth_*`` columns of ``runs``):
    keeps and undos (rollbacks and reverts together), correct and false."""
    labels = [d["label"] for d in decisions]
    return {"truth_decisions": len(labels),
            "truth_correct_keep": labels.count("correct keep"), "truth_false_keep": labels.count("false keep"),
            "truth_correct_rollback": labels.count("correct rollback") + labels.count("correct revert"),
            "truth_false_rollback": labels.count("false rollback") + labels.count("false revert")}
