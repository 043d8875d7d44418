"""Spend budgets: multiwindow burn-rate alerts and the remedy that acts on them (pure).

A :class:`~swarmopt.schema.Budget` sets a spend budget in USD per hour for the
whole system and/or per agent. The *burn rate* over a span is the mean spend
rate (``cost_usd_per_hour`` of the window rows) over it divided by the budget.
An alert (the budget's ``fast`` and ``slow``) fires when the burn rate over its
long span *and* over its short span are both at least its ``burn_rate`` (moved
inside the budget by the optimizer's setpoint margin, :func:`burn_alerts`): the
same multiwindow rule, short span included, as the optimizer's threshold
alerts (:func:`swarmopt.optimizer.detect.short_span`: the last twelfth of the
long span; Google SRE workbook, ch. 5), so a spike that is already over or a
blip the long span does not confirm raises nothing. The more severe alert wins
when both fire on one budget.

A firing alert is a ``cost_burn`` bottleneck (:func:`burn_alerts`) on the
agent its budget belongs to or, for the system budget, on the agent whose
spend rose most above its own median before the long span (the culprit of a
cost spike; the top spender when none rose). Its remedies
(:data:`swarmopt.optimizer.strategies.TYPES`) are judged on the agent's
spend per successful decision ``cost_per_success_usd`` (on window means: a
cache hit makes a decision not pay, which moves the mean of the two-humped
per-task cost, not its median; per success, so that a cut that loses
decisions is not a saving, and the arrival noise of a spend rate drops out):
:func:`cache_costly_tool` first (the per-tool cost breakdown names
the tool that burns most), then a cheaper model tier.
"""

from __future__ import annotations

import math

import numpy as np

from swarmopt.knobs import KnobChange
from swarmopt.optimizer.detect import SNAPSHOT_FIELDS, Bottleneck, short_span
from swarmopt.schema import AgentProfile, Budget, BurnAlert, Knobs

SPEND = SNAPSHOT_FIELDS.index("cost_usd_per_hour")
COSTLY_TOOL_SHARE = 0.2
""":func:`cache_costly_tool` acts on a tool that takes at least this share of the agent's spend."""
MAX_TTL_S = 3600.0
"""Longest TTL :func:`cache_costly_tool` sets (s), as the other cache remedies."""


def windows_needed(budget: Budget, window_s: float) -> int:
    """Window rows the alerts of ``budget`` look back at (the longest long span)."""
    return max(1, round(max(budget.fast.long_s, budget.slow.long_s) / window_s))


def _rates(m: np.ndarray, n: int) -> tuple[float, float]:
    """Mean spend rate (USD/h) of an agent's window vectors ``m`` over the last
    ``n`` rows (all of them in a shorter run) and over their short span."""
    span = m[-n:]
    k = short_span(span[:, 0], 0.0)
    return float(np.mean(span[:, SPEND])), float(np.mean(span[-k:, SPEND]))


def _culprit(mats: dict[str, np.ndarray], n: int) -> str:
    """The agent whose mean spend over the last ``n`` rows rose most above its
    median before them (the whole span's median when there is nothing
    before); the top spender when none rose."""
    excess, spend = {}, {}
    for a, m in mats.items():
        recent, before = m[-n:, SPEND], m[:-n, SPEND] if len(m) > n else m[:, SPEND]
        spend[a] = float(np.nanmean(recent)) if len(recent) else -math.inf
        excess[a] = spend[a] - float(np.nanmedian(before)) if len(before) else -math.inf
    best = max(sorted(excess), key=lambda a: excess[a])
    return best if excess[best] > 0 else max(sorted(spend), key=lambda a: spend[a])


