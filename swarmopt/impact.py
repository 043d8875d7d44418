"""The overall impact of a run's optimizations, as the source summarizes it (pure).

Reference/001 ("Overall Impact Calculation") reports total and successful
optimizations, the success rate, the overall improvement (the average
improvement across all of them) and the improvement per category. Here every
figure comes from the judged changes (:func:`swarmopt.results.change_outcomes`):
an improvement is the canary judge's measured relative change of the change's
target metric (positive = better), never a drawn number.
"""

from __future__ import annotations

import math

import pandas as pd

SUCCESSFUL = ("kept", "restored")
"""Outcomes that count as a successful optimization: kept, or reverted and then restored because undoing it made its
target measurably worse."""


def _mean(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.mean()) if len(x) else math.nan


def impact_summary(changes: pd.DataFrame) -> dict:
    """The source's impact summary of ``changes`` (rows of
    :func:`~swarmopt.results.change_outcomes`; changes still being measured
    are left out): ``total_optimizations`` (judged), ``successful_optimizations``
    (kept or restored), ``success_rate`` (NaN with none judged),
    ``overall_improvement_pct`` (mean measured improvement of the judged
    changes, positive = better), ``kept_improvement_pct`` (the same over the
    successful ones) and ``category_improvements``: per bottleneck type
    (``agent_response_time``, ``cost_burn``, ...) its ``changes``,
    ``successful`` and ``mean_improvement_pct``."""
    judged = changes[changes["status"] != "measuring"] if len(changes) else changes
    n = len(judged)
    ok = judged["status"].isin(SUCCESSFUL) if n else pd.Series(dtype=bool)
    cats = {}
    for type_, g in (judged.groupby("type", sort=True) if n else ()):
        cats[str(type_)] = {"changes": len(g), "successful": int(g["status"].isin(SUCCESSFUL).sum()),
                            "mean_improvement_pct": _mean(g["improvement_pct"])}
    return {
        "total_optimizations": n,
        "successful_optimizations": int(ok.sum()) if n else 0,
        "success_rate": float(ok.mean()) if n else math.nan,
        "overall_improvement_pct": _mean(judged["improvement_pct"]) if n else math.nan,
        "kept_improvement_pct": _mean(judged.loc[ok, "improvement_pct"]) if n else math.nan,
        "category_improvements": cats,
    }
