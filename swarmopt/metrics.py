"""Window aggregation: one agent's task and message events -> one metrics row.

A task belongs to the window in which it *arrived*; an inbound message to the
window in which its batch *started* being handled. :class:`WindowData` holds the
window's per-task arrays (also used by the optimizer's statistical tests) and
:func:`window_metrics` turns them into the row of the metrics table. Field names
follow the source design in snake_case with units in the name.

:data:`METRICS` says, for every metric the optimizer thresholds, targets or
judges, which way is better and how a change of it is tested; detection,
strategies, stabilization and measurement all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

TOOL_RESPONSE_KB = 8.0
MESSAGE_KB = 2.0

_TASK_FIELDS = (
    "arrival", "start", "end", "finish", "ok", "success", "confidence", "escalated", "degraded",
    "attempts", "hits", "lookups", "calls", "tokens_in", "tokens_out", "cost", "coord_req", "coord_ok",
    "tier",
)
_BOOL_FIELDS = ("ok", "success", "escalated", "degraded")


class WindowData:
    """Events of one agent in one window (arrays of shape (decisions,), in
    arrival order: the engine adds the tasks of consecutive spans in time
    order, each sorted by arrival)."""

    def __init__(self) -> None:
        self._chunks: dict[str, list[np.ndarray]] = {f: [] for f in _TASK_FIELDS}
        self.inbox_handled = 0
        self.inbox_in_time = 0
        self.conflicts = 0
        self.messages_sent = 0
        self.slo_s = 2.0
        self.info: dict = {}
        self.arrays: dict[str, np.ndarray] = {}

    def add_tasks(self, slo_s: float, messages_sent: int = 0, **cols: np.ndarray) -> None:
        """Append a segment's tasks (every field of ``_TASK_FIELDS``)."""
        for f in _TASK_FIELDS:
            self._chunks[f].append(np.asarray(cols[f]))
        self.slo_s = slo_s
        self.messages_sent += messages_sent

    def add_inbox(self, handled: int, in_time: int, conflicts: int) -> None:
        """Count one handled inbox batch."""
        self.inbox_handled += handled
        self.inbox_in_time += in_time
        self.conflicts += conflicts

    def finish(self, **info) -> None:
        """Freeze the arrays; ``info`` holds the window's context (agent, index,
        times, concurrency, autonomy, memory figures)."""
        self.arrays = {
            f: (c[0] if len(c) == 1 else np.concatenate(c) if c else np.zeros(0, bool if f in _BOOL_FIELDS else float))
            for f, c in self._chunks.items()
        }
        self._chunks = {}
        self.info = info

    @property
    def response_ms(self) -> np.ndarray:
        """Per-decision response time (ms): arrival to final answer, review included."""
        a = self.arrays
        return (a["finish"] - a["arrival"]) * 1000.0


def _mean(x: np.ndarray) -> float:
    return float(x.sum()) / x.size if x.size else float("nan")


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


