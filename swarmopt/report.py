"""The run directory: the tables, ``summary.json``, ``report.md`` and a time-series plot with optimization markers.

:func:`write_run` writes ``metrics.parquet``, ``events.parquet``,
``autonomy.parquet``, ``process.parquet`` (CSV if pyarrow is missing),
``summary.json`` and ``report.md`` (with ``<agent>.png`` plots).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from swarmopt.files import atomic_path, write_text_atomic
from swarmopt.results import KEY_METRICS, RunResult


def plot_agent(res: RunResult, agent: str, metric: str = "response_time_ms_mean", ax=None):
    """Plot ``metric`` of ``agent`` per window (x in minutes) with vertical markers:
    green where a change took effect and was kept, red where a change was rolled
    back, grey dashed where a fault started. Returns the matplotlib Axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(10, 3.5))
    df = res.agent(agent)
    ax.plot(df.index / 60.0, df[metric], marker=".", lw=1, label=metric)
    ev = res.events
    if not ev.empty:
        kept = set(ev.loc[ev["event"] == "optimization.kept", "strategy_id"])
        applied = ev[(ev["event"] == "knob.applied") & (ev["agent"] == agent)]
        for r in applied.itertuples():
            ref = str(r.ref)
            color = "tab:green" if ref in kept else ("tab:red" if ref.startswith("rollback:") else "tab:orange")
            ax.axvline(r.t_s / 60.0, color=color, alpha=0.7, lw=1.2)
            ax.annotate(f"{r.knob}={r.new}", (r.t_s / 60.0, ax.get_ylim()[1]), rotation=90, fontsize=6,
                        va="top", ha="right", color=color)
    for f in res.scenario.faults:
        if f.target == agent:
            ax.axvline(f.at_s / 60.0, color="grey", ls="--", lw=1)
    if metric.startswith("response_time"):
        ax.axhline(res.scenario.optimizer.thresholds.response_time_ms, color="k", ls=":", lw=1)
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel(metric)
    ax.set_title(f"{agent}: {metric} (green: kept change, red: rollback, orange: other, dashed: fault)", fontsize=9)
    return ax


def _table(d: dict[str, dict]) -> str:
    cols = [m for m in KEY_METRICS]
    lines = ["| span | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for span, vals in d.items():
        cells = []
        for c in cols:
            v = vals.get(c)
            cells.append("" if v is None or v != v else (f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"))
        lines.append(f"| {span} ({vals['from_s'] / 60:.0f}-{vals['to_s'] / 60:.0f} min) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(res: RunResult, out: Path, status: str = "completed") -> Path:
    """Write ``report.md`` (and ``<agent>.png`` plots for agents that were
    changed) into ``out``; returns the report path."""
    # imported here, not at the top: matplotlib adds half a second to every `import swarmopt.api`
    from matplotlib.figure import Figure

    s = res.summary
    ev = res.events
    lines = [
        f"# swarmopt run: {s['scenario']}",
        "",
        f"seed {s['seed']}, runtime {s['runtime']}, {s['duration_s'] / 60:.0f} simulated minutes, "
        f"{s['windows']} windows, status **{status}**.",
        "",
        "## Optimizations",
        "",
        "| attempted | kept | rolled back | reverted | restored | rejected | bottlenecks detected |",
        "|---|---|---|---|---|---|---|",
        "| {attempted} | {kept} | {rolled_back} | {reverted} | {restored} | {rejected} "
        "| {bottlenecks_detected} |".format(**s["optimizations"]),
        "",
        "Optimizer autonomy: " + " -> ".join(f"{p['autonomy']:.3f}" for p in s["optimizer_autonomy"]),
        "",
    ]
    if not ev.empty and "improvement_pct" in ev:
        meas = ev[ev["event"].isin(["optimization.measured", "rollback.measured"])]
        if len(meas):
            lines += ["## Measured changes", "",
                      "Improvement = relative change of the target metric's mean over the windows before vs after "
                      "the change took effect (positive = better); 95% Welch interval; one-sided p.", "",
                      "| t (min) | agent | kind | metric | before | after | improvement % | 95% CI | p | verdict |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for r in meas.itertuples():
                undo = " (rollback)" if r.event == "rollback.measured" else ""
                lines.append(
                    f"| {r.t_s / 60:.0f} | {r.agent} | {r.kind}{undo} | {r.metric} | {r.before:.3f} | {r.after:.3f} "
                    f"| {r.improvement_pct:.1f} | [{r.ci_low_pct:.1f}, {r.ci_high_pct:.1f}] | {r.p_value:.3g} "
                    f"| {r.verdict} |")
            lines.append("")
    lines += ["## Agents", ""]
    changed = set(ev.loc[ev["event"] == "knob.applied", "agent"]) if not ev.empty else set()
    for agent, spans in s["agents"].items():
        lines += [f"### {agent}", "", _table(spans), ""]
        if agent in changed and not res.metrics.empty:
            # a bare Figure renders without pyplot, so writing a report never touches the user's backend
            fig = Figure(figsize=(10, 3.5))
            plot_agent(res, agent, ax=fig.add_subplot())
            fig.tight_layout()
            with atomic_path(out / f"{agent}.png") as tmp:
                fig.savefig(tmp, dpi=110, format="png")
            lines += [f"![{agent} response time]({agent}.png)", ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def _write_table(df: pd.DataFrame, path: Path) -> Path:
    try:
        with atomic_path(path.with_suffix(".parquet")) as tmp:
            df.to_parquet(tmp, index=False)
        return path.with_suffix(".parquet")
    except ImportError:
        with atomic_path(path.with_suffix(".csv")) as tmp:
            df.to_csv(tmp, index=False)
        return path.with_suffix(".csv")


def write_run(res: RunResult, out_dir: str | Path, status: str = "completed", error: str | None = None) -> Path:
    """Write the run directory ``out_dir`` (tables, ``summary.json`` with ``status``
    and ``error``, ``report.md``, plots); sets ``res.out_dir`` and returns it.
    Every file is written atomically (:mod:`swarmopt.files`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("metrics", "events", "autonomy", "process"):
        _write_table(getattr(res, name), out / name)
    summary = dict(res.summary, status=status)
    if error:
        summary["error"] = error
    write_text_atomic(out / "summary.json", json.dumps(json_safe(summary), indent=2, default=str))
    write_report(res, out, status)
    res.out_dir = out
    return out


def json_safe(o: Any) -> Any:
    """``o`` with every NaN float replaced by None, recursively through dicts and
    lists, so that it serializes as strict JSON."""
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, list):
        return [json_safe(v) for v in o]
    if isinstance(o, float) and math.isnan(o):
        return None
    return o


__all__ = ["json_safe", "plot_agent", "write_report", "write_run"]
