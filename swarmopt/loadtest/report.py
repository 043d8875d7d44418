"""``report.html``: one self-contained page (tables, and plots as base64 PNG) of a load test.

Plots (matplotlib, Agg): SLO attainment per policy per scenario with every seed
shown (and the oracle's level); a forest plot of the paired differences from
the baseline with their 95% intervals; the ground-truth confusion matrix of
each policy, and its decisions by remedy; MTTR per policy per scenario
(censored incidents marked).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from swarmopt.loadtest.summary import by_remedy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CSS = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;font-size:12px;"
       "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}"
       "h2{margin-top:2em}.note{color:#555;font-size:13px}")


def _figure(**kwargs) -> Figure:
    from matplotlib.figure import Figure  # here, not at import: matplotlib is slow to import and only plots need it

    return Figure(layout="constrained", **kwargs)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _policies(runs: pd.DataFrame) -> list[str]:
    pol = runs[runs["kind"] == "policy"]
    return list(dict.fromkeys(pol["policy"]))


def plot_attainment(runs: pd.DataFrame, best: pd.DataFrame, metric: str = "slo_attainment") -> Figure:
    """One panel per scenario: each policy's ``metric`` per seed (dots) and
    mean (bar), the oracle's mean as a dashed line."""
    ok = runs[(runs["kind"] == "policy") & (runs["status"] == "ok")]
    scenarios = sorted(set(ok["scenario"]))
    policies = _policies(runs)
    fig = _figure(figsize=(max(5.0, 1.2 * len(policies)) * max(1, len(scenarios)) / 1.5, 3.6))
    for i, s in enumerate(scenarios):
        ax = fig.add_subplot(1, len(scenarios), i + 1)
        shown = [1.0]
        for j, p in enumerate(policies):
            v = ok[(ok["scenario"] == s) & (ok["policy"] == p)][metric].to_numpy(float)
            if len(v):
                ax.scatter(j + np.linspace(-0.15, 0.15, len(v)), v, s=14, color="tab:blue", zorder=3)
                ax.hlines(np.nanmean(v), j - 0.3, j + 0.3, color="k", lw=1.5)
                shown += list(v)
        o = best[best["scenario"] == s] if len(best) else best
        if len(o):
            ax.axhline(float(o["oracle"].iloc[0]), color="tab:green", ls="--", lw=1, label="oracle")
            ax.legend(fontsize=7, loc="lower right")
            shown.append(float(o["oracle"].iloc[0]))
        ax.set_xticks(range(len(policies)), policies, rotation=30, fontsize=8)
        ax.set_title(s, fontsize=9)
        ax.set_ylabel(f"{metric} (dots: seeds, bar: mean)" if i == 0 else "", fontsize=8)
        ax.set_ylim(max(0.0, np.nanmin(shown) - 0.05), 1.01)
    return fig


