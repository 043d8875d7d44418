"""Anti-flapping rules for the optimizer's planning path (pure).

Modelled on the Kubernetes Horizontal Pod Autoscaler ("Horizontal Pod
Autoscaling", kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/):

* **tolerance** (HPA: ``--horizontal-pod-autoscaler-tolerance``, default 0.1):
  no action while the ratio of a metric to its target is within 10% of 1
  (:func:`outside_dead_band`; predictive pre-scaling applies it to the worker
  count, :func:`swarmopt.optimizer.strategies.pre_scale`);
* **stabilization window** (HPA: ``behavior.scaleDown.stabilizationWindowSeconds``,
  default 300 s; the API reference: "the safest value from the stabilization
  window is chosen"): the controller acts on the most conservative
  recommendation made within the window. A knob has no "safe" direction in general (a faster
  model tier is quicker but less accurate), so the rule is applied to
  *direction*: when a knob was recommended one way within the window, the most
  conservative answer to a recommendation the other way is to leave it where
  it is (:class:`Stabilizer`), while further steps the same way go ahead (as
  the HPA scales up without a window by default). A rollback (or a revert, or
  the restore after one) is never held — it restores the state before a trial
  the canary judge failed; the HPA has no such step — but it counts: a new
  change against it within the window is held (after scaling 4 -> 8 workers
  was rolled back to 4, no other remedy raises them again for a window);
  retrying the same remedy after a rollback is barred by the optimizer's tabu;
* **bounded steps sized from the gap** (HPA: desired = ceil(current x
  observed / target), within its scaling policies): the remedies size a step
  from the gap to the target (:mod:`swarmopt.optimizer.strategies`); one change
  moves a knob by at most one model tier, a worker count or message batch by at
  most ``max_step_ratio`` (default 4) and a cache TTL by at most
  ``max_ttl_step_ratio`` (default 16) either way (:func:`bound_step`).

The HPA's 300 s window spans 20 of its 15 s sync periods; the optimizer cycles
every 300 s and a change takes 7-10 minutes to roll out and be judged, so its
default window (``OptimizerConfig.stabilization_window_s``) is one hour.
"""

from __future__ import annotations

import math
from collections import defaultdict

from swarmopt.knobs import KnobChange
from swarmopt.metrics import metric_spec
from swarmopt.optimizer.detect import Bottleneck
from swarmopt.schema import KNOB_LEVELS, TIERS


def outside_dead_band(b: Bottleneck, tolerance: float) -> bool:
    """Whether bottleneck ``b`` is far enough past its threshold to act on.

    For a metric where lower is better (latency, cost, error rate, resources)
    the ratio is ``value / threshold``; for a rate or score where higher is
    better it is the ratio of the *shortfalls* ``(1 - value) / (1 - threshold)``
    (the SRE workbook's burn rate: observed error rate over the error budget).
    The direction is the metric's :class:`~swarmopt.metrics.MetricSpec`.
    Returns True iff the ratio exceeds ``1 + tolerance``; ``tolerance`` = 0
    acts on every breach. Raises ValueError for a metric with no spec.
    """
    if metric_spec(b.metric).better == "higher":
        budget = 1.0 - b.threshold
        ratio = (1.0 - b.value) / budget if budget > 0 else math.inf
    else:
        ratio = b.value / b.threshold if b.threshold > 0 else math.inf
    return ratio > 1.0 + tolerance


def _ordinal(knob: str, value) -> float:
    levels = KNOB_LEVELS.get(knob)
    return float(levels.index(value) if levels else value)


def direction(c: KnobChange) -> int:
    """+1 when ``c`` raises its knob (model tiers ordered fast < standard <
    strong, scheduling fcfs < priority < wfq, topologies in
    :data:`~swarmopt.schema.SHAPES` order: :data:`~swarmopt.schema.KNOB_LEVELS`; booleans False <
    True), -1 when it lowers it, 0 for no change."""
    old, new = _ordinal(c.knob, c.old), _ordinal(c.knob, c.new)
    return (new > old) - (new < old)


_LIMITS = ("max_tokens_per_minute", "token_burst_size", "max_tool_calls_per_minute.", "max_cache_size.")


def bound_step(c: KnobChange, ratio: float = 4.0, ttl_ratio: float = 16.0) -> KnobChange:
    """``c`` with its new value clamped to one bounded step from the old one:
    one model tier; concurrency and message batch within [old/ratio, ratio x
    old] (rounded away from old); cache TTLs within [old/ttl_ratio, max(60,
    ttl_ratio x old)] seconds; a timeout, a set rate limit, burst or cache size bound
    within [old/ratio, ratio x old] (from 0, off, there is no step: it passes)
    (``ratio`` >= 1: ``OptimizerConfig.max_step_ratio``, ``ttl_ratio``:
    ``OptimizerConfig.max_ttl_step_ratio``; the HPA's default
    scale-up policy allows +100% per period, its sizing rule jumps straight to
    the desired count). Other knobs pass unchanged. Raises ValueError for an
    unknown tier."""
    k, old, new = c.knob, c.old, c.new
    if k == "model_tier":
        i, j = TIERS.index(old), TIERS.index(new)
        new = TIERS[i + max(-1, min(1, j - i))]
    elif k in ("max_concurrency", "message_batch_size"):
        new = max(math.ceil(old / ratio), min(math.floor(ratio * old), new))
    elif k == "timeout_s":
        new = max(old / ratio, min(ratio * old, new))
    elif k.startswith("cache_ttl_s."):
        new = max(old / ttl_ratio, min(max(60.0, ttl_ratio * old), new))
    elif k.startswith(_LIMITS) and old > 0 and new > 0:
        new = max(math.ceil(old / ratio), min(math.floor(ratio * old), new))
    return c if new == c.new else KnobChange(c.agent, k, old, new)


class Stabilizer:
    """Recommendation history per (agent, knob) and the window rule.

    ``window_s`` is the stabilization window in simulated seconds (0 disables
    the rule). Times are the instants the changes take effect, so the rule
    holds for what the agents actually experience.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._recs: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)

    def allows(self, t_s: float, actions) -> bool:
        """False when any change in ``actions`` (KnobChanges taking effect at
        ``t_s``) goes against a recommendation for the same knob made within
        less than ``window_s`` before or after ``t_s``: then the most
        conservative recommendation in the window is to keep the current value."""
        for c in actions:
            d = direction(c)
            for t, d0 in self._recs.get((c.agent, c.knob), ()):
                if d0 == -d and abs(t_s - t) < self.window_s:
                    return False
        return True

    def record(self, t_s: float, actions) -> None:
        """Remember the direction of every recommended change in ``actions``
        (taking effect at ``t_s``); forgets entries more than two windows old."""
        for c in actions:
            key = (c.agent, c.knob)
            self._recs[key] = [(t, d) for t, d in self._recs[key] if t > t_s - 2 * self.window_s]
            self._recs[key].append((t_s, direction(c)))
