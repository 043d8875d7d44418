"""The two-way protocol: the Orchestrator's commands change what the optimizer does, the optimizer's
recommendations change what the Orchestrator does, and the run's impact summary."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from swarmopt import run_scenario
from swarmopt.impact import impact_summary
from swarmopt.loader import load_scenario
from swarmopt.orchestrator import Orchestrator
from swarmopt.protocol import RESOURCE_ADDING, Advice, Grant, Mode, advise
from swarmopt.schema import AggressivenessCommand, FocusCommand, OptimizerConfig, ReduceResourcesCommand, Thresholds

from conftest import ROOT, assert_same, short

LIBRARY = ROOT / "scenarios" / "library"
NA, MA, MH = "narrative-architect", "market-analyzer", "market-hunter"


def _commands(sc, commands: list[dict], act: bool = False):
    return short(sc, sc.duration_s, orchestrator=sc.orchestrator.model_dump() | {"commands": commands,
                                                                                 "act_on_recommendations": act})


def _rules(sc, duration_s: float):
    """``sc`` cut to ``duration_s`` under the source's fixed rules (whose first choices these tests name)."""
    return short(sc, duration_s, optimizer=sc.optimizer.model_dump() | {"policy": "rules"})


def _scheduled(ev: pd.DataFrame, agent: str) -> pd.DataFrame:
    return ev[(ev["event"] == "optimization.scheduled") & (ev["agent"] == agent)]


def test_aggressiveness_scales_the_optimizers_bands_and_steps():
    base = OptimizerConfig()
    bold, _ = Mode().apply(AggressivenessCommand(kind="aggressiveness", at_s=0, level=2.0), 0.0)
    cfg = bold.config(base, 0.0)
    assert (cfg.tolerance, cfg.margin, cfg.max_step_ratio) == (0.05, 0.3, 8.0)
    shy, _ = Mode().apply(AggressivenessCommand(kind="aggressiveness", at_s=0, level=0.5), 0.0)
    cfg = shy.config(base, 0.0)
    assert (cfg.tolerance, cfg.margin, cfg.max_step_ratio) == (0.2, 0.075, 2.0)
    assert Mode().config(base, 0.0) is base  # level 1: the configuration itself


def test_reduce_resources_tightens_cost_and_memory_bars_scale_ups_and_ends():
    mode, _ = Mode().apply(ReduceResourcesCommand(kind="reduce_resources", at_s=0, duration_s=600), 100.0)
    cfg = mode.config(OptimizerConfig(), 200.0)
    assert (cfg.thresholds.cost_budget_factor, cfg.thresholds.memory_percent) == (1.0, 70.0)
    assert mode.barred(200.0) == RESOURCE_ADDING and "scale_concurrency" in RESOURCE_ADDING
    later, ended = mode.expire(700.0)
    assert ended == ["resource reduction ended"] and later.barred(700.0) == frozenset()
    assert later.config(OptimizerConfig(), 700.0).thresholds == Thresholds()


def test_focus_defers_other_agents_until_it_ends():
    mode, what = Mode().apply(FocusCommand(kind="focus", at_s=0, agent=NA, duration_s=600), 0.0)
    assert "focus on narrative-architect" in what
    assert mode.deferral({NA}, 100.0) is None and "focus on narrative-architect" in mode.deferral({MH}, 100.0)
    assert mode.deferral({MH}, 600.0) is None  # over


@pytest.fixture(scope="module")
def command():
    return load_scenario(LIBRARY / "orchestrator_command.yaml")


def test_raising_aggressiveness_mid_run_makes_the_optimizer_act(command):
    """Seed 1: cautious (level 0.5), the optimizer only reports the Narrative Architect's response time as
    within its band; the command at 60 min raises the level to 2 and the optimizer acts in that cycle, and the
    judge keeps a change. Without the raise it acts later, only when a spike crosses its wide band, or not at all
    (seed 1: not at all, 15 cycles within the band); with no command at all it acts before 60 min."""
    ev = run_scenario(command, seed=1, runtime="local").events
    cmds = ev[ev["event"] == "orchestrator.command"]
    assert list(cmds["t_s"]) == [300.0, 3600.0] and list(cmds["value"]) == [0.5, 2.0]
    assert (ev["event"] == "optimizer.mode").sum() == 2
    first = _scheduled(ev, NA)["t_s"].min()
    assert first == 3600.0
    assert ((ev["event"] == "optimization.kept") & (ev["agent"] == NA)).any()
    held = ev[(ev["event"] == "bottleneck.within_tolerance") & (ev["agent"] == NA) & (ev["t_s"] < 3600)]
    assert len(held) >= 3
    cautious = run_scenario(_commands(command, [{"kind": "aggressiveness", "at_s": 0, "level": 0.5}], True), seed=1,
                            runtime="local").events
    late = _scheduled(cautious, NA)["t_s"]
    assert late.empty or late.min() > 3600.0
    plain = run_scenario(_commands(command, []), seed=1, runtime="local").events
    assert _scheduled(plain, NA)["t_s"].min() < 3600.0


