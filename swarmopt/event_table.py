"""The events table: one row per event of a run, in the order they happened, with a fixed typed schema.

:data:`SCHEMA` lists every column with its type, meaning and the events that
set it (the README's "Events table" section is the same table). Types: text
columns are pandas ``string``, counts ``Int64``, flags ``boolean`` and the
rest ``float64``; a column an event does not set is missing there (``<NA>``
in text, count and flag columns, NaN in float columns; null in
``events.parquet``), never an empty string or the text ``'nan'``. Knob and
autonomy values, which may be numbers, booleans or names, are split in two:
``old_value``/``new_value`` hold a number (a boolean as 1/0) and
``old_text``/``new_text`` the value as text when it is not a plain number (a
tier name, ``true``/``false``, several values joined by ``;``).

Every column of :data:`SCHEMA` is present in every run, in this order; a key
an event carries that is not in the schema is kept, after them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Number
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Column:
    """One column of the events table: ``dtype`` is a pandas dtype name."""

    name: str
    dtype: str
    meaning: str
    events: str


_S, _F, _I, _B = "string", "float64", "Int64", "boolean"
_STRATEGY = "strategy.*, approval.requested, orchestrator.decision, optimization.*"
_MEASURED = "optimization.measured, rollback.measured"
_DECIDED = "optimization.kept, optimization.reverted, optimization.rolled_back"
_PROTOCOL = "orchestrator.command, optimizer.mode, optimizer.recommendation, orchestrator.action"
SCHEMA: tuple[Column, ...] = (
    Column("t_s", _F, "simulated time of the event (s)", "all"),
    Column("event", _S, "event name", "all"),
    Column("agent", _S, "agent concerned (several joined by `,`); `performance-optimizer`, "
           "`strategic-orchestrator` or `system` for those", "all but cycle.started, strategies.generated"),
    Column("strategy_id", _S, "the strategy (change) the event is about; `rollback:<id>` for the measurement of "
           "its undo", f"{_STRATEGY}, {_MEASURED}, knob.applied"),
    Column("kind", _S, "remedy kind of the strategy (e.g. `scale_concurrency`); `user` for a knob set by hand; "
           "the fault kind for fault.injected; the command, mode change, recommendation or action kind for the "
           "protocol's events (e.g. `aggressiveness`, `increase_resources`, `grant_resources`)",
           f"{_STRATEGY}, {_MEASURED}, knob.applied, strategy.held, fault.injected, {_PROTOCOL}"),
    Column("type", _S, "bottleneck type, or the type of bottleneck a strategy treats",
           f"bottleneck.*, {_STRATEGY}, {_MEASURED}"),
    Column("severity", _S, "low / medium / high / critical", f"bottleneck.detected, {_STRATEGY}"),
    Column("knob", _S, "knob path (e.g. `cache_ttl_s.data_source`; `autonomy`); several joined by `;`",
           f"{_STRATEGY}, strategy.held, knob.applied, knob.set, autonomy.applied"),
    Column("old_value", _F, "value before, as a number (boolean as 1/0)",
           f"{_STRATEGY}, knob.applied, knob.set, autonomy.*, orchestrator.optimizer_autonomy, orchestrator.action"),
    Column("new_value", _F, "value after, as a number (boolean as 1/0)", "as old_value, and strategy.held"),
    Column("old_text", _S, "value before as text when not a plain number (tier name, `true`/`false`, `;` list)",
           "as old_value"),
    Column("new_text", _S, "value after as text when not a plain number", "as new_value"),
    Column("ref", _S, "what scheduled the change: a strategy id, `rollback:<id>`, `restore:<id>`, `orchestrator` "
           "or `user`", "knob.applied, autonomy.applied, knob.set"),
    Column("effective_s", _F, "simulated time the change (or fault, or command) takes effect (s)",
           "optimization.scheduled, optimization.reverted, optimization.rolled_back, optimization.restored, "
           "autonomy.agent, fault.injected, orchestrator.command, orchestrator.action"),
    Column("risk", _F, "risk of the strategy (0-1); above the optimizer's autonomy it needs approval",
           f"{_STRATEGY}"),
    Column("expected_improvement", _F, "expected improvement of the strategy (%), learned", _STRATEGY),
    Column("implementation_time_s", _F, "delay before the change takes effect (s)", _STRATEGY),
    Column("metric", _S, "metric concerned (a metrics-table column)",
           f"bottleneck.*, anomaly.detected, {_MEASURED}, {_DECIDED}"),
    Column("value", _F, "the metric's value; for strategies.generated and report.received a count; for "
           "actor.restarted the ticks replayed; for orchestrator.command the aggressiveness level; for "
           "run.reseeded the replica stream",
           "bottleneck.*, anomaly.detected, strategies.generated, report.received, actor.restarted, "
           "orchestrator.command, run.reseeded"),
    Column("threshold", _F, "threshold the value breached", "bottleneck.*"),
    Column("impact", _F, "how far past the threshold (%), or the level shift (%)",
           "bottleneck.detected, anomaly.detected"),
    Column("baseline", _F, "the agent's own median of the metric", "anomaly.detected"),
    Column("z", _F, "robust z of the level shift", "anomaly.detected"),
    Column("autonomy", _F, "the optimizer's autonomy (0-1)", "cycle.started"),
    Column("verdict", _S, "verdict of the test that decided: pass / marginal / fail / inconclusive; approved / "
           "rejected for orchestrator.decision", f"{_MEASURED}, {_DECIDED}, orchestrator.decision"),
    Column("decision", _S, "keep / revert / rollback", "optimization.measured"),
    Column("forced", _B, "the decision was forced (Simulation.override or a decision hook); missing otherwise",
           f"optimization.measured, {_DECIDED}"),
    Column("judge_decision", _S, "the judge's decision where a forced one replaced it", "optimization.measured"),
    Column("method", _S, "test that decided: mann-whitney (per-task latency or cost), two-proportion (per-task "
           "rates), segmented-windows (window values adjusted for trend and load; welch-windows, window means, "
           "with optimizer.trend_adjust off); `/batch-means` when too few tasks were effectively independent "
           "and the window means decided (as window values, or by their increments with optimizer.batch_means: "
           "increments); `/batch-means/throughput` when, with optimizer.batch_means: throughput, a queue waited at "
           "every window end on both sides and the windows' throughput decided", f"{_MEASURED}, {_DECIDED}"),
    Column("better", _S, "direction in which the metric is better: lower / higher", _MEASURED),
    Column("before", _F, "the deciding test's figure before the change: per-task median (latency, cost) or "
           "proportion (rates), or the window level (window_before)", f"{_MEASURED}, {_DECIDED}"),
    Column("after", _F, "the same figure after the change", f"{_MEASURED}, {_DECIDED}"),
    Column("improvement_pct", _F, "relative change from before to after, positive = better (%)",
           f"{_MEASURED}, {_DECIDED}"),
    Column("ci_low_pct", _F, "low end of the deciding test's interval of improvement_pct (96% for the per-task "
           "tests at alpha 0.05, 95% for the window values)", f"{_MEASURED}, {_DECIDED}"),
    Column("ci_high_pct", _F, "high end of that interval", f"{_MEASURED}, {_DECIDED}"),
    Column("p_value", _F, "p-value of the deciding test (two-sided per-task tests; one-sided for an improvement "
           "for the window values)", f"{_MEASURED}, {_DECIDED}"),
    Column("reasons", _S, "the judge's reasons, improvements positive = better", _MEASURED),
    Column("guardrails", _S, "guardrail breaches (cost, errors, success below its limit, the response time past "
           "its limit, a retry's response-time price past the setpoint); missing when none", _MEASURED),
    Column("window_before", _F, "secondary: the target's window level before the change: the mean before, or "
           "where the window values decided (window_method segmented:... or increments) what the after-span would "
           "have shown without the change (trend and load extrapolated; the before-span's mean increment carried "
           "on)", _MEASURED),
    Column("window_after", _F, "secondary: mean of the target's window values after the change", _MEASURED),
    Column("window_improvement_pct", _F, "secondary: relative change of the window level, positive = better (%); "
           "what the optimizer learns expected improvements from", _MEASURED),
    Column("window_ci_low_pct", _F, "secondary: 95% interval of window_improvement_pct, low end", _MEASURED),
    Column("window_ci_high_pct", _F, "secondary: 95% interval of window_improvement_pct, high end", _MEASURED),
    Column("window_p_value", _F, "secondary: one-sided p-value for an improvement of the window level", _MEASURED),
    Column("window_verdict", _S, "secondary: verdict of the window-level comparison", _MEASURED),
    Column("window_method", _S, "secondary: the window-level comparison: segmented:<covariates> (segmented "
           "regression on trend and/or load, measure.adjusted_measure, where the window values decided with "
           "optimizer.trend_adjust), increments (batch means by their increments, measure.drift_measure) or welch "
           "(window means)", _MEASURED),
    Column("tasks_before", _I, "decisions in the before-span", _MEASURED),
    Column("tasks_after", _I, "decisions in the after-span", _MEASURED),
    Column("tau_before", _F, "autocorrelation time of the per-task series before (>= 1)", _MEASURED),
    Column("tau_after", _F, "autocorrelation time of the per-task series after (>= 1)", _MEASURED),
    Column("n_eff_before", _I, "effective sample size before (tasks / tau)", _MEASURED),
    Column("n_eff_after", _I, "effective sample size after (tasks / tau)", _MEASURED),
    Column("before_start_s", _F, "start of the before-span (s)", _MEASURED),
    Column("before_end_s", _F, "end of the before-span (s) = when the change took effect", _MEASURED),
    Column("after_start_s", _F, "start of the after-span (s)", _MEASURED),
    Column("after_end_s", _F, "end of the after-span (s)", _MEASURED),
    Column("switchback", _B, "judged on the old and the new arm of switchback looks, alternating blocks over the "
           "after-span, which the before-span equals (optimizer.judge_design)", _MEASURED),
    Column("split", _B, "judged on the two arms of a concurrent split over the after-span, which the before-span "
           "equals: the old configuration serving every second decision or a cache's odd keys", _MEASURED),
    Column("detail", _S, "one line for a person: a description, a reason, a recommendation", "most"),
)
_UNDO = ("rollback:", "restore:")
_SPLIT = {"old": ("old_value", "old_text"), "new": ("new_value", "new_text")}


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def per_knob(knob: Any, old: Any, new: Any) -> list[tuple[str, Any, Any]] | None:
    """A change of several knobs (``knob`` joined by ``;``, a bundle) as (knob, old, new) per knob, from
    lists of values (an event's) or their ``;``-joined text (the table's); None for one knob, or values that
    do not split into one per knob."""
    knobs = str(knob).split(";")
    olds, news = (v.split(";") if isinstance(v, str) else v for v in (old, new))
    if len(knobs) > 1 and isinstance(olds, list) and isinstance(news, list) and len(olds) == len(news) == len(knobs):
        return list(zip(knobs, olds, news, strict=True))
    return None


def split_value(v: Any) -> tuple[float, str | None]:
    """(number, text) of a knob or autonomy value: a number gives (v, None), a
    boolean (1/0, ``true``/``false``), a list or tuple (NaN, values joined by
    ``;``), a name (NaN, name); None or NaN gives (NaN, None)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return math.nan, None
    if isinstance(v, bool):
        return float(v), _text(v)
    if isinstance(v, Number):
        return float(v), None
    if isinstance(v, (list, tuple)):
        return math.nan, ";".join(_text(x) for x in v)
    return math.nan, str(v)


