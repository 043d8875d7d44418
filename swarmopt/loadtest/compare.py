"""Paired comparisons of every policy with the baseline (the ``comparisons`` table).

Every policy runs each (scenario, seed) with the same arrival and service
draws (common random numbers: each agent's streams come from the seed, not
from what the optimizer does), so a policy's run and the baseline's run of one
(scenario, seed) form a pair, and the spread between seeds cancels out of
their difference. Per policy, metric and scenario (and over all scenarios,
``scenario == "all"``): the mean paired difference (policy minus baseline),
its 95% bootstrap interval with ``scipy.stats.bootstrap(paired=True)`` (BCa;
percentile where BCa is degenerate), the Wilcoxon signed-rank p-value, and
beside them the 95% interval of the same difference of means bootstrapped
without pairing, so the gain from pairing shows as the ratio of the widths.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

METRICS = {
    "slo_attainment": "higher", "slo_attainment_faulted": "higher", "mttr_min": "lower",
    "p95_response_time_ms": "lower", "cost_usd": "lower", "cost_per_success_usd": "lower", "knob_reversals": "lower",
    "planned_reversals": "lower",
    "review_wait_ms": "lower",
}
RESAMPLES = 9999


def _mean_diff(a, b, axis=-1):
    return np.mean(a - b, axis=axis)


def _diff_means(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def bootstrap_interval(x: np.ndarray, y: np.ndarray, statistic, paired: bool, seed: int) -> tuple[float, float]:
    """95% bootstrap interval of ``statistic(x, y, axis)`` (vectorized over resamples) from
    ``scipy.stats.bootstrap``: BCa, percentile where BCa is degenerate, the statistic itself where every
    resample gives it; NaN with fewer than 2 values a side. Seeded by ``seed``: reproducible."""
    from scipy import stats  # here, not at import: the CLI checks a spec in a fraction of scipy.stats' import time

    if len(x) < 2 or len(y) < 2:
        return math.nan, math.nan
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = stats.bootstrap((x, y), statistic, paired=paired, vectorized=True, n_resamples=RESAMPLES,
                                 method=method, rng=np.random.default_rng(seed)).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return float(ci.low), float(ci.high)
    d = statistic(x, y)
    # a degenerate resampling distribution (every resample gives the same value): the interval is that value
    return float(d), float(d)


def paired_difference(x, y, seed: int = 0) -> dict:
    """Statistics of the paired difference ``x - y`` (arrays of one length;
    pairs with a NaN are dropped): n, means, mean difference, paired and
    unpaired 95% bootstrap intervals with their widths, Wilcoxon p (NaN with
    fewer than 2 pairs; 1 when every difference is 0). Seeded: reproducible."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    lo, hi = bootstrap_interval(x, y, _mean_diff, True, seed)
    ulo, uhi = bootstrap_interval(x, y, _diff_means, False, seed)
    if n < 2:
        p = math.nan
    elif np.all(x == y):
        p = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(stats.wilcoxon(x, y).pvalue)
    return {"n_pairs": n, "policy_mean": float(x.mean()) if n else math.nan,
            "baseline_mean": float(y.mean()) if n else math.nan,
            "mean_diff": float((x - y).mean()) if n else math.nan, "ci_low": lo, "ci_high": hi, "ci_width": hi - lo,
            "unpaired_ci_low": ulo, "unpaired_ci_high": uhi, "unpaired_ci_width": uhi - ulo, "wilcoxon_p": p}


def comparisons(runs: pd.DataFrame, baseline: str, metrics: dict[str, str] = METRICS) -> pd.DataFrame:
    """The ``comparisons`` table from the ``runs`` table (policy runs with
    status ``ok``): one row per policy other than ``baseline``, metric
    (``better``: which direction is good) and scenario, plus ``all`` pooling
    every (scenario, seed) pair."""
    cols = ["policy", "baseline", "metric", "better", "scenario", *paired_difference([], []).keys()]
    ok = runs[(runs["kind"] == "policy") & (runs["status"] == "ok")] if len(runs) else runs
    out: list[dict] = []
    if ok.empty or baseline not in set(ok["policy"]):
        return pd.DataFrame(columns=cols)
    base = ok[ok["policy"] == baseline].set_index(["scenario", "seed"])
    for policy in sorted(set(ok["policy"]) - {baseline}):
        mine = ok[ok["policy"] == policy].set_index(["scenario", "seed"])
        both = mine.index.intersection(base.index)
        scopes = [(s, [k for k in both if k[0] == s]) for s in sorted({k[0] for k in both})] + [("all", list(both))]
        for metric, better in ((m, b) for m, b in metrics.items() if m in ok):  # older stores lack newer measures
            for scope, keys in scopes:
                keys = sorted(keys)
                stats_ = paired_difference(mine.loc[keys, metric].to_numpy(float) if keys else [],
                                           base.loc[keys, metric].to_numpy(float) if keys else [])
                out.append({"policy": policy, "baseline": baseline, "metric": metric, "better": better,
                            "scenario": scope} | stats_)
    return pd.DataFrame(out, columns=cols)  # the columns also when the baseline is the only policy
