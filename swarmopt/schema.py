"""Validated input models: model tiers, tools, knobs, agent profiles, faults, scenarios.

Everything a user writes (YAML under ``agents/`` and ``scenarios/``) is parsed into
these pydantic v2 models; invalid input raises :class:`pydantic.ValidationError`,
which :mod:`swarmopt.loader` turns into one message naming the file, the field and
the allowed values. Units are in the field names (``_s`` seconds, ``_ms``
milliseconds, ``_usd`` US dollars, ``_per_s`` per second).

Every number must be finite, and every field that sizes the simulation's work
(time grid, rates, multipliers, counts, tokens, latencies) has an upper bound,
stated in its description: within them a run's cost is what
:mod:`swarmopt.guard` estimates from rates x load x duration x agents, and
that estimate is checked against a budget before the run starts.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Tier = Literal["fast", "standard", "strong"]
Action = Literal["simple", "standard", "complex"]
ACTIONS: tuple[Action, ...] = ("simple", "standard", "complex")
Scheduling = Literal["fcfs", "priority", "wfq"]
SCHEDULING: tuple[Scheduling, ...] = ("fcfs", "priority", "wfq")
TIERS: tuple[Tier, ...] = ("fast", "standard", "strong")
#: the tiers ``tier_routing`` serves simple and complex actions on (reference/004 RealTimeOptimizer); ordinary actions
#: stay on the agent's ``model_tier``
ROUTED_TIERS: dict[str, Tier] = {"simple": "fast", "complex": "strong"}
LatencyDistribution = Literal["lognormal", "exponential", "deterministic"]
Shape = Literal["mesh", "star", "hierarchical", "ring"]
SHAPES: tuple[str, ...] = ("mesh", "star", "hierarchical", "ring")


#: Upper bounds shared by several fields (see each field's description).
MAX_LATENCY_MS = 3_600_000.0     # one hour: any latency, review or message cost
MAX_WAIT_S = 86_400.0            # one day: deadlines and waits
MAX_RATE_PER_S = 1_000.0         # decisions per second of one agent
MAX_LOAD_FACTOR = 100.0          # a load multiplier (shape or surge)
MAX_FACTOR = 1_000.0             # a latency or price multiplier
MAX_TOKENS = 1_000_000           # tokens per decision attempt (a 1M-token context)
MAX_USD = 10_000.0               # a price (per 1M tokens, per call or per decision)
MAX_MB = 10_000_000.0            # simulated memory sizes (10 TB)
MAX_DURATION_S = 31_536_000.0    # one year of simulated time
MAX_TICKS = 100_000              # duration_s / tick_s
MAX_WINDOWS = 100_000            # duration_s / window_s
MAX_COUNT = 1_000                # replicas of one profile
MAX_AGENTS = 2_000               # agents of a scenario, replicas included
MAX_FAULTS = 10_000              # faults of a scenario, after expansion to replicas
MAX_SEED = 2**63 - 1             # seeds are stored as int64
MAX_TOKENS_PER_MIN = 10**10      # a model-token rate limit or quota (tokens per minute)
MAX_CALLS_PER_MIN = 10**7        # a tool-call rate limit or quota (calls per minute)
MAX_CACHE_ENTRIES = 1_000_000    # a tool cache's size bound (the largest keyspace)
MAX_INSTANTS = 100_000           # instants of one repeating fault within a run
MAX_PRIORITY = 2                 # priority classes 0..2 (one per action class at most)
MAX_WFQ_WEIGHT = 100.0           # a weighted-fair-queuing weight (and 1 / the smallest)


class Strict(BaseModel):
    """Base model: unknown fields are errors, so a typo never passes silently;
    infinities and NaN are errors too (``allow_inf_nan``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelTier(Strict):
    """One model tier: latency, quality and price.

    ``latency_ms_median`` and ``latency_sigma`` parameterize a lognormal per-call
    latency; prices are USD per 1M tokens (the unit LLM vendors publish).
    ``quality`` multiplies the agent's base success probability; ``confidence_mean``
    is the mean self-reported confidence of a decision made on this tier.
    """

    latency_ms_median: float = Field(gt=0, le=MAX_LATENCY_MS, description="at most one hour")
    latency_sigma: float = Field(ge=0, le=3)
    quality: float = Field(gt=0, le=1.5)
    confidence_mean: float = Field(gt=0, lt=1)
    input_usd_per_mtok: float = Field(ge=0, le=MAX_USD, description="at most 10,000")
    output_usd_per_mtok: float = Field(ge=0, le=MAX_USD, description="at most 10,000")


DEFAULT_TIERS: dict[str, ModelTier] = {
    "fast": ModelTier(
        latency_ms_median=350, latency_sigma=0.35, quality=0.93, confidence_mean=0.68,
        input_usd_per_mtok=0.15, output_usd_per_mtok=0.60,
    ),
    "standard": ModelTier(
        latency_ms_median=800, latency_sigma=0.4, quality=1.0, confidence_mean=0.75,
        input_usd_per_mtok=3.0, output_usd_per_mtok=15.0,
    ),
    "strong": ModelTier(
        latency_ms_median=1200, latency_sigma=0.45, quality=1.06, confidence_mean=0.82,
        input_usd_per_mtok=15.0, output_usd_per_mtok=75.0,
    ),
}


class ToolProfile(Strict):
    """A tool an agent calls once per decision attempt.

    Keys requested follow a Zipf law with exponent ``zipf_s`` over ``keyspace``
    keys; a cached key answers in ``hit_latency_ms`` and never errors. A miss
    costs a lognormal latency and ``price_usd_per_call``, and fails with
    probability ``error_rate``. A decision that goes on without the tool
    (an open circuit breaker skipped it) is right with ``fallback_quality``
    times the usual probability. ``call_quota_per_minute`` is the most the
    ``max_tool_calls_per_minute`` knob of this tool may be raised to (the
    account's quota at the tool's provider; 0 = none known, so it is not raised).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    latency_ms_median: float = Field(gt=0, le=MAX_LATENCY_MS, description="at most one hour")
    latency_sigma: float = Field(default=0.5, ge=0, le=3)
    error_rate: float = Field(default=0.01, ge=0, le=1)
    price_usd_per_call: float = Field(default=0.0, ge=0, le=MAX_USD, description="at most 10,000")
    keyspace: int = Field(default=1000, ge=1, le=1_000_000,
                          description="at most 1,000,000 keys: the cache holds 16 bytes per key per agent")
    zipf_s: float = Field(default=1.0, ge=0, le=4)
    hit_latency_ms: float = Field(default=2.0, ge=0, le=MAX_LATENCY_MS, description="at most one hour")
    fallback_quality: float = Field(default=0.85, gt=0, le=1)
    call_quota_per_minute: float = Field(default=0.0, ge=0, le=MAX_CALLS_PER_MIN,
                                         description="the most calls a minute the tool's provider grants the agent "
                                                     "(0: no headroom known), at most 10,000,000")


class CircuitBreaker(Strict):
    """Circuit breaker on every tool of an agent (Resilience4j's count-based model).

    Closed: calls go through; when the last ``window_calls`` calls hold at least
    the minimum number of calls and the failure rate is at least
    ``failure_rate_threshold``, it opens. The minimum is ``minimum_calls`` or, when
    traffic is high, ``minimum_calls_traffic_s`` seconds of calls at the current
    call rate (capped at ``window_calls``), so that a short burst of errors at high
    traffic does not trip it. Open: calls are skipped (the decision proceeds
    without that tool, at reduced quality) for ``open_duration_s``. Half-open:
    ``half_open_calls`` trial calls are let through; their failure rate decides
    closed or open again. If they have not all been made within
    ``max_wait_half_open_s`` (0 = wait forever) it opens again. Sources:
    Resilience4j CircuitBreaker (minimumNumberOfCalls,
    permittedNumberOfCallsInHalfOpenState, maxWaitDurationInHalfOpenState).
    """

    enabled: bool = False
    failure_rate_threshold: float = Field(default=0.5, ge=0.05, le=0.95)
    open_duration_s: float = Field(default=30.0, ge=1, le=600)
    window_calls: int = Field(default=20, ge=2, le=1000)
    minimum_calls: int = Field(default=10, ge=1, le=1000)
    minimum_calls_traffic_s: float = Field(default=10.0, ge=0, le=3600)
    half_open_calls: int = Field(default=3, ge=1, le=100)
    max_wait_half_open_s: float = Field(default=60.0, ge=0, le=3600)


class Knobs(Strict):
    """The configuration the optimizer may change on one agent.

    Bounds are in :data:`KNOB_BOUNDS`; ``cache_ttl_s`` maps tool name to TTL
    (0 = no caching). Autonomy is not a knob: the Orchestrator sets it.

    Rate limits (reference/002 "Optimal Rate Limits": ``max_tokens_per_minute``,
    ``max_tool_calls_per_minute``, ``token_burst_size``) are token buckets in
    front of the agent's workers (:mod:`swarmopt.sim.ratelimit`): one per model
    tier's provider, filling at ``max_tokens_per_minute`` up to
    ``token_burst_size`` tokens (0 = one minute of the limit), and one per tool,
    filling at ``max_tool_calls_per_minute[tool]`` up to one minute of calls;
    0 or absent = unlimited. ``max_cache_size`` maps tool name to the most
    entries its cache holds (LRU eviction under the TTL, :mod:`swarmopt.sim.cache`;
    0 or absent = unbounded; reference/002 ``max_cache_size``).
    ``scheduling`` orders the decisions waiting for a worker (reference/000's
    load balancer): ``fcfs`` by arrival, ``priority`` by the priority class of
    their action (:class:`ActionMix` ``priority``; non-preemptive, FCFS within
    a class), ``wfq`` by weighted fair queuing over the action classes with
    ``wfq_weights`` (absent: 1). ``bulkhead`` maps tool name to a pool of
    workers reserved for the decisions that call that tool (reference/000:
    resource pool separation; 0 or absent = none); the pools come out of
    ``max_concurrency``, which must keep at least one shared worker
    (:mod:`swarmopt.sim.sched`). ``tier_routing`` applies the source's RealTimeOptimizer model-selection rule
    per decision (reference/004 ``_optimize_model_selection``): simple actions on
    the ``fast`` tier, complex ones on the ``strong`` tier, the rest on
    ``model_tier``. ``topology`` is the shape of the message graph this agent's
    outbound messages follow (reference/000's topology optimizer; one of
    :data:`SHAPES`; routes in :mod:`swarmopt.sim.topology`).
    ``work_stealing`` lets the idle workers of the other replicas of this
    agent's population take its waiting decisions (reference/000's load
    balancer: work stealing; :func:`swarmopt.sim.sched.steal`).
    ``shed_expired`` drops, when the inbox handler picks up its next batch,
    every waiting message that could no longer be handled within the inbox
    deadline even alone (load shedding of expired work, as a server drops a
    request whose deadline has passed: Google SRE book, "Handling Overload"),
    so that a backlog of late messages does not make every later one late too.
    ``split`` runs a concurrent canary on the agent: knob path -> value (any
    of :data:`SPLIT_KNOBS`) under which half the agent's work is served while
    the rest keeps these knobs (:meth:`arm`), so the two configurations are
    compared at the same time, under the same load and faults (Kayenta's and
    Argo Rollouts' canary against baseline). Empty: no split.
    """

    model_tier: Tier = "standard"
    max_concurrency: int = Field(default=4, ge=1, le=256)
    cache_ttl_s: dict[str, Annotated[float, Field(ge=0, le=86_400)]] = Field(default_factory=dict)
    parallel_tools: bool = False
    timeout_s: float = Field(default=10.0, ge=0.5, le=120)
    max_retries: int = Field(default=1, ge=0, le=3)
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    message_batch_size: int = Field(default=1, ge=1, le=64)
    shed_expired: bool = False
    confidence_threshold: float = Field(default=0.3, ge=0, le=0.95)
    tier_routing: bool = False
    max_tokens_per_minute: int = Field(default=0, ge=0, le=MAX_TOKENS_PER_MIN)
    token_burst_size: int = Field(default=0, ge=0, le=MAX_TOKENS_PER_MIN)
    max_tool_calls_per_minute: dict[str, Annotated[float, Field(ge=0, le=MAX_CALLS_PER_MIN)]] = Field(
        default_factory=dict)
    max_cache_size: dict[str, Annotated[int, Field(ge=0, le=MAX_CACHE_ENTRIES)]] = Field(default_factory=dict)
    topology: Shape = "mesh"
    scheduling: Scheduling = "fcfs"
    wfq_weights: dict[Action, Annotated[float, Field(ge=1 / MAX_WFQ_WEIGHT, le=MAX_WFQ_WEIGHT)]] = Field(
        default_factory=dict)
    bulkhead: dict[str, Annotated[int, Field(ge=0, le=256)]] = Field(default_factory=dict)
    work_stealing: bool = False
    split: dict[str, Union[Tier, bool, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pools(self) -> "Knobs":
        if sum(self.bulkhead.values()) >= self.max_concurrency:
            raise ValueError(f"bulkhead pools ({sum(self.bulkhead.values())} workers) must leave at least one of "
                             f"max_concurrency ({self.max_concurrency}) to the shared pool")
        return self

    @model_validator(mode="after")
    def _split(self) -> "Knobs":
        if not self.split:
            return self
        families = {k.partition(".")[0] for k in self.split}
        if not families <= set(SPLIT_KNOBS) or "cache_ttl_s" in families and len(self.split) > 1:
            raise ValueError(f"split: knobs {sorted(self.split)} cannot be split; allowed: any of "
                             f"{list(SPLIT_KNOBS[:-1])}, or one 'cache_ttl_s.<tool>' alone")
        self.arm()  # its values must be valid knob values
        return self

    def arm(self) -> "Knobs":
        """The knobs of the split's other arm: these knobs with ``split``'s values set and no split.
        Raises pydantic.ValidationError when a value is out of its knob's bounds."""
        data = self.model_dump()
        for path, value in data.pop("split").items():
            head, _, rest = path.partition(".")
            data[head] = dict(data[head], **{rest: value}) if rest else value
        return Knobs.model_validate(data)


#: Knobs a concurrent split (:attr:`Knobs.split`) may serve two ways at once. The knobs of one decision's work
#: (model call, tools, timeout, review) split by decision: every second decision of a window is served with the
#: split's values; a tool's cache TTL splits by key: the odd keys of its keyspace live under the split's TTL, so
#: the two arms never share an entry.
SPLIT_KNOBS = ("model_tier", "tier_routing", "parallel_tools", "timeout_s", "confidence_threshold", "cache_ttl_s")
KNOB_BOUNDS: dict[str, tuple[float, float]] = {
    "max_concurrency": (1, 256),
    "cache_ttl_s": (0, 86_400),
    "timeout_s": (0.5, 120),
    "max_retries": (0, 3),
    "message_batch_size": (1, 64),
    "confidence_threshold": (0, 0.95),
    "circuit_breaker.failure_rate_threshold": (0.05, 0.95),
    "circuit_breaker.open_duration_s": (1, 600),
    "max_tokens_per_minute": (0, MAX_TOKENS_PER_MIN),
    "token_burst_size": (0, MAX_TOKENS_PER_MIN),
    "max_tool_calls_per_minute": (0, MAX_CALLS_PER_MIN),
    "max_cache_size": (0, MAX_CACHE_ENTRIES),
    "wfq_weights": (1 / MAX_WFQ_WEIGHT, MAX_WFQ_WEIGHT),
    "bulkhead": (0, 255),
}
# the order of a categorical knob's values, which the stabilizer reads as "raising" or "lowering" it (FCFS first:
# any ordering by class raises scheduling)
KNOB_LEVELS: dict[str, tuple[str, ...]] = {"model_tier": TIERS, "topology": SHAPES, "scheduling": SCHEDULING}
MAX_ATTEMPTS = int(KNOB_BOUNDS["max_retries"][1]) + 1


class Link(Strict):
    """A downstream edge of the message topology: a decision sends a message to
    ``to`` with ``probability``. When ``to`` is a population, ``replicas`` lists
    its members (set by the loader) and each message goes to one of them,
    uniformly."""

    to: str = Field(max_length=64)
    probability: float = Field(ge=0, le=1)
    replicas: list[str] = Field(default_factory=list)

    @property
    def receivers(self) -> list[str]:
        """The agent ids a message on this link may go to."""
        return self.replicas or [self.to]


class ActionMix(Strict):
    """Share of an agent's decisions that are simple or complex actions (the rest
    are ordinary). The source's examples: simple = click, type, scroll, wait;
    complex = analyze, plan, decide, evaluate (reference/004 RealTimeOptimizer).
    A tier's quality gap to ``standard`` counts ``simple_weight`` times on a
    simple action and ``complex_weight`` times on a complex one. ``priority``
    gives each action class its priority class (0 = most urgent; reference/000's
    load balancer: task priorities), which the ``scheduling`` knob serves by."""

    def priority_classes(self) -> tuple[int, int, int]:
        """The priority class of each action class, in the order of :data:`ACTIONS`."""
        return tuple(self.priority.get(a, 0) for a in ACTIONS)

    simple: float = Field(default=0.4, ge=0, le=1)
    complex: float = Field(default=0.2, ge=0, le=1)
    simple_weight: float = Field(default=0.25, ge=0, le=5)
    complex_weight: float = Field(default=2.0, ge=0, le=5)
    priority: dict[Action, Annotated[int, Field(ge=0, le=MAX_PRIORITY)]] = Field(
        default_factory=dict, description="priority class per action class (0 = most urgent, at most 2; "
                                          "absent: 0); empty: one class")

    @model_validator(mode="after")
    def _shares(self) -> "ActionMix":
        if self.simple + self.complex > 1.0 + 1e-9:
            raise ValueError(f"simple + complex must be <= 1, got {self.simple + self.complex:g}")
        return self


class ReviewDesk(Strict):
    """The review queue of an agent that reviews escalated decisions (the
    Strategic Orchestrator's ``review`` section).

    Every escalated decision of the scenario becomes a review task in this
    queue: FCFS over ``workers`` reviewers, each review a lognormal
    ``service_ms_median`` x exp(``service_sigma`` z) with z the decision's own
    standard normal (:mod:`swarmopt.sim.review`).
    """

    workers: int = Field(default=3, ge=1, le=256, description="from 1 to 256")
    service_ms_median: float = Field(default=1500.0, gt=0, le=MAX_LATENCY_MS, description="at most one hour")
    service_sigma: float = Field(default=0.5, ge=0, le=3)


class AgentProfile(Strict):
    """One monitored agent: its workload, tools, model tier and place in the topology.

    Rates are per second of simulated time. ``base_success`` is the probability a
    decision with a valid (non-failed) model+tool attempt is right on the
    ``standard`` tier. A decision escalates to the Orchestrator's review with
    probability ``1 - autonomy`` or when its confidence is below the
    ``confidence_threshold`` knob and succeeds with ``review_success``. The
    review is a task in the queue of the scenario's reviewer (the agent whose
    profile has a ``review`` section, :class:`ReviewDesk`); in a scenario with
    no reviewer it is a fixed lognormal delay of median ``review_ms_median``.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)
    name: str = Field(max_length=200)
    role: str = Field(default="", max_length=2000)
    base_rate_per_s: float = Field(gt=0, le=MAX_RATE_PER_S,
                                   description="at most 1,000 decisions/s (3.6 million an hour)")
    prompt_tokens: int = Field(default=1500, ge=1, le=MAX_TOKENS, description="at most 1,000,000")
    output_tokens: int = Field(default=300, ge=1, le=MAX_TOKENS, description="at most 1,000,000")
    base_success: float = Field(default=0.85, gt=0, le=1)
    latency_distribution: LatencyDistribution = "lognormal"
    tools: list[ToolProfile] = Field(default_factory=list, max_length=32, description="at most 32 tools")
    downstream: list[Link] = Field(default_factory=list, max_length=64, description="at most 64 links")
    network_latency_ms: float = Field(default=20.0, ge=0, le=MAX_LATENCY_MS, description="at most one hour")
    coordination_deadline_s: float = Field(default=5.0, gt=0, le=MAX_WAIT_S, description="at most one day")
    inbox_deadline_s: float = Field(default=2.0, gt=0, le=MAX_WAIT_S, description="at most one day")
    message_overhead_ms: float = Field(default=120.0, ge=0, le=MAX_LATENCY_MS, description="at most one hour")
    message_cost_ms: float = Field(default=20.0, ge=0, le=MAX_LATENCY_MS, description="at most one hour")
    batch_max_wait_s: float = Field(default=1.0, ge=0, le=MAX_WAIT_S, description="at most one day")
    conflict_resolution_ms: float = Field(default=400.0, ge=0, le=MAX_LATENCY_MS, description="at most one hour")
    resources: int = Field(default=50, ge=1, le=1_000_000,
                           description="distinct resources its messages are about, at most 1,000,000")
    autonomy: float = Field(default=0.85, ge=0, le=1)
    review_ms_median: float = Field(default=2500.0, ge=0, le=MAX_LATENCY_MS, description="at most one hour")
    review_success: float = Field(default=0.93, ge=0, le=1)
    review: ReviewDesk | None = Field(default=None, description="set on the agent that reviews escalated decisions")
    cost_budget_usd_per_decision: float = Field(default=0.05, gt=0, le=MAX_USD, description="at most 10,000")
    memory_base_mb: float = Field(default=400.0, ge=0, le=MAX_MB, description="at most 10 TB")
    memory_capacity_mb: float = Field(default=2048.0, gt=0, le=MAX_MB, description="at most 10 TB")
    action_mix: ActionMix = ActionMix()
    population: str | None = Field(default=None, max_length=64,
                                   description="the population this agent belongs to (the profile's id for count "
                                               "> 1, unless set): its members may share work (knob work_stealing)")
    token_quota_per_minute: int = Field(default=0, ge=0, le=MAX_TOKENS_PER_MIN,
                                        description="at most 10,000,000,000 (0: no headroom known)")
    knobs: Knobs = Knobs()

    @model_validator(mode="after")
    def _cache_keys_are_tools(self) -> "AgentProfile":
        names = {t.name for t in self.tools}
        if len(names) != len(self.tools):
            raise ValueError("tools: names must be unique")
        for knob in ("cache_ttl_s", "max_tool_calls_per_minute", "max_cache_size"):
            unknown = set(getattr(self.knobs, knob)) - names
            if unknown:
                raise ValueError(f"knobs.{knob}: unknown tool(s) {sorted(unknown)}; allowed: {sorted(names)}")
        quota = self.token_quota_per_minute
        if quota and self.knobs.max_tokens_per_minute > quota:
            raise ValueError(f"knobs.max_tokens_per_minute ({self.knobs.max_tokens_per_minute:,}) exceeds "
                             f"token_quota_per_minute ({quota:,}); allowed: at most the quota")
        for t in self.tools:
            limit = self.knobs.max_tool_calls_per_minute.get(t.name, 0.0)
            if t.call_quota_per_minute and limit > t.call_quota_per_minute:
                raise ValueError(f"knobs.max_tool_calls_per_minute.{t.name} ({limit:g}) exceeds the tool's "
                                 f"call_quota_per_minute ({t.call_quota_per_minute:g}); allowed: at most the quota")
        return self


class LoadShape(Strict):
    """Multiplier on every agent's arrival rate over time.

    ``constant``: ``multiplier``. ``diurnal``: ``multiplier * (1 + amplitude *
    sin(2 pi (t - phase_s) / period_s))``. ``surge``: ``multiplier``, times
    ``surge_factor`` within [``start_s``, ``end_s``). ``ramp``: linear from
    ``multiplier`` at ``start_s`` to ``ramp_to`` at ``end_s``, flat outside.
    Each multiplier is at most 100, so the load is at most 10,000 times the
    profiles' rates (the task budget of :mod:`swarmopt.guard` decides the rest).
    """

    kind: Literal["constant", "diurnal", "surge", "ramp"] = "constant"
    multiplier: float = Field(default=1.0, gt=0, le=MAX_LOAD_FACTOR, description="at most 100")
    amplitude: float = Field(default=0.5, ge=0, lt=1)
    period_s: float = Field(default=86_400.0, ge=1, le=MAX_DURATION_S, description="from 1 s to one year")
    phase_s: float = Field(default=0.0, ge=-MAX_DURATION_S, le=MAX_DURATION_S, description="within one year")
    start_s: float = Field(default=0.0, ge=0, le=MAX_DURATION_S, description="at most one year")
    end_s: float = Field(default=0.0, ge=0, le=MAX_DURATION_S, description="at most one year")
    surge_factor: float = Field(default=2.0, gt=0, le=MAX_LOAD_FACTOR, description="at most 100")
    ramp_to: float = Field(default=2.0, gt=0, le=MAX_LOAD_FACTOR, description="at most 100")


class _FaultBase(Strict):
    at_s: float = Field(ge=0, le=MAX_DURATION_S, description="start time in simulated seconds, at most one year")
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S,
                                     description="None: until the end; at most one year")
    target: str = Field(max_length=64, description="agent id (or population id) the fault hits")


class LatencyFault(_FaultBase):
    """Multiplies the latency of ``tool`` (or of the model call when ``tool`` is None)."""

    kind: Literal["latency"]
    tool: str | None = Field(default=None, max_length=64)
    factor: float = Field(gt=0, le=MAX_FACTOR, description="at most 1,000")


class LatencyTailFault(_FaultBase):
    """Grows the latency tail of ``tool`` (of the model call when ``tool`` is
    None): the slowest ``share`` of its calls take ``factor`` times as long
    (hung connections, a slow shard), the rest are unchanged. Which calls are
    in the tail is decided by the call's own latency draw (its standard normal
    above the ``1 - share`` quantile), so the fault draws no random number and
    leaves the median alone while p99 grows."""

    kind: Literal["latency_tail"]
    tool: str | None = Field(default=None, max_length=64)
    share: float = Field(gt=0, lt=1, description="share of calls in the tail, in (0, 1)")
    factor: float = Field(gt=0, le=MAX_FACTOR, description="at most 1,000")


class ErrorSpikeFault(_FaultBase):
    """Adds ``error_rate`` to the failure probability of ``tool``'s calls."""

    kind: Literal["error_spike"]
    tool: str = Field(max_length=64)
    error_rate: float = Field(gt=0, le=1)


class LoadSurgeFault(_FaultBase):
    """Multiplies the target's arrival rate by ``factor``."""

    kind: Literal["load_surge"]
    factor: float = Field(gt=0, le=MAX_LOAD_FACTOR, description="at most 100")


class PriceChangeFault(_FaultBase):
    """Multiplies the target's model token prices by ``factor``, or with
    ``tool`` the price per call of that tool (a paid API raising its price)."""

    kind: Literal["price_change"]
    factor: float = Field(gt=0, le=MAX_FACTOR, description="at most 1,000")
    tool: str | None = Field(default=None, max_length=64)


class MemoryLeakFault(_FaultBase):
    """Grows the target's simulated memory by ``mb_per_min``; above 90% of
    capacity every service time stretches (swap/GC pressure)."""

    kind: Literal["memory_leak"]
    mb_per_min: float = Field(gt=0, le=MAX_MB, description="at most 10 TB a minute")


class CoordinationStormFault(_FaultBase):
    """Floods the target's inbox with ``messages_per_s`` extra messages."""

    kind: Literal["coordination_storm"]
    messages_per_s: float = Field(gt=0, le=MAX_RATE_PER_S, description="at most 1,000 messages/s")


class CacheBypassFault(_FaultBase):
    """``tool``'s answers can no longer be cached (its data changes on every
    call, e.g. a live feed): every lookup misses, whatever the TTL."""

    kind: Literal["cache_bypass"]
    tool: str = Field(max_length=64)


class RateLimitFault(_FaultBase):
    """A provider lowers the target's rate limit to ``factor`` of its configured
    value (a downgraded usage tier, a provider incident): the model-token limit
    at ``tier``'s provider (every tier's when ``tier`` and ``tool`` are None), or
    ``tool``'s call limit. It cuts both the bucket's rate and its burst; a limit
    raised later is cut by the same factor. Needs the limit it cuts to be set
    (``knobs.max_tokens_per_minute`` or ``knobs.max_tool_calls_per_minute``)."""

    kind: Literal["rate_limit"]
    tier: Tier | None = None
    tool: str | None = Field(default=None, max_length=64)
    factor: float = Field(gt=0, le=1, description="the share of the limit left, in (0, 1]")

    @model_validator(mode="after")
    def _one_provider(self) -> "RateLimitFault":
        if self.tier is not None and self.tool is not None:
            raise ValueError("give tier (a model provider) or tool, not both")
        return self


class CacheInvalidationFault(_FaultBase):
    """Invalidates cached entries of ``tool`` (every tool's when None) at
    ``at_s``, and again every ``every_s`` seconds while the fault lasts when
    ``every_s`` is given (an invalidation storm). ``share`` is the share of the
    keyspace a pattern matches (reference/002 ``invalidate_cache(tool_name=...,
    pattern=...)``): 1 drops every entry, less drops the entries of a fixed,
    evenly spread subset of the keys (:func:`swarmopt.sim.cache.pattern_keys`)."""

    kind: Literal["cache_invalidation"]
    tool: str | None = Field(default=None, max_length=64)
    share: float = Field(default=1.0, gt=0, le=1)
    every_s: float | None = Field(default=None, ge=1, le=MAX_DURATION_S,
                                  description="None: once; else from 1 s to one year")


class CrashFault(_FaultBase):
    """The target's actor is down: no worker serves for ``duration_s``; tasks queue.

    ``mode: process`` also kills the real process of the Ray actor hosting the
    target at ``at_s`` (the driver restarts it from its last checkpoint and
    replays, see :class:`swarmopt.runtime.driver.Driver`); on the local runtime
    it acts as ``simulated``."""

    kind: Literal["crash"]
    duration_s: float = Field(gt=0, le=MAX_DURATION_S, description="at most one year")
    mode: Literal["simulated", "process"] = "simulated"


class RelayDelayFault(_FaultBase):
    """Every hop that a message makes through the target (a routing agent) takes ``extra_ms`` longer."""

    kind: Literal["relay_delay"]
    extra_ms: float = Field(gt=0, le=MAX_WAIT_S * 1000.0, description="at most one day")


Fault = Annotated[
    Union[
        LatencyFault, LatencyTailFault, ErrorSpikeFault, LoadSurgeFault, PriceChangeFault,
        MemoryLeakFault, CoordinationStormFault, CacheBypassFault, RateLimitFault, CacheInvalidationFault,
        CrashFault, RelayDelayFault,
    ],
    Field(discriminator="kind"),
]


_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")


def _import_path(value: str) -> str:
    if not _IMPORT_PATH.fullmatch(value):
        raise ValueError("must be an import path 'module:attribute' (e.g. 'my_pkg.rules:queue_rule')")
    return value


def _policy_name(value: str) -> str:
    # a built-in policy's name (checked against swarmopt.policies.POLICIES when the plug-ins are resolved) or a path
    if not (re.fullmatch(r"[a-z_]+", value) or _IMPORT_PATH.fullmatch(value)):
        raise ValueError("must be a built-in policy's name or an import path 'module:attribute'")
    return value


ImportPath = Annotated[str, AfterValidator(_import_path)]


class Thresholds(Strict):
    """Bottleneck thresholds. Defaults are the source design's
    (``reference/001``: response time > 2000 ms high; success < 70% medium,
    < 50% critical; coordination < 60% medium; system score < 75% high, < 60%
    critical) plus the design's resource rules (CPU > 80%, memory > 85%), and
    the serving mechanisms of reference/002: a mean wait for rate limits over
    ``throttle_wait_ms`` per decision, LRU evictions over ``cache_eviction_rate``
    of the cache lookups."""

    response_time_ms: float = Field(default=2000.0, gt=0)
    success_rate_medium: float = Field(default=0.70, ge=0, le=1)
    success_rate_critical: float = Field(default=0.50, ge=0, le=1)
    coordination_medium: float = Field(default=0.60, ge=0, le=1)
    system_high: float = Field(default=0.75, ge=0, le=1)
    system_critical: float = Field(default=0.60, ge=0, le=1)
    error_rate_medium: float = Field(default=0.10, ge=0, le=1)
    error_rate_high: float = Field(default=0.25, ge=0, le=1)
    throttle_wait_ms: float = Field(default=200.0, gt=0, description="mean wait for rate limits per decision")
    cache_eviction_rate: float = Field(default=0.10, gt=0, le=1, description="LRU evictions per cache lookup")
    urgent_wait_ms: float = Field(default=500.0, gt=0, description="mean worker wait of the most urgent "
                                                                    "priority class")
    tool_hold_share: float = Field(default=0.75, gt=0, le=1, description="share of the workers' busy time one "
                                                                           "tool's calls hold, when workers queue")
    cost_budget_factor: float = Field(default=1.5, gt=0, description="x the profile budget")
    cpu_percent: float = Field(default=80.0, gt=0, le=100)
    memory_percent: float = Field(default=85.0, gt=0, le=100)
    min_decisions: int = Field(default=20, ge=0, description="minimum-traffic guard")


class OptimizerConfig(Strict):
    """The Performance Optimizer's policy and cycle.

    ``policy``: ``thompson`` (the default: discounted Thompson sampling over the
    measured outcomes of the remedies, the built-in policy with the best
    measured decision quality on the fault library, README "Decision quality"),
    ``rules`` (the source design's fixed rules), ``monitor`` (detect and report
    only), or the import path ``module:attribute``
    of a plug-in policy (:mod:`swarmopt.plugins`). ``rules`` and ``remedies``:
    import paths of plug-in detection rules and remedies. ``recommend_only``
    plans and reports but changes nothing.
    A change is judged on ``measure_windows`` windows before and after it takes
    effect by the canary judge (:func:`swarmopt.optimizer.measure.judge_change`),
    at later looks against as many windows before it as after it while the
    agent's configuration stood, its bottleneck was detected and the load was
    steady (:meth:`swarmopt.optimizer.trial.Trial.before_start_s`):
    the keep-or-rollback decision has a false-alarm budget ``alpha`` (a change
    that changes nothing is kept or rolled back with probability <= alpha),
    needs a minimum relative improvement ``min_improvement`` to keep a change,
    and at least ``min_samples`` effective tasks on each side (fewer is
    inconclusive). Guardrails: success rate may drop by at most
    ``guardrail_success_drop`` where it ends below the SLO's limit
    (``thresholds.success_rate_medium``; above it the change spends room the
    SLO leaves), error rate rise by at most
    ``guardrail_error_rise`` (absolute), cost per decision rise by at most
    ``guardrail_cost_rise`` (relative), and a change judged on another metric
    may not take the mean response time from within the SLO's limit
    (``thresholds.response_time_ms``) past it. A change by a remedy with a known
    price (a retry raise: response time) is rolled back when its mean response
    time rose by more than ``tolerance`` and ended past the setpoint, on the
    estimate alone (:func:`swarmopt.optimizer.measure.price_paid`). The optimizer's autonomy rises by
    ``autonomy_step_up`` after ``autonomy_raise_after`` consecutive kept
    changes with no rollback and falls by ``autonomy_step_down`` at once on a
    rollback, within [``min_autonomy``, ``max_autonomy``].

    Alerting and stabilization: a bottleneck must breach over the last
    ``long_windows`` windows and over the last twelfth of them
    (:func:`swarmopt.optimizer.detect.short_span`); no action within
    ``tolerance`` of a threshold; no knob reversal within
    ``stabilization_window_s`` (0 disables it; see
    :mod:`swarmopt.optimizer.stabilize`). Level shifts against an agent's own
    history beyond robust z ``anomaly_z`` raise ``anomaly.detected``.
    ``proactive`` False plans reactive strategies only (no predictive
    pre-scaling, no coordination enhancement).
    ``bundle``: an agent with several bottlenecks in one cycle (latency,
    success and coordination under a load ramp) gets one change that answers
    them all, the remedy of the most urgent bottleneck with those of the others
    that touch other knobs (:func:`swarmopt.optimizer.strategies.bundle`),
    judged on the first remedy's target with the guardrails on the rest (a
    bundle that would be reverted on it is kept when another remedy's target
    passes, each tested at alpha / their number); False:
    one remedy per change, the others deferred to later cycles, so a cure that
    needs several knobs is found one trial (5 to 25 windows) at a time.
    Setpoint: the optimizer acts to bring a metric under its threshold with a
    ``margin`` (target = threshold x (1 - margin), the shortfall budget of a
    rate and a spend budget's burn-rate alerts likewise), and ``tolerance`` is a band around that target, so it acts
    before the SLO breaks, not 10% after. One change moves a numeric knob by at
    most ``max_step_ratio`` (sized from the gap to the target, as the HPA sizes
    replicas), a cache TTL by at most ``max_ttl_step_ratio``: a TTL cache's hit
    rate on a Zipf keyspace grows about as the TTL's logarithm, each doubling
    adding some 8 points on the profiles' tools
    (:func:`swarmopt.queueing.ttl_cache_hit_rate`), so steps of 4 took three
    trials from 30 s to the 1,920 s a cache scenario's cure needs. A change
    whose judge finds no data (inconclusive) is measured on
    for more windows, up to ``max_measure_windows`` after it took effect, then
    reverted without blame; so is a marginal one whose estimate is a gain,
    and past ``max_measure_windows`` it is measured on, up to ``extend_windows``
    more, only while its deciding test's p-value is below
    ``promising_p`` (the promising zone of an adaptive design: measuring on
    the rest would hold the agent's next remedy back for little). The alpha
    is spent over all ``(max_measure_windows + extend_windows) //
    measure_windows`` looks (:func:`swarmopt.optimizer.trial.look_alpha`).
    With ``trend_adjust`` the window values of a target are compared by
    segmented regression, adjusted for a trend and for the arrival rate, so
    that a leak or a load ramp running through a change is not read as its
    effect (:func:`swarmopt.optimizer.measure.adjusted_measure`). Where the
    per-task values are too autocorrelated to judge (a backlog) the window
    means decide (``batch_means``): by default (``throughput``), where a
    queue waited at every window end before and after the change, the
    windows' ``throughput_per_s`` is compared instead (the bottleneck's
    capacity, flat under a backlog, where the latency's window means are a
    random walk with drift), else the window means as the window values
    above; ``levels`` compares the window means always (the default before
    2026-12-05: 45 of 200 A/A no-ops decided under overload), ``increments``
    by their increments (:func:`swarmopt.optimizer.measure.drift_measure`:
    valid where a backlog grows all along, but measured worse on the fault
    library; docs/decision-quality.md).
    ``measure_reverts``: the undo of a reverted change whose estimate was a
    gain (too noisy to pass) is measured like a change, and the change restored
    when undoing it made its target significantly worse; the agent takes no new
    change meanwhile. The undo of a revert that showed no gain, and a
    rollback's, are not measured (neither is ever restored). False: no undo is
    measured. Unmeasured, the windows under a reverted change count as the
    configuration before it, so the next change may follow at once.
    ``cache_settle``: a change of cache TTLs is judged on the windows from one
    TTL (the longer of old and new) after it took effect: before that the
    cache still serves entries filled under the old TTL and the hit rate has
    not reached its new level, so the first windows understate the change
    (:func:`swarmopt.optimizer.trial.settle_windows`); the horizon counts the
    judged windows.
    ``at_horizon``: what happens to a change still undecided (marginal, no
    guardrail breach) once it is no longer measured on: ``revert`` (a change that
    cannot be told from no change is undone once), ``keep_gain`` (kept when
    the deciding test's estimate is a gain, reverted otherwise: the decision
    that minimizes the expected loss when a missed gain and a kept loss of the
    same size cost the same; :func:`swarmopt.optimizer.trial.decide_trial`) or
    ``keep_promising`` (kept when it is still in the promising zone at the last
    look of its extension, p < ``promising_p``: a keep at that level after
    ``max_measure_windows + extend_windows`` windows; opt-in, README "Decision
    quality").
    ``keep_monotone``: whatever ``at_horizon`` says, a change of a remedy that
    cannot make its target worse (:attr:`swarmopt.optimizer.strategies.Remedy.monotone`:
    workers on the response time or CPU, a rate limit, an LRU cache's size, a
    retry on the error rate) that is still in the promising zone at the last
    look is kept: only the size of its gain was in question, and a no-op is kept
    at most ``promising_p`` of the time.
    ``tail_unless_mean``: a ``*_mean`` target judged by Mann-Whitney is not
    failed on a tail or a spread that grew when its mean is significantly better
    (:func:`swarmopt.optimizer.canary.judge_latency`'s ``mean_target``): the
    checks close the median test's blind spots to a worse mean; routing by
    complexity makes the response times bimodal, a higher p99 with a lower mean.
    ``judge_design``: a change is judged on the ``measure_windows`` windows
    before it and after it; one the judge cannot decide yet is measured on
    with more after-windows (``before_after``) or, with ``switchback``, by
    running the old and the new configuration in alternating blocks of
    ``switchback_block`` windows (``measure_windows`` of each per look, each
    block judged on its last window) and comparing the two arms, so both see
    the same fault, load and time; changes of cache knobs, whose effect
    outlives a window, are measured on before/after
    (:mod:`swarmopt.optimizer.switchback`); with ``split``, by a concurrent
    canary: the old values serve every second decision (a cache TTL: the odd
    keys) for ``2 x measure_windows`` windows and the two arms' per-task
    samples are compared (:mod:`swarmopt.optimizer.split`; changes it cannot
    split are measured on before/after).
    """

    policy: Annotated[str, AfterValidator(_policy_name)] = "thompson"
    rules: list[ImportPath] = Field(default_factory=list)
    remedies: list[ImportPath] = Field(default_factory=list)
    proactive: bool = True
    long_windows: int = Field(default=12, ge=1, le=1440)
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    margin: float = Field(default=0.15, ge=0, lt=1, description="setpoint = threshold x (1 - margin)")
    max_step_ratio: float = Field(default=4.0, ge=1, description="largest factor one change moves a knob by")
    max_ttl_step_ratio: float = Field(default=16.0, ge=1, description="largest factor one change moves a cache TTL by")
    bundle: bool = Field(default=True, description="one change per agent answers all of its bottlenecks")
    max_measure_windows: int = Field(default=15, ge=2, le=240, description="horizon an inconclusive change is "
                                                                           "measured up to")
    extend_windows: int = Field(default=10, ge=0, le=240, description="windows past max_measure_windows a "
                                "promising change is measured on (promising_p)")
    promising_p: float = Field(default=0.05, gt=0, lt=1, description="a marginal gain is promising while its "
                               "deciding test's p-value is below this")
    stabilization_window_s: float = Field(default=3600.0, ge=0)
    anomaly_z: float = Field(default=5.0, gt=0)
    recommend_only: bool = False
    cycle_s: float = Field(default=300.0, gt=0)
    measure_windows: int = Field(default=5, ge=2, le=60)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_improvement: float = Field(default=0.02, ge=0, lt=1)
    min_samples: int = Field(default=20, ge=1, description="effective tasks per side, else inconclusive")
    rollback_time_s: float = Field(default=60.0, gt=0)
    initial_autonomy: float = Field(default=0.80, ge=0, le=1)
    min_autonomy: float = Field(default=0.80, ge=0, le=1)
    max_autonomy: float = Field(default=0.95, ge=0, le=1)
    autonomy_step_up: float = Field(default=0.025, ge=0, le=0.5)
    autonomy_raise_after: int = Field(default=3, ge=1, le=100, description="consecutive kept changes")
    autonomy_step_down: float = Field(default=0.05, ge=0, le=0.5)
    guardrail_success_drop: float = Field(default=0.03, ge=0, le=1)
    guardrail_error_rise: float = Field(default=0.03, ge=0, le=1)
    guardrail_cost_rise: float = Field(default=0.5, ge=0, description="relative, per decision")
    thresholds: Thresholds = Thresholds()
    trend_adjust: bool = Field(default=True, description="judge window values by segmented regression on the "
                                                          "trend and the arrival rate, not by Welch's test")
    batch_means: Literal["levels", "increments", "throughput"] = Field(
        default="throughput", description="window means that judge a target whose per-task values are too "
        "autocorrelated (a backlog): by their levels as window values are, or by their increments; throughput: "
        "the windows' throughput instead where a queue waited at every window end before and after the change")
    rank_test: Literal["thinned", "effective"] = Field(
        default="effective", description="a per-task target judged by Mann-Whitney on every value with the test's "
        "variance that of the effective sample sizes, or on the series thinned to their effective size (thinned)")
    control_variate: bool = Field(
        default=True, description="judge a change of parallel tools or of retries alone on its target less the "
        "part of it the decisions' own record shows under the old value (their work, their first attempts: a "
        "regression adjustment, CUPED), by the adjusted means")
    measure_reverts: bool = Field(default=True, description="measure the undo of a reverted change whose estimate "
                                  "was a gain (and restore the change if undoing it made its target worse) before "
                                  "the agent's next change; false: the next change may follow at once")
    cache_settle: bool = Field(default=False, description="judge a change of cache TTLs from one TTL after it took "
                                                          "effect, once the hit rate has settled")
    at_horizon: Literal["revert", "keep_gain", "keep_promising"] = Field(
        default="revert", description="an undecided change no longer measured on: reverted, kept if its estimate "
                                      "is a gain, or kept if it is still promising after extend_windows")
    keep_monotone: bool = Field(default=True, description="keep a change of a remedy that cannot make its target "
                                "worse (Remedy.monotone) still promising at the last look of its horizon")
    tail_unless_mean: bool = Field(default=True, description="a grown tail or spread does not fail a change "
                                   "whose mean target (a *_mean metric) improved significantly")
    judge_design: Literal["before_after", "switchback", "split"] = Field(
        default="before_after", description="how an undecided change is measured on: more after-windows, the old "
                                          "and the new configuration in alternating blocks, or both at once")
    switchback_block: int = Field(default=1, ge=1, le=10, description="windows per switchback block, the last judged")

    @model_validator(mode="after")
    def _autonomy_order(self) -> "OptimizerConfig":
        if not self.min_autonomy <= self.initial_autonomy <= self.max_autonomy:
            raise ValueError("need min_autonomy <= initial_autonomy <= max_autonomy")
        return self


def _autonomy_policy_name(value: str) -> str:
    from swarmopt.autonomy import AUTONOMY_POLICIES  # the registry imports this module

    if value not in AUTONOMY_POLICIES and not _IMPORT_PATH.fullmatch(value):
        raise ValueError(f"unknown autonomy rule '{value}'; allowed: {', '.join(AUTONOMY_POLICIES)} "
                         "or an import path 'module:attribute'")
    return value


class OrchestratorConfig(Strict):
    """Approval and autonomy rules of the Strategic Orchestrator.

    A proposal is rejected when its estimated cost increase per decision exceeds
    ``max_cost_increase`` or its kind was rolled back on that agent within
    ``reject_after_rollback_s``. Agent autonomy moves by ``autonomy_step``
    (source example: Market Hunter 85% -> 90%) within [``min_agent_autonomy``,
    ``max_agent_autonomy``]; a change takes effect one window after the report.
    ``policy`` names the autonomy rule (:data:`swarmopt.autonomy.AUTONOMY_POLICIES`:
    ``rules``, the source's; ``fixed``, never change; ``load_aware``, the
    source's but no lowering that would take the review desk's projected
    utilization above ``max_review_utilization``) or is the import path
    ``module:attribute`` of a plug-in rule.

    The two-way protocol (reference/001, "Agent Interactions";
    :mod:`swarmopt.protocol`): ``commands`` are the Orchestrator's commands
    to the optimizer, issued at their times; with ``act_on_recommendations``
    the Orchestrator also acts on the optimizer's structured recommendations
    (reduce the autonomy of a poorly performing agent, grant resources to an
    efficient agent near capacity, raise the autonomy of agents whose reviews
    make them miss coordination deadlines). Both are off by default.
    """

    policy: Annotated[str, AfterValidator(_autonomy_policy_name)] = "rules"
    max_review_utilization: float = Field(default=0.6, gt=0, le=1)
    max_cost_increase: float = Field(default=1.0, ge=0)
    reject_after_rollback_s: float = Field(default=1800.0, ge=0)
    autonomy_step: float = Field(default=0.05, gt=0, le=0.5)
    min_agent_autonomy: float = Field(default=0.5, ge=0, le=1)
    max_agent_autonomy: float = Field(default=0.95, ge=0, le=1)
    commands: list[Command] = Field(default_factory=list, max_length=1000, description="at most 1,000")
    act_on_recommendations: bool = False


class _CommandBase(Strict):
    at_s: float = Field(ge=0, le=MAX_DURATION_S, description="simulated seconds, at most one year; issued at the "
                                                             "first optimizer cycle at or after it")


class FocusCommand(_CommandBase):
    """"Focus on agent X" (reference/001): for ``duration_s`` the optimizer
    schedules changes on ``agent`` only; strategies for other agents are
    deferred."""

    kind: Literal["focus"]
    agent: str = Field(max_length=64)
    duration_s: float = Field(default=1800.0, gt=0, le=MAX_DURATION_S, description="at most one year")


class AggressivenessCommand(_CommandBase):
    """"Increase (or lower) optimization aggressiveness" (reference/001): from
    now on the optimizer acts with aggressiveness ``level`` (1 = its
    configuration; 2 = twice as aggressive): tolerance / level, margin x
    level (at most 0.5), max step ratio x level (at least 1)."""

    kind: Literal["aggressiveness"]
    level: float = Field(ge=0.25, le=4.0, description="from 0.25 to 4; 1 restores the configuration")


class ReduceResourcesCommand(_CommandBase):
    """"Reduce resource consumption" (reference/001): for ``duration_s`` the
    optimizer tries no remedy that adds workers, a stronger tier or routing
    (:data:`swarmopt.protocol.RESOURCE_ADDING`), plans no pre-scaling, and
    acts on cost per decision above the profile's budget (cost threshold
    factor 1.0 instead of 1.5) and memory above 70%."""

    kind: Literal["reduce_resources"]
    duration_s: float = Field(default=3600.0, gt=0, le=MAX_DURATION_S, description="at most one year")


Command = Annotated[Union[FocusCommand, AggressivenessCommand, ReduceResourcesCommand], Field(discriminator="kind")]


class BurnAlert(Strict):
    """One burn-rate alert of a :class:`Budget`: it fires when the spend rate
    over the last ``long_s`` seconds and over the short span (the last twelfth
    of it, :func:`swarmopt.optimizer.detect.short_span`) are both at least
    ``burn_rate`` times the budget, and raises a ``cost_burn`` bottleneck of
    ``severity`` (Google SRE workbook, ch. 5, "Multiwindow, multi-burn-rate
    alerts": a 1 h window confirmed by a 5 min one pages, a 6 h window
    confirmed by 30 min files a ticket)."""

    long_s: float = Field(gt=0, le=MAX_DURATION_S, description="at most one year")
    burn_rate: float = Field(gt=0, le=MAX_FACTOR, description="x the budget, at most 1,000")
    severity: Literal["low", "medium", "high", "critical"]


class Budget(Strict):
    """A spend budget in USD per hour: ``usd_per_hour`` for the whole system
    and/or ``agents`` (agent id -> USD per hour); none by default. The burn
    rate is the spend rate over a span divided by the budget (1 = spending
    exactly the budget). ``fast`` and ``slow`` are the two alerts (the more
    severe wins when both fire); a budget period of ``period_s`` (a day by
    default) is what ``burn_rate`` x ``long_s`` / ``period_s`` of it is
    consumed in an alert's long window, the share the SRE workbook sizes its
    alerts by. A system alert is charged to the agent whose spend rose most
    above its own earlier level (:mod:`swarmopt.optimizer.budget`). The slow
    alert fires at the budget itself, as the SRE workbook's ticket does at
    burn rate 1: a budget is a limit, and an alert above it (1.25x before
    2026-12-04) left a band of overspending the optimizer never acted on."""

    usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD * 100, description="at most 1,000,000")
    agents: dict[str, Annotated[float, Field(gt=0, le=MAX_USD * 100)]] = Field(default_factory=dict)
    period_s: float = Field(default=86_400.0, gt=0, le=MAX_DURATION_S, description="at most one year")
    fast: BurnAlert = BurnAlert(long_s=3600.0, burn_rate=2.0, severity="high")
    slow: BurnAlert = BurnAlert(long_s=21_600.0, burn_rate=1.0, severity="medium")

    @property
    def enabled(self) -> bool:
        """Whether any budget is set."""
        return self.usd_per_hour is not None or bool(self.agents)


