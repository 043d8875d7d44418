"""Planning: strategies that answer this cycle's bottlenecks, and proactive ones (pure).

Reactive: per bottleneck outside the tolerance band, the remedies of its type
(:data:`~swarmopt.optimizer.strategies.TYPES`) that apply to the agent, are not
barred (tabu) and touch no knob another strategy of this cycle touches, each
as bounded steps that do not reverse a knob within the stabilization window
(:mod:`swarmopt.optimizer.stabilize`); the policy picks one or none
(:class:`~swarmopt.policies.PolicyContext`). Plug-in remedies are tried before
the built-in ones of the types they answer; a type with no entry in ``TYPES``
(a plug-in rule's) is judged on its bottleneck's metric. A system-wide
bottleneck is answered on the least healthy agent, with the type of its worst
bottleneck. Proactive: predictive pre-scaling from a Holt-Winters
load forecast and coordination enhancement. Strategies come out in the source
design's priority order (:func:`~swarmopt.optimizer.strategies.priority_key`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np

from swarmopt.knobs import KnobChange, align
from swarmopt.metrics import health_score
from swarmopt.optimizer.detect import SEVERITY_RANK, SNAPSHOT_FIELDS, Bottleneck
from swarmopt.optimizer.events import held_event, within_tolerance_event
from swarmopt.optimizer.forecast import forecast_peak
from swarmopt.optimizer.learning import Learning
from swarmopt.optimizer.pricing import predicted_cost_rise
from swarmopt.optimizer.stabilize import Stabilizer, bound_step, outside_dead_band
from swarmopt.optimizer.strategies import (
    REMEDIES,
    TYPES,
    BottleneckType,
    Remedy,
    Strategy,
    pre_scale,
    priority_key,
    rollback_plan,
)
from swarmopt.optimizer.tuning import tool_view
from swarmopt.policies import Policy, PolicyContext
from swarmopt.schema import AgentProfile, Knobs, ModelTier, OptimizerConfig

FORECAST_WINDOWS = 60  # windows of arrival rate the Holt forecast is fitted on
ARRIVAL_RATE = SNAPSHOT_FIELDS.index("arrival_rate_per_s")
PRE_SCALE, BATCH = REMEDIES["pre_scale"], REMEDIES["larger_message_batch"]


class Planner:
    """Plans the strategies of each cycle for agents with ``profiles``.

    ``policy`` picks among the applicable remedies (drawing from ``rng``);
    ``learning`` sets each strategy's expected improvement; ``remedies`` are
    plug-in remedies (each answers the types in its ``answers``); with the
    model tier table ``models``, a change whose known price breaks the cost
    guardrail is not tried (:mod:`swarmopt.optimizer.pricing`). Holds the
    stabilizer's recommendation history and the strategy id sequence. Raises
    ValueError for a plug-in remedy whose name is taken.
    """

    def __init__(self, cfg: OptimizerConfig, profiles: dict[str, AgentProfile], window_s: float, policy: Policy,
                 rng: np.random.Generator, learning: Learning, remedies: Sequence[Remedy] = (),
                 models: Mapping[str, ModelTier] | None = None) -> None:
        self.cfg = cfg
        self.profiles = profiles
        self.models = models
        self.window_s = window_s
        self.policy = policy
        self.rng = rng
        self.learning = learning
        self.stabilizer = Stabilizer(cfg.stabilization_window_s)
        names = list(REMEDIES) + [r.name for r in remedies]
        taken = {n for n in names if names.count(n) > 1}
        if taken:
            raise ValueError(f"remedy names must be unique; taken: {sorted(taken)}")
        answered = list(TYPES) + [t for r in remedies for t in r.answers if t not in TYPES]
        self.remedies: dict[str, tuple[Remedy, ...]] = {
            type_: tuple(r for r in remedies if type_ in r.answers)
            + tuple(REMEDIES[name] for name in (TYPES[type_].remedies if type_ in TYPES else ()))
            for type_ in dict.fromkeys(answered)}
        self._seq = 0

    def plan(self, t: float, bottlenecks: list[Bottleneck], snaps: dict[str, dict], mats: dict[str, np.ndarray],
             knobs: dict[str, Knobs], tabu: dict[tuple[str, str], float], rows: Callable[[str], tuple[Mapping, ...]],
             events: list[dict], barred: frozenset[str] = frozenset()) -> list[Strategy]:
        """Strategies at time ``t`` for ``bottlenecks``, given each agent's
        snapshot of the last cycle (``snaps``), recent window matrix (``mats``),
        current ``knobs``, the remedies barred until a time (``tabu``, keyed by
        (agent, remedy)) and ``rows(agent)``, its recent window rows for the
        policy; appends ``bottleneck.within_tolerance`` and ``strategy.held``
        events to ``events``. Sorted by priority. Raises ValueError when the
        policy returns something other than one of its options or None, or a
        remedy proposes something other than changes of the agent. Remedies
        named in ``barred`` (by an Orchestrator command,
        :meth:`swarmopt.protocol.Mode.barred`) are not tried."""
        taken: set[tuple[str, str]] = set()
        out = self._reactive(t, bottlenecks, snaps, knobs, tabu, rows, taken, events, barred)
        if self.cfg.proactive:
            out += self._proactive(t, bottlenecks, snaps, mats, knobs, tabu, taken, events, barred)
        for s in out:
            self.stabilizer.record(align(t + s.implementation_time_s, self.window_s), s.actions)
        out.sort(key=priority_key)
        return out

    def _reactive(self, t: float, bottlenecks: list[Bottleneck], snaps: dict[str, dict], knobs: dict[str, Knobs],
                  tabu: dict[tuple[str, str], float], rows: Callable[[str], tuple[Mapping, ...]],
                  taken: set[tuple[str, str]], events: list[dict], barred: frozenset[str]) -> list[Strategy]:
        out: list[Strategy] = []
        stats = None  # what was learned, the same for every choice of this cycle: built at the first one
        views: dict[str, dict] = {}  # snapshots with per-tool figures, built for the agents a remedy is asked about
        for b in bottlenecks:
            if not outside_dead_band(b, self.cfg.tolerance):
                events.append(within_tolerance_event(t, b, self.cfg.tolerance))
                continue
            agent, answered = b.affected_component, b
            if agent == "system":
                agent = min((a for a in snaps if snaps[a]["decision_count"] > 0),
                            key=lambda a: health_score(snaps[a]), default=None)
                if agent is None:
                    continue
                worst = [x for x in bottlenecks if x.affected_component == agent]
                answered = max(worst, key=lambda x: SEVERITY_RANK[x.severity]) if worst else None
            type_ = answered.type if answered is not None else "agent_success_rate"
            if agent not in views:
                k = int(snaps[agent]["windows"])
                views[agent] = tool_view(snaps[agent], rows(agent)[-k:] if k else (),
                                         [t.name for t in self.profiles[agent].tools])
            options = []
            for r in self.remedies.get(type_, ()):
                if tabu.get((agent, r.name), -1.0) > t or r.name in barred:
                    continue
                actions = r.propose(views[agent], knobs[agent], self.profiles[agent])
                if actions and not all(isinstance(c, KnobChange) and c.agent == agent for c in actions):
                    raise ValueError(f"remedy {r.name}: must return None or a list of KnobChange on {agent}, "
                                     f"got {actions!r}")
                if actions and not any((agent, c.knob) in taken for c in actions):
                    actions = self._stable(t, r, actions, events)
                    if actions and self._affordable(t, r, actions, views[agent], knobs[agent],
                                                    self._target(r, type_, answered), events):
                        options.append((r, tuple(actions)))
            if not options:
                continue
            if stats is None:
                stats = MappingProxyType(self.learning.remedy_stats())
            ctx = PolicyContext(agent, b, type_, tuple(options), rows(agent), stats, t)
            choice = self.policy.choose(ctx, self.rng)
            if choice is None:
                continue
            if choice not in ctx.options:
                raise ValueError(f"policy {type(self.policy).__name__}: choose() must return one of ctx.options or "
                                 f"None, got {choice!r}")
            r, actions = choice
            taken |= {(agent, c.knob) for c in actions}
            out.append(self._make(t, type_, b.severity, agent, r, actions, b.impact, self._target(r, type_, answered),
                                  component=b.affected_component if b.affected_component == "system" else None))
        return out

    def _proactive(self, t: float, bottlenecks: list[Bottleneck], snaps: dict[str, dict],
                   mats: dict[str, np.ndarray], knobs: dict[str, Knobs], tabu: dict[tuple[str, str], float],
                   taken: set[tuple[str, str]], events: list[dict], barred: frozenset[str]) -> list[Strategy]:
        """Predictive pre-scaling of agents with no bottleneck this cycle (an
        agent in trouble is the reactive remedies' job: a proactive change would
        occupy it and be judged on confounded windows) and coordination
        enhancement."""
        out = []
        horizon = int(round((self.cfg.cycle_s + PRE_SCALE.implementation_time_s) / self.window_s))
        troubled = {b.affected_component for b in bottlenecks}
        for agent, m in sorted(mats.items()):
            if (len(m) < 12 or agent in troubled or (agent, "max_concurrency") in taken
                    or tabu.get((agent, PRE_SCALE.name), -1) > t or PRE_SCALE.name in barred):
                continue
            peak = forecast_peak(m[-FORECAST_WINDOWS:, ARRIVAL_RATE], horizon)
            actions = pre_scale(snaps[agent], knobs[agent], self.profiles[agent], peak, tolerance=self.cfg.tolerance)
            if actions:
                actions = self._stable(t, PRE_SCALE, actions, events)
            if actions:
                out.append(self._make(t, "predictive_optimization", "medium", agent, PRE_SCALE, actions, 0.0,
                                      TYPES["predictive_optimization"].target, proactive=True, component="system"))
        for agent, s in sorted(snaps.items()):
            if (agent, "message_batch_size") in taken or tabu.get((agent, BATCH.name), -1) > t or BATCH.name in barred:
                continue
            rate = s["inbox_in_time_rate"]
            if rate == rate and rate < 0.95:
                # the remedy proposes below 0.9 only; the proactive rule acts from 0.95, so it asks as if just under
                actions = BATCH.propose(dict(s, inbox_in_time_rate=min(rate, 0.89)), knobs[agent],
                                        self.profiles[agent])
                if actions:
                    actions = self._stable(t, BATCH, actions, events)
                if actions:
                    out.append(self._make(t, "coordination_enhancement", "low", agent, BATCH, actions, 0.0,
                                          TYPES["coordination_enhancement"].target, proactive=True,
                                          component="inter_agent"))
        return out

    @staticmethod
    def _target(remedy: Remedy, type_: str, answered: Bottleneck | None) -> str:
        """The metric a change by ``remedy`` answering a bottleneck of ``type_`` is judged on."""
        return remedy.target or (TYPES[type_].metric_of(remedy.name) if type_ in TYPES else answered.metric)

    def _affordable(self, t: float, remedy: Remedy, actions: list[KnobChange], view: dict, k: Knobs, target: str,
                    events: list[dict]) -> bool:
        """False (with a ``strategy.held`` event) when the tier table says
        ``actions`` raise the agent's cost per decision by more than the cost
        guardrail allows (:func:`~swarmopt.optimizer.pricing.predicted_cost_rise`
        on the spend of ``view``, the agent's recent windows): the guardrail
        would roll the change back. A change judged on the cost per decision
        itself has no such guardrail."""
        if self.models is None or target == "cost_per_decision_usd":
            return True
        tools = sum(v["cost_usd"] for v in view["tools"].values())
        rise = predicted_cost_rise(actions, k, self.profiles[actions[0].agent], self.models,
                                   view["model_cost_usd_sum"], tools)
        if rise is None or rise <= self.cfg.guardrail_cost_rise:
            return True
        events.append(held_event(t, remedy.name, actions, f"its tier prices raise the cost per decision by "
                                 f"{rise:+.0%}, past the {self.cfg.guardrail_cost_rise:+.0%} cost guardrail"))
        return False

    def _stable(self, t: float, remedy: Remedy, actions: list[KnobChange],
                events: list[dict]) -> list[KnobChange] | None:
        """``actions`` as bounded steps, or None (with a ``strategy.held``
        event) when they would reverse a knob within the stabilization window."""
        actions = [bound_step(c, self.cfg.max_step_ratio, self.cfg.max_ttl_step_ratio) for c in actions]
        if self.stabilizer.allows(align(t + remedy.implementation_time_s, self.window_s), actions):
            return actions
        events.append(held_event(t, remedy.name, actions, f"would reverse a knob within the "
                                 f"{self.cfg.stabilization_window_s:.0f}s stabilization window"))
        return None

    def _make(self, t: float, type_: str, severity: str, agent: str, remedy: Remedy, actions: Sequence[KnobChange],
              impact: float, target: str, proactive: bool = False, component: str | None = None) -> Strategy:
        bt = TYPES.get(type_) or BottleneckType(target, (), ())  # a plug-in rule's type: the defaults
        self._seq += 1
        return Strategy(
            id=f"opt_{int(t)}_{agent}_{remedy.name}_{self._seq}", type=type_, kind=remedy.name, priority=severity,
            target_component=component or agent,
            description=f"{'Proactive: ' if proactive else 'Optimize '}{type_} for {agent}: {remedy.describe(type_)}",
            expected_improvement=self.learning.expected_improvement(type_, remedy.name, impact, bt.expected_pct),
            implementation_time_s=remedy.implementation_time_s, actions=tuple(actions),
            success_metrics=bt.success_metrics,
            rollback_plan=rollback_plan(actions),
            risk=remedy.risk, target_metric=target, proactive=proactive, price=remedy.price,
            monotone=target in remedy.monotone,
        )
