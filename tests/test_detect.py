"""Each detection rule of the source design, on hand-made snapshots."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt.loader import load_scenario
from swarmopt.metrics import system_score
from swarmopt.optimizer.detect import detect, snapshot
from swarmopt.schema import Thresholds

from conftest import MH_SCENARIO

PROFILES = {a.id: a for a in load_scenario(MH_SCENARIO).agents}
TH = Thresholds()


def healthy(**over) -> dict:
    s = {"decision_count": 300.0, "success_rate": 0.85, "response_time_ms_mean": 1200.0, "response_time_ms_p95": 2500.0,
         "queue_wait_ms_mean": 10.0, "service_time_ms_mean": 1000.0, "coordination_score": 0.85, "error_rate": 0.02,
         "cost_per_decision_usd": 0.01, "cpu_percent": 40.0, "memory_percent": 30.0, "inbox_in_time_rate": 1.0,
         "cache_hit_rate": 0.5, "arrival_rate_per_s": 1.0, "escalation_rate": 0.1}
    s.update(over)
    return s


def found(**over):
    return {(b.type, b.severity): b for b in detect({"market-hunter": healthy(**over)}, PROFILES, TH)}


def test_healthy_agent_has_no_bottleneck():
    assert found() == {}


def test_response_time_over_2000ms_is_high_with_source_impact():
    b = found(response_time_ms_mean=2800.0)[("agent_response_time", "high")]
    assert b.impact == pytest.approx(40.0)  # source: 2800 ms -> "Impact: 40.0%"
    assert "2800ms (target: 2000ms)" in b.description


@pytest.mark.parametrize("rate,severity", [(0.69, "medium"), (0.62, "medium"), (0.49, "critical")])
def test_success_rate_thresholds(rate, severity):
    b = found(success_rate=rate)[("agent_success_rate", severity)]
    assert b.impact == pytest.approx((0.70 - rate) * 100)


def test_success_rate_at_threshold_is_not_a_bottleneck():
    assert not any(t == "agent_success_rate" for t, _ in found(success_rate=0.70))


def test_coordination_under_60_is_medium_with_source_impact():
    assert found(coordination_score=0.54)[("coordination_efficiency", "medium")].impact == pytest.approx(6.0)


@pytest.mark.parametrize("rate,severity", [(0.15, "medium"), (0.30, "high")])
def test_error_rate_rule(rate, severity):
    assert ("agent_error_rate", severity) in found(error_rate=rate)


def test_cost_rule_uses_profile_budget():
    budget = PROFILES["market-hunter"].cost_budget_usd_per_decision * TH.cost_budget_factor
    assert ("cost", "medium") in found(cost_per_decision_usd=budget * 1.2)
    assert ("cost", "medium") not in found(cost_per_decision_usd=budget * 0.9)


def test_resource_spikes():
    assert ("resource_cpu", "high") in found(cpu_percent=85.0)
    assert ("resource_memory", "high") in found(memory_percent=90.0)


@pytest.mark.parametrize("success,coord,severity", [(0.55, 0.55, "high"), (0.30, 0.30, "critical")])
def test_system_score(success, coord, severity):
    # health = mean(min(1, 2000/rt), success, coordination): (1 + 0.55 + 0.55)/3 = 0.70 < 0.75 -> high;
    # (1 + 0.3 + 0.3)/3 = 0.53 < 0.60 -> critical
    assert ("system_performance", severity) in found(success_rate=success, coordination_score=coord)


def test_system_score_of_many_agents_is_metrics_system_score_to_the_bit():
    # detection computes the score for all agents at once; it must be the same float as the per-row definition,
    # NaN parts (no response time, no coordination data) and agents under the traffic guard included
    rng = np.random.default_rng(5)
    snaps = {}
    for i in range(60):
        s = healthy(decision_count=float(rng.integers(0, 400)), success_rate=float(rng.uniform(0.0, 0.6)),
                    response_time_ms_mean=float(rng.choice([np.nan, 0.0, rng.uniform(100, 5000)])),
                    coordination_score=float(rng.choice([np.nan, rng.uniform(0, 1)])))
        snaps[f"agent-{i}"] = s
    profiles = dict.fromkeys(snaps, PROFILES["market-hunter"])
    (b,) = [b for b in detect(snaps, profiles, TH) if b.type == "system_performance"]
    kept = [s for s in snaps.values() if s["decision_count"] >= TH.min_decisions]
    assert b.value == system_score(kept, TH.response_time_ms)


def test_minimum_traffic_guard():
    # also keeps the agent out of the system score
    assert found(decision_count=5.0, success_rate=0.2) == {}


def test_snapshot_averages_windows_and_sums_decisions():
    rows = [healthy(decision_count=10.0, success_rate=0.5), healthy(decision_count=30.0, success_rate=0.7)]
    s = snapshot(rows)
    assert s["decision_count"] == 40 and s["success_rate"] == pytest.approx(0.6) and s["windows"] == 2
