"""Scenarios and measurements for checking the agent engine against queueing theory.

The engine (:class:`swarmopt.sim.agent.AgentSim`) is a general model of an
agent; with the right profile it reduces to a textbook system whose steady
state is known in closed form (:mod:`swarmopt.queueing`):

* :func:`queue_scenario` builds an M/M/c or M/D/c queue: Poisson arrivals,
  FCFS over ``c`` workers, service = the model call alone (no tools, no
  retries, no timeout in practice, no escalation). Its mean queueing wait is
  checked against Erlang C (``mmc_mean_wait``) or Pollaczek-Khinchine
  (``md1_mean_wait``).
* :func:`cache_scenario` builds a Poisson stream of requests to one tool with
  Zipf-distributed keys and a TTL cache; its hit ratio is checked against the
  renewal formula ``ttl_cache_hit_rate``, and with a size bound (LRU) against
  Che's approximation ``lru_cache_hit_rate``.
* :func:`rate_limit_scenario` builds a Poisson stream of decisions through one
  token bucket (model tokens or tool calls); above the bucket's rate its
  long-run throughput is the rate.
* :func:`simulate_tasks` runs such a scenario's single agent directly (no Ray,
  no optimizer) and returns the per-task event times.
* :func:`mean_number_in_system` measures the time-average number of tasks in
  the system, for Little's law ``L = lambda W`` (J. D. C. Little, "A proof for
  the queuing formula L = lambda W", Operations Research 9(3), 1961).

All times are seconds of simulated time and all rates per second.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from swarmopt.metrics import COLUMN
from swarmopt.schema import (
    KNOB_BOUNDS,
    MAX_RATE_PER_S,
    MAX_SEED,
    TIERS,
    AgentProfile,
    Knobs,
    ModelTier,
    OptimizerConfig,
    OrchestratorConfig,
    Scenario,
    ToolProfile,
)
from swarmopt.sim.agent import AgentSim
from swarmopt.sim.environment import Environment
from swarmopt.sim.seeds import agent_seeds

__all__ = [
    "TASK_FIELDS",
    "queue_scenario",
    "cache_scenario",
    "rate_limit_scenario",
    "simulate_tasks",
    "mean_number_in_system",
]

#: Decisions per step of :func:`simulate_tasks` (from the profile's rate; measured best between about 10,000 and
#: 20,000 on the reference queues: fewer pay the serving pass's fixed cost often, more leave the caches).
STEP_TASKS = 12_000

#: Per-task arrays returned by :func:`simulate_tasks`.
TASK_FIELDS: tuple[str, ...] = ("arrival", "ready", "start", "end", "finish", "hits", "lookups", "calls", "tokens_in",
                                "tokens_out")
_TIMES = ("arrival", "ready", "start", "end", "finish")

_MAX_TIMEOUT_S = float(KNOB_BOUNDS["timeout_s"][1])
_MAX_CONCURRENCY = int(KNOB_BOUNDS["max_concurrency"][1])
# Largest exponential mean for which P(service > timeout) = exp(-timeout/mean)
# stays below 1e-12, i.e. the timeout never truncates a service in practice.
_MAX_EXP_MEAN_S = _MAX_TIMEOUT_S / (12.0 * math.log(10.0))


def _number(name: str, value: float, *, lo: float | None = None, hi: float | None = None,
            lo_open: bool = True, hi_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v)
    if lo is not None:
        bad |= v <= lo if lo_open else v < lo
    if hi is not None:
        bad |= v >= hi if hi_open else v > hi
    if bad:
        lo_s = "" if lo is None else f"{lo} {'<' if lo_open else '<='} "
        hi_s = "" if hi is None else f" {'<' if hi_open else '<='} {hi}"
        raise ValueError(f"{name} must be a finite number with {lo_s}{name}{hi_s}, got {value!r}")
    return v


def _integer(name: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    return int(value)


def _window(duration_s: float, window_s: float) -> float:
    window_s = _number("window_s", window_s, lo=0.0)
    k = round(duration_s / window_s)
    if k < 1 or abs(k * window_s - duration_s) > 1e-9 * max(1.0, duration_s):
        raise ValueError(f"duration_s ({duration_s}) must be a positive multiple of window_s ({window_s})")
    return window_s


def _tick(window_s: float) -> float:
    """The largest tick <= 60 s (the schema's bound) that divides ``window_s``."""
    return window_s / math.ceil(window_s / 60.0 - 1e-9)


def _single_agent_scenario(name: str, agent: AgentProfile, tier: ModelTier, duration_s: float,
                           window_s: float, seed: int) -> Scenario:
    return Scenario(
        name=name,
        duration_s=duration_s,
        tick_s=_tick(window_s),
        window_s=window_s,
        seed=seed,
        agents=[agent],
        optimizer=OptimizerConfig(policy="monitor", cycle_s=window_s),
        # pin autonomy at 1.0: in a full run the Orchestrator would otherwise lower
        # it after two unhealthy reports (long waits at high load), and escalations
        # would add review time
        orchestrator=OrchestratorConfig(min_agent_autonomy=1.0, max_agent_autonomy=1.0),
        models={t: tier for t in TIERS},
    )


def queue_scenario(c: int, utilization: float, service: Literal["exponential", "deterministic"],
                   mean_service_s: float = 1.0, duration_s: float = 100_000.0, seed: int = 0, *,
                   window_s: float = 1000.0) -> Scenario:
    """A single-agent scenario that is an M/M/c (or M/D/c) FCFS queue.

    The agent has no tools, no downstream links and never escalates (autonomy
    1.0, ``confidence_threshold`` 0, so review never runs and finish = end);
    ``timeout_s`` is at its maximum (120 s) and ``max_retries`` 0, so a task's
    service time is exactly one model call. The model tier has ``latency_sigma``
    0 and ``latency_ms_median = 1000 * mean_service_s``: for the exponential and
    deterministic distributions the engine uses the lognormal's mean
    ``median * exp(sigma^2 / 2)``, which is then ``mean_service_s``. The same
    tier is used for all three tier names. Arrivals are Poisson with rate
    ``lambda = utilization * c / mean_service_s`` (constant load shape); the
    optimizer policy is ``monitor`` (it never changes a knob) and the
    Orchestrator's autonomy range is pinned to [1, 1], so a full
    :func:`~swarmopt.api.run_scenario` run is the same queue as
    :func:`simulate_tasks`.

    Args:
        c: number of workers (``max_concurrency``), int in [1, 256].
        utilization: ``rho = lambda E[S] / c``, in (0, 1).
        service: ``"exponential"`` (M/M/c) or ``"deterministic"`` (M/D/c).
        mean_service_s: ``E[S]`` in seconds, > 0; for ``"exponential"`` at most
            ~4.3 s so that ``P(S > 120 s) < 1e-12`` (the timeout never cuts a
            service short), for ``"deterministic"`` < 120 s.
        duration_s: simulated time (s); a positive multiple of ``window_s``,
            within the schema's bounds (at most one year, 100,000 windows and
            100,000 ticks).
        seed: scenario seed, int in [0, 2**63 - 1].
        window_s: metric window (s), also the block length in which the engine
            draws arrivals; larger windows mean fewer, larger numpy batches.

    Returns:
        A validated :class:`~swarmopt.schema.Scenario` with one agent, id ``"queue"``.

    Raises:
        ValueError: for an argument outside the ranges above, or an arrival
            rate above the schema's 1,000/s.
    """
    c = _integer("c", c, 1, _MAX_CONCURRENCY)
    rho = _number("utilization", utilization, lo=0.0, hi=1.0)
    if service not in ("exponential", "deterministic"):
        raise ValueError(f"service must be 'exponential' or 'deterministic', got {service!r}")
    max_mean = _MAX_EXP_MEAN_S if service == "exponential" else _MAX_TIMEOUT_S
    mean = _number("mean_service_s", mean_service_s, lo=0.0, hi=max_mean,
                   hi_open=service == "deterministic")
    duration_s = _number("duration_s", duration_s, lo=0.0)
    window_s = _window(duration_s, window_s)
    seed = _integer("seed", seed, 0, MAX_SEED)
    rate = rho * c / mean
    if rate > MAX_RATE_PER_S:
        raise ValueError(f"arrival rate utilization * c / mean_service_s = {rate:.6g}/s exceeds "
                         f"{MAX_RATE_PER_S:g}/s; use a longer mean_service_s")
    tier = ModelTier(latency_ms_median=mean * 1000.0, latency_sigma=0.0, quality=1.0,
                     confidence_mean=0.75, input_usd_per_mtok=0.0, output_usd_per_mtok=0.0)
    agent = AgentProfile(
        id="queue", name=f"M/{'M' if service == 'exponential' else 'D'}/{c} queue",
        base_rate_per_s=rate, latency_distribution=service, autonomy=1.0,
        knobs=Knobs(model_tier="standard", max_concurrency=c, timeout_s=_MAX_TIMEOUT_S, max_retries=0,
                    confidence_threshold=0.0),
    )
    return _single_agent_scenario(f"queue-{service}-c{c}-rho{rho:g}", agent, tier, duration_s, window_s, seed)


def cache_scenario(n_keys: int = 1000, zipf_s: float = 1.0, ttl_s: float = 10.0, rate_per_s: float = 200.0,
                   duration_s: float = 1000.0, seed: int = 0, *, window_s: float = 100.0,
                   max_size: int = 0) -> Scenario:
    """A single-agent scenario that is a Poisson request stream into a TTL cache.

    The agent calls one tool (``"lookup"``, ``error_rate`` 0, ``keyspace``
    ``n_keys`` keys drawn from a Zipf law of exponent ``zipf_s``) once per task,
    with ``cache_ttl_s = ttl_s`` on it. The engine looks the key up at the
    task's start and, on a miss, caches it until ``start + ttl_s`` (a hit does
    not extend it): the non-reset TTL cache of ``ttl_cache_hit_rate``. With
    ``max_size`` > 0 the cache holds at most that many entries (LRU eviction,
    knob ``max_cache_size``); with a TTL longer than the run it is the LRU
    cache of ``lru_cache_hit_rate``. Service
    is short and deterministic (1 ms model call, 1 ms tool miss, 1 ms hit) and
    ``max_concurrency`` is 256, so with at most ~10 tasks in service no task
    ever queues: start = arrival and the lookups form the Poisson stream of
    rate ``rate_per_s``. No retries, no escalation (autonomy pinned at 1), no
    links, policy ``monitor``.

    Args:
        n_keys: keyspace size, int in [1, 1_000_000].
        zipf_s: Zipf exponent, in [0, 4].
        ttl_s: cache TTL (s), in (0, 86_400].
        rate_per_s: request (task) rate (1/s), in (0, 1_000].
        duration_s: simulated time (s); a positive multiple of ``window_s``,
            within the schema's bounds (at most one year, 100,000 windows and
            100,000 ticks).
        seed: scenario seed, int in [0, 2**63 - 1].
        window_s: metric window (s).
        max_size: the cache's size bound (entries), int in [0, 1_000_000]; 0 = unbounded.

    Returns:
        A validated :class:`~swarmopt.schema.Scenario` with one agent, id ``"cache"``.

    Raises:
        ValueError: for an argument outside the ranges above.
    """
    n_keys = _integer("n_keys", n_keys, 1, 1_000_000)
    zipf_s = _number("zipf_s", zipf_s, lo=0.0, hi=4.0, lo_open=False, hi_open=False)
    ttl_s = _number("ttl_s", ttl_s, lo=0.0, hi=float(KNOB_BOUNDS["cache_ttl_s"][1]), hi_open=False)
    rate = _number("rate_per_s", rate_per_s, lo=0.0, hi=MAX_RATE_PER_S, hi_open=False)
    duration_s = _number("duration_s", duration_s, lo=0.0)
    window_s = _window(duration_s, window_s)
    seed = _integer("seed", seed, 0, MAX_SEED)
    tier = ModelTier(latency_ms_median=1.0, latency_sigma=0.0, quality=1.0,
                     confidence_mean=0.75, input_usd_per_mtok=0.0, output_usd_per_mtok=0.0)
    tool = ToolProfile(name="lookup", latency_ms_median=1.0, latency_sigma=0.0, error_rate=0.0,
                       keyspace=n_keys, zipf_s=zipf_s, hit_latency_ms=1.0)
    agent = AgentProfile(
        id="cache", name="TTL cache", base_rate_per_s=rate, latency_distribution="deterministic",
        tools=[tool], autonomy=1.0,
        knobs=Knobs(model_tier="standard", max_concurrency=_MAX_CONCURRENCY, cache_ttl_s={"lookup": ttl_s},
                    timeout_s=_MAX_TIMEOUT_S, max_retries=0, confidence_threshold=0.0,
                    max_cache_size={"lookup": max_size} if max_size else {}),
    )
    return _single_agent_scenario(f"cache-n{n_keys}-s{zipf_s:g}-ttl{ttl_s:g}-c{max_size}", agent, tier, duration_s,
                                  window_s, seed)


def rate_limit_scenario(rate_per_s: float, limit_per_minute: float, kind: Literal["tokens", "calls"] = "tokens",
                        tokens: int = 1000, burst: int = 0, duration_s: float = 3600.0, seed: int = 0, *,
                        window_s: float = 60.0) -> Scenario:
    """A single-agent scenario that is a Poisson stream of decisions through one token bucket.

    Decisions arrive at ``rate_per_s``; each makes one model call of 1 ms
    (deterministic) and, for ``kind="calls"``, one call of an uncached tool
    (``"api"``, 1 ms, never failing); no retries, no escalation, 256 workers,
    so only the rate limit ever holds a decision back. ``kind="tokens"``: the
    decision's model tokens (``tokens - 1`` input and 1 output token, times
    the engine's lognormal token factor of mean 1, rounded) go through a
    bucket of ``limit_per_minute`` tokens a minute and burst ``burst``
    (``max_tokens_per_minute``, ``token_burst_size``; 0 = one minute);
    ``kind="calls"``: its one call goes through a bucket of
    ``limit_per_minute`` calls a minute (``max_tool_calls_per_minute``).

    Args:
        rate_per_s: decision rate (1/s), in (0, 1_000].
        limit_per_minute: the bucket's rate per minute, > 0 (within the knob's bounds).
        kind: ``"tokens"`` or ``"calls"``.
        tokens: mean model tokens per decision, int in [2, 1_000_000].
        burst: ``token_burst_size`` for ``kind="tokens"``, int >= 0.
        duration_s, seed, window_s: as :func:`cache_scenario`.

    Returns:
        A validated :class:`~swarmopt.schema.Scenario` with one agent, id ``"limited"``.

    Raises:
        ValueError: for an argument outside the ranges above (a limit outside
            the knob's bounds is a pydantic.ValidationError, a ValueError).
    """
    rate = _number("rate_per_s", rate_per_s, lo=0.0, hi=MAX_RATE_PER_S, hi_open=False)
    limit = _number("limit_per_minute", limit_per_minute, lo=0.0)
    if kind not in ("tokens", "calls"):
        raise ValueError(f"kind must be 'tokens' or 'calls', got {kind!r}")
    tokens = _integer("tokens", tokens, 2, 1_000_000)
    duration_s = _number("duration_s", duration_s, lo=0.0)
    window_s = _window(duration_s, window_s)
    seed = _integer("seed", seed, 0, MAX_SEED)
    tier = ModelTier(latency_ms_median=1.0, latency_sigma=0.0, quality=1.0,
                     confidence_mean=0.75, input_usd_per_mtok=0.0, output_usd_per_mtok=0.0)
    api = ToolProfile(name="api", latency_ms_median=1.0, latency_sigma=0.0, error_rate=0.0)
    tools = [api] if kind == "calls" else []
    limits = {"max_tokens_per_minute": round(limit), "token_burst_size": burst} if kind == "tokens" else {
        "max_tool_calls_per_minute": {"api": limit}}
    agent = AgentProfile(
        id="limited", name=f"{kind} bucket", base_rate_per_s=rate, latency_distribution="deterministic",
        prompt_tokens=tokens - 1, output_tokens=1, tools=tools, autonomy=1.0,
        knobs=Knobs(model_tier="standard", max_concurrency=_MAX_CONCURRENCY, timeout_s=_MAX_TIMEOUT_S,
                    max_retries=0, confidence_threshold=0.0, **limits),
    )
    return _single_agent_scenario(f"limit-{kind}-{limit:g}-rate{rate:g}", agent, tier, duration_s, window_s, seed)


def simulate_tasks(scenario: Scenario, fields: tuple[str, ...] = TASK_FIELDS) -> dict[str, np.ndarray]:
    """Run the scenario's single agent to the end and return its per-task arrays.

    The agent runs in the pure engine (:class:`~swarmopt.sim.agent.AgentSim`:
    no Ray, no optimizer, no orchestrator, so no knob ever changes), seeded as
    :class:`~swarmopt.runtime.group.AgentGroup` seeds it (``agent_seeds(
    scenario.seed, 1)``) and stepped over spans of whole windows holding about
    :data:`STEP_TASKS` decisions (its draws and windows are still one per
    window); the final zero-length step closes the last window. The engine's
    results do not depend on the step length (but for the rounding of the
    one-worker closed form's cumulative sums, about 1e-12 s), so for the
    scenarios of :func:`queue_scenario` and :func:`cache_scenario` (policy
    ``monitor``, autonomy pinned) they equal the agent's tasks in a full
    ``run_scenario`` run. Load shape and faults aimed at the agent apply; any
    knob or autonomy change the optimizer or the Orchestrator would make in a
    full run does not.

    Args:
        scenario: a scenario with exactly one agent and no downstream links
            (outbound messages would have nowhere to go).
        fields: the fields to return (default all of :data:`TASK_FIELDS`).

    Returns:
        ``{field: array of shape (n_tasks,)}`` for every field asked for,
        tasks in arrival order: ``arrival``, ``ready`` (admitted through the
        rate limits), ``start`` (a worker takes it),
        ``end`` (the worker is free), ``finish`` (final answer, review
        included) in seconds of simulated time; ``hits`` and ``lookups`` are
        per-task counts of cache hits and of cache lookups (one per tool, at
        arrival), ``calls`` of tool calls made, ``tokens_in`` and
        ``tokens_out`` of model tokens.
        Every task arriving in ``[0, duration_s)`` is included, with its full
        service even when it ends after ``duration_s``.

    Raises:
        ValueError: if the scenario does not have exactly one agent, the
            agent has downstream links, or a field is not in
            :data:`TASK_FIELDS`.
    """
    if unknown := sorted(set(fields) - set(TASK_FIELDS)):
        raise ValueError(f"fields must be among {', '.join(TASK_FIELDS)}; got {', '.join(unknown)}")
    if len(scenario.agents) != 1:
        raise ValueError(f"scenario must have exactly one agent, got {len(scenario.agents)}")
    profile = scenario.agents[0]
    if profile.downstream:
        raise ValueError(f"agent '{profile.id}' must have no downstream links, got {len(profile.downstream)}")
    seeds, _ = agent_seeds(scenario.seed, 1)
    env = Environment(scenario.load, [f for f in scenario.faults if f.target == profile.id], scenario.duration_s)
    sim = AgentSim(profile, scenario.models, env, seeds[0], scenario.window_s,
                   scenario.optimizer.thresholds.response_time_ms)
    w, duration = scenario.window_s, scenario.duration_s
    # steps of about STEP_TASKS decisions: the serving pass's fixed cost is spread thin, its arrays stay small
    per_window = profile.base_rate_per_s * scenario.load.multiplier * w
    step = w * max(1, round(STEP_TASKS / per_window)) if per_window > 0 else duration
    rows: dict[str, list[np.ndarray]] = {f: [] for f in fields}

    def keep(closed: list) -> None:
        # the asked-for rows of the windows just closed, copied, so that their tables go as they do in a run
        for f in fields:
            rows[f].append(np.concatenate([wd.table[COLUMN[f]] for wd in closed]) if closed else np.zeros(0))

    t = 0.0
    while t < duration:
        keep(sim.step(t, min(duration, t + step), [], [])[1])
        t = min(duration, t + step)
    keep(sim.step(duration, duration, [], [])[1])
    out = {f: np.concatenate(r) for f, r in rows.items()}
    return {f: row if f in _TIMES else row.astype(np.int64) for f, row in out.items()}


def mean_number_in_system(arrival: np.ndarray, finish: np.ndarray, t0: float, t1: float) -> float:
    """Time-average number of tasks in the system over ``[t0, t1)``, exactly.

    Task ``i`` is in the system during ``[arrival[i], finish[i])``; the count
    ``N(t)`` is a step function and its integral over ``[t0, t1)`` is the sum
    of each interval's overlap with the span, so::

        L = sum_i max(0, min(finish_i, t1) - max(arrival_i, t0)) / (t1 - t0)

    with no discretisation error. With ``lambda`` = arrivals in ``[t0, t1)`` /
    ``(t1 - t0)`` and ``W`` their mean time in system, Little's law
    ``L = lambda W`` holds up to the boundary terms (tasks present at ``t0``
    or still present at ``t1``), whose relative size is about ``W / (t1 - t0)``.

    Args:
        arrival: shape ``(n,)``, seconds.
        finish: shape ``(n,)``, seconds, ``finish >= arrival``.
        t0, t1: span in seconds, finite, ``t1 > t0``.

    Returns:
        Mean number in system (tasks), >= 0.

    Raises:
        ValueError: if the arrays are not 1-D of equal shape, hold a non-finite
            value or a task with ``finish < arrival``, or ``t1 <= t0``.
    """
    a = np.asarray(arrival, dtype=float)
    f = np.asarray(finish, dtype=float)
    if a.ndim != 1 or a.shape != f.shape:
        raise ValueError(f"arrival and finish must be 1-D arrays of equal shape, got {a.shape} and {f.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(f))):
        raise ValueError("arrival and finish must be finite")
    if np.any(f < a):
        raise ValueError("every task needs finish >= arrival")
    t0 = _number("t0", t0)
    t1 = _number("t1", t1)
    if not t1 > t0:
        raise ValueError(f"need t1 > t0, got t0 = {t0!r}, t1 = {t1!r}")
    overlap = np.minimum(f, t1) - np.maximum(a, t0)
    return float(np.clip(overlap, 0.0, None).sum() / (t1 - t0))