def test_focus_on_another_agent_holds_the_optimizer_off_the_faulted_one(mh_scenario):
    """The worked example (the source's rules) with "Focus on agent narrative-architect" from 30 to 60 min: the
    Market Hunter's changes wait (deferred, naming the focus) and start once the focus ends."""
    sc = _commands(_rules(mh_scenario, 5400), [{"kind": "focus", "at_s": 1800, "agent": NA, "duration_s": 1800}])
    ev = run_scenario(sc, seed=1, runtime="local").events
    mh = _scheduled(ev, MH)
    assert mh["t_s"].min() == 3600.0
    deferred = ev[(ev["event"] == "strategy.deferred") & (ev["agent"] == MH)]
    assert deferred["detail"].str.contains("focus on narrative-architect").sum() >= 3
    assert (ev["event"] == "optimizer.mode").sum() == 2  # the focus, then its end


def test_reduce_resources_keeps_the_optimizer_from_adding_resources(mh_scenario):
    """The worked example (the source's rules) under "Reduce resource consumption": no worker scale-up,
    pre-scaling or routing (its first change without the command adds workers), and the optimizer still answers
    with other remedies."""
    sc = _rules(mh_scenario, 5400)
    plain = run_scenario(sc, seed=1, runtime="local").events
    assert _scheduled(plain, MH).iloc[0]["kind"] == "scale_concurrency"
    ev = run_scenario(_commands(sc, [{"kind": "reduce_resources", "at_s": 0, "duration_s": 5400}]), seed=1,
                      runtime="local").events
    kinds = set(ev.loc[ev["event"] == "optimization.scheduled", "kind"])
    assert kinds and not kinds & RESOURCE_ADDING


def test_advice_follows_the_sources_three_recommendations():
    th = Thresholds()
    snaps = {"a": {"decision_count": 100, "success_rate": 0.86, "cpu_percent": 85.0, "coordination_score": 0.9},
             "b": {"decision_count": 100, "success_rate": 0.6, "cpu_percent": 90.0, "coordination_score": 0.5},
             "c": {"decision_count": 100, "success_rate": 0.9, "cpu_percent": 20.0, "coordination_score": 0.55}}
    out = advise(snaps, {"a": 0.9, "b": 0.55, "c": 0.8}, th, 0.1)
    assert out == [Advice("reduce_autonomy", ("b",), "Reduce autonomy for b (poor performance)"),
                   Advice("increase_resources", ("a",), "Increase resources for a (high efficiency)"),
                   Advice("improve_coordination", ("b", "c"), "System-wide coordination needs improvement")]


def test_the_orchestrator_acts_on_advice_once_per_agent(mh_scenario):
    sc = _commands(mh_scenario, [], act=True)
    orch = Orchestrator(sc.orchestrator, {a.id: a for a in sc.agents}, dict(sc.models), 60.0)
    report = {"results": [{"agent": "execution-agent", "kind": "x", "kept": True}], "in_flight": ["market-analyzer"],
              "health": {MH: 0.5, NA: 0.8, MA: 0.9, "execution-agent": 0.9},
              "advice": [{"kind": "reduce_autonomy", "agents": [MH], "text": "Reduce autonomy for market-hunter"},
                         {"kind": "improve_coordination", "agents": [MH, NA, MA, "execution-agent"], "text": "c"},
                         {"kind": "increase_resources", "agents": [NA], "text": "Increase resources for it"}]}
    changes, events = orch.act_on_report(600.0, report)
    moved = {c.change.agent: (c.change.old, c.change.new) for c in changes}
    # the Market Hunter down one step (and not back up for coordination), the Narrative Architect up one step;
    # the analyzer is in flight and the execution agent's kept change is receive_report's to reward
    assert moved == {MH: (0.85, 0.8), NA: (0.85, 0.9)}
    assert [e["kind"] for e in events if e["event"] == "orchestrator.action"] == [
        "reduce_autonomy", "improve_coordination", "grant_resources"]
    cmds, cmd_events = orch.commands_due(900.0)
    assert cmds == [Grant(NA, 600.0)] and cmd_events[0]["kind"] == "grant_resources"
    assert orch.act_on_report(900.0, report)[1][-1]["event"] == "optimizer.recommendation"  # no second grant soon


