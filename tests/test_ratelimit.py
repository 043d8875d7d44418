"""Rate limits with burst (swarmopt/sim/ratelimit.py): token buckets against a plain reference, the long-run
throughput of a saturated bucket against its rate, and the mechanism in the engine, the schema and the optimizer.

Theory: a token bucket of rate r and burst B admits at most B + r w units in any span of length w (each request no
larger than B), and when demand exceeds r without end it admits exactly r per unit time in the long run: the
backlog never empties, so each admission takes the tokens that accrued since the previous one (GCRA: the virtual
empty time advances by D / r per request). Over a span of T seconds the admitted units differ from r T by at most
one request, so the measured rate is r within max(D) / T, a deterministic bound. The decision rate it implies is
r / E[D]; with tokens lognormal of sigma 0.25 (CV 0.25) and N ~ 3,600 decisions in the span, the count of
decisions has a relative standard error of about 0.25 / sqrt(N) = 0.4%, so 2% is five standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from swarmopt.knobs import set_knob
from swarmopt.loader import InputError, build_scenario
from swarmopt.optimizer.detect import detect
from swarmopt.optimizer.strategies import raise_call_limit, raise_token_limit, scale_concurrency
from swarmopt.schema import AgentProfile, Knobs, Scenario, Thresholds
from swarmopt.sim.environment import Effects
from swarmopt.sim.ratelimit import Limiter, bucket_limits, many_buckets, one_bucket
from swarmopt.validation import rate_limit_scenario, simulate_tasks

from conftest import HEALTHY_SNAPSHOT, ROOT


def bucket_reference(arrival, demand, rate, burst):
    """Sequential token bucket by its level (FCFS; a request larger than the burst waits for a full bucket and
    leaves it in debt): admission times."""
    level, last, prev, out = burst, arrival[0], -math.inf, []
    for a, d in zip(arrival, demand, strict=True):
        t = max(a, prev)
        level = min(burst, level + rate * (t - last))
        last = t
        need = min(d, burst)
        if d > 0 and level < need:
            t += (need - level) / rate
            level, last = need, t
        level -= d
        prev = t
        out.append(t)
    return np.array(out)


def stream(seed: int, n: int = 2000, rate: float = 2.0, mean_demand: float = 1.0, zeros: float = 0.0):
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    demand = rng.exponential(mean_demand, n) * (rng.uniform(size=n) >= zeros)
    return arrival, demand


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("burst", [0.5, 3.0, 20.0])
def test_one_bucket_is_the_sequential_token_bucket(seed, burst):
    # demand 2 units/s against a rate of 1.6: saturated stretches, and requests larger than a 0.5 burst
    arrival, demand = stream(seed)
    rate = 1.6
    ready, _ = one_bucket(arrival, demand / rate, burst / rate, -math.inf)
    np.testing.assert_allclose(ready, bucket_reference(arrival, demand, rate, burst), rtol=0, atol=1e-7)
    assert np.all(ready >= arrival) and np.all(np.diff(ready) >= 0)  # never early, first come first served


@pytest.mark.parametrize("seed", range(4))
def test_requests_that_need_nothing_keep_their_place_in_line_only(seed):
    # 40% need nothing, the rest at most the burst (no debt): they wait only behind those before them
    arrival, demand = stream(seed, zeros=0.4, mean_demand=0.5)
    demand = np.minimum(demand, 3.0)
    ready, _ = one_bucket(arrival, demand, 3.0, -math.inf)
    np.testing.assert_allclose(ready, bucket_reference(arrival, demand, 1.0, 3.0), atol=1e-7)
    assert (ready[demand == 0] > arrival[demand == 0]).any()  # some wait in line


@pytest.mark.parametrize("seed", range(3))
def test_many_buckets_couple_through_the_admission_time(seed):
    arrival, demand = stream(seed)
    rate, burst = np.array([1.6, 2.5]), np.array([3.0, 2.0])
    demand = np.minimum(demand, burst[0])  # no debt: the conformance bound below is for requests within the burst
    second = np.random.default_rng(seed + 10).integers(0, 3, len(arrival)).astype(float)
    d = np.stack([demand / rate[0], second / rate[1]], axis=1)
    # one bucket alone through the loop is the closed form
    alone, _ = many_buckets(arrival, d[:, :1], burst[:1] / rate[:1], np.array([-math.inf]))
    np.testing.assert_allclose(alone, one_bucket(arrival, d[:, 0], burst[0] / rate[0], -math.inf)[0], atol=1e-9)
    # both: every admission leaves both buckets conforming (level >= 0 after a request no larger than its burst)
    ready, held = many_buckets(arrival, d, burst / rate, np.full(2, -math.inf))
    for b in range(2):
        units = d[:, b] * rate[b]
        for w in (1.0, 10.0, 100.0):
            assert admitted_in_windows(ready, units, w).max() <= burst[b] + rate[b] * w + 1e-6
    assert np.all(np.diff(ready) >= 0) and set(np.unique(held)) <= {-1, 0, 1}
    assert np.all((held >= 0) | (ready == np.maximum.accumulate(arrival)))


def admitted_in_windows(ready: np.ndarray, units: np.ndarray, w: float) -> np.ndarray:
    """Units admitted in [ready_i, ready_i + w] for every i."""
    cum = np.concatenate(([0.0], np.cumsum(units)))
    hi = np.searchsorted(ready, ready + w, side="right")
    return cum[hi] - cum[np.arange(len(ready))]


def test_limiter_keeps_the_level_when_the_limit_changes():
    lim = Limiter(0)
    inf = math.inf
    lim.configure(0.0, np.array([10.0, inf, inf]), np.array([100.0, inf, inf]))  # starts full: 100
    lim.empty_at[0] = 5.0  # level at t = 8: 10 x 3 = 30
    lim.configure(8.0, np.array([20.0, inf, inf]), np.array([200.0, inf, inf]))
    assert 20.0 * (8.0 - lim.empty_at[0]) == pytest.approx(30.0)
    lim.configure(8.0, np.array([20.0, inf, inf]), np.array([10.0, inf, inf]))  # a smaller burst cuts the level
    assert 20.0 * (8.0 - lim.empty_at[0]) == pytest.approx(10.0)


def test_bucket_limits_follow_the_knobs_and_the_cuts():
    assert bucket_limits(Knobs(), Effects(), ["a"]) is None
    k = Knobs(max_tokens_per_minute=60_000, max_tool_calls_per_minute={"a": 120.0})
    rate, burst = bucket_limits(k, Effects(tier_limit={"fast": 0.5}, tool_limit={"a": 0.25}), ["a", "b"])
    assert rate.tolist() == [500.0, 1000.0, 1000.0, 0.5, math.inf]  # fast, standard, strong, a, b (per second)
    assert burst.tolist() == [30_000.0, 60_000.0, 60_000.0, 30.0, math.inf]  # one minute of the (cut) limit
    assert bucket_limits(set_knob(k, "token_burst_size", 120_000), Effects(), ["a"])[1][1] == 120_000.0


@pytest.mark.parametrize("kind,limit,rate", [("tokens", 60_000.0, 2.0), ("calls", 90.0, 2.0)])
def test_a_saturated_bucket_passes_its_rate(kind, limit, rate):
    # demand 2 decisions/s x 1,000 tokens (2,000 tokens/s) against 1,000 tokens/s, or 2 calls/s against 1.5/s
    tasks = simulate_tasks(rate_limit_scenario(rate, limit, kind, tokens=1000, duration_s=3600.0, seed=1))
    units = tasks["tokens_in"] + tasks["tokens_out"] if kind == "tokens" else tasks["calls"]
    ready = tasks["ready"]
    t0, t1 = 600.0, 3000.0  # the backlog has built up by 600 s and never empties
    inside = (ready >= t0) & (ready < t1)
    r = limit / 60.0
    assert abs(units[inside].sum() / (t1 - t0) - r) <= units.max() / (t1 - t0)
    assert inside.sum() / (t1 - t0) == pytest.approx(r / units.mean(), rel=0.02)
    assert np.all(tasks["start"] == ready)  # 256 workers: only the bucket holds decisions back
    assert np.all(np.diff(ready) >= 0)


def test_below_its_rate_a_bucket_with_a_minutes_burst_holds_nothing_back():
    # 0.5 decisions/s x 1,000 tokens = half the rate; a minute's burst is 60,000 tokens = 60 decisions at once,
    # and a Poisson count of mean 30 per minute exceeds 60 with probability ~1e-6 per minute
    tasks = simulate_tasks(rate_limit_scenario(0.5, 60_000.0, "tokens", tokens=1000, duration_s=3600.0, seed=2))
    assert np.array_equal(tasks["ready"], tasks["arrival"])


def test_admitted_tokens_never_exceed_burst_plus_rate():
    tasks = simulate_tasks(rate_limit_scenario(2.0, 60_000.0, "tokens", tokens=1000, burst=5_000, duration_s=1800.0,
                                               seed=3))
    units = (tasks["tokens_in"] + tasks["tokens_out"]).astype(float)
    assert units.max() <= 5_000
    for w in (1.0, 5.0, 60.0, 600.0):
        assert admitted_in_windows(tasks["ready"], units, w).max() <= 5_000 + 1_000 * w + 1e-6


def limited_scenario(tier: str, fault_tier: str, factor: float = 0.4) -> Scenario:
    """rate_limit_scenario at 1 decision/s x 1,000 tokens under 120,000 tokens a minute (half used), and from
    1,200 s a cut of ``fault_tier``'s provider to ``factor``."""
    sc = rate_limit_scenario(1.0, 120_000.0, "tokens", tokens=1000, duration_s=2400.0, seed=4)
    data = sc.model_dump()
    data["agents"][0]["knobs"]["model_tier"] = tier
    data["faults"] = [{"kind": "rate_limit", "target": "limited", "tier": fault_tier, "at_s": 1200.0,
                       "factor": factor}]
    return Scenario.model_validate(data)