def window_metrics(w: WindowData) -> dict:
    """The metrics row of a finished window.

    Scores (all in [0, 1]; NaN when the window has no event of the kind):

    * ``success_rate``: decisions whose final answer was right / decisions.
    * ``average_confidence``: mean confidence of decisions that had a valid attempt.
    * ``error_rate``: decisions with no valid attempt (every attempt hit a tool
      error or the timeout) / decisions.
    * ``adaptation_score``: of the decisions that met trouble (a retry or a tool
      skipped by an open breaker), the share that still succeeded; 1 if none did.
    * ``coordination_score``: (coordination requests met in time + inbound
      messages handled in time) / (coordination requests + inbound messages
      handled). A request is one downstream message a decision needs to send; it
      is met in time if the decision succeeded and the message arrived within
      the agent's ``coordination_deadline_s`` of the decision's arrival.
    * ``resource_efficiency``: worker busy time spent on decisions that
      succeeded / all worker busy time.
    * ``goal_progress``: decisions that succeeded within the response-time SLO /
      decisions.
    * ``escalation_rate``: decisions sent to the Orchestrator's review / decisions.
    * ``cache_hit_rate``: the per-lookup hit ratio, cache hits / cache lookups.
      A decision looks each of its tools up once, when it arrives (lookups =
      decisions x tools); a hit answers every attempt of that decision.
    * ``tool_call_hit_rate``: cache hits / (cache hits + tool calls made), the
      calls counting every attempt's call of a missed tool (retries included)
      and none for a call an open circuit breaker rejected. Retries of missed
      tools pull it below ``cache_hit_rate``; breaker rejections can push it
      above.

    Resources (simulated): ``cpu_percent`` = worker busy time / (workers x
    window), capped at 100; ``memory_percent`` = modelled memory / capacity;
    ``network_kbps`` from tool calls made and messages; ``storage_percent`` = cached
    keys / key capacity.
    """
    a, info = w.arrays, w.info
    n = int(a["arrival"].size)
    window_s = info["window_s"]
    resp = w.response_ms
    busy = a["end"] - a["start"]
    success = a["success"]
    trouble = (a["attempts"] > 1) | a["degraded"]
    hits, lookups, calls = float(a["hits"].sum()), float(a["lookups"].sum()), float(a["calls"].sum())
    coord_den = float(a["coord_req"].sum()) + w.inbox_handled
    busy_total = float(busy.sum())
    q = quantiles(resp).tolist()
    conf = a["confidence"]
    row = {
        "agent": info["agent"],
        "window": info["index"],
        "t_start_s": info["t_start_s"],
        "t_end_s": info["t_end_s"],
        "decision_count": n,
        "arrival_rate_per_s": n / window_s,
        "success_rate": _mean(success),
        "average_confidence": _mean(conf[a["ok"]]),
        "response_time_ms_mean": _mean(resp),
        "response_time_ms_p50": q[0],
        "response_time_ms_p90": q[1],
        "response_time_ms_p95": q[2],
        "response_time_ms_p99": q[3],
        "queue_wait_ms_mean": _mean((a["start"] - a["arrival"]) * 1000.0),
        "service_time_ms_mean": _mean(busy * 1000.0),
        "adaptation_score": _mean(success[trouble]) if trouble.any() else 1.0,
        "coordination_score": (float(a["coord_ok"].sum()) + w.inbox_in_time) / coord_den if coord_den else float("nan"),
        "resource_efficiency": float(busy[success].sum()) / busy_total if busy_total > 0 else float("nan"),
        "goal_progress": _mean(success & (resp <= w.slo_s * 1000.0)),
        "cost_usd": float(a["cost"].sum()),
        "cost_per_decision_usd": _mean(a["cost"]),
        "input_tokens": int(a["tokens_in"].sum()),
        "output_tokens": int(a["tokens_out"].sum()),
        "cache_hit_rate": hits / lookups if lookups else float("nan"),
        "tool_call_hit_rate": hits / (hits + calls) if hits + calls else float("nan"),
        "error_rate": _mean(~a["ok"]),
        "escalation_rate": _mean(a["escalated"]),
        "coordination_requests": int(a["coord_req"].sum()),
        "messages_sent": w.messages_sent,
        "messages_handled": w.inbox_handled,
        "inbox_in_time_rate": w.inbox_in_time / w.inbox_handled if w.inbox_handled else float("nan"),
        "conflicts": w.conflicts,
        "cpu_percent": min(100.0, 100.0 * busy_total / (info["concurrency"] * window_s)),
        "memory_percent": 100.0 * info["memory_mb"] / info["memory_capacity_mb"],
        "network_kbps": (calls * TOOL_RESPONSE_KB + (w.messages_sent + w.inbox_handled) * MESSAGE_KB) * 8.0 / window_s,
        "storage_percent": 100.0 * info["cached_keys"] / info["cache_capacity"] if info["cache_capacity"] else 0.0,
        "fast_tier_share": _mean(a["tier"] == 0),
        "strong_tier_share": _mean(a["tier"] == 2),
        "max_concurrency": info["concurrency"],
        "autonomy": info["autonomy"],
    }
    return row


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
    pairs = [(health_score(r, slo_ms), r["decision_count"]) for r in rows]
    pairs = [(h, n) for h, n in pairs if h == h and n > 0]
    if not pairs:
        return float("nan")
    h, n = zip(*pairs, strict=True)
    return float(np.average(h, weights=n))


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
    of, None for a per-window metric.
    """

    better: str
    test: str
    per_task: str | None = None

    def worse(self, value: float, threshold: float) -> bool:
        """Whether ``value`` is past ``threshold`` on the bad side (False for NaN)."""
        return value > threshold if self.better == "lower" else value < threshold


_LATENCY = MetricSpec("lower", "mann-whitney", "response_ms")
_WINDOW_LOWER, _WINDOW_HIGHER = MetricSpec("lower", "welch-windows"), MetricSpec("higher", "welch-windows")
METRICS: dict[str, MetricSpec] = {
    "response_time_ms_mean": _LATENCY, "response_time_ms_p50": _LATENCY, "response_time_ms_p90": _LATENCY,
    "response_time_ms_p95": _LATENCY, "response_time_ms_p99": _LATENCY,
    "cost_per_decision_usd": MetricSpec("lower", "mann-whitney", "cost_usd"),
    "success_rate": MetricSpec("higher", "two-proportion", "success"),
    "error_rate": MetricSpec("lower", "two-proportion", "error"),
    "coordination_score": _WINDOW_HIGHER,
    "inbox_in_time_rate": _WINDOW_HIGHER,
    "queue_wait_ms_mean": _WINDOW_LOWER,
    "cpu_percent": _WINDOW_LOWER,
    "memory_percent": _WINDOW_LOWER,
    "system_score": _WINDOW_HIGHER,  # of the whole system (:func:`system_score`), not of one row
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
    not recorded. About 19 bytes per decision.
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

    @property
    def n(self) -> int:
        """Number of decisions."""
        return int(self.response_ms.size)

    @property
    def error(self) -> np.ndarray:
        """Per decision, whether it had no valid attempt (bool), so ``error.mean()`` is the error rate."""
        return ~self.ok


def task_sample(w: WindowData) -> TaskSample:
    """The :class:`TaskSample` of a finished window (its arrays are already in
    arrival order: see :class:`WindowData`)."""
    a, info = w.arrays, w.info
    return TaskSample(info["agent"], info["t_start_s"], info["t_end_s"], w.response_ms.astype(np.float32),
                      a["success"].astype(bool), a["ok"].astype(bool), a["cost"].astype(np.float32),
                      a["tokens_in"].astype(np.float32), a["tokens_out"].astype(np.float32), a["tier"].astype(np.int8))


_SAMPLE_ARRAYS = [f.name for f in fields(TaskSample)][3:]


def pool_samples(samples: list[TaskSample]) -> TaskSample:
    """Concatenate consecutive samples of one agent (in time order) into one
    spanning them; an empty list gives an empty sample (agent "", NaN times)."""
    if not samples:
        e = np.zeros(0, dtype=np.float32)
        return TaskSample("", float("nan"), float("nan"), e, e.astype(bool), e.astype(bool), e)
    arrays = [np.concatenate([getattr(s, f) for s in samples]) for f in _SAMPLE_ARRAYS]
    return TaskSample(samples[0].agent, samples[0].t_start_s, samples[-1].t_end_s, *arrays)