def plot_forest(comparisons: pd.DataFrame) -> Figure:
    """One panel per metric: each policy's mean paired difference from the
    baseline over all scenarios, with its 95% paired interval (thick) and the
    unpaired one (thin)."""
    c = comparisons[comparisons["scenario"] == "all"]
    metrics = list(dict.fromkeys(c["metric"]))
    fig = _figure(figsize=(4.0 * min(4, len(metrics)), 2.6 * ((len(metrics) + 3) // 4)))
    for i, m in enumerate(metrics):
        ax = fig.add_subplot((len(metrics) + 3) // 4, min(4, len(metrics)), i + 1)
        rows = c[c["metric"] == m].reset_index(drop=True)
        for j, r in rows.iterrows():
            ax.plot([r["unpaired_ci_low"], r["unpaired_ci_high"]], [j, j], color="grey", lw=1)
            ax.plot([r["ci_low"], r["ci_high"]], [j, j], color="tab:blue", lw=4, solid_capstyle="butt")
            ax.plot(r["mean_diff"], j, "o", color="k", ms=4)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(rows)), rows["policy"], fontsize=8)
        ax.set_title(f"{m} ({rows['better'].iloc[0] if len(rows) else ''} is better)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"policy - {c['baseline'].iloc[0] if len(c) else 'baseline'}: paired 95% interval (blue), "
                 "unpaired (grey)", fontsize=9)
    return fig


def plot_confusion(conf: pd.DataFrame) -> Figure:
    """One heat map per policy: decisions (keep, rollback, revert) by ground
    truth (helped, no effect, hurt), with the counts written in."""
    policies = list(dict.fromkeys(conf["policy"]))
    fig = _figure(figsize=(3.2 * max(1, len(policies)), 2.6))
    truths = ["helped", "no effect", "hurt"]
    for i, p in enumerate(policies):
        ax = fig.add_subplot(1, len(policies), i + 1)
        t = conf[conf["policy"] == p].set_index("decision").reindex(["keep", "rollback", "revert"]).fillna(0)
        m = t[truths].to_numpy(float)
        ax.imshow(m, cmap="Blues", vmin=0)
        for (y, x), v in np.ndenumerate(m):
            ax.text(x, y, f"{int(v)}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(3), truths, fontsize=8)
        ax.set_yticks(range(3), ["keep", "rollback", "revert"], fontsize=8)
        ax.set_title(p, fontsize=9)
    return fig


def plot_mttr(runs: pd.DataFrame) -> Figure:
    """MTTR per incident (minutes) per policy and scenario; hollow markers are
    censored (no recovery by the end of the run)."""
    ok = runs[(runs["kind"] == "policy") & (runs["status"] == "ok")]
    policies = _policies(runs)
    scenarios = sorted(set(ok["scenario"]))
    fig = _figure(figsize=(max(5.0, 1.2 * len(policies)) * max(1, len(scenarios)) / 1.5, 3.2))
    for i, s in enumerate(scenarios):
        ax = fig.add_subplot(1, len(scenarios), i + 1)
        for j, p in enumerate(policies):
            rows = ok[(ok["scenario"] == s) & (ok["policy"] == p)]
            items = [d for text in rows["mttr_detail"] for d in json.loads(text)]
            if not items:
                continue
            x = j + np.linspace(-0.2, 0.2, len(items))
            for xi, d in zip(x, items, strict=False):
                ax.scatter(xi, d["mttr_min"], s=16, edgecolors="tab:red",
                           facecolors="none" if d["censored"] else "tab:red", zorder=3)
        ax.set_xticks(range(len(policies)), policies, rotation=30, fontsize=8)
        ax.set_title(s, fontsize=9)
        ax.set_ylabel("MTTR (min)" if i == 0 else "")
        ax.set_ylim(bottom=0)
    return fig


def _table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    return df.to_html(index=False, float_format=lambda v: floatfmt.format(v), na_rep="-", border=0)


def render(runs: pd.DataFrame, comparisons: pd.DataFrame, decisions: pd.DataFrame, conf: pd.DataFrame,
           best: pd.DataFrame, oracle: pd.DataFrame, summary: dict) -> str:
    """The report page as one HTML string (no external file or script)."""
    e = html.escape
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>load test {e(summary['name'])}</title>"
            f"<style>{CSS}</style></head><body><h1>Load test: {e(summary['name'])}</h1>")
    note = (f"<p class='note'>{summary['runs_ok']} runs ok, {summary['runs_failed']} failed; baseline "
            f"<b>{e(summary['baseline'])}</b>; ground truth: {e(summary['ground_truth'])}; status "
            f"{e(summary['status'])}{' (--quick)' if summary['quick'] else ''}.</p>")
    parts = [head, note]
    pol = pd.DataFrame(summary["policies"]).T.reset_index(names="policy")
    keep = ["policy", "runs", "failed", "slo_attainment", "slo_attainment_faulted", "mttr_min",
            "p95_response_time_ms", "cost_usd", "cost_per_success_usd", "changes_attempted", "changes_kept",
            "changes_rolled_back", "changes_reverted", "knob_reversals", "false_keep_rate", "false_rollback_rate",
            "truth_agreement", "pct_of_oracle", "gap_closed"]
    # truth_agreement only where the ground truth was replicated (else it is NaN throughout)
    cols = [c for c in keep if c in pol and (c != "truth_agreement" or pol[c].notna().any())]
    parts += ["<h2>Policies</h2>", _table(pol[cols])]
    ok = runs[(runs["kind"] == "policy") & (runs["status"] == "ok")] if len(runs) else runs
    if len(ok):
        parts += ["<h2>SLO attainment per policy and scenario (every seed)</h2>", _png(plot_attainment(runs, best))]
    if len(comparisons):
        parts += ["<h2>Paired differences from the baseline</h2>", _png(plot_forest(comparisons)),
                  _table(comparisons)]
    if len(conf):
        parts += ["<h2>Ground truth of the decisions</h2>", _png(plot_confusion(conf)), _table(conf),
                  "<h3>By remedy</h3>", _table(by_remedy(decisions), "{:.2f}")]
    elif summary["ground_truth"] != "on":
        parts += ["<h2>Ground truth of the decisions</h2>",
                  f"<p class='note'>No ground truth: {e(summary['ground_truth'])}.</p>"]
    if len(ok) and ok["incidents"].sum() > 0:
        parts += ["<h2>MTTR per incident</h2>", _png(plot_mttr(runs))]
    if len(best):
        parts += ["<h2>Oracle (best static configuration)</h2>", _table(best), _table(oracle)]
    failed = runs[runs["status"] != "ok"] if len(runs) else runs
    if len(failed):
        parts += ["<h2>Failed runs</h2>", _table(failed[["kind", "policy", "scenario", "seed", "error"]])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: Path, *args) -> Path:
    """Write :func:`render` (same arguments after ``path``) to ``path``."""
    path.write_text(render(*args))
    return path
