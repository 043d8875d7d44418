"""Kayenta-style canary judge for before/after configuration changes.

The optimizer samples a per-task metric before and after a config change and
asks whether it helped. The core is Kayenta's ``MannWhitneyClassifier``:
Mann-Whitney U plus the Hodges-Lehmann shift and its CI (Kayenta's
NetflixACAJudge: confLevel=0.98, and a verdict only when the CI clears
tolerance=0.25 x |HL estimate|). Known blind spots of that location test, and
the check that closes each here:

* spinnaker/kayenta#780, re-posted as spinnaker/spinnaker#6278 ("How to
  Overcome MannWhitney Judge Shortcomings"), Case 1 "Increase in Metric
  Variability": baseline and canary with similar centre but very different
  spread are classified Pass; the reporter expected Fail. -> spread check.
* spinnaker/spinnaker#6278, comment of 2021-07-12: experiment = seven 100.0s
  and three 1.0s vs ten 1.0s Passed (tolerance=0.25, confLevel=0.98): at n=10
  the 98% CI lower bound (~7e-5) did not clear 0.25 x HL estimate (~24.75);
  it failed only once an 8th value was raised to 100. -> tail check.
* spinnaker/kayenta#426 ("Mann-Whitney with sparse data"): experiment
  [0,1,2,1,0,0] vs six zeros classified Pass instead of High, as for a
  service whose error rate is usually zero. -> ``judge_proportion`` on
  counts, with Fisher's exact test when cells are sparse.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import fft, special, stats

from swarmopt.optimizer.stat_tests import iqr, mannwhitneyu, tied_ranks, variance_inflation, welch_ttest

Outcome = Literal["pass", "marginal", "fail", "inconclusive"]

# combine(): worst wins. "fail" outranks "inconclusive" because a measured
# regression on one metric blocks the change whatever the others say; missing
# data outranks "marginal" because an uncertified metric must send the
# optimizer back for more samples rather than be read as "no change".
_SEVERITY = {"pass": 0, "marginal": 1, "inconclusive": 2, "fail": 3}
_MAX_PAIRS = 250_000  # beyond this hodges_lehmann thins
_SELECT_FROM = 40_000  # from this many pairs on, order statistics are selected without building them all
# Share of judge_latency's alpha for its three guard tests (Bonferroni): each
# guard adds false alarms to the location test's, and A/A must stay <= alpha.
_GUARD_SHARE = 0.2
_NAN = math.nan


@dataclass(frozen=True)
class MetricVerdict:
    """One metric's verdict. Floats are plain Python floats, NaN when inconclusive;
    before/after are medians or proportions, shift = after - before with its
    1 - alpha CI, relative_change = shift / |before| (0.0 when before == 0)."""

    metric: str
    outcome: Outcome
    n_before: int
    n_after: int
    before: float
    after: float
    shift: float
    ci_low: float
    ci_high: float
    relative_change: float
    p_value: float
    reasons: tuple[str, ...]


def _check_args(better: str, alpha: float) -> int:
    """Return +1 if increases are bad (better="lower"), -1 otherwise."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return 1 if better == "lower" else -1


