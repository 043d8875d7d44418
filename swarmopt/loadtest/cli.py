"""What ``swarmopt loadtest`` prints: the output directory, the policies and the paired comparisons."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from swarmopt.loadtest.api import LoadTestResult
from swarmopt.loadtest.spec import read_spec

POLICY_COLUMNS = {"slo_attainment": "attain", "slo_attainment_faulted": "attain_faulted", "mttr_min": "mttr_min",
                  "p95_response_time_ms": "p95_ms", "cost_usd": "cost_usd", "changes_attempted": "changes",
                  "knob_reversals": "reversals", "false_keep_rate": "false_keep", "false_rollback_rate": "false_rb",
                  "pct_of_oracle": "%oracle", "gap_closed": "gap_closed"}


def out_dir(spec: Path, out: Path | None) -> Path:
    """``out``, or ``loadtests/<spec name>``. Raises InputError for a bad spec."""
    return out if out is not None else Path("loadtests") / read_spec(spec)[0].name


def comparison_table(res: LoadTestResult, metric: str = "slo_attainment", scenario: str = "all") -> pd.DataFrame:
    """The paired comparison of every policy with the baseline on ``metric``
    (over all scenarios by default), as printed: mean difference, paired and
    unpaired 95% intervals, their widths' ratio, Wilcoxon p."""
    c = res.comparisons
    c = c[(c["metric"] == metric) & (c["scenario"] == scenario)]
    return pd.DataFrame({
        "policy": c["policy"], "pairs": c["n_pairs"], "policy_mean": c["policy_mean"],
        "baseline_mean": c["baseline_mean"], "mean_diff": c["mean_diff"],
        "paired_95ci": [f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(c["ci_low"], c["ci_high"], strict=False)],
        "unpaired_95ci": [f"[{lo:+.3f}, {hi:+.3f}]"
                          for lo, hi in zip(c["unpaired_ci_low"], c["unpaired_ci_high"], strict=True)],
        "width_ratio": c["ci_width"] / c["unpaired_ci_width"], "wilcoxon_p": c["wilcoxon_p"],
    })


def print_result(res: LoadTestResult) -> None:
    """Print the result's summary to stdout."""
    s = res.summary
    typer.echo(f"load test {s['name']}: {s['runs_ok']} runs ok, {s['runs_failed']} failed "
               f"({s['runs_planned']} planned){' --quick' if s['quick'] else ''}; output: {res.out_dir}")
    typer.echo(f"ground truth: {s['ground_truth']}")
    pol = pd.DataFrame(s["policies"]).T
    typer.echo("\npolicies (means over scenarios and seeds; attain = SLO attainment after the onset):")
    typer.echo(pol[list(POLICY_COLUMNS)].rename(columns=POLICY_COLUMNS).to_string(float_format=lambda v: f"{v:.3g}"))
    table = comparison_table(res)
    if len(table):
        typer.echo(f"\nSLO attainment, paired differences from {s['baseline']} (all scenarios x seeds):")
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for scenario, o in s["oracle"].items():
        values = ", ".join(f"{k} {v:.3f}" for k, v in o.items() if k != "config")
        typer.echo(f"oracle {scenario}: {o['config']} ({values})")
