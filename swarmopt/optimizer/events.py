"""Event rows of the optimizer for the events table (pure formatting).

Every event is a dict with ``t_s`` (simulated time, s) and ``event`` (its name);
the other keys are the columns of :attr:`swarmopt.results.RunResult.events`.
"""

from __future__ import annotations

from swarmopt.knobs import KnobChange
from swarmopt.optimizer.detect import Anomaly, Bottleneck
from swarmopt.optimizer.measure import Judgement
from swarmopt.optimizer.strategies import Strategy
from swarmopt.optimizer.trial import Trial, TrialOutcome


def _agents(actions) -> str:
    return ",".join(sorted({c.agent for c in actions}))


def _values(values: list):
    """One knob value as it is, several as a list (the events table splits
    them into numbers and text, :mod:`swarmopt.event_table`)."""
    return values[0] if len(values) == 1 else list(values)


def bottleneck_event(t: float, b: Bottleneck) -> dict:
    """``bottleneck.detected``."""
    return {"t_s": t, "event": "bottleneck.detected", "agent": b.affected_component, "type": b.type,
            "severity": b.severity, "metric": b.metric, "value": b.value, "threshold": b.threshold,
            "impact": b.impact, "detail": b.description}


def within_tolerance_event(t: float, b: Bottleneck, tolerance: float) -> dict:
    """``bottleneck.within_tolerance``: a bottleneck too close to its threshold to act on."""
    return {"t_s": t, "event": "bottleneck.within_tolerance", "agent": b.affected_component, "type": b.type,
            "metric": b.metric, "value": b.value, "threshold": b.threshold,
            "detail": f"within {tolerance:.0%} of its threshold: no action"}


def anomaly_event(t: float, x: Anomaly) -> dict:
    """``anomaly.detected``: a level shift against the agent's own history."""
    return {"t_s": t, "event": "anomaly.detected", "agent": x.agent, "metric": x.metric, "value": x.value,
            "baseline": x.baseline, "impact": x.shift_pct, "z": x.z,
            "detail": f"{x.agent} {x.metric} shifted {x.shift_pct:+.0f}% from its median {x.baseline:.4g} "
                      f"(robust z {x.z:.1f})"}


def held_event(t: float, remedy: str, actions: list[KnobChange], why: str) -> dict:
    """``strategy.held``: changes not tried, and ``why`` (they would reverse a knob within the stabilization
    window, or their known price breaks the cost guardrail)."""
    return {"t_s": t, "event": "strategy.held", "agent": actions[0].agent, "kind": remedy,
            "knob": ";".join(c.knob for c in actions), "new": _values([c.new for c in actions]), "detail": why}


def strategy_event(t: float, name: str, s: Strategy) -> dict:
    """Event ``name`` about strategy ``s`` (planned, approved, scheduled, kept, ...)."""
    return {
        "t_s": t, "event": name, "agent": _agents(s.actions), "strategy_id": s.id,
        "type": s.type, "kind": s.kind, "severity": s.priority, "risk": s.risk,
        "expected_improvement": s.expected_improvement, "implementation_time_s": s.implementation_time_s,
        "knob": ";".join(c.knob for c in s.actions), "old": _values([c.old for c in s.actions]),
        "new": _values([c.new for c in s.actions]), "detail": s.description,
    }


def _judged(j: Judgement, alpha: float) -> dict:
    """The deciding test's figures (positive = better) of judgement ``j``."""
    e = j.effect(alpha)
    return {"metric": j.window.metric, "before": e.before, "after": e.after, "improvement_pct": e.improvement_pct,
            "ci_low_pct": e.ci_low_pct, "ci_high_pct": e.ci_high_pct, "p_value": e.p_value, "verdict": j.verdict,
            "method": j.method}


def measure_event(t: float, j: Judgement, trial: Trial, before_s: float, outcome: TrialOutcome,
                  alpha: float = 0.05) -> dict:
    """``optimization.measured`` (a change: with its ``decision``, and ``forced``
    and the ``judge_decision`` when the decision was forced) or
    ``rollback.measured`` (an undo): the figures of the test that decided
    (:meth:`~swarmopt.optimizer.measure.Judgement.effect`, positive = better),
    the window-level measurement as ``window_*`` (secondary), the per-task
    sample sizes and the spans compared (before: ``before_s`` up to the
    effective time; a switchback look's arms: both spans are the span they
    alternate over, ``switchback`` true; a split look's: both are the split's
    judged span, ``split`` true). ``alpha``: the optimizer's, which
    sets the level of the per-task interval."""
    s = trial.strategy
    m = j.window
    ev = {
        "t_s": t, "event": "optimization.measured", "agent": _agents(s.actions),
        "strategy_id": s.id, "type": s.type, "kind": s.kind, **_judged(j, alpha), "decision": outcome.decision,
        "better": m.better, "reasons": j.reason, "guardrails": "; ".join(j.breaches),
        "window_before": m.before, "window_after": m.after, "window_improvement_pct": m.improvement_pct,
        "window_ci_low_pct": m.ci_low_pct, "window_ci_high_pct": m.ci_high_pct, "window_p_value": m.p_value,
        "window_verdict": m.verdict, "window_method": m.method,
        "tasks_before": j.tasks_before, "tasks_after": j.tasks_after,
        "tau_before": j.tau_before, "tau_after": j.tau_after,
        "n_eff_before": j.canary.n_before if j.canary else j.tasks_before,
        "n_eff_after": j.canary.n_after if j.canary else j.tasks_after,
        "before_start_s": before_s, "before_end_s": trial.effective_s,
        "after_start_s": trial.after_start_s, "after_end_s": trial.measure_at_s, "switchback": bool(trial.arms),
        "split": trial.split,
    }
    if trial.arms or trial.split:  # both arms alternate over the switchback looks, or run at once in a split
        ev["before_start_s"] = ev["after_start_s"] = trial.arms[0][0] if trial.arms else trial.split_s
        ev["before_end_s"] = trial.measure_at_s
    if trial.undone is not None:
        del ev["decision"]  # an undo is measured, not decided on
        ev["event"] = "rollback.measured"
    elif outcome.forced:
        ev |= {"forced": True, "judge_decision": j.decision}
    return ev


def decision_event(t: float, s: Strategy, j: Judgement, outcome: TrialOutcome, alpha: float = 0.05) -> dict:
    """``optimization.kept``, ``optimization.rolled_back``, ``optimization.reverted``
    (with the deciding test's figures, and ``forced`` when the decision was
    forced) or ``optimization.restored``."""
    if outcome.decision == "restore":
        return strategy_event(t, "optimization.restored", s) | {"effective_s": outcome.effective_s,
                                                                "detail": outcome.reason}
    name = {"keep": "optimization.kept", "rollback": "optimization.rolled_back"}.get(outcome.decision,
                                                                                   "optimization.reverted")
    ev = strategy_event(t, name, s) | _judged(j, alpha)
    if outcome.decision != "keep":
        ev |= {"effective_s": outcome.effective_s, "detail": outcome.reason}
    return ev | {"forced": True} if outcome.forced else ev


def autonomy_event(t: float, old: float, new: float, reason: str) -> dict:
    """``autonomy.optimizer``: the optimizer's own autonomy moved."""
    return {"t_s": t, "event": "autonomy.optimizer", "agent": "performance-optimizer", "old": old, "new": new,
            "detail": reason}
