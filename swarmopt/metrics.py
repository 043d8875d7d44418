"""Window aggregation: one agent's task and message events -> one metrics row.

A task belongs to the window in which it *arrived*, except a decision reviewed
by the scenario's reviewer, which belongs to the window in which its reviewed
answer came back (:mod:`swarmopt.sim.review`: it is only known then); an
inbound message to the window in which its batch *started* being handled. :class:`WindowData` holds the
window's per-task table (also the source of the optimizer's per-task samples) and
:func:`window_rows` turns the tables of the windows an agent group closed into
rows of the metrics table, all at once. Field names follow the source design in
snake_case with units in the name.

:data:`METRICS` says, for every metric the optimizer thresholds, targets or
judges, which way is better and how a change of it is tested; detection,
strategies, stabilization and measurement all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from swarmopt.schema import TIERS

TOOL_RESPONSE_KB = 8.0
MESSAGE_KB = 2.0

#: The per-task columns of a window's table, in row order.
TASK_FIELDS = (
    "arrival", "start", "end", "finish", "ok", "success", "confidence", "escalated", "degraded",
    "attempts", "hits", "lookups", "calls", "tokens_in", "tokens_out", "cost", "coord_req", "coord_ok",
    "tier", "ready", "token_held", "priority", "timeouts", "timed_out_s", "attempt_s", "call_errors", "model_cost",
    "review_wait", "stolen", "arm", "work_s",
)
COLUMN = {f: i for i, f in enumerate(TASK_FIELDS)}
#: The per-tool rows of a window (:meth:`WindowData.add_table`): per decision and tool, USD paid, calls, failed calls.
PER_TOOL_FIELDS = ("cost", "calls", "errors")
_BOOL_FIELDS = frozenset(("ok", "success", "escalated", "degraded", "token_held", "arm"))
_INT_FIELDS = frozenset(("attempts", "hits", "lookups", "calls", "tier", "priority", "timeouts", "call_errors"))
#: Fields a caller of :meth:`WindowData.add_tasks` may leave out, and their value then (another field's name: its
#: values): a decision no rate limit held back is admitted when it arrives; a real agent has no timeout or tier
#: price model: no timeout, no failed call, attempt duration, model cost and calls' times unknown (NaN).
OPTIONAL_FIELDS = {"ready": "arrival", "token_held": 0.0, "priority": 0.0, "timeouts": 0.0, "timed_out_s": 0.0,
                   "attempt_s": np.nan, "call_errors": 0.0, "model_cost": np.nan, "review_wait": 0.0,
                   "stolen": 0.0, "arm": 0.0, "work_s": np.nan}
_EMPTY = np.zeros((len(TASK_FIELDS), 0))
_NO_PER_TOOL = np.zeros((len(PER_TOOL_FIELDS), 0, 0))  # shared, as _EMPTY: nothing to write in either
(_ARRIVAL, _START, _END, _FINISH, _OK, _SUCCESS, _CONF, _ESCALATED, _DEGRADED, _ATTEMPTS, _HITS, _LOOKUPS, _CALLS,
 _TOKENS_IN, _TOKENS_OUT, _COST, _COORD_REQ, _COORD_OK, _TIER, _READY, _TOKEN_HELD, _PRIORITY, _TIMEOUTS,
 _TIMED_OUT_S, _ATTEMPT_S, _CALL_ERRORS, _MODEL_COST, _REVIEW_WAIT, _STOLEN, _ARM, _WORK_S) = range(len(TASK_FIELDS))
# integer-valued columns whose per-window sums are exact in float64 whatever the order of summation
_COUNTED = [_OK, _SUCCESS, _ESCALATED, _HITS, _LOOKUPS, _CALLS, _TOKENS_IN, _TOKENS_OUT, _COORD_REQ, _COORD_OK,
            _TIMEOUTS, _CALL_ERRORS, _ATTEMPTS, _STOLEN]


WINDOW_EPS = 1e-9
"""Windows of a time a rounding error short of a boundary count it in the next one (:func:`window_index`)."""


def window_index(t, window_s: float):
    """Index of the window that holds time ``t`` (s; a float or an array):
    ``floor(t / window_s + WINDOW_EPS)``, a time a rounding error short of a boundary
    counting in the next window. An int for a float, int64 for an array."""
    k = t / window_s + WINDOW_EPS
    if isinstance(k, np.ndarray):  # np.floor is floor division by 1.0 bit for bit, and far faster on arrays
        return np.floor(k).astype(np.int64)
    return int(k // 1.0)


class WindowData:
    """Events of one agent in one window.

    Tasks are kept as a table: a float64 array of shape (len(TASK_FIELDS),
    decisions), one row per field of :data:`TASK_FIELDS` (bools as 0/1, counts
    as whole numbers, ``review_wait`` in s), columns in arrival order: the
    engine adds the tasks of consecutive spans in time order, each sorted by
    arrival, and :meth:`finish` sorts the reviewed decisions (added as their
    reviews come back, :meth:`add_late`) in. Beside it, the cache figures of
    the window: hits per tool (``tool_hits``, in the engine's padded tool
    order), entries evicted by a size bound and dropped by invalidations; and
    ``reviews`` and ``review_busy_s``, the review tasks of a reviewer's desk
    that started in the window and its reviewers' busy time within it;
    ``lent_s``, the seconds its workers served other replicas' decisions less
    those other replicas' workers served its own (work stealing, by the
    decisions' arrival windows), so that ``cpu_percent`` is its own workers'.
    """

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._late = False
        self._tool_chunks: list[np.ndarray] = []
        self._held_chunks: list[np.ndarray] = []
        self.table = _EMPTY
        self.per_tool = _NO_PER_TOOL
        self.inbox_handled = 0
        self.inbox_in_time = 0
        self.inbox_shed = 0
        self.conflicts = 0
        self.messages_sent = 0
        self.arrivals = 0
        self.reviews = 0
        self.review_busy_s = 0.0
        self.lent_s = 0.0
        self.slo_s = 2.0
        self.info: dict = {}
        self.tool_hits: np.ndarray | None = None
        self.tool_held_s: np.ndarray | None = None
        self.cache_evictions = 0
        self.cache_invalidations = 0
        self._arrays: dict[str, np.ndarray] | None = None

    def add_table(self, table: np.ndarray, slo_s: float, messages_sent: int = 0,
                  tool_hits: np.ndarray | None = None, tool_held_s: np.ndarray | None = None,
                  per_tool: np.ndarray | None = None, arrivals: int | None = None) -> None:
        """Append a span's tasks: ``table`` of shape (len(TASK_FIELDS), n), and
        their cache hits per tool (tools,) and the seconds of worker time each of
        their tool calls held (tools, n) when given, and ``per_tool`` (len(PER_TOOL_FIELDS),
        tools, n): per decision and tool (in the agent's order, possibly padded:
        see :meth:`finish`) the USD it paid, the calls it made and the calls
        that failed; ``arrivals``: the decisions that arrived (default n; more
        when some wait for their review, :meth:`add_late`)."""
        self._chunks.append(table)
        if per_tool is not None:
            self._tool_chunks.append(per_tool)
        self.slo_s = slo_s
        self.messages_sent += messages_sent
        self.arrivals += table.shape[1] if arrivals is None else arrivals
        if tool_hits is not None:
            self.tool_hits = tool_hits if self.tool_hits is None else self.tool_hits + tool_hits
        if tool_held_s is not None:
            self._held_chunks.append(tool_held_s)

    def add_cache(self, evictions: int = 0, invalidations: int = 0) -> None:
        """Count cache entries evicted by a size bound and dropped by invalidations."""
        self.cache_evictions += evictions
        self.cache_invalidations += invalidations

    def add_tasks(self, slo_s: float, messages_sent: int = 0, **cols: np.ndarray) -> None:
        """Append tasks given as named columns, one array of shape (n,) per
        field of :data:`TASK_FIELDS` (for callers outside the engine, e.g.
        :mod:`swarmopt.instrument`); the fields of :data:`OPTIONAL_FIELDS` may
        be left out. Raises KeyError naming a missing field."""
        missing = [f for f in TASK_FIELDS if f not in cols and f not in OPTIONAL_FIELDS]
        if missing:
            raise KeyError(f"add_tasks: missing column(s) {missing}")
        n = len(cols["arrival"])
        for f, default in OPTIONAL_FIELDS.items():
            if f not in cols:
                cols[f] = cols[default] if isinstance(default, str) else np.full(n, default)
        self.add_table(np.vstack([np.asarray(cols[f], dtype=float) for f in TASK_FIELDS]), slo_s, messages_sent)

    def add_late(self, table: np.ndarray, per_tool: np.ndarray | None = None) -> None:
        """Append reviewed decisions whose answer came back in this window, with
        their per-tool figures (as :meth:`add_table`'s); any arrival order:
        :meth:`finish` sorts the table by arrival."""
        self._chunks.append(table)
        if per_tool is not None:
            self._tool_chunks.append(per_tool)
        self._late = True

    def add_inbox(self, handled: int, in_time: int, conflicts: int, shed: int) -> None:
        """Count handled and shed inbox messages."""
        self.inbox_handled += handled
        self.inbox_in_time += in_time
        self.conflicts += conflicts
        self.inbox_shed += shed

    def tasks_so_far(self) -> np.ndarray:
        """The table of the tasks added so far (before :meth:`finish`)."""
        c = self._chunks
        return c[0] if len(c) == 1 else np.concatenate(c, axis=1) if c else _EMPTY

    def finish(self, **info) -> None:
        """Freeze the table; ``info`` holds the window's context (agent, index,
        times, concurrency, autonomy, memory figures and, optionally,
        ``tools``: the names of the first rows of the per-tool figures)."""
        self.table = self.tasks_so_far()
        c = self._tool_chunks
        if c:
            self.per_tool = c[0] if len(c) == 1 else np.concatenate(c, axis=2)
        if self._held_chunks:  # one sum over the window's decisions, whatever the spans that served them
            self.tool_held_s = np.concatenate(self._held_chunks, axis=1).sum(axis=1)
        if self._late:  # reviewed decisions added as their answers came back: into arrival order
            order = np.argsort(self.table[_ARRIVAL], kind="stable")
            self.table = self.table[:, order]
            if self.per_tool.shape[2] == order.size:
                self.per_tool = self.per_tool[:, :, order]
        # contiguous: numpy sums a strided view (a window that is one slice of a larger pass, or a reordering of
        # one) in another order than pairwise, and passes are cut differently per runtime and tick
        self.per_tool = np.ascontiguousarray(self.per_tool)
        self._chunks = []
        self._tool_chunks = []
        self._held_chunks = []
        self.info = info

    def column(self, field: str) -> np.ndarray:
        """One field of the finished window, as float64 (a view of the table)."""
        return self.table[COLUMN[field]]

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every field of the finished window with its own dtype (bool, int64 or float64)."""
        if self._arrays is None:
            t = self.table
            self._arrays = {f: t[i] != 0 if f in _BOOL_FIELDS else t[i].astype(np.int64) if f in _INT_FIELDS
                            else t[i] for i, f in enumerate(TASK_FIELDS)}
        return self._arrays

    @property
    def response_ms(self) -> np.ndarray:
        """Per-decision response time (ms): arrival to final answer, review included."""
        t = self.table
        return (t[_FINISH] - t[_ARRIVAL]) * 1000.0


