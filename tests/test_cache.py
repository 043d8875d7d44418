"""Bounded caches and invalidation (swarmopt/sim/cache.py): LRU against a reference and against theory, the
invalidation fault, and the mechanism in the metrics and the optimizer.

Theory: under the independent reference model an LRU cache of C entries hits with Che's approximation
sum_k p_k (1 - exp(-q_k T_C)), T_C solving sum_k (1 - exp(-q_k T_C)) = C (Che, Tung & Wang 2002;
swarmopt.queueing.lru_cache_hit_rate). Run length: 125,000 lookups after a 50 s warm-up (T_C is 0.4-13 s here, so
the cache is in its steady state long before). Hits of one key are correlated only within about T_C, so the
binomial standard error, 0.14 pp, is about right; over seeds 0-9 the measured minus Che's figure was
+0.02 +- 0.08 pp (C 100), -0.00 +- 0.12 pp (C 1,000), +0.06 +- 0.15 pp (C 3,000), at most 0.28 pp: Che's
approximation is that close for Zipf popularity (Fricker, Robert & Roberts 2012). The tolerance, 1 pp, is more than
six standard errors. With a TTL shorter than T_C the size bound does not bind and the TTL cache's renewal formula
holds instead (the hit ratio is that of the TTL alone: each entry expires before it would be evicted).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from swarmopt.api import run_scenario
from swarmopt.knobs import KnobChange, ScheduledChange, set_knob
from swarmopt.metrics import COLUMN
from swarmopt.optimizer.detect import detect
from swarmopt.optimizer.stabilize import bound_step
from swarmopt.optimizer.strategies import raise_cache_size
from swarmopt.queueing import (
    che_characteristic_time,
    invalidated_cache_hit_rate,
    lru_cache_hit_rate,
    lru_capacity_for_hit_rate,
    ttl_cache_hit_rate,
    zipf_probabilities,
)
from swarmopt.schema import AgentProfile, Scenario, Thresholds
from swarmopt.sim.agent import AgentSim
from swarmopt.sim.cache import LRUCache, invalidate, pattern_keys
from swarmopt.sim.environment import Environment
from swarmopt.sim.seeds import agent_seeds
from swarmopt.sim.service import ttl_cache
from swarmopt.validation import cache_scenario, simulate_tasks

from conftest import HEALTHY_SNAPSHOT, assert_same

N_KEYS, ZIPF, RATE = 10_000, 0.8, 500.0


def lru_reference(t, keys, fills, ttl, capacity, expiry):
    """A plain LRU + TTL cache: a list in recency order; expired entries leave before the least recently used."""
    order, hit = [], []
    for ti, k, f in zip(t, keys, fills, strict=True):
        if ti < expiry[k]:
            order.remove(k)
            order.append(k)
            hit.append(True)
            continue
        hit.append(False)
        if f:
            if k in order:
                order.remove(k)
            order.append(k)
            expiry[k] = ti + ttl
            order = [x for x in order if expiry[x] > ti] if len(order) > capacity else order
            while len(order) > capacity:
                expiry[order.pop(0)] = -1.0
    return np.array(hit)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("capacity,ttl", [(5, 1000.0), (20, 3.0), (50, 8.0), (500, 8.0)])
def test_lru_cache_is_the_plain_lru_under_a_ttl(seed, capacity, ttl):
    rng = np.random.default_rng(seed)
    n, keyspace = 3000, 200
    t = np.cumsum(rng.exponential(0.01, n))
    keys = np.minimum(rng.zipf(1.3, n) - 1, keyspace - 1)
    fills = rng.uniform(size=n) > 0.05
    exp_ref = np.full(keyspace, -1.0)
    expected = lru_reference(t.tolist(), keys.tolist(), fills.tolist(), ttl, capacity, exp_ref)
    exp = np.full(keyspace, -1.0)
    cache = LRUCache(exp, capacity, 0.0)
    got = np.concatenate([cache.lookups(t[i:i + 700], keys[i:i + 700], fills[i:i + 700], ttl)
                          for i in range(0, n, 700)])
    assert np.array_equal(got, expected)
    assert np.array_equal(exp > t[-1], exp_ref > t[-1])  # the same entries live at the end
    assert np.count_nonzero(exp > t[-1]) <= capacity
    if capacity >= keyspace:
        exp2 = np.full(keyspace, -1.0)
        assert np.array_equal(got, ttl_cache(t, keys, fills, ttl, exp2))


def test_a_bound_at_least_the_keyspace_is_the_ttl_cache():
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.exponential(0.01, 5000))
    keys = rng.integers(0, 300, 5000)
    fills = np.ones(5000, dtype=bool)
    a, b = np.full(300, -1.0), np.full(300, -1.0)
    cache = LRUCache(b, 300, 0.0)
    assert np.array_equal(ttl_cache(t, keys, fills, 5.0, a), cache.lookups(t, keys, fills, 5.0))
    assert np.array_equal(a, b) and cache.evictions == 0


def test_lru_evicts_the_least_recently_used_and_expired_entries_first():
    exp = np.full(10, -1.0)
    c = LRUCache(exp, 2, 0.0)
    c.lookups(np.array([0.0, 1.0, 2.0]), np.array([1, 2, 1]), np.ones(3, bool), 100.0)  # 1, 2, hit 1
    c.lookups(np.array([3.0]), np.array([3]), np.ones(1, bool), 100.0)  # 2 is the least recently used
    assert exp[2] == -1.0 and exp[1] == 100.0 and exp[3] == 103.0 and c.evictions == 1
    c.lookups(np.array([4.0]), np.array([4]), np.ones(1, bool), 1.0)  # 4 until 5.0; 1 is the LRU now: evicted
    assert exp[1] == -1.0 and c.evictions == 2
    c.lookups(np.array([6.0]), np.array([5]), np.ones(1, bool), 100.0)  # 4 has expired: it goes, not 3
    assert exp[3] == 103.0 and exp[5] == 106.0 and c.evictions == 2
    c.resize(1, 7.0)  # shrinking evicts at once
    assert np.count_nonzero(exp > 7.0) == 1 and exp[5] == 106.0 and c.evictions == 3


def test_a_bound_set_on_a_running_cache_keeps_the_newest_entries():
    exp = np.array([5.0, 9.0, -1.0, 7.0, 2.0])
    c = LRUCache(exp, 2, 3.0)  # live at 3: keys 0, 1, 3 (fetched in expiry order 0, 3, 1)
    assert exp.tolist() == [-1.0, 9.0, -1.0, 7.0, 2.0] and c.evictions == 1


@pytest.mark.parametrize("capacity", [100, 1000, 3000])
def test_lru_hit_ratio_matches_ches_approximation(capacity):
    tasks = simulate_tasks(cache_scenario(N_KEYS, ZIPF, 86_400.0, RATE, 300.0, 0, max_size=capacity))
    keep = tasks["arrival"] >= 50.0
    measured = tasks["hits"][keep].sum() / tasks["lookups"][keep].sum()
    expected = lru_cache_hit_rate(zipf_probabilities(N_KEYS, ZIPF), RATE, capacity)
    assert abs(measured - expected) < 0.01, f"hit rate {measured:.4f} vs Che {expected:.4f}"


def test_a_ttl_shorter_than_the_characteristic_time_leaves_the_ttl_cache():
    p = zipf_probabilities(N_KEYS, ZIPF)
    ttl = 5.0
    occupancy = float(np.sum(p * RATE * ttl / (1 + p * RATE * ttl)))  # mean live entries of the TTL cache: 1,377
    capacity = int(1.2 * occupancy)  # its standard deviation is below sqrt(occupancy) = 37: never reached
    assert che_characteristic_time(p, RATE, capacity) > ttl
    bounded = simulate_tasks(cache_scenario(N_KEYS, ZIPF, ttl, RATE, 300.0, 0, max_size=capacity))
    free = simulate_tasks(cache_scenario(N_KEYS, ZIPF, ttl, RATE, 300.0, 0))
    assert np.array_equal(bounded["hits"], free["hits"])
    keep = bounded["arrival"] >= 50.0
    assert abs(bounded["hits"][keep].mean() - ttl_cache_hit_rate(p, RATE, ttl)) < 0.01


def test_che_characteristic_time_solves_the_occupancy_equation():
    p = zipf_probabilities(1000, 1.0)
    t_c = che_characteristic_time(p, 10.0, 100)
    assert np.sum(-np.expm1(-p * 10.0 * t_c)) == pytest.approx(100.0, rel=1e-9)
    assert lru_cache_hit_rate(p, 10.0, 100) == pytest.approx(lru_cache_hit_rate(p, 1.0, 100), rel=1e-9)
    assert lru_cache_hit_rate(p, 10.0, 1000) == 1.0
    assert lru_cache_hit_rate(np.full(4, 0.25), 1.0, 2) == pytest.approx(1 - np.exp(-0.25 * t_c_uniform()), rel=1e-9)
    with pytest.raises(ValueError, match="capacity"):
        che_characteristic_time(p, 10.0, 1000)


def t_c_uniform() -> float:
    """T_C of 4 equally popular keys at rate 1, C = 2: 4 (1 - exp(-T/4)) = 2, T = 4 ln 2."""
    return 4 * np.log(2.0)


def test_pattern_keys_match_an_even_share():
    for share in (0.1, 0.25, 0.5, 0.9):
        m = pattern_keys(3000, share)
        assert abs(m.mean() - share) < 0.005  # Weyl equidistribution: within O(log n / n)
        assert abs(m[:300].mean() - share) < 0.02  # popular keys (low ranks) as often as the rest
    assert pattern_keys(10, 1.0).all()


def test_invalidate_drops_the_live_matched_entries():
    exp = np.array([5.0, -1.0, 9.0, 2.0])
    c = LRUCache(exp, 4, 3.0)
    assert invalidate(exp, np.array([True, True, False, True]), 3.0, c) == 1  # key 0 only: 1 not cached, 3 expired
    assert exp.tolist() == [-1.0, -1.0, 9.0, 2.0] and list(c.order) == [2]


def storm_scenario(every_s: float | None, share: float = 1.0, max_size: int = 0) -> Scenario:
    sc = cache_scenario(2000, 1.0, 600.0, 20.0, 1200.0, 3, window_s=60.0, max_size=max_size)
    data = sc.model_dump()
    data["faults"] = [{"kind": "cache_invalidation", "target": "cache", "at_s": 600.0, "every_s": every_s,
                       "share": share}]
    return Scenario.model_validate(data)


def test_an_invalidation_storm_lowers_the_hit_ratio_as_theory_says():
    """Entries dropped every 10 s under a 600 s TTL: h = sum_k p_k (1 - (1 - exp(-q_k D)) / (q_k D))
    (swarmopt.queueing.invalidated_cache_hit_rate) for the keys the pattern matches, the TTL formula for the rest.
    After the first period 10,800 lookups per run: a binomial standard error of 0.5 pp (hits of a key correlate
    only within a period), so 2 pp is four of them; measured +0.3 pp (no storm), +0.1 pp (every key), +0.2 pp (half)."""
    calm = run_scenario(storm_scenario(None, 1.0), seed=3, runtime="local").metrics
    storm = run_scenario(storm_scenario(10.0, 1.0), seed=3, runtime="local").metrics
    half = run_scenario(storm_scenario(10.0, 0.5), seed=3, runtime="local").metrics
    pre, post = calm["t_start_s"] < 600, calm["t_start_s"] >= 660
    assert calm[pre].equals(storm[pre])  # the same draws: nothing differs before the storm
    one = calm.loc[calm["t_start_s"] == 600, "cache_invalidations"].item()
    assert one > 300 and calm["cache_invalidations"].sum() == one  # one invalidation of every live entry
    assert (storm[post]["cache_invalidations"] > 0).all()
    p = zipf_probabilities(2000, 1.0)
    q = p * 20.0
    ttl, periodic = q * 600 / (1 + q * 600), 1 + np.expm1(-q * 10.0) / (q * 10.0)
    assert np.sum(p * periodic) == pytest.approx(invalidated_cache_hit_rate(p, 20.0, 10.0), rel=1e-12)
    matched = pattern_keys(2000, 0.5)
    for m, expected in ((calm, np.sum(p * ttl)), (storm, np.sum(p * periodic)),
                        (half, np.sum(p * np.where(matched, periodic, ttl)))):
        hits = (m[post]["cache_hit_rate"] * m[post]["decision_count"]).sum() / m[post]["decision_count"].sum()
        assert abs(hits - expected) < 0.02, (hits, expected)
    # the per-tool column is the tool's share of the lookups it answered: one tool, the agent's hit rate
    assert np.allclose(storm["cache_hit_rate_lookup"], storm["cache_hit_rate"])


def test_a_bounded_cache_evicts_and_shows_it_in_the_metrics():
    m = run_scenario(storm_scenario(None, 1.0, max_size=50), seed=3, runtime="local").metrics
    free = run_scenario(storm_scenario(None, 1.0), seed=3, runtime="local").metrics
    late = m["t_start_s"] >= 300
    assert (m.loc[late, "cache_evictions"] > 0).all()
    assert np.allclose(m["cache_eviction_rate"], m["cache_evictions"] / m["decision_count"])
    assert m.loc[late, "cache_hit_rate"].mean() < free.loc[late, "cache_hit_rate"].mean() - 0.1
    assert (m["storage_percent"] <= 100 * 50 / 2000 + 1e-9).all()  # at most 50 of 2,000 keys live
    assert (free["cache_evictions"] == 0).all()


def profile(**knobs) -> AgentProfile:
    return AgentProfile(id="a", name="A", base_rate_per_s=1.0, knobs=knobs, tools=[
        {"name": "slow", "latency_ms_median": 900, "keyspace": 1000},
        {"name": "fast", "latency_ms_median": 50, "keyspace": 100}])


def test_raise_cache_size_grows_a_bound_to_the_size_che_asks_within_the_ttl():
    p = profile(cache_ttl_s={"slow": 600, "fast": 600}, max_cache_size={"slow": 50, "fast": 10})
    s = {"cache_eviction_rate": 0.2, "memory_percent": 40.0, "arrival_rate_per_s": 1.0}
    # slow: Che's 10% misses (two tools x 5%) needs 592 entries, but a 600 s TTL at 1 lookup/s keeps 209 keys
    probs = zipf_probabilities(1000, 1.0)
    assert lru_capacity_for_hit_rate(probs, 0.9) == 592
    assert lru_cache_hit_rate(probs, 1.0, 591) < 0.9 <= lru_cache_hit_rate(probs, 1.0, 592)
    x = probs * 600.0
    assert math.ceil(np.sum(x / (1 + x))) == 209
    assert [(c.knob, c.old, c.new) for c in raise_cache_size(s, p.knobs, p)] == [("max_cache_size.slow", 50, 209)]
    k = set_knob(p.knobs, "cache_ttl_s.slow", 3600)  # a 1 h TTL keeps 541 keys, still fewer than 592
    assert [(c.knob, c.new) for c in raise_cache_size(s, k, p)] == [("max_cache_size.slow", 541)]
    assert [(c.knob, c.new) for c in raise_cache_size(dict(s, arrival_rate_per_s=10.0), k, p)] == [
        ("max_cache_size.slow", 592)]  # 10 lookups/s keep more keys: Che's size decides
    k = set_knob(p.knobs, "max_cache_size.slow", 300)  # the TTL decides now: the fast tool's bound is next
    assert [(c.knob, c.old, c.new) for c in raise_cache_size(s, k, p)] == [("max_cache_size.fast", 10, 70)]
    k = set_knob(p.knobs, "max_cache_size.slow", 180)  # short of 209: at least double, at most the keyspace
    assert [(c.knob, c.new) for c in raise_cache_size(s, k, p)] == [("max_cache_size.slow", 360)]
    assert raise_cache_size(dict(s, cache_eviction_rate=0.01), p.knobs, p) is None
    assert raise_cache_size(dict(s, memory_percent=90.0), p.knobs, p) is None
    assert bound_step(KnobChange("a", "max_cache_size.slow", 300, 5000), ratio=2.0).new == 600
    assert bound_step(KnobChange("a", "max_cache_size.slow", 300, 5000)).new == 1200  # max_step_ratio 4
    assert bound_step(KnobChange("a", "max_cache_size.slow", 0, 5000)).new == 5000  # from unbounded: no step


def test_evictions_over_a_tenth_of_the_lookups_are_a_cache_capacity_bottleneck():
    p = profile()
    s = dict(HEALTHY_SNAPSHOT, cache_eviction_rate=0.25)
    (b,) = detect({"a": s}, {"a": p}, Thresholds())
    assert (b.type, b.severity, b.impact) == ("cache_capacity", "medium", 15.0)
    assert detect({"a": dict(s, cache_eviction_rate=0.05)}, {"a": p}, Thresholds()) == []


def test_invalidations_and_size_bounds_do_not_depend_on_the_tick():
    """An invalidation every 10 s lands inside 60 s ticks and on window ends; the end-of-window state (cached keys)
    is taken before an invalidation at a window's end, whatever the tick."""
    sc = storm_scenario(10.0, 0.5, max_size=300)
    runs = [run_scenario(Scenario.model_validate(sc.model_dump() | {"tick_s": tick}), seed=3, runtime="local")
            for tick in (60.0, 20.0, 5.0)]
    for other in runs[1:]:
        assert_same(runs[0].metrics, other.metrics)


