"""The run report: ``report.md``, a self-contained ``report.html`` and a figure per changed agent.

Both reports hold the same blocks: the run, the outcome counts (which add up),
one row per change with the judgement that decided it, and per agent the key
metrics of the baseline / before / after spans and, for an agent that was
changed, a figure with one panel per metric a change targeted
(:func:`plot_changes`). ``report.html`` embeds the figures as base64 PNG, so
it can be mailed or attached alone. :func:`summary_html` is the short version
a :class:`~swarmopt.results.RunResult` shows in Jupyter.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from swarmopt.results import KEY_METRICS, SPANS, RunResult, change_outcomes

STATUS_STYLE = {  # outcome of a change -> (colour, legend text)
    "kept": ("tab:green", "kept (measured better)"),
    "reverted": ("tab:orange", "reverted (no measured benefit)"),
    "rolled back": ("tab:red", "rolled back (measured worse or a guardrail breached)"),
    "restored": ("tab:blue", "restored (undoing it measured worse)"),
    "measuring": ("tab:gray", "still being measured at the end"),
}
LINE_STYLE = {"applied": "-", "undone": "--", "restored": "-."}
LABELS = {
    "response_time_ms_mean": "response time, mean (ms)", "response_time_ms_p95": "response time, p95 (ms)",
    "success_rate": "success rate", "error_rate": "error rate", "coordination_score": "coordination score",
    "cost_per_decision_usd": "cost per decision (USD)", "cpu_percent": "CPU (%)", "memory_percent": "memory (%)",
    "inbox_in_time_rate": "inbound messages in time", "decision_count": "decisions",
}
RATES = {"success_rate", "error_rate", "coordination_score", "inbox_in_time_rate", "cache_hit_rate",
         "escalation_rate"}
MAX_LISTED = 12  # changes listed under a figure; more are in the report's table


class ReportFigure(Figure):
    """A matplotlib Figure that shows itself in Jupyter (``_repr_png_``) without
    pyplot, so making one never touches the user's pyplot state or backend."""

    def _repr_png_(self) -> bytes:
        return _png(self)


def _thresholds(res: RunResult) -> dict[str, float]:
    th = res.scenario.optimizer.thresholds
    return {"response_time_ms_mean": th.response_time_ms, "success_rate": th.success_rate_medium,
            "error_rate": th.error_rate_medium, "coordination_score": th.coordination_medium,
            "cpu_percent": th.cpu_percent, "memory_percent": th.memory_percent}


def _clock(t: float) -> str:
    s = int(round(t))
    return f"{s // 3600:d}:{s // 60 % 60:02d}"


def _time_axis(res: RunResult) -> tuple[float, str]:
    """(seconds per unit, unit) of the x axis: minutes up to 6 h, else hours."""
    return (60.0, "min") if res.scenario.duration_s <= 6 * 3600 else (3600.0, "h")


def _value(num, text) -> str:
    if pd.notna(text):
        return str(text)
    return f"{num:g}" if pd.notna(num) else "?"


def _change_label(c) -> str:
    return f"{c.knob} {_value(c.old_value, c.old_text)} → {_value(c.new_value, c.new_text)}"


def _improvement(c) -> str:
    if pd.isna(c.improvement_pct):
        return "n/a"
    ci = f" [{c.ci_low_pct:+.1f}, {c.ci_high_pct:+.1f}]" if pd.notna(c.ci_low_pct) else ""
    return f"{c.improvement_pct:+.1f}%{ci}"


def _outcome(c, unit: float, name: str) -> str:
    if c.status == "restored":
        return (f"reverted at {c.undone_s / unit:.0f} {name}; its undo measured worse ({c.undo_verdict}): "
                f"restored at {c.restored_s / unit:.0f} {name}")
    if pd.notna(c.undone_s):
        return f"{c.status} at {c.undone_s / unit:.0f} {name}"
    return c.status


