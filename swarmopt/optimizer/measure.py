"""Before/after measurement and verdict of a change (pure).

Two levels, both in the ``optimization.measured`` event:

* task level (:func:`judge_change`): the keep/rollback verdict, from the
  per-task samples (:class:`swarmopt.metrics.TaskSample`) of the spans before
  and after, by the Kayenta-style canary judge of
  :mod:`swarmopt.optimizer.canary`, the guardrails (:func:`guardrails`) and
  the known price of the change's remedy (:func:`price_paid`). Its figures
  (:meth:`Judgement.effect`: the relative median or rate change, positive =
  better, with its interval and p-value) are the ones reported as
  ``improvement_pct``, ``ci_low_pct``, ``ci_high_pct`` and ``p_value``;
* window level, secondary: the relative change of the target metric's window
  values over the ``k`` windows before and after the change, so it can be
  recomputed from the metrics table alone. It decides only where the window
  values judge (window targets, batch means), and there, by default
  (``trend_adjust``), it is the level shift of a segmented regression on the
  window time and the arrival rate (:func:`adjusted_measure`: a leak or a
  load ramp running through the change is not its effect); elsewhere the
  change of the mean with Welch's t-test (:func:`measure`). It is reported as
  ``window_improvement_pct`` and is what the optimizer learns expected
  improvements from.

Which test judges which target, and which way is better, is the target's
:class:`~swarmopt.metrics.MetricSpec` in :data:`swarmopt.metrics.METRICS`:

* "mann-whitney" (latency targets ``response_time_ms_*``, ``cost_per_decision_usd``):
  :func:`~swarmopt.optimizer.canary.judge_latency` (Mann-Whitney U,
  Hodges-Lehmann shift and CI, tail and spread checks) on per-task values. A
  pass needs a significant median shift, so a change that only trims the tail
  of a p95 target is marginal (reverted) unless the median moves too; the tail
  check makes a worse tail a fail;
* "two-proportion" (``success_rate``, ``error_rate``):
  :func:`~swarmopt.optimizer.canary.judge_proportion` on per-task outcomes;
* "welch-windows" (``coordination_score``, ``inbox_in_time_rate``,
  ``cpu_percent``, ``memory_percent``, ...): the window-level comparison
  (reported as method "segmented-windows" when adjusted for trend and load).

A change of one knob family of :data:`COVARIATES` alone (parallel tools, retries) is judged instead on the
per-task target less the part of it its covariate explains (:func:`control_variate`) by
:func:`~swarmopt.optimizer.canary.judge_mean` (method "mann-whitney/control" or "two-proportion/control").

Per-task values are not independent: tasks that queue behind the same busy
period share its wait. A rank test therefore takes its null variance from the
effective sample sizes n / tau
(:func:`~swarmopt.optimizer.canary.autocorrelation_time`), other per-task tests
run on series thinned to that size, and counts are divided by tau (Rao & Scott
1992, the design-effect correction for clustered binary data).

The before-span reaches back to the last level shift of the target
(:func:`last_shift_s`, a fault's onset), within the configuration in force.

False-decision budget: a change that changes nothing should be neither kept
nor rolled back. The whole decision gets ``alpha``: the target's test
``(1 - GUARD_SHARE) alpha`` (two-sided), each of the ``GUARDRAILS`` guardrails
``GUARD_SHARE alpha / GUARDRAILS`` (one-sided, the bad direction); by Bonferroni an A/A
change is kept or rolled back with probability <= alpha.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from swarmopt.metrics import TaskSample, metric_spec
from swarmopt.optimizer.canary import (
    MetricVerdict,
    Outcome,
    autocorrelation_time,
    judge_latency,
    judge_mean,
    judge_proportion,
    thin,
)
from swarmopt.optimizer.stat_tests import welch_ttest

GUARD_SHARE = 0.2
GUARDRAILS = 4
""":func:`guardrails`' checks (success, errors, cost, the response time's limit), which share ``GUARD_SHARE``."""


@dataclass(frozen=True)
class Measurement:
    """Outcome of a before/after comparison of ``metric``.

    ``improvement_pct`` is positive when the metric moved in the ``better``
    direction: 100 x (before - after) / before for "lower", 100 x (after -
    before) / before for "higher". ``ci_low_pct``/``ci_high_pct`` bound it (95%
    Welch interval of the difference of means, scaled the same way).
    ``p_value`` is one-sided for an improvement. ``verdict`` (two-sided at
    ``alpha``: each direction at alpha / 2): pass (significant improvement of at
    least the minimum), fail (significantly worse), inconclusive (fewer than 2
    usable windows on a side, no relative change because the mean before is 0,
    or both sides the same constant: no data is never a verdict), marginal
    otherwise. ``method``: "welch", or "segmented:<covariates>" for
    :func:`adjusted_measure`, whose ``before`` is the after-span's
    counterfactual level and whose interval is the regression's.
    """

    metric: str
    better: str
    before: float
    after: float
    improvement_pct: float
    ci_low_pct: float
    ci_high_pct: float
    p_value: float
    verdict: str
    n_before: int
    n_after: int
    method: str = "welch"


def _values(rows: list[dict], metric: str, min_decisions: int) -> np.ndarray:
    vals = [r[metric] for r in rows if r["decision_count"] >= min_decisions]
    arr = np.asarray(vals, dtype=float)
    return arr[np.isfinite(arr)]


def _usable(rows: list[dict], metric: str, min_decisions: int) -> list[dict]:
    return [r for r in rows if r["decision_count"] >= min_decisions and np.isfinite(float(r[metric]))]


@dataclass(frozen=True)
class LevelShift:
    """OLS fit of a segmented regression (interrupted time series) of window
    values: y = a + d [after] + sum_j b_j x_j + e. ``shift``: d, the change of
    level at the change with the covariates held fixed, ``se`` its standard
    error, ``df`` the residual degrees of freedom; ``counterfactual``: the mean
    fitted value of the after-windows without the shift (what the after-span
    would have shown had nothing changed); ``covariates``: the names of the
    covariates kept."""

    shift: float
    se: float
    df: int
    counterfactual: float
    covariates: tuple[str, ...]


def level_shift(y: np.ndarray, after: np.ndarray, covariates: dict[str, np.ndarray]) -> LevelShift:
    """Segmented-regression estimate of a level shift in the series ``y``
    (n,) at the windows flagged ``after`` (n,) bool, adjusting for
    ``covariates`` (name -> (n,) values), by ordinary least squares.

    Segmented regression of an interrupted time series (Wagner, Soumerai,
    Zhang & Ross-Degnan 2002, J. Clin. Pharm. Ther. 27): with the covariate
    "trend" (window time) the pre-change trend is extrapolated, so a trend
    that continues through the change is not read as its effect; with "load"
    (the window's arrival rate, which no knob changes) a load change is not
    either (analysis of covariance). Covariates that are constant, collinear
    with the others, or would leave fewer than 2 residual degrees of freedom
    are dropped, last named first. se(d) = sqrt(s^2 [(X'X)^-1]_dd), s^2 =
    RSS / (n - p). Raises ValueError when ``y`` has fewer than 3 values or
    ``after`` does not split it.
    """
    y = np.asarray(y, dtype=float)
    after = np.asarray(after, dtype=bool)
    n = y.size
    if n < 3 or after.all() or not after.any():
        raise ValueError("level_shift needs at least 3 values, some before and some after")
    names = list(covariates)
    while True:
        cols = [np.ones(n), after.astype(float)] + [np.asarray(covariates[c], dtype=float) for c in names]
        x = np.column_stack(cols)
        x[:, 2:] -= x[:, 2:].mean(axis=0)
        if n - x.shape[1] >= 2 and np.linalg.matrix_rank(x) == x.shape[1] or not names:
            break
        names.pop()
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    df = n - x.shape[1]
    s2 = float(resid @ resid) / df if df > 0 else math.nan
    cov = s2 * np.linalg.pinv(x.T @ x)
    counterfactual = float(y[after].mean() - beta[1])
    return LevelShift(float(beta[1]), math.sqrt(max(float(cov[1, 1]), 0.0)), df, counterfactual, tuple(names))


def steady_load(rows: list[dict], split_s: float, alpha: float = 0.05) -> bool:
    """Whether the window ``rows`` (``t_start_s``, ``t_end_s`` and
    ``arrival_rate_per_s``) that start before ``split_s`` (s) and those from
    it on had one arrival rate: their arrival counts are consistent with one
    Poisson rate by the conditional test (given all arrivals, the first
    part's count is Binomial with the first part's share of the time;
    two-sided at ``alpha``). True when a part is empty or nothing arrived.
    """
    if not rows:
        return True
    length = np.array([r["t_end_s"] - r["t_start_s"] for r in rows])
    count = np.rint(np.array([r["arrival_rate_per_s"] for r in rows]) * length)
    early = np.array([r["t_start_s"] < split_s - 1e-9 for r in rows])
    n1, n, t1, t = int(count[early].sum()), int(count.sum()), float(length[early].sum()), float(length.sum())
    if not (0 < t1 < t and n > 0):
        return True
    return bool(stats.binomtest(n1, n, t1 / t).pvalue >= alpha)


def adjusted_measure(before_rows: list[dict], after_rows: list[dict], metric: str, better: str,
                     alpha: float = 0.05, min_improvement: float = 0.02, min_decisions: int = 1,
                     covariates: tuple[str, ...] = ("trend", "load"), window_s: float = 60.0) -> Measurement:
    """:func:`measure` made robust to a trend and a load change: the level
    shift of ``metric`` at the change by :func:`level_shift` on the window
    values before and after, adjusted for the window time ("trend", in
    windows of ``window_s``) and the arrival rate ("load",
    ``arrival_rate_per_s``) in ``covariates``. Rows need ``t_start_s``,
    ``t_end_s`` and ``arrival_rate_per_s`` besides the metric.

    ``before`` is the after-windows' counterfactual level, ``after`` their
    mean, ``improvement_pct`` = 100 x d / counterfactual in the better
    direction, with its 95% t interval; ``p_value`` one-sided for an
    improvement (t with n - p degrees of freedom); ``method``
    "segmented:" and the covariates fitted. Verdict as :func:`welch_verdict`;
    fewer than 2 usable windows a side, a non-positive counterfactual (no
    relative change) or an exact fit with no shift (e.g. memory under a
    deterministic leak, no change: no noise to test against) is inconclusive.
    Unlike Welch's test it is unbiased under a linear trend or a load change
    that runs through the change, at the price of a wider interval: about 2x
    the standard error of a difference of means at 5 windows a side, 1.7x at
    5 before and 10 after, 1.5x at 5 and 15. (The optimizer compares the 5
    windows before a change, not more: it acts a few windows after a fault's
    onset, and a before-span reaching back across the onset would fit the
    onset's step as a trend.) Raises ValueError for ``better`` not in
    {"lower", "higher"}.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    b, a = _usable(before_rows, metric, min_decisions), _usable(after_rows, metric, min_decisions)
    nb, na = len(b), len(a)
    method = "segmented:" + "+".join(covariates)
    if nb < 2 or na < 2:
        mb = float(np.mean([r[metric] for r in b])) if nb else math.nan
        ma = float(np.mean([r[metric] for r in a])) if na else math.nan
        return Measurement(metric, better, mb, ma, math.nan, math.nan, math.nan, math.nan, "inconclusive", nb, na,
                           method)
    rows = b + a
    y = np.array([float(r[metric]) for r in rows])
    cov = {"trend": np.array([(r["t_start_s"] + r["t_end_s"]) / 2.0 / window_s for r in rows]),
           "load": np.array([float(r["arrival_rate_per_s"]) for r in rows])}
    fit = level_shift(y, np.arange(nb + na) >= nb, {c: cov[c] for c in covariates})
    method = "segmented:" + "+".join(fit.covariates) if fit.covariates else "segmented"
    ma = float(y[nb:].mean())
    sign = -1.0 if better == "lower" else 1.0
    scale = float(np.max(np.abs(y))) or 1.0
    exact = not fit.se > 1e-9 * scale  # an exact fit (e.g. a deterministic leak): no noise to test against
    if exact and abs(fit.shift) <= 1e-9 * scale or not fit.counterfactual > 0:
        return Measurement(metric, better, fit.counterfactual, ma, math.nan, math.nan, math.nan, math.nan,
                           "inconclusive", nb, na, method)
    pct = 100.0 / fit.counterfactual
    if exact:
        p_better = 0.0 if sign * fit.shift > 0 else 1.0
        half = 0.0
    else:
        t = fit.shift / fit.se
        p_better = float(special.stdtr(fit.df, t if better == "lower" else -t))
        half = float(stats.t.ppf(0.975, fit.df)) * fit.se
    improvement = sign * fit.shift * pct
    lo, hi = sorted((sign * (fit.shift - half) * pct, sign * (fit.shift + half) * pct))
    verdict = welch_verdict(p_better, improvement, alpha, min_improvement)
    return Measurement(metric, better, fit.counterfactual, ma, improvement, lo, hi, p_better, verdict, nb, na,
                       method)


def drift_measure(before_rows: list[dict], after_rows: list[dict], metric: str, better: str,
                  alpha: float = 0.05, min_improvement: float = 0.02, min_decisions: int = 1) -> Measurement:
    """Compare ``metric``'s window values before and after a change by their
    increments: Welch's t-test of the after-span's increments (the first taken
    from the last window before) against the before-span's.

    For the window means of a backlog: a queue whose decisions wait behind a
    long busy period adds each window's excess of work to the next, so its
    window means are a random walk with drift. Compared as levels, with or
    without a fitted line, their autocorrelated residuals make any t-test's
    standard error too small, the spurious regression of Granger & Newbold
    (*J. Econometrics* 2, 1974); their increments are about independent, and a
    change that drains the backlog (or slows its growth) lowers their mean.
    ``before`` is the after-span's counterfactual mean level (the last window
    before carried on by the before-span's mean increment), ``after`` its mean;
    ``improvement_pct`` = 100 x the difference of mean increments x (n_after +
    1) / 2 / counterfactual, in the better direction, with the Welch interval
    scaled the same way; ``p_value`` one-sided for an improvement. Verdict as
    :func:`welch_verdict`; fewer than 3 usable windows before or 2 after, or a
    non-positive counterfactual, is inconclusive. Raises ValueError for
    ``better`` not in {"lower", "higher"}.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    b, a = _values(before_rows, metric, min_decisions), _values(after_rows, metric, min_decisions)
    nb, na = len(b), len(a)
    cf = float(b[-1] + np.diff(b).mean() * (na + 1) / 2.0) if nb >= 3 and na else math.nan
    if nb < 3 or na < 2 or not cf > 0:
        return Measurement(metric, better, cf, float(a.mean()) if na else math.nan, math.nan, math.nan, math.nan,
                           math.nan, "inconclusive", nb, na, "increments")
    db, da = np.diff(b), np.diff(np.concatenate(([b[-1]], a)))
    sign = -1.0 if better == "lower" else 1.0
    res = welch_ttest(da, db)
    if not np.isfinite(res.statistic):  # constant increments on both sides: no noise to test against
        return Measurement(metric, better, cf, float(a.mean()), math.nan, math.nan, math.nan, math.nan,
                           "inconclusive", nb, na, "increments")
    p_better = float(res.pvalue("less" if better == "lower" else "greater"))
    low, high = res.confidence_interval(0.95)
    scale = 100.0 * (na + 1) / 2.0 / cf
    improvement = sign * float(da.mean() - db.mean()) * scale
    lo, hi = sorted((sign * float(low) * scale, sign * float(high) * scale))
    return Measurement(metric, better, cf, float(a.mean()), improvement, lo, hi, p_better,
                       welch_verdict(p_better, improvement, alpha, min_improvement), nb, na, "increments")


def saturated(rows: list[dict]) -> bool:
    """Whether decisions were waiting for a worker (or a rate limit) at the end of every window of ``rows``
    (``queue_length`` > 0; NaN, an observed agent's, is not): a backlog all along, so the agent served at its
    bottleneck's capacity, and its ``throughput_per_s`` measured that capacity. False for no rows."""
    return bool(rows) and all(r.get("queue_length", math.nan) > 0 for r in rows)


def measure(before_rows: list[dict], after_rows: list[dict], metric: str, better: str,
            alpha: float = 0.05, min_improvement: float = 0.02, min_decisions: int = 1) -> Measurement:
    """Compare ``metric`` over window rows before and after a change.

    Windows with fewer than ``min_decisions`` decisions, or a NaN value, are left
    out. Raises ValueError for ``better`` not in {"lower", "higher"}.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    b, a = _values(before_rows, metric, min_decisions), _values(after_rows, metric, min_decisions)
    nb, na = len(b), len(a)
    if nb < 2 or na < 2:
        mb = float(b.mean()) if nb else math.nan
        ma = float(a.mean()) if na else math.nan
        return Measurement(metric, better, mb, ma, math.nan, math.nan, math.nan, math.nan, "inconclusive", nb, na)
    mb, ma = float(b.mean()), float(a.mean())
    sign = -1.0 if better == "lower" else 1.0
    scale = 100.0 / abs(mb) if mb else math.nan
    with warnings.catch_warnings():
        # near-constant windows (e.g. a saturated rate) trip scipy's precision warning; the test is still valid
        warnings.simplefilter("ignore", RuntimeWarning)
        res = welch_ttest(a, b)
        p_one = res.pvalue("less" if better == "lower" else "greater")
    if not np.isfinite(res.statistic):
        # both sides constant: no evidence either way unless the constants differ (then NaN: inconclusive)
        diff = ma - mb
        p_better = math.nan if diff == 0 else (0.0 if sign * diff > 0 else 1.0)
        lo = hi = diff
    else:
        low, high = res.confidence_interval(0.95)
        lo, hi = float(low), float(high)
        p_better = float(p_one)
    improvement = sign * (ma - mb) * scale
    ci_pct = sorted((sign * lo * scale, sign * hi * scale))
    verdict = welch_verdict(p_better, improvement, alpha, min_improvement)
    return Measurement(metric, better, mb, ma, improvement, ci_pct[0], ci_pct[1], p_better, verdict, nb, na)


def welch_verdict(p_better: float, improvement_pct: float, alpha: float, min_improvement: float) -> str:
    """Verdict of a one-sided p-value for improvement, two-sided at ``alpha``:
    inconclusive when either is NaN (no data is never a verdict: e.g. a metric
    that is 0 before, so no relative change exists); pass if p_better < alpha / 2
    and the improvement (percent) is at least 100 x ``min_improvement``; fail if
    1 - p_better < alpha / 2; else marginal."""
    if not (math.isfinite(p_better) and math.isfinite(improvement_pct)):
        return "inconclusive"
    if p_better < alpha / 2 and improvement_pct >= min_improvement * 100:
        return "pass"
    if 1.0 - p_better < alpha / 2:
        return "fail"
    return "marginal"


def effective_counts(outcomes: np.ndarray) -> tuple[int, int, float]:
    """(hits, trials, tau) of a time-ordered 0/1 series after the design-effect
    correction: trials = floor(n / tau), hits scaled in proportion (rounded),
    tau its :func:`~swarmopt.optimizer.canary.autocorrelation_time`."""
    x = np.asarray(outcomes, dtype=bool)
    tau = autocorrelation_time(x)
    n = int(x.size / tau)
    hits = int(round(int(x.sum()) * n / x.size)) if x.size else 0
    return hits, n, tau


@dataclass(frozen=True)
class Effect:
    """The figures of the test that decided a change, in one sign convention:
    ``improvement_pct`` is positive when the target moved in its better
    direction, and ``ci_low_pct``/``ci_high_pct`` bound it the same way.
    ``before``/``after``: per-task medians (latency, cost) or proportions
    (rates) for the per-task tests, window levels for the window values.
    ``p_value``: that test's (two-sided for Mann-Whitney and the
    two-proportion test, one-sided for an improvement for the window values).
    ``level``: the interval's confidence."""

    before: float
    after: float
    improvement_pct: float
    ci_low_pct: float
    ci_high_pct: float
    p_value: float
    level: float


@dataclass(frozen=True)
class Judgement:
    """The verdict on one change and what the optimizer does with it.

    ``verdict`` (pass / marginal / fail / inconclusive) is the target metric's,
    by ``method`` ("mann-whitney", "two-proportion" or "welch-windows": the
    target's :class:`~swarmopt.metrics.MetricSpec` ``test``; "segmented-windows"
    for a window target adjusted for trend and load); ``canary`` is the
    task-level verdict (None for a window target) and ``window`` the
    window-level measurement, whose ``improvement_pct`` is reported either way. ``tau_before``/``tau_after``:
    autocorrelation times of the target's per-task series (1.0 for
    welch-windows); ``tasks_before``/``tasks_after``: decisions in the spans.
    ``breaches``: guardrail breaches (:func:`guardrails`).
    """

    verdict: Outcome
    method: str
    window: Measurement
    canary: MetricVerdict | None
    tau_before: float
    tau_after: float
    tasks_before: int
    tasks_after: int
    breaches: tuple[str, ...]

    @property
    def decision(self) -> str:
        """"keep" (pass, no breach), "rollback" (fail or a guardrail breach:
        a measured degradation), or "revert" (marginal or inconclusive: no
        measured benefit, so the old configuration is restored, but nothing
        was shown to be worse)."""
        if self.breaches or self.verdict == "fail":
            return "rollback"
        return "keep" if self.verdict == "pass" else "revert"

    @property
    def by_windows(self) -> bool:
        """True when the window values decided (a window target, or the
        batch-means fallback of a per-task test with too few effective tasks)."""
        return self.canary is None or self.method.endswith("/batch-means")

    def effect(self, alpha: float = 0.05) -> Effect:
        """The deciding test's figures (:class:`Effect`, positive = better):
        the per-task judge's relative median or rate change with its interval
        (confidence ``1 - (1 - GUARD_SHARE) alpha``, the level it tested at),
        or the window level's (95%) when it decided (:attr:`by_windows`)."""
        m, cv = self.window, self.canary
        if self.by_windows:
            return Effect(m.before, m.after, m.improvement_pct, m.ci_low_pct, m.ci_high_pct, m.p_value, 0.95)
        sign = -1.0 if m.better == "lower" else 1.0
        scale = 100.0 / abs(cv.before) if cv.before == cv.before and cv.before != 0 else math.nan
        low, high = sorted((sign * cv.ci_low * scale, sign * cv.ci_high * scale))
        return Effect(cv.before, cv.after, sign * cv.shift * scale, low, high, cv.p_value,
                      1.0 - (1.0 - GUARD_SHARE) * alpha)

    @property
    def reason(self) -> str:
        """One line saying why: the guardrail breaches, else the verdict and
        the reasons of the test that decided (improvements positive = better)."""
        if self.breaches:
            return "guardrail: " + "; ".join(self.breaches)
        if self.by_windows:
            adjusted = self.window.method.partition(":")[2] or "nothing"
            test = "Welch" if self.window.method == "welch" else f"adjusted for {adjusted}"
            why = (f"window level improvement {self.window.improvement_pct:+.1f}% "
                   f"({test}, one-sided p={self.window.p_value:.2g})")
            if self.canary is not None:
                why += f"; per-task: {'; '.join(self.canary.reasons)}"
        else:
            why = "; ".join(self.canary.reasons)
        return f"{self.verdict}: {why}"


@dataclass(frozen=True)
class Covariate:
    """A per-task control variate a change of one knob family does not move: ``of(old, sample)`` its values over
    a :class:`~swarmopt.metrics.TaskSample` (shape (n,)), ``old`` the knob's value before the change; it adjusts
    the targets whose per-task field is in ``targets``."""

    targets: tuple[str, ...]
    of: Callable[[Any, TaskSample], np.ndarray]


def _no_valid_attempt_among(old: Any, s: TaskSample) -> np.ndarray:
    """Per decision of ``s``, whether none of its first ``old + 1`` attempts was valid (empty: not recorded)."""
    if s.attempts.size != s.n:
        return np.zeros(0, dtype=bool)
    return ~(s.ok & (s.attempts <= int(old) + 1))


#: Knob family -> the decisions' outcome under the old value, read from their own record whatever the value:
#: running tools in parallel or in sequence reorders a decision's calls, not their times (the service time of a
#: sequence is its work; a response time also waits in the queue, which the work does not explain: its adjusted
#: mean tested less power than its ranks); more retries add attempts after the first ``old + 1``, whose outcome
#: they do not change (a decision with no valid attempt among them is an error under the old value).
COVARIATES = {
    "parallel_tools": Covariate(("service_ms",), lambda old, s: s.work_ms),
    "max_retries": Covariate(("error", "success"), _no_valid_attempt_among),
}


def covariate(actions: Sequence, target: str | None) -> Callable[[TaskSample], np.ndarray] | None:
    """The :data:`COVARIATES` entry of ``actions`` (knob changes), a change of one knob family whose covariate
    adjusts ``target`` (a :class:`~swarmopt.metrics.TaskSample` field; None for a window target), as a function of
    a sample; else None."""
    if len(actions) != 1 or (cv := COVARIATES.get(actions[0].knob.partition(".")[0])) is None or (
            target not in cv.targets):
        return None
    return partial(cv.of, actions[0].old)


def control_variate(before: np.ndarray, after: np.ndarray, x_before: np.ndarray,
                    x_after: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-task values ``before`` and ``after`` (shapes (n_b,), (n_a,)) less
    their covariate's part: y - theta (x - mean x), with ``x_*`` the same
    decisions' covariate (e.g. the summed time of each one's calls, ms), theta the
    within-span least-squares slope of y on x (one slope, each span its own
    mean) and the mean x over both spans: the regression adjustment of an
    experiment (CUPED: Deng, Xu, Kohavi & Walker, WSDM 2013; ANCOVA), unbiased
    for the change's effect when the change does not move x, with the variance
    x explains removed, and a shift of x between the spans (a tool that slowed
    for reasons of its own) removed from the comparison too. None when
    a covariate is missing (NaN, or not recorded) or constant within the spans."""
    if x_before.size != before.size or x_after.size != after.size or not (
            np.isfinite(x_before).all() and np.isfinite(x_after).all()):
        return None
    yb, ya, xb, xa = (np.asarray(v, dtype=float) for v in (before, after, x_before, x_after))
    dxb, dxa = xb - xb.mean(), xa - xa.mean()
    sxx = dxb @ dxb + dxa @ dxa
    if not sxx > 0:
        return None
    theta = (dxb @ (yb - yb.mean()) + dxa @ (ya - ya.mean())) / sxx
    centre = (xb.sum() + xa.sum()) / (xb.size + xa.size)
    return yb - theta * (xb - centre), ya - theta * (xa - centre)


def judge_change(before_rows: list[dict], after_rows: list[dict], before: TaskSample, after: TaskSample,
                 metric: str, alpha: float = 0.05, min_improvement: float = 0.02,
                 min_samples: int = 20, success_drop: float = 0.03, error_rise: float = 0.03,
                 cost_rise: float = 0.5, trend_adjust: bool = False, latency_limit_ms: float = math.inf,
                 success_limit: float = 1.0, price: Price | None = None,
                 batch_means: Literal["levels", "increments", "throughput"] = "throughput",
                 rank_test: Literal["thinned", "effective"] = "effective", actions: Sequence = (),
                 tail_unless_mean: bool = False) -> Judgement:
    """Judge a change of ``metric`` from the window rows and the pooled
    per-task samples of the spans before and after; its
    :class:`~swarmopt.metrics.MetricSpec` says which way is better and which
    test judges it.

    The target's test runs at ``(1 - GUARD_SHARE) alpha`` on the effective
    sample sizes (``rank_test``). When the tasks are so autocorrelated that fewer
    than ``min_samples`` are effectively independent although there are enough
    tasks and at least 2 windows a side, the window means are judged instead
    (batch means; ``method`` gets "/batch-means"). Fewer than ``min_samples``
    tasks or 2 windows a side is "inconclusive", never a pass. ``min_improvement`` is the
    minimum relative effect for a pass (median shift for Mann-Whitney, absolute
    rate change for two-proportion, mean change for Welch). The guardrails
    (:func:`guardrails`; ``latency_limit_ms`` and ``success_limit``: the SLO's
    response-time and success limits) skip the target itself; ``price``: the
    price the change's remedy is known to pay (:func:`price_paid`). ``trend_adjust``: where the window values decide (a
    window target, batch means), compare them by :func:`adjusted_measure`,
    adjusted for the metric's ``covariates``;
    elsewhere, and without it, ``window`` is :func:`measure`'s. ``batch_means``: "levels" judges batch means as
    the window values above, "increments" by :func:`drift_measure` (a growing backlog's window means are a random
    walk with drift), "throughput": where both spans are :func:`saturated`, Welch's test of the windows'
    ``throughput_per_s`` decides instead (higher is better; method "/batch-means/throughput"), else (no backlog
    before, or the change cleared it) the levels. ``rank_test``: a Mann-Whitney target judged on
    every value with U's variance that of the effective sizes ("effective",
    :func:`~swarmopt.optimizer.canary.judge_latency`'s ``tau``), or on the series thinned to their effective size
    ("thinned", the default before 2026-12-06). ``actions``: the change's knob changes; a change of one
    :data:`COVARIATES` family is judged on the target's values less its covariate's part (:func:`control_variate`)
    by the difference of the adjusted means (:func:`~swarmopt.optimizer.canary.judge_mean`; ``method`` gets
    "/control"). ``tail_unless_mean``: a ``*_mean`` target judged by Mann-Whitney is not failed on its tail or
    spread when its mean is significantly better (:func:`~swarmopt.optimizer.canary.judge_latency`'s
    ``mean_target``). Raises ValueError for a metric with no spec in :data:`swarmopt.metrics.METRICS`.
    """
    spec = metric_spec(metric)
    window = measure(before_rows, after_rows, metric, spec.better, alpha, min_improvement)
    a_target = alpha * (1 - GUARD_SHARE)
    method = "segmented-windows" if trend_adjust and spec.test == "welch-windows" else spec.test
    canary: MetricVerdict | None = None
    tau_b = tau_a = 1.0
    xb, xa = (getattr(before, spec.per_task), getattr(after, spec.per_task)) if spec.per_task else ((), ())
    cov = covariate(actions, spec.per_task)
    adjusted = control_variate(xb, xa, cov(before), cov(after)) if cov else None
    if adjusted is not None:
        tau_b, tau_a = (autocorrelation_time(v) for v in adjusted)
        canary = judge_mean(*adjusted, (xb, xa), tau=(tau_b, tau_a), better=spec.better, alpha=a_target,
                            min_samples=min_samples, marginal_effect=min_improvement, metric=metric,
                            rate=method == "two-proportion")
        method += "/control"
    elif method == "mann-whitney":
        tau_b, tau_a = autocorrelation_time(xb), autocorrelation_time(xa)
        pair, tau = ((xb, xa), (tau_b, tau_a)) if rank_test == "effective" else (
            (thin(xb, tau_b), thin(xa, tau_a)), None)
        canary = judge_latency(*pair, better=spec.better, alpha=a_target, min_samples=min_samples,
                               marginal_effect=min_improvement, metric=metric, tau=tau,
                               mean_target=tail_unless_mean and metric.endswith("_mean"))
    elif method == "two-proportion":
        hb, nb, tau_b = effective_counts(xb)
        ha, na, tau_a = effective_counts(xa)
        canary = judge_proportion(hb, nb, ha, na, better=spec.better, alpha=a_target, min_samples=min_samples,
                                  marginal_effect=min_improvement, metric=metric)
    verdict = canary.outcome if canary is not None else "inconclusive"
    enough_windows = min(before.n, after.n) >= min_samples and min(window.n_before, window.n_after) >= 2
    if verdict == "inconclusive" and enough_windows:
        if canary is not None:
            # enough tasks, but so autocorrelated (a long busy period) that fewer than
            # min_samples are effectively independent: the batch-means method for
            # correlated simulation output judges the window means instead
            method += "/batch-means"
        if canary is not None and batch_means == "increments":
            window = drift_measure(before_rows, after_rows, metric, spec.better, alpha, min_improvement)
        elif canary is not None and batch_means == "throughput" and saturated(before_rows) and saturated(after_rows):
            # a queue that waited at every window end on both sides served at its bottleneck's capacity, flat
            # however the backlog and the load went (the latency's window means are not): the throughput shows
            # what the change did to that capacity. A change that cleared the backlog is judged as before.
            window = measure(before_rows, after_rows, "throughput_per_s", metric_spec("throughput_per_s").better,
                             alpha, min_improvement)
            method += "/throughput"
        elif trend_adjust:
            # the window values decide: adjusted for trend and load (a per-task test compares the same
            # five windows a side, but on its own, more precise scale: its secondary figure stays Welch's)
            window = adjusted_measure(before_rows, after_rows, metric, spec.better, alpha, min_improvement,
                                      covariates=spec.covariates)
        verdict = welch_verdict(window.p_value, window.improvement_pct, a_target, min_improvement)
    breaches = guardrails(before, after, metric, success_drop, error_rise, cost_rise, alpha * GUARD_SHARE / GUARDRAILS,
                          min_samples, latency_limit_ms, success_limit)
    if price is not None:
        breaches += price_paid(before, after, price, min_samples)
    return Judgement(verdict, method, window, canary, tau_b, tau_a, before.n, after.n, tuple(breaches))


def guardrails(before: TaskSample, after: TaskSample, skip: str, success_drop: float, error_rise: float,
               cost_rise: float, alpha: float = 0.05 * GUARD_SHARE / GUARDRAILS, min_samples: int = 20,
               latency_limit_ms: float = math.inf, success_limit: float = 1.0) -> list[str]:
    """Guardrail breaches of a change (empty list when none), from per-task samples.

    A guardrail is breached when the metric got worse by more than its
    tolerance AND the worsening is significant at one-sided ``alpha``, so noise
    alone trips each with probability <= alpha:

    * success rate down by more than ``success_drop`` (absolute) to below
      ``success_limit`` (the SLO's; 1.0: any rate), two-proportion test
      (:func:`~swarmopt.optimizer.canary.judge_proportion`) on the
      design-effect-corrected counts (:func:`effective_counts`): a change may
      spend success the SLO has room for (a faster tier that takes a 0.92
      success rate to 0.82 under a 0.70 SLO), as an error budget is spent;
    * error rate (decisions with no valid attempt) up by more than
      ``error_rise`` (absolute), same test;
    * cost per decision (USD, the mean of per-task cost) up by more than
      ``cost_rise`` (relative), one-sided Welch t-test on per-task costs thinned
      to their effective size;
    * the mean response time (ms) from at most ``latency_limit_ms`` (the SLO's
      limit; inf: no check) before to above it after, the same test on the
      per-task response times: a change that buys success with latency must not
      break the latency objective that held (the ground truth counts both).

    The change's own target metric ``skip`` is not a guardrail. A side with
    fewer than ``min_samples`` effective tasks cannot breach. Resilience4j's
    circuit breaker trips on a failure-rate threshold over a minimum number of
    calls; here the threshold is a tolerance on the change and the minimum is
    statistical.
    """
    out = []
    for metric, tol, limit, text in (("success_rate", success_drop, success_limit, "success rate fell"),
                                     ("error_rate", error_rise, -math.inf, "error rate rose")):
        if metric == skip:
            continue
        spec = metric_spec(metric)
        hb, nb, _ = effective_counts(getattr(before, spec.per_task))
        ha, na, _ = effective_counts(getattr(after, spec.per_task))
        v = judge_proportion(hb, nb, ha, na, better=spec.better, alpha=2 * alpha, min_samples=min_samples,
                             metric=metric)
        worse = v.shift if spec.better == "lower" else -v.shift
        if v.outcome == "fail" and worse > tol and spec.worse(v.after, limit):
            out.append(f"{text} {v.before:.1%} -> {v.after:.1%} (limit {tol:.0%}, p={v.p_value:.2g})")
    if skip != "cost_per_decision_usd":
        cb, ca = before.cost_usd.astype(np.float64), after.cost_usd.astype(np.float64)
        mb, ma = (float(c.mean()) if c.size else math.nan for c in (cb, ca))
        if mb > 0 and ma / mb - 1.0 > cost_rise:  # only a rise beyond the tolerance can breach: test it alone
            p = _rise_p(cb, ca, min_samples)
            if p < alpha:
                out.append(f"cost per decision rose ${mb:.4f} -> ${ma:.4f} (limit +{cost_rise:.0%}, p={p:.2g})")
    if not skip.startswith("response_time_ms"):
        rb, ra = before.response_ms.astype(np.float64), after.response_ms.astype(np.float64)
        mb, ma = (float(r.mean()) if r.size else math.nan for r in (rb, ra))
        if mb <= latency_limit_ms < ma:  # only a change that took the mean past the SLO's limit can breach
            p = _rise_p(rb, ra, min_samples)
            if p < alpha:
                out.append(f"mean response time rose past its limit {mb:.0f} -> {ma:.0f} ms "
                           f"(limit {latency_limit_ms:.0f} ms, p={p:.2g})")
    return out


SHIFT_ALPHA = 0.01
"""Family-wise level of :func:`last_shift_s`'s search for a level shift over all its splits."""


def last_shift_s(t_start: Sequence[float], values: Sequence[float], alpha: float = SHIFT_ALPHA,
                 min_side: int = 3) -> float:
    """Start (s) of the first window after the last level shift of a window
    series, or -inf when the series is one level.

    ``values`` are a metric's window values in time order and ``t_start`` the
    windows' starts (s); NaN values (windows with no decision) are left out.
    Binary segmentation: the split with the largest pooled two-sample t
    statistic, at least ``min_side`` windows a side, is a shift when
    significant at ``alpha`` shared over the splits (Bonferroni); the search
    repeats on the windows after it. It is what a fault's onset looks like in
    the windows before a change (a step in the error rate), so that the
    before-span can reach back to it rather than to when the optimizer first
    saw the bottleneck (:meth:`swarmopt.optimizer.trial.Trial.before_start_s`).
    """
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    v, t = v[ok], np.asarray(t_start, dtype=np.float64)[ok]
    onset = -math.inf
    while v.size >= 2 * min_side:
        if np.ptp(v) <= 1e-12 * np.abs(v).max():
            break  # one level: the sums below would test their own rounding (which varies with numpy's summation)
        n = v.size
        k = np.arange(min_side, n - min_side + 1)
        c1, c2 = np.cumsum(v)[k - 1], np.cumsum(v * v)[k - 1]
        s1, s2 = v.sum(), float(v @ v)
        ml, mr = c1 / k, (s1 - c1) / (n - k)
        ss = (c2 - k * ml * ml) + ((s2 - c2) - (n - k) * mr * mr)
        with np.errstate(divide="ignore", invalid="ignore"):
            tt = np.abs(ml - mr) / np.sqrt(ss / (n - 2) * (1.0 / k + 1.0 / (n - k)))
        tt = np.where(np.isfinite(tt), tt, np.where(ml != mr, np.inf, 0.0))
        best = int(np.argmax(tt))
        if not 2.0 * stats.t.sf(tt[best], n - 2) < alpha / k.size:
            break
        onset = float(t[k[best]])
        v, t = v[k[best]:], t[k[best]:]
    return onset


@dataclass(frozen=True)
class Price:
    """The price a change's remedy is known to pay
    (:attr:`swarmopt.optimizer.strategies.Remedy.price`): ``metric`` (one of
    :data:`swarmopt.optimizer.strategies.PRICES`), the SLO's setpoint for it
    (``target``, ms; :func:`swarmopt.optimizer.detect.setpoint`) and how much
    worse it may get (``tolerance``, relative)."""

    metric: str
    target: float
    tolerance: float


def price_paid(before: TaskSample, after: TaskSample, price: Price, min_samples: int = 20) -> list[str]:
    """The breach (a one-item list, else empty) of a change that paid more of
    its known price than the SLO has room for: the mean per-task response time
    (ms) rose by more than ``price.tolerance`` and ended past its setpoint
    ``price.target``.

    Unlike :func:`guardrails` the estimate decides without a significance test:
    the remedy's mechanism makes the price real (one more retry adds an attempt
    to every failing decision), only its size is in question, and a window SLO
    is lost by a shift no test on ten windows can tell from noise (the worked
    example's mean response time from 1,550 to 1,830 ms under a 2,000 ms limit:
    24 SLO points lost over the rest of the run in the paired replay, p = 0.055
    one-sided). A side with fewer than ``min_samples`` tasks cannot breach.
    Raises ValueError for another metric.
    """
    if price.metric != "response_time_ms_mean":
        raise ValueError(f"price metric must be response_time_ms_mean, got {price.metric!r}")
    if min(before.n, after.n) < max(min_samples, 1):
        return []
    mb, ma = float(before.response_ms.mean()), float(after.response_ms.mean())
    if ma > price.target and ma > mb * (1.0 + price.tolerance):
        return [f"paid its price: mean response time {mb:.0f} -> {ma:.0f} ms "
                f"(setpoint {price.target:.0f} ms, tolerance {price.tolerance:.0%})"]
    return []


def _rise_p(before: np.ndarray, after: np.ndarray, min_samples: int) -> float:
    """One-sided Welch p-value for a higher mean ``after`` than ``before``
    (per-task values, thinned to their effective size); NaN when a side has
    fewer than ``min_samples`` (at least 2) effective values; for constant
    sides 0 when the mean rose, else 1."""
    xb, xa = thin(before, autocorrelation_time(before)), thin(after, autocorrelation_time(after))
    if min(xb.size, xa.size) < max(min_samples, 2):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(welch_ttest(xa, xb).pvalue("greater"))
    return p if np.isfinite(p) else (0.0 if after.mean() > before.mean() else 1.0)