def test_a_providers_cut_throttles_its_tier_only_and_shows_in_the_waits():
    from swarmopt.api import run_scenario

    m = run_scenario(limited_scenario("standard", "standard"), seed=4, runtime="local").metrics
    before, after = m[m["t_start_s"] < 1200], m[m["t_start_s"] >= 1500]
    assert (before["throttle_wait_ms_mean"] == 0).all()
    # 48,000 tokens a minute left against a demand of 60,000: the backlog grows by about 12,000 tokens a minute
    assert after["throttle_wait_ms_mean"].iloc[-1] > 60_000 and after["throttle_wait_ms_mean"].is_monotonic_increasing
    assert (m["queue_wait_ms_mean"] >= m["throttle_wait_ms_mean"] - 1e-9).all()
    assert (m["token_throttle_wait_ms_mean"] == m["throttle_wait_ms_mean"]).all()  # only tokens are limited
    routed = run_scenario(limited_scenario("fast", "standard"), seed=4, runtime="local").metrics
    assert (routed["throttle_wait_ms_mean"] == 0).all()  # another tier's provider: no cut


def test_throttle_metrics_are_the_per_task_waits():
    from swarmopt.api import run_scenario

    res = run_scenario(limited_scenario("standard", "standard", 0.45), seed=4, runtime="local")
    tasks = simulate_tasks(limited_scenario("standard", "standard", 0.45))
    per_window = np.floor(tasks["arrival"] / 60.0)
    wait_ms = (tasks["ready"] - tasks["arrival"]) * 1000.0
    expected = [wait_ms[per_window == k].mean() for k in range(40)]
    np.testing.assert_allclose(res.metrics["throttle_wait_ms_mean"], expected, rtol=1e-9, atol=1e-9)
    assert res.metrics["throttle_wait_ms_mean"].iloc[-1] > 1000


