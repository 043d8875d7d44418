"""A backlog's window means judged by their increments (swarmopt.optimizer.measure.drift_measure): an A/A check
on a random walk with drift, where the level comparisons fail it, its power, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from swarmopt.optimizer.measure import adjusted_measure, drift_measure

AA_TRIALS = 200
ALPHA = 0.05


def rows(values, first: int = 0) -> list[dict]:
    """Window rows (60 s windows from window ``first``) of a metric ``m`` at a steady arrival rate."""
    return [{"decision_count": 50, "m": float(v), "arrival_rate_per_s": 1.0, "t_start_s": 60.0 * (first + i),
             "t_end_s": 60.0 * (first + i + 1)} for i, v in enumerate(values)]


def backlog(seed: int, n_before: int, n_after: int, drift_after: float = 3.0) -> tuple[list[dict], list[dict]]:
    """Window means (s) of a growing backlog: a random walk from 50 whose increments are 3 +- 5 a window before
    the change and ``drift_after`` +- 5 after it. Returns (before rows, after rows)."""
    rng = np.random.default_rng(seed)
    steps = 5.0 * rng.standard_normal(n_before + n_after)
    steps[:n_before] += 3.0
    steps[n_before:] += drift_after
    y = 50.0 + np.cumsum(steps)
    return rows(y[:n_before]), rows(y[n_before:], n_before)


def false_decisions(judge, n_before: int, n_after: int) -> int:
    out = 0
    for seed in range(AA_TRIALS):
        b, a = backlog(seed, n_before, n_after)
        out += judge(b, a, "m", "lower", ALPHA).verdict in ("pass", "fail")
    return out


SPANS = [(5, 5), (10, 10), (15, 15)]


@pytest.mark.parametrize("n_before,n_after", SPANS)
def test_a_change_that_changes_nothing_in_a_growing_backlog_is_rarely_judged(n_before, n_after):
    """A/A check on a random walk with drift (the look spans of a change: 5, 10 and 15 windows a side). Welch's
    test of i.i.d. normal increments is nearly exact, so the false decisions are Binomial(200, ~0.05); the
    test fails if a one-sided binomial test rejects p <= 0.05 at the 1% level (>= 19 of 200). Measured on seeds
    0-199: 13, 10 and 6 of 200. The same check fails for the levels adjusted for a trend (segmented regression),
    whose residuals around the line are autocorrelated, the more so the longer the spans: the spurious
    regression of Granger & Newbold (1974); measured 16 (within the bound at 5 a side), 50 and 80 of 200."""
    increments = false_decisions(drift_measure, n_before, n_after)
    assert stats.binomtest(increments, AA_TRIALS, ALPHA, alternative="greater").pvalue >= 0.01, increments
    if n_before >= 10:
        levels = false_decisions(lambda b, a, m, better, alpha: adjusted_measure(b, a, m, better, alpha,
                                                                                 covariates=("trend",)),
                                 n_before, n_after)
        assert stats.binomtest(levels, AA_TRIALS, ALPHA, alternative="greater").pvalue < 0.01, levels


def test_a_change_that_drains_the_backlog_is_found():
    """Power: after the change the backlog drains by 5 s a window instead of growing by 3 (a capacity raise),
    judged at 10 windows a side. The increments' difference of 8 against their sd of 5 (d = 1.6, 9 and 10
    increments, noncentrality 3.5) is found by a two-sided Welch test at 0.05 with power about 0.9; measured
    183 of 200 (95 of 200 at 5 windows a side, where 4 increments before leave the test little power)."""
    passes = sum(drift_measure(*backlog(seed, 10, 10, drift_after=-5.0), "m", "lower", ALPHA).verdict == "pass"
                 for seed in range(AA_TRIALS))
    assert stats.binomtest(passes, AA_TRIALS, 0.85, alternative="less").pvalue >= 0.01, passes


def test_figures_of_the_increments_comparison():
    """A deterministic case: before 10, 20, 30 (increments 10), after 35, 35 (increments 5, 0). The
    counterfactual mean level carries on from 30 by 10 a window: 30 + 10 x 1.5 = 45; the after mean is 35."""
    m = drift_measure(rows([10.0, 20.0, 30.0]), rows([35.0, 35.0], 3), "m", "lower")
    assert m.before == pytest.approx(45.0) and m.after == pytest.approx(35.0)
    # mean increments 10 before, 2.5 after: 7.5 x 1.5 / 45 = 25% lower; with 2 increments after, not significant
    assert m.improvement_pct == pytest.approx(25.0) and m.method == "increments"
    assert m.ci_low_pct < m.improvement_pct < m.ci_high_pct and m.verdict == "marginal"


def test_no_data_is_never_a_verdict():
    """Too few windows, a non-positive counterfactual and constant increments on both sides are inconclusive."""
    assert drift_measure(rows([1.0, 2.0]), rows([3.0, 4.0], 2), "m", "lower").verdict == "inconclusive"
    assert drift_measure(rows([1.0, 2.0, 3.0]), rows([4.0], 3), "m", "lower").verdict == "inconclusive"
    falling = drift_measure(rows([30.0, 20.0, 10.0]), rows([5.0, 5.0], 3), "m", "lower")
    assert falling.verdict == "inconclusive" and falling.before < 0
    steady = drift_measure(rows([1.0, 2.0, 3.0]), rows([4.0, 5.0], 3), "m", "lower")
    assert steady.verdict == "inconclusive" and math.isnan(steady.p_value)
    with pytest.raises(ValueError, match="better"):
        drift_measure(rows([1.0, 2.0, 3.0]), rows([4.0, 5.0], 3), "m", "down")