def test_a_grant_answers_the_recommendation_and_the_judge_keeps_it():
    """resource_grant, seed 2: the analyzer is recommended more resources (high efficiency, workers near
    capacity) while the Orchestrator has barred scale-ups; it grants them, and the optimizer's answer, more
    workers, is kept (response time down by a quarter at least). (On seed 1 the optimizer has a longer cache TTL
    in flight when the recommendation comes, so no grant is made, and the TTL and then the faster tier cure it.)"""
    ev = run_scenario(load_scenario(LIBRARY / "resource_grant.yaml"), seed=2, runtime="local").events
    names = list(ev["event"])
    rec = names.index("optimizer.recommendation")
    assert ev.iloc[rec]["kind"] == "increase_resources" and ev.iloc[rec + 1]["kind"] == "grant_resources"
    grant = ev[(ev["event"] == "optimization.scheduled") & (ev["kind"] == "grant_workers")].iloc[0]
    assert grant["type"] == "resource_grant" and grant["agent"] == MA
    kept = ev[(ev["event"] == "optimization.kept") & (ev["strategy_id"] == grant["strategy_id"])]
    assert len(kept) == 1 and kept.iloc[0]["improvement_pct"] > 25
    assert not set(ev.loc[ev["event"] == "optimization.scheduled", "kind"]) & RESOURCE_ADDING


def test_protocol_runs_do_not_depend_on_the_tick():
    sc = short(load_scenario(LIBRARY / "resource_grant.yaml"), 4200)
    a, b = (run_scenario(short(sc, 4200, tick_s=t), seed=2, runtime="local") for t in (60.0, 300.0))
    assert_same(a.metrics, b.metrics)
    assert_same(a.events, b.events)


def test_impact_summary_is_the_sources_overall_impact():
    changes = pd.DataFrame({"type": ["agent_response_time", "agent_response_time", "cost_burn", "cost_burn"],
                            "status": ["kept", "reverted", "restored", "measuring"],
                            "improvement_pct": [30.0, 2.0, 10.0, math.nan]})
    s = impact_summary(changes)
    assert (s["total_optimizations"], s["successful_optimizations"]) == (3, 2)
    assert s["success_rate"] == pytest.approx(2 / 3) and s["overall_improvement_pct"] == pytest.approx(14.0)
    assert s["kept_improvement_pct"] == pytest.approx(20.0)
    assert s["category_improvements"]["agent_response_time"] == {"changes": 2, "successful": 1,
                                                                 "mean_improvement_pct": 16.0}
    empty = impact_summary(changes.iloc[:0])
    assert empty["total_optimizations"] == 0 and math.isnan(empty["success_rate"])


def test_run_summary_carries_the_impact(command):
    res = run_scenario(command, seed=1, runtime="local")
    s, ch = res.summary["impact"], res.changes
    judged = ch[ch["status"] != "measuring"]
    assert s["total_optimizations"] == len(judged) > 0
    assert s["overall_improvement_pct"] == pytest.approx(judged["improvement_pct"].mean())


@pytest.mark.ray
@pytest.mark.slow  # about 30 s: seven actors started for one short run
def test_ray_runs_the_protocol_as_local_does(ray_session, command):
    sc = short(command, 3900, tick_s=300.0)  # both commands, a change in flight and the Orchestrator's actions
    on_ray, local = (run_scenario(sc, seed=1, runtime=r) for r in ("ray", "local"))
    assert_same(on_ray.metrics, local.metrics)
    assert_same(on_ray.events, local.events)
    assert (local.events["event"] == "orchestrator.command").sum() == 2
