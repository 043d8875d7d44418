"""The Orchestrator's autonomy rules (swarmopt.autonomy): pure functions of a context and their own state."""

from __future__ import annotations

import math

import pytest

from swarmopt.autonomy import AUTONOMY_POLICIES, AutonomyChange, AutonomyContext, ReviewLoad, fixed, load_aware, rules
from swarmopt.errors import InputError
from swarmopt.orchestrator import Orchestrator
from swarmopt.schema import OrchestratorConfig

CFG = OrchestratorConfig()
AGENTS = ("a", "b", "c")
REVIEW = ReviewLoad(utilization=0.5, workers=3, mean_service_s=1.5 * math.exp(0.125))


def ctx(health, kept=(), in_flight=(), review=None, autonomy=None, rate=1.2, config=CFG):
    """A context after a report: every agent at autonomy 0.85 and ``rate`` valid decisions/s by default."""
    rows = {a: {"arrival_rate_per_s": rate, "error_rate": 0.0} for a in AGENTS}
    return AutonomyContext(600.0, config, autonomy or dict.fromkeys(AGENTS, 0.85), dict(health),
                           frozenset(kept), frozenset(in_flight), rows, review)


def test_rules_raise_after_a_kept_change_and_lower_after_two_unhealthy_reports():
    """The source's Cycle 4 (Market Hunter 85% -> 90% after a kept optimization) and "Reduce autonomy for
    agent X (poor performance)" after two reports below 60% health; the streak lives in the rule's state."""
    changes, state = rules(ctx({"a": 0.9, "b": 0.5, "c": 0.5}, kept={"a"}, in_flight={"c"}), {})
    assert changes == [AutonomyChange("a", 0.9, "performance improvements acknowledged")]
    assert state == {"low_streak": {"a": 0, "b": 1, "c": 1}}
    changes, state = rules(ctx({"a": 0.9, "b": 0.5, "c": 0.5}, in_flight={"c"}), state)
    assert changes == [AutonomyChange("b", 0.8, "health below 60% in two reports")]  # c: in flight, left alone
    changes, _ = rules(ctx({"a": 0.9, "b": 0.7}), state)
    assert changes == []  # b's streak is broken
    lowest = ctx({"a": 0.5}, autonomy=dict.fromkeys(AGENTS, CFG.min_agent_autonomy))
    assert rules(lowest, {"low_streak": {"a": 5}})[0] == []  # at the bound: nothing to change


def test_fixed_never_changes_autonomy():
    assert fixed(ctx({"a": 0.9, "b": 0.1}, kept={"a"}), {"low_streak": {"b": 9}}) == ([], {"low_streak": {"b": 9}})


def test_load_aware_holds_a_lowering_that_would_saturate_the_review_desk():
    """Lowering an agent of 1.2 valid decisions/s by 0.05 adds 0.06 reviews/s: 0.06 x 1.70 s / 3 = 3.4 points
    of utilization. At 50% measured (and 10.2% offered by autonomy alone) it goes through (cap 60%); at 58%
    it would reach 61%: held, with the reason, and the rule's state moves on as the source rule's does."""
    report = {"a": 0.5}
    state = {"low_streak": {"a": 1}}
    lowered, _ = load_aware(ctx(report, review=REVIEW), state)
    assert lowered == [AutonomyChange("a", 0.8, "health below 60% in two reports")]
    busy = ReviewLoad(0.58, REVIEW.workers, REVIEW.mean_service_s)
    (held,), new_state = load_aware(ctx(report, review=busy), state)
    assert held.agent == "a" and held.new == 0.85 and "held: review desk at 58%, 61% projected (cap 60%)" in held.reason
    assert new_state == rules(ctx(report, review=busy), state)[1]
    # no measured window yet (or a down agent): the load that autonomy alone offers still counts, 3 agents x
    # rate x (1 - 0.85) x 1.70 s / 3: at 1.2/s 30.6% (+3.4 for the lowering: goes through), at 2.2/s 56.1%
    # (+6.2: held)
    unknown = ReviewLoad(float("nan"), REVIEW.workers, REVIEW.mean_service_s)
    assert load_aware(ctx(report, review=unknown), state)[0][0].new == 0.8
    assert load_aware(ctx(report, review=unknown, rate=2.2), state)[0][0].new == 0.85
    assert load_aware(ctx(report, review=None), state) == rules(ctx(report), state)  # no reviewer: the source rule


def test_the_orchestrator_runs_the_configured_rule_and_logs_held_changes(mh_scenario):
    profiles = {a.id: a for a in mh_scenario.agents}
    report = {"results": [], "recommendations": [], "autonomy_changes": [], "in_flight": [],
              "health": {"market-hunter": 0.4}, "review_utilization": 0.59,
              "rows": {"market-hunter": {"arrival_rate_per_s": 1.2, "error_rate": 0.0}}}
    for name, expected in (("rules", ["autonomy.agent"]), ("fixed", []), ("load_aware", ["autonomy.held"])):
        orch = Orchestrator(OrchestratorConfig(policy=name), profiles, dict(mh_scenario.models), 60.0)
        orch.receive_report(300.0, report)
        changes, events = orch.receive_report(600.0, report)
        assert [e["event"] for e in events if e["event"].startswith("autonomy.")] == expected, name
        assert [c.change.new for c in changes] == ([0.8] if name == "rules" else []), name
        assert orch.autonomy["market-hunter"] == (0.8 if name == "rules" else 0.85)


def halve_everyone(ctx, state):
    """A plug-in rule (tests/test_autonomy.py:halve_everyone): halves every agent's autonomy, once."""
    if state.get("done"):
        return [], state
    return [AutonomyChange(a, x / 2, "plug-in") for a, x in sorted(ctx.autonomy.items())], {"done": True}


def test_a_plug_in_rule_by_import_path(mh_scenario):
    profiles = {a.id: a for a in mh_scenario.agents}
    orch = Orchestrator(OrchestratorConfig(policy="test_autonomy:halve_everyone"), profiles,
                        dict(mh_scenario.models), 60.0)
    report = {"results": [], "recommendations": [], "autonomy_changes": [], "in_flight": [], "health": {}}
    changes, _ = orch.receive_report(300.0, report)
    assert {c.change.agent: c.change.new for c in changes} == {a: p.autonomy / 2 for a, p in profiles.items()}
    assert orch.receive_report(600.0, report)[0] == []
    with pytest.raises(InputError, match="orchestrator.policy: expected an autonomy rule"):
        Orchestrator(OrchestratorConfig(policy="swarmopt.autonomy:ReviewLoad"), profiles, dict(mh_scenario.models),
                     60.0)
    assert set(AUTONOMY_POLICIES) == {"rules", "fixed", "load_aware"}


def test_a_frozen_orchestrator_changes_no_autonomy(mh_scenario):
    """The ground truth's arms freeze the Orchestrator (swarmopt.loadtest.truth): the same reports that lower
    the Market Hunter's autonomy under the rules lower nothing from the freeze on."""
    profiles = {a.id: a for a in mh_scenario.agents}
    report = {"results": [], "recommendations": [], "autonomy_changes": [], "in_flight": [],
              "health": {"market-hunter": 0.4}, "rows": {}}
    orch = Orchestrator(OrchestratorConfig(policy="rules"), profiles, dict(mh_scenario.models), 60.0)
    orch.freeze(600.0)
    orch.receive_report(300.0, report)
    changes, events = orch.receive_report(600.0, report)
    assert changes == [] and not [e for e in events if e["event"].startswith("autonomy.")]
    assert orch.autonomy["market-hunter"] == 0.85