_QUANTILES = np.array([0.50, 0.90, 0.95, 0.99])


def quantiles(x: np.ndarray, q: np.ndarray = _QUANTILES) -> np.ndarray:
    """Quantiles ``q`` (fractions) of ``x`` (n,), numpy's default linear
    interpolation, in one sort; NaN when ``x`` is empty."""
    if not x.size:
        return np.full(len(q), np.nan)
    s = np.sort(x)
    pos = (s.size - 1) * q
    lo = pos.astype(int)
    hi = np.minimum(lo + 1, s.size - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _segment_quantiles(x: np.ndarray, sizes: np.ndarray, starts: np.ndarray, q: np.ndarray = _QUANTILES
                       ) -> np.ndarray:
    """:func:`quantiles` of every segment of ``x`` (consecutive, of ``sizes``,
    starting at ``starts``) in one sort: (segments, len(q)), NaN rows for empty
    segments."""
    if len(sizes) == 1:
        return quantiles(x, q)[None, :]
    pos = (np.maximum(sizes, 1) - 1)[:, None] * q
    lo = pos.astype(int)
    hi = np.minimum(lo + 1, np.maximum(sizes, 1)[:, None] - 1)
    width = int(sizes.max())
    if len(sizes) * width <= 4 * x.size + 256:
        # segments of similar sizes: one row each, sorted along rows; padded with NaN, which sorts last after any
        # NaN of the segment's own (as in lexsort), so a segment's first ``size`` sorted values are lexsort's
        seg = np.repeat(np.arange(len(sizes)), sizes)
        rows = np.full((len(sizes), max(width, 1)), np.nan)
        rows[seg, np.arange(x.size) - starts[seg]] = x
        rows.sort(axis=1)
        k = np.arange(len(sizes))[:, None]
        lo_v, hi_v = rows[k, lo], rows[k, hi]
    else:
        s = x[np.lexsort((x, np.repeat(np.arange(len(sizes)), sizes)))]
        base = starts[:, None]
        lo_v, hi_v = s[np.minimum(base + lo, max(x.size - 1, 0))], s[np.minimum(base + hi, max(x.size - 1, 0))]
    out = lo_v + (hi_v - lo_v) * (pos - lo)
    out[sizes == 0] = np.nan
    return out


def window_rows(windows: list[WindowData]) -> list[dict]:
    """The metrics rows of finished windows (any agents), in one vectorized pass.

    ``decision_count``: the decisions of the window's table (a reviewed one
    counts where its answer came back); ``arrival_rate_per_s``: decisions that
    arrived in the window / window length; ``throughput_per_s``: decisions a
    worker let go of in the window (whenever they arrived) / window length;
    ``queue_length``: decisions arrived and not yet taken by a worker at the
    window's end (throttled ones included). The last two are the engine's
    (``info`` ``completed`` and ``queued``), NaN for an observed agent.

    Scores (all in [0, 1]; NaN when the window has no event of the kind):

    * ``success_rate``: decisions whose final answer was right / decisions.
    * ``average_confidence``: mean confidence of decisions that had a valid attempt.
    * ``error_rate``: decisions with no valid attempt (every attempt hit a tool
      error or the timeout) / decisions.
    * ``adaptation_score``: of the decisions that met trouble (a retry or a tool
      skipped by an open breaker), the share that still succeeded; 1 if none did.
    * ``coordination_score``: (coordination requests met in time + inbound
      messages handled in time) / (coordination requests + inbound messages
      handled or shed). A request is one downstream message a decision needs to send; it
      is met in time if the decision succeeded and the message arrived within
      the agent's ``coordination_deadline_s`` of the decision's arrival.
    * ``resource_efficiency``: worker busy time spent on decisions that
      succeeded / all worker busy time.
    * ``goal_progress``: decisions that succeeded within the response-time SLO /
      decisions.
    * ``escalation_rate``: decisions sent to the Orchestrator's review / decisions.
    * ``review_wait_ms_mean``: of this agent's reviewed decisions in the
      window, the mean wait in the reviewer's queue (request arrival to the
      start of its review); NaN when none was escalated, 0 in a scenario with
      no reviewer (the review is then a fixed delay).
    * ``reviews`` and ``review_utilization`` (the reviewer's own row; 0 and NaN
      on other agents): review tasks whose service started in the window, and
      the reviewers' busy time within the window / (reviewers x window).
    * ``cache_hit_rate``: the per-lookup hit ratio, cache hits / cache lookups.
      A decision looks each of its tools up once, when it arrives (lookups =
      decisions x tools); a hit answers every attempt of that decision.
    * ``tool_call_hit_rate``: cache hits / (cache hits + tool calls made), the
      calls counting every attempt's call of a missed tool (retries included)
      and none for a call an open circuit breaker rejected. Retries of missed
      tools pull it below ``cache_hit_rate``; breaker rejections can push it
      above.
    * ``tool_error_rate``: tool calls made that failed / tool calls made (the
      failure rate a circuit breaker sees; calls it rejected are not made).
    * ``degraded_rate``: decisions that went on without a tool an open circuit
      breaker skipped / decisions.
    * ``timeout_rate``: attempts that ran into ``timeout_s`` / attempts made;
      ``timeout_busy_share``: worker time spent in those attempts (each holds
      its worker for the whole timeout) / all worker busy time.
    * ``attempt_ms_p50``, ``attempt_ms_p99``: quantiles of the duration of the
      decisions' valid attempts (model call + tools, the latency a timeout
      must allow for; attempts cut by the timeout are not in it: censored).

    Costs (USD): ``cost_usd`` = ``model_cost_usd`` (tokens x the price of the
    tier that served each decision; per tier ``model_cost_usd.<tier>``) +
    ``tool_cost_usd`` (the calls made of each paid tool; per tool
    ``tool_cost_usd.<tool>``); ``cost_usd_per_hour`` = ``cost_usd`` x 3600 /
    window; ``cost_per_success_usd`` = ``cost_usd`` / decisions that succeeded
    (the spend efficiency a budget cares about). Per tool also ``tool_calls.<tool>`` (calls made) and
    ``tool_error_rate.<tool>`` (of them, the share that failed). Per-tool
    columns exist for the tools named in the window's ``tools``; with no
    ``tools`` (not observed) ``tool_cost_usd`` is NaN.
    * ``cache_hit_rate_<tool>``: ``cache_hit_rate`` of one tool (hits of its
      lookups / decisions), one column per tool of the agent.
    * ``cache_evictions``: live entries a size bound (``max_cache_size``)
      evicted in the window; ``cache_eviction_rate`` = evictions / lookups;
      ``cache_invalidations``: live entries dropped by invalidations.

    Waits (ms, means over the window's decisions): ``queue_wait_ms_mean`` from
    arrival to a worker's start, the throttle wait included;
    ``throttle_wait_ms_mean`` from arrival to admission through the rate
    limits (:mod:`swarmopt.sim.ratelimit`); ``token_throttle_wait_ms_mean``
    the part of it of decisions a model-token bucket held back (the rest is the
    tools' call limits); ``urgent_wait_ms_mean`` the queueing wait of the
    decisions of priority class 0 (:class:`~swarmopt.schema.ActionMix`
    ``priority``), NaN in a window with one class only. ``stolen_share``: the
    share of the decisions another replica's worker served (work stealing,
    :func:`swarmopt.sim.sched.steal`). ``tool_hold_share``:
    the largest share of the worker busy time one tool's calls held (its
    index among the agent's tools in ``tool_hold_index``), and per tool
    ``tool_hold_share.<tool>``, that tool's share.

    Resources (simulated): ``cpu_percent`` = worker busy time (``lent_s`` included) / (workers x
    window), capped at 100; ``memory_percent`` = modelled memory / capacity, of which the
    caches' live entries hold ``cache_memory_percent`` (NaN where not modelled);
    ``network_kbps`` from tool calls made and messages; ``storage_percent`` = cached
    keys / key capacity.

    Counts are summed for all windows at once; each float sum (response, wait
    and busy times, confidence, cost) is numpy's sum over that window's values
    alone, so a row does not depend on which windows are computed together.
    """
    if not windows:
        return []
    tables = [w.table for w in windows]
    sizes = np.array([t.shape[1] for t in tables])
    x = tables[0] if len(tables) == 1 else np.concatenate(tables, axis=1)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    starts = bounds[:-1]
    resp = (x[_FINISH] - x[_ARRIVAL]) * 1000.0
    wait = (x[_START] - x[_ARRIVAL]) * 1000.0
    throttle = (x[_READY] - x[_ARRIVAL]) * 1000.0
    token_throttle = throttle * x[_TOKEN_HELD]
    busy = x[_END] - x[_START]
    busy_ms = busy * 1000.0
    cost = x[_COST]
    success = x[_SUCCESS] != 0
    ok = x[_OK] != 0
    trouble = (x[_ATTEMPTS] > 1) | (x[_DEGRADED] != 0)
    slo_ms = np.repeat([w.slo_s * 1000.0 for w in windows], sizes)
    urgent = x[_PRIORITY] == 0
    derived = np.stack([trouble, success & trouble, success & (resp <= slo_ms), x[_TIER] == 0, x[_TIER] == 2,
                        x[_DEGRADED] != 0, urgent])
    counts = np.concatenate((x[_COUNTED], derived))
    # per-window totals of whole numbers (one add.reduceat): exact in any order of summation
    totals = _segment_sums(counts, sizes, starts)
    tot = totals.tolist()
    busy_ok, conf_ok = busy[success], x[_CONF][ok]
    ok_sizes = totals[:, 0].astype(np.int64)
    ok_bounds = np.concatenate(([0], np.cumsum(ok_sizes)))
    succ_bounds = np.concatenate(([0], np.cumsum(totals[:, 1]))).astype(np.int64).tolist()
    qs = _segment_quantiles(resp, sizes, starts).tolist()
    att_qs = _segment_quantiles(x[_ATTEMPT_S][ok] * 1000.0, ok_sizes, ok_bounds[:-1], _ATTEMPT_QUANTILES).tolist()
    ok_bounds = ok_bounds.tolist()
    tier = x[_TIER]
    mc = x[_MODEL_COST]
    extra = _segment_sums(np.stack([x[_TIMED_OUT_S], mc] + [np.where(tier == i, mc, 0.0) for i in range(len(TIERS))]),
                          sizes, starts).tolist()
    nan = float("nan")
    add = np.add.reduce
    review_wait_ms = x[_REVIEW_WAIT] * 1000.0
    rows = []
    for k, (w, n, lo, hi) in enumerate(zip(windows, sizes.tolist(), bounds[:-1].tolist(), bounds[1:].tolist(),
                                           strict=True)):
        info = w.info
        desk = info.get("review_workers", 0)
        (n_ok, n_success, n_esc, hits, lookups, calls, tok_in, tok_out, coord_req, coord_ok, n_timeouts,
         call_errors, n_attempts, n_stolen, n_trouble, n_trouble_success, n_goal, n_fast, n_strong, n_degraded,
         n_urgent) = tot[k]
        timed_out_s, model_cost, *tier_cost = extra[k]
        window_s = info["window_s"]
        busy_total = float(add(busy[lo:hi]))
        cost_total = float(add(cost[lo:hi]))
        inbound = w.inbox_handled + w.inbox_shed
        coord_den = coord_req + inbound
        q = qs[k]
        rows.append({
            "agent": info["agent"],
            "window": info["index"],
            "t_start_s": info["t_start_s"],
            "t_end_s": info["t_end_s"],
            "decision_count": n,
            "arrival_rate_per_s": w.arrivals / window_s,
            "throughput_per_s": info.get("completed", nan) / window_s,
            "queue_length": info.get("queued", nan),
            "success_rate": n_success / n if n else nan,
            "average_confidence": float(add(conf_ok[ok_bounds[k]:ok_bounds[k + 1]])) / n_ok if n_ok else nan,
            "response_time_ms_mean": float(add(resp[lo:hi])) / n if n else nan,
            "response_time_ms_p50": q[0],
            "response_time_ms_p90": q[1],
            "response_time_ms_p95": q[2],
            "response_time_ms_p99": q[3],
            "queue_wait_ms_mean": float(add(wait[lo:hi])) / n if n else nan,
            "throttle_wait_ms_mean": float(add(throttle[lo:hi])) / n if n else nan,
            "token_throttle_wait_ms_mean": float(add(token_throttle[lo:hi])) / n if n else nan,
            "urgent_wait_ms_mean": (float(add(wait[lo:hi][urgent[lo:hi]])) / int(n_urgent)
                                    if 0 < n_urgent < n else nan),
            "stolen_share": n_stolen / n if n else nan,
            "service_time_ms_mean": float(add(busy_ms[lo:hi])) / n if n else nan,
            "adaptation_score": n_trouble_success / n_trouble if n_trouble else 1.0,
            "coordination_score": (coord_ok + w.inbox_in_time) / coord_den if coord_den else nan,
            "resource_efficiency": (float(add(busy_ok[succ_bounds[k]:succ_bounds[k + 1]])) / busy_total
                                    if busy_total > 0 else nan),
            "goal_progress": n_goal / n if n else nan,
            "cost_usd": cost_total,
            "cost_per_decision_usd": cost_total / n if n else nan,
            "input_tokens": int(tok_in),
            "output_tokens": int(tok_out),
            "cache_hit_rate": hits / lookups if lookups else nan,
            "tool_call_hit_rate": hits / (hits + calls) if hits + calls else nan,
            "cache_evictions": w.cache_evictions,
            "cache_eviction_rate": w.cache_evictions / lookups if lookups else nan,
            "cache_invalidations": w.cache_invalidations,
            "error_rate": (n - n_ok) / n if n else nan,
            "escalation_rate": n_esc / n if n else nan,
            "review_wait_ms_mean": float(add(review_wait_ms[lo:hi])) / int(n_esc) if n_esc else nan,
            "reviews": w.reviews,
            "review_utilization": w.review_busy_s / (desk * window_s) if desk else nan,
            "coordination_requests": int(coord_req),
            "messages_sent": w.messages_sent,
            "messages_handled": w.inbox_handled,
            "messages_shed": w.inbox_shed,
            "inbox_in_time_rate": w.inbox_in_time / inbound if inbound else nan,
            "conflicts": w.conflicts,
            "cpu_percent": min(100.0, 100.0 * max(0.0, busy_total + w.lent_s) / (info["concurrency"] * window_s)),
            "memory_percent": 100.0 * info["memory_mb"] / info["memory_capacity_mb"],
            "cache_memory_percent": 100.0 * info.get("cache_mb", nan) / info["memory_capacity_mb"],
            "network_kbps": (calls * TOOL_RESPONSE_KB + (w.messages_sent + w.inbox_handled) * MESSAGE_KB) * 8.0
            / window_s,
            "storage_percent": 100.0 * info["cached_keys"] / info["cache_capacity"] if info["cache_capacity"] else 0.0,
            "fast_tier_share": n_fast / n if n else nan,
            "strong_tier_share": n_strong / n if n else nan,
            "max_concurrency": info["concurrency"],
            "autonomy": info["autonomy"],
            "tool_error_rate": call_errors / calls if calls else nan,
            "degraded_rate": n_degraded / n if n else nan,
            "timeout_rate": n_timeouts / int(n_attempts) if n_attempts else nan,
            "timeout_busy_share": timed_out_s / busy_total if busy_total > 0 else nan,
            "attempt_ms_p50": att_qs[k][0],
            "attempt_ms_p99": att_qs[k][1],
            "cost_usd_per_hour": cost_total * 3600.0 / window_s,
            "cost_per_success_usd": cost_total / int(n_success) if n_success else nan,
            "model_cost_usd": model_cost,
            **{f"model_cost_usd.{name}": c for name, c in zip(TIERS, tier_cost, strict=True)},
            **_per_tool(w),
            **_tool_hit_rates(w, w.arrivals),
            **_tool_hold(w, busy_total),
        })
    return rows


_ATTEMPT_QUANTILES = np.array([0.50, 0.99])


def _segment_sums(x: np.ndarray, sizes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of every segment of the rows of ``x`` (rows, n): (segments, rows),
    each over that segment's values alone (so it does not depend on the other
    segments), 0 for an empty segment."""
    out = np.zeros((len(sizes), x.shape[0]))
    full = sizes > 0
    if full.any():
        out[full] = np.add.reduceat(x, starts[full], axis=1).T
    return out


def _per_tool(w: WindowData) -> dict[str, float]:
    """``tool_cost_usd`` and, per tool named in the window's ``tools``
    (padded rows of a group's layout are left out), ``tool_cost_usd.<tool>``,
    ``tool_calls.<tool>`` and ``tool_error_rate.<tool>`` (NaN with no call)."""
    names = w.info.get("tools")
    if names is None:  # a window whose tools were not observed (e.g. swarmopt.instrument): no made-up 0
        return {"tool_cost_usd": float("nan")}
    k = len(names)
    cost, calls, errors = (w.per_tool.sum(axis=2)[:, :k].tolist() if w.per_tool.size
                           else [[0.0] * k] * len(PER_TOOL_FIELDS))
    out = {"tool_cost_usd": sum(cost)}
    for name, c, n, e in zip(names, cost, calls, errors, strict=True):
        out[f"tool_cost_usd.{name}"] = c
        out[f"tool_calls.{name}"] = int(n)
        out[f"tool_error_rate.{name}"] = e / n if n else float("nan")
    return out
def _tool_hit_rates(w: WindowData, n: int) -> dict[str, float]:
    """``cache_hit_rate_<tool>`` of each of the window's tools (``info["tools"]``): hits / decisions that
    arrived in the window (they looked their tools up then)."""
    tools = w.info.get("tools", ())
    if not tools:
        return {}
    if not n or w.tool_hits is None:
        return {f"cache_hit_rate_{t}": float("nan") for t in tools}
    hits = w.tool_hits.tolist()
    return {f"cache_hit_rate_{t}": hits[j] / n for j, t in enumerate(tools)}


def _tool_hold(w: WindowData, busy_s: float) -> dict[str, float]:
    """``tool_hold_share``: the largest share of the window's worker busy time
    that one tool's calls held (timeouts cap a call), ``tool_hold_index``
    that tool's index in the window's tools, and ``tool_hold_share.<tool>``
    each tool's share; NaN without tools or busy time."""
    tools = w.info.get("tools", ())
    if not tools or w.tool_held_s is None or busy_s <= 0:
        return {"tool_hold_share": float("nan"), "tool_hold_index": float("nan")} | {
            f"tool_hold_share.{t}": float("nan") for t in tools}
    held = w.tool_held_s[:len(tools)]
    j = int(np.argmax(held))
    return {"tool_hold_share": float(held[j]) / busy_s, "tool_hold_index": float(j)} | {
        f"tool_hold_share.{t}": float(h) / busy_s for t, h in zip(tools, held.tolist(), strict=True)}


def window_metrics(w: WindowData) -> dict:
    """The metrics row of one finished window (see :func:`window_rows`)."""
    return window_rows([w])[0]


def health_score(row: dict, slo_ms: float = 2000.0) -> float:
    """An agent's health in [0, 1]: the mean of min(1, SLO / mean response time),
    success rate and coordination score (NaN parts are left out)."""
    parts = [
        min(1.0, slo_ms / row["response_time_ms_mean"]) if row["response_time_ms_mean"] > 0 else float("nan"),
        row["success_rate"],
        row["coordination_score"],
    ]
    vals = [p for p in parts if p == p]
    return sum(vals) / len(vals) if vals else float("nan")


def system_score(rows: list[dict], slo_ms: float = 2000.0) -> float:
    """Overall system score: decision-weighted mean of :func:`health_score` over agents."""
    return system_score_of(*(np.array([r[f] for r in rows], dtype=float) for f in (
        "response_time_ms_mean", "success_rate", "coordination_score", "decision_count")), slo_ms)


def system_score_of(response_ms: np.ndarray, success: np.ndarray, coordination: np.ndarray, decisions: np.ndarray,
                    slo_ms: float = 2000.0) -> float:
    """:func:`system_score` of agents given as arrays (agents,), with :func:`health_score`'s arithmetic per agent
    (the sum of its non-NaN parts over their count), so the same bits as row by row."""
    with np.errstate(invalid="ignore", divide="ignore"):
        parts = np.stack((np.where(response_ms > 0, np.minimum(1.0, slo_ms / response_ms), np.nan), success,
                          coordination))
        ok = ~np.isnan(parts)
        zeroed = np.where(ok, parts, 0.0)
        health = (zeroed[0] + zeroed[1] + zeroed[2]) / ok.sum(axis=0)
    use = ~np.isnan(health) & (decisions > 0)
    return float(np.average(health[use], weights=decisions[use])) if use.any() else float("nan")


@dataclass(frozen=True)
class MetricSpec:
    """How the optimizer reads one metric of the window rows.

    ``better``: "lower" or "higher". ``test``: how a change of the metric is
    judged (:func:`swarmopt.optimizer.measure.judge_change`): "mann-whitney" on
    its per-task values (location, tail and spread), "two-proportion" on its
    per-task 0/1 outcomes, or "welch-windows" on its window values, for a metric
    with no independent per-task unit (coordination counts messages handled in
    batches; resources are window figures of the simulated host). ``per_task``:
    the :class:`TaskSample` field whose per-task values the metric is the mean
    of, None for a per-window metric. ``covariates``: what a comparison of its
    window values adjusts for (:func:`swarmopt.optimizer.measure.adjusted_measure`):
    the window's time ("trend": a leak, a backlog) and arrival rate ("load").
    """

    better: str
    test: str
    per_task: str | None = None
    covariates: tuple[str, ...] = ("trend", "load")

    def worse(self, value: float, threshold: float) -> bool:
        """Whether ``value`` is past ``threshold`` on the bad side (False for NaN)."""
        return value > threshold if self.better == "lower" else value < threshold


_LATENCY = MetricSpec("lower", "mann-whitney", "response_ms")
_WINDOW_LOWER, _WINDOW_HIGHER = MetricSpec("lower", "welch-windows"), MetricSpec("higher", "welch-windows")
# Judged adjusted for the load only, no fitted trend: metrics a change moves in a step, or gradually while a cache
# fills, and that have no trend of their own, where 5 windows a side cannot tell the change from a trend. A cache's
# hit and eviction rates (only the lookup rate moves them); spend figures (a fitted trend turned a 22% saving into a
# 50% loss); the share of worker time hung calls hold (one cost timeout_tail's 30 -> 7.5 s cut its significance: a
# 54% drop judged at p = 0.23).
_STEP_LOWER = MetricSpec("lower", "welch-windows", covariates=("load",))
_STEP_HIGHER = MetricSpec("higher", "welch-windows", covariates=("load",))
METRICS: dict[str, MetricSpec] = {
    "response_time_ms_mean": _LATENCY, "response_time_ms_p50": _LATENCY, "response_time_ms_p90": _LATENCY,
    "response_time_ms_p95": _LATENCY, "response_time_ms_p99": _LATENCY,
    "cost_per_decision_usd": MetricSpec("lower", "mann-whitney", "cost_usd"),
    "service_time_ms_mean": MetricSpec("lower", "mann-whitney", "service_ms"),
    "success_rate": MetricSpec("higher", "two-proportion", "success"),
    "error_rate": MetricSpec("lower", "two-proportion", "error"),
    "coordination_score": _WINDOW_HIGHER,
    "inbox_in_time_rate": _WINDOW_HIGHER,
    "messages_handled": _WINDOW_HIGHER,  # inbox throughput, which a larger batch raises while a backlog waits
    "messages_shed": _WINDOW_LOWER,
    "throughput_per_s": _WINDOW_HIGHER,  # a saturated queue's is its bottleneck's capacity (measure.saturated)
    "queue_length": _WINDOW_LOWER,
    "queue_wait_ms_mean": _WINDOW_LOWER,
    "review_wait_ms_mean": _WINDOW_LOWER,
    "throttle_wait_ms_mean": _WINDOW_LOWER,
    "urgent_wait_ms_mean": _WINDOW_LOWER,
    "tool_hold_share": _WINDOW_LOWER,
    "timeout_busy_share": _STEP_LOWER,
    "cache_eviction_rate": _STEP_LOWER,
    "cache_hit_rate": _STEP_HIGHER,
    "cpu_percent": _WINDOW_LOWER,
    "memory_percent": _WINDOW_LOWER,
    "system_score": _WINDOW_HIGHER,  # of the whole system (:func:`system_score`), not of one row
    "cost_burn_rate": _STEP_LOWER,  # spend rate / budget (:mod:`swarmopt.optimizer.budget`), not of one row
    # spend figures: a change that makes fewer decisions pay (a cache hit) moves the mean, not the median of a
    # two-humped per-task cost, so they are judged on window means
    "cost_usd_per_hour": _STEP_LOWER,
    "cost_per_success_usd": _STEP_LOWER,
}
"""Metric name -> :class:`MetricSpec`: the one place that says which way is better."""


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of metric ``name``; raises ValueError naming the
    known metrics when there is none."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"no metric spec for '{name}'; known: {sorted(METRICS)}") from None


@dataclass(frozen=True)
class TaskSample:
    """The per-task sample of one agent over a window (or a span of windows).

    Shipped by the agent groups beside each metrics row, for the optimizer's
    canary judge (:mod:`swarmopt.optimizer.measure`); never written to the
    metrics table. Arrays have shape (decisions,), in arrival order (the judge
    corrects for autocorrelation along it): ``response_ms`` float32
    (:attr:`WindowData.response_ms`), ``success`` and ``ok`` bool (the final
    answer was right; the decision had a valid attempt, i.e. not an error),
    ``cost_usd`` float32 (USD per decision); for the live Prometheus export
    (:mod:`swarmopt.live.prom`) also ``tokens_in`` and ``tokens_out`` float32
    (tokens of every attempt's model call) and ``tier`` int8 (index into
    :data:`swarmopt.schema.TIERS` of the model tier that served it), empty when
    not recorded; ``arm`` bool, true for a decision served by the other arm of
    a split (:attr:`swarmopt.schema.Knobs.split`; empty: none was);
    ``service_ms`` float32, the decision's service time (ms a worker was busy
    with it, every attempt included; no queue or throttle wait); ``work_ms``
    float32, the times of its first attempt's calls summed (the model call
    and each tool it called, as a trace of its spans records them) up to the
    attempt's timeout (NaN when not recorded): its work whatever the order of
    the calls; ``attempts`` int8, the attempts it made (the first valid one
    ends them). The last two are the judge's control variates
    (:data:`swarmopt.optimizer.measure.COVARIATES`). About 29 bytes per
    decision.
    """

    agent: str
    t_start_s: float
    t_end_s: float
    response_ms: np.ndarray
    success: np.ndarray
    ok: np.ndarray
    cost_usd: np.ndarray
    tokens_in: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    tokens_out: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    tier: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    arm: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    service_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    work_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    attempts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    @property
    def n(self) -> int:
        """Number of decisions."""
        return int(self.response_ms.size)

    def of_arm(self, other: bool) -> "TaskSample":
        """The decisions of one arm of a split: the other arm's (``other``) or the rest."""
        arm = self.arm if self.arm.size == self.n else np.zeros(self.n, dtype=bool)
        keep = arm if other else ~arm
        return TaskSample(self.agent, self.t_start_s, self.t_end_s,
                          *(a[keep] if a.size == self.n else a for a in (getattr(self, f) for f in _SAMPLE_ARRAYS)))

    @property
    def error(self) -> np.ndarray:
        """Per decision, whether it had no valid attempt (bool), so ``error.mean()`` is the error rate."""
        return ~self.ok


def task_samples(windows: list[WindowData]) -> list[TaskSample]:
    """The :class:`TaskSample` of every finished window (their tables are
    already in arrival order: see :class:`WindowData`), converted in one pass."""
    if not windows:
        return []
    tables = [w.table for w in windows]
    x = tables[0] if len(tables) == 1 else np.concatenate(tables, axis=1)
    resp = ((x[_FINISH] - x[_ARRIVAL]) * 1000.0).astype(np.float32)
    success, ok, cost = x[_SUCCESS] != 0, x[_OK] != 0, x[_COST].astype(np.float32)
    tok_in, tok_out = x[_TOKENS_IN].astype(np.float32), x[_TOKENS_OUT].astype(np.float32)
    tier, arm = x[_TIER].astype(np.int8), x[_ARM] != 0
    service = ((x[_END] - x[_START]) * 1000.0).astype(np.float32)
    work = (x[_WORK_S] * 1000.0).astype(np.float32)
    made = np.minimum(x[_ATTEMPTS], 127).astype(np.int8)
    out, lo = [], 0
    for w, t in zip(windows, tables, strict=True):
        hi = lo + t.shape[1]
        info = w.info
        out.append(TaskSample(info["agent"], info["t_start_s"], info["t_end_s"], resp[lo:hi], success[lo:hi],
                              ok[lo:hi], cost[lo:hi], tok_in[lo:hi], tok_out[lo:hi], tier[lo:hi], arm[lo:hi],
                              service[lo:hi], work[lo:hi], made[lo:hi]))
        lo = hi
    return out


def task_sample(w: WindowData) -> TaskSample:
    """The :class:`TaskSample` of one finished window (see :func:`task_samples`)."""
    return task_samples([w])[0]


_SAMPLE_ARRAYS = [f.name for f in fields(TaskSample)][3:]


def pool_samples(samples: list[TaskSample]) -> TaskSample:
    """Concatenate consecutive samples of one agent (in time order) into one
    spanning them; an empty list gives an empty sample (agent "", NaN times)."""
    if not samples:
        e = np.zeros(0, dtype=np.float32)
        return TaskSample("", float("nan"), float("nan"), e, e.astype(bool), e.astype(bool), e)
    arrays = [np.concatenate([getattr(s, f) for s in samples]) for f in _SAMPLE_ARRAYS]
    return TaskSample(samples[0].agent, samples[0].t_start_s, samples[-1].t_end_s, *arrays)