def profile(**knobs) -> AgentProfile:
    return AgentProfile(id="a", name="A", base_rate_per_s=1.0, token_quota_per_minute=300_000,
                        tools=[{"name": "api", "latency_ms_median": 100, "call_quota_per_minute": 200}],
                        knobs=knobs)


def snap(**over) -> dict:
    s = {"response_time_ms_mean": 3000.0, "queue_wait_ms_mean": 1500.0, "throttle_wait_ms_mean": 1500.0,
         "token_throttle_wait_ms_mean": 1500.0, "cpu_percent": 20.0, "memory_percent": 30.0}
    s.update(over)
    return s


def test_raise_token_limit_doubles_within_the_quota_when_tokens_hold_decisions_back():
    p = profile(max_tokens_per_minute=100_000, token_burst_size=20_000)
    (limit, burst) = raise_token_limit(snap(), p.knobs, p)
    assert (limit.knob, limit.old, limit.new) == ("max_tokens_per_minute", 100_000, 200_000)
    assert (burst.knob, burst.old, burst.new) == ("token_burst_size", 20_000, 40_000)
    p = profile(max_tokens_per_minute=200_000)
    assert [(c.knob, c.new) for c in raise_token_limit(snap(), p.knobs, p)] == [("max_tokens_per_minute", 300_000)]
    assert raise_token_limit(snap(), profile(max_tokens_per_minute=300_000).knobs, p) is None  # at the quota
    assert raise_token_limit(snap(token_throttle_wait_ms_mean=100.0), p.knobs, p) is None  # 3% of the response
    assert raise_token_limit(snap(), Knobs(), p) is None  # no limit: nothing to raise


