"""The load test's summary (``summary.json``): one flat mapping of numbers per policy.

Per policy, over its policy runs with status ``ok`` (every scenario and seed):

* ``runs``, ``failed``; the mean of each run measure (``slo_attainment``,
  ``slo_attainment_faulted``, ``mttr_min``, ``p95_response_time_ms``,
  ``cost_usd``, ``cost_per_success_usd``, ``changes_*``, ``knob_reversals``, ``planned_reversals``,
  ``review_wait_ms``, ``autonomy_changes``);
* ground truth (NaN when there is none): ``decisions_judged``,
  ``false_keep_rate`` = false keeps / keeps and ``false_rollback_rate`` =
  false rollbacks and reverts / rollbacks and reverts, each with its 95%
  Wilson interval (``scipy.stats.binomtest(...).proportion_ci``, ``_ci_low``
  and ``_ci_high``), ``decision_accuracy`` = correct / judged, and
  ``truth_agreement``, the mean share of a decision's replicated pairs of
  arms whose own label is its label (``ground_truth.replicas`` > 1; else NaN);
* against the baseline, for each compared metric M: ``M_diff`` (mean paired
  difference over all scenarios), ``M_diff_ci_low``, ``M_diff_ci_high``,
  ``M_wilcoxon_p``;
* against the oracle: ``pct_of_oracle`` and ``gap_closed`` (over all scenarios), with ``gap_closed_low`` and
  ``gap_closed_high``, its 95% bootstrap interval (:func:`swarmopt.loadtest.oracle.gap_interval`).

These are the names ``--fail-if`` expressions use (``<policy>.<field>``).
"""

from __future__ import annotations

import math

import pandas as pd

from swarmopt.loadtest.compare import METRICS

MEAN_FIELDS = ("slo_attainment", "slo_attainment_faulted", "mttr_min", "p95_response_time_ms", "cost_usd",
               "cost_per_success_usd", "changes_attempted", "changes_kept", "changes_rolled_back",
               "changes_reverted", "changes_restored", "knob_reversals", "planned_reversals", "review_wait_ms",
               "autonomy_changes")
TRUTH_FIELDS = ("decisions_judged", "decision_accuracy", "false_keep_rate", "false_keep_rate_ci_low",
                "false_keep_rate_ci_high", "false_rollback_rate", "false_rollback_rate_ci_low",
                "false_rollback_rate_ci_high", "truth_agreement")
DIFF_FIELDS = tuple(f"{m}_{s}" for m in METRICS for s in ("diff", "diff_ci_low", "diff_ci_high", "wilcoxon_p"))
ORACLE_FIELDS = ("pct_of_oracle", "gap_closed", "gap_closed_low", "gap_closed_high")
FIELDS = ("runs", "failed") + MEAN_FIELDS + TRUTH_FIELDS + DIFF_FIELDS + ORACLE_FIELDS


def rate(k: int, n: int) -> tuple[float, float, float]:
    """(k / n, Wilson 95% interval low, high); NaNs when n == 0."""
    from scipy import stats  # here, not at import (see swarmopt.loadtest.compare)

    if n == 0:
        return math.nan, math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return k / n, float(ci.low), float(ci.high)


