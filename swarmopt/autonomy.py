"""The Orchestrator's autonomy rules: pluggable, pure, judged by the load test.

After every optimizer report the Strategic Orchestrator asks its rule which
agents' autonomy to change. A rule is a pure function ``rule(ctx, state) ->
(changes, new_state)`` in the style of Ray Serve's ``autoscaling_policy``:
``ctx`` is a read-only :class:`AutonomyContext`, ``state`` the rule's own
state as it returned it last time (``{}`` at first), ``changes`` a list of
:class:`AutonomyChange`. Autonomy is the probability that a decision is *not*
escalated to review, and every review is a task in the reviewer's queue
(:mod:`swarmopt.sim.review`), so lowering an agent's autonomy has a measured
cost: more reviews, a busier Orchestrator, slower reviews for every agent.

Built in (:data:`AUTONOMY_POLICIES`, chosen by ``orchestrator.policy``):

* ``rules``: the source design's ("Cycle 4": Market Hunter 85% -> 90% after
  a successful optimization; "Reduce autonomy for agent X (poor
  performance)"): an agent with a kept change in the report and health >=
  0.75 gains ``autonomy_step``; an agent whose health is below 0.60 in two
  consecutive reports loses it. Agents with a change in flight are left alone
  so that their measurement is not confounded.
* ``fixed``: never changes autonomy.
* ``load_aware``: ``rules``, but a lowering that would take the review desk's
  projected utilization above ``max_review_utilization`` is held. Utilization
  = review arrival rate x mean review time / reviewers. The projection starts
  from the larger of the desk's utilization measured over the last cycle and
  the load that autonomy alone offers (sum over agents of the rate of
  decisions with a valid attempt x (1 - autonomy)), which a down or failing
  agent does not hide, and adds, per lowering, the extra reviews (autonomy
  step x the agent's rate of decisions with a valid attempt).

A plug-in rule is any such function, named by import path
``module:attribute`` in ``orchestrator.policy``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarmopt.schema import OrchestratorConfig

HEALTHY = 0.75
UNHEALTHY = 0.60


@dataclass(frozen=True)
class ReviewLoad:
    """The reviewer's desk: ``utilization`` measured over the last cycle's
    windows (NaN with no window yet), its ``workers`` and ``mean_service_s``."""

    utilization: float
    workers: int
    mean_service_s: float


@dataclass(frozen=True)
class AutonomyContext:
    """What an autonomy rule sees after an optimizer report (read-only).

    ``autonomy``: each agent's autonomy now (as the Orchestrator last set it).
    ``health``: each agent's health in its last window
    (:func:`swarmopt.metrics.health_score`; NaN with no decision). ``kept``:
    agents with a change kept in this report. ``in_flight``: agents with a
    change being measured. ``rows``: each agent's last window row (the metrics
    table's columns). ``review``: the reviewer's load, None when the scenario
    has no reviewer. ``config``: the scenario's ``orchestrator`` section.
    """

    t_s: float
    config: OrchestratorConfig
    autonomy: Mapping[str, float]
    health: Mapping[str, float]
    kept: frozenset[str]
    in_flight: frozenset[str]
    rows: Mapping[str, Mapping[str, Any]]
    review: ReviewLoad | None


@dataclass(frozen=True)
class AutonomyChange:
    """A rule's decision for one agent: ``new`` autonomy and the ``reason``;
    ``new`` equal to the current autonomy means a change considered and held
    (logged, not applied)."""

    agent: str
    new: float
    reason: str


Rule = Callable[[AutonomyContext, dict], tuple[list[AutonomyChange], dict]]


def rules(ctx: AutonomyContext, state: dict) -> tuple[list[AutonomyChange], dict]:
    """The source design's rule (module docstring); ``state["low_streak"]``
    counts each agent's consecutive reports with health below 0.60."""
    cfg = ctx.config
    streak = dict(state.get("low_streak", {}))
    out = []
    for agent, health in sorted(ctx.health.items()):
        if health != health:
            continue
        streak[agent] = streak.get(agent, 0) + 1 if health < UNHEALTHY else 0
        if agent in ctx.in_flight:
            continue
        old = ctx.autonomy[agent]
        if agent in ctx.kept and health >= HEALTHY:
            new, why = min(cfg.max_agent_autonomy, old + cfg.autonomy_step), "performance improvements acknowledged"
        elif streak[agent] >= 2:
            new, why = max(cfg.min_agent_autonomy, old - cfg.autonomy_step), "health below 60% in two reports"
        else:
            continue
        new = round(new, 4)
        if new != old:
            out.append(AutonomyChange(agent, new, why))
    return out, {"low_streak": streak}