def test_raise_call_limit_and_scale_concurrency_read_the_tools_wait():
    p = profile(max_tool_calls_per_minute={"api": 60.0})
    s = snap(token_throttle_wait_ms_mean=0.0)
    assert [(c.knob, c.old, c.new) for c in raise_call_limit(s, p.knobs, p)] == [
        ("max_tool_calls_per_minute.api", 60.0, 120.0)]
    assert raise_call_limit(snap(), p.knobs, p) is None  # the wait is the tokens'
    # all the queueing wait is a wait for rate limits: more workers would not shorten it
    assert scale_concurrency(s, p.knobs, p) is None
    assert scale_concurrency(snap(throttle_wait_ms_mean=0.0), p.knobs, p) is not None


def test_a_long_throttle_wait_is_a_rate_limited_bottleneck():
    p = profile()
    s = dict(HEALTHY_SNAPSHOT, throttle_wait_ms_mean=500.0)
    (b,) = detect({"a": s}, {"a": p}, Thresholds())
    assert (b.type, b.severity, b.metric, b.impact) == ("rate_limited", "high", "throttle_wait_ms_mean", 150.0)
    assert detect({"a": dict(s, throttle_wait_ms_mean=150.0)}, {"a": p}, Thresholds()) == []


def scenario_with(fault: dict, **knobs) -> dict:
    return {"name": "x", "duration_s": 600, "agents": [{"profile": {
        "id": "a", "name": "A", "base_rate_per_s": 1.0, "token_quota_per_minute": 100_000,
        "tools": [{"name": "api", "latency_ms_median": 100}], "knobs": knobs}}], "faults": [fault]}


@pytest.mark.parametrize("fault,knobs,message", [
    ({"kind": "rate_limit", "target": "a", "at_s": 0, "factor": 0.5}, {}, "no token limit to cut"),
    ({"kind": "rate_limit", "target": "a", "tool": "api", "at_s": 0, "factor": 0.5}, {"max_tokens_per_minute": 10},
     "no call limit on 'api'"),
    ({"kind": "rate_limit", "target": "a", "tier": "fast", "tool": "api", "at_s": 0, "factor": 0.5}, {},
     "tier .* or tool, not both"),
    ({"kind": "rate_limit", "target": "a", "at_s": 0, "factor": 1.5}, {"max_tokens_per_minute": 10}, "factor"),
])
def test_bad_rate_limit_input_names_the_field(fault, knobs, message):
    with pytest.raises(InputError, match=message):
        build_scenario(scenario_with(fault, **knobs), "s.yaml")


