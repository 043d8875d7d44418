"""Task scheduling and bulkheads (swarmopt/sim/sched.py): Cobham's formula, WFQ shares, pool isolation."""

import numpy as np
import pytest

from swarmopt.queueing import erlang_c
from swarmopt.schema import Knobs
from swarmopt.sim.sched import ordered, pools, serve_pools
from swarmopt.sim.service import fcfs

LAM = np.array([0.25, 0.25, 0.2])  # per-server arrival rate of classes 0, 1, 2 (load 0.7)
N, BATCHES = 120_000, 30


def _poisson_classes(rng, c: int, n: int = N):
    lam = LAM * c
    arrival = np.cumsum(rng.exponential(1.0 / lam.sum(), n))
    return arrival, rng.choice(3, n, p=lam / lam.sum()), rng.exponential(1.0, n)


def _batch_means(w: np.ndarray, cls: np.ndarray, k: int) -> tuple[float, float]:
    """Mean wait of class ``k`` and its standard error from ``BATCHES`` batch means (consecutive
    decisions: waits are autocorrelated, batches of ~4,000 are about independent at load 0.7)."""
    batches = [b[c == k].mean() for b, c in zip(np.array_split(w, BATCHES), np.array_split(cls, BATCHES),
                                                strict=True)]
    return float(np.mean(batches)), float(np.std(batches, ddof=1) / np.sqrt(BATCHES))


@pytest.mark.parametrize("c", [1, 3])
def test_priority_waits_match_cobham(c):
    """Non-preemptive priority, M/M/c with equal service rates (mu = 1): W_k = C(c, a) / (c mu) /
    ((1 - s_{k-1}) (1 - s_k)), s_k the load of classes 0..k (Cobham 1954). Within 4 batch-means
    standard errors, after a warm-up of the first 2%."""
    arrival, cls, service = _poisson_classes(np.random.default_rng(7 + c), c)
    start, end = ordered(arrival, service, cls, [0.0] * c, "priority")
    assert np.all(start >= arrival) and np.allclose(end - start, service)
    cut = N // 50
    w, k_ = (start - arrival)[cut:], cls[cut:]
    sig = np.cumsum(LAM)
    w0 = erlang_c(c, LAM.sum() * c, 1.0) / c
    for k in range(3):
        theory = w0 / ((1 - (sig[k - 1] if k else 0.0)) * (1 - sig[k]))
        mean, se = _batch_means(w, k_, k)
        assert abs(mean - theory) < 4 * se, (c, k, mean, theory, se)
    # the conservation law: the priority order moves waits between classes, not their load-weighted sum
    fs, _ = fcfs(arrival, service, [0.0] * c)
    assert abs((start - arrival)[cut:].mean() - (fs - arrival)[cut:].mean()) < 0.1 * (fs - arrival).mean()


def test_wfq_shares_follow_weights_when_backlogged():
    """Overloaded (load 2): a backlogged class k gets w_k / sum w of the decisions started."""
    rng = np.random.default_rng(3)
    n = 30_000
    arrival = np.sort(rng.uniform(0, n / 2.0, n))
    cls = rng.choice(3, n)
    start, _ = ordered(arrival, rng.exponential(1.0, n), cls, [0.0], "wfq", (4.0, 2.0, 1.0))
    first = cls[np.argsort(start)][: n // 3]  # the first third started: every class still backlogged
    share = np.bincount(first, minlength=3) / first.size
    assert np.allclose(share, [4 / 7, 2 / 7, 1 / 7], atol=0.02)


def test_bulkhead_isolates_the_slow_tool():
    """A tool 20x slower: without a bulkhead its callers take every worker and everyone queues; with
    a pool of 1 (of 4) for it, the decisions that do not call it wait about as on a healthy agent."""
    rng = np.random.default_rng(5)
    n = 20_000
    arrival = np.cumsum(rng.exponential(1 / 2.0, n))  # 2 decisions/s
    calls = np.zeros((n, 2), dtype=np.int64)
    calls[:, 0] = rng.uniform(size=n) < 0.1  # a tenth of the decisions call the slow tool 0
    base = rng.exponential(0.8, n)
    slow = base + calls[:, 0] * 20.0
    cls = np.zeros(n, dtype=np.int64)
    healthy, _ = fcfs(arrival, base, [0.0] * 4)
    shared, _ = fcfs(arrival, slow, [0.0] * 4)
    pooled, _ = serve_pools(arrival, slow, cls, pools(calls, [0]), [[0.0] * 3, [0.0]], "fcfs", (1.0,) * 3)
    other = calls[:, 0] == 0
    w_healthy = (healthy - arrival)[other].mean()
    w_shared = (shared - arrival)[other].mean()
    w_pooled = (pooled - arrival)[other].mean()
    assert w_shared > 20 * max(w_pooled, 0.05)  # without the bulkhead the slow tool holds every worker
    assert w_pooled < w_healthy + 0.5  # three workers for 90% of the load: about the healthy wait
    assert (pooled - arrival)[~other].mean() > (shared - arrival)[~other].mean()  # the slow tool's own pool fills


def test_bulkhead_must_leave_a_shared_worker():
    with pytest.raises(ValueError, match="bulkhead pools"):
        Knobs(max_concurrency=4, bulkhead={"a": 2, "b": 2})
