"""The run directory and its reports: tables, ``summary.json``, ``report.md`` and a self-contained ``report.html``.

:func:`write_run` writes ``metrics.parquet``, ``events.parquet``,
``autonomy.parquet``, ``process.parquet``, ``summary.json``, ``report.md``,
``report.html`` and ``<agent>.png`` for every agent a change was made on
(:func:`swarmopt.plots.plot_changes`), each file atomically
(:mod:`swarmopt.files`), after deleting what an earlier run wrote
there and not now (:func:`previous_files`). Both reports hold the same blocks: the run, the
outcome counts (which add up), one row per change with the judgement that
decided it, and per agent the key metrics of the baseline / before / after
spans with its figure; they read only the rows and columns they show, so a
long run streamed to disk (:mod:`swarmopt.spool`) is reported without loading
its tables. ``report.html`` embeds the figures as base64 PNG, so
it can be mailed or attached alone. :func:`summary_html` is the short version
a :class:`~swarmopt.results.RunResult` shows in Jupyter.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from swarmopt.event_table import per_knob
from swarmopt.files import atomic_path, write_text_atomic
from swarmopt.results import KEY_METRICS, SPANS, STREAMED, TABLES, RunResult
from swarmopt.spool import StoredTable

LABELS = {
    "response_time_ms_mean": "response time, mean (ms)", "response_time_ms_p95": "response time, p95 (ms)",
    "service_time_ms_mean": "service time, mean (ms)",
    "success_rate": "success rate", "error_rate": "error rate", "coordination_score": "coordination score",
    "cost_per_decision_usd": "cost per decision (USD)", "cpu_percent": "CPU (%)", "memory_percent": "memory (%)",
    "inbox_in_time_rate": "inbound messages in time", "decision_count": "decisions",
}
RATES = {"success_rate", "error_rate", "coordination_score", "inbox_in_time_rate", "cache_hit_rate",
         "escalation_rate"}
# every name swarmopt writes into a run directory, besides the plots listed in summary.json's "files"
OWN_FILES = (*(f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")), "summary.json", "report.md",
             "report.html")
PARTS = "parts"  # the folder of a streaming run's part files (:mod:`swarmopt.spool`)


def time_axis(res: RunResult) -> tuple[float, str]:
    """(seconds per unit, unit) for times in figures and tables: minutes up to 6 h, else hours."""
    return (60.0, "min") if res.scenario.duration_s <= 6 * 3600 else (3600.0, "h")


def _value(num, text) -> str:
    if pd.notna(text):
        return str(text)
    return f"{num:g}" if pd.notna(num) else "?"


def change_label(c) -> str:
    """``knob old → new`` of a row of :func:`~swarmopt.results.change_outcomes`; a change of several knobs (a
    bundle, README "Decision quality") as ``knob old → new; knob old → new``."""
    parts = per_knob(c.knob, c.old_text, c.new_text)
    if parts:
        return "; ".join(f"{k} {o} → {n}" for k, o, n in parts)
    return f"{c.knob} {_value(c.old_value, c.old_text)} → {_value(c.new_value, c.new_text)}"


def improvement_text(c) -> str:
    """``+33.5% [+17.1, +53.1]``: a change's improvement (positive = better) with its interval, or ``n/a``."""
    if pd.isna(c.improvement_pct):
        return "n/a"
    ci = f" [{c.ci_low_pct:+.1f}, {c.ci_high_pct:+.1f}]" if pd.notna(c.ci_low_pct) else ""
    return f"{c.improvement_pct:+.1f}%{ci}"


def outcome_text(c, unit: float, name: str) -> str:
    """What became of a change, with the times (in ``unit`` seconds, called ``name``) of its undo and restore."""
    if c.status == "restored":
        return (f"reverted at {c.undone_s / unit:.0f} {name}; its undo measured worse ({c.undo_verdict}): "
                f"restored at {c.restored_s / unit:.0f} {name}")
    if pd.notna(c.undone_s):
        return f"{c.status} at {c.undone_s / unit:.0f} {name}"
    return c.status


