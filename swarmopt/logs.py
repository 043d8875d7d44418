"""The live narrative: structlog events, readable on a terminal, JSON elsewhere."""

from __future__ import annotations

import logging
import sys

import structlog

NARRATIVE = {
    "cycle.started", "bottleneck.detected", "anomaly.detected", "bottleneck.within_tolerance", "strategy.held",
    "strategies.generated", "strategy.planned", "strategy.recommended",
    "approval.requested", "orchestrator.decision", "optimization.scheduled", "knob.applied",
    "optimization.measured", "optimization.kept", "optimization.rolled_back", "optimization.reverted",
    "optimization.restored", "rollback.measured",
    "autonomy.optimizer", "autonomy.agent", "report.received",
}
_FIELDS = ("agent", "type", "severity", "impact", "kind", "knob", "old", "new", "verdict", "metric", "before",
           "after", "improvement_pct", "ci_low_pct", "ci_high_pct", "p_value", "effective_s", "detail", "autonomy",
           "value", "baseline", "z")


def configure(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog: ``console`` (colours when a TTY), ``json``, or ``auto``."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "plain"
    renderer = (
        structlog.processors.JSONRenderer() if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=fmt == "console", pad_event_to=24)
    )
    structlog.configure(
        processors=[structlog.processors.add_log_level, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def _fmt(v):
    if isinstance(v, float):
        return round(v, 4) if abs(v) < 10 else round(v, 1)
    return v


def narrate(events: list[dict]) -> None:
    """Log the narrative events (others stay in the events table only)."""
    log = structlog.get_logger("swarmopt")
    for e in events:
        name = e.get("event")
        if name not in NARRATIVE:
            continue
        fields = {k: _fmt(e[k]) for k in _FIELDS if k in e and e[k] is not None and e[k] == e[k] and e[k] != ""}
        log.info(name, t=f"{e['t_s'] / 60:.0f}min", **fields)
