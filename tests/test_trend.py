"""The trend- and load-adjusted window comparison (swarmopt.optimizer.measure.adjusted_measure):
an A/A check with and without a trend or a load change, its power under a trend, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from swarmopt.metrics import metric_spec
from swarmopt.optimizer.measure import adjusted_measure, level_shift, measure

AA_TRIALS = 200
ALPHA = 0.05


def rows(values, load, first: int = 0) -> list[dict]:
    """Window rows (60 s windows from window ``first``) of a metric ``m`` and the arrival rate."""
    return [{"decision_count": 50, "m": float(v), "arrival_rate_per_s": float(x), "t_start_s": 60.0 * (first + i),
             "t_end_s": 60.0 * (first + i + 1)} for i, (v, x) in enumerate(zip(values, load, strict=True))]


def series(seed: int, n_before: int, n_after: int, slope: float, load_effect: float, gain: float = 0.0):
    """Window means of a lower-is-better metric around 100 with noise of sd 5: a trend of ``slope`` a window, a
    load effect (``load_effect`` x 100 per unit of arrival rate, the rate 1.2 +- 0.3 a window) and, after the
    change, a relative ``gain``. Returns (before rows, after rows)."""
    rng = np.random.default_rng(seed)
    n = n_before + n_after
    load = 1.2 + 0.3 * rng.standard_normal(n)
    y = 100.0 + slope * np.arange(n) + load_effect * 100.0 * (load - 1.2) + 5.0 * rng.standard_normal(n)
    y[n_before:] *= 1.0 - gain
    return rows(y[:n_before], load[:n_before]), rows(y[n_before:], load[n_before:], n_before)


def false_decisions(judge, n_before: int, n_after: int, slope: float, load_effect: float) -> int:
    out = 0
    for seed in range(AA_TRIALS):
        b, a = series(seed, n_before, n_after, slope, load_effect)
        out += judge(b, a, "m", "lower", ALPHA).verdict in ("pass", "fail")
    return out


# (before windows, after windows): the first look with the shortest before-span, the first look with a long
# before-span, and a later look
SPANS = [(5, 5), (15, 5), (10, 15)]
DRIFTS = [(0.0, 0.0), (3.0, 0.0), (0.0, 0.5), (-2.0, 0.5)]


@pytest.mark.parametrize("n_before,n_after", SPANS)
@pytest.mark.parametrize("slope,load_effect", DRIFTS)
def test_a_change_that_changes_nothing_is_rarely_judged_whatever_the_trend_and_load(n_before, n_after, slope,
                                                                                       load_effect):
    """A/A check of the adjusted comparison: with no trend and no load effect, with a trend of 3% of the level
    a window (a leak, a ramp), with a load effect, and with both. A false decision is a pass or a fail.

    Expected rate: alpha = 0.05 (two-sided t-test of the level shift with n - p degrees of freedom, exact for
    normal noise). The least-squares shift is unchanged by adding a linear function of the covariates, so the
    verdict of a seed is the same under every drift: the trend and the load cannot bias it. With 200 trials the
    count is Binomial(200, p); the test fails if a one-sided binomial test rejects p <= 0.05 at the 1% level
    (count >= 19). Measured: 6, 10 and 8 of 200 for the three spans."""
    false = false_decisions(adjusted_measure, n_before, n_after, slope, load_effect)
    assert stats.binomtest(false, AA_TRIALS, ALPHA, alternative="greater").pvalue >= 0.01, f"{false}/{AA_TRIALS}"


def test_a_plain_before_after_comparison_fails_the_same_check_under_a_trend():
    """The motivating failure: under the trend, Welch's test on the window means judges most no-op changes
    (every one of 200 with 15 windows before), so the A/A check above must be able to fail."""
    false = false_decisions(measure, 15, 5, 3.0, 0.0)
    assert false > 150
    assert stats.binomtest(false, AA_TRIALS, ALPHA, alternative="greater").pvalue < 0.01


def test_a_real_gain_is_found_under_a_trend_that_hides_it():
    """A 10% gain (about 14 at the after-span's level of about 140) on a metric that grows 3 a window: the
    after-windows are still higher than the before-windows, so the plain comparison calls the change a failure;
    the adjusted one finds the gain (15 windows before, 5 after: standard error of the shift about 5 x 0.78,
    power about 0.95; measured 188 of 200, and 194 plain failures)."""
    adjusted = plain = 0
    for seed in range(AA_TRIALS):
        b, a = series(seed, 15, 5, 3.0, 0.0, gain=0.10)
        adjusted += adjusted_measure(b, a, "m", "lower", ALPHA).verdict == "pass"
        plain += measure(b, a, "m", "lower", ALPHA).verdict == "fail"
    assert adjusted > 0.85 * AA_TRIALS and plain > 0.85 * AA_TRIALS


def test_figures_of_the_adjusted_comparison():
    """A step of -10 on a level of 100 + 2 a window: the after-span would have been about 120 (the trend
    extrapolated), it is 110, so the improvement is about +8%, inside its 95% interval."""
    rng = np.random.default_rng(1)
    y = 100.0 + 2.0 * np.arange(20) + 0.5 * rng.standard_normal(20)
    y[15:] -= 10.0
    m = adjusted_measure(rows(y[:15], np.ones(15)), rows(y[15:], np.ones(5), 15), "m", "lower")
    assert m.method == "segmented:trend"  # a constant load is no covariate
    assert m.before == pytest.approx(2.0 * 17 + 100.0, abs=1.5) and m.after == pytest.approx(y[15:].mean())
    assert m.improvement_pct == pytest.approx(100 * 10 / 134, abs=1.0)
    assert m.ci_low_pct < m.improvement_pct < m.ci_high_pct and m.verdict == "pass"
    assert (m.n_before, m.n_after) == (15, 5)


def test_an_exact_trend_with_no_step_is_inconclusive_and_with_a_step_decided():
    """Memory under a leak is an exact line (the leak is deterministic): no noise to test against. No step is
    no evidence (inconclusive, never a fail as the plain comparison says); a step is a certain change."""
    y = 20.0 + 2.44 * np.arange(10)
    load = 1.0 + 0.1 * np.sin(np.arange(10))
    b, a = rows(y[:5], load[:5]), rows(y[5:], load[5:], 5)
    assert measure(b, a, "m", "lower").verdict == "fail"
    assert adjusted_measure(b, a, "m", "lower").verdict == "inconclusive"
    down = rows(y[5:] - 3.0, load[5:], 5)
    m = adjusted_measure(b, down, "m", "lower")
    assert m.verdict == "pass" and m.p_value == 0.0 and m.improvement_pct > 0
    assert adjusted_measure(b, rows(y[5:] + 3.0, load[5:], 5), "m", "lower").verdict == "fail"


def test_no_data_is_never_a_verdict():
    b, a = series(0, 5, 5, 0.0, 0.0)
    assert adjusted_measure(b[:1], a, "m", "lower").verdict == "inconclusive"
    assert adjusted_measure(b, [], "m", "lower").verdict == "inconclusive"
    zero = rows([0.0] * 5, [1.0] * 5)
    assert adjusted_measure(zero, rows([0.0] * 5, [1.0] * 5, 5), "m", "higher").verdict == "inconclusive"
    nan = [dict(r, m=math.nan) for r in a]
    assert adjusted_measure(b, nan, "m", "lower").verdict == "inconclusive"
    with pytest.raises(ValueError, match="better"):
        adjusted_measure(b, a, "m", "up")


def test_level_shift_drops_covariates_it_cannot_fit():
    y = np.array([1.0, 2.0, 3.0, 5.0, 6.0, 7.0])
    after = np.array([False] * 3 + [True] * 3)
    fit = level_shift(y, after, {"trend": np.arange(6.0), "load": np.ones(6)})
    assert fit.covariates == ("trend",) and fit.shift == pytest.approx(1.0) and fit.df == 3
    # 4 windows leave no room for two covariates and 2 residual degrees of freedom
    fit = level_shift(y[1:5], after[1:5], {"trend": np.arange(4.0), "load": np.array([1.0, 2.0, 2.0, 1.0])})
    assert fit.covariates == () and fit.shift == pytest.approx(3.0)
    with pytest.raises(ValueError, match="before and some after"):
        level_shift(y, np.ones(6, dtype=bool), {})


def filling(seed: int, n_after: int, gain: float) -> tuple[list[dict], list[dict]]:
    """Window hit rates of a cache around 0.30 (noise sd 0.03, the arrival rate 1.2 +- 0.3 a window, 0.1 of hit
    rate per unit of it), 5 windows before a change and ``n_after`` after, where the hit rate rises by ``gain``
    over the first 5 after-windows (the cache fills for one TTL of 5 windows) and then holds."""
    rng = np.random.default_rng(seed)
    n = 5 + n_after
    load = 1.2 + 0.3 * rng.standard_normal(n)
    y = 0.30 + 0.1 * (load - 1.2) + 0.03 * rng.standard_normal(n)
    y[5:] += gain * np.minimum(1.0, np.arange(1, n_after + 1) / 5)
    return rows(y[:5], load[:5]), rows(y[5:], load[5:], 5)


@pytest.mark.parametrize("metric", ["cache_hit_rate", "cost_per_success_usd"])
@pytest.mark.parametrize("n_after", [5, 10, 15])
def test_a_gain_that_builds_up_while_a_cache_fills_is_found_when_only_the_load_is_adjusted_for(n_after, metric):
    """A cache metric or a spend figure, which a cache's hits cut (metrics.METRICS: covariates ("load",)): a gain of
    0.15 (+50% of a hit rate) that builds up over the first 5 after-windows. Fitting a trend takes the rise for one
    and leaves the change little: measured 1, 15 and 109 passes of 200 at 5, 10 and 15 after-windows; adjusted for
    the load alone, 138, 199 and 200. Its A/A rate under a load effect stays at alpha: with no gain, 12, 18 and 7 of
    200 (binomial criterion above)."""
    load_only = dict(covariates=metric_spec(metric).covariates)
    assert load_only["covariates"] == ("load",)
    gains = [filling(s, n_after, 0.15) for s in range(AA_TRIALS)]
    found = sum(adjusted_measure(*g, "m", "higher", ALPHA, **load_only).verdict == "pass" for g in gains)
    trend = sum(adjusted_measure(*g, "m", "higher", ALPHA).verdict == "pass" for g in gains)
    false = sum(adjusted_measure(*filling(s, n_after, 0.0), "m", "higher", ALPHA, **load_only).verdict
                in ("pass", "fail") for s in range(AA_TRIALS))
    assert found > {5: 0.55, 10: 0.9, 15: 0.9}[n_after] * AA_TRIALS and found > trend + 40
    assert stats.binomtest(false, AA_TRIALS, ALPHA, alternative="greater").pvalue >= 0.01, f"{false}/{AA_TRIALS}"
