"""Figures of a run: one panel per metric a change targeted, changes marked by outcome, faults shaded.

Every figure is a :class:`ReportFigure`, a bare matplotlib Figure that shows
itself in Jupyter: making one never touches the user's pyplot state or
backend. (Imported only when a figure is drawn: matplotlib adds half a second
to an import.)
"""

from __future__ import annotations

import io

import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from swarmopt.report import LABELS, RATES, change_label, improvement_text, outcome_text, time_axis
from swarmopt.results import RunResult

STATUS_STYLE = {  # outcome of a change -> (colour, legend text)
    "kept": ("tab:green", "kept (measured better)"),
    "reverted": ("tab:orange", "reverted (no measured benefit)"),
    "rolled back": ("tab:red", "rolled back (measured worse or a guardrail breached)"),
    "restored": ("tab:blue", "restored (undoing it measured worse)"),
    "measuring": ("tab:gray", "still being measured at the end"),
}
LINE_STYLE = {"applied": "-", "undone": "--", "restored": "-."}
MAX_LISTED = 12  # changes listed under a figure; more are in the report's table


class ReportFigure(Figure):
    """A matplotlib Figure that shows itself in Jupyter (``_repr_png_``) without
    pyplot, so making one never touches the user's pyplot state or backend."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def _thresholds(res: RunResult) -> dict[str, float]:
    th = res.scenario.optimizer.thresholds
    return {"response_time_ms_mean": th.response_time_ms, "success_rate": th.success_rate_medium,
            "error_rate": th.error_rate_medium, "coordination_score": th.coordination_medium,
            "cpu_percent": th.cpu_percent, "memory_percent": th.memory_percent}


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
    columns = res.tables["metrics"].columns()
    for m in metrics:
        if m not in columns:
            allowed = [c for c in columns if c not in ("agent", "window", "t_start_s", "t_end_s")]
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
    unit, name = time_axis(res)
    changes = res.changes if changes is None else changes
    df = res.agent(agent, [metric])
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
    changes = res.changes
    metrics = metrics or targeted_metrics(changes, agent)
    _check(res, agent, metrics)
    mine = [(i + 1, c) for i, c in changes.reset_index(drop=True).iterrows() if c.agent == agent]
    listed = mine if len(mine) <= MAX_LISTED else []
    unit, name = time_axis(res)
    text_h = 0.16 * (len(listed) if listed else 1) if mine else 0.0
    fig = ReportFigure(figsize=(11, 2.3 * len(metrics) + 0.9 + text_h), layout="constrained")
    grid = fig.add_gridspec(len(metrics) + bool(mine), 1, height_ratios=[2.3] * len(metrics) + ([text_h] * bool(mine)))
    axes = [fig.add_subplot(grid[0])]
    axes += [fig.add_subplot(grid[k], sharex=axes[0]) for k in range(1, len(metrics))]
    for k, (ax, metric) in enumerate(zip(axes, metrics, strict=True)):
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
        lines = [f"{n:>2}  {c.effective_s / unit:4.0f} {name}  {change_label(c)}: {LABELS.get(c.metric, c.metric)} "
                 f"{improvement_text(c)}, {outcome_text(c, unit, name)}" for n, c in listed]
        notes.text(0.0, 1.0, "\n".join(lines) if listed else
                   f"{len(mine)} changes: see the report's table of changes or RunResult.changes",
                   fontsize=7, family="monospace", va="top", transform=notes.transAxes)
    return fig


PATH_CHUNK = 1_000  # Agg draws a line in pieces of this many points: a week of windows in the memory of a day's


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG (110 dpi). A line of more than :data:`PATH_CHUNK` points
    is rasterized in pieces (matplotlib's ``agg.path.chunksize``), so the
    memory it takes stays flat however long the run; shorter lines are drawn
    as they always were."""
    buf = io.BytesIO()
    with rc_context({"agg.path.chunksize": PATH_CHUNK}):
        fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


__all__ = ["ReportFigure", "fault_spans", "plot_agent", "plot_changes", "png_bytes", "targeted_metrics"]
