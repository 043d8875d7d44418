"""Reviews as tasks in the Strategic Orchestrator's own queue (swarmopt.sim.review): queueing theory and the
cost of lowering an agent's autonomy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from swarmopt import run_scenario
from swarmopt.loader import build_scenario
from swarmopt.overrides import apply_overrides
from swarmopt.queueing import mg1_mean_wait, mmc_mean_wait

from conftest import short

KNOBS = {"max_concurrency": 256, "timeout_s": 120, "max_retries": 0, "confidence_threshold": 0.0}


def desk_scenario(rate: float, autonomy: float, duration_s: float = 14400.0):
    """One agent whose decisions never queue or fail (256 workers, no tools, no timeout, no low-confidence
    escalation) and a reviewer with one reviewer of lognormal review time (median 1 s, sigma 0.5) that never
    escalates itself. Escalation thins the Poisson arrivals independently (probability 1 - autonomy) and the
    requests reach the reviewer after i.i.d. delays (service + one hop), so by the displacement theorem they
    arrive as a Poisson stream: the desk is an M/G/1 queue."""
    worker = {"id": "worker", "name": "W", "base_rate_per_s": rate, "autonomy": autonomy, "knobs": KNOBS}
    reviewer = {"id": "reviewer", "name": "R", "base_rate_per_s": 0.01, "autonomy": 1.0, "knobs": KNOBS,
                "review": {"workers": 1, "service_ms_median": 1000.0, "service_sigma": 0.5}}
    return build_scenario({"name": "review-desk", "duration_s": duration_s, "tick_s": 300, "window_s": 60,
                           "agents": [{"profile": worker}, {"profile": reviewer}],
                           "optimizer": {"policy": "monitor"}, "orchestrator": {"policy": "fixed"}})


def review_wait_s(m: pd.DataFrame) -> pd.Series:
    """Per agent, the mean review wait (s) of its escalated decisions over the run (windows weighted by them)."""
    esc = m["decision_count"] * m["escalation_rate"]
    total = (m["review_wait_ms_mean"].fillna(0.0) * esc).groupby(m["agent"]).sum()
    return total / esc.groupby(m["agent"]).sum() / 1000.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_review_desk_is_an_mg1_queue(seed):
    """At utilization 0.6 the mean wait is the Pollaczek-Khinchine mean, lambda E[S^2] / (2 (1 - rho)),
    with E[S] = e^(sigma^2/2) and E[S^2] = e^(2 sigma^2) for median 1 s: about 1.1 s. Over seeds 1-8 (about
    7,600 reviews each) the measured / formula ratio was 0.93-1.06 (sd 0.04): 15% is over 3.5 sd. The
    utilization (busy time / window) is lambda E[S]: the mean of ~7,600 lognormal review times, CV 0.53, has a
    relative standard error of 0.6%; 3% is 5 of them."""
    sc = desk_scenario(1.06, 0.5)
    m = run_scenario(sc, seed=seed, runtime="local").metrics
    worker, desk = m[m["agent"] == "worker"], m[m["agent"] == "reviewer"]
    lam = desk["reviews"].sum() / sc.duration_s
    mean_s, second = math.exp(0.125), math.exp(0.5)
    assert lam == pytest.approx(1.06 * 0.5, rel=0.05)  # escalation thins the arrivals by 1 - autonomy
    assert desk["review_utilization"].mean() == pytest.approx(lam * mean_s, rel=0.03)
    assert review_wait_s(m)["worker"] == pytest.approx(mg1_mean_wait(lam, mean_s, second), rel=0.15)
    # the escalated decision's response time holds the review: 2 hops + wait + review on top of its service
    hop_s = 0.02
    extra_ms = worker["response_time_ms_mean"].mean() - worker["service_time_ms_mean"].mean()
    assert extra_ms == pytest.approx(0.5 * 1000 * (2 * hop_s + mg1_mean_wait(lam, mean_s, second) + mean_s),
                                     rel=0.15)
    # every escalated decision was reviewed once: reviews started = escalated decisions answered (a few
    # reviews still running at the end are not answered within the run)
    answered = (worker["decision_count"] * worker["escalation_rate"]).sum()
    assert 0 <= desk["reviews"].sum() - answered <= 5


@pytest.fixture(scope="module")
def lowered(mh_scenario):
    """The five shipped agents for two fault-free hours (monitor, autonomy fixed), seed 1, with the Market
    Hunter's autonomy at its profile's 0.85 and lowered to 0.45."""
    base = apply_overrides(short(mh_scenario, 7200, faults=[]), {"optimizer.policy": "monitor",
                                                                  "orchestrator.policy": "fixed"})
    return {a: run_scenario(apply_overrides(base, {"agents.market-hunter.autonomy": a}), seed=1,
                            runtime="local").metrics for a in (0.85, 0.45)}


def test_lowering_one_agents_autonomy_loads_the_orchestrator_and_slows_every_review(lowered):
    """Market Hunter autonomy 0.85 -> 0.45: 40% more of its ~1.2 decisions/s escalate, so the review arrival
    rate about doubles (measured 0.48 -> 0.93/s); the Orchestrator's 3 reviewers, mean review 1.70 s, go
    from about 27% to 52% busy, as the utilization law rho = lambda E[S] / c says (to 3%: the mean of ~3,000
    lognormal review times has a 1% standard error); and every agent's reviews wait longer, not only the
    Market Hunter's: the others' escalated decisions are the same decisions (common random numbers), only the
    queue changed. Their mean wait grew 5-15x over seeds 1-3 (about 30 -> 200-300 ms): at least 3x is asserted.
    The pooled mean wait agrees with the Allen-Cunneen M/G/c approximation (Erlang C wait x (1 + CV^2) / 2;
    about 27 and 200 ms) within a factor 1.6 both ways: the review arrivals are merged and thinned streams,
    near-Poisson but not exactly (a sanity check, not an identity)."""
    hi, lo = lowered[0.85], lowered[0.45]
    mean_s, cv2, c = 1.5 * math.exp(0.125), math.exp(0.25) - 1.0, 3

    def desk(m):
        so = m[m["agent"] == "strategic-orchestrator"]
        return so["reviews"].sum() / 7200.0, so["review_utilization"].mean()

    (lam_hi, rho_hi), (lam_lo, rho_lo) = desk(hi), desk(lo)
    mh_rate = hi.loc[hi["agent"] == "market-hunter", "arrival_rate_per_s"].mean()
    assert lam_lo - lam_hi == pytest.approx(0.40 * mh_rate, rel=0.1)
    for lam, rho in ((lam_hi, rho_hi), (lam_lo, rho_lo)):
        assert rho == pytest.approx(lam * mean_s / c, rel=0.03)
    w_hi, w_lo = review_wait_s(hi), review_wait_s(lo)
    assert (w_lo > 3 * w_hi).all(), pd.DataFrame({"hi": w_hi, "lo": w_lo})
    for m, lam in ((hi, lam_hi), (lo, lam_lo)):
        pooled = review_wait_s(m.assign(agent="all"))["all"]
        approx = mmc_mean_wait(c, lam, 1.0 / mean_s) * (1.0 + cv2) / 2.0
        assert approx / 1.6 < pooled < 1.6 * approx, (pooled, approx)
    # the Market Hunter pays in response time; the others only through the queue
    rt = {a: m.groupby("agent")["response_time_ms_mean"].mean() for a, m in lowered.items()}
    assert rt[0.45]["market-hunter"] > rt[0.85]["market-hunter"] + 300
    assert (rt[0.45].drop("market-hunter") > rt[0.85].drop("market-hunter")).all()


def test_a_reviewed_decision_counts_where_its_answer_came_back(lowered):
    """Arrivals are the same whatever the queue (common random numbers); a reviewed decision is counted in the
    window its answer came back in, so decision counts move a little between windows but not in total (apart
    from the few answers after the end)."""
    hi, lo = lowered[0.85], lowered[0.45]
    assert np.array_equal(hi["arrival_rate_per_s"].to_numpy(), lo["arrival_rate_per_s"].to_numpy())
    arrived = hi.groupby("agent")["arrival_rate_per_s"].sum() * 60.0
    for m in (hi, lo):
        counted = m.groupby("agent")["decision_count"].sum()
        assert ((arrived - counted).abs() <= 5).all()


def test_the_desk_serves_fcfs_up_to_the_horizon_whatever_the_cut():
    """Requests that arrive before the horizon are served FCFS over the workers (ties by sender, then
    sequence number), any later one waits for a later horizon; serving in several cuts gives the answers and
    window figures of one pass, as the BSP tick must not matter."""
    from swarmopt.metrics import WindowData
    from swarmopt.schema import ReviewDesk
    from swarmopt.sim.review import Desk, ReviewRequest

    reqs = [ReviewRequest(t, s, q, "r", z, t - 1.0) for t, s, q, z in
            [(0.5, "b", 0, 0.0), (0.5, "a", 3, 0.0), (1.0, "a", 4, 1.0), (7.0, "b", 1, -1.0), (61.0, "a", 5, 0.0)]]

    def serve(cuts):
        desk = Desk("r", ReviewDesk(workers=2, service_ms_median=2000.0, service_sigma=0.5), 0.02, 3600.0)
        windows: dict[int, WindowData] = {}

        def window_of(t):
            return windows.setdefault(int(t // 60.0), WindowData())

        desk.receive(list(reversed(reqs)))
        out = [r for until in cuts for r in desk.process(until, window_of, 60.0)]
        return out, {k: (w.reviews, round(w.review_busy_s, 9)) for k, w in sorted(windows.items())}

    once, figures = serve([120.0])
    assert serve([0.5, 1.0, 7.0, 7.5, 61.0, 120.0]) == (once, figures)
    assert serve([61.0])[0] == once[:4]  # the request at 61 s waits for a later horizon
    s = 2.0 * math.exp(0.5)
    arrived = {(q.sender, q.seq): q.time for q in reqs}
    start = {(r.receiver, r.seq): arrived[(r.receiver, r.seq)] + r.wait_s for r in once}
    assert start == pytest.approx({("a", 3): 0.5, ("b", 0): 0.5, ("a", 4): 2.5, ("b", 1): 7.0, ("a", 5): 61.0})
    assert {(r.receiver, r.seq): r.wait_s for r in once}[("a", 4)] == pytest.approx(1.5)  # both reviewers busy
    assert once[2].time == pytest.approx(2.5 + s + 0.02)
    assert figures[0][0] == 4 and figures[1][0] == 1


def test_one_reviewer_serves_by_lindleys_recursion_to_the_bit_whatever_the_cut():
    """With one reviewer each review starts at max(its arrival, the previous review's end), and the answers
    and busy times are the same floats however the horizon is cut (no closed form whose rounding depends on
    the batch)."""
    from swarmopt.metrics import WindowData
    from swarmopt.schema import ReviewDesk
    from swarmopt.sim.review import Desk, ReviewRequest

    rng = np.random.default_rng(3)
    times = np.sort(rng.uniform(0.0, 600.0, 200)).tolist()
    zs = rng.standard_normal(200).tolist()
    reqs = [ReviewRequest(t, "a", q, "r", z, t) for q, (t, z) in enumerate(zip(times, zs, strict=True))]

    def serve(cuts):
        desk = Desk("r", ReviewDesk(workers=1, service_ms_median=2500.0, service_sigma=0.7), 0.0, 3600.0)
        windows: dict[int, WindowData] = {}
        desk.receive(list(reqs))
        out = [r for until in cuts for r in desk.process(until, lambda t: windows.setdefault(int(t // 60.0),
                                                                                             WindowData()), 60.0)]
        return out, {k: (w.reviews, w.review_busy_s) for k, w in sorted(windows.items())}

    once = serve([3600.0])
    assert serve(np.arange(7.0, 3600.0, 13.0).tolist() + [3600.0]) == once
    free, expected = 0.0, []
    for t, z in zip(times, zs, strict=True):
        start = max(t, free)
        free = start + 2.5 * math.exp(0.7 * z)
        expected.append((free, start - t))
    assert [(r.time, r.wait_s) for r in once[0]] == expected


def test_a_population_of_reviewers_shares_the_requests():
    """Forty workers escalate to a population of twenty reviewers, each sender about 12 requests over the
    run. Each sender runs its round robin over the reviewers from its own starting point, so every reviewer
    serves a share of the reviews; started at the same reviewer, all senders would send their requests to the
    first twelve reviewers only and the other eight would serve none."""
    worker = {"id": "worker", "name": "W", "base_rate_per_s": 0.1, "autonomy": 0.8, "knobs": KNOBS}
    reviewer = {"id": "reviewer", "name": "R", "base_rate_per_s": 0.001, "autonomy": 1.0, "knobs": KNOBS,
                "review": {"workers": 1, "service_ms_median": 1000.0, "service_sigma": 0.5}}
    sc = build_scenario({"name": "review-population", "duration_s": 600, "tick_s": 300, "window_s": 60,
                         "agents": [{"profile": worker, "count": 40}, {"profile": reviewer, "count": 20}],
                         "optimizer": {"policy": "monitor"}, "orchestrator": {"policy": "fixed"}})
    m = run_scenario(sc, runtime="local").metrics
    reviews = m[m["agent"].str.startswith("reviewer")].groupby("agent")["reviews"].sum()
    assert len(reviews) == 20 and reviews.sum() > 300  # 40 x 0.1/s x 20% x 600 s = 480 expected
    # about 24 each; a count below 40% of the mean is >3 standard deviations away even for Poisson counts
    assert reviews.min() > 0.4 * reviews.mean()