def burn_alerts(mats: dict[str, np.ndarray], budget: Budget, window_s: float, margin: float = 0.0
                ) -> list[Bottleneck]:
    """``cost_burn`` bottlenecks of every budget of ``budget`` whose alert fires
    (see the module doc). ``mats``: each agent's window vectors
    (:func:`~swarmopt.optimizer.detect.window_vectors`, oldest first), at
    least :func:`windows_needed` of them where the run is that long (all
    agents close windows together, so their rows line up). Per budget the
    first of ``fast``, ``slow`` that fires.

    ``margin`` (0 <= margin < 1, the optimizer's ``margin``) moves each
    alert's burn rate inside the budget, as
    :func:`~swarmopt.optimizer.detect.setpoint` moves the SLO thresholds: an
    alert fires at ``burn_rate x (1 - margin)``, the bottleneck's threshold,
    so the optimizer's tolerance band sits around a setpoint under the budget
    (issue 10: a budget burned at 1.06x its rate sat inside a band above it,
    and the cost scenario's spend stayed over budget for the rest of the run)."""
    if not budget.enabled or not mats:
        return []
    scopes: list[tuple[str, float, list[str]]] = []
    if budget.usd_per_hour is not None:
        scopes.append(("system", budget.usd_per_hour, sorted(mats)))
    scopes += [(a, usd, [a]) for a, usd in sorted(budget.agents.items()) if a in mats]
    out = []
    for scope, usd, agents in scopes:
        for alert in (budget.fast, budget.slow):
            n = max(1, round(alert.long_s / window_s))
            rates = [_rates(mats[a], n) for a in agents]
            long_rate, short_rate = (sum(r[i] for r in rates) for i in (0, 1))
            fire = alert.burn_rate * (1.0 - margin)
            if long_rate / usd >= fire and short_rate / usd >= fire:
                agent = scope if scope != "system" else _culprit({a: mats[a] for a in agents}, n)
                span = min(n, len(mats[agents[0]]))
                out.append(_bottleneck(scope, agent, alert, fire, (long_rate, short_rate), usd, span, window_s))
                break
    return out


def _bottleneck(scope: str, agent: str, alert: BurnAlert, fire: float, rates: tuple[float, float], usd: float,
                n: int, window_s: float) -> Bottleneck:
    long_rate, short_rate = rates
    burn = long_rate / usd
    which = "fast" if alert.severity in ("high", "critical") else "slow"
    who = "system" if scope == "system" else agent
    charged = f"; charged to {agent}, whose spend rose most" if scope == "system" else ""
    text = (f"{which} burn: {who} spends ${long_rate:,.2f}/h, {burn:.2f}x its ${usd:,.2f}/h budget over "
            f"{n * window_s / 60:.0f} min ({short_rate / usd:.2f}x over the short span){charged}")
    return Bottleneck("cost_burn", alert.severity, agent, "cost_burn_rate", burn, fire,
                      round((burn / fire - 1.0) * 100.0, 1), text,
                      "Cache the costliest tool longer or use a cheaper model tier")


def cache_costly_tool(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Raise toward an hour the cache TTL of the tool that
    took the largest share of the agent's spend over the last cycle (the
    snapshot's per-tool breakdown, :func:`~swarmopt.optimizer.tuning.tool_view`),
    when that share is at least :data:`COSTLY_TOOL_SHARE`: every cache hit is
    a paid call not made. The planner bounds the step, as for
    :func:`~swarmopt.optimizer.strategies.raise_cache_ttl`."""
    tools = s.get("tools", {})
    total = sum(v["cost_usd"] for v in tools.values()) + s.get("model_cost_usd_sum", 0.0)
    costs = {name: v["cost_usd"] for name, v in tools.items() if k.cache_ttl_s.get(name, 0.0) < MAX_TTL_S}
    if not costs or not total > 0:
        return None
    name = max(sorted(costs), key=lambda t: costs[t])
    if costs[name] < COSTLY_TOOL_SHARE * total:
        return None
    return [KnobChange(p.id, f"cache_ttl_s.{name}", k.cache_ttl_s.get(name, 0.0), MAX_TTL_S)]
