"""The README's "Decision quality" tables from the output directory of the library load test.

    swarmopt loadtest scenarios/loadtests/library.yaml --out lt-library --workers 2
    python scenarios/library/decision_tables.py lt-library

Prints two Markdown tables (for the policies the load test ran, ``monitor`` the baseline): per policy, the
decisions confusion matrix against the ground truth (a keep is false
when undoing the change would have helped, an undo when keeping it would have) with MTTR, cost, changes and knob
reversals per run; per scenario, the faulted agent's SLO attainment (mean over seeds) of each policy and of the
best oracle configuration, the share of the monitor -> oracle gap closed (n/a when the gap is under 2 points)
and MTTR.
"""

from __future__ import annotations

import sys

import pandas as pd

BASELINE = "monitor"
MIN_GAP = 0.02


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{x:.0%}"


def scenario_table(runs: pd.DataFrame) -> list[str]:
    """Per scenario: attainment of each policy (the baseline first) and of the best oracle configuration (the
    oracle runs' best point, by its mean over the seeds it ran on), gap closed by each other policy, MTTR."""
    policies = list(dict.fromkeys(runs.loc[runs["kind"] == "policy", "policy"]))
    others = [p for p in policies if p != BASELINE]
    lines = ["| scenario | " + " | ".join(policies) + " | oracle | "
             + " | ".join(f"gap closed {p}" for p in others) + f" | MTTR min {' / '.join(policies)} |",
             "|---|" + "---|" * (len(policies) + 2 + len(others))]
    means = []
    for sc, g in runs.groupby("scenario"):
        att = g[g["kind"] == "policy"].groupby("policy")["slo_attainment_faulted"].mean()
        oracle = g[g["kind"] == "oracle"].groupby("policy")["slo_attainment_faulted"].mean().max()
        mttr = g.groupby("policy")["mttr_min"].mean()
        gap = oracle - att[BASELINE]
        closed = [(att[p] - att[BASELINE]) / gap if gap > MIN_GAP else float("nan") for p in others]
        lines.append(f"| {sc} | " + " | ".join(f"{att[p]:.2f}" for p in policies) + f" | {oracle:.2f} | "
                     + " | ".join(_pct(c) for c in closed) + " | " + " / ".join(f"{mttr[p]:.0f}" for p in policies)
                     + " |")
        means.append([att[p] for p in policies] + [oracle])
    m = pd.DataFrame(means).mean()
    lines.append("| mean | " + " | ".join(f"{x:.2f}" for x in m) + " |" + " |" * (len(others) + 1))
    return lines


def policy_table(runs: pd.DataFrame, decisions: pd.DataFrame) -> list[str]:
    """Per policy: the confusion matrix of its judged changes and its run measures."""
    lines = ["| policy | decisions | correct keep | false keep | correct undo | false undo | false keep rate "
             "| false rollback rate | MTTR min | cost USD | changes / run | knob reversals / run "
             "| planned reversals / run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in dict.fromkeys(runs.loc[runs["kind"] == "policy", "policy"]):
        g, d = runs[runs["policy"] == p], decisions[decisions["policy"] == p]
        right = d["correct"].astype(bool)
        keep = d["decision"] == "keep"
        ck, fk = int((keep & right).sum()), int((keep & ~right).sum())
        cu, fu = int((~keep & right).sum()), int((~keep & ~right).sum())
        fkr = f"{fk / (ck + fk):.2f}" if ck + fk else ""
        fur = f"{fu / (cu + fu):.2f}" if cu + fu else ""
        planned = f"{g['planned_reversals'].mean():.2f}" if "planned_reversals" in g else ""
        lines.append(f"| {p} | {len(d)} | {ck} | {fk} | {cu} | {fu} | {fkr} | {fur} | {g['mttr_min'].mean():.0f} "
                     f"| {g['cost_usd'].mean():.0f} | {g['changes_attempted'].mean():.2f} "
                     f"| {g['knob_reversals'].mean():.2f} | {planned} |")
    return lines


def main(out: str) -> None:
    runs = pd.read_parquet(f"{out}/runs.parquet")
    runs = runs[runs["status"] == "ok"]
    decisions = pd.read_parquet(f"{out}/decisions.parquet")
    print("\n".join(policy_table(runs, decisions)))
    print()
    print("\n".join(scenario_table(runs)))
    print()
    print(decisions.groupby(["policy", "decision", "label"]).size().to_string())


if __name__ == "__main__":
    main(sys.argv[1])