@pytest.mark.parametrize("knobs,message", [
    ("max_tokens_per_minute: 200000", r"max_tokens_per_minute \(200,000\) exceeds token_quota_per_minute"),
    ("max_tool_calls_per_minute: {api: 500}", r"max_tool_calls_per_minute.api \(500\) exceeds"),
    ("max_cache_size: {nope: 3}", r"max_cache_size: unknown tool\(s\) \['nope'\]"),
    ("max_cache_size: {api: -1}", "max_cache_size"),
])
def test_bad_limits_in_a_profile_name_the_field(tmp_path, knobs, message):
    from swarmopt.loader import load_profile

    path = tmp_path / "p.yaml"
    path.write_text("id: a\nname: A\nbase_rate_per_s: 1\ntoken_quota_per_minute: 100000\n"
                    "tools: [{name: api, latency_ms_median: 100, call_quota_per_minute: 200}]\n"
                    f"knobs: {{{knobs}}}\n")
    with pytest.raises(InputError, match=message):
        load_profile(path)


def test_the_library_scenarios_profile_variant_stays_the_shipped_profile_but_its_limit():
    from swarmopt.loader import load_profile

    shipped = load_profile(ROOT / "agents" / "market_analyzer.yaml")
    variant = load_profile(ROOT / "scenarios" / "library" / "profiles" / "market_analyzer_rate_limited.yaml")
    same = {"token_quota_per_minute", "knobs"}
    assert shipped.model_dump(exclude=same) == variant.model_dump(exclude=same)
    limits = {"max_tokens_per_minute", "token_burst_size"}
    assert shipped.knobs.model_dump(exclude=limits) == variant.knobs.model_dump(exclude=limits)


def test_throttling_does_not_depend_on_the_tick_but_for_rounding():
    """The closed form sums demands from the start of each span: spans cut at other instants round differently,
    by about 1e-12 s (as the one-worker FCFS closed form does)."""
    from swarmopt.api import run_scenario

    sc = limited_scenario("standard", "standard", 0.45)
    runs = [run_scenario(Scenario.model_validate(sc.model_dump() | {"tick_s": tick}), seed=4, runtime="local").metrics
            for tick in (60.0, 20.0, 3.0)]
    assert runs[0]["throttle_wait_ms_mean"].max() > 1000
    for other in runs[1:]:
        pd.testing.assert_frame_equal(runs[0], other, check_exact=False, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tokens_per_minute,binding", [(10**7, "calls"), (60_000, "tokens")])
def test_the_tighter_of_two_buckets_sets_the_pace_and_takes_the_blame(tokens_per_minute, binding):
    """2 decisions/s, each 1,000 tokens and one call: calls limited to 1.5/s, tokens to 10^7/min (loose) or
    1,000/s (1 decision/s, tighter). The admitted decisions run at the tighter rate; the throttle wait is the
    tokens' exactly when the token bucket is the tighter one."""
    from swarmopt.api import run_scenario

    data = rate_limit_scenario(2.0, 90.0, "calls", tokens=1000, duration_s=1800.0, seed=5).model_dump()
    data["agents"][0]["knobs"]["max_tokens_per_minute"] = tokens_per_minute
    sc = Scenario.model_validate(data)
    tasks = simulate_tasks(sc)
    inside = (tasks["ready"] >= 600.0) & (tasks["ready"] < 1500.0)
    per_s = inside.sum() / 900.0
    if binding == "calls":
        assert per_s == pytest.approx(1.5, abs=1.0 / 900.0 + 1e-9)
    else:
        assert per_s == pytest.approx(1.0, rel=0.02)  # 1,000 tokens/s over tokens of mean 1,000 (CV 0.25)
    m = run_scenario(sc, seed=5, runtime="local").metrics
    late = m[m["t_start_s"] >= 600]
    share = late["token_throttle_wait_ms_mean"].sum() / late["throttle_wait_ms_mean"].sum()
    assert share == (0.0 if binding == "calls" else pytest.approx(1.0, abs=0.01))
