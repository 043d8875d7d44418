"""Timeout and circuit-breaker tuning: the latency-tail fault, the timeout's hold on workers, the break-even
failure rate of a breaker, the remedies and what the judge made of them on the library's scenarios."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from swarmopt import run_scenario
from swarmopt.loader import load_scenario
from swarmopt.optimizer.tuning import (
    break_even,
    breaker_threshold,
    relax_timeout,
    tighten_timeout,
    timeout_target,
    trip_floor,
    tune_breaker_threshold,
)
from swarmopt.schema import CircuitBreaker

from conftest import ROOT, short

LIBRARY = ROOT / "scenarios" / "library"
MH, EA = "market-hunter", "execution-agent"


def _with(sc, agent, **knobs):
    """``sc`` with ``agent``'s knobs updated (nested dicts merged) and the optimizer only watching."""
    agents = []
    for a in sc.agents:
        d = a.model_dump()
        if a.id == agent:
            for k, v in knobs.items():
                d["knobs"][k] = d["knobs"][k] | v if isinstance(v, dict) else v
        agents.append(d)
    return short(sc, sc.duration_s, agents=agents, optimizer=sc.optimizer.model_dump() | {"policy": "monitor"})


@pytest.fixture(scope="module")
def tail():
    """timeout_tail for an hour (30 min healthy, 30 min with 5% of the data source's calls hung), data source
    uncached so every attempt calls it, under timeouts of 30 s (the scenario's) and 5 s."""
    sc = short(load_scenario(LIBRARY / "timeout_tail.yaml"), 3600)
    return {t: run_scenario(_with(sc, MH, timeout_s=t, cache_ttl_s={"data_source": 0.0}), seed=2, runtime="local")
            .metrics.query("agent == @MH") for t in (30.0, 5.0)}


def test_a_latency_tail_times_out_its_share_of_calls_and_leaves_the_median(tail):
    """The slowest 5% of draws take 200x as long (over two minutes): every one runs into the timeout, so the
    timeout rate is the tail's share (binomial: about 2,100 attempts, standard error 0.005); before the onset
    nothing times out, and the median attempt does not move (p50 within 10% of before)."""
    m = tail[30.0]
    before, after = m[m["t_start_s"] < 1800], m[m["t_start_s"] >= 1800]
    attempts = after["decision_count"].sum()  # max_retries 0: one attempt per decision
    rate = (after["timeout_rate"] * after["decision_count"]).sum() / attempts
    assert before["timeout_rate"].max() == 0.0
    assert abs(rate - 0.05) < 4 * math.sqrt(0.05 * 0.95 / attempts)
    assert after["attempt_ms_p50"].median() == pytest.approx(before["attempt_ms_p50"].median(), rel=0.1)
    assert after["timeout_busy_share"].mean() > 0.3  # a hung call holds its worker 30 s: a third of the busy time


def test_a_shorter_timeout_frees_each_hung_attempts_worker_sooner(tail):
    """Same tasks (common random numbers), timeout 30 s vs 5 s: the workers' busy time falls by 25 s per
    timed-out attempt (the healthy attempts, p99 about 2.3 s, are not cut at 5 s: within 1%), and with the
    queue it held the mean response time falls by more than a third."""
    long, cut = (tail[t][tail[t]["t_start_s"] >= 1800] for t in (30.0, 5.0))
    busy = [(m["service_time_ms_mean"] * m["decision_count"]).sum() / 1000.0 for m in (long, cut)]
    timeouts = (cut["timeout_rate"] * cut["decision_count"]).sum()
    assert busy[0] - busy[1] == pytest.approx(25.0 * timeouts, rel=0.01)
    rt = [(m["response_time_ms_mean"] * m["decision_count"]).sum() / m["decision_count"].sum() for m in (long, cut)]
    assert rt[1] < rt[0] * 0.65


def test_timeout_remedies_set_twice_the_valid_attempts_p99():
    p = load_scenario(LIBRARY / "timeout_tail.yaml").agents[1]
    k = p.knobs
    assert k.timeout_s == 30.0 and timeout_target(2300.0) == 5.0 and timeout_target(10.0) == 0.5
    hung = {"timeout_busy_share": 0.3, "attempt_ms_p99": 2300.0, "timeout_rate": 0.03}
    (c,) = tighten_timeout(hung, k, p)
    assert (c.knob, c.old, c.new) == ("timeout_s", 30.0, 5.0)
    assert tighten_timeout(hung | {"timeout_busy_share": 0.05}, k, p) is None  # timeouts hold few workers
    assert tighten_timeout(hung, k.model_copy(update={"timeout_s": 7.0}), p) is None  # within 1.5x of the target
    assert relax_timeout(hung, k, p) is None
    cutting = {"timeout_rate": 0.2, "attempt_ms_p99": 1900.0, "timeout_busy_share": 0.2}
    short_timeout = k.model_copy(update={"timeout_s": 2.0})
    (c,) = relax_timeout(cutting, short_timeout, p)
    assert (c.old, c.new) == (2.0, 4.0)
    assert relax_timeout(cutting | {"attempt_ms_p99": 1000.0}, short_timeout, p) is None  # a hung tail, not the body