def _fmt(v, metric: str = "") -> str:
    if v is None or v != v:
        return "n/a"
    if metric in RATES or metric.endswith("_rate"):
        return f"{v:.1%}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"


def _blocks(res: RunResult, status: str, images: dict[str, bytes]) -> list[tuple]:
    s, o = res.summary, res.summary["optimizations"]
    unit, name = time_axis(res)
    changes = res.changes
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
        from swarmopt.optimizer.measure import GUARD_SHARE  # here: scipy is heavy for `import swarmopt.api`

        level = 1 - (1 - GUARD_SHARE) * res.scenario.optimizer.alpha
        blocks += [
            ("h2", "Changes"),
            ("p", "Improvement: relative change of the target metric from before to after the change took effect "
                  "(per-task median or rate; window level where the window values decided), positive = better, with "
                  f"the deciding test's {level:.0%} interval (95% for window values) and p-value; verdict and "
                  "outcome as decided."),
            ("table", ["#", f"effective ({name})", "agent", "kind", "change", "target metric", "before", "after",
                       "improvement", "p", "verdict", "outcome"],
             [[i + 1, f"{c.effective_s / unit:.0f}", c.agent, c.kind, change_label(c), c.metric,
               _fmt(c.before, c.metric), _fmt(c.after, c.metric), improvement_text(c),
               "n/a" if pd.isna(c.p_value) else f"{c.p_value:.2g}", "n/a" if pd.isna(c.verdict) else c.verdict,
               outcome_text(c, unit, name)] for i, c in changes.reset_index(drop=True).iterrows()]),
        ]
    blocks += _impact_blocks(s.get("impact")) + _protocol_blocks(res.events, unit, name) + _cost_blocks(s.get("costs"))
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


def _pct(v, digits: int = 1) -> str:
    return "n/a" if v is None or v != v else f"{v:+.{digits}f}%"


def _impact_blocks(impact: dict | None) -> list[tuple]:
    """The source's overall impact summary (:func:`swarmopt.impact.impact_summary`)."""
    if not impact or not impact["total_optimizations"]:
        return []
    rate = impact["success_rate"]
    out = [("h2", "Impact"),
           ("p", f"{impact['successful_optimizations']} of {impact['total_optimizations']} judged optimizations "
                 f"successful (kept, or restored after their undo measured worse): success rate {rate:.0%}; "
                 f"overall improvement {_pct(impact['overall_improvement_pct'])} (mean measured improvement of the "
                 f"judged changes, positive = better), {_pct(impact['kept_improvement_pct'])} over the successful "
                 "ones.")]
    rows = [[t, c["changes"], c["successful"], _pct(c["mean_improvement_pct"])]
            for t, c in impact["category_improvements"].items()]
    return out + [("table", ["category", "judged", "successful", "mean improvement"], rows)]


_PROTOCOL = ("orchestrator.command", "optimizer.mode", "optimizer.recommendation", "orchestrator.action")


def _protocol_blocks(events: pd.DataFrame, unit: float, name: str) -> list[tuple]:
    """The Orchestrator's commands, the optimizer's mode changes, its recommendations and what the Orchestrator did
    (:mod:`swarmopt.protocol`); a recommendation repeated cycle after cycle is listed once per run of repeats."""
    if events.empty:
        return []
    ev = events[events["event"].isin(_PROTOCOL)]
    if ev.empty:
        return []
    rows, last = [], None
    for r in ev.itertuples():
        key = (r.event, r.agent, r.kind)
        if r.event == "optimizer.recommendation" and key == last:
            continue
        last = key if r.event == "optimizer.recommendation" else last
        rows.append([f"{r.t_s / unit:.0f}", r.event, r.agent, r.kind, "" if pd.isna(r.detail) else r.detail])
    return [("h2", "Orchestrator and optimizer"), ("table", [name, "event", "agent", "kind", "detail"], rows)]


