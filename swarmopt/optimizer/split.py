"""Split looks: a change measured on by a concurrent canary (pure).

A before/after judge reads whatever else moved between its two spans (a fault
that deepens, a load ramp) as the change's effect. A concurrent canary, as
Kayenta and Argo Rollouts run one against a baseline, serves the two
configurations at the same time instead: here the change stays in force and
its old values serve the other arm of a split (:attr:`Knobs.split
<swarmopt.schema.Knobs.split>`): every second decision, or, for a cache TTL,
the odd keys of the tool's keyspace, so the arms never share an entry. The two
arms see the same load, faults and queue, and their per-task samples are
compared at the same time.

A change is judged before/after first (a clear effect is decided within
``measure_windows``); one the judge cannot decide yet, whose knobs can all be
split (:data:`~swarmopt.schema.SPLIT_KNOBS`) and whose target is a per-task
metric, is measured on by a split of ``2 x measure_windows`` windows after a
burn-in (a cache entry filled under the new TTL outlives the switch to the old
one by up to that TTL). What the split does not see: the arms share the
agent's workers, so a change that shortens service also shortens the queue
both arms wait in, and the split measures its direct effect only.
"""

from __future__ import annotations

from swarmopt.knobs import KnobChange, ScheduledChange
from swarmopt.metrics import metric_spec
from swarmopt.optimizer.strategies import Strategy
from swarmopt.optimizer.trial import settle_windows
from swarmopt.schema import SPLIT_KNOBS, Knobs

#: The ``ref`` of a split's start and end is this prefix and the strategy's id.
REF = "split:"
_TTL = "cache_ttl_s"


def splittable(strategy: Strategy, knobs: Knobs) -> bool:
    """Whether ``strategy``'s change can be measured by a split on an agent
    with ``knobs``: one agent, every knob in :data:`SPLIT_KNOBS` (a cache TTL
    alone, on an unbounded cache with no circuit breaker: their state is one
    sequence over both arms), and a per-task target metric."""
    acts = strategy.actions
    families = {c.knob.partition(".")[0] for c in acts}
    if not acts or len({c.agent for c in acts}) > 1 or not families <= set(SPLIT_KNOBS):
        return False
    if _TTL in families:
        tool = acts[0].knob.partition(".")[2]
        if len(acts) > 1 or knobs.circuit_breaker.enabled or knobs.max_cache_size.get(tool, 0):
            return False
    return metric_spec(strategy.target_metric).test in ("mann-whitney", "two-proportion")


def burn_in(actions: tuple[KnobChange, ...], window_s: float) -> int:
    """Windows at a split's start not judged: 1, or as many as the longest TTL
    involved lasts (:func:`~swarmopt.optimizer.trial.settle_windows`)."""
    return max(1, settle_windows(actions, window_s))


def start(actions: tuple[KnobChange, ...], at_s: float, strategy_id: str) -> list[ScheduledChange]:
    """The changes that start a split at ``at_s``: the other arm keeps each knob's old value."""
    return [ScheduledChange(at_s, KnobChange(c.agent, f"split.{c.knob}", None, c.old), REF + strategy_id)
            for c in actions]


def end(actions: tuple[KnobChange, ...], at_s: float, strategy_id: str) -> list[ScheduledChange]:
    """The changes that end the split :func:`start` began, at ``at_s``."""
    return [ScheduledChange(at_s, KnobChange(c.agent, f"split.{c.knob}", c.old, None), REF + strategy_id)
            for c in actions]
