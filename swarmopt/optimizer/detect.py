"""Bottleneck detection over window metrics (pure).

A *snapshot* of an agent is the mean of its window metric rows over a span
(:func:`snapshot`); :func:`detect` applies the thresholds of
:class:`swarmopt.schema.Thresholds` to every agent's snapshot and to the system
score. Impact follows the source design (``reference/001``): percent over the
threshold for response time, cost and resources; percentage points under (or
over) the target for rates and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swarmopt.metrics import system_score
from swarmopt.schema import AgentProfile, Thresholds

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}

SNAPSHOT_FIELDS = (
    "decision_count", "success_rate", "response_time_ms_mean", "response_time_ms_p95", "queue_wait_ms_mean",
    "service_time_ms_mean", "coordination_score", "error_rate", "cost_per_decision_usd", "cpu_percent",
    "memory_percent", "inbox_in_time_rate", "cache_hit_rate", "arrival_rate_per_s", "escalation_rate",
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
    out: dict = {"windows": len(rows)}
    for f in SNAPSHOT_FIELDS:
        vals = np.array([r.get(f, np.nan) for r in rows], dtype=float)
        vals = vals[np.isfinite(vals)]
        if f == "decision_count":
            out[f] = float(vals.sum())
        else:
            out[f] = float(vals.mean()) if vals.size else float("nan")
    return out


def _b(type_, sev, agent, metric, value, thr, impact, desc, fix) -> Bottleneck:
    return Bottleneck(type_, sev, agent, metric, float(value), float(thr), round(float(impact), 1), desc, fix)


def detect(snaps: dict[str, dict], profiles: dict[str, AgentProfile], th: Thresholds,
           latest_rows: list[dict] | None = None) -> list[Bottleneck]:
    """Bottlenecks of every agent snapshot plus the system-wide score.

    ``snaps`` maps agent id to :func:`snapshot`; agents with fewer than
    ``th.min_decisions`` decisions are skipped (minimum-traffic guard);
    ``latest_rows`` (one row per agent) feed the system score, which falls back
    to the snapshots.
    """
    found: list[Bottleneck] = []
    for agent, s in snaps.items():
        if s["decision_count"] < th.min_decisions:
            continue
        rt = s["response_time_ms_mean"]
        if rt > th.response_time_ms:
            found.append(_b("agent_response_time", "high", agent, "response_time_ms_mean", rt, th.response_time_ms,
                            (rt - th.response_time_ms) / th.response_time_ms * 100,
                            f"{agent} response time is {rt:.0f}ms (threshold: {th.response_time_ms:.0f}ms)",
                            "Optimize decision-making algorithms or increase processing resources"))
        sr = s["success_rate"]
        if sr < th.success_rate_medium:
            sev = "critical" if sr < th.success_rate_critical else "medium"
            found.append(_b("agent_success_rate", sev, agent, "success_rate", sr, th.success_rate_medium,
                            (th.success_rate_medium - sr) * 100,
                            f"{agent} success rate is {sr:.0%} (target: {th.success_rate_medium:.0%}+)",
                            "Review decision logic, improve error handling"))
        co = s["coordination_score"]
        if co < th.coordination_medium:
            found.append(_b("coordination_efficiency", "medium", agent, "coordination_score", co, th.coordination_medium,
                            (th.coordination_medium - co) * 100,
                            f"{agent} coordination score is {co:.0%}",
                            "Improve inter-agent communication protocols"))
        er = s["error_rate"]
        if er > th.error_rate_medium:
            sev = "high" if er > th.error_rate_high else "medium"
            found.append(_b("agent_error_rate", sev, agent, "error_rate", er, th.error_rate_medium,
                            (er - th.error_rate_medium) * 100,
                            f"{agent} error rate is {er:.0%} (limit: {th.error_rate_medium:.0%})",
                            "Retry, cache or circuit-break the failing tool"))
        budget = profiles[agent].cost_budget_usd_per_decision * th.cost_budget_factor
        cost = s["cost_per_decision_usd"]
        if cost > budget:
            found.append(_b("cost", "medium", agent, "cost_per_decision_usd", cost, budget, (cost - budget) / budget * 100,
                            f"{agent} costs ${cost:.4f} per decision (budget: ${budget:.4f})",
                            "Use a cheaper model tier or cache more"))
        resources = (("resource_cpu", "cpu_percent", th.cpu_percent, "workers are {:.0f}% busy", "Add workers"),
                     ("resource_memory", "memory_percent", th.memory_percent, "memory is {:.0f}%", "Shrink caches"))
        for type_, metric, thr, what, fix in resources:
            v = s[metric]
            if v > thr:
                found.append(_b(type_, "high", agent, metric, v, thr, (v - thr) / thr * 100,
                                f"{agent} {what.format(v)} (limit: {thr:.0f}%)", fix))
    rows = latest_rows or [dict(s, agent=a) for a, s in snaps.items()]
    score = system_score(rows, th.response_time_ms)
    if score == score and score < th.system_high:
        sev = "critical" if score < th.system_critical else "high"
        found.append(_b("system_performance", sev, "system", "system_score", score, th.system_high,
                        (th.system_high - score) * 100,
                        f"Overall system performance is {score:.0%} (target: {th.system_high:.0%}+)",
                        "Comprehensive system optimization needed"))
    return found