def confusion(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per policy: counts of each decision (keep, rollback, revert) by truth
    (helped, no effect, hurt); columns policy, decision, helped, no effect, hurt."""
    cols = ["policy", "decision", "helped", "no effect", "hurt"]
    if decisions.empty:
        return pd.DataFrame(columns=cols)
    t = pd.crosstab([decisions["policy"], decisions["decision"]], decisions["truth"])
    return t.reindex(columns=cols[2:], fill_value=0).reset_index()[cols]


def by_remedy(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per policy and remedy (``kind``), where its judged changes went right
    and wrong: columns policy, kind, decisions, correct keep, false keep,
    correct undo, false undo (rollbacks and reverts together) and
    ``false_undo_share`` (false undos / undos; NaN without undos), the remedies
    with the most false decisions first within each policy."""
    cols = ["policy", "kind", "decisions", "correct keep", "false keep", "correct undo", "false undo"]
    if decisions.empty:
        return pd.DataFrame(columns=cols + ["false_undo_share"])
    d = decisions.assign(outcome=decisions["label"].str.replace(r"(rollback|revert)$", "undo", regex=True))
    t = pd.crosstab([d["policy"], d["kind"]], d["outcome"]).reindex(columns=cols[3:], fill_value=0)
    t.columns.name = None
    t.insert(0, "decisions", t.sum(axis=1))
    undos = t["correct undo"] + t["false undo"]
    t["false_undo_share"] = (t["false undo"] / undos).where(undos > 0)
    t = t.reset_index().assign(_false=lambda x: x["false keep"] + x["false undo"])
    t = t.sort_values(["policy", "_false", "kind"], ascending=[True, False, True])
    return t[cols + ["false_undo_share"]].reset_index(drop=True)


def _truth(d: pd.DataFrame, judged: bool) -> dict:
    if not judged:
        return dict.fromkeys(TRUTH_FIELDS, math.nan)
    keeps = d[d["decision"] == "keep"]
    undos = d[d["decision"] != "keep"]
    fk = rate(int((keeps["label"] == "false keep").sum()), len(keeps))
    fr = rate(int(undos["label"].str.startswith("false").sum()), len(undos))
    return {"decisions_judged": len(d), "decision_accuracy": float(d["correct"].mean()) if len(d) else math.nan,
            "false_keep_rate": fk[0], "false_keep_rate_ci_low": fk[1], "false_keep_rate_ci_high": fk[2],
            "false_rollback_rate": fr[0], "false_rollback_rate_ci_low": fr[1], "false_rollback_rate_ci_high": fr[2],
            "truth_agreement": _agreement(d)}


def _agreement(d: pd.DataFrame) -> float:
    if "replicas" not in d or not (d["replicas"] > 1).any():
        return math.nan
    return float(d.loc[d["replicas"] > 1, "truth_agreement"].mean())


def summarize(runs: pd.DataFrame, decisions: pd.DataFrame, comparisons: pd.DataFrame, oracle: pd.DataFrame,
              policies: list[str], baseline: str) -> dict[str, dict[str, float]]:
    """``{policy: {field: number}}`` for every policy of the spec (see the module doc;
    the baseline's differences from itself are 0)."""
    out = {}
    pol = runs[runs["kind"] == "policy"] if len(runs) else runs
    for p in policies:
        mine = pol[pol["policy"] == p] if len(pol) else pol
        ok = mine[mine["status"] == "ok"] if len(mine) else mine
        s: dict[str, float] = {"runs": len(mine), "failed": int((mine["status"] != "ok").sum()) if len(mine) else 0}
        s |= {f: float(ok[f].mean()) if len(ok) and f in ok else math.nan for f in MEAN_FIELDS}
        judged = len(ok) > 0 and "truth_status" in ok and bool((ok["truth_status"] == "on").any())
        d = decisions[decisions["policy"] == p] if len(decisions) else decisions
        s |= _truth(d, judged)
        c = comparisons[(comparisons["policy"] == p) & (comparisons["scenario"] == "all")] if len(comparisons) \
            else comparisons
        for m in METRICS:
            r = c[c["metric"] == m] if len(c) else c
            if len(r):
                s |= {f"{m}_diff": float(r.iloc[0]["mean_diff"]), f"{m}_diff_ci_low": float(r.iloc[0]["ci_low"]),
                      f"{m}_diff_ci_high": float(r.iloc[0]["ci_high"]),
                      f"{m}_wilcoxon_p": float(r.iloc[0]["wilcoxon_p"])}
            else:
                zero = 0.0 if p == baseline and len(ok) else math.nan
                s |= {f"{m}_diff": zero, f"{m}_diff_ci_low": zero, f"{m}_diff_ci_high": zero,
                      f"{m}_wilcoxon_p": math.nan}
        o = oracle[(oracle["policy"] == p) & (oracle["scenario"] == "all")] if len(oracle) else oracle
        s |= {f: float(o.iloc[0][f]) if len(o) else math.nan for f in ORACLE_FIELDS}
        out[p] = s
    return out