def _clean(values) -> tuple[np.ndarray, int]:
    """Flatten to float64 and drop NaNs; return (values, number dropped)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if np.isfinite(arr).all():  # the common case, in one pass and with no copy
        return arr, 0
    if np.isinf(arr).any():
        # A timeout stored as inf would poison every statistic or, if dropped,
        # hide the regression; the caller must cap it at a finite value.
        raise ValueError("values must not contain +/-inf; cap timeouts at a finite value")
    keep = ~np.isnan(arr)
    return arr[keep], int(arr.size - np.count_nonzero(keep))


def _rel(delta: float, base: float) -> float:
    return 0.0 if base == 0 or math.isnan(base) else float(delta / abs(base))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 else (math.inf if num > 0 else 1.0)


def hodges_lehmann(before, after, alpha: float = 0.05, tau_before: float = 1.0,
                   tau_after: float = 1.0) -> tuple[float, float, float]:
    """Hodges-Lehmann shift of ``after`` vs ``before`` with Moses' distribution-free CI.

    ``before`` (m values) and ``after`` (n values) are 1-D float array-likes
    (NaNs dropped); alpha is the two-sided miscoverage. Returns floats
    (shift, ci_low, ci_high) in the data's units: shift = median of the m*n
    differences D = after_j - before_i, CI = [D_(C), D_(mn+1-C)] with
    C = floor(mn/2 - z_{1-alpha/2} sqrt(mn(m+n+1)/12 k)), the normal
    approximation of the Mann-Whitney U critical value (Lehmann 1963;
    Hollander & Wolfe); floor() errs wide, C < 1 gives the full range of D.
    k is 1 for independent values; for series with autocorrelation times
    ``tau_before``, ``tau_after`` it is U's variance inflation
    (:func:`~swarmopt.optimizer.stat_tests.variance_inflation`), so the CI
    excludes 0 where :func:`~swarmopt.optimizer.stat_tests.mannwhitneyu` with
    those times rejects at alpha (up to its continuity and tie corrections).
    Above 250,000 pairs both samples are thinned to evenly spaced quantiles
    (deterministic, no RNG) and C is read as a fraction of the full m*n, so
    the CI keeps the width of the full sample sizes.

    Raises ValueError if a sample is empty after dropping NaNs, or bad alpha.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    x, _ = _clean(before)
    y, _ = _clean(after)
    if x.size == 0 or y.size == 0:
        raise ValueError("hodges_lehmann needs at least one value in each sample")
    m, n = x.size, y.size
    mn = m * n
    if mn > _MAX_PAIRS:
        kx = min(m, max(math.isqrt(_MAX_PAIRS), _MAX_PAIRS // n))
        ky = min(n, _MAX_PAIRS // kx)
        x = np.quantile(x, (np.arange(kx) + 0.5) / kx)
        y = np.quantile(y, (np.arange(ky) + 0.5) / ky)
    z = special.ndtri(1.0 - alpha / 2.0)
    k = variance_inflation(m, n, tau_before, tau_after)
    c = max(1, math.floor(mn / 2.0 - z * math.sqrt(mn * (m + n + 1) / 12.0 * k)))
    span = max(mn - 1, 1)  # 0-based ranks c-1 and mn-c, as fractions of full D
    med, (lo, hi) = _median_and_quantiles(x, y, np.array([(c - 1) / span, max(c - 1, mn - c) / span]))
    return med, float(lo), float(hi)


def _median_and_quantiles(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> tuple[float, np.ndarray]:
    """``np.median(d)`` and ``np.quantile(d, q)`` (linear) of the differences
    ``d = np.subtract.outer(y, x).ravel()`` of two NaN-free 1-D arrays: the same
    order statistics (:func:`_pair_order_statistics`) combined with the same
    floating-point operations as numpy's, without building d."""
    n = x.size * y.size
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    nxt = prev + 1
    prev[virtual >= n - 1] = nxt[virtual >= n - 1] = -1
    prev[virtual < 0] = nxt[virtual < 0] = 0
    prev, nxt = prev.astype(np.intp) % n, nxt.astype(np.intp) % n
    mid = np.array([n // 2 - 1, n // 2] if n % 2 == 0 else [(n - 1) // 2])
    ranks = np.unique(np.concatenate((mid, prev, nxt)))
    if n >= _SELECT_FROM:
        values = _pair_order_statistics(np.sort(x), np.sort(y), ranks)
    else:
        values = np.partition(np.subtract.outer(y, x).ravel(), ranks)[ranks]
    median = float(np.mean(values[np.searchsorted(ranks, mid)]))
    gamma = virtual - prev
    a, b = values[np.searchsorted(ranks, prev)], values[np.searchsorted(ranks, nxt)]
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return median, out


def _first_below(xs: np.ndarray, ys: np.ndarray, v: float) -> np.ndarray:
    """Per j, the first index i of sorted ``xs`` with ``ys[j] - xs[i] < v`` as
    floating point computes the difference (it falls as i grows, rounding being
    monotone): a binary search, then a fix-up of the few boundaries where the
    rounded difference and the rounded ``ys[j] - v`` disagree. Shape (n,), int."""
    m = xs.size
    b = np.searchsorted(xs, ys - v, side="right")
    while True:
        left = (b > 0) & (ys - xs[np.maximum(b - 1, 0)] < v)
        right = (b < m) & (ys - xs[np.minimum(b, m - 1)] >= v)
        if not (left.any() or right.any()):
            return b
        b = b - left + right


def _pair_order_statistics(xs: np.ndarray, ys: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The order statistics at 0-based ``ranks`` (sorted int array) of the m*n
    differences ``ys[j] - xs[i]`` of two sorted 1-D float arrays, exactly the
    values of ``np.partition(np.subtract.outer(ys, xs).ravel(), ranks)[ranks]``,
    in about O((m + n) log m) time instead of O(mn).

    Ranks within 1% of the pairs of each other form one group (the two ranks
    a linear quantile interpolates between, the median's pair). A group is
    bracketed between two quantiles of the differences of evenly spaced
    subsamples; counting the pairs below each bracket end (:func:`_first_below`)
    places its ranks in the bracket, whose few pairs are enumerated and
    partitioned. Should the bracket miss, it widens until it spans every pair."""
    m, n = xs.size, ys.size
    mn = m * n
    sub = np.subtract.outer(ys[np.linspace(0, n - 1, min(n, 64)).astype(np.intp)],
                            xs[np.linspace(0, m - 1, min(m, 64)).astype(np.intp)]).ravel()
    sub.sort()
    top = sub.size - 1
    out = np.empty(ranks.size)
    groups = np.split(np.arange(ranks.size), np.flatnonzero(np.diff(ranks) > mn // 100) + 1)
    for g in groups:
        first, last = ranks[g[0]] / max(mn - 1, 1), ranks[g[-1]] / max(mn - 1, 1)
        for margin in (0.01, 0.05, 1.0):
            lo = sub[int(top * (first - margin))] if first - margin > 0 else -np.inf
            hi = np.nextafter(sub[math.ceil(top * (last + margin))], np.inf) if last + margin < 1 else np.inf
            b_lo, b_hi = _first_below(xs, ys, lo), _first_below(xs, ys, hi)
            below = mn - int(b_lo.sum())
            if below <= ranks[g[0]] and ranks[g[-1]] < mn - int(b_hi.sum()):
                break
        length = b_lo - b_hi
        j = np.repeat(np.arange(n), length)
        i = np.arange(j.size) - np.repeat(np.cumsum(length) - length - b_hi, length)
        kth = ranks[g] - below
        out[g] = np.partition(ys[j] - xs[i], kth)[kth]
    return out


def _tail_reasons(x: np.ndarray, y: np.ndarray, sign: int, tol: float, alpha: float) -> list[str]:
    """Fail reasons for the bad tail: p95/p99 if higher is bad, else p5/p1.

    A quantile fails when after's is worse than before's by more than ``tol``
    (relative) AND after has significantly more values than before beyond
    limit = pooled quantile x (1 +/- tol) (one-sided Fisher exact at alpha).
    The limit comes from the pooled sample because it is invariant to
    relabelling, which keeps the test valid under "no change"; one taken from
    ``before`` alone is biased towards flagging after. The count test is why
    a noisy p99 (~2 points at n=200) does not fail an A/A pair while a 7%
    cluster of 100x outliers (spinnaker#6278) does.
    """
    out = []
    pooled = np.concatenate([x, y])
    for q in (0.95, 0.99) if sign > 0 else (0.05, 0.01):
        qb, qa = float(np.quantile(x, q)), float(np.quantile(y, q))
        worse = sign * (qa - qb)
        rel = _rel(worse, qb) if qb != 0 else (math.inf if worse > 0 else 0.0)
        if rel <= tol:
            continue
        qp = float(np.quantile(pooled, q))
        limit = qp + sign * tol * abs(qp)
        ea = int(np.count_nonzero(sign * (y - limit) > 0))
        eb = int(np.count_nonzero(sign * (x - limit) > 0))
        p = stats.fisher_exact([[ea, y.size - ea], [eb, x.size - eb]], alternative="greater").pvalue
        if p < alpha:
            out.append(f"p{round(q * 100)} {'rose' if sign > 0 else 'fell'} {rel:.0%} (limit {tol:.0%}): "
                       f"{qb:.4g} -> {qa:.4g}; {ea}/{y.size} after vs {eb}/{x.size} before beyond "
                       f"{limit:.4g} (Fisher p={p:.2g})")
    return out


def _spread_reasons(x: np.ndarray, y: np.ndarray, ratio_max: float, alpha: float) -> list[str]:
    """Fail reason if after's spread grew beyond ``ratio_max`` on the variance scale.

    Robust: (IQR_after / IQR_before)^2, squared so that it estimates the
    variance ratio in a location-scale family and shares the limit. Plain:
    sample-variance ratio (ddof=1), which sees tail blow-ups the IQR ignores.
    Either over the limit fails, but only if the Brown-Forsythe test (Levene
    on deviations from the median) is significant at alpha with after the
    more dispersed: one extreme value alone can inflate the plain ratio.
    """
    robust = _ratio(iqr(y) ** 2, iqr(x) ** 2)
    plain = _ratio(float(np.var(y, ddof=1)), float(np.var(x, ddof=1)))
    if max(robust, plain) <= ratio_max:
        return []
    if np.mean(np.abs(y - np.median(y))) <= np.mean(np.abs(x - np.median(x))):
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        p = stats.levene(y, x, center="median").pvalue
    if not p < alpha:  # NaN from degenerate samples is not evidence
        return []
    return [f"spread grew: IQR^2 ratio {robust:.2f}, variance ratio {plain:.2f} "
            f"(limit {ratio_max:g}; Brown-Forsythe p={p:.2g})"]


def autocorrelation_time(values) -> float:
    """Integrated autocorrelation time tau of a series (>= 1; 1 = independent).

    ``values``: 1-D float array-like in time order (e.g. per-task latencies in
    arrival order, ms, or 0/1 outcomes); NaNs dropped. tau = 1 + 2 sum_k rho_k
    of the ranks' autocorrelation (ranks so that a few huge latencies do not
    dominate), summed with Geyer's initial monotone sequence estimator: the
    pair sums rho_2m + rho_2m+1 are added while positive, each capped at the
    previous one (Geyer 1992, "Practical Markov chain Monte Carlo", Statist.
    Sci. 7; the effective sample size n / tau of MCMC output, as Stan computes
    it). The autocorrelation comes from an FFT, O(n log n).

    Why the judge needs it: tasks queued behind the same busy period share
    its wait, so consecutive response times are correlated; Mann-Whitney and
    the two-proportion test assume independent values and, fed n correlated
    ones, see about tau times more evidence than there is. Measured on the
    degraded Market Hunter (tau ~9, 600 seeds): an A/A pair of 5-window spans
    is judged pass or fail 58% of the time at alpha 0.04 on raw values, 9% on
    values thinned to n / tau; on the healthy agent (tau ~1.1): 4.8% raw, 3.7%
    thinned. Most of the remaining excess is the thinned series' own
    correlation, not a wrong tau: at 2.2x the healthy Hunter's load (tau ~8,
    300 seeds) the span means' variance is 1.14 times what tau predicts and the
    window means are uncorrelated, yet the A/A z of Mann-Whitney on thinned
    series has variance 1.59, and 1.13 on every value with U's variance that of
    the effective sizes (:func:`judge_latency`'s ``tau``).

    Returns 1.0 for fewer than 3 values or a constant series.
    """
    x, _ = _clean(values)
    n = x.size
    if n < 3 or x.min() == x.max():  # a constant series: its centred ranks are exactly 0
        return 1.0
    r = average_ranks(x)
    r -= r.mean()
    # zero-padded to at least 2n - 1, so the circular correlation is the linear one; a length with small prime
    # factors, as a prime one takes the FFT several times longer
    f = np.fft.rfft(r, fft.next_fast_len(2 * n - 1, real=True))
    acf = np.fft.irfft(f * np.conj(f))[:n]
    if acf[0] <= 0:
        return 1.0
    acf /= acf[0]
    pairs = acf[: n - n % 2].reshape(-1, 2).sum(axis=1)
    nonpositive = np.flatnonzero(pairs <= 0)
    pairs = np.minimum.accumulate(pairs[: nonpositive[0] if nonpositive.size else pairs.size])
    return max(1.0, float(2.0 * pairs.sum() - 1.0))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` (n,) float, ties sharing the mean of their ranks:
    ``scipy.stats.rankdata(x)`` without its per-call overhead (the values are
    whole or half numbers, so exactly the same)."""
    return tied_ranks(x)[0]


def thin(values, tau: float) -> np.ndarray:
    """Systematic subsample of a time-ordered series to its effective size.

    Keeps floor(n / tau) values (at least one when n > 0), evenly spaced in
    index, deterministically (no RNG): values tau apart are about independent
    (see :func:`autocorrelation_time`), so every test of the judge stays valid
    on them. Returns a float64 array; raises ValueError for tau < 1.
    """
    if tau < 1.0:
        raise ValueError(f"tau must be >= 1, got {tau!r}")
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return x
    k = max(1, int(x.size / tau))
    return x[np.floor(np.arange(k) * (x.size / k)).astype(np.int64)]


def judge_latency(before, after, *, better: str = "lower", alpha: float = 0.05, min_samples: int = 20,
                  marginal_effect: float = 0.02, tail_tolerance: float = 0.20,
                  variance_ratio_max: float = 4.0, metric: str = "response_time_ms",
                  tau: tuple[float, float] | None = None, mean_target: bool = False) -> MetricVerdict:
    """Judge a continuous per-task metric (e.g. latency, ms) before vs after.

    Args:
        before, after: 1-D float64 array-likes, one value per task, same units.
            NaNs are dropped and counted in ``reasons``.
        better: "lower" (latency, cost) or "higher" (throughput, score).
        alpha: false-alarm budget of the whole judge (Kayenta's judge: 0.02;
            0.05 here as the optimizer can re-sample cheaply). Bonferroni:
            Mann-Whitney (two-sided) at 0.8 alpha, each guard test (p95, p99,
            spread) at alpha/15, so an A/A pair yields pass/fail w.p. <= alpha.
        min_samples: fewer values on either side -> "inconclusive" (Kayenta:
            only when empty; below ~20 the normal approximations here are poor).
        marginal_effect: minimum |HL shift| / median(before) for "pass"; a
            fixed practical bar in place of Kayenta's 0.25 x |HL estimate|.
        tail_tolerance: allowed relative worsening of p95/p99 (p5/p1 when
            better="higher"); see ``_tail_reasons`` (spinnaker#6278).
        variance_ratio_max: allowed growth of spread (variance scale); see
            ``_spread_reasons`` (kayenta#780).
        tau: (before, after) autocorrelation times (:func:`autocorrelation_time`)
            when ``before`` and ``after`` are whole autocorrelated series: the
            Mann-Whitney p then uses every value, U's variance that of the
            effective sample sizes n / tau (:func:`~swarmopt.optimizer.stat_tests.mannwhitneyu`),
            and so do the medians and the HL shift with its interval
            (:func:`hodges_lehmann`'s ``tau_before``, ``tau_after``), while the
            sample sizes and the tail and spread checks use the series thinned
            to n / tau (:func:`thin`). None: the values are taken as
            independent.
        mean_target: the objective is the metric's mean (an SLO on it): a
            tail or spread that grew is reported but does not fail a change
            whose mean is significantly better (one-sided Welch on the
            series the checks use, at the location test's level). The checks
            close the median test's blind spots to a worse mean, which that
            test then rules out; what is left is a reshaped distribution, as
            routing the simple decisions to a fast tier and the complex to a
            strong one makes it bimodal.

    Returns MetricVerdict (medians, HL shift and CI, two-sided
    ``scipy.stats.mannwhitneyu`` p). "pass": significantly better with
    |relative shift| >= marginal_effect, tail and spread OK; "fail":
    significantly worse (any size) or a tail/spread check fails; "marginal":
    otherwise; "inconclusive": too few values (never a pass).

    Raises ValueError for invalid ``better``/``alpha`` or +/-inf values.
    """
    sign = _check_args(better, alpha)
    x, dropped_x = _clean(before)
    y, dropped_y = _clean(after)
    whole = (x, y)
    if tau is not None:
        x, y = thin(x, tau[0]), thin(y, tau[1])
    reasons = [f"dropped NaNs: {dropped_x} before, {dropped_y} after"] if dropped_x or dropped_y else []
    med_b = float(np.median(whole[0])) if whole[0].size else _NAN
    med_a = float(np.median(whole[1])) if whole[1].size else _NAN
    if min(x.size, y.size) < max(min_samples, 1):
        reasons.append(f"too few samples: {x.size} before, {y.size} after (need {min_samples})")
        return MetricVerdict(metric, "inconclusive", x.size, y.size, med_b, med_a,
                             _NAN, _NAN, _NAN, _NAN, _NAN, tuple(reasons))

    # thinning leaves values tau apart still correlated (an AR(1) series with tau 8 keeps a lag correlation of 0.13,
    # its thinned mean's variance 1.3 times the independent one's): the effective sizes judge the whole series, and
    # the interval reported with the verdict is the one that test inverts
    shift, lo, hi = hodges_lehmann(*whole, alpha, *(tau or ()))
    u_stat, p_mw = mannwhitneyu(whole[1], whole[0], *(tau[::-1] if tau else ()))
    p = float(p_mw) if np.isfinite(p_mw) else 1.0
    loc_alpha, guard_alpha = alpha * (1 - _GUARD_SHARE), alpha * _GUARD_SHARE / 3
    # Direction from U itself, P(after > before) - 1/2, so it always agrees
    # with the test, even where HL is 0 on heavily tied data.
    direction = sign * (float(u_stat) / (whole[0].size * whole[1].size) - 0.5)
    rel = _rel(shift, med_b)
    gain = -sign * rel  # the improvement, positive = better, as every reason states it
    significant = p < loc_alpha
    regressed = significant and direction > 0
    if regressed:
        reasons.append(f"median significantly worse: improvement {gain:+.1%} (Mann-Whitney p={p:.2g})")
    tail = _tail_reasons(x, y, sign, tail_tolerance, guard_alpha)
    spread = _spread_reasons(x, y, variance_ratio_max, guard_alpha)
    reasons += tail + spread
    if (tail or spread) and mean_target and not regressed:
        w = welch_ttest(x, y)
        p_mean = float(special.stdtr(w.df, -sign * w.statistic))  # one-sided, for a better mean
        if p_mean < loc_alpha / 2:
            reasons.append(f"not failed on them: the mean is significantly better (Welch p={p_mean:.2g})")
            tail, spread = [], []
    if regressed or tail or spread:
        outcome: Outcome = "fail"
    elif significant and direction < 0 and abs(rel) >= marginal_effect:
        outcome = "pass"
        reasons.append(f"median significantly better: improvement {gain:+.1%} (Mann-Whitney p={p:.2g})")
    else:
        outcome = "marginal"
        reasons.append(f"median improvement {gain:+.1%}: below {marginal_effect:.0%} or not significant "
                       f"(Mann-Whitney p={p:.2g})")
    return MetricVerdict(metric, outcome, x.size, y.size, med_b, med_a, shift, lo, hi, rel, p, tuple(reasons))


def judge_mean(before, after, raw: tuple, *, tau: tuple[float, float] = (1.0, 1.0), better: str = "lower",
               alpha: float = 0.05, min_samples: int = 20, marginal_effect: float = 0.02,
               tail_tolerance: float = 0.20, variance_ratio_max: float = 4.0,
               metric: str = "service_time_ms", rate: bool = False) -> MetricVerdict:
    """Judge the mean of a per-task metric before vs after from values
    adjusted by a control variate (:func:`swarmopt.optimizer.measure.control_variate`).

    Args:
        before, after: 1-D array-likes, the adjusted values (NaNs dropped).
        raw: (before, after), the same decisions' unadjusted values: their
            means are reported and are the base of the relative change, and
            the tail and spread checks of :func:`judge_latency` run on them
            (the adjusted values' spread is what the covariate left).
        tau: (before, after) autocorrelation times: every series is thinned
            to n / tau (:func:`thin`) before it is tested.
        better, alpha, min_samples, marginal_effect, tail_tolerance,
            variance_ratio_max: as :func:`judge_latency`'s; the location test
            is Welch's t-test of the adjusted means at ``(1 - 0.2) alpha``
            (two-sided): the adjustment removes the variance the covariate
            explains, which a rank test of medians would not turn into power
            for a mean target whose change is skewed (tools run in parallel
            save time only on decisions that call several).
        rate: the values are 0/1 outcomes (a rate's): ``marginal_effect`` is
            then an absolute change (0.02 = 2 points), as
            :func:`judge_proportion`'s, and there is no tail or spread check.

    Returns MetricVerdict (raw means, the adjusted means' difference and its
    interval as shift, two-sided p), "pass"/"fail"/"marginal"/"inconclusive"
    as :func:`judge_latency`. Raises ValueError for invalid ``better``/``alpha``.
    """
    sign = _check_args(better, alpha)
    x, y = thin(_clean(before)[0], tau[0]), thin(_clean(after)[0], tau[1])
    rx, ry = thin(_clean(raw[0])[0], tau[0]), thin(_clean(raw[1])[0], tau[1])
    mean_b = float(rx.mean()) if rx.size else _NAN
    mean_a = float(ry.mean()) if ry.size else _NAN
    if min(x.size, y.size) < max(min_samples, 2):
        return MetricVerdict(metric, "inconclusive", x.size, y.size, mean_b, mean_a, _NAN, _NAN, _NAN, _NAN, _NAN,
                             (f"too few samples: {x.size} before, {y.size} after (need {min_samples})",))
    w = welch_ttest(y, x)
    loc_alpha, guard_alpha = alpha * (1 - _GUARD_SHARE), alpha * _GUARD_SHARE / 3
    shift = float(w.estimate)
    # the adjustment's rounding (1e-16 of the raw values' scale) is no variance: below it, values are constant
    tiny = 1e-9 * (float(np.std(np.concatenate((rx, ry)))) or 1.0)
    if w.standard_error > tiny:
        p = float(w.pvalue())
        lo, hi = (float(v) for v in w.confidence_interval(1.0 - loc_alpha))
    else:  # both spans one constant each: equal is no change, unequal a certain one
        shift = 0.0 if abs(shift) <= tiny else shift
        p, lo, hi = (1.0 if shift == 0 else 0.0), shift, shift
    rel = _rel(shift, mean_b)
    gain = -sign * rel
    size = abs(shift) if rate else abs(rel)
    significant = p < loc_alpha
    regressed = significant and sign * shift > 0
    reasons = [f"adjusted mean significantly worse: improvement {gain:+.1%} (Welch p={p:.2g})"] if regressed else []
    guards = [] if rate else (_tail_reasons(rx, ry, sign, tail_tolerance, guard_alpha)
                              + _spread_reasons(rx, ry, variance_ratio_max, guard_alpha))
    reasons += guards
    if regressed or guards:
        outcome: Outcome = "fail"
    elif significant and size >= marginal_effect:
        outcome = "pass"
        reasons.append(f"adjusted mean significantly better: improvement {gain:+.1%} (Welch p={p:.2g})")
    else:
        outcome = "marginal"
        bar = f"{marginal_effect * 100:.2f} points" if rate else f"{marginal_effect:.0%}"
        reasons.append(f"adjusted mean improvement {gain:+.1%}: below {bar} or not significant (Welch p={p:.2g})")
    return MetricVerdict(metric, outcome, x.size, y.size, mean_b, mean_a, shift, lo, hi, rel, p, tuple(reasons))


def _wilson(hits: int, n: int, z: float) -> tuple[float, float]:
    p, denom = hits / n, 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def judge_proportion(before_hits: int, before_n: int, after_hits: int, after_n: int, *, better: str = "higher",
                     alpha: float = 0.05, min_samples: int = 20, marginal_effect: float = 0.01,
                     metric: str = "success_rate") -> MetricVerdict:
    """Judge a rate (hits out of n tasks) before vs after.

    Args:
        before_hits, before_n, after_hits, after_n: ints, 0 <= hits <= n.
        better: "higher" (success rate) or "lower" (error rate).
        alpha: two-sided significance level (one test, no split needed).
        min_samples: fewer trials on either side -> "inconclusive".
        marginal_effect: minimum |after - before| in absolute proportion
            (0.01 = 1 percentage point) for "pass". A significant worsening
            fails at any size: rare errors are what kayenta#426 missed.

    Test: pooled z = (pa - pb) / sqrt(p(1-p)(1/nb + 1/na)), p the pooled rate;
    if any expected cell count (n*p, n*(1-p)) is below 5 (Cochran's rule, the
    sparse-errors case of kayenta#426) the two-sided ``scipy.stats.fisher_exact``
    p-value is used instead. Shift = pa - pb with Newcombe's hybrid score
    interval (1998, method 10, from Wilson intervals), not Wald, because Wald
    collapses to zero width at 0 hits.

    Returns MetricVerdict with proportions as before/after.
    Raises ValueError for invalid ``better``/``alpha``, negative counts or hits > n.
    """
    sign = _check_args(better, alpha)
    for name, value in (("before_hits", before_hits), ("before_n", before_n),
                        ("after_hits", after_hits), ("after_n", after_n)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value!r}")
    if before_hits > before_n or after_hits > after_n:
        raise ValueError(f"hits exceed trials: {before_hits}/{before_n} before, {after_hits}/{after_n} after")
    hb, nb, ha, na = int(before_hits), int(before_n), int(after_hits), int(after_n)
    pb, pa = (hb / nb if nb else _NAN), (ha / na if na else _NAN)
    if min(nb, na) < max(min_samples, 1):
        reason = f"too few trials: {nb} before, {na} after (need {min_samples})"
        return MetricVerdict(metric, "inconclusive", nb, na, pb, pa, _NAN, _NAN, _NAN, _NAN, _NAN, (reason,))

    pooled = (hb + ha) / (nb + na)
    min_expected = min(nb, na) * min(pooled, 1 - pooled)
    if min_expected < 5:
        p = float(stats.fisher_exact([[ha, na - ha], [hb, nb - hb]]).pvalue)
        test = f"Fisher's exact p={p:.2g}, min expected count {min_expected:.1f} < 5"
    else:
        z_stat = (pa - pb) / math.sqrt(pooled * (1 - pooled) * (1 / nb + 1 / na))
        p = float(2 * special.ndtr(-abs(z_stat)))  # the normal survival function, as stats.norm.sf
        test = f"pooled z={z_stat:.2f}, p={p:.2g}"
    z = special.ndtri(1 - alpha / 2)  # the normal quantile, as stats.norm.ppf
    (lb, ub), (la, ua) = _wilson(hb, nb, z), _wilson(ha, na, z)
    shift = pa - pb
    lo = shift - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    hi = shift + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    moved = f"{pb:.1%} -> {pa:.1%}, improvement {-sign * shift * 100:+.2f} points"  # positive = better
    if p < alpha and sign * shift > 0:
        outcome: Outcome = "fail"
        reason = f"rate significantly worse: {moved} ({test})"
    elif p < alpha and abs(shift) >= marginal_effect:
        outcome, reason = "pass", f"rate significantly better: {moved} ({test})"
    else:
        outcome = "marginal"
        reason = f"rate {moved}: below {marginal_effect * 100:.2f} points or not significant ({test})"
    return MetricVerdict(metric, outcome, nb, na, pb, pa, shift, lo, hi, _rel(shift, pb), p, (reason,))


def combine(verdicts: Sequence[MetricVerdict]) -> Outcome:
    """Overall outcome, worst wins: fail > inconclusive > marginal > pass.

    Empty input is "inconclusive" (no evidence is never a pass). Unlike
    Kayenta's weighted score over metrics, one failing metric fails the
    change: the optimizer can propose another config cheaply, so a false
    rollback costs less than shipping a regression.
    """
    if not verdicts:
        return "inconclusive"
    return max((v.outcome for v in verdicts), key=_SEVERITY.__getitem__)
