"""The Strategic Orchestrator: approves risky proposals and sets agent autonomy (pure).

Approval: a proposal is approved unless its model-tier or tier-routing change raises the
estimated token price per decision by more than ``max_cost_increase``
(relative), or the same remedy was rolled back on that agent within
``reject_after_rollback_s``.

Autonomy: after each optimizer report the scenario's autonomy rule
(``orchestrator.policy``, :mod:`swarmopt.autonomy`: the source's ``rules`` by
default) decides which agents' autonomy changes; a change takes effect one
window later. Autonomy is the probability that a decision is *not* escalated
to review, and a review is a task in the reviewer's queue
(:mod:`swarmopt.sim.review`), so every change has a measurable cost and
benefit in the simulation.

The optimizer's own autonomy is its business, but every change of it comes in
the report with its reason (e.g. the rollback and the breach that caused it),
and the Orchestrator logs an ``orchestrator.optimizer_autonomy`` event naming
the reason. Results that were not kept (rolled back or reverted) block the same
remedy on that agent for ``reject_after_rollback_s``.

The two-way protocol of the source (:mod:`swarmopt.protocol`): the scenario's
commands go to the optimizer at their times (:meth:`Orchestrator.commands_due`),
and with ``act_on_recommendations`` the Orchestrator acts on the optimizer's
structured recommendations (:meth:`Orchestrator.act_on_report`).
"""

from __future__ import annotations

import math

from swarmopt.autonomy import UNHEALTHY, AutonomyContext, ReviewLoad, mean_service_s, resolve_rule
from swarmopt.knobs import KnobChange, ScheduledChange
from swarmopt.optimizer.strategies import Proposal
from swarmopt.protocol import Grant, command_text
from swarmopt.schema import AgentProfile, ModelTier, OrchestratorConfig

GRANT_HOLD_S = 1800.0  # the Orchestrator grants one agent resources at most once in this long


