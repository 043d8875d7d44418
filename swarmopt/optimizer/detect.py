"""Bottleneck detection over window metrics (pure).

A *snapshot* of an agent is the mean of its window metric rows over a span
(:func:`snapshot`); :func:`detect` applies the thresholds (:data:`AGENT_RULES`) of
:class:`swarmopt.schema.Thresholds` to every agent's snapshot and to the system
score. Impact follows the source design (``reference/001``): percent over the
threshold for response time, cost and resources; percentage points under (or
over) the target for rates and scores.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from typing import Callable

import numpy as np

from swarmopt.metrics import metric_spec, system_score_of
from swarmopt.schema import AgentProfile, Thresholds

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}

SNAPSHOT_FIELDS = (
    "decision_count", "success_rate", "response_time_ms_mean", "response_time_ms_p95", "queue_wait_ms_mean",
    "service_time_ms_mean", "coordination_score", "error_rate", "cost_per_decision_usd", "cpu_percent",
    "memory_percent", "inbox_in_time_rate", "cache_hit_rate", "arrival_rate_per_s", "escalation_rate",
    "timeout_rate", "timeout_busy_share", "attempt_ms_p99", "tool_error_rate", "degraded_rate", "cost_usd_per_hour",
    "throttle_wait_ms_mean", "token_throttle_wait_ms_mean", "cache_eviction_rate", "urgent_wait_ms_mean",
    "tool_hold_share", "tool_hold_index", "cache_memory_percent",
)


@dataclass(frozen=True)
class Bottleneck:
    """A detected bottleneck (field names of the source design)."""

    type: str
    severity: str
    affected_component: str
    metric: str
    value: float
    threshold: float
    impact: float
    description: str
    suggested_fix: str


def snapshot(rows: list[dict]) -> dict:
    """Mean of each metric of :data:`SNAPSHOT_FIELDS` over window rows (NaNs
    skipped), ``decision_count`` summed; ``windows`` = number of rows."""
    return snapshots({"_": window_vectors(rows)}, {"_": len(rows)})["_"]


_SNAPSHOT_VALUES = operator.itemgetter(*SNAPSHOT_FIELDS)


def window_vectors(rows: list[dict]) -> np.ndarray:
    """The :data:`SNAPSHOT_FIELDS` of window rows as a float matrix (rows,
    fields); a field a row lacks is NaN."""
    count = len(rows) * len(SNAPSHOT_FIELDS)
    try:  # one flat stream of floats: twice as fast as np.array on a list of tuples
        flat = np.fromiter(chain.from_iterable(map(_SNAPSHOT_VALUES, rows)), float, count)
    except KeyError:
        flat = np.fromiter((r.get(f, np.nan) for r in rows for f in SNAPSHOT_FIELDS), float, count)
    return flat.reshape(len(rows), len(SNAPSHOT_FIELDS))


def _means(vectors: dict[str, np.ndarray], last: dict[str, int]) -> tuple[list[str], np.ndarray, list[int]]:
    """(agents, the (agents, fields) matrix of their :func:`snapshot` values,
    the rows taken per agent) of the last ``last[agent]`` rows of every agent's
    :func:`window_vectors`, computed for all agents in one numpy pass."""
    agents = list(vectors)
    depth = max([last[a] for a in agents] or [0])
    stack = np.full((len(agents), max(depth, 1), len(SNAPSHOT_FIELDS)), np.nan)
    taken = []
    for i, a in enumerate(agents):
        m = vectors[a]
        k = min(last[a], len(m))
        if k:
            stack[i, depth - k:] = m[len(m) - k:]
        taken.append(k)
    ok = np.isfinite(stack)
    total = np.where(ok, stack, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / ok.sum(axis=1)
    mean[:, 0] = total[:, 0]  # decision_count is summed
    return agents, mean, taken


def snapshots(vectors: dict[str, np.ndarray], last: dict[str, int]) -> dict[str, dict]:
    """:func:`snapshot` of the last ``last[agent]`` rows of every agent's
    :func:`window_vectors`, computed for all agents in one numpy pass (the
    optimizer cycle's hot spot at a thousand agents)."""
    agents, mean, taken = _means(vectors, last)
    return {a: dict(zip(SNAPSHOT_FIELDS, row, strict=True), windows=k)
            for a, row, k in zip(agents, mean.tolist(), taken, strict=True)}


@dataclass(frozen=True)
class ThresholdRule:
    """One threshold of :func:`detect`: bottleneck ``type`` when ``metric`` is
    past ``threshold(th, profile)`` on its bad side (the metric's
    :class:`~swarmopt.metrics.MetricSpec`), with ``severity``, or
    ``worse_severity`` past ``worse_threshold(th)``. ``impact`` is "percent"
    (percent past the threshold) or "points" (percentage points past it, for
    rates and scores). ``description`` is formatted with ``agent``, ``value``
    and ``threshold``."""

    type: str
    metric: str
    threshold: Callable[[Thresholds, AgentProfile | None], float]
    severity: str
    description: str
    suggested_fix: str
    impact: str = "percent"
    worse_severity: str | None = None
    worse_threshold: Callable[[Thresholds], float] | None = None

    def severity_of(self, value: float, th: Thresholds) -> str:
        """The severity of a breach at ``value``: ``worse_severity`` past ``worse_threshold``, else ``severity``."""
        if self.worse_threshold is not None and metric_spec(self.metric).worse(value, self.worse_threshold(th)):
            return self.worse_severity
        return self.severity

    def bottleneck(self, agent: str, value: float, threshold: float, th: Thresholds) -> Bottleneck:
        """The bottleneck of ``value`` past ``threshold`` on ``agent`` (the caller
        has checked the breach with the metric's ``worse``)."""
        spec = metric_spec(self.metric)
        severity = self.severity_of(value, th)
        past = value - threshold if spec.better == "lower" else threshold - value
        impact = past * 100 if self.impact == "points" else past / threshold * 100
        text = self.description.format(agent=agent, value=value, threshold=threshold)
        return Bottleneck(self.type, severity, agent, self.metric, float(value), float(threshold),
                          round(float(impact), 1), text, self.suggested_fix)


AGENT_RULES = (
    ThresholdRule("agent_response_time", "response_time_ms_mean", lambda th, p: th.response_time_ms, "high",
                  "{agent} response time is {value:.0f}ms (target: {threshold:.0f}ms)",
                  "Optimize decision-making algorithms or increase processing resources"),
    ThresholdRule("agent_success_rate", "success_rate", lambda th, p: th.success_rate_medium, "medium",
                  "{agent} success rate is {value:.0%} (target: {threshold:.0%}+)",
                  "Review decision logic, improve error handling", "points",
                  "critical", lambda th: th.success_rate_critical),
    ThresholdRule("coordination_efficiency", "coordination_score", lambda th, p: th.coordination_medium, "medium",
                  "{agent} coordination score is {value:.0%}", "Improve inter-agent communication protocols", "points"),
    ThresholdRule("agent_error_rate", "error_rate", lambda th, p: th.error_rate_medium, "medium",
                  "{agent} error rate is {value:.0%} (limit: {threshold:.0%})",
                  "Retry, cache or circuit-break the failing tool", "points", "high", lambda th: th.error_rate_high),
    ThresholdRule("cost", "cost_per_decision_usd",
                  lambda th, p: p.cost_budget_usd_per_decision * th.cost_budget_factor, "medium",
                  "{agent} costs ${value:.4f} per decision (budget: ${threshold:.4f})",
                  "Use a cheaper model tier or cache more"),
    ThresholdRule("resource_cpu", "cpu_percent", lambda th, p: th.cpu_percent, "high",
                  "{agent} workers are {value:.0f}% busy (limit: {threshold:.0f}%)", "Add workers"),
    ThresholdRule("resource_memory", "memory_percent", lambda th, p: th.memory_percent, "high",
                  "{agent} memory is {value:.0f}% (limit: {threshold:.0f}%)", "Shrink caches"),
    ThresholdRule("rate_limited", "throttle_wait_ms_mean", lambda th, p: th.throttle_wait_ms, "high",
                  "{agent} decisions wait {value:.0f}ms for rate limits (limit: {threshold:.0f}ms)",
                  "Raise the rate limit within the quota, spread calls over providers or route to another tier"),
    ThresholdRule("cache_capacity", "cache_eviction_rate", lambda th, p: th.cache_eviction_rate, "medium",
                  "{agent} cache evicts {value:.0%} of its lookups (limit: {threshold:.0%})",
                  "Grow the cache", "points"),
    ThresholdRule("priority_starvation", "urgent_wait_ms_mean", lambda th, p: th.urgent_wait_ms, "high",
                  "{agent} urgent decisions wait {value:.0f}ms for a worker (limit: {threshold:.0f}ms)",
                  "Serve urgent decisions first (priority or weighted fair queuing)"),
    ThresholdRule("tool_saturation", "tool_hold_share", lambda th, p: th.tool_hold_share, "high",
                  "{agent} workers spend {value:.0%} of their time in one tool's calls (limit: {threshold:.0%})",
                  "Isolate the tool in a bulkhead pool", "points"),
)
"""The source design's per-agent thresholds (and the design's error, cost and resource ones, and the serving
mechanisms' of reference/002: rate-limit waits and cache evictions; reference/000's load balancer: the urgent
class's wait, one tool holding the workers), in checking order."""

SYSTEM_RULE = ThresholdRule("system_performance", "system_score", lambda th, p: th.system_high, "high",
                            "Overall system performance is {value:.0%} (target: {threshold:.0%}+)",
                            "Comprehensive system optimization needed", "points",
                            "critical", lambda th: th.system_critical)


def detect(snaps: dict[str, dict], profiles: dict[str, AgentProfile], th: Thresholds) -> list[Bottleneck]:
    """Bottlenecks of every agent snapshot (:data:`AGENT_RULES`) plus the
    system-wide score (:data:`SYSTEM_RULE`).

    ``snaps`` maps agent id to :func:`snapshot` (a metric it lacks is NaN:
    no data breaches nothing); agents with fewer than ``th.min_decisions``
    decisions are skipped (minimum-traffic guard), also in the system score, so
    a handful of requests cannot raise a system bottleneck.
    """
    agents = list(snaps)
    values = np.array([[s.get(f, np.nan) for f in SNAPSHOT_FIELDS] for s in snaps.values()], float)
    return [rule.bottleneck(agent, value, thr, th)
            for rule, agent, value, thr in _breaches(agents, values.reshape(len(agents), -1), profiles, th)]


_RULE_COLUMNS = [SNAPSHOT_FIELDS.index(rule.metric) for rule in AGENT_RULES]
_RULE_LOWER = np.array([metric_spec(rule.metric).better == "lower" for rule in AGENT_RULES])
_COUNT, _RESPONSE, _SUCCESS, _COORDINATION = (SNAPSHOT_FIELDS.index(f) for f in (
    "decision_count", "response_time_ms_mean", "success_rate", "coordination_score"))


def _limits(agents: list[str], profiles: dict[str, AgentProfile], th: Thresholds) -> np.ndarray:
    """(agents, rules) thresholds of :data:`AGENT_RULES`, computed once per distinct profile."""
    per_profile: dict[int, list[float]] = {}
    out = []
    for a in agents:
        p = profiles[a]
        row = per_profile.get(id(p))
        if row is None:
            row = per_profile[id(p)] = [rule.threshold(th, p) for rule in AGENT_RULES]
        out.append(row)
    return np.array(out, dtype=float).reshape(len(agents), len(AGENT_RULES))


def _breaches(agents: list[str], values: np.ndarray, profiles: dict[str, AgentProfile], th: Thresholds
              ) -> list[tuple[ThresholdRule, str, float, float]]:
    """(rule, agent or "system", value, threshold) of every breach :func:`detect` reports, in its order (agent by
    agent, each in :data:`AGENT_RULES` order), compared for all agents and rules at once; ``values`` (agents,
    :data:`SNAPSHOT_FIELDS`) are the agents' snapshots."""
    kept = np.flatnonzero(values[:, _COUNT] >= th.min_decisions)
    values = values[kept]
    names = [agents[i] for i in kept.tolist()]
    found = []
    if names:
        rules = values[:, _RULE_COLUMNS]
        limits = _limits(names, profiles, th)
        # NaN compares False both ways: no data breaches nothing
        past = np.where(_RULE_LOWER, rules > limits, rules < limits)
        for i, j in zip(*np.nonzero(past), strict=True):
            found.append((AGENT_RULES[j], names[i], float(rules[i, j]), float(limits[i, j])))
    score = system_score_of(values[:, _RESPONSE], values[:, _SUCCESS], values[:, _COORDINATION],
                            values[:, _COUNT], th.response_time_ms)
    thr = SYSTEM_RULE.threshold(th, None)
    if metric_spec(SYSTEM_RULE.metric).worse(score, thr):
        found.append((SYSTEM_RULE, "system", score, thr))
    return found


def setpoint(th: Thresholds, margin: float) -> Thresholds:
    """The thresholds the optimizer acts on: each SLO threshold moved inside the
    SLO by ``margin`` (0 <= margin < 1), so that the tolerance band sits around
    a target below the limit, not above it. Response time and the cost factor
    become threshold x (1 - margin); for a rate that must stay high (success,
    coordination) the shortfall budget shrinks the same way: 1 - (1 -
    threshold) x (1 - margin). Critical levels and resource limits are kept."""
    keep = 1.0 - margin
    return th.model_copy(update={
        "response_time_ms": th.response_time_ms * keep,
        "success_rate_medium": 1.0 - (1.0 - th.success_rate_medium) * keep,
        "coordination_medium": 1.0 - (1.0 - th.coordination_medium) * keep,
        "cost_budget_factor": th.cost_budget_factor * keep,
    })


SHORT_WINDOW_RATIO = 12


def short_span(decisions: np.ndarray, min_decisions: float) -> int:
    """Rows in the short span of a long span whose rows hold ``decisions``
    (oldest first), for multiwindow alerting (Google SRE workbook, ch. 5
    "Alerting on SLOs", "Multiwindow, multi-burn-rate alerts": a 1 h window
    confirmed by a 5 min one).

    The short span is the last 1/12 of the long one (at least one row),
    extended backwards within it until it holds ``min_decisions`` decisions
    (minimum-traffic guard; the workbook's "low-traffic services" advice), so a
    window with three requests is never judged on its own.
    """
    n = max(1, round(len(decisions) / SHORT_WINDOW_RATIO))
    held = np.cumsum(decisions[::-1])
    enough = np.flatnonzero(held[n - 1:] >= min_decisions) if len(decisions) >= n else np.zeros(0, int)
    return n + int(enough[0]) if enough.size else len(decisions)


def detect_multiwindow(long_span: tuple[list[str], np.ndarray], short_span: tuple[list[str], np.ndarray],
                       profiles: dict[str, AgentProfile], th: Thresholds) -> list[Bottleneck]:
    """Bottlenecks that breach in both the long and the short span
    (:func:`short_span`), each given as (agents, their snapshot matrix: rows of
    :data:`SNAPSHOT_FIELDS` values). Values and impact are the long span's;
    severity is the lower of the two, so a critical bottleneck must be critical
    in both. A long-span breach that has already recovered in the short span,
    or a short blip the long span does not confirm, raises nothing.
    """
    short = {(rule.type, agent): rule.severity_of(value, th) for rule, agent, value, _ in
             _breaches(*short_span, profiles, th)}
    out = []
    for rule, agent, value, thr in _breaches(*long_span, profiles, th):
        s = short.get((rule.type, agent))
        if s is not None:  # a Bottleneck (its description formatted) only for a confirmed breach
            b = rule.bottleneck(agent, value, thr, th)
            out.append(b if SEVERITY_RANK[b.severity] <= SEVERITY_RANK[s] else replace(b, severity=s))
    return out


def multiwindow_alerts(mats: dict[str, np.ndarray], long_windows: int, profiles: dict[str, AgentProfile],
                       th: Thresholds) -> list[Bottleneck]:
    """:func:`detect_multiwindow` over each agent's recent :func:`window_vectors`
    ``mats`` (oldest first): the long span is the last ``long_windows`` rows,
    the short one its :func:`short_span`."""
    short = {a: short_span(m[-long_windows:, 0], th.min_decisions) for a, m in mats.items()}
    return detect_multiwindow(_means(mats, dict.fromkeys(mats, long_windows))[:2], _means(mats, short)[:2],
                              profiles, th)


ANOMALY_METRICS = ("response_time_ms_mean", "cost_per_decision_usd", "error_rate", "success_rate")
MAD_TO_SD = 1.4826
_ANOMALY_COLUMNS = [SNAPSHOT_FIELDS.index(m) for m in ANOMALY_METRICS]


@dataclass(frozen=True)
class Anomaly:
    """A level shift of one agent metric against the agent's own history.

    ``value``: mean of the recent windows; ``baseline``: median of the history
    windows; ``shift_pct``: relative change (%); ``z``: robust z-score (see
    :func:`level_shifts`).
    """

    agent: str
    metric: str
    value: float
    baseline: float
    shift_pct: float
    z: float


def level_shifts(agent: str, vectors: np.ndarray, recent: int, z_threshold: float, min_shift: float,
                 min_history: int = 12, max_history: int = 60) -> list[Anomaly]:
    """Level shifts of :data:`ANOMALY_METRICS` in the bad direction (their
    :class:`~swarmopt.metrics.MetricSpec`).

    ``vectors``: the agent's window rows as :func:`window_vectors` (rows,
    fields), oldest first; the last ``recent`` form
    the recent span, the up to ``max_history`` before it the history (at least
    ``min_history`` needed, else nothing is reported). Per metric, with ``m``
    and ``MAD`` the median and median absolute deviation of the history's
    per-window values and ``k`` the number of recent windows,
    ``z = (mean(recent) - m) / (1.4826 MAD / sqrt(k))`` (robust z-score:
    Iglewicz & Hoaglin 1993; 1.4826 MAD estimates the standard deviation of
    normal data, and the mean of ``k`` windows has ``sqrt(k)`` times less
    spread when windows are independent, which holds while a window (60 s) is
    long against the service times and queues drain between bursts). For rates
    (metrics judged by the two-proportion test) the single-window scale is
    floored at the binomial standard error of one window. An anomaly needs
    ``z`` beyond ``z_threshold`` in the bad direction (default 5: window means
    have heavier tails than normal and MAD from a few dozen windows is itself
    uncertain) and a relative shift beyond ``min_shift`` (the dead band), so
    very steady metrics do not alert on tiny moves.
    """
    return _level_shifts([agent], vectors[None], recent, z_threshold, min_shift, min_history, max_history)[0]


def _level_shifts(agents: list[str], stack: np.ndarray, recent: int, z_threshold: float, min_shift: float,
                  min_history: int, max_history: int) -> list[list[Anomaly]]:
    """:func:`level_shifts` of agents whose vectors have the same number of
    rows, stacked (agents, rows, fields): the medians and means of every agent
    in one numpy pass (per lane the same operations as for one agent alone)."""
    hist, rec = stack[:, -recent - max_history:-recent], stack[:, -recent:]
    if hist.shape[1] < min_history or not rec.shape[1]:
        return [[] for _ in agents]
    n = np.median(np.nan_to_num(hist[:, :, 0]), axis=1).tolist()
    h, v = hist[:, :, _ANOMALY_COLUMNS], rec[:, :, _ANOMALY_COLUMNS]
    h_n, v_n = np.isfinite(h).sum(axis=1), np.isfinite(v).sum(axis=1)
    full = h_n.min(axis=1) == h.shape[1]
    med, scale = np.empty(h_n.shape), np.empty(h_n.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric with no finite value is skipped below
        if full.any():
            med[full] = np.median(h[full], axis=1)
            scale[full] = MAD_TO_SD * np.median(np.abs(h[full] - med[full][:, None]), axis=1)
        for i in np.flatnonzero(~full).tolist():  # nanmedian is slow on small arrays: only where needed
            med[i] = np.nanmedian(h[i], axis=0)
            scale[i] = MAD_TO_SD * np.nanmedian(np.abs(h[i] - med[i]), axis=0)
        value = np.nanmean(v, axis=1)
    out = []
    for a, agent in enumerate(agents):
        found = []
        for i, metric in enumerate(ANOMALY_METRICS):
            if h_n[a, i] < min_history or not v_n[a, i]:
                continue
            spec = metric_spec(metric)
            sign = 1 if spec.better == "lower" else -1
            sc, md, val = float(scale[a, i]), float(med[a, i]), float(value[a, i])
            if spec.test == "two-proportion" and n[a] > 0:
                sc = max(sc, float(np.sqrt(md * (1 - md) / n[a])))
            if sc <= 0 or md == 0:
                continue
            z = (val - md) / (sc / np.sqrt(v_n[a, i]))
            shift = (val - md) / abs(md)
            if sign * z > z_threshold and sign * shift > min_shift:
                found.append(Anomaly(agent, metric, val, md, round(shift * 100, 1), round(float(z), 2)))
        out.append(found)
    return out


def anomalies(mats: dict[str, np.ndarray], snaps: dict[str, dict], recent: int, min_decisions: float,
              z_threshold: float, min_shift: float, max_history: int) -> dict[tuple[str, str], Anomaly]:
    """:func:`level_shifts` of every agent whose ``snaps`` (the recent span's
    :func:`snapshots`) hold at least ``min_decisions`` decisions, keyed by
    (agent, metric), agents in sorted order; agents with as many rows are
    computed together."""
    agents = [a for a in sorted(mats) if snaps[a]["decision_count"] >= min_decisions]
    by_rows: dict[int, list[str]] = {}
    for a in agents:
        by_rows.setdefault(len(mats[a]), []).append(a)
    shifts: dict[str, list[Anomaly]] = {}
    for same in by_rows.values():
        shifts.update(zip(same, _level_shifts(same, np.stack([mats[a] for a in same]), recent, z_threshold, min_shift,
                                              12, max_history), strict=True))
    return {(a, x.metric): x for a in agents for x in shifts[a]}


DetectionRule = Callable[[str, "tuple[Mapping, ...]", Thresholds], "list[Bottleneck]"]


def rule_bottlenecks(rules: Sequence[DetectionRule], rows: Mapping[str, tuple[Mapping, ...]], th: Thresholds,
                     agents: Collection[str]) -> list[Bottleneck]:
    """Bottlenecks of plug-in detection ``rules``: each rule is called as
    ``rule(agent_id, rows, thresholds)`` on every agent's recent window rows
    (``rows[agent]``: read-only mappings, oldest first), agents in order, and
    returns a list of :class:`Bottleneck` (empty when there is none). Raises
    ValueError naming the rule when it returns anything else, a severity
    outside :data:`SEVERITY_RANK`, a component that is neither a known agent
    nor "system", or a metric with no spec in :data:`swarmopt.metrics.METRICS`
    (the planner needs its direction)."""
    out: list[Bottleneck] = []
    for agent, recent in rows.items():
        for rule in rules:
            found = rule(agent, recent, th)
            name = getattr(rule, "__qualname__", repr(rule))
            if not isinstance(found, (list, tuple)) or not all(isinstance(b, Bottleneck) for b in found):
                raise ValueError(f"detection rule {name}: must return a list of Bottleneck, got {found!r}")
            for b in found:
                if b.severity not in SEVERITY_RANK:
                    raise ValueError(f"detection rule {name}: severity {b.severity!r} not in {list(SEVERITY_RANK)}")
                if b.affected_component != "system" and b.affected_component not in agents:
                    raise ValueError(f"detection rule {name}: unknown component {b.affected_component!r}")
                try:
                    metric_spec(b.metric)
                except ValueError as err:
                    raise ValueError(f"detection rule {name}: {err}") from None
            out += found
    return out