def _cost_blocks(costs: dict | None) -> list[tuple]:
    """Spend per agent, tier and tool, and the budget (:func:`swarmopt.costs.cost_breakdown`)."""
    if not costs or not costs["agents"]:
        return []
    out = [("h2", "Costs"),
           ("p", f"Total ${costs['total_usd']:,.2f} (${costs['usd_per_hour']:,.2f}/h): models "
                 f"${costs['model_usd']:,.2f}, tools ${costs['tools_usd']:,.2f}. By tier: "
                 + ", ".join(f"{t} ${v:,.2f}" for t, v in costs["tiers"].items()) + ".")]
    b = costs["budget"]
    if b:
        parts = []
        if b["usd_per_hour"]:
            parts.append(f"system ${b['usd_per_hour']:,.2f}/h (burn rate {b['burn_rate']:.2f})")
        parts += [f"{a} ${usd:,.2f}/h (burn rate {b['agent_burn_rates'].get(a, math.nan):.2f})"
                  for a, usd in b["agents"].items()]
        first = "" if b["first_alert_s"] is None else f", the first at {b['first_alert_s'] / 60:.0f} min"
        out.append(("p", f"Budget: {'; '.join(parts)}. Burn-rate alerts raised in {b['alerts']['fast']} cycles (fast) "
                         f"and {b['alerts']['slow']} (slow){first}."))
    out.append(("table", ["agent", "USD", "USD/h", "per decision", "per success", "models", "tools"],
                [[a, f"{v['cost_usd']:,.2f}", f"{v['usd_per_hour']:,.2f}", _fmt(v["per_decision_usd"]),
                  _fmt(v["per_success_usd"]), f"{v['model_usd']:,.2f}", f"{v['tools_usd']:,.2f}"]
                 for a, v in costs["agents"].items()]))
    paid = [[t, f"{v['cost_usd']:,.2f}", f"{v['calls']:,}"] for t, v in costs["tools"].items() if v["cost_usd"] > 0]
    if paid:
        out.append(("table", ["tool", "USD", "calls"], paid))
    return out


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
    (:func:`swarmopt.plots.plot_changes`) for every agent a change was
    scheduled on into ``out``, each atomically. Returns the names written."""
    changes = res.changes
    images = {}
    if res.count("metrics") and len(changes):
        # imported here, not at the top: matplotlib adds half a second to every `import swarmopt.api`
        from swarmopt.plots import plot_changes, png_bytes

        ids = {a.id for a in res.scenario.agents}
        images = {agent: png_bytes(plot_changes(res, agent)) for agent in dict.fromkeys(changes["agent"])
                  if agent in ids}
    for agent, png in images.items():
        with atomic_path(out / f"{agent}.png") as tmp:
            tmp.write_bytes(png)
    blocks = _blocks(res, status, images)
    write_text_atomic(out / "report.md", _md(blocks))
    write_text_atomic(out / "report.html", _html(blocks))
    return [f"{a}.png" for a in images] + ["report.md", "report.html"]


def _write_table(res: RunResult, name: str, out: Path) -> str:
    """Write table ``name`` of ``res`` to ``out/<name>.parquet`` (its chunks and
    rows in memory, one chunk at a time); a table that was in chunks is read from
    that file from now on. Returns the file name."""
    path = out / f"{name}.parquet"
    table = res.tables[name]
    table.write(path)
    if table.chunks:
        res.tables[name] = StoredTable((path,), table.tail.iloc[:0])
    return path.name


def previous_files(out: Path) -> set[str]:
    """The names an earlier run wrote into ``out``: :data:`OWN_FILES` and the
    files its ``summary.json`` lists (a summary from before that list: a
    ``<agent>.png`` per agent it names); plain names only, never a path."""
    names = set(OWN_FILES)
    try:
        old = json.loads((out / "summary.json").read_text())
        names |= set(old.get("files") or [f"{a}.png" for a in old.get("agents", {})])
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no earlier run, or not one of ours: only the fixed names
    return {n for n in names if isinstance(n, str) and n and "/" not in n and "\\" not in n and n not in (".", "..")}


def write_run(res: RunResult, out_dir: str | Path, status: str = "completed", error: str | None = None) -> Path:
    """Write the run directory ``out_dir``: the tables (a table streamed in
    chunks is written chunk by chunk, and read from its new file from then on),
    the reports and plots (:func:`write_report`) and last ``summary.json`` with
    ``status``, ``error`` and the list of ``files`` written, each atomically
    (:mod:`swarmopt.files`); then delete what an earlier run wrote there and
    this one did not (:func:`previous_files`, and ``parts/`` unless this run is
    streaming into it; nothing else is touched). A Ctrl-C while writing leaves
    every file whole, old or new. Sets ``res.out_dir`` and returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = previous_files(out)
    parts = out / PARTS
    streaming_here = any(isinstance(c, Path) and c.parent.parent.resolve() == parts.resolve()
                         for name in STREAMED for c in res.tables[name].chunks)
    files = [_write_table(res, name, out) for name in TABLES]
    files += write_report(res, out, status)
    files.append("summary.json")
    summary = dict(res.summary, status=status, files=files)
    if error:
        summary["error"] = error
    write_text_atomic(out / "summary.json", json.dumps(json_safe(summary), indent=2, default=str))
    for name in sorted(stale - set(files)):
        (out / name).unlink(missing_ok=True)
    if not streaming_here:  # part files an earlier, killed run left behind
        shutil.rmtree(parts, ignore_errors=True)
    res.out_dir = out
    return out