def fixed(ctx: AutonomyContext, state: dict) -> tuple[list[AutonomyChange], dict]:
    """Never change autonomy (the baseline every rule is compared with)."""
    return [], state


def load_aware(ctx: AutonomyContext, state: dict) -> tuple[list[AutonomyChange], dict]:
    """:func:`rules`, holding every lowering that would take the review desk's
    projected utilization above ``config.max_review_utilization`` (module
    docstring). Without a reviewer, or before its first window, it is :func:`rules`."""
    changes, state = rules(ctx, state)
    load = ctx.review
    if load is None:
        return changes, state
    per_review = load.mean_service_s / load.workers
    offered = sum(_valid_rate(ctx.rows.get(a, {})) * (1.0 - x) for a, x in ctx.autonomy.items()) * per_review
    cap = ctx.config.max_review_utilization
    projected = max(offered, load.utilization) if load.utilization == load.utilization else offered
    out = []
    for ch in changes:
        old = ctx.autonomy[ch.agent]
        if ch.new < old:
            extra = (old - ch.new) * _valid_rate(ctx.rows.get(ch.agent, {})) * per_review
            if projected + extra > cap:
                ch = AutonomyChange(ch.agent, old, f"{ch.reason}, but held: review desk at {projected:.0%}, "
                                                   f"{projected + extra:.0%} projected (cap {cap:.0%})")
            else:
                projected += extra
        out.append(ch)
    return out, state


def _valid_rate(row: Mapping[str, Any]) -> float:
    """Decisions with a valid attempt per second in a window row (0 when unknown)."""
    rate = row.get("arrival_rate_per_s", 0.0) * (1.0 - row.get("error_rate", 0.0))
    return rate if rate == rate else 0.0


AUTONOMY_POLICIES: dict[str, Rule] = {"rules": rules, "fixed": fixed, "load_aware": load_aware}
"""The built-in autonomy rules by the name ``orchestrator.policy`` gives them."""


def resolve_rule(name: str) -> Rule:
    """The rule ``name`` names: a built-in or the callable at import path
    ``module:attribute``. Raises :class:`~swarmopt.errors.InputError` naming
    ``orchestrator.policy`` for an unknown name, a path that does not import
    or an object that is not callable."""
    from swarmopt.errors import InputError
    from swarmopt.plugins import load_object

    if name in AUTONOMY_POLICIES:
        return AUTONOMY_POLICIES[name]
    if ":" not in name:
        raise InputError(f"orchestrator.policy: unknown autonomy rule '{name}'; allowed: "
                         f"{', '.join(AUTONOMY_POLICIES)} or an import path 'module:attribute'")
    rule = load_object(name, "orchestrator.policy")
    if not callable(rule) or isinstance(rule, type):
        raise InputError(f"orchestrator.policy: expected an autonomy rule (a function (ctx, state) -> "
                         f"(changes, state)), got {type(rule).__name__}")
    return rule


def check_rule(name: str, source: str) -> None:
    """:func:`resolve_rule` before a run starts, so that a bad plug-in fails
    with :class:`~swarmopt.errors.InputError` naming ``source`` (the file or
    the argument) first, not inside an actor."""
    from swarmopt.errors import InputError

    try:
        resolve_rule(name)
    except InputError as err:
        raise InputError(f"{source}: {err}") from None


def mean_service_s(median_ms: float, sigma: float) -> float:
    """Mean of a lognormal of median ``median_ms`` (ms) and shape ``sigma``, in s: median x exp(sigma^2 / 2)."""
    return median_ms / 1000.0 * math.exp(sigma * sigma / 2.0)