class AgentSpec(Strict):
    """A scenario's use of a profile: a path to a YAML profile (relative to the
    scenario file, then to the repository's ``agents/``) or an inline profile;
    ``count`` > 1 makes a population of replicas ``<id>-0 .. <id>-<count-1>``;
    ``knobs`` sets knobs over the profile's, by dotted path as
    :func:`swarmopt.knobs.set_knob` takes them (e.g. ``timeout_s: 30``,
    ``circuit_breaker.failure_rate_threshold: 0.1``); ``set`` sets other
    fields of the profile by dotted path, a tool by its name (e.g.
    ``base_success: 0.8``, ``tools.broker_api.fallback_quality: 0.5``)."""

    profile: str | AgentProfile
    count: int = Field(default=1, ge=1, le=MAX_COUNT, description="at most 1,000 replicas")
    knobs: dict[str, bool | int | float | str] = Field(default_factory=dict, max_length=64,
                                                       description="at most 64 knob paths")
    set: dict[str, bool | int | float | str] = Field(default_factory=dict, max_length=64,
                                                     description="at most 64 profile paths")


class Topology(Strict):
    """The message graph's shape (reference/000's topology optimizer: star,
    hierarchical, mesh, ring). ``shape`` is the default of every agent's
    ``topology`` knob (an agent's own knob wins); ``hub`` routes ``star``
    messages and is every agent's default parent; ``parents`` maps an agent to
    its parent in ``hierarchical``; a ``ring`` runs through the agents in
    sorted id order. Every relay on a route adds ``hop_latency_ms`` to the
    message and handles a copy of it in its inbox (:mod:`swarmopt.sim.topology`)."""

    shape: Shape = "mesh"
    hub: str | None = Field(default=None, max_length=64)
    parents: dict[str, str] = Field(default_factory=dict)
    hop_latency_ms: float = Field(default=50.0, ge=0, le=MAX_WAIT_S * 1000.0, description="at most one day")


