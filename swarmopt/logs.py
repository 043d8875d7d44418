"""The live narrative: every event of a run as a structlog line, filtered by verbosity.

:func:`narrate` logs each event (``event`` name, simulated time ``t_s``, the
run's ``run_id`` and the event's fields) at level ``debug`` for routine
bookkeeping (:data:`ROUTINE`: ``cycle.started``, ``strategies.generated``,
``report.received``, ...) and ``info`` for what changed (bottlenecks,
anomalies, plans, approvals, knob changes, verdicts, rollbacks, autonomy).
What is shown is decided by structlog processors, configured by
:func:`configure`:

* ``quiet``: nothing below ``warning`` (the CLI then prints only its summary);
* ``normal``: the ``info`` events, each persistent condition once
  (:class:`DropRepeats`: a bottleneck detected in consecutive cycles is shown
  when it starts or its severity changes);
* ``verbose``: everything.

Formats: ``console`` (colours), ``plain`` (no colours), each line led by the
simulated clock, a knob change and an improvement with its interval in one
field each (:func:`compact`); ``json`` (one object per line with numeric ``t_s``,
``run_id``, ``level`` and an ISO-8601 UTC wall-clock ``timestamp``); ``auto``
is ``console`` on a terminal, else ``plain``.
"""

from __future__ import annotations

import logging
import secrets
import sys
from typing import Any

import structlog

from swarmopt.event_table import per_knob

VERBOSITIES = ("quiet", "normal", "verbose")
ROUTINE = frozenset({
    "cycle.started", "strategies.generated", "report.received", "strategy.planned", "strategy.deferred",
    "strategy.approved", "orchestrator.optimizer_autonomy", "autonomy.applied",
    "optimization.measured",  # its figures are on the kept / reverted / rolled_back event that follows
})
# conditions re-detected every cycle while they last, keyed by what makes one distinct
REPEATING = {
    "bottleneck.detected": ("agent", "type", "severity"),
    "bottleneck.within_tolerance": ("agent", "type"),
    "strategy.held": ("agent", "kind", "knob"),
    "strategy.recommended": ("agent", "kind", "knob"),
    "optimizer.recommendation": ("agent", "kind"),
}
_FIELDS = ("agent", "kind", "knob", "old", "new", "metric", "value", "threshold", "baseline", "z", "impact",
           "severity", "before", "after", "improvement_pct", "ci_low_pct", "ci_high_pct", "p_value", "method",
           "verdict", "decision", "effective_s", "autonomy", "type", "strategy_id", "ref", "detail")


def new_run_id(scenario: str, seed: int) -> str:
    """``<scenario>-seed<seed>-<6 hex digits>``: the suffix comes from the OS
    (``secrets``), never from a simulation's random streams, so it cannot
    change results."""
    return f"{scenario}-seed{seed}-{secrets.token_hex(3)}"


