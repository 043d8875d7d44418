"""Instrumentation of real Python agents: the simulation's window metrics, measured.

Wrap an agent's unit of work (a *decision*) with :class:`track`, as a
decorator of a sync or async function or as a (async) context manager::

    telemetry = Telemetry(window_s=5.0, slo_ms=500).install()

    @track(agent="market-hunter", action="scan")
    def scan(symbol):
        t = current()                                   # the decision being tracked
        with t.tool("price_feed") as call:              # timed; an exception marks it an error
            price, call.hit = cache.get(symbol)
        t.tokens(input=1200, output=150, model="standard")
        ...

:class:`Telemetry` collects the finished decisions and turns each closed
wall-clock window into the metrics row the simulation produces
(:func:`swarmopt.metrics.window_metrics`: same column names) and the per-task
sample the optimizer's judge reads (:class:`~swarmopt.metrics.TaskSample`).
Columns the instrumentation does not observe are NaN: coordination and message
counts, escalation, adaptation, simulated memory, network and storage, agent
autonomy; ``cpu_percent`` (worker busy time / (workers x window)) needs the
agent's worker count (:meth:`Telemetry.declare` or a ``max_concurrency`` knob
of the advisor); ``queue_wait_ms_mean`` needs ``queued_at`` (when the request
arrived; otherwise a decision arrives when it starts). Costs come from the
same price table as the simulation (``models``: USD per 1M input and output
tokens per model, default the scenario tiers ``fast``, ``standard``,
``strong``), per model and per session (:meth:`Telemetry.costs`).

A decision belongs to the window in which it arrived, as in the simulation. A
window closes when it has ended and no decision that arrived in it is still
running, or ``max_lateness_s`` after its end; a decision still running then is
dropped from the tables and counted in :attr:`Telemetry.late`.

:class:`~swarmopt.advisor.Advisor` runs the optimizer's cycle on these windows.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from swarmopt.loader import InputError
from swarmopt.metrics import TaskSample, WindowData, task_sample, window_metrics
from swarmopt.schema import DEFAULT_TIERS, TIERS

NOT_OBSERVED = ("adaptation_score", "coordination_score", "escalation_rate", "review_wait_ms_mean",
                "coordination_requests", "messages_sent", "messages_handled", "inbox_in_time_rate", "conflicts",
                "memory_percent", "network_kbps", "storage_percent", "autonomy", "throttle_wait_ms_mean",
                "token_throttle_wait_ms_mean", "cache_evictions", "cache_eviction_rate", "cache_invalidations",
                "tool_error_rate", "timeout_rate", "timeout_busy_share", "attempt_ms_p50", "attempt_ms_p99")
AGENT_ID = re.compile(r"^[a-z][a-z0-9-]*$")
TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CURRENT: contextvars.ContextVar["Task | None"] = contextvars.ContextVar("swarmopt_task", default=None)
_DEFAULT: list["Telemetry"] = []
TOOL_LATENCY_KEPT = 1000  # latest timed misses per tool kept for its median


@dataclass
class ToolCall:
    """One tool lookup of a decision: ``hit`` (answered from a cache), ``error``
    (the call failed), ``duration_s`` (measured when used as a context manager,
    else as given or None). An exception inside ``with`` marks it an error."""

    name: str
    hit: bool = False
    error: bool = False
    duration_s: float | None = None
    _clock: Callable[[], float] | None = field(default=None, repr=False)
    _t0: float = field(default=0.0, repr=False)

    def __enter__(self) -> "ToolCall":
        self._t0 = self._clock()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.duration_s = self._clock() - self._t0
        if exc_type is not None:
            self.error = True


@dataclass(frozen=True)
class TaskRecord:
    """A finished decision; times in seconds since the telemetry started.

    ``arrival_s`` (``queued_at``, else ``start_s``), ``start_s``, ``end_s``;
    ``ok`` (no exception escaped), ``success`` (``ok`` unless marked wrong with
    :meth:`Task.fail`); ``confidence`` (NaN if not given); ``tokens_in``,
    ``tokens_out``, ``cost_usd`` (model calls plus priced tool misses);
    ``tier`` (index into :data:`~swarmopt.schema.TIERS` of the last model
    called when it is a tier name, else -1); ``tools`` (the calls);
    ``queued`` (whether ``queued_at`` was given)."""

    agent: str
    action: str
    session: str | None
    arrival_s: float
    start_s: float
    end_s: float
    ok: bool
    success: bool
    confidence: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    tier: int
    tools: tuple[ToolCall, ...]
    queued: bool = False


class Task:
    """The decision being tracked (what :func:`current` returns inside :class:`track`).

    Set ``confidence`` (0-1) if the agent reports one, ``queued_at`` (the
    telemetry's clock) when the request arrived before the decision started;
    :meth:`fail` marks a wrong answer."""

    def __init__(self, telemetry: "Telemetry", agent: str, action: str, session: str | None,
                 queued_at: float | None) -> None:
        self.telemetry, self.agent, self.action, self.session = telemetry, agent, action, session
        self.queued_at = queued_at
        self.start = telemetry.clock()
        self.success = True
        self.confidence = math.nan
        self.calls: list[ToolCall] = []
        self.tokens_in = self.tokens_out = 0
        self.cost_usd = 0.0
        self.tier = -1
        self._token: contextvars.Token | None = None

    def tokens(self, input: int, output: int, model: str) -> float:  # noqa: A002 (the conventions' word)
        """Record a model call of ``input`` and ``output`` tokens on ``model``
        (a name of the telemetry's price table); returns its cost in USD.
        Raises InputError naming the known models."""
        if input < 0 or output < 0:
            raise InputError(f"tokens: input and output must be >= 0, got {input}, {output}")
        cost = self.telemetry.price(model, input, output)
        self.tokens_in += int(input)
        self.tokens_out += int(output)
        self.cost_usd += cost
        self.tier = TIERS.index(model) if model in TIERS else -1
        self.telemetry.log_call("model", model, self.agent, self.session, int(input), int(output), cost)
        return cost

    def tool(self, name: str, hit: bool = False, error: bool = False, duration_s: float | None = None) -> ToolCall:
        """Record a tool lookup now (``hit``: served from a cache; ``error``: the
        call failed). Use the returned call as a context manager to time it and
        set ``hit`` inside. Raises InputError for a name that is not
        lowercase letters, digits and underscores."""
        if not TOOL_NAME.match(name):
            raise InputError(f"tool: name {name!r} must match {TOOL_NAME.pattern}")
        call = ToolCall(name, hit, error, duration_s, self.telemetry.clock)
        self.calls.append(call)
        return call

    def fail(self) -> None:
        """Mark the decision's answer wrong (it still counts as a valid attempt, not an error)."""
        self.success = False


class track:  # noqa: N801 (used like a function: @track(...), with track(...))
    """Track a decision of ``agent`` (an id like ``market-hunter``) doing
    ``action``: a decorator of a sync or async function, or a context manager
    (``with`` / ``async with``) that gives the :class:`Task`. ``session`` groups
    costs; ``queued_at`` is when the request arrived (the telemetry's clock);
    ``telemetry`` defaults to the installed one (:meth:`Telemetry.install`).
    Raises InputError for a bad agent id."""

    def __init__(self, agent: str, action: str = "", *, session: str | None = None,
                 queued_at: float | None = None, telemetry: "Telemetry | None" = None) -> None:
        if not AGENT_ID.match(agent):
            raise InputError(f"track: agent {agent!r} must match {AGENT_ID.pattern} (e.g. 'market-hunter')")
        self.agent, self.action, self.session, self.queued_at = agent, action, session, queued_at
        self._telemetry = telemetry

    def _begin(self) -> Task:
        tel = self._telemetry or Telemetry.installed()
        task = Task(tel, self.agent, self.action, self.session, self.queued_at)
        tel.started(task)
        task._token = _CURRENT.set(task)
        return task

    @staticmethod
    def _end(exc: BaseException | None) -> None:
        task = _CURRENT.get()
        _CURRENT.reset(task._token)
        task.telemetry.finish(task, exc)

    def __enter__(self) -> Task:
        return self._begin()

    def __exit__(self, exc_type, exc, tb) -> None:
        self._end(exc)

    async def __aenter__(self) -> Task:
        return self._begin()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._end(exc)

    def __call__(self, fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args, **kwargs):
                async with self:
                    return await fn(*args, **kwargs)
            return run_async

        @functools.wraps(fn)
        def run(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return run


def current() -> Task:
    """The decision tracked in this thread or asyncio task; RuntimeError outside :class:`track`."""
    task = _CURRENT.get()
    if task is None:
        raise RuntimeError("swarmopt.instrument.current(): no tracked decision here; call it inside @track or "
                           "`with track(...)`")
    return task


def _price_table(models: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, m in models.items():
        get = m.get if isinstance(m, Mapping) else lambda k, m=m: getattr(m, k, None)
        pin, pout = get("input_usd_per_mtok"), get("output_usd_per_mtok")
        if not (isinstance(pin, (int, float)) and isinstance(pout, (int, float)) and pin >= 0 and pout >= 0):
            raise InputError(f"models.{name}: needs input_usd_per_mtok and output_usd_per_mtok >= 0 (USD per 1M "
                             "tokens)")
        out[name] = (float(pin), float(pout))
    return out


class Telemetry:
    """Collects tracked decisions and closes them into windows of ``window_s``
    wall-clock seconds (from the moment it is created).

    ``slo_ms``: the response-time SLO (``goal_progress``; the advisor's
    threshold). ``models``: the price table (name -> object or mapping with
    ``input_usd_per_mtok`` and ``output_usd_per_mtok``), default
    :data:`~swarmopt.schema.DEFAULT_TIERS`; ``tool_prices``: USD per call of a
    tool that is not a cache hit. ``clock``: seconds (default
    ``time.monotonic``; tests pass a fake one). ``max_lateness_s`` (default half
    a window). Thread-safe. Raises InputError for bad arguments.
    """

    def __init__(self, window_s: float = 60.0, *, slo_ms: float = 2000.0, models: Mapping[str, Any] | None = None,
                 tool_prices: Mapping[str, float] | None = None, clock: Callable[[], float] = time.monotonic,
                 max_lateness_s: float | None = None) -> None:
        if not window_s > 0 or not slo_ms > 0:
            raise InputError(f"Telemetry: window_s and slo_ms must be > 0, got {window_s}, {slo_ms}")
        self.window_s = float(window_s)
        self.slo_ms = float(slo_ms)
        self.prices = _price_table(DEFAULT_TIERS if models is None else models)
        self.tool_prices = dict(tool_prices or {})
        self.clock = clock
        self.origin = clock()
        self.max_lateness_s = self.window_s / 2 if max_lateness_s is None else float(max_lateness_s)
        self.workers: dict[str, int | Callable[[], int]] = {}
        self.agents: list[str] = []
        self.late: dict[str, int] = {}
        self.closed = 0  # windows [0, closed) are closed
        self.metric_rows: list[dict] = []
        self.calls: list[dict] = []
        self._running: dict[int, float] = {}  # id(task) -> arrival (s since origin)
        self._tools: dict[tuple[str, str], dict] = {}
        self._done: list[TaskRecord] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ setup
    def install(self) -> "Telemetry":
        """Make this the telemetry :class:`track` uses when none is given; returns it."""
        _DEFAULT[:] = [self]
        return self

    @staticmethod
    def installed() -> "Telemetry":
        """The installed telemetry; RuntimeError if none is."""
        if not _DEFAULT:
            raise RuntimeError("no Telemetry installed: call Telemetry(...).install() or pass telemetry= to track")
        return _DEFAULT[0]

    def declare(self, agent: str, workers: int | Callable[[], int] | None = None) -> None:
        """Declare ``agent`` (it gets a row every window, also with no
        decisions) and its worker count (an int or a function returning the
        current count), which ``cpu_percent`` needs."""
        if not AGENT_ID.match(agent):
            raise InputError(f"declare: agent {agent!r} must match {AGENT_ID.pattern}")
        with self._lock:
            if agent not in self.agents:
                self.agents.append(agent)
            if workers is not None:
                self.workers[agent] = workers

    # ------------------------------------------------------------------ recording
    def price(self, model: str, tokens_in: int, tokens_out: int) -> float:
        """USD of a model call; InputError naming the known models."""
        if model not in self.prices:
            raise InputError(f"tokens: unknown model {model!r}; allowed: {sorted(self.prices)} (add it to "
                             "Telemetry(models=...))")
        pin, pout = self.prices[model]
        return (tokens_in * pin + tokens_out * pout) / 1e6

    def log_call(self, kind: str, name: str, agent: str, session: str | None, tokens_in: int, tokens_out: int,
                 cost_usd: float) -> None:
        """Log a priced call (``kind`` "model" or "tool") for :meth:`costs`."""
        with self._lock:
            self.calls.append({"t_s": self.clock() - self.origin, "kind": kind, "name": name, "agent": agent,
                               "session": session, "input_tokens": tokens_in, "output_tokens": tokens_out,
                               "cost_usd": cost_usd})

    def finish(self, task: Task, exc: BaseException | None = None) -> TaskRecord:
        """Record the end of ``task`` now (``exc``: the exception that escaped it, an error)."""
        end = self.clock()
        tool_cost = 0.0
        for c in task.calls:
            price = self.tool_prices.get(c.name, 0.0)
            if price and not c.hit:
                tool_cost += price
                self.log_call("tool", c.name, task.agent, task.session, 0, 0, price)
        o = self.origin
        rec = TaskRecord(
            agent=task.agent, action=task.action, session=task.session,
            arrival_s=(task.start if task.queued_at is None else task.queued_at) - o, start_s=task.start - o,
            end_s=end - o, ok=exc is None, success=exc is None and task.success, confidence=task.confidence,
            tokens_in=task.tokens_in, tokens_out=task.tokens_out, cost_usd=task.cost_usd + tool_cost, tier=task.tier,
            tools=tuple(task.calls), queued=task.queued_at is not None)
        self.add(rec, running=id(task))
        return rec

    def add(self, rec: TaskRecord, running: int | None = None) -> None:
        """Add a finished decision (e.g. recorded telemetry replayed with its
        own timestamps). A decision arriving in a closed window counts as late."""
        with self._lock:
            self._running.pop(running, None)
            if rec.agent not in self.agents:
                self.agents.append(rec.agent)
            for c in rec.tools:
                st = self._tools.setdefault((rec.agent, c.name), {"calls": 0, "hits": 0, "errors": 0,
                                                                  "miss_ms": deque(maxlen=TOOL_LATENCY_KEPT)})
                st["calls"] += 1
                st["hits"] += c.hit
                st["errors"] += c.error and not c.hit
                if not c.hit and c.duration_s is not None:
                    st["miss_ms"].append(1000.0 * c.duration_s)
            if rec.arrival_s < self.closed * self.window_s:
                self.late[rec.agent] = self.late.get(rec.agent, 0) + 1
            else:
                self._done.append(rec)

    def started(self, task: Task) -> None:
        """Note that ``task`` is running (its window waits for it, up to ``max_lateness_s``)."""
        with self._lock:
            arrival = (task.start if task.queued_at is None else task.queued_at) - self.origin
            self._running[id(task)] = arrival

    def tool_stats(self, agent: str) -> dict[str, dict]:
        """Per tool of ``agent`` so far: ``calls``, ``hits``, ``miss_error_rate``
        (errors / calls that were not hits) and ``miss_latency_ms_median`` (of
        the last timed calls that were not hits; NaN if none was timed)."""
        with self._lock:
            out = {}
            for (a, name), st in self._tools.items():
                if a == agent:
                    misses = st["calls"] - st["hits"]
                    timed = st["miss_ms"]
                    out[name] = {"calls": st["calls"], "hits": st["hits"],
                                 "miss_error_rate": st["errors"] / misses if misses else 0.0,
                                 "miss_latency_ms_median": float(np.median(timed)) if timed else math.nan}
            return out

    # ------------------------------------------------------------------ windows
    def close(self, now_s: float | None = None) -> tuple[list[dict], list[TaskSample]]:
        """Close every window that can close at ``now_s`` (seconds since the
        telemetry started; default now). Returns the new metrics rows and
        per-task samples (one per declared or seen agent per window, in window
        then agent order)."""
        with self._lock:
            now = self.clock() - self.origin if now_s is None else now_s
            rows, samples = [], []
            w = self.window_s
            while True:
                end = (self.closed + 1) * w
                if now < end or (now < end + self.max_lateness_s and any(a < end for a in self._running.values())):
                    break
                mine = [r for r in self._done if r.arrival_s < end]
                self._done = [r for r in self._done if r.arrival_s >= end]
                for agent in self.agents:
                    row, smp = self._window(agent, sorted((r for r in mine if r.agent == agent),
                                                          key=lambda r: r.arrival_s))
                    rows.append(row)
                    samples.append(smp)
                self.closed += 1
            self.metric_rows += rows
            return rows, samples

    def _window(self, agent: str, recs: list[TaskRecord]) -> tuple[dict, TaskSample]:
        k, w = self.closed, self.window_s

        def col(name: str, dtype: type = float) -> np.ndarray:
            return np.array([getattr(r, name) for r in recs], dtype=dtype)

        data = WindowData()
        hits = np.array([sum(c.hit for c in r.tools) for r in recs], dtype=float)
        lookups = np.array([len(r.tools) for r in recs], dtype=float)
        data.add_tasks(self.slo_ms / 1000.0, 0, arrival=col("arrival_s"), start=col("start_s"), end=col("end_s"),
                       finish=col("end_s"), ok=col("ok", bool), success=col("success", bool),
                       confidence=col("confidence"), escalated=np.zeros(len(recs), bool),
                       degraded=np.zeros(len(recs), bool), attempts=np.ones(len(recs)), hits=hits, lookups=lookups,
                       calls=lookups - hits, tokens_in=col("tokens_in"), tokens_out=col("tokens_out"),
                       cost=col("cost_usd"), coord_req=np.zeros(len(recs)), coord_ok=np.zeros(len(recs)),
                       tier=col("tier", np.int64))
        workers = self.workers.get(agent)
        workers = workers() if callable(workers) else workers
        data.finish(agent=agent, index=k, t_start_s=k * w, t_end_s=(k + 1) * w, window_s=w,
                    concurrency=workers or 1, autonomy=math.nan, memory_mb=math.nan, memory_capacity_mb=1.0,
                    cached_keys=0, cache_capacity=0)
        row = window_metrics(data)
        row.update(dict.fromkeys(NOT_OBSERVED, math.nan))
        lookups_of: dict[str, list[bool]] = {}
        for r in recs:
            for c in r.tools:
                lookups_of.setdefault(c.name, []).append(c.hit)
        row.update({f"cache_hit_rate_{name}": sum(h) / len(h) for name, h in sorted(lookups_of.items())})
        if workers is None:
            row["cpu_percent"] = row["max_concurrency"] = math.nan
        if not any(r.queued for r in recs):
            row["queue_wait_ms_mean"] = math.nan
        if any(r.tier < 0 for r in recs):
            row["fast_tier_share"] = row["strong_tier_share"] = math.nan
        return row, task_sample(data)

    # ------------------------------------------------------------------ tables
    @property
    def metrics(self) -> pd.DataFrame:
        """The metrics rows of the closed windows (times in seconds since the telemetry started)."""
        with self._lock:
            return pd.DataFrame(self.metric_rows)

    def costs(self, by: str = "model") -> pd.DataFrame:
        """Tokens and cost (USD) per ``by``: ``model`` (model calls, by model
        name), ``session`` or ``agent`` (model calls and priced tool calls).
        Raises ValueError for another ``by``."""
        if by not in ("model", "session", "agent"):
            raise ValueError(f"by must be 'model', 'session' or 'agent', got {by!r}")
        with self._lock:
            calls = pd.DataFrame(self.calls, columns=["t_s", "kind", "name", "agent", "session", "input_tokens",
                                                      "output_tokens", "cost_usd"])
        if by == "model":
            calls = calls[calls["kind"] == "model"].rename(columns={"name": "model"})
        calls = calls.fillna({"session": ""})
        return (calls.groupby(by).agg(calls=("cost_usd", "size"), input_tokens=("input_tokens", "sum"),
                                      output_tokens=("output_tokens", "sum"), cost_usd=("cost_usd", "sum"))
                .reset_index())
