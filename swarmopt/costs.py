"""Cost analysis of a run: spend per agent, per model tier and per tool, and the budget (pure).

What reference/003's ``CostTracker`` and reference/004's
``analyze_session_costs`` report (total cost, cost per model, cost of the
paid services, cost per action), computed from the metrics table: per agent
window ``model_cost_usd.<tier>`` and ``tool_cost_usd.<tool>`` add up to
``cost_usd`` (:func:`swarmopt.metrics.window_rows`). With a budget
(:class:`swarmopt.schema.Budget`), the spend rate against it and the
burn-rate alerts the optimizer raised (``cost_burn`` bottlenecks,
:mod:`swarmopt.optimizer.budget`).
"""

from __future__ import annotations

import math

import pandas as pd

from swarmopt.schema import TIERS, Scenario


def _sum(df: pd.DataFrame, col: str) -> float:
    return float(df[col].sum()) if col in df else 0.0


def _per(total: float, n: float) -> float:
    return total / n if n else math.nan


def cost_breakdown(metrics: pd.DataFrame, events: pd.DataFrame, sc: Scenario) -> dict:
    """The run's spend (USD): ``total_usd``, ``usd_per_hour`` over the simulated
    time covered by ``metrics``, ``model_usd`` and ``tools_usd``; ``agents``
    (per agent: ``cost_usd``, ``usd_per_hour``, ``per_decision_usd``,
    ``per_success_usd``, ``model_usd``, ``tools_usd``); ``tiers`` (model spend
    per tier); ``tools`` (per tool name: ``cost_usd`` and ``calls``, over all
    agents that have it); and ``budget`` (None without one): the budget, the
    spend rate and burn rate of the system and of each budgeted agent, and the
    burn-rate alerts raised (``fast``/``slow`` counts of cost_burn detections
    and the time of the first)."""
    if metrics.empty:
        return {"total_usd": 0.0, "usd_per_hour": math.nan, "model_usd": 0.0, "tools_usd": 0.0, "agents": {},
                "tiers": {}, "tools": {}, "budget": None}
    hours = (float(metrics["t_end_s"].max()) - float(metrics["t_start_s"].min())) / 3600.0
    agents = {}
    for a, g in metrics.groupby("agent", sort=False):
        n = float(g["decision_count"].sum())
        successes = float((g["decision_count"] * g["success_rate"].fillna(0.0)).sum())
        cost = _sum(g, "cost_usd")
        agents[str(a)] = {"cost_usd": cost, "usd_per_hour": _per(cost, hours), "per_decision_usd": _per(cost, n),
                          "per_success_usd": _per(cost, successes), "model_usd": _sum(g, "model_cost_usd"),
                          "tools_usd": _sum(g, "tool_cost_usd")}
    names = [c.removeprefix("tool_cost_usd.") for c in metrics.columns if c.startswith("tool_cost_usd.")]
    tools = {t: {"cost_usd": _sum(metrics, f"tool_cost_usd.{t}"), "calls": int(_sum(metrics, f"tool_calls.{t}"))}
             for t in names}
    total = _sum(metrics, "cost_usd")
    out = {"total_usd": total, "usd_per_hour": _per(total, hours), "model_usd": _sum(metrics, "model_cost_usd"),
           "tools_usd": _sum(metrics, "tool_cost_usd"), "agents": agents,
           "tiers": {t: _sum(metrics, f"model_cost_usd.{t}") for t in TIERS}, "tools": tools, "budget": None}
    b = sc.budget
    if b.enabled:
        alerts = events[(events["event"] == "bottleneck.detected") & (events["type"] == "cost_burn")] \
            if not events.empty else events
        kinds = alerts["detail"].str.split(" ", n=1).str[0] if len(alerts) else pd.Series(dtype=str)
        out["budget"] = {
            "usd_per_hour": b.usd_per_hour, "agents": dict(b.agents),
            "burn_rate": _per(out["usd_per_hour"], b.usd_per_hour) if b.usd_per_hour else math.nan,
            "agent_burn_rates": {a: _per(agents[a]["usd_per_hour"], usd) for a, usd in b.agents.items() if a in agents},
            "alerts": {"fast": int((kinds == "fast").sum()), "slow": int((kinds == "slow").sum())},
            "first_alert_s": float(alerts["t_s"].min()) if len(alerts) else None,
        }
    return out