class DropRepeats:
    """structlog processor: drop an event of :data:`REPEATING` that was also
    logged in the previous optimizer cycle of the same run (``run_id``), so a
    lasting condition is shown when it starts or changes. Cycles are told by
    the ``cycle.started`` events, which must reach this processor."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[set, set]] = {}  # run_id -> (keys this cycle, keys last cycle)

    def __call__(self, logger: Any, method: str, event: dict) -> dict:
        run = event.get("run_id", "")
        now, last = self._seen.setdefault(run, (set(), set()))
        name = event.get("event")
        if name == "cycle.started":
            self._seen[run] = (set(), now)
        elif name in REPEATING:
            key = (name, *(event.get(k) for k in REPEATING[name]))
            now.add(key)
            if key in last:
                raise structlog.DropEvent
        return event


def drop_debug(logger: Any, method: str, event: dict) -> dict:
    """structlog processor: drop the ``debug`` (routine) events."""
    if method == "debug":
        raise structlog.DropEvent
    return event


def sim_clock(logger: Any, method: str, event: dict) -> dict:
    """structlog processor for the console: the simulated time ``t_s`` as a
    leading ``h:mm:ss`` clock (the console renderer puts ``timestamp`` first);
    the run id is left to the JSON lines."""
    t = event.pop("t_s", None)
    event.pop("run_id", None)
    if t is not None:
        s = int(round(t))
        event["timestamp"] = f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"
    return event


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def compact(logger: Any, method: str, event: dict) -> dict:
    """structlog processor for the console: a knob change as one ``change``
    field (``knob old -> new``), an improvement with its interval as one
    ``improvement`` field (positive = better), and without the ids and types
    that the events table keeps."""
    if "knob" in event and ("old" in event or "new" in event):
        parts = per_knob(event["knob"], event.get("old"), event.get("new"))
        if parts:  # a bundle: each knob with its own values
            event["change"] = "; ".join(f"{k} {_num(o)} -> {_num(n)}" for k, o, n in parts)
            del event["knob"], event["old"], event["new"]
        else:
            old = f"{_num(event.pop('old'))} -> " if "old" in event else "-> "
            event["change"] = f"{event.pop('knob')} {old}{_num(event.pop('new', '?'))}"
    if "improvement_pct" in event:
        lo, hi = event.pop("ci_low_pct", None), event.pop("ci_high_pct", None)
        ci = f" [{lo:+.1f}, {hi:+.1f}]" if isinstance(lo, float) and isinstance(hi, float) else ""
        event["improvement"] = f"{event.pop('improvement_pct'):+.1f}%{ci}"
        event.pop("severity", None)
    ref = str(event.pop("ref", ""))
    if ref.startswith(("rollback:", "restore:")) or ref in ("user", "orchestrator"):
        event["by"] = {"rollback": "undo", "restore": "restore"}.get(ref.partition(":")[0], ref)
    for key in ("strategy_id", "type", "effective_s", "autonomy"):
        event.pop(key, None)
    first = [k for k in ("timestamp", "level", "event", "agent", "kind", "change", "by", "metric", "improvement")
             if k in event]
    return {**{k: event[k] for k in first}, **{k: v for k, v in event.items() if k not in first and k != "detail"},
            **({"detail": event["detail"]} if "detail" in event else {})}


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    # sys.stderr at the time of logging: a progress bar redirects it to print above itself
    return structlog.PrintLogger(sys.stderr)


def configure(fmt: str = "auto", verbosity: str = "normal") -> None:
    """Set up structlog for the narrative on stderr: ``fmt`` ``console``,
    ``plain``, ``json`` or ``auto``; ``verbosity`` ``quiet``, ``normal`` or
    ``verbose`` (see the module docstring). Raises ValueError for another
    value."""
    if verbosity not in VERBOSITIES:
        raise ValueError(f"verbosity must be one of {VERBOSITIES}, got {verbosity!r}")
    if fmt not in ("auto", "console", "plain", "json"):
        raise ValueError(f"fmt must be auto, console, plain or json, got {fmt!r}")
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "plain"
    shown: list = [] if verbosity == "verbose" else [DropRepeats(), drop_debug]
    if fmt == "json":
        tail = [structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.JSONRenderer()]
    else:
        tail = [sim_clock, compact, structlog.dev.ConsoleRenderer(colors=fmt == "console", pad_event_to=26,
                                                                  sort_keys=False)]
    structlog.configure(
        processors=[*shown, structlog.processors.add_log_level, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING if verbosity == "quiet" else logging.DEBUG),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _fmt(v: Any) -> Any:
    if isinstance(v, float) and v == v:
        return float(f"{v:.2g}") if abs(v) < 0.001 else round(v, 4) if abs(v) < 10 else round(v, 1)
    return v


def narrate(events: list[dict], run_id: str = "") -> None:
    """Log ``events`` (dicts with ``event`` and ``t_s``) as the narrative of run
    ``run_id``: :data:`ROUTINE` ones at ``debug``, the others at ``info``.
    Configures the default narrative (:func:`configure`) if structlog was not
    configured yet."""
    if not structlog.is_configured():
        configure()
    log = structlog.get_logger("swarmopt").bind(run_id=run_id)
    for e in events:
        name = e.get("event")
        fields = {k: _fmt(e[k]) for k in _FIELDS if k in e and e[k] is not None and e[k] == e[k] and e[k] != ""}
        (log.debug if name in ROUTINE else log.info)(name, t_s=e["t_s"], **fields)
