"""Tests for the Kayenta-style canary judge (swarmopt.optimizer.canary).

Every data set comes from a fixed-seed numpy Generator so each run sees the
same numbers; the statistical assertions carry margins that hold for any seed
with high probability, so the seeds are not tuned to make them pass.
"""
import math

import numpy as np
import pytest
from scipy import signal, stats

from swarmopt.optimizer import canary
from swarmopt.optimizer.canary import (
    MetricVerdict,
    autocorrelation_time,
    combine,
    hodges_lehmann,
    judge_latency,
    judge_proportion,
    thin,
)


def _lognormal_ms(rng, median, sigma, n):
    return rng.lognormal(math.log(median), sigma, n)


def _sigma_for_variance_ratio(sigma0: float, ratio: float) -> float:
    """Lognormal sigma whose variance is ``ratio`` times that of sigma0 at the same median.

    Var = (e^{s^2} - 1) e^{s^2} * median^2; solve u^2 - u - c = 0 for u = e^{s^2}.
    """
    u0 = math.exp(sigma0**2)
    c = ratio * (u0 - 1) * u0
    return math.sqrt(math.log((1 + math.sqrt(1 + 4 * c)) / 2))


# --- known failure modes of a pure location test --------------------------------


def assert_a_location_test_is_blind(before, after):
    """Mann-Whitney sees no difference, and the judge with its tail and spread
    guards switched off says marginal: only the guards can fail the change."""
    assert stats.mannwhitneyu(after, before, alternative="two-sided").pvalue > 0.05
    assert judge_latency(before, after, tail_tolerance=math.inf, variance_ratio_max=math.inf).outcome == "marginal"


def test_kayenta_780_same_median_ten_times_variance_fails():
    rng = np.random.default_rng(780)
    sigma_after = _sigma_for_variance_ratio(0.3, 10.0)
    before = _lognormal_ms(rng, 1000.0, 0.3, 300)
    after = _lognormal_ms(rng, 1000.0, sigma_after, 300)

    # Same median and log-symmetric: P(after > before) = 1/2, so the location
    # test has nothing to see. This is the blind spot kayenta#780 reports.
    assert_a_location_test_is_blind(before, after)

    verdict = judge_latency(before, after)
    assert verdict.outcome == "fail"
    assert any(r.startswith("spread grew") for r in verdict.reasons)
    # With the tail check switched off the spread check alone still fails it.
    assert judge_latency(before, after, tail_tolerance=math.inf).outcome == "fail"


def test_kayenta_426_sparse_errors_fail():
    # Error rate 0/500 -> 6/500. The pooled rate 0.006 puts expected error
    # counts at 3 < 5, so the normal approximation is not trusted and Fisher's
    # exact test decides (two-sided p ~= 0.031 < 0.05).
    verdict = judge_proportion(0, 500, 6, 500, better="lower", metric="error_rate")
    assert verdict.outcome == "fail"
    assert any("Fisher" in r for r in verdict.reasons)
    assert verdict.p_value == pytest.approx(0.0308, abs=1e-3)
    assert verdict.ci_low > 0.0  # Newcombe interval excludes "no change"

    # The same data as per-request 0/1 indicators is invisible to a location
    # test: the median pairwise difference and its whole CI are 0, which is
    # why a Mann-Whitney judge classified kayenta#426's sparse errors as Pass.
    before = np.zeros(500)
    after = np.zeros(500)
    after[:6] = 1.0
    assert hodges_lehmann(before, after) == (0.0, 0.0, 0.0)


def test_spinnaker_6278_rare_100x_outliers_fail_via_tail_check():
    rng = np.random.default_rng(6278)
    before = _lognormal_ms(rng, 100.0, 0.2, 200)
    after = _lognormal_ms(rng, 100.0, 0.2, 200)
    after[np.arange(after.size) % 100 < 7] *= 100.0  # 7 of every 100 tasks, 14 in all

    # 7% of values moved to the top shifts P(after > before) only to ~0.535,
    # too little for the location test at n=200.
    assert_a_location_test_is_blind(before, after)

    verdict = judge_latency(before, after)
    assert verdict.outcome == "fail"
    assert any(r.startswith("p95 rose") for r in verdict.reasons)
    # The tail check alone is enough.
    assert judge_latency(before, after, variance_ratio_max=math.inf).outcome == "fail"


# --- ordinary verdicts -------------------------------------------------------------