def _default_shape(data):
    """Give every agent without its own ``topology`` knob the scenario's ``topology.shape``."""
    if not isinstance(data, dict) or not isinstance(data.get("topology"), (dict, Topology)):
        return data
    topo = data["topology"]
    shape = topo.get("shape", "mesh") if isinstance(topo, dict) else topo.shape
    agents = []
    for a in data.get("agents") or []:
        if isinstance(a, AgentProfile):
            if "topology" not in a.knobs.model_fields_set:
                a = a.model_copy(update={"knobs": a.knobs.model_copy(update={"topology": shape})})
        elif isinstance(a, dict):
            knobs = a.get("knobs") or {}
            if isinstance(knobs, dict) and "topology" not in knobs:
                a = dict(a, knobs=dict(knobs, topology=shape))
        agents.append(a)
    return dict(data, agents=agents)


class Scenario(Strict):
    """A run: agents, load, faults, optimizer, orchestrator, time and seed.

    Time: ``duration_s`` of simulated time advanced in BSP ticks of ``tick_s``;
    metrics are aggregated per ``window_s``; the optimizer runs every
    ``optimizer.cycle_s``. ``tick_s`` divides ``window_s`` or is a multiple of
    it, and divides ``optimizer.cycle_s``. Results do not depend on ``tick_s``
    (it only sets how often actors synchronize; a long tick means fewer actor
    round trips), see :mod:`swarmopt.sim.agent` — except that ``priority`` and
    ``wfq`` scheduling order the decisions waiting within a window, or within
    a tick when it is shorter (:mod:`swarmopt.sim.sched`).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="letters, digits, '_', '.', '-': it names the default run directory")
    description: str = Field(default="", max_length=10_000)
    duration_s: float = Field(gt=0, le=MAX_DURATION_S,
                              description="at most one year, 100,000 ticks and 100,000 windows")
    tick_s: float = Field(default=1.0, ge=0.1, le=3600, description="from 0.1 s to one hour")
    window_s: float = Field(default=60.0, ge=1, le=MAX_WAIT_S, description="from 1 s to one day")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="at most 2**63 - 1")
    agents: list[AgentProfile] = Field(max_length=MAX_AGENTS, description="at most 2,000, replicas included")
    load: LoadShape = LoadShape()
    faults: list[Fault] = Field(default_factory=list, max_length=MAX_FAULTS,
                                description="at most 10,000, counting one per replica of a population target")
    optimizer: OptimizerConfig = OptimizerConfig()
    orchestrator: OrchestratorConfig = OrchestratorConfig()
    models: dict[Tier, ModelTier] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    budget: Budget = Budget()
    topology: Topology = Topology()

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data):
        return _default_shape(data)

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        def multiple(a: float, b: float) -> bool:
            k = round(a / b)
            return k >= 1 and abs(k * b - a) < 1e-9 * max(1.0, a)

        for step, most in (("tick_s", MAX_TICKS), ("window_s", MAX_WINDOWS)):
            if self.duration_s / getattr(self, step) > most + 1e-9:
                raise ValueError(f"duration_s / {step} = {self.duration_s / getattr(self, step):.6g}; "
                                 f"allowed: at most {most:,}")
        if not multiple(self.optimizer.cycle_s, self.window_s):
            raise ValueError(
                f"optimizer.cycle_s ({self.optimizer.cycle_s}) must be a multiple of window_s ({self.window_s})"
            )
        if not (multiple(self.window_s, self.tick_s) or multiple(self.tick_s, self.window_s)):
            raise ValueError(f"tick_s ({self.tick_s}) must divide window_s ({self.window_s}) or be a multiple of it")
        if not multiple(self.optimizer.cycle_s, self.tick_s):
            raise ValueError(
                f"optimizer.cycle_s ({self.optimizer.cycle_s}) must be a multiple of tick_s ({self.tick_s})")
        if not multiple(self.duration_s, self.window_s):
            raise ValueError(f"duration_s ({self.duration_s}) must be a multiple of window_s ({self.window_s})")
        missing = set(DEFAULT_TIERS) - set(self.models)
        if missing:
            raise ValueError(f"models: missing tier(s) {sorted(missing)}; need all of {list(TIERS)}")
        ids = [a.id for a in self.agents]
        if len(set(ids)) != len(ids):
            raise ValueError(f"agents: ids must be unique, got {ids}")
        known = set(ids)
        by_id = {a.id: a for a in self.agents}
        for a in self.agents:
            for link in a.downstream:
                for to in link.receivers:
                    if to not in known:
                        raise ValueError(
                            f"agents.{a.id}.downstream: unknown agent '{to}'; allowed: {sorted(known)}"
                        )
        for a in self.budget.agents:
            if a not in known:
                raise ValueError(f"budget.agents: unknown agent '{a}'; allowed: {sorted(known)}")
        for i, c in enumerate(self.orchestrator.commands):
            if getattr(c, "agent", None) is not None and c.agent not in known:
                raise ValueError(f"orchestrator.commands.{i}.agent: unknown agent '{c.agent}'; "
                                 f"allowed: {sorted(known)}")
        _check_topology(self.topology, self.agents, known)
        for i, f in enumerate(self.faults):
            if f.target not in known:
                raise ValueError(f"faults.{i}.target: unknown agent '{f.target}'; allowed: {sorted(known)}")
            tool = getattr(f, "tool", None)
            tools = {t.name for t in by_id[f.target].tools}
            if tool is not None and tool not in tools:
                raise ValueError(
                    f"faults.{i}.tool: agent '{f.target}' has no tool '{tool}'; allowed: {sorted(tools)}"
                )
            if isinstance(f, RateLimitFault):
                _check_rate_limit_fault(i, f, by_id[f.target])
            if isinstance(f, CacheInvalidationFault) and f.every_s is not None:
                end = self.duration_s if f.duration_s is None else min(self.duration_s, f.at_s + f.duration_s)
                if (end - f.at_s) / f.every_s > MAX_INSTANTS:
                    raise ValueError(f"faults.{i}.every_s: {(end - f.at_s) / f.every_s:,.0f} invalidations in the "
                                     f"run; allowed: at most {MAX_INSTANTS:,}")
        return self


def _check_topology(topo: Topology, agents: list[AgentProfile], known: set[str]) -> None:
    """Raises ValueError naming the field when the topology names an unknown agent or a routed shape lacks its hub."""
    for field, name in [("hub", topo.hub)] + [(f"parents.{k}", v) for k, v in topo.parents.items()] + [
            (f"parents.{k}", k) for k in topo.parents]:
        if name is not None and name not in known:
            raise ValueError(f"topology.{field}: unknown agent '{name}'; allowed: {sorted(known)}")
    needs_hub = {a.knobs.topology for a in agents} & {"star", "hierarchical"}
    if needs_hub and topo.hub is None:
        raise ValueError(f"topology.hub: the {sorted(needs_hub)} shape routes through a hub; allowed: an agent id")


def _check_rate_limit_fault(i: int, f: RateLimitFault, agent: AgentProfile) -> None:
    """A rate-limit cut needs the limit it cuts: raises ValueError naming the knob otherwise."""
    k = agent.knobs
    if f.tool is None and not k.max_tokens_per_minute:
        raise ValueError(f"faults.{i}: agent '{agent.id}' has no token limit to cut "
                         f"(knobs.max_tokens_per_minute is 0); allowed: set it, or aim at a tool with a call limit")
    if f.tool is not None and not k.max_tool_calls_per_minute.get(f.tool, 0.0):
        raise ValueError(f"faults.{i}: agent '{agent.id}' has no call limit on '{f.tool}' to cut "
                         f"(knobs.max_tool_calls_per_minute.{f.tool} is 0); allowed: set it")
