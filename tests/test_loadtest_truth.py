"""Ground truth of judged changes.

The first tests judge changes whose effect is known by construction, on arms
run with the engine (the same scenario and seed, so common random numbers):
halving the workers of a saturated agent hurts; changing a knob nothing reads
(the open duration of a disabled circuit breaker) has no effect. The last
tests drive the whole procedure — fork at the decision, run it both ways —
with ``swarmopt.Simulation`` and skip where this build has none.
"""

from __future__ import annotations

import math

import pytest

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange, get_knob, set_knob
from swarmopt.loadtest.spec import DEFAULT_SLO
from swarmopt.loadtest.truth import classify, label, run_with_truth, simulation_class, true_effect
from swarmopt.optimizer.strategies import remedy

from conftest import short

HUNTER = "market-hunter"
needs_simulation = pytest.mark.skipif(simulation_class() is None, reason="swarmopt.Simulation is not in this build")


def _with_knob(sc, agent: str, knob: str, value):
    agents = [a.model_copy(update={"knobs": set_knob(a.knobs, knob, value)}) if a.id == agent else a
              for a in sc.agents]
    return sc.model_validate(sc.model_dump() | {"agents": [a.model_dump() for a in agents]})


@pytest.fixture(scope="module")
def degraded(mh_scenario):
    """The worked example for 50 minutes, monitor only: the Market Hunter is saturated after minute 30
    (4x slower data source, 40% more load on 4 workers)."""
    return short(mh_scenario, 3000, optimizer=mh_scenario.optimizer.model_dump() | {"policy": "monitor"})


def test_halving_the_workers_of_a_saturated_agent_is_labelled_harmful(degraded):
    kept = run_scenario(_with_knob(degraded, HUNTER, "max_concurrency", 2), seed=3, runtime="local").metrics
    undone = run_scenario(degraded, seed=3, runtime="local").metrics
    eff = true_effect(kept, undone, [HUNTER], "response_time_ms_mean", "lower", (2400.0, 2700.0), 2100.0,
                      DEFAULT_SLO)
    # with 2 workers the queue grows without bound: mean response time 100x worse; the SLO is lost in
    # both arms (the fault alone breaks it at 4 workers), so the target metric decides
    assert eff["target_effect_pct"] < -1000
    assert eff["slo_undone"] == eff["slo_kept"] == 0.0
    truth = classify(eff["slo_effect_points"], eff["target_effect_pct"])
    assert truth == "hurt"
    assert label("keep", truth) == "false keep" and label("rollback", truth) == "correct rollback"


def test_a_change_nothing_reads_is_labelled_no_effect(degraded):
    assert not degraded.agents[1].knobs.circuit_breaker.enabled
    kept = run_scenario(_with_knob(degraded, HUNTER, "circuit_breaker.open_duration_s", 120.0), seed=3,
                        runtime="local").metrics
    undone = run_scenario(degraded, seed=3, runtime="local").metrics
    eff = true_effect(kept, undone, [HUNTER], "error_rate", "lower", (2400.0, 2700.0), 2100.0, DEFAULT_SLO)
    assert eff["target_effect_pct"] == 0.0 and eff["slo_effect_points"] == 0.0  # same draws, same outcome
    truth = classify(eff["slo_effect_points"], eff["target_effect_pct"])
    assert truth == "no effect"
    assert label("keep", truth) == "false keep" and label("revert", truth) == "correct revert"


def test_the_replayed_cost_per_decision_stands_beside_the_label(degraded):
    """A stronger model tier on every decision: the replay reports keeping it as dearer per decision (the strong
    tier's tokens cost more), which is what a cost guardrail's rollback is about; the label counts the SLO and the
    target only."""
    kept = run_scenario(_with_knob(degraded, HUNTER, "model_tier", "strong"), seed=3, runtime="local").metrics
    undone = run_scenario(degraded, seed=3, runtime="local").metrics
    eff = true_effect(kept, undone, [HUNTER], "response_time_ms_mean", "lower", (2400.0, 2700.0), 2100.0,
                      DEFAULT_SLO)
    assert eff["cost_kept"] > eff["cost_undone"] > 0
    assert eff["cost_effect_pct"] == pytest.approx(-100.0 * (eff["cost_kept"] / eff["cost_undone"] - 1.0))
    assert eff["cost_effect_pct"] < -20


def test_classify_thresholds_are_options():
    assert classify(2.5, 0.0) == "helped" and classify(-2.5, 50.0) == "hurt"
    assert classify(1.0, 3.0) == "helped" and classify(1.0, -3.0) == "hurt" and classify(1.0, 1.0) == "no effect"
    assert classify(2.5, 0.0, helped_slo_points=5.0) == "no effect"
    assert classify(1.0, 3.0, helped_target_pct=5.0) == "no effect"
    assert label("rollback", "helped") == "false rollback" and label("keep", "helped") == "correct keep"


class OneChange:
    """A policy with its own plug-in remedy: it answers the Market Hunter's first response-time bottleneck with
    one given change (``old`` -> ``new``; so the change is judged on the response time), then does nothing."""

    def __init__(self, kind: str, knob: str, old, new) -> None:
        self.kind, self.done = kind, False

        @remedy(risk=0.1, implementation_time_s=60.0, answers=["agent_response_time"], name=kind)
        def propose(snapshot, knobs, profile):
            """The one change."""
            if profile.id != HUNTER or get_knob(knobs, knob) != old:
                return None
            return [KnobChange(HUNTER, knob, old, new)]

        self.remedy = propose

    def choose(self, ctx, rng):
        mine = [o for o in ctx.options if o[0].name == self.kind]
        if self.done or ctx.agent != HUNTER or not mine:
            return None
        self.done = True
        return mine[0]

    def learn(self, strategy, kept: bool) -> None:
        """It does not learn."""