def _strategy_of(ref: Any, kinds: dict[str, str]) -> str | None:
    if not isinstance(ref, str):
        return None
    sid = ref.split(":", 1)[1] if ref.startswith(_UNDO) else ref
    return sid if sid in kinds else None


def strategy_kinds(rows: list[dict]) -> dict[str, str]:
    """Remedy kind by strategy id, of the event dicts in ``rows`` that carry both."""
    return {r["strategy_id"]: r["kind"] for r in rows if r.get("strategy_id") and r.get("kind")}


def events_frame(rows: list[dict], kinds: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The events table of ``rows`` (event dicts as the components emit them,
    in order): one row each, the :data:`SCHEMA` columns with their types, then
    any other keys. ``old``/``new`` become ``old_value``/``old_text`` and
    ``new_value``/``new_text`` (:func:`split_value`); a ``knob.applied`` gets
    the ``strategy_id`` and ``kind`` of the strategy its ``ref`` names (``kind``
    ``user`` for a change set by hand), looked up in ``rows`` and in ``kinds``
    (:func:`strategy_kinds` of the events before ``rows``, when the table is
    built in pieces); empty text is missing."""
    kinds = {**(kinds or {}), **strategy_kinds(rows)}
    out = []
    for r in rows:
        r = dict(r)
        for key, (num, text) in _SPLIT.items():
            if key in r:
                r[num], r[text] = split_value(r.pop(key))
        if r["event"] in ("knob.applied", "knob.set"):
            sid = _strategy_of(r.get("ref"), kinds)
            r["strategy_id"] = sid
            r["kind"] = kinds[sid] if sid else ("user" if r.get("ref") == "user" else None)
        out.append(r)
    names = [c.name for c in SCHEMA]
    df = pd.DataFrame(out)
    extra = [c for c in df.columns if c not in names]
    df = df.reindex(columns=names + extra)
    for c in SCHEMA:
        col = df[c.name]
        if c.dtype == _S:
            col = col.astype(object).where(col.notna() & (col.astype(object) != ""), None)
        df[c.name] = col.astype(c.dtype)
    return df


def event_records(df: pd.DataFrame) -> list[dict]:
    """Event dicts back from rows of the events table (what :func:`events_frame`
    was given, near enough for a live view): every column a key, a missing value
    None, and ``old``/``new`` the text of a value where there is one, else its
    number (None when neither)."""
    out = []
    for rec in df.to_dict("records"):
        r = {k: (None if pd.isna(v) else v) for k, v in rec.items()}
        for key, (num, text) in _SPLIT.items():
            number, words = r.pop(num, None), r.pop(text, None)
            r[key] = words if words is not None else number
        out.append(r)
    return out