def begin_run_dir(out_dir: str | Path, run: dict) -> None:
    """Make ``out_dir`` the directory of a run that is streaming its tables into
    ``parts/``: delete what an earlier run wrote there (:func:`previous_files`
    and its ``parts/``), then write ``summary.json`` with ``run`` (scenario,
    seed, ...) and ``status: running``, which :func:`write_run` replaces at the
    end. A run killed before then leaves that status and its part files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in sorted(previous_files(out) - {"summary.json"}):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    summary = dict(run, status="running", files=["summary.json"], parts=f"{PARTS}/")
    write_text_atomic(out / "summary.json", json.dumps(json_safe(summary), indent=2, default=str))


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


def summary_html(res: RunResult) -> str:
    """A short HTML summary of a run (what a RunResult shows in Jupyter): the
    run, the outcome counts, before/after of the changed agents and the
    changes with their judgement."""
    s, o = res.summary, res.summary.get("optimizations", {})
    unit, name = time_axis(res)
    changes = res.changes
    parts = [f"<b>{html.escape(res.scenario.name)}</b> seed {res.seed}, {html.escape(res.runtime)}, "
             f"{res.scenario.duration_s / 60:.0f} simulated min, {res.count('metrics')} metric rows, "
             f"{res.count('events')} events",
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
            [[i + 1, f"{c.effective_s / unit:.0f}", c.agent, change_label(c), c.metric, improvement_text(c),
              "n/a" if pd.isna(c.verdict) else c.verdict, outcome_text(c, unit, name)]
             for i, c in changes.reset_index(drop=True).iterrows()]))
    parts.append("<p><code>.metrics .events .changes .autonomy .summary .plot(agent, metric)</code>"
                 + (f" · run directory <code>{html.escape(str(res.out_dir))}</code>" if res.out_dir else "") + "</p>")
    return f'<div class="swarmopt-run">{"".join(parts)}</div>'


__all__ = ["begin_run_dir", "json_safe", "previous_files", "summary_html", "write_report", "write_run"]