def _judged_scenario(degraded):
    """The degraded scenario for 70 minutes with the optimizer on and no proactive change, so the Market
    Hunter's knobs are the profile's until the policy's one change."""
    return short(degraded, 4200, optimizer=degraded.optimizer.model_dump() | {"policy": "rules", "proactive": False})


@needs_simulation
def test_ground_truth_of_a_judged_harmful_change(degraded):
    sc = _judged_scenario(degraded)
    assert sc.agents[1].id == HUNTER and sc.agents[1].knobs.max_concurrency == 4
    one = OneChange("halve_workers", "max_concurrency", 4, 2)
    res, rows = run_with_truth(sc, 3, DEFAULT_SLO, policy=one, remedies=[one.remedy])
    assert len(rows) == 1
    row = rows[0]
    assert row["kind"] == "halve_workers" and row["agent"] == HUNTER and row["type"] == "agent_response_time"
    assert row["knob"] == "max_concurrency"
    assert row["metric"] == "response_time_ms_mean" and row["target_effect_pct"] < -100
    assert row["truth"] == "hurt"
    assert row["label"] == ("false keep" if row["decision"] == "keep" else f"correct {row['decision']}")
    assert (res.events["event"] == "optimization.scheduled").sum() == 1
    assert row["replicas"] == 1 and row["truth_agreement"] == 1.0 and math.isnan(row["slo_effect_points_sd"])


@needs_simulation
def test_replicated_ground_truth_of_a_judged_harmful_change(degraded):
    """Three pairs of arms, the run's own continuation and two reseeded ones: every one finds the halving
    harmful, the target effect is their mean, and the first pair is the one-replica truth."""
    sc = _judged_scenario(degraded)
    rows = {}
    for k in (1, 3):
        one = OneChange("halve_workers", "max_concurrency", 4, 2)
        _, rows[k] = run_with_truth(sc, 3, DEFAULT_SLO, policy=one, remedies=[one.remedy], replicas=k)
    row, single = rows[3][0], rows[1][0]
    assert row["replicas"] == 3 and row["truth"] == "hurt" and row["truth_agreement"] == 1.0
    assert row["target_effect_pct"] < -100 and row["target_effect_pct"] != single["target_effect_pct"]
    assert row["slo_effect_points_sd"] >= 0.0
    assert row["decision"] == single["decision"] and row["horizon_start_s"] == single["horizon_start_s"]


@needs_simulation
def test_ground_truth_of_a_judged_no_op_change(degraded):
    sc = _judged_scenario(degraded)
    breaker = sc.agents[1].knobs.circuit_breaker
    assert not breaker.enabled
    one = OneChange("breaker_wait", "circuit_breaker.open_duration_s", breaker.open_duration_s, 120.0)
    _, rows = run_with_truth(sc, 3, DEFAULT_SLO, policy=one, remedies=[one.remedy])
    assert len(rows) == 1
    assert rows[0]["truth"] == "no effect"
    # the change is marginal, measured on twice, so its horizon (the judge's after-span, 3,360-4,200 s) runs to
    # the end; the arms share their streams but not every later draw, so the no-op's target effect is noise
    # (measured -1.1%), inside the no-effect band of helped_target_pct (2%)
    assert rows[0]["slo_effect_points"] == 0.0 and abs(rows[0]["target_effect_pct"]) < 2.0


@needs_simulation
def test_a_bundle_is_one_decision_that_names_every_knob_it_changed(mh_scenario):
    """Seed 1 of the worked example: parallel tool calls bundled with a circuit breaker, judged and kept as one
    change, and its ground truth replays both knobs together."""
    _, rows = run_with_truth(short(mh_scenario, 3000), 1, DEFAULT_SLO)
    first = rows[0]
    assert first["kind"] == "enable_parallel_tools" and first["knob"] == "parallel_tools;circuit_breaker.enabled"
    assert first["label"] == "correct keep"


@needs_simulation
def test_ground_truth_leaves_the_run_as_run_scenario_makes_it(mh_scenario):
    sc = short(mh_scenario, 3600)
    res, rows = run_with_truth(sc, 2, DEFAULT_SLO)
    plain = run_scenario(sc, seed=2, runtime="local")
    assert res.metrics.equals(plain.metrics) and res.events.equals(plain.events)
    judged = plain.events["event"].isin(["optimization.kept", "optimization.rolled_back", "optimization.reverted"])
    late = plain.events["t_s"] + sc.optimizer.rollback_time_s >= sc.duration_s
    assert len(rows) == int((judged & ~late).sum())


@needs_simulation
def test_a_fork_with_frozen_autonomy_changes_no_agent_autonomy(mh_scenario):
    """What the ground truth's arms rely on: from the freeze on the Orchestrator moves no agent's autonomy,
    where the run it was forked from does."""
    sim = simulation_class()(mh_scenario, 3, runtime="local")  # the rules raise the Hunter's autonomy at 3,900 s
    sim.run(until=3000.0)
    frozen = sim.fork()
    frozen.freeze_autonomy()
    for s in (sim, frozen):
        s.run()
    moved = [(s.events["event"] == "autonomy.agent") & (s.events["t_s"] >= 3000.0) for s in (sim, frozen)]
    assert moved[0].sum() > 0 and moved[1].sum() == 0