def test_break_even_failure_rate_balances_a_skipped_tool_against_failed_attempts():
    """Going on without a tool (quality q) pays iff all a attempts' calls fail more often than 1 - q."""
    for q, a in ((0.85, 2), (0.4, 2), (0.95, 2), (0.85, 1), (0.6, 4)):
        p = break_even(q, a)
        assert 1.0 - p ** a == pytest.approx(q)
        assert 1.0 - (p + 0.01) ** a < q < 1.0 - (p - 0.01) ** a
    assert break_even(0.85, 2) == pytest.approx(0.387, abs=1e-3)


def test_trip_floor_is_the_binomial_quantile_of_a_window_of_calls():
    """A tool failing 9% of 20 calls reaches the floor with probability at most 1e-3, one failure less more often."""
    floor = trip_floor(0.09, 20)
    k = round(floor * 20)
    assert stats.binom.sf(k - 1, 20, 0.09) <= 1e-3 < stats.binom.sf(k - 2, 20, 0.09)


def test_breaker_threshold_opens_for_tools_above_break_even_only():
    cb = CircuitBreaker(enabled=True, failure_rate_threshold=0.1)
    # a flaky essential tool (9%, break-even 0.775) and a healthy one (0.5%, break-even 0.387): the lowest
    # break-even, raised to the flaky tool's false-trip floor (8 failures in 20 calls)
    happy = breaker_threshold([(0.09, 0.775), (0.005, 0.387)], cb)
    assert trip_floor(0.09, 20) == 0.4 and happy == 0.4
    # a dead tool (71%) with a backup (break-even 0.22): the threshold opens it, above the healthy tool's noise
    lax = breaker_threshold([(0.71, 0.224), (0.005, 0.387)], cb)
    assert trip_floor(0.005, 20) <= lax <= 0.71
    assert breaker_threshold([], cb) is None


def test_tune_breaker_threshold_acts_on_a_misbehaving_breaker_only():
    sc = load_scenario(LIBRARY / "breaker_trigger_happy.yaml")
    p = next(a for a in sc.agents if a.id == EA)
    tools = {"broker_api": {"calls": 400, "error_rate": 0.09, "cost_usd": 0.0},
             "risk_model": {"calls": 300, "error_rate": 0.005, "cost_usd": 0.0}}
    (c,) = tune_breaker_threshold({"tools": tools, "degraded_rate": 0.6}, p.knobs, p)
    assert (c.knob, c.old, c.new) == ("circuit_breaker.failure_rate_threshold", 0.1, 0.4)
    assert tune_breaker_threshold({"tools": tools, "degraded_rate": 0.0}, p.knobs, p) is None  # not tripping
    off = p.knobs.model_copy(update={"circuit_breaker": CircuitBreaker()})
    assert tune_breaker_threshold({"tools": tools, "degraded_rate": 0.6}, off, p) is None  # no breaker


def test_an_open_breaker_pays_above_the_break_even_failure_rate_only():
    """The Execution Agent's broker fails at p (uncached, fallback 0.85, two attempts: break-even 0.39); a
    breaker that trips at once and stays open two minutes (threshold 0.05) against none. Far above the
    break-even skipping the tool keeps more decisions right; far below it the skips cost more than the failures
    (same tasks both ways; about 1,800 decisions a run, standard error of a success rate about 0.008)."""
    sc = load_scenario(ROOT / "scenarios" / "market_hunter_degradation.yaml")
    success = {}
    for p in (0.1, 0.8):
        faulted = short(sc, 3600, faults=[{"kind": "error_spike", "target": EA, "tool": "broker_api", "at_s": 0,
                                           "error_rate": p}])
        for name, cb in (("open", {"enabled": True, "failure_rate_threshold": 0.05, "open_duration_s": 120.0}),
                         ("closed", {"enabled": False})):
            run = _with(faulted, EA, circuit_breaker=cb, cache_ttl_s={"broker_api": 0.0})
            m = run_scenario(run, seed=1, runtime="local").metrics.query("agent == @EA")
            success[p, name] = np.average(m["success_rate"], weights=m["decision_count"])
    assert success[0.8, "open"] > success[0.8, "closed"] + 0.2
    assert success[0.1, "closed"] > success[0.1, "open"] + 0.05


@pytest.mark.parametrize("name, kind, metric", [("timeout_tail", "tighten_timeout", "timeout_busy_share"),
                                                ("breaker_trigger_happy", "tune_breaker_threshold", "success_rate"),
                                                ("breaker_too_lax", "tune_breaker_threshold", "error_rate")])
def test_the_judge_keeps_the_tuning_on_its_library_scenario(name, kind, metric):
    """Seed 1, the rules policy: the tuning is the first change on the faulted agent, and the canary judge
    measures a significant improvement of its target and keeps it."""
    ev = run_scenario(load_scenario(LIBRARY / f"{name}.yaml"), seed=1, runtime="local").events
    first = ev[ev["event"] == "optimization.scheduled"].iloc[0]
    kept = ev[(ev["event"] == "optimization.kept") & (ev["strategy_id"] == first["strategy_id"])]
    assert first["kind"] == kind and len(kept) == 1
    assert kept.iloc[0]["metric"] == metric and kept.iloc[0]["improvement_pct"] > 10 and kept.iloc[0]["p_value"] < 0.01