class Orchestrator:
    """Approval and per-agent autonomy; ``window_s`` delays autonomy changes by
    one window so they start on a window boundary. Raises
    :class:`~swarmopt.errors.InputError` for an autonomy rule that does not resolve."""

    def __init__(self, config: OrchestratorConfig, profiles: dict[str, AgentProfile],
                 models: dict[str, ModelTier], window_s: float) -> None:
        self.cfg = config
        self.profiles = profiles
        self.models = models
        self.window_s = window_s
        self.autonomy = {a: p.autonomy for a, p in profiles.items()}
        self.rollbacks: dict[tuple[str, str], float] = {}
        self.rule = resolve_rule(config.policy)
        self.rule_state: dict = {}
        desks = [p.review for p in profiles.values() if p.review is not None]
        self.desk = (sum(d.workers for d in desks), sum(d.workers * mean_service_s(d.service_ms_median,
                                                                                    d.service_sigma) for d in desks)
                     / sum(d.workers for d in desks)) if desks else None
        self.issued = 0  # commands of the configuration issued so far (they are sorted by time)
        self.grants: list[Grant] = []
        self.granted: dict[str, float] = {}  # agent -> when resources were last granted
        self.frozen_from_s: float | None = None

    def freeze(self, t_s: float) -> None:
        """Change no agent's autonomy and grant nothing from ``t_s`` (s) on: the
        ground truth's two arms (:mod:`swarmopt.loadtest.truth`) must differ
        only by the change they judge, not by how the Orchestrator reacts to
        its verdict (a kept change raises its agent's autonomy). Approvals and
        the configuration's commands go on."""
        self.frozen_from_s = t_s

    def _frozen(self, t: float) -> bool:
        return self.frozen_from_s is not None and t >= self.frozen_from_s - 1e-9

    def _price(self, tier: str, agent: str) -> float:
        m, p = self.models[tier], self.profiles[agent]
        return p.prompt_tokens * m.input_usd_per_mtok + p.output_tokens * m.output_usd_per_mtok

    def _routed_price(self, agent: str) -> float:
        """Token price per decision under tier routing, on the profile's base tier."""
        p = self.profiles[agent]
        mix, base = p.action_mix, p.knobs.model_tier
        return (mix.simple * self._price("fast", agent) + mix.complex * self._price("strong", agent)
                + (1.0 - mix.simple - mix.complex) * self._price(base, agent))

    def review(self, t: float, proposals: list[Proposal]) -> tuple[dict[str, bool], list[dict]]:
        """Decide every proposal that needs approval. Returns ({strategy id:
        approved}, events)."""
        decisions, events = {}, []
        for prop in proposals:
            if not prop.needs_approval:
                continue
            s = prop.strategy
            reason = ""
            for c in s.actions:
                rise = 0.0
                if c.knob == "model_tier":
                    rise = self._price(c.new, c.agent) / self._price(c.old, c.agent) - 1.0
                elif c.knob == "tier_routing" and c.new:
                    base = self._price(self.profiles[c.agent].knobs.model_tier, c.agent)
                    rise = self._routed_price(c.agent) / base - 1.0
                if rise > self.cfg.max_cost_increase:
                    reason = f"cost per decision would rise {rise:.0%} (limit {self.cfg.max_cost_increase:.0%})"
                if t - self.rollbacks.get((c.agent, s.kind), -1e18) < self.cfg.reject_after_rollback_s:
                    reason = f"{s.kind} was rolled back on {c.agent} recently"
            decisions[s.id] = not reason
            events.append({"t_s": t, "event": "orchestrator.decision", "agent": ",".join(c.agent for c in s.actions),
                           "strategy_id": s.id, "kind": s.kind, "risk": s.risk,
                           "verdict": "approved" if not reason else "rejected",
                           "detail": reason or "within cost and rollback limits"})
        return decisions, events

    def receive_report(self, t: float, report: dict) -> tuple[list[ScheduledChange], list[dict]]:
        """Adjust agent autonomy from an optimizer report. Returns (autonomy
        changes effective one window later, events)."""
        changes, events = [], []
        kept = {r["agent"] for r in report["results"] if r["kept"]}
        for r in report["results"]:
            if not r["kept"]:
                self.rollbacks[(r["agent"], r["kind"])] = t
        events.append({"t_s": t, "event": "report.received", "agent": "strategic-orchestrator",
                       "value": len(report["results"]), "detail": "; ".join(report["recommendations"])})
        for ch in report["autonomy_changes"]:
            events.append({"t_s": t, "event": "orchestrator.optimizer_autonomy", "agent": "performance-optimizer",
                           "old": ch["old"], "new": ch["new"], "detail": ch["reason"]})
        review = ReviewLoad(report.get("review_utilization", float("nan")), *self.desk) if self.desk else None
        ctx = AutonomyContext(t, self.cfg, dict(self.autonomy), report["health"], frozenset(kept),
                              frozenset(report["in_flight"]), report.get("rows", {}), review)
        decided = []
        if not self._frozen(t):
            decided, self.rule_state = self.rule(ctx, self.rule_state)
        for ch in decided:
            old, new = self.autonomy[ch.agent], round(float(ch.new), 4)
            if new == old:
                events.append({"t_s": t, "event": "autonomy.held", "agent": ch.agent, "old": old, "new": old,
                               "detail": ch.reason})
                continue
            self.autonomy[ch.agent] = new
            changes.append(ScheduledChange(t + self.window_s, KnobChange(ch.agent, "autonomy", old, new),
                                           "orchestrator"))
            events.append({"t_s": t, "event": "autonomy.agent", "agent": ch.agent, "old": old, "new": new,
                           "effective_s": t + self.window_s, "detail": ch.reason})
        return changes, events

    # ------------------------------------------------------------------ the two-way protocol (swarmopt.protocol)
    def commands_due(self, t: float) -> tuple[list, list[dict]]:
        """The commands to send the optimizer at its cycle at ``t``: those of
        the configuration due by ``t`` (in time order) and the grants of
        resources decided at the last report. Returns (commands, events)."""
        due = sorted(self.cfg.commands, key=lambda c: c.at_s)
        out, events = [], []
        while self.issued < len(due) and due[self.issued].at_s <= t + 1e-9:
            c = due[self.issued]
            self.issued += 1
            out.append(c)
            events.append({"t_s": t, "event": "orchestrator.command", "agent": getattr(c, "agent", None)
                           or "performance-optimizer", "kind": c.kind, "value": getattr(c, "level", None),
                           "effective_s": t, "detail": command_text(c)})
        for g in self.grants:
            out.append(g)
            events.append({"t_s": t, "event": "orchestrator.command", "agent": g.agent, "kind": g.kind,
                           "effective_s": t, "detail": command_text(g)})
        self.grants = []
        return out, events

    def act_on_report(self, t: float, report: dict) -> tuple[list[ScheduledChange], list[dict]]:
        """Act on the report's structured recommendations (``advice``) when
        ``act_on_recommendations`` is set: lower the autonomy of an agent
        recommended for it, raise that of the agents named by
        "System-wide coordination needs improvement" (their reviews make them
        miss coordination deadlines) unless their health is below 60%, and
        grant resources (a command at the next cycle) to an agent recommended
        for them, at most once in :data:`GRANT_HOLD_S`. Agents with a change in flight are left alone, as by
        :meth:`receive_report`, and so are the agents the source's autonomy
        rules move (a kept change, or health below 60% in two reports, as the
        rule's state ``low_streak`` counts them), so that no agent moves twice
        on one report. Call it after :meth:`receive_report`.
        Nothing after :meth:`freeze`. Returns (autonomy changes, events)."""
        if not self.cfg.act_on_recommendations or self._frozen(t):
            return [], []
        changes, events = [], []
        moved = set()
        kept = {r["agent"] for r in report["results"] if r["kept"]}
        for adv in report.get("advice", ()):
            events.append({"t_s": t, "event": "optimizer.recommendation", "agent": ",".join(adv["agents"]),
                           "kind": adv["kind"], "detail": adv["text"]})
            for agent in adv["agents"]:
                if agent in report["in_flight"]:
                    continue
                if adv["kind"] == "increase_resources":
                    if t - self.granted.get(agent, -math.inf) < GRANT_HOLD_S:
                        continue  # granted recently: the optimizer is on it, or chose not to
                    self.granted[agent] = t
                    self.grants.append(Grant(agent, t))
                    events.append({"t_s": t, "event": "orchestrator.action", "agent": agent, "kind": "grant_resources",
                                   "detail": f"{adv['text']}: resources granted at the next cycle"})
                    continue
                if agent in moved or agent in kept or self.rule_state.get("low_streak", {}).get(agent, 0) >= 2:
                    continue  # moved already, or receive_report's own autonomy rules move it (or just did)
                health = report["health"].get(agent, float("nan"))
                step = -self.cfg.autonomy_step if adv["kind"] == "reduce_autonomy" else self.cfg.autonomy_step
                if adv["kind"] == "improve_coordination" and not health >= UNHEALTHY:
                    continue
                old = self.autonomy[agent]
                new = round(min(self.cfg.max_agent_autonomy, max(self.cfg.min_agent_autonomy, old + step)), 4)
                if new == old:
                    continue
                moved.add(agent)
                self.autonomy[agent] = new
                changes.append(ScheduledChange(t + self.window_s, KnobChange(agent, "autonomy", old, new),
                                               "orchestrator"))
                events.append({"t_s": t, "event": "orchestrator.action", "agent": agent, "kind": adv["kind"],
                               "old": old, "new": new, "effective_s": t + self.window_s, "detail": adv["text"]})
        return changes, events