def test_clear_improvement_passes_with_ci_around_true_shift():
    rng = np.random.default_rng(1)
    before = rng.normal(100.0, 10.0, 200)
    after = 0.7 * rng.normal(100.0, 10.0, 200)
    # after - before ~ N(-30, sqrt(100 + 49)), symmetric, so the HL estimand
    # (median of after_j - before_i) is exactly -30 ms.
    true_shift = -30.0

    verdict = judge_latency(before, after)
    assert verdict.outcome == "pass"
    assert verdict.ci_low <= true_shift <= verdict.ci_high
    assert verdict.ci_high < 0.0
    assert verdict.relative_change == pytest.approx(-0.3, abs=0.03)


def test_clearly_worse_change_fails():
    rng = np.random.default_rng(2)
    before = _lognormal_ms(rng, 100.0, 0.5, 200)
    after = 1.5 * _lognormal_ms(rng, 100.0, 0.5, 200)
    verdict = judge_latency(before, after)
    assert verdict.outcome == "fail"
    assert verdict.ci_low > 0.0


def test_higher_is_better_mirrors_direction_and_tail():
    rng = np.random.default_rng(3)
    before = rng.normal(1000.0, 50.0, 200)
    faster = 1.3 * rng.normal(1000.0, 50.0, 200)
    assert judge_latency(before, faster, better="higher", metric="tasks_per_s").outcome == "pass"
    assert judge_latency(before, faster, better="lower").outcome == "fail"

    collapsed = faster.copy()
    collapsed[::10] *= 0.3  # median improves, but 10% of tasks collapse
    verdict = judge_latency(before, collapsed, better="higher")
    assert verdict.outcome == "fail"
    assert any(r.startswith("p5 fell") for r in verdict.reasons)


def test_aa_identical_distributions_are_mostly_marginal():
    trials = 200
    outcomes = []
    for seed in range(trials):
        before = _lognormal_ms(np.random.default_rng(seed), 100.0, 0.5, 200)
        after = _lognormal_ms(np.random.default_rng(10_000 + seed), 100.0, 0.5, 200)
        outcomes.append(judge_latency(before, after).outcome)
    false_alarms = sum(o in ("pass", "fail") for o in outcomes)
    # The judge's false-alarm rate is <= alpha = 0.05 by construction
    # (Bonferroni: 0.04 for the location test, 0.01 across the three guard
    # tests). So false_alarms ~ Binomial(200, p <= 0.05), mean <= 10, and a
    # correct judge exceeds the 99th percentile (18, i.e. 9%) in at most 1% of
    # seed sets; tuning seeds to pass is therefore not what makes this hold.
    bound = stats.binom.ppf(0.99, trials, 0.05)
    assert false_alarms <= bound
    assert outcomes.count("marginal") + false_alarms == trials


def _routed(rng, fast_share: float, n: int):
    """Decisions routed by complexity: ``fast_share`` of them on a fast tier (about 400 ms), the rest on a
    strong one (about 2,200 ms): a bimodal distribution."""
    fast = rng.random(n) < fast_share
    return np.where(fast, _lognormal_ms(rng, 400.0, 0.2, n), _lognormal_ms(rng, 2200.0, 0.2, n))


def test_a_mean_target_is_not_failed_on_its_tail_when_its_mean_is_better():
    """Routing 80% of the decisions to a fast tier cuts the mean response time (about 1,046 -> 770 ms) and the
    median, and raises the p95 far past the tail tolerance: the tail check fails it, but the objective is the
    mean, which a Welch test finds better; at a 50% fast share the mean is worse (about 1,320 ms) and it fails."""
    rng = np.random.default_rng(7)
    before = _lognormal_ms(rng, 1000.0, 0.3, 600)
    after = _routed(rng, 0.8, 600)
    assert after.mean() < before.mean() and np.percentile(after, 95) > 1.2 * np.percentile(before, 95)
    plain = judge_latency(before, after, metric="response_time_ms_mean")
    assert plain.outcome == "fail" and any("p95 rose" in r for r in plain.reasons)
    mean = judge_latency(before, after, metric="response_time_ms_mean", mean_target=True)
    assert mean.outcome == "pass" and any("the mean is significantly better" in r for r in mean.reasons)
    worse = _routed(rng, 0.5, 600)
    assert worse.mean() > before.mean()
    assert judge_latency(before, worse, metric="response_time_ms_mean", mean_target=True).outcome == "fail"


