"""Strategies: concrete knob changes that answer a bottleneck (pure).

Each *remedy* has a function ``(snapshot, knobs, profile) -> list[KnobChange] |
None`` that proposes bounded changes to one agent, or None when it does not
apply (its precondition fails or the knob is already at its bound). The planner
bounds each step, the Kubernetes HPA habit of limited scale steps
(:func:`swarmopt.optimizer.stabilize.bound_step`): a worker count or batch by
at most ``max_step_ratio``, a TTL by at most ``max_ttl_step_ratio``, one model
tier at a time.

:data:`REMEDIES` names every built-in remedy once; :data:`TYPES` lists, per
bottleneck type, the metric a strategy for it is judged on and the remedies by
name, in the order the source design's rules try them. A plug-in remedy
(made with :func:`remedy`) names the bottleneck types it answers itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from swarmopt.knobs import KnobChange, get_knob
from swarmopt.optimizer.budget import cache_costly_tool
from swarmopt.optimizer.detect import SEVERITY_RANK
from swarmopt.optimizer.tuning import (
    lengthen_breaker_open,
    relax_timeout,
    shorten_breaker_open,
    tighten_timeout,
    tune_breaker_threshold,
)
from swarmopt.protocol import grant_workers
from swarmopt.queueing import lru_capacity_for_hit_rate, ttl_cache_hit_rate, zipf_probabilities
from swarmopt.schema import KNOB_BOUNDS, TIERS, AgentProfile, Knobs, OptimizerConfig, ToolProfile

MAX_TTL_S = 3600.0

Propose = Callable[[dict, Knobs, AgentProfile], "list[KnobChange] | None"]

PRICES = ("response_time_ms_mean",)
"""The SLO metrics a remedy may name as its price (:attr:`Remedy.price`)."""


@dataclass(frozen=True)
class Remedy:
    """A named remedy.

    ``risk`` (0-1) is compared with the optimizer's autonomy (riskier ones need
    the Orchestrator's approval); ``implementation_time_s`` is how long it takes
    to roll out; ``propose(snapshot, knobs, profile)`` returns the changes it
    would make to one agent, or None when it does not apply (None for
    ``pre_scale``, which the proactive planner sizes from a load forecast).
    ``description`` says what it does, ``wording`` how it reads for particular
    bottleneck types. ``answers``: the bottleneck types a plug-in remedy
    answers (built-in remedies are listed per type in :data:`TYPES` instead).
    ``target``: the metric its reactive changes are judged on when it is not
    the bottleneck type's (a remedy whose direct effect the type's metric shows
    only late). ``evidence``: its precondition observes the mechanism it acts
    on (a worker queue for workers, late messages for a larger batch, hung calls
    for a shorter timeout, a breaker open on a tool below its break-even), not
    only that its knob can still move; a learning policy may try such a remedy
    first (:class:`swarmopt.policies.ThompsonPolicy`). ``price``: the SLO
    metric (one of :data:`PRICES`) its changes are known to make worse, as
    the price of their gain (one more retry is another attempt for every
    failing decision); the judge rolls a change back when it paid more than
    the SLO has room for
    (:func:`swarmopt.optimizer.measure.price_paid`). ``monotone``: the
    target metrics its change cannot make worse by the engine's model (more
    workers never lengthen an FCFS queue's waits nor raise its utilization, a
    higher rate limit never admits a decision later, a larger LRU cache never
    loses a hit, one more attempt never leaves without a valid attempt a
    decision that had one): on them only the size of its gain is in question
    (:attr:`swarmopt.schema.OptimizerConfig.keep_monotone`). Raises ValueError for a
    risk outside [0, 1] or a non-positive implementation time.
    """

    name: str
    risk: float
    implementation_time_s: float
    propose: Propose | None
    description: str
    wording: dict[str, str] = field(default_factory=dict, hash=False)
    answers: tuple[str, ...] = ()
    target: str | None = None
    evidence: bool = False
    price: str | None = None
    monotone: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.price is not None and self.price not in PRICES:
            raise ValueError(f"remedy {self.name}: price must be one of {sorted(PRICES)}, got {self.price!r}")
        if not 0.0 <= self.risk <= 1.0:
            raise ValueError(f"remedy {self.name}: risk must be in [0, 1], got {self.risk!r}")
        if not self.implementation_time_s > 0:
            raise ValueError(
                f"remedy {self.name}: implementation_time_s must be > 0, got {self.implementation_time_s!r}")

    def describe(self, type_: str) -> str:
        """What the remedy does, in the words used for bottleneck type ``type_``."""
        return self.wording.get(type_, self.description)


def remedy(*, risk: float, implementation_time_s: float, answers: Sequence[str], name: str | None = None,
           description: str | None = None, evidence: bool = False,
           price: str | None = None) -> Callable[[Propose], Propose]:
    """Decorator that makes a function ``(snapshot, knobs, profile) ->
    list[KnobChange] | None`` a plug-in remedy for the bottleneck types in
    ``answers``: it returns the function unchanged (still callable, and
    picklable by reference) with its :class:`Remedy` in the attribute
    ``remedy``. ``name`` defaults to the function's name and ``description`` to
    the first line of its docstring; ``evidence``: it proposes only when the
    snapshot shows its mechanism at work (:attr:`Remedy.evidence`); ``price``:
    the SLO metric its changes are known to make worse (:attr:`Remedy.price`).
    Raises ValueError for a risk outside [0, 1], a non-positive implementation
    time, a price not in :data:`PRICES` or no type.

    ``snapshot`` is the agent's mean metrics over the last cycle (a dict of
    :data:`swarmopt.optimizer.detect.SNAPSHOT_FIELDS`, and under ``tools`` its
    per-tool calls, failure rate and cost: :func:`~swarmopt.optimizer.tuning.tool_view`), ``knobs`` its current
    :class:`~swarmopt.schema.Knobs`, ``profile`` its
    :class:`~swarmopt.schema.AgentProfile`; each change is a
    :class:`~swarmopt.knobs.KnobChange` ``(agent, knob, old, new)``.
    """
    if isinstance(answers, str) or not answers:
        raise ValueError(f"answers must be a non-empty list of bottleneck types, got {answers!r}")

    def wrap(fn: Propose) -> Propose:
        doc = (fn.__doc__ or "").strip().splitlines()
        label = name or fn.__name__
        fn.remedy = Remedy(label, risk, implementation_time_s, fn, description or (doc[0] if doc else label),
                           answers=tuple(answers), evidence=evidence, price=price)
        return fn

    return wrap


@dataclass(frozen=True)
class Strategy:
    """An optimization strategy with the source design's fields; ``actions``
    are concrete knob changes so that ``rollback`` restores the old values.
    ``kind`` is the remedy's name; ``target_metric`` the metric the change is
    judged on (its direction is in :data:`swarmopt.metrics.METRICS`);
    ``price`` the remedy's (:attr:`Remedy.price`); ``co_targets`` a
    bundle's other remedies' targets (:func:`bundle`), on which a bundle the
    judge would revert may still pass; ``monotone``: its target is one its
    remedy cannot make worse (:attr:`Remedy.monotone`; a bundle's, both)."""

    id: str
    type: str
    kind: str
    priority: str
    target_component: str
    description: str
    expected_improvement: float
    implementation_time_s: float
    actions: tuple[KnobChange, ...]
    success_metrics: tuple[str, ...]
    rollback_plan: str
    risk: float
    target_metric: str
    proactive: bool = False
    price: str | None = None
    co_targets: tuple[str, ...] = ()
    monotone: bool = False

    def rollback(self) -> tuple[KnobChange, ...]:
        """The changes that restore every knob this strategy touched."""
        return tuple(c.inverse() for c in reversed(self.actions))


@dataclass(frozen=True)
class Proposal:
    """A selected strategy and whether it needs the Orchestrator's approval."""

    strategy: Strategy
    needs_approval: bool


def bundle(primary: Strategy, other: Strategy) -> Strategy:
    """``primary`` with ``other``'s knob changes added: one change that answers
    both bottlenecks, under ``primary``'s id, type, remedy and target metric,
    at the larger of the two risks and paying the price either names (a retry
    bundled with another remedy still pays its known price in response time;
    :data:`PRICES` has one metric, so the two cannot name different ones),
    with ``other``'s targets other than ``primary``'s as ``co_targets``.
    Raises ValueError when they may not be bundled (:func:`bundle_conflict`)."""
    if (why := bundle_conflict(primary, other)) is not None:
        raise ValueError(f"bundle: {primary.id} and {other.id} {why}")
    actions = primary.actions + other.actions
    co = tuple(dict.fromkeys(m for m in (*primary.co_targets, other.target_metric, *other.co_targets)
                             if m != primary.target_metric))
    return replace(primary, actions=actions, risk=max(primary.risk, other.risk), price=primary.price or other.price,
                   co_targets=co, monotone=primary.monotone and other.monotone and not co,
                   description=f"{primary.description}; with {other.kind}", rollback_plan=rollback_plan(actions))


def bundle_conflict(primary: Strategy, other: Strategy) -> str | None:
    """Why ``other`` may not join ``primary`` in a :func:`bundle`, or None when
    it may: both reactive changes of the same one agent (a bundle is one agent's
    change) that touch different knobs."""
    if primary.proactive or other.proactive:
        return "include a proactive change"
    agents = {c.agent for c in primary.actions}
    if len(agents) != 1 or {c.agent for c in other.actions} != agents:
        return "change different agents"
    if {c.knob for c in primary.actions} & {c.knob for c in other.actions}:
        return "touch the same knob"
    return None


def rollback_plan(actions: Sequence[KnobChange]) -> str:
    """The source design's rollback plan of a strategy that makes ``actions``."""
    return "Restore " + ", ".join(f"{c.knob}={c.old!r}" for c in actions) + " if performance degrades"


def priority_key(s: Strategy) -> tuple:
    """Sort key of the source design's priority order: severity (critical 4 >
    high 3 > medium 2 > low 1), then expected improvement (higher first), then
    implementation time (faster first)."""
    return (-SEVERITY_RANK[s.priority], -s.expected_improvement, s.implementation_time_s)


def _change(agent: str, knobs: Knobs, knob: str, new) -> list[KnobChange] | None:
    old = get_knob(knobs, knob)
    return None if old == new else [KnobChange(agent, knob, old, new)]


TARGET_UTIL = 0.7
"""Worker utilization the worker count is sized for (as :func:`pre_scale`)."""
TARGET_IN_TIME = 0.9
"""Share of inbound messages handled in time the message batch is sized for."""


def _finite(x: float) -> bool:
    return x == x and math.isfinite(x)


def scale_concurrency(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Add workers when queueing for a worker is a real share of the response
    time (wait >= 15% of it; a wait for rate limits is not: workers do not
    shorten it) or workers are >= 70% busy: as many as the gap asks, the HPA's
    desired = ceil(current x observed / target) on utilization, and at least
    the offered load by Little's law (arrival rate x service time / target
    utilization, which a saturated agent's capped utilization understates);
    never fewer than double (the planner bounds the step)."""
    throttle = s.get("throttle_wait_ms_mean", 0.0)
    worker_wait = s["queue_wait_ms_mean"] - (throttle if throttle == throttle else 0.0)
    queueing = worker_wait >= 0.15 * s["response_time_ms_mean"] or s["cpu_percent"] >= 70
    if not queueing:
        return None
    need = 2 * k.max_concurrency
    if _finite(s["cpu_percent"]):
        need = max(need, math.ceil(k.max_concurrency * s["cpu_percent"] / (100.0 * TARGET_UTIL)))
    offered = s.get("arrival_rate_per_s", math.nan) * s.get("service_time_ms_mean", math.nan) / 1000.0
    if _finite(offered):
        need = max(need, math.ceil(offered / TARGET_UTIL))
    return _change(p.id, k, "max_concurrency", min(need, int(KNOB_BOUNDS["max_concurrency"][1])))


def _slowest_uncached_tool(k: Knobs, p: AgentProfile):
    tools = [t for t in p.tools if k.cache_ttl_s.get(t.name, 0.0) < MAX_TTL_S]
    return max(tools, key=lambda t: t.latency_ms_median * (1 + t.error_rate * 10), default=None)


MIN_VISIBLE_GAIN = OptimizerConfig.model_fields["min_improvement"].default
"""The least predicted effect worth a trial: the judge's default minimum improvement (relative for a latency,
absolute for a rate), below which a real effect is reverted as marginal."""


def ttl_raise_gain(view: dict, tool: ToolProfile, k: Knobs, new_ttl_s: float) -> tuple[float, float]:
    """Predicted effect of raising ``tool``'s TTL to ``new_ttl_s`` (s): the
    relative cut of the service time and the absolute drop of the error rate.

    The hit rate moves as the TTL cache model says (:func:`swarmopt.queueing.
    ttl_cache_hit_rate`, the tool's Zipf law at one lookup per decision,
    ``arrival_rate_per_s``), scaled by the observed hit rate over the model's
    at the current TTL (``view["tools"][tool]["hit_rate"]``): a cache that hits
    less than modelled (invalidations, a bypass) gains as much less. The tool's
    calls hold ``hold_share`` of the worker time (:func:`swarmopt.optimizer.
    tuning.tool_view`) in proportion to its misses, so the service time falls
    by ``hold_share x dh / (1 - h)``; each call fails at its observed
    ``error_rate``, so the error rate falls by at most ``error_rate x dh``.
    NaN figures give NaN (nothing to predict from)."""
    seen = view.get("tools", {}).get(tool.name, {})
    rate = view.get("arrival_rate_per_s", math.nan)
    if not _finite(rate):
        return math.nan, math.nan
    probs = zipf_probabilities(tool.keyspace, tool.zipf_s)
    old_m = ttl_cache_hit_rate(probs, rate, k.cache_ttl_s.get(tool.name, 0.0))
    new_m = ttl_cache_hit_rate(probs, rate, new_ttl_s)
    h = seen.get("hit_rate", math.nan)
    if not _finite(h):
        h = old_m
    gain = min(1.0, h * new_m / old_m) - h if old_m > 0 else new_m - h
    dh = max(0.0, gain)
    share, err = seen.get("hold_share", math.nan), seen.get("error_rate", math.nan)
    return (share * dh / (1.0 - h) if h < 1.0 else 0.0), err * dh


def raise_cache_ttl(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Raise the TTL of the slowest, most error-prone tool toward an hour (``MAX_TTL_S``), one step at a time:
    more hits mean fewer slow and failing calls. The planner bounds the step (at least 60 s, at most
    ``max_ttl_step_ratio`` x the old TTL: :func:`swarmopt.optimizer.stabilize.bound_step`). Not proposed when
    even an hour is predicted to cut neither the service time nor the error rate by ``MIN_VISIBLE_GAIN``
    (:func:`ttl_raise_gain`; with no figure to predict from it is proposed): on a model-bound agent (the Narrative
    Architect's style guide holds about 1.5% of its busy time) or a bypassed cache, the trial would cost two cycles
    for an effect the judge cannot see."""
    tool = _slowest_uncached_tool(k, p)
    if tool is None:
        return None
    predicted = [g for g in ttl_raise_gain(s, tool, k, MAX_TTL_S) if _finite(g)]
    if predicted and max(predicted) < MIN_VISIBLE_GAIN:
        return None
    return _change(p.id, k, f"cache_ttl_s.{tool.name}", MAX_TTL_S)


def enable_parallel_tools(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Call independent tools in parallel (max instead of sum of latencies)."""
    return _change(p.id, k, "parallel_tools", True) if len(p.tools) > 1 else None


def _tier_step(k: Knobs, step: int) -> str | None:
    i = TIERS.index(k.model_tier) + step
    return TIERS[i] if 0 <= i < len(TIERS) else None


def faster_model_tier(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """One model tier down (faster and cheaper, lower quality)."""
    tier = _tier_step(k, -1)
    return _change(p.id, k, "model_tier", tier) if tier else None


def stronger_model_tier(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """One model tier up (better quality, slower and dearer)."""
    tier = _tier_step(k, +1)
    return _change(p.id, k, "model_tier", tier) if tier else None


def route_by_complexity(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Per-decision model selection (reference/004 RealTimeOptimizer): simple
    actions on the fast tier, complex ones on the strong tier. Measured on the
    Market Hunter (tests/test_routing.py): +1 point success, -7% response time,
    +30% cost per decision against the standard tier alone."""
    return _change(p.id, k, "tier_routing", True)


RETRY_MAX_CPU_PERCENT = 70.0


def raise_retries(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """One more retry when at least 5% of decisions end in a tool error or
    timeout, unless workers are already busier than ``RETRY_MAX_CPU_PERCENT``:
    a retry is more work, and retrying into a saturated agent turns a partial
    outage into a queue collapse (the reason for retry budgets in Finagle and
    gRPC's retry throttling)."""
    if s["error_rate"] < 0.05 or k.max_retries >= KNOB_BOUNDS["max_retries"][1]:
        return None
    if s["cpu_percent"] >= RETRY_MAX_CPU_PERCENT:
        return None
    return _change(p.id, k, "max_retries", k.max_retries + 1)


def enable_circuit_breaker(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Turn the circuit breaker on when at least 15% of decisions fail on tools."""
    if s["error_rate"] < 0.15 or k.circuit_breaker.enabled or not p.tools:
        return None
    return _change(p.id, k, "circuit_breaker.enabled", True)


def raise_confidence_threshold(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Escalate more low-confidence decisions to review (+0.1, at most 0.9)."""
    new = round(min(0.9, k.confidence_threshold + 0.1), 3)
    return _change(p.id, k, "confidence_threshold", new)


def larger_message_batch(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Grow the inbox batch when fewer than 90% of inbound messages are handled
    in time (the per-batch overhead is paid less often), sized from the gap as
    the HPA sizes replicas: ceil(batch x late share / 10% late), at least
    double (the planner bounds the step)."""
    rate = s["inbox_in_time_rate"]
    if not (rate == rate and rate < TARGET_IN_TIME):
        return None
    need = max(2 * k.message_batch_size, math.ceil(k.message_batch_size * (1 - rate) / (1 - TARGET_IN_TIME)))
    return _change(p.id, k, "message_batch_size", min(int(KNOB_BOUNDS["message_batch_size"][1]), need))


def shed_expired_messages(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Drop the inbox messages that can no longer be handled in time when fewer
    than 90% are: a backlog of expired messages otherwise makes every message
    behind it late too, however fast the inbox (load shedding)."""
    rate = s["inbox_in_time_rate"]
    if not (rate == rate and rate < TARGET_IN_TIME):
        return None
    return _change(p.id, k, "shed_expired", True)


def direct_routes(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Send the agent's messages directly (``topology: mesh``) when they are
    routed through relays: every relay adds a hop's latency and loads the
    relay's inbox (:mod:`swarmopt.sim.topology`), so the direct route is the
    one that cannot be the coordination bottleneck."""
    return _change(p.id, k, "topology", "mesh")


THROTTLE_SHARE = 0.15


def _throttled(s: dict, wait_ms: float) -> bool:
    """Whether a wait for rate limits is a real share (>= ``THROTTLE_SHARE``) of the response time."""
    return wait_ms == wait_ms and wait_ms > 0 and wait_ms >= THROTTLE_SHARE * s["response_time_ms_mean"]


def raise_token_limit(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Double the model-token rate limit (and an explicit burst with it), up to
    the profile's ``token_quota_per_minute``, when decisions wait for tokens
    (>= 15% of the response time): a larger allocation from the providers."""
    tokens = s.get("token_throttle_wait_ms_mean", float("nan"))
    quota, limit = p.token_quota_per_minute, k.max_tokens_per_minute
    if not limit or limit >= quota or not _throttled(s, tokens):
        return None
    new = min(quota, 2 * limit)
    out = _change(p.id, k, "max_tokens_per_minute", new)
    if out and k.token_burst_size:
        out.append(KnobChange(p.id, "token_burst_size", k.token_burst_size,
                              min(int(KNOB_BOUNDS["token_burst_size"][1]), round(k.token_burst_size * new / limit))))
    return out


def raise_call_limit(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Double the call limit of every rate-limited tool below its
    ``call_quota_per_minute`` when decisions wait for tool calls (the
    throttle wait not due to tokens, >= 15% of the response time)."""
    tools = s.get("throttle_wait_ms_mean", float("nan")) - s.get("token_throttle_wait_ms_mean", 0.0)
    if not _throttled(s, tools):
        return None
    out = []
    for t in p.tools:
        limit = k.max_tool_calls_per_minute.get(t.name, 0.0)
        if limit and limit < t.call_quota_per_minute:
            out.append(KnobChange(p.id, f"max_tool_calls_per_minute.{t.name}", limit,
                                  min(t.call_quota_per_minute, 2 * limit)))
    return out or None


CACHE_MIN_EVICTIONS = 0.05
CACHE_TARGET_EVICTIONS = 0.05
CACHE_MAX_MEMORY_PERCENT = 80.0


def raise_cache_size(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Grow the size bound of a tool cache when the caches evict at least 5%
    of their lookups, unless memory is already at ``CACHE_MAX_MEMORY_PERCENT``
    (every entry holds memory): evicted keys are fetched again. Sized from the
    gap (:func:`cache_size_needed`), of the slowest, most error-prone tool whose
    bound is below that size; at least double (the planner bounds the step)."""
    evictions = s.get("cache_eviction_rate", float("nan"))
    if not (evictions == evictions and evictions >= CACHE_MIN_EVICTIONS):
        return None
    if s["memory_percent"] >= CACHE_MAX_MEMORY_PERCENT:
        return None
    need = {t.name: cache_size_needed(t, k, len(p.tools), s["arrival_rate_per_s"]) for t in p.tools
            if 0 < k.max_cache_size.get(t.name, 0) < t.keyspace}
    grow = [t for t in p.tools if need.get(t.name, 0) > k.max_cache_size.get(t.name, 0)]
    tool = max(grow, key=lambda t: t.latency_ms_median * (1 + t.error_rate * 10), default=None)
    if tool is None:
        return None
    size = k.max_cache_size[tool.name]
    return _change(p.id, k, f"max_cache_size.{tool.name}", min(tool.keyspace, max(2 * size, need[tool.name])))


def cache_size_needed(tool: ToolProfile, k: Knobs, n_tools: int, rate_per_s: float) -> int:
    """Entries ``tool``'s cache needs: the capacity at which Che's
    approximation (:func:`swarmopt.queueing.lru_capacity_for_hit_rate`, from the
    tool's Zipf law) leaves ``CACHE_TARGET_EVICTIONS`` x ``n_tools`` of its
    lookups missing (a full cache evicts once per filled miss, and the agent
    looks each of its ``n_tools`` tools up once per decision), at most the mean
    number of keys its TTL keeps at ``rate_per_s`` lookups a second (beyond
    them the TTL, not the bound, decides; Jung et al.'s TTL cache) and its keyspace."""
    probs = zipf_probabilities(tool.keyspace, tool.zipf_s)
    need = lru_capacity_for_hit_rate(probs, max(0.0, 1.0 - CACHE_TARGET_EVICTIONS * n_tools))
    x = probs * rate_per_s * k.cache_ttl_s.get(tool.name, 0.0)
    if _finite(float(x.sum())):
        need = min(need, math.ceil(float(np.sum(x / (1.0 + x)))))
    return need


def lower_cache_ttl(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Halve the largest TTL to free memory, where the caches hold enough of it: halving one TTL frees at most
    half of their entries, so it is proposed only when half the memory they hold (``cache_memory_percent``) is
    at least ``MIN_VISIBLE_GAIN`` of the memory in use (``memory_percent``), or when either is not known. A leak's
    memory no TTL frees: the Narrative Architect's style guide cache holds at most 12.5 MB of its 2,048."""
    cache, used = s.get("cache_memory_percent", math.nan), s.get("memory_percent", math.nan)
    if not k.cache_ttl_s or (_finite(cache) and _finite(used) and cache / 2 < MIN_VISIBLE_GAIN * used):
        return None
    name = max(k.cache_ttl_s, key=k.cache_ttl_s.get)
    if k.cache_ttl_s[name] <= 0:
        return None
    return _change(p.id, k, f"cache_ttl_s.{name}", k.cache_ttl_s[name] / 2)


def pre_scale(s: dict, k: Knobs, p: AgentProfile, peak_rate: float, target_util: float = 0.7,
              tolerance: float = 0.0) -> list[KnobChange] | None:
    """Workers for a forecast peak arrival rate (tasks/s): ceil(peak x mean
    service time / target utilization), proposed only when it exceeds the
    current count by more than ``tolerance`` (HPA's tolerance, relative); the
    planner bounds the step (:func:`swarmopt.optimizer.stabilize.bound_step`)."""
    service_s = s["service_time_ms_mean"] / 1000.0
    if not (service_s == service_s) or peak_rate <= 0:
        return None
    need = min(math.ceil(peak_rate * service_s / target_util), int(KNOB_BOUNDS["max_concurrency"][1]))
    if need <= k.max_concurrency * (1 + tolerance):
        return None
    return _change(p.id, k, "max_concurrency", need)


def prioritize_urgent(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Serve waiting decisions by priority class (non-preemptive; reference/000's
    load balancer) when the most urgent class waits for a worker (>= 15% of the
    response time) under FCFS and the profile gives its actions more than one
    priority class: the urgent decisions stop queueing behind the bulk."""
    wait = s.get("urgent_wait_ms_mean", float("nan"))
    if k.scheduling != "fcfs" or len(set(p.action_mix.priority_classes())) < 2:
        return None
    if not (wait == wait and wait >= 0.15 * s["response_time_ms_mean"]):
        return None
    return _change(p.id, k, "scheduling", "priority")


def isolate_tool(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Give the tool whose calls hold most of the worker time (``tool_hold_index``,
    the same tool in every window looked at) its own pool of workers (a bulkhead,
    reference/000: resource pool separation), when workers queue (wait >= 15% of
    the response time): a slow tool then fills its own pool, and the decisions
    that do not call it keep the rest. The pool gets the tool's share of the busy
    time (``tool_hold_share``) of ``max_concurrency``, rounded, at least one
    worker and one left shared: by Little's law each side keeps the workers it was
    keeping busy, so isolating the tool does not starve its callers."""
    index = s.get("tool_hold_index", float("nan"))
    if not (index == index and index == int(index) and 0 <= index < len(p.tools)):
        return None
    throttle = s.get("throttle_wait_ms_mean", 0.0)
    worker_wait = s["queue_wait_ms_mean"] - (throttle if throttle == throttle else 0.0)
    tool = p.tools[int(index)].name
    if worker_wait < 0.15 * s["response_time_ms_mean"] or k.bulkhead.get(tool, 0) or k.max_concurrency < 2:
        return None
    share = s.get("tool_hold_share", float("nan"))
    size = min(k.max_concurrency - 1 - sum(k.bulkhead.values()),
               max(1, round(k.max_concurrency * share) if share == share else 1))
    return _change(p.id, k, f"bulkhead.{tool}", size) if size >= 1 else None


def enable_work_stealing(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Let the other replicas of the agent's population take its waiting
    decisions (work stealing, reference/000's load balancer;
    :func:`swarmopt.sim.sched.steal`) when its workers queue (wait >= 15% of the
    response time) and it is served FCFS without bulkheads: load skewed onto one
    replica then runs on its siblings' idle workers, which cost nothing new."""
    if p.population is None or k.work_stealing or k.scheduling != "fcfs" or k.bulkhead:
        return None
    throttle = s.get("throttle_wait_ms_mean", 0.0)
    worker_wait = s["queue_wait_ms_mean"] - (throttle if throttle == throttle else 0.0)
    if not worker_wait >= 0.15 * s["response_time_ms_mean"]:
        return None
    return _change(p.id, k, "work_stealing", True)


REMEDIES: dict[str, Remedy] = {r.name: r for r in (
    Remedy("scale_concurrency", 0.5, 120, scale_concurrency, "Add workers to cut queueing", evidence=True,
           monotone=("response_time_ms_mean", "response_time_ms_p50", "urgent_wait_ms_mean", "cpu_percent")),
    Remedy("raise_cache_ttl", 0.3, 120, raise_cache_ttl, "Serve frequent queries from cache",
           wording={"agent_response_time": "Implement caching for frequent queries"}),
    Remedy("enable_parallel_tools", 0.4, 120, enable_parallel_tools, "Parallelize independent operations"),
    Remedy("route_by_complexity", 0.6, 180, route_by_complexity, "Route simple actions to the fast tier",
           wording={"agent_success_rate": "Route complex actions to the strong tier"}),
    Remedy("faster_model_tier", 0.9, 180, faster_model_tier, "Route decisions to a faster model tier"),
    Remedy("raise_retries", 0.5, 180, raise_retries, "Implement better error handling (retries)", evidence=True,
           price="response_time_ms_mean", monotone=("error_rate",)),
    Remedy("enable_circuit_breaker", 0.6, 180, enable_circuit_breaker, "Circuit-break the failing tool", evidence=True),
    Remedy("raise_confidence_threshold", 0.85, 180, raise_confidence_threshold, "Adjust confidence thresholds"),
    Remedy("stronger_model_tier", 0.9, 180, stronger_model_tier, "Route decisions to a stronger model tier"),
    # judged on inbox throughput: while a backlog drains, every message handled is late, so a faster inbox first
    # lowers coordination_score (more late messages counted per window) and helps it only once the backlog is gone
    Remedy("larger_message_batch", 0.3, 180, larger_message_batch, "Reduce message passing overhead",
           target="messages_handled", evidence=True),
    Remedy("shed_expired_messages", 0.3, 60, shed_expired_messages, "Drop inbound messages already past their "
           "deadline", target="inbox_in_time_rate", evidence=True),
    Remedy("cheaper_model_tier", 0.9, 180, faster_model_tier, "Use a cheaper model tier"),
    Remedy("lower_cache_ttl", 0.3, 120, lower_cache_ttl, "Shrink the largest cache"),
    Remedy("pre_scale", 0.5, 300, None, "Adjust resource allocation proactively", monotone=("cpu_percent",)),
    # judged on the worker time hung calls hold: the cut frees it in the tail of the response times, which a
    # median test does not see (+1% to +15% measured on response time where the replayed effect was +33% to +39%)
    Remedy("tighten_timeout", 0.4, 120, tighten_timeout, "Set the timeout from the latency tail (2 x p99)",
           target="timeout_busy_share", evidence=True),
    Remedy("relax_timeout", 0.4, 120, relax_timeout,
           "Stop the timeout cutting healthy attempts (2 x p99)", evidence=True),
    Remedy("tune_breaker_threshold", 0.5, 120, tune_breaker_threshold,
           "Set the breaker's failure-rate threshold at the tools' break-even", evidence=True),
    Remedy("shorten_breaker_open", 0.4, 120, shorten_breaker_open, "Halve the breaker's open duration", evidence=True),
    Remedy("lengthen_breaker_open", 0.4, 120, lengthen_breaker_open,
           "Double the breaker's open duration", evidence=True),
    Remedy("cache_costly_tool", 0.3, 120, cache_costly_tool,
           "Cache the tool that burns most of the budget longer", evidence=True),
    Remedy("grant_workers", 0.4, 120, grant_workers, "Add the workers the Orchestrator granted", evidence=True,
           monotone=("response_time_ms_mean",)),
    Remedy("raise_token_limit", 0.4, 120, raise_token_limit,
           "Raise the model-token rate limit within the quota", evidence=True, monotone=("response_time_ms_mean",)),
    Remedy("raise_call_limit", 0.4, 120, raise_call_limit,
           "Raise the tool-call rate limits within the quotas", evidence=True, monotone=("response_time_ms_mean",)),
    Remedy("raise_cache_size", 0.3, 120, raise_cache_size, "Grow the cache that evicts live entries", evidence=True,
           monotone=("cache_hit_rate", "service_time_ms_mean", "cost_per_decision_usd")),
    Remedy("direct_routes", 0.4, 120, direct_routes, "Route the agent's messages directly (mesh topology)"),
    Remedy("prioritize_urgent", 0.3, 120, prioritize_urgent, "Serve urgent decisions first", evidence=True,
           monotone=("urgent_wait_ms_mean",)),
    Remedy("isolate_tool", 0.4, 120, isolate_tool, "Isolate the tool holding the workers in a bulkhead", evidence=True),
    Remedy("enable_work_stealing", 0.3, 120, enable_work_stealing,
           "Let the population's idle replicas take the waiting decisions", evidence=True,
           monotone=("response_time_ms_mean",)),
)}
"""Every built-in remedy, by name (the ``kind`` of its strategies)."""


@dataclass(frozen=True)
class BottleneckType:
    """What answers one bottleneck type: the metric a strategy for it is judged
    on (a key of :data:`swarmopt.metrics.METRICS`), the remedies by name in the
    order the source design's rules try them, the source design's success
    metrics, the improvement (%) expected before any is measured when the
    bottleneck's impact does not say, and ``judged_on``: remedies judged on
    another metric than ``target``, by name."""

    target: str
    remedies: tuple[str, ...]
    success_metrics: tuple[str, ...]
    expected_pct: float = 10.0
    judged_on: dict[str, str] = field(default_factory=dict, hash=False)

    def metric_of(self, remedy: str) -> str:
        """The metric a change by ``remedy`` answering this type is judged on."""
        return self.judged_on.get(remedy, self.target)


# A remedy that shortens each decision's work (fewer or faster calls, a faster tier) lowers the response time by
# its service time and the shorter queue that follows; its service time shows the gain without the queue's
# autocorrelation, which thins a span's response times to a few dozen independent values.
_SHORTER_WORK = {r: "service_time_ms_mean" for r in (
    "raise_cache_size", "raise_cache_ttl", "enable_parallel_tools", "route_by_complexity", "faster_model_tier")}


TYPES: dict[str, BottleneckType] = {
    "agent_response_time": BottleneckType(
        "response_time_ms_mean",
        ("tighten_timeout", "enable_work_stealing", "scale_concurrency", "raise_cache_size", "raise_cache_ttl",
         "enable_parallel_tools", "route_by_complexity", "faster_model_tier"),
        ("Response time < 2000ms", "Latency variance reduced", "Throughput increased"), judged_on=_SHORTER_WORK),
    "agent_success_rate": BottleneckType(
        "success_rate",
        ("tune_breaker_threshold", "shorten_breaker_open", "relax_timeout", "raise_retries", "raise_cache_ttl",
         "enable_circuit_breaker", "raise_confidence_threshold", "route_by_complexity", "stronger_model_tier"),
        ("Success rate >= 70%", "Fewer failed decisions")),
    "agent_error_rate": BottleneckType(
        "error_rate", ("tune_breaker_threshold", "relax_timeout", "raise_retries", "raise_cache_ttl",
                       "enable_circuit_breaker", "lengthen_breaker_open"), ("Error rate <= 10%",)),
    "coordination_efficiency": BottleneckType(
        "coordination_score",
        ("larger_message_batch", "shed_expired_messages", "direct_routes", "raise_retries",
         "enable_circuit_breaker", "scale_concurrency", "enable_parallel_tools"),
        ("Coordination score >= 60%", "Faster conflict resolution")),
    "cost": BottleneckType(
        "cost_per_decision_usd", ("cheaper_model_tier", "raise_cache_size", "cache_costly_tool"),
        ("Cost per decision within budget",)),
    "cost_burn": BottleneckType(
        "cost_per_success_usd", ("cache_costly_tool", "cheaper_model_tier"), ("Spend within the budget",)),
    "resource_cpu": BottleneckType("cpu_percent", ("scale_concurrency",), ("Worker utilization <= 80%",)),
    "resource_grant": BottleneckType(
        "response_time_ms_mean", ("grant_workers",), ("Response time reduced", "Headroom for more load")),
    "resource_memory": BottleneckType("memory_percent", ("lower_cache_ttl",), ("Memory <= 85%",)),
    "predictive_optimization": BottleneckType(
        "cpu_percent", ("pre_scale",), ("Reduced latency spikes", "Improved resource utilization"), 15.0),
    "coordination_enhancement": BottleneckType(
        "inbox_in_time_rate", ("larger_message_batch",),
        ("Inbound messages handled in time", "Better resource sharing")),
    "rate_limited": BottleneckType(
        "response_time_ms_mean",
        ("raise_token_limit", "raise_call_limit", "route_by_complexity", "faster_model_tier"),
        ("Rate-limit wait < 200ms", "Throughput back at demand")),
    "cache_capacity": BottleneckType(
        "cache_hit_rate", ("raise_cache_size",), ("Evictions < 10% of lookups", "Hit ratio up")),
    "priority_starvation": BottleneckType(
        "urgent_wait_ms_mean", ("prioritize_urgent", "scale_concurrency"),
        ("Urgent decisions' wait < 500ms", "Bulk served behind them")),
    "tool_saturation": BottleneckType(
        "response_time_ms_p50", ("isolate_tool", "scale_concurrency"),
        ("Decisions that do not call the slow tool unaffected", "Median response time back")),
}
"""Bottleneck type -> :class:`BottleneckType`. ``system_performance`` has no
entry: the planner answers it with the worst type of the least healthy agent;
``predictive_optimization`` and ``coordination_enhancement`` are the proactive
strategies' types. ``rate_limited`` routes to another tier in two ways: every
tier's provider has its own token bucket, so routing by complexity spreads the
tokens over three buckets and a faster tier moves them to another one. A
longer TTL answers ``cost`` on the tool the spend goes to
(``cache_costly_tool``; the slowest tool's TTL saves time, not money, and a
model's spend no cache) and does not answer ``coordination_efficiency``: a
coordination request misses its deadline through the messages (storms, relays,
batches), and a decision too slow for its deadline is a response-time
bottleneck, whose remedies include the TTL."""
