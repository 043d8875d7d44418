"""Alerting without noise: multiwindow detection, the minimum-traffic guard, level-shift anomalies."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt import run_scenario
from swarmopt.loader import load_scenario
from swarmopt.optimizer.core import Optimizer
from swarmopt.optimizer.detect import detect, level_shifts, short_span, window_vectors
from swarmopt.policies import RulePolicy
from swarmopt.schema import Thresholds

from conftest import MH_SCENARIO, short

SC = load_scenario(MH_SCENARIO)
PROFILES = {a.id: a for a in SC.agents}
AGENT = "market-hunter"


def window(i: int, rt: float = 1200.0, n: int = 60, **over) -> dict:
    r = {"agent": AGENT, "t_start_s": 60.0 * i, "t_end_s": 60.0 * (i + 1), "decision_count": n, "success_rate": 0.85,
         "error_rate": 0.02, "cost_per_decision_usd": 0.01, "response_time_ms_mean": rt, "response_time_ms_p95": 2 * rt,
         "coordination_score": 0.85, "arrival_rate_per_s": n / 60, "service_time_ms_mean": 900.0,
         "queue_wait_ms_mean": 10.0, "cpu_percent": 40.0, "memory_percent": 30.0, "inbox_in_time_rate": 1.0,
         "cache_hit_rate": 0.5, "escalation_rate": 0.1}
    r.update(over)
    return r


def bottlenecks(rts: list[float]) -> set[tuple[str, str]]:
    """Bottleneck (type, severity) of the market hunter after windows with these mean response times."""
    opt = Optimizer(SC.optimizer.model_copy(update={"policy": "monitor"}), PROFILES, 60.0, RulePolicy(),
                    np.random.default_rng(0))
    opt.observe([window(i, rt) for i, rt in enumerate(rts)], [])
    opt.cycle(60.0 * len(rts))
    return {(b.type, b.severity) for b in opt.bottlenecks}


def test_sustained_breach_is_detected_on_both_windows():
    assert bottlenecks([2800.0] * 12) == {("agent_response_time", "high")}


def test_a_one_window_spike_is_not_confirmed_by_the_long_window():
    # the cycle's 5-window mean is (4 x 1200 + 6000) / 5 = 2160 ms > 2000 ms, so single-span detection fires;
    # the 12-window mean (1600 ms) does not breach
    assert bottlenecks([1200.0] * 11 + [6000.0]) == set()


def test_a_recovered_agent_stops_alerting_at_once():
    # the long window still breaches (2850 ms), the short one (the last minute) has recovered
    assert bottlenecks([3000.0] * 11 + [1200.0]) == set()


def test_short_span_is_a_twelfth_of_the_long_extended_to_the_minimum_traffic():
    assert short_span(np.full(12, 72.0), 20) == 1  # busy: the last window alone
    quiet = np.full(12, 3.0)
    n = short_span(quiet, 20)
    assert n == 7 and quiet[-n:].sum() >= 20 > quiet[-n + 1:].sum()
    assert short_span(np.full(12, 1.0), 20) == 12  # never beyond the long span


def test_one_failure_in_three_requests_raises_no_bottleneck():
    # three slow requests, one failed: every rule would fire on the rates, and the system score (health 0.52 < 0.60)
    # would be critical, but three requests are no evidence
    snap = {"decision_count": 3.0, "success_rate": 2 / 3, "error_rate": 1 / 3, "response_time_ms_mean": 5000.0,
            "coordination_score": 0.5, "cost_per_decision_usd": 0.01, "cpu_percent": 10.0, "memory_percent": 30.0}
    assert detect({AGENT: snap}, PROFILES, Thresholds()) == []


def test_level_shift_statistic_ignores_noise_and_finds_a_shift():
    rng = np.random.default_rng(7)
    noise = [window(i, rt=1000.0 * rng.lognormal(0, 0.13)) for i in range(65)]
    assert level_shifts(AGENT, window_vectors(noise), 5, 5.0, 0.1) == []
    shifted = noise[:60] + [window(60 + i, rt=1400.0 * rng.lognormal(0, 0.13)) for i in range(5)]
    (a,) = level_shifts(AGENT, window_vectors(shifted), 5, 5.0, 0.1)
    assert a.metric == "response_time_ms_mean" and a.z > 5 and a.shift_pct == pytest.approx(40, abs=12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_latency_level_shift_under_the_threshold_raises_an_anomaly(seed):
    """The execution agent's model calls slow down 2.2x at t = 1 h: its mean response time rises ~40-50% (about
    1000 -> 1450 ms), far under the 2000 ms threshold. The anomaly is reported within two cycles, at most once
    more, and no agent reports one in the healthy first hour (5 agents x 4 metrics x 12 cycles). Measured on seeds
    1-11: at the first cycle after the shift on 10 (none on seed 6), robust z 5.2-10.5 against the threshold 5,
    shift +36% to +60%; on 3 of them (seeds 3, 7, 9) reported again 10 min later after a cycle under the
    threshold, as review waits in the Orchestrator's queue give the window means heavier tails."""
    sc = short(SC, 7200, faults=[{"kind": "latency", "target": "execution-agent", "at_s": 3600, "factor": 2.2}])
    res = run_scenario(sc, seed=seed, runtime="local")
    ev = res.events
    an = ev[ev["event"] == "anomaly.detected"]
    assert an["t_s"].min() > 3600
    mine = an[(an["agent"] == "execution-agent") & (an["metric"] == "response_time_ms_mean")]
    assert 1 <= len(mine) <= 2 and mine["t_s"].iloc[0] <= 3600 + 2 * sc.optimizer.cycle_s
    assert 25 < mine["impact"].iloc[0] < 70
    rt = res.agent("execution-agent")["response_time_ms_mean"]
    assert rt.loc[3600:].mean() < 0.8 * sc.optimizer.thresholds.response_time_ms
    bn = ev[ev["event"] == "bottleneck.detected"]
    assert not (bn["agent"] == "execution-agent").any()