def test_a_mean_target_never_turns_a_decision_into_a_fail_and_keeps_the_aa_rate():
    """A/A pairs of a skewed metric: the mean rule only lifts a fail whose mean is better, so every outcome is
    the plain judge's or a fail made pass/marginal, and false decisions stay within alpha (binomial bound)."""
    trials, decided = 300, 0
    for seed in range(trials):
        before = _lognormal_ms(np.random.default_rng(seed), 100.0, 0.8, 200)
        after = _lognormal_ms(np.random.default_rng(20_000 + seed), 100.0, 0.8, 200)
        plain = judge_latency(before, after).outcome
        mean = judge_latency(before, after, mean_target=True).outcome
        assert mean == plain or plain == "fail"
        decided += mean in ("pass", "fail")
    assert decided <= stats.binom.ppf(0.99, trials, 0.05)


# --- no data / bad data -------------------------------------------------------------


def test_fewer_than_min_samples_is_inconclusive():
    rng = np.random.default_rng(4)
    verdict = judge_latency(rng.normal(100, 10, 19), rng.normal(50, 10, 200))
    assert verdict.outcome == "inconclusive"
    assert (verdict.n_before, verdict.n_after) == (19, 200)
    assert math.isnan(verdict.p_value)


def test_empty_and_all_nan_are_inconclusive():
    assert judge_latency([], []).outcome == "inconclusive"
    assert judge_latency(np.array([]), np.ones(50)).outcome == "inconclusive"
    assert judge_latency(np.full(50, np.nan), np.ones(50)).outcome == "inconclusive"
    assert judge_proportion(0, 0, 0, 0).outcome == "inconclusive"


def test_nans_are_dropped_and_counted():
    rng = np.random.default_rng(5)
    before = rng.normal(100, 10, 100)
    before[:7] = np.nan
    verdict = judge_latency(before, rng.normal(100, 10, 100))
    assert verdict.n_before == 93
    assert any("7 before" in r for r in verdict.reasons)
    assert not math.isnan(verdict.shift)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="better"):
        judge_latency(np.ones(30), np.ones(30), better="faster")
    with pytest.raises(ValueError, match="better"):
        judge_proportion(1, 30, 1, 30, better="up")
    with pytest.raises(ValueError, match="non-negative"):
        judge_proportion(-1, 30, 1, 30)
    with pytest.raises(ValueError, match="hits exceed"):
        judge_proportion(31, 30, 1, 30)
    with pytest.raises(ValueError, match="inf"):
        judge_latency(np.ones(30), np.r_[np.ones(29), np.inf])
    with pytest.raises(ValueError, match="empty|at least one"):
        hodges_lehmann([], [1.0])


def test_constant_samples_do_not_crash():
    verdict = judge_latency(np.full(30, 5.0), np.full(30, 5.0))
    assert verdict.outcome == "marginal"
    assert verdict.shift == 0.0


# --- proportions, combine, Hodges-Lehmann -------------------------------------------


def test_proportion_pass_marginal_and_types():
    improved = judge_proportion(400, 500, 450, 500)
    assert improved.outcome == "pass"
    assert improved.ci_low > 0 and "pooled z" in improved.reasons[0]
    assert judge_proportion(450, 500, 452, 500).outcome == "marginal"
    worse = judge_proportion(450, 500, 400, 500)
    assert worse.outcome == "fail"
    for value in (worse.before, worse.after, worse.shift, worse.ci_low, worse.p_value):
        assert type(value) is float


def test_combine_worst_wins():
    def verdict(outcome):
        return MetricVerdict("m", outcome, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, ())

    assert combine([]) == "inconclusive"
    assert combine([verdict("pass"), verdict("pass")]) == "pass"
    assert combine([verdict("pass"), verdict("marginal")]) == "marginal"
    assert combine([verdict("marginal"), verdict("inconclusive")]) == "inconclusive"
    assert combine([verdict("inconclusive"), verdict("fail"), verdict("pass")]) == "fail"


