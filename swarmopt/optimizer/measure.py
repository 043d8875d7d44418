"""Before/after measurement of a change from window metrics (pure).

The improvement of a strategy is the relative change of the mean of its target
metric over the ``k`` windows before it took effect and the ``k`` windows after,
so it can be recomputed from the metrics table alone. Its confidence interval
and p-value come from Welch's t-test on the per-window values (scipy.stats).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Measurement:
    """Outcome of a before/after comparison of ``metric``.

    ``improvement_pct`` is positive when the metric moved in the ``better``
    direction: 100 x (before - after) / before for "lower", 100 x (after -
    before) / before for "higher". ``ci_low_pct``/``ci_high_pct`` bound it (95%
    Welch interval of the difference of means, scaled the same way).
    ``p_value`` is one-sided for an improvement. ``verdict``: pass (significant
    improvement of at least the minimum), fail (significantly worse),
    inconclusive (fewer than 2 usable windows on a side), marginal otherwise.
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


def _values(rows: list[dict], metric: str, min_decisions: int) -> np.ndarray:
    vals = [r[metric] for r in rows if r["decision_count"] >= min_decisions]
    arr = np.asarray(vals, dtype=float)
    return arr[np.isfinite(arr)]


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
        res = stats.ttest_ind(a, b, equal_var=False)
        p_one = stats.ttest_ind(a, b, equal_var=False, alternative="greater" if better == "higher" else "less").pvalue
    if not np.isfinite(res.statistic):
        # both sides constant: no evidence either way unless the constants differ
        diff = ma - mb
        p_better = 0.0 if sign * diff > 0 else 1.0
        lo = hi = diff
    else:
        ci = res.confidence_interval(0.95)
        lo, hi = float(ci.low), float(ci.high)
        p_better = float(p_one)
    improvement = sign * (ma - mb) * scale
    ci_pct = sorted((sign * lo * scale, sign * hi * scale))
    p_worse = 1.0 - p_better
    if p_better < alpha and improvement >= min_improvement * 100:
        verdict = "pass"
    elif p_worse < alpha:
        verdict = "fail"
    else:
        verdict = "marginal"
    return Measurement(metric, better, mb, ma, improvement, ci_pct[0], ci_pct[1], p_better, verdict, nb, na)


def guardrails(before_rows: list[dict], after_rows: list[dict], skip: str, success_drop: float,
               error_rise: float, cost_rise: float) -> list[str]:
    """Guardrail breaches of a change (empty list when none): success rate down
    by more than ``success_drop`` (absolute), error rate up by more than
    ``error_rise`` (absolute), cost per decision up by more than ``cost_rise``
    (relative). The change's own target metric ``skip`` is not a guardrail."""

    def mean(rows, m):
        v = _values(rows, m, 1)
        return float(v.mean()) if v.size else math.nan

    out = []
    checks = (
        ("success_rate", lambda b, a: b - a > success_drop, "success rate fell {b:.1%} -> {a:.1%}"),
        ("error_rate", lambda b, a: a - b > error_rise, "error rate rose {b:.1%} -> {a:.1%}"),
        ("cost_per_decision_usd", lambda b, a: b > 0 and (a - b) / b > cost_rise, "cost per decision rose ${b:.4f} -> ${a:.4f}"),
    )
    for metric, breached, text in checks:
        if metric == skip:
            continue
        b, a = mean(before_rows, metric), mean(after_rows, metric)
        if b == b and a == a and breached(b, a):
            out.append(text.format(b=b, a=a))
    return out