def fault_spans(res: RunResult, agent: str) -> list[tuple[float, float]]:
    """The simulated time spans (s) in which at least one fault of ``agent``
    is active (overlapping faults merged)."""
    end = res.scenario.duration_s
    spans = sorted((f.at_s, end if f.duration_s is None else min(end, f.at_s + f.duration_s))
                   for f in res.scenario.faults if f.target == agent)
    merged: list[tuple[float, float]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def _check(res: RunResult, agent: str, metrics: list[str]) -> None:
    ids = [a.id for a in res.scenario.agents]
    if agent not in ids:
        raise KeyError(f"unknown agent {agent!r}; allowed: {ids}")
    for m in metrics:
        if m not in res.metrics.columns:
            allowed = [c for c in res.metrics.columns if c not in ("agent", "window", "t_start_s", "t_end_s")]
            raise KeyError(f"unknown metric {m!r}; allowed: {allowed}")


def plot_agent(res: RunResult, agent: str, metric: str = "response_time_ms_mean", ax=None, changes=None,
               number: bool = True):
    """Plot ``metric`` of ``agent`` per window on ``ax`` (a new figure if None):
    the agent's faults shaded, the metric's threshold dotted, and a vertical
    line where each change on the agent took effect (solid), was undone
    (dashed) or re-applied (dash-dot), coloured by its outcome
    (:data:`STATUS_STYLE`) and, with ``number``, numbered as in
    :func:`~swarmopt.results.change_outcomes`. Returns the Axes. Raises
    KeyError for an unknown agent or metric."""
    _check(res, agent, [metric])
    if ax is None:
        ax = ReportFigure(figsize=(10, 3.2), layout="constrained").add_subplot()
    unit, name = _time_axis(res)
    changes = change_outcomes(res.events) if changes is None else changes
    df = res.agent(agent)
    ax.plot(df.index / unit, df[metric], marker=".", ms=3, lw=1, color="black")
    end = res.scenario.duration_s
    for start, stop in fault_spans(res, agent):
        ax.axvspan(start / unit, stop / unit, color="tab:red", alpha=0.08, lw=0)
    threshold = _thresholds(res).get(metric)
    if threshold is not None:
        ax.axhline(threshold, color="black", ls=":", lw=1)
    mine = changes.reset_index(drop=True)
    shown = []
    for i, c in mine.iterrows():
        if c.agent != agent:
            continue
        color = STATUS_STYLE[c.status][0]
        for t, kind in ((c.effective_s, "applied"), (c.undone_s, "undone"), (c.restored_s, "restored")):
            if pd.notna(t):
                ax.axvline(t / unit, color=color, ls=LINE_STYLE[kind], lw=1.3, alpha=0.9)
        shown.append((i + 1, c.effective_s / unit, color))
    if number:
        span = end / unit
        level = {}
        for k, (n, x, color) in enumerate(shown):
            # stagger labels that would touch the previous one
            close = k > 0 and x - shown[k - 1][1] < 0.04 * span
            level[n] = (level[shown[k - 1][0]] + 1) % 3 if close else 0
            ax.text(x, 1.0 - 0.13 * level[n], str(n), transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=7, color="white", bbox={"boxstyle": "circle,pad=0.2", "fc": color, "ec": "none"})
    if metric in RATES:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlim(0, end / unit)
    ax.set_ylabel(LABELS.get(metric, metric), fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    return ax


def targeted_metrics(changes: pd.DataFrame, agent: str) -> list[str]:
    """The metrics the changes on ``agent`` targeted, in order of first change;
    response time when none."""
    mine = changes.loc[changes["agent"] == agent, "metric"].dropna()
    return list(dict.fromkeys(mine)) or ["response_time_ms_mean"]


def plot_changes(res: RunResult, agent: str, metrics: list[str] | None = None) -> Figure:
    """A Figure with one panel per metric in ``metrics`` (default: each metric a
    change on ``agent`` targeted, :func:`targeted_metrics`) drawn by
    :func:`plot_agent`, a legend of outcomes, line styles, faults and
    thresholds, and the numbered list of the agent's changes under it (up to
    :data:`MAX_LISTED`). A :class:`ReportFigure`: it shows in Jupyter as the
    value of a cell, ``fig.savefig`` writes it.
    Raises KeyError for an unknown agent or metric."""
    changes = change_outcomes(res.events)
    metrics = metrics or targeted_metrics(changes, agent)
    _check(res, agent, metrics)
    mine = [(i + 1, c) for i, c in changes.reset_index(drop=True).iterrows() if c.agent == agent]
    listed = mine if len(mine) <= MAX_LISTED else []
    unit, name = _time_axis(res)
    text_h = 0.16 * (len(listed) if listed else 1) if mine else 0.0
    fig = ReportFigure(figsize=(11, 2.3 * len(metrics) + 0.9 + text_h), layout="constrained")
    grid = fig.add_gridspec(len(metrics) + bool(mine), 1, height_ratios=[2.3] * len(metrics) + ([text_h] * bool(mine)))
    axes = [fig.add_subplot(grid[0])]
    axes += [fig.add_subplot(grid[k], sharex=axes[0]) for k in range(1, len(metrics))]
    for k, (ax, metric) in enumerate(zip(axes, metrics)):
        plot_agent(res, agent, metric, ax=ax, changes=changes, number=k == 0)
        ax.tick_params(labelbottom=k == len(metrics) - 1)
    axes[-1].set_xlabel(f"simulated time ({name})", fontsize=8)
    axes[0].set_title(f"{agent}: {', '.join(LABELS.get(m, m) for m in metrics)}", fontsize=10, loc="left")
    statuses = list(dict.fromkeys(c.status for _, c in mine))
    handles = [Line2D([], [], color=STATUS_STYLE[s][0], lw=2, label=STATUS_STYLE[s][1]) for s in statuses]
    kinds = ["applied"] + [k for k, col in (("undone", "undone_s"), ("restored", "restored_s"))
                           if any(pd.notna(getattr(c, col)) for _, c in mine)]
    handles += [Line2D([], [], color="dimgray", ls=LINE_STYLE[k], lw=1.3, label=f"change {k}") for k in kinds
                if mine]
    if fault_spans(res, agent):
        handles.append(Patch(color="tab:red", alpha=0.15, label="fault active"))
    if any(m in _thresholds(res) for m in metrics):
        handles.append(Line2D([], [], color="black", ls=":", lw=1, label="threshold"))
    if handles:
        fig.legend(handles=handles, loc="outside upper center", ncols=min(4, len(handles)), fontsize=7,
                   frameon=False)
    if mine:
        notes = fig.add_subplot(grid[-1])
        notes.axis("off")
        lines = [f"{n:>2}  {c.effective_s / unit:4.0f} {name}  {_change_label(c)}: {LABELS.get(c.metric, c.metric)} "
                 f"{_improvement(c)}, {_outcome(c, unit, name)}" for n, c in listed]
        notes.text(0.0, 1.0, "\n".join(lines) if listed else
                   f"{len(mine)} changes: see the report's table of changes or RunResult.changes",
                   fontsize=7, family="monospace", va="top", transform=notes.transAxes)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# ---------------------------------------------------------------- report blocks, rendered as Markdown and HTML
def _fmt(v, metric: str = "") -> str:
    if v is None or v != v:
        return "n/a"
    if metric in RATES or metric.endswith("_rate"):
        return f"{v:.1%}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"


def _blocks(res: RunResult, status: str, images: dict[str, bytes]) -> list[tuple]:
    s, o = res.summary, res.summary["optimizations"]
    unit, name = _time_axis(res)
    changes = change_outcomes(res.events)
    blocks: list[tuple] = [
        ("h1", f"swarmopt run: {s['scenario']}"),
        ("p", f"seed {s['seed']}, runtime {s['runtime']}, {s['duration_s'] / 60:.0f} simulated minutes, "
              f"{s['windows']} windows, status {status}, run id {s.get('run_id') or 'n/a'}."),
        ("h2", "Optimizations"),
        ("table", ["attempted", "kept", "rolled back", "reverted", "of which restored", "still measuring",
                   "in force at the end", "rejected", "bottleneck detections"],
         [[o["attempted"], o["kept"], o["rolled_back"], o["reverted"], o["restored"], o["measuring"],
           o["in_force_at_end"], o["rejected"], o["bottlenecks_detected"]]]),
        ("p", "attempted = kept + rolled back + reverted + still measuring; in force at the end = kept + restored + "
              "still measuring. A reverted change is restored when measuring its undo shows the target got worse."),
        ("p", "Optimizer autonomy: " + " → ".join(f"{p['autonomy']:.3f}" for p in s["optimizer_autonomy"])),
    ]
    if len(changes):
        blocks += [
            ("h2", "Changes"),
            ("p", "Improvement: relative change of the target metric from before to after the change took effect, "
                  "positive = better, with its 95% interval and p-value; verdict and outcome as decided."),
            ("table", ["#", f"effective ({name})", "agent", "kind", "change", "target metric", "before", "after",
                       "improvement", "p", "verdict", "outcome"],
             [[i + 1, f"{c.effective_s / unit:.0f}", c.agent, c.kind, _change_label(c), c.metric,
               _fmt(c.before, c.metric), _fmt(c.after, c.metric), _improvement(c),
               "n/a" if pd.isna(c.p_value) else f"{c.p_value:.2g}", "n/a" if pd.isna(c.verdict) else c.verdict,
               _outcome(c, unit, name)] for i, c in changes.reset_index(drop=True).iterrows()]),
        ]
    blocks.append(("h2", "Agents"))
    cols = [m for m in KEY_METRICS]
    for agent, spans in s["agents"].items():
        rows = []
        for span in SPANS:
            v = spans[span]
            when = f"{v['from_s'] / 60:.0f}-{v['to_s'] / 60:.0f}" if v["from_s"] is not None else ""
            if not v["windows"] or not v["decision_count"]:
                rows.append([span, when, f"n/a: {v['note']}"] + [""] * (len(cols) - 1))
            else:
                rows.append([span, when] + [_fmt(v[m], m) if m != "decision_count" else f"{v[m]:,}" for m in cols])
        blocks += [("h3", agent), ("table", ["span", "minutes", *(LABELS.get(m, m) for m in cols)], rows)]
        if agent in images:
            blocks.append(("img", f"{agent}.png", images[agent]))
    return blocks


def _md(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        if b[0] in ("h1", "h2", "h3"):
            out += ["#" * int(b[0][1]) + " " + b[1], ""]
        elif b[0] == "p":
            out += [b[1], ""]
        elif b[0] == "table":
            out += ["| " + " | ".join(map(str, b[1])) + " |", "|" + "---|" * len(b[1])]
            out += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in b[2]] + [""]
        elif b[0] == "img":
            out += [f"![{b[1].removesuffix('.png')}]({b[1]})", ""]
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1280px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}"
        "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}th{background:#f4f4f4}"
        "td.num{text-align:right;white-space:nowrap}img{max-width:100%}")
