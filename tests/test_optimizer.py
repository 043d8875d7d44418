"""The optimizer's pure decisions: priority, measurement, keep/rollback, autonomy, approval."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt.knobs import KnobChange, ScheduledChange
from swarmopt.optimizer.core import Optimizer, Proposal, Trial
from swarmopt.optimizer.measure import guardrails, measure
from swarmopt.optimizer.strategies import RT, Strategy, priority_key
from swarmopt.orchestrator import Orchestrator
from swarmopt.policies import RulePolicy
from swarmopt.runtime.group import agent_seeds
from swarmopt.sim.agent import AgentSim
from swarmopt.sim.environment import Environment

from conftest import MH_SCENARIO
from swarmopt.loader import load_scenario

SC = load_scenario(MH_SCENARIO)
PROFILES = {a.id: a for a in SC.agents}


def strategy(sid="s", priority="high", expected=10.0, impl=120.0, actions=(), risk=0.3, kind="raise_cache_ttl",
             metric="response_time_ms_mean", better="lower") -> Strategy:
    return Strategy(id=sid, type="agent_response_time", kind=kind, priority=priority, target_component="market-hunter",
                    description="", expected_improvement=expected, implementation_time_s=impl, actions=tuple(actions),
                    success_metrics=(), rollback_plan="", risk=risk, target_metric=metric, better=better)


def test_priority_order_severity_then_improvement_then_time():
    ss = [strategy("low", "low", 99), strategy("hi20slow", "high", 20, 300), strategy("crit", "critical", 5),
          strategy("hi50", "high", 50), strategy("hi20fast", "high", 20, 120), strategy("med", "medium", 80)]
    assert [s.id for s in sorted(ss, key=priority_key)] == ["crit", "hi50", "hi20fast", "hi20slow", "med", "low"]


def rows(values, metric="response_time_ms_mean", start=0.0, n=100, **other):
    out = []
    for i, v in enumerate(values):
        r = {"agent": "market-hunter", "t_start_s": start + 60 * i, "t_end_s": start + 60 * (i + 1),
             "decision_count": n, "success_rate": 0.8, "error_rate": 0.05, "cost_per_decision_usd": 0.01,
             "response_time_ms_mean": 1500.0, "response_time_ms_p95": 3000.0, "coordination_score": 0.8,
             "arrival_rate_per_s": 1.0, "service_time_ms_mean": 1000.0, "queue_wait_ms_mean": 0.0, "cpu_percent": 30.0,
             "memory_percent": 30.0, "inbox_in_time_rate": 1.0, "cache_hit_rate": 0.5, "escalation_rate": 0.1}
        r.update(other)
        r[metric] = v
        out.append(r)
    return out


def test_improvement_is_the_relative_change_of_window_means():
    before, after = [2800, 2700, 2900, 2750, 2850], [2000, 2100, 1900, 2050, 1950]
    m = measure(rows(before), rows(after), "response_time_ms_mean", "lower")
    assert m.improvement_pct == pytest.approx((np.mean(before) - np.mean(after)) / np.mean(before) * 100)
    assert m.ci_low_pct < m.improvement_pct < m.ci_high_pct and m.ci_low_pct > 0
    assert m.verdict == "pass" and m.p_value < 0.05


def test_measure_verdicts():
    b = rows([100, 104, 96, 101, 99])
    assert measure(b, rows([101, 97, 103, 99, 100]), "response_time_ms_mean", "lower").verdict == "marginal"
    assert measure(b, rows([150, 160, 155, 149, 158]), "response_time_ms_mean", "lower").verdict == "fail"
    assert measure(b, rows([50]), "response_time_ms_mean", "lower").verdict == "inconclusive"
    assert measure([], [], "response_time_ms_mean", "lower").verdict == "inconclusive"
    up = measure(rows([0.6] * 3 + [0.62, 0.58], "success_rate"), rows([0.7, 0.72, 0.69, 0.71, 0.7], "success_rate"),
                 "success_rate", "higher")
    assert up.verdict == "pass" and up.improvement_pct > 0


def test_guardrails_catch_side_effects_but_not_the_target():
    b, a = rows([1.0] * 5, success_rate=0.8), rows([1.0] * 5, success_rate=0.7, cost_per_decision_usd=0.02)
    br = guardrails(b, a, "response_time_ms_mean", 0.03, 0.03, 0.5)
    assert len(br) == 2 and "success rate" in br[0] and "cost" in br[1]
    assert guardrails(b, a, "success_rate", 0.03, 0.03, 1.5) == []


def make_optimizer(**cfg) -> Optimizer:
    conf = SC.optimizer.model_copy(update=cfg)
    return Optimizer(conf, PROFILES, 60.0, RulePolicy(), np.random.default_rng(0))


def run_trial(opt: Optimizer, t_eff: float, after_values, kind="scale_concurrency"):
    """Put a trial in flight whose before windows are 2800 ms and after windows ``after_values``."""
    ch = KnobChange("market-hunter", "max_concurrency", 4, 8)
    s = strategy(f"s{t_eff}", actions=[ch], kind=kind)
    opt.in_flight["market-hunter"] = Trial(s, t_eff, t_eff + 300)
    opt.observe(rows([2800, 2700, 2900, 2750, 2850], start=t_eff - 300) + rows(after_values, start=t_eff), [])
    return opt.cycle(t_eff + 300)


def test_kept_change_raises_autonomy_but_never_above_095():
    opt = make_optimizer()
    seen = []
    for i in range(12):
        run_trial(opt, 12_000 + 1200 * i, [2000, 2100, 1900, 2050, 1950])
        seen.append(opt.autonomy)
    assert seen[0] == pytest.approx(0.825) and max(seen) == pytest.approx(0.95) and all(a <= 0.95 for a in seen)


def test_rollback_lowers_autonomy_never_below_080_and_restores_old_values():
    opt = make_optimizer(initial_autonomy=0.9)
    _, rollbacks, events = run_trial(opt, 12_000, [2810, 2790, 2800, 2805, 2795])
    assert opt.autonomy == pytest.approx(0.85)
    assert [(c.change.knob, c.change.new) for c in rollbacks] == [("max_concurrency", 4)]
    assert rollbacks[0].at_s == 12_000 + 300 + 60 and rollbacks[0].ref.startswith("rollback:")
    assert any(e["event"] == "optimization.rolled_back" for e in events)
    assert opt.knobs["market-hunter"].max_concurrency == 4
    for i in range(5):
        opt.in_flight.clear()
        run_trial(opt, 24_000 + 1200 * i, [2810, 2790, 2800, 2805, 2795])
    assert opt.autonomy == pytest.approx(0.80)


def test_guardrail_breach_rolls_back_a_change_that_met_its_target():
    opt = make_optimizer()
    ch = KnobChange("market-hunter", "max_concurrency", 4, 8)
    opt.in_flight["market-hunter"] = Trial(strategy("g", actions=[ch]), 12_000, 12_300)
    opt.observe(rows([2800] * 5, start=11_700, success_rate=0.8) + rows([2000, 2100, 1900, 2050, 1950], start=12_000,
                                                                         success_rate=0.6), [])
    _, rollbacks, events = opt.cycle(12_300)
    assert rollbacks and "guardrail" in next(e for e in events if e["event"] == "optimization.rolled_back")["detail"]


def test_engine_rollback_restores_exact_knobs():
    seeds, _ = agent_seeds(0, 1)
    p = PROFILES["market-hunter"]
    sim = AgentSim(p, SC.models, Environment(SC.load, [], 600), seeds[0], 60.0)
    original = sim.knobs
    s = strategy(actions=[KnobChange(p.id, "cache_ttl_s.data_source", 60.0, 240.0),
                          KnobChange(p.id, "max_concurrency", 4, 8), KnobChange(p.id, "model_tier", "standard", "fast")])
    sim.step(0, 60, [], [ScheduledChange(60.0, c, s.id) for c in s.actions])
    sim.step(60, 120, [], [ScheduledChange(120.0, c, "rb") for c in s.rollback()])
    assert sim.knobs != original
    sim.step(120, 180, [], [])
    assert sim.knobs == original and len(sim.workers) == 4


def test_risky_strategy_needs_approval_and_rejected_one_is_not_scheduled():
    opt = make_optimizer()
    up = strategy("up", actions=[KnobChange("market-hunter", "model_tier", "standard", "strong")], risk=0.9,
                  kind="stronger_model_tier")
    down = strategy("down", actions=[KnobChange("narrative-architect", "model_tier", "standard", "fast")], risk=0.9,
                    kind="faster_model_tier")
    safe = strategy("safe", actions=[KnobChange("execution-agent", "max_concurrency", 3, 6)], risk=0.5)
    props = [Proposal(s, s.risk > opt.autonomy) for s in (up, down, safe)]
    assert [p.needs_approval for p in props] == [True, True, False]
    orch = Orchestrator(SC.orchestrator, PROFILES, dict(SC.models), 60.0)
    decisions, events = orch.review(600.0, props)
    assert decisions == {"up": False, "down": True}  # strong tier costs ~5x per decision, limit is +100%
    assert "cost per decision would rise" in next(e for e in events if e["strategy_id"] == "up")["detail"]
    opt.proposals = props
    changes, _ = opt.commit(600.0, decisions)
    assert {c.ref for c in changes} == {"down", "safe"}
    assert all(c.at_s == 720.0 for c in changes)  # 600 + 120 s implementation, on a window boundary


def test_orchestrator_raises_autonomy_after_kept_change_and_lowers_for_poor_health():
    orch = Orchestrator(SC.orchestrator, PROFILES, dict(SC.models), 60.0)
    rep = {"results": [{"agent": "market-hunter", "kept": True, "kind": "k"}], "recommendations": [],
           "health": {"market-hunter": 0.8, "execution-agent": 0.5}, "in_flight": []}
    changes, _ = orch.receive_report(300.0, rep)
    assert [(c.change.agent, c.change.old, c.change.new) for c in changes] == [("market-hunter", 0.85, 0.9)]
    changes, _ = orch.receive_report(600.0, dict(rep, results=[]))
    assert [(c.change.agent, c.change.new) for c in changes] == [("execution-agent", 0.75)]
    for _ in range(20):
        orch.receive_report(900.0, dict(rep, results=[]))
    assert orch.autonomy["execution-agent"] == pytest.approx(SC.orchestrator.min_agent_autonomy)


def test_remedies_are_bounded_steps():
    snap = {"queue_wait_ms_mean": 900.0, "response_time_ms_mean": 2800.0, "cpu_percent": 95.0}
    k = PROFILES["market-hunter"].knobs.model_copy(update={"max_concurrency": 200})
    (ch,) = RT[0].propose(snap, k, PROFILES["market-hunter"])
    assert (ch.old, ch.new) == (200, 256)