def test_hodges_lehmann_small_exact_case():
    # Pairwise differences of [4,5,6] - [1,2,3] are 1..5 (9 of them): median 3.
    shift, lo, hi = hodges_lehmann([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert shift == 3.0
    assert lo <= 1.0 and hi >= 5.0  # n=3: the 95% level needs the full range


def test_hodges_lehmann_ci_coverage():
    trials, covered = 300, 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        _, lo, hi = hodges_lehmann(rng.exponential(10.0, 40), rng.exponential(10.0, 40) + 3.0)
        covered += lo <= 3.0 <= hi
    # Pure shift model, nominal 95%: misses ~ Binomial(300, <=0.05); allow the
    # 99.9th percentile so only a real coverage defect trips it.
    assert trials - covered <= stats.binom.ppf(0.999, trials, 0.05)


@pytest.mark.parametrize("seed", range(4))
def test_pair_selection_matches_numpy_on_every_pair(seed):
    # The selection never builds the m*n differences; it must return exactly numpy's median and
    # linear quantiles of them, ties, coarse values and extreme quantiles included.
    rng = np.random.default_rng(seed)
    cases = [(rng.lognormal(5, 1, 300), rng.lognormal(5.2, 1, 280)),
             (rng.integers(0, 4, 260).astype(float), rng.integers(0, 4, 240).astype(float)),
             (1e6 + 1e-3 * rng.normal(size=250), 1e6 + 1e-3 * rng.normal(size=230)),
             (rng.exponential(1.0, 400), np.full(150, 2.0))]
    for x, y in cases:
        assert x.size * y.size >= canary._SELECT_FROM
        for q in ([0.0, 1.0], [0.025, 0.975], rng.uniform(size=2)):
            d = np.subtract.outer(y, x).ravel()
            median, quantiles = canary._median_and_quantiles(x, y, np.array(q, dtype=float))
            assert median == np.median(d)
            assert np.array_equal(quantiles, np.quantile(d, q))


def test_hodges_lehmann_thinning_matches_exact():
    rng = np.random.default_rng(6)
    before = _lognormal_ms(rng, 100.0, 0.5, 2000)
    after = 1.05 * _lognormal_ms(rng, 100.0, 0.5, 3000)  # 6M pairs -> thinned
    shift, lo, hi = hodges_lehmann(before, after)

    d = np.sort(np.subtract.outer(after, before).ravel())
    m, n = before.size, after.size
    c = math.floor(m * n / 2 - stats.norm.ppf(0.975) * math.sqrt(m * n * (m + n + 1) / 12))
    exact = (np.median(d), d[c - 1], d[m * n - c])
    width = exact[2] - exact[1]
    for got, want in zip((shift, lo, hi), exact, strict=True):
        assert abs(got - want) < 0.02 * width


# --- autocorrelated samples (tasks queued behind the same busy period) -------------


def _ar1(rng, phi, n):
    """Stationary AR(1) with unit innovations: tau = (1 + phi) / (1 - phi)."""
    e = rng.standard_normal(n)
    e[0] /= math.sqrt(1 - phi**2)
    return signal.lfilter([1.0], [1.0, -phi], e)


def test_autocorrelation_time_of_iid_and_ar1_series():
    rng = np.random.default_rng(11)
    iid = [autocorrelation_time(rng.lognormal(0, 1, 500)) for _ in range(50)]
    assert np.median(iid) < 1.3 and min(iid) >= 1.0
    # AR(1), phi = 0.8: tau = 9 for the values (the ranks' is close to it). Over 50
    # series of 2000 the median estimate lies within 25% (one estimate's sd is ~20%, the median's ~4%).
    ar = [autocorrelation_time(_ar1(rng, 0.8, 2000)) for _ in range(50)]
    assert np.median(ar) == pytest.approx(9.0, rel=0.25)
    assert autocorrelation_time([1.0, 2.0]) == 1.0 and autocorrelation_time(np.ones(50)) == 1.0


def test_thin_keeps_n_over_tau_evenly_spaced_values():
    x = np.arange(100.0)
    assert thin(x, 1.0).tolist() == x.tolist()
    assert thin(x, 4.0).tolist() == list(range(0, 100, 4))
    assert thin(x, 3.5).size == 28 and thin(x, 1000.0).tolist() == [0.0] and thin([], 2.0).size == 0
    with pytest.raises(ValueError):
        thin(x, 0.5)


def test_thinning_restores_the_false_alarm_rate_on_autocorrelated_aa_pairs():
    # 200 A/A pairs of AR(1) series (phi = 0.8, n = 400 a side): on raw values
    # Mann-Whitney sees ~9x too much evidence and calls a shift far more often than
    # alpha (measured 93/200); thinned to n / tau it stays near alpha (9/200).
    # Binomial(200, 0.05): mean 10, sd 3.1; the bounds (<= 20 thinned, >= 40 raw) are
    # > 3 sd from 10 on either side.
    rng = np.random.default_rng(12)
    raw = thinned = 0
    for _ in range(200):
        b, a = _ar1(rng, 0.8, 400) + 10, _ar1(rng, 0.8, 400) + 10
        raw += stats.mannwhitneyu(a, b).pvalue < 0.05
        tb, ta = autocorrelation_time(b), autocorrelation_time(a)
        thinned += stats.mannwhitneyu(thin(a, ta), thin(b, tb)).pvalue < 0.05
    assert raw >= 40 and thinned <= 20, (raw, thinned)