_NUMBER = re.compile(r"[-+]?[\d,.]+(%|e-?\d+)?")


def _html_table(header: list, rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td{" class=num" if _NUMBER.fullmatch(str(x)) else ""}>{html.escape(str(x))}</td>' for x in row) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(blocks: list[tuple]) -> str:
    parts = []
    for b in blocks:
        if b[0] in ("h1", "h2", "h3"):
            parts.append(f"<{b[0]}>{html.escape(b[1])}</{b[0]}>")
        elif b[0] == "p":
            parts.append(f"<p>{html.escape(b[1])}</p>")
        elif b[0] == "table":
            parts.append(_html_table(b[1], b[2]))
        elif b[0] == "img":
            data = base64.b64encode(b[2]).decode("ascii")
            parts.append(f'<img alt="{html.escape(b[1])}" src="data:image/png;base64,{data}">')
    title = html.escape(blocks[0][1]) if blocks else "swarmopt run"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_report(res: RunResult, out: Path, status: str = "completed") -> list[str]:
    """Write ``report.md``, ``report.html`` (self-contained) and ``<agent>.png``
    (:func:`plot_changes`) for every agent a change was scheduled on into
    ``out``. Returns the names of the files written."""
    changes = change_outcomes(res.events)
    images = {}
    if not res.metrics.empty:
        for agent in dict.fromkeys(changes["agent"]):
            if agent in {a.id for a in res.scenario.agents}:
                images[agent] = _png(plot_changes(res, agent))
    for agent, png in images.items():
        (out / f"{agent}.png").write_bytes(png)
    blocks = _blocks(res, status, images)
    (out / "report.md").write_text(_md(blocks))
    (out / "report.html").write_text(_html(blocks))
    return [f"{a}.png" for a in images] + ["report.md", "report.html"]


def summary_html(res: RunResult) -> str:
    """A short HTML summary of a run (what a RunResult shows in Jupyter): the
    run, the outcome counts, before/after of the changed agents and the
    changes with their judgement."""
    s, o = res.summary, res.summary.get("optimizations", {})
    unit, name = _time_axis(res)
    changes = change_outcomes(res.events)
    parts = [f"<b>{html.escape(res.scenario.name)}</b> seed {res.seed}, {html.escape(res.runtime)}, "
             f"{res.scenario.duration_s / 60:.0f} simulated min, {len(res.metrics)} metric rows, "
             f"{len(res.events)} events",
             f"<p>{o.get('attempted', 0)} changes = {o.get('kept', 0)} kept + {o.get('rolled_back', 0)} rolled back + "
             f"{o.get('reverted', 0)} reverted ({o.get('restored', 0)} restored) + {o.get('measuring', 0)} still "
             f"measuring; {o.get('in_force_at_end', 0)} in force at the end.</p>"]
    rows = []
    for agent in dict.fromkeys(changes["agent"]):
        for span in ("before", "after"):
            v = s["agents"].get(agent, {}).get(span)
            if v:
                rows.append([agent, span, *(_fmt(v[m], m) for m in
                                            ("response_time_ms_mean", "success_rate", "error_rate",
                                             "coordination_score"))])
    if rows:
        parts.append(_html_table(["agent", "span", "response time (ms)", "success", "errors", "coordination"], rows))
    if len(changes):
        parts.append(_html_table(
            ["#", name, "agent", "change", "target", "improvement", "verdict", "outcome"],
            [[i + 1, f"{c.effective_s / unit:.0f}", c.agent, _change_label(c), c.metric, _improvement(c),
              "n/a" if pd.isna(c.verdict) else c.verdict, _outcome(c, unit, name)]
             for i, c in changes.reset_index(drop=True).iterrows()]))
    parts.append("<p><code>.metrics .events .changes .autonomy .summary .plot(agent, metric)</code>"
                 + (f" · run directory <code>{html.escape(str(res.out_dir))}</code>" if res.out_dir else "") + "</p>")
    return f'<div class="swarmopt-run">{"".join(parts)}</div>'


__all__ = ["plot_agent", "plot_changes", "summary_html", "targeted_metrics", "write_report"]