def test_after_a_ttl_raise_the_hit_ratio_keeps_its_old_level_for_one_old_ttl():
    """A TTL cache (1,000 Zipf keys, 20 lookups/s) whose TTL goes 240 -> 960 s
    at 1,800 s: over the first old TTL after the change the hit ratio is still
    at its old level (an entry filled before the change keeps its expiry, and
    one filled after it hits for at least that long either way), and from then
    on it is at the new one, each within 4 standard errors (batch means over
    60 s windows) of the renewal formula (Jung et al. 2003 via
    ``ttl_cache_hit_rate``): a before/after judge whose after-span starts at
    the change sees none of the effect in that first TTL."""
    old, new, at, end = 240.0, 960.0, 1800.0, 7200.0
    sc = cache_scenario(1000, 1.0, old, 20.0, end, 3, window_s=60.0)
    p = sc.agents[0]
    sim = AgentSim(p, sc.models, Environment(sc.load, [], sc.duration_s), agent_seeds(sc.seed, 1)[0][0], 60.0,
                   sc.optimizer.thresholds.response_time_ms)
    change = [ScheduledChange(at, KnobChange(p.id, "cache_ttl_s.lookup", old, new), "test")]
    closed = []
    for t in np.arange(0.0, end, 600.0):
        closed += sim.step(float(t), float(t) + 600.0, [], change if t == at - 600.0 else [])[1]
    closed += sim.step(end, end, [], [])[1]
    start = np.array([wd.info["t_start_s"] for wd in closed])
    ratio = np.array([wd.table[COLUMN["hits"]].sum() / wd.table[COLUMN["lookups"]].sum() for wd in closed])
    probs = zipf_probabilities(1000, 1.0)
    h_old, h_new = ttl_cache_hit_rate(probs, 20.0, old), ttl_cache_hit_rate(probs, 20.0, new)
    before = ratio[(start >= 600.0) & (start < at)]
    ramp = ratio[(start >= at) & (start < at + old)]
    steady = ratio[start >= at + old]

    def se(x: np.ndarray, batches: int) -> float:
        means = np.array([b.mean() for b in np.array_split(x, batches)])
        return float(means.std(ddof=1) / math.sqrt(batches))

    se_old, se_new = se(before, 4), se(steady, 10)
    assert abs(before.mean() - h_old) <= 4 * se_old, (before.mean(), h_old, se_old)
    assert abs(ramp.mean() - h_old) <= 4 * se_old * math.sqrt(before.size / ramp.size), (ramp.mean(), h_old)
    assert abs(steady.mean() - h_new) <= 4 * se_new, (steady.mean(), h_new, se_new)
    assert h_new - h_old > 20 * max(se_old, se_new)  # the two levels are far apart at these sizes
