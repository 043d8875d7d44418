"""Knob changes: the only way the optimizer acts on an agent.

A knob is addressed by a dotted path into :class:`swarmopt.schema.Knobs`:
``model_tier``, ``max_concurrency``, ``cache_ttl_s.<tool>``, ``parallel_tools``,
``timeout_s``, ``max_retries``, ``circuit_breaker.enabled`` (or any other
breaker field), ``message_batch_size``, ``shed_expired``, ``confidence_threshold``,
``tier_routing``, ``max_tokens_per_minute``, ``token_burst_size``,
``max_tool_calls_per_minute.<tool>``, ``max_cache_size.<tool>``, and
``split.<knob>`` (the other arm's value of a concurrent split; None ends it). A
:class:`KnobChange` records the old value, so a rollback restores it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from swarmopt.schema import Knobs


@dataclass(frozen=True)
class KnobChange:
    """Set ``knob`` of ``agent`` from ``old`` to ``new``."""

    agent: str
    knob: str
    old: Any
    new: Any

    def inverse(self) -> "KnobChange":
        """The change that restores ``old``."""
        return KnobChange(self.agent, self.knob, self.new, self.old)


@dataclass(frozen=True)
class ScheduledChange:
    """A knob change (or, with ``knob == "autonomy"``, an autonomy change) that
    takes effect at simulated time ``at_s``; ``ref`` names its origin (a
    strategy id, a rollback, an orchestrator report)."""

    at_s: float
    change: KnobChange
    ref: str


def align(t: float, window_s: float) -> float:
    """The first window boundary at or after ``t`` (s): the optimizer's changes
    take effect on window boundaries, so that every window is served under one
    configuration."""
    return math.ceil(t / window_s - 1e-9) * window_s


def get_knob(knobs: Knobs, path: str) -> Any:
    """Value at ``path``. Raises KeyError naming the path if it does not exist."""
    head, _, rest = path.partition(".")
    if not hasattr(knobs, head):
        raise KeyError(f"unknown knob '{path}'; allowed: {sorted(Knobs.model_fields)}")
    value = getattr(knobs, head)
    if not rest:
        return value
    if isinstance(value, dict):
        return value.get(rest, 0.0)
    if not hasattr(value, rest):
        raise KeyError(f"unknown knob '{path}'")
    return getattr(value, rest)


def set_knob(knobs: Knobs, path: str, value: Any) -> Knobs:
    """A copy of ``knobs`` with ``path`` set to ``value``, re-validated against
    the schema bounds (raises pydantic.ValidationError when out of bounds)."""
    data = knobs.model_dump()
    head, _, rest = path.partition(".")
    if head not in data:
        raise KeyError(f"unknown knob '{path}'; allowed: {sorted(data)}")
    if head == "split":  # a split's knob is absent, not 0, when None
        data[head] = {k: v for k, v in dict(data[head], **{rest: value}).items() if v is not None}
    elif rest:
        data[head] = dict(data[head], **{rest: value})
    else:
        data[head] = value
    return Knobs.model_validate(data)
