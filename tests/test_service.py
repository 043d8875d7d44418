"""The vectorized service model against plain sequential references."""

import heapq

import numpy as np
import pytest

from swarmopt.schema import CircuitBreaker
from swarmopt.sim.breaker import Breaker
from swarmopt.sim.service import attempts, breaker_calls, fcfs, first_success, ttl_cache


def ttl_cache_reference(t, keys, fills, ttl, expiry):
    if ttl <= 0:  # a TTL of 0 turns the cache off, entries left from before included
        return np.zeros(len(t), dtype=bool)
    hit = []
    for ti, k, f in zip(t, keys, fills, strict=True):
        if ti < expiry[k]:
            hit.append(True)
            continue
        hit.append(False)
        if f and ttl > 0:
            expiry[k] = ti + ttl
    return np.array(hit, dtype=bool)


def fcfs_reference(arrival, service, workers):
    heap = list(workers)
    heapq.heapify(heap)
    start = []
    for a, s in zip(arrival, service, strict=True):
        st = max(a, heap[0])
        heapq.heapreplace(heap, st + s)
        start.append(st)
    start = np.array(start)
    return start, start + service, sorted(heap)


@pytest.mark.parametrize("ttl", [0.0, 0.5, 5.0, 60.0])
@pytest.mark.parametrize("seed", range(5))
def test_ttl_cache_matches_sequential_reference(ttl, seed):
    rng = np.random.default_rng(seed)
    n, keyspace = 400, 30
    t = np.sort(rng.uniform(0, 60, n))
    keys = rng.integers(0, keyspace, n)
    fills = rng.uniform(size=n) > 0.3
    start_exp = np.where(rng.uniform(size=keyspace) < 0.3, rng.uniform(0, 20, keyspace), -1.0)
    exp_a, exp_b = start_exp.copy(), start_exp.copy()
    got = ttl_cache(t, keys, fills, ttl, exp_a)
    want = ttl_cache_reference(t, keys, fills, ttl, exp_b)
    assert np.array_equal(got, want)
    if ttl > 0:
        assert np.array_equal(exp_a, exp_b)


@pytest.mark.parametrize("c", [1, 2, 4, 16])
@pytest.mark.parametrize("load", [0.3, 0.9, 1.5])
def test_fcfs_matches_heap_reference(c, load):
    rng = np.random.default_rng(c * 10 + int(load * 10))
    n = 2000
    service = rng.exponential(1.0, n)
    arrival = np.sort(rng.uniform(0, n / (c * load), n))
    workers = sorted(rng.uniform(0, 3, c).tolist())
    w = list(workers)
    start, end = fcfs(arrival, service, w)
    ref_start, ref_end, ref_workers = fcfs_reference(arrival, service, workers)
    np.testing.assert_allclose(start, ref_start, rtol=0, atol=1e-9)
    np.testing.assert_allclose(end, ref_end, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sorted(w), ref_workers, rtol=0, atol=1e-9)
    assert np.all(start >= arrival)


def test_attempts_retry_until_the_tool_call_succeeds():
    # one decision, three attempts: the tool errs on attempt 0, succeeds on 1
    err = np.array([[True, False, False]])
    stop = first_success(err)
    assert stop.tolist() == [1]
    out = attempts(np.full((1, 3), 0.5), [np.full((1, 3), 0.2)], [0.01], [np.array([False])], [stop],
                   [np.array([False])], parallel=False, timeout_s=10.0)
    assert out["ok"].tolist() == [True]
    assert out["attempts"].tolist() == [2]
    assert out["service"][0] == pytest.approx(2 * 0.7)
    assert out["calls"].tolist() == [[2]]


def test_attempts_timeout_costs_the_timeout_and_a_kept_answer_is_reused():
    # attempt 0 times out although its tool call succeeded; attempt 1 reuses the answer
    model = np.array([[5.0, 0.5]])
    out = attempts(model, [np.array([[0.3, 0.3]])], [0.01], [np.array([False])], [np.array([0])],
                   [np.array([False])], parallel=True, timeout_s=2.0)
    assert out["attempts"].tolist() == [2]
    assert out["service"][0] == pytest.approx(2.0 + 0.5)
    assert out["calls"].tolist() == [[1]]


def test_a_cache_hit_answers_every_attempt_without_calls():
    out = attempts(np.array([[0.5, 0.5]]), [np.array([[9.0, 9.0]])], [0.01], [np.array([True])],
                   [np.array([2])], [np.array([False])], parallel=False, timeout_s=10.0)
    assert out["service"][0] == pytest.approx(0.51)
    assert out["hits"].tolist() == [1] and out["calls"].tolist() == [[0]]


def test_breaker_rejection_skips_the_tool_and_marks_the_decision_degraded():
    cfg = CircuitBreaker(enabled=True, minimum_calls=4, window_calls=4, minimum_calls_traffic_s=0,
                         open_duration_s=100)
    t = np.arange(10.0)
    err = np.ones((10, 1), dtype=bool)
    hit, stop, rejected = breaker_calls(t, np.zeros(10, int), err, 0.0, np.full(1, -1.0), Breaker(cfg))
    assert not hit.any()
    assert rejected.tolist() == [False] * 4 + [True] * 6  # opens after 4 failed calls
    out = attempts(np.full((10, 1), 0.5), [np.full((10, 1), 0.2)], [0.0], [hit], [stop], [rejected],
                   parallel=False, timeout_s=10.0)
    assert out["ok"].tolist() == [False] * 4 + [True] * 6
    assert out["degraded"].tolist() == [False] * 4 + [True] * 6
    assert out["service"][4:].tolist() == [0.5] * 6
