"""The Performance Optimizer's autonomous cycle (pure; the Ray actor wraps it).

Each cycle (every ``cycle_s``, docs/architecture.md "One optimizer cycle"):

1. collect the window rows and per-task samples of every agent since the last
   cycle (:class:`~swarmopt.optimizer.history.History`);
2. judge every change whose after-windows are complete with the canary judge
   (:func:`~swarmopt.optimizer.measure.judge_change`) and apply what
   :func:`~swarmopt.optimizer.trial.decide_trial` decides: keep, roll back,
   revert or restore, learn, move the optimizer's autonomy, bar the remedy;
3. detect bottlenecks that breach the setpoint (each SLO threshold moved inside
   by ``margin``, :func:`~swarmopt.optimizer.detect.setpoint`) over a long and a short span of windows, the
   plug-in rules' bottlenecks, and level shifts of each agent's metrics
   against its own history (:mod:`swarmopt.optimizer.detect`);
4. plan reactive and proactive strategies (:class:`~swarmopt.optimizer.planning.Planner`);
5. select at most one change per agent, and only on agents whose configuration
   has been stable for the ``measure_windows`` windows the change will be
   compared against; with ``bundle`` the agent's other reactive strategies
   join that change when they touch other knobs; strategies riskier than the
   optimizer's autonomy go to the Orchestrator (:meth:`Optimizer.commit` takes
   its decisions);
6. schedule the approved changes after their implementation time and report.

Decision hooks, for counterfactual runs (fork at a decision, continue it both
ways): :attr:`Optimizer.overrides` and :attr:`Optimizer.decide` force the
decision on a judged change; :meth:`Optimizer.freeze_planning` stops planning
from a time on while judging and detection go on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Callable

import numpy as np

from swarmopt.knobs import KnobChange, ScheduledChange, align, set_knob
from swarmopt.metrics import TaskSample, health_score, metric_spec
from swarmopt.optimizer import split, switchback
from swarmopt.optimizer.budget import burn_alerts, windows_needed
from swarmopt.optimizer.detect import (
    Bottleneck,
    DetectionRule,
    anomalies,
    multiwindow_alerts,
    rule_bottlenecks,
    setpoint,
    snapshots,
)
from swarmopt.optimizer.events import (
    anomaly_event,
    autonomy_event,
    bottleneck_event,
    decision_event,
    measure_event,
    strategy_event,
)
from swarmopt.optimizer.history import History, kept_windows
from swarmopt.optimizer.learning import Learning
from swarmopt.optimizer.measure import Judgement, Price, judge_change, last_shift_s, measure, steady_load
from swarmopt.optimizer.planning import FORECAST_WINDOWS, Planner
from swarmopt.optimizer.strategies import TYPES, Proposal, Remedy, Strategy, bundle, bundle_conflict
from swarmopt.optimizer.trial import (
    DECISIONS,
    DecisionContext,
    Trial,
    TrialOutcome,
    TrialState,
    decide_trial,
    look_alpha,
    new_trial,
)
from swarmopt.policies import MonitorPolicy, Policy
from swarmopt.protocol import Mode, advise, grant_bottlenecks
from swarmopt.schema import AgentProfile, Budget, Knobs, ModelTier, OptimizerConfig

ANOMALY_HISTORY = 60  # windows of an agent's own history a level shift is judged against


def learned_improvement(s: Strategy, j: Judgement, before_rows: list[dict], after_rows: list[dict]) -> float:
    """The improvement (%) learned from judged change ``s``: its target's window-level change, or for a remedy its
    type judges on another metric (:attr:`~swarmopt.optimizer.strategies.BottleneckType.judged_on`) the window-level
    change of the type's own metric, so the expected improvements of a type's remedies share one unit (a shorter
    service time is a smaller share than the response time it shortens)."""
    bt = TYPES.get(s.type)
    if bt is None or s.kind not in bt.judged_on:
        return j.window.improvement_pct
    return measure(before_rows, after_rows, bt.target, metric_spec(bt.target).better).improvement_pct


def price_of(metric: str | None, cfg: OptimizerConfig) -> Price | None:
    """The :class:`~swarmopt.optimizer.measure.Price` a change pays on
    ``metric`` (a remedy's :attr:`~swarmopt.optimizer.strategies.Remedy.price`;
    None: none): the response time may rise by ``cfg.tolerance`` while it ends
    past its setpoint (:func:`~swarmopt.optimizer.detect.setpoint`)."""
    return None if metric is None else Price(metric, setpoint(cfg.thresholds, cfg.margin).response_time_ms,
                                             cfg.tolerance)


class Optimizer:
    """State and decisions of the Performance Optimizer.

    ``profiles`` and ``knobs`` describe every monitored agent; ``window_s`` is the
    metric window; ``policy`` picks remedies (drawing from ``rng``); ``rules``
    and ``remedies`` are plug-in detection rules and remedies
    (:mod:`swarmopt.plugins`); ``budget`` the spend budget whose burn-rate
    alerts are bottlenecks too (:mod:`swarmopt.optimizer.budget`); ``models`` the model tier table (None: not
    known, as for real agents), whose prices keep a change that must break the cost guardrail from being tried
    (:mod:`swarmopt.optimizer.pricing`). Methods return event dicts (``event`` key,
    simulated time ``t_s``) for the events table.

    ``overrides`` maps a strategy id to the decision ("keep", "rollback" or
    "revert") to apply when that change is judged, instead of the judge's.
    ``decide``, when set, is called with a :class:`~swarmopt.optimizer.trial.DecisionContext`
    for every judged change and returns a decision to force or None; an
    override wins over it. A forced decision is applied like the judge's would
    be (undo, tabu, learning, autonomy), and the change's
    ``optimization.measured`` and keep/rollback/revert events carry
    ``forced: True``.
    """

    def __init__(self, config: OptimizerConfig, profiles: dict[str, AgentProfile], window_s: float,
                 policy: Policy, rng: np.random.Generator, rules: Sequence[DetectionRule] = (),
                 remedies: Sequence[Remedy] = (), budget: Budget | None = None,
                 models: Mapping[str, ModelTier] | None = None) -> None:
        self.cfg = config
        self.base_cfg = config
        self.mode = Mode()
        self.budget = budget or Budget()
        self.profiles = profiles
        self.knobs: dict[str, Knobs] = {a: p.knobs for a, p in profiles.items()}
        self.window_s = window_s
        self.policy = policy
        self.rules = tuple(rules)
        self.autonomy = config.initial_autonomy
        self.streak = 0
        self.history = History(profiles, window_s, config.max_measure_windows, kept_windows(config.long_windows))
        self.learning = Learning()
        self.planner = Planner(config, profiles, window_s, policy, rng, self.learning, remedies, models)
        self.autonomy_changes: list[dict] = []
        self.recommended: list[str] = []
        self.in_flight: dict[str, Trial] = {}
        self.tabu: dict[tuple[str, str], float] = {}
        # per agent with a bottleneck at every cycle since, the first of those cycles (s)
        self.troubled_since: dict[str, float] = {}
        self.proposals: list[Proposal] = []
        self.results: list[dict] = []
        self.bottlenecks: list[Bottleneck] = []
        self.anomalous: set[tuple[str, str]] = set()
        self.overrides: dict[str, str] = {}
        self.decide: Callable[[DecisionContext], str | None] | None = None
        self.frozen_from_s: float | None = None
        self._frozen_reported = False
        self._snaps: dict[str, dict] = {}

    # ------------------------------------------------------------------ hooks
    def force(self, strategy_id: str, decision: str) -> None:
        """Apply ``decision`` ("keep", "rollback" or "revert") to the change
        ``strategy_id`` when it is judged (an entry of :attr:`overrides`; a
        method, so that it also reaches an optimizer inside a Ray actor).
        Raises ValueError for another decision."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        self.overrides[strategy_id] = decision

    def set_decide(self, decide: Callable[[DecisionContext], str | None] | None) -> None:
        """Set :attr:`decide` (a method, so that it also reaches an optimizer in a Ray actor)."""
        self.decide = decide

    def freeze_planning(self, t_s: float) -> None:
        """Plan no new strategy from simulated time ``t_s`` (s) on; judging,
        undoing judged changes (and restoring reverted ones) and detection go
        on. The first cycle at or after ``t_s`` records a ``planning.frozen`` event."""
        self.frozen_from_s = t_s
        self._frozen_reported = False

    def command(self, t: float, commands: Sequence) -> list[dict]:
        """Take the Orchestrator's ``commands`` at ``t`` (schema commands and
        :class:`~swarmopt.protocol.Grant`; :mod:`swarmopt.protocol`): each
        changes the optimizer's :class:`~swarmopt.protocol.Mode` and so its
        effective configuration. Returns ``optimizer.mode`` events."""
        events = []
        for cmd in commands:
            self.mode, what = self.mode.apply(cmd, t)
            events.append({"t_s": t, "event": "optimizer.mode", "agent": "performance-optimizer", "kind": cmd.kind,
                           "detail": f"{what} ({self.mode.describe()})"})
        self._set_mode(self.mode, t)
        return events

    def _set_mode(self, mode: Mode, t: float) -> None:
        self.mode = mode
        self.cfg = mode.config(self.base_cfg, t)
        self.planner.cfg = self.cfg

    # ------------------------------------------------------------------ inputs
    def observe(self, rows: list[dict], applied: list[dict], samples: list[TaskSample] = ()) -> None:
        """Take new window rows, the knob/autonomy changes agents applied and the
        per-task samples of the new windows (:meth:`History.add`)."""
        self.history.add(rows, applied, samples, {a: tr.effective_s for a, tr in self.in_flight.items()})

    # ------------------------------------------------------------------ cycle
    def cycle_with(self, t: float, rows: list[dict], applied: list[dict], samples: list[TaskSample] = (),
                   plan: bool = True, commands: Sequence = ()):
        """:meth:`observe`, :meth:`command` (when there are ``commands``) then :meth:`cycle` (one actor call)."""
        self.observe(rows, applied, samples)
        if not commands:
            return self.cycle(t, plan)
        events = self.command(t, commands)
        proposals, rollbacks, more = self.cycle(t, plan)
        return proposals, rollbacks, more[:1] + events + more[1:]

    def cycle(self, t: float, plan: bool = True) -> tuple[list[Proposal], list[ScheduledChange], list[dict]]:
        """Run steps 2-5 at time ``t``: judge finished trials (returns their
        rollbacks, already scheduled), detect, plan and select. Returns
        (proposals awaiting :meth:`commit`, rollback changes, events). With
        ``plan=False`` (end of run) it only judges and detects."""
        events: list[dict] = [{"t_s": t, "event": "cycle.started", "autonomy": self.autonomy}]
        mode, ended = self.mode.expire(t)
        if ended:
            self._set_mode(mode, t)
            events += [{"t_s": t, "event": "optimizer.mode", "agent": "performance-optimizer", "kind": "expired",
                        "detail": f"{what} ({mode.describe()})"} for what in ended]
        rollbacks = self._judge(t, events)
        cycle_windows = int(round(self.cfg.cycle_s / self.window_s))
        th = setpoint(self.cfg.thresholds, self.cfg.margin)
        # each agent's recent window rows as one matrix, shared by detection, anomalies and the forecast
        mats = self.history.matrices(max(self.cfg.long_windows, cycle_windows + ANOMALY_HISTORY, FORECAST_WINDOWS))
        snaps = snapshots(mats, dict.fromkeys(mats, cycle_windows))
        self.bottlenecks = multiwindow_alerts(mats, self.cfg.long_windows, self.profiles, th)
        if self.rules:
            recent = {a: self.history.recent(a, self.cfg.long_windows) for a in mats}
            self.bottlenecks += rule_bottlenecks(self.rules, recent, th, self.profiles)
        if self.budget.enabled:
            self.bottlenecks += burn_alerts(self.history.matrices(windows_needed(self.budget, self.window_s)),
                                            self.budget, self.window_s, self.cfg.margin)
        if self.mode.grants:
            self.bottlenecks += grant_bottlenecks(self.mode, snaps)
            self._set_mode(replace(self.mode, grants=()), t)  # a grant is answered (or dropped) once
        self._snaps = snaps
        troubled = dict.fromkeys(b.affected_component for b in self.bottlenecks)
        self.troubled_since = {a: self.troubled_since.get(a, t) for a in troubled}
        events += [bottleneck_event(t, b) for b in self.bottlenecks]
        found = anomalies(mats, snaps, cycle_windows, th.min_decisions, self.cfg.anomaly_z, self.cfg.tolerance,
                          ANOMALY_HISTORY)
        events += [anomaly_event(t, x) for key, x in found.items() if key not in self.anomalous]  # once per shift
        self.anomalous = set(found)
        self.proposals = []
        frozen = self.frozen_from_s is not None and t >= self.frozen_from_s - 1e-9
        if frozen and not self._frozen_reported:
            events.append({"t_s": t, "event": "planning.frozen", "effective_s": self.frozen_from_s,
                           "detail": f"no new strategies from {self.frozen_from_s:.0f}s; judging and detection go on"})
            self._frozen_reported = True
        if isinstance(self.policy, MonitorPolicy) or not plan or frozen:
            return [], rollbacks, events
        strategies = self.planner.plan(t, self.bottlenecks, snaps, mats, self.knobs, self.tabu,
                                       lambda agent: self.history.recent(agent, self.cfg.long_windows), events,
                                       self.mode.barred(t))
        # the Orchestrator's grant of resources is its decision: it goes before the optimizer's own choices
        strategies.sort(key=lambda s: s.type != "resource_grant")
        events.append({"t_s": t, "event": "strategies.generated", "value": len(strategies),
                       "detail": f"{sum(not s.proactive for s in strategies)} reactive, "
                                 f"{sum(s.proactive for s in strategies)} proactive"})
        placed: dict[str, int] = {}  # agent -> the index of its proposal of this cycle
        for s in strategies:
            agents = {c.agent for c in s.actions}
            ev = strategy_event(t, "strategy.planned", s)
            focus = self.mode.deferral(agents, t)
            if self.cfg.recommend_only:
                ev["event"] = "strategy.recommended"
                self.recommended.append(s.description)
            elif focus is not None:
                ev["event"] = "strategy.deferred"
                ev["detail"] = f"{s.description} (deferred: {focus})"
            elif (i := self._bundle_with(s, placed)) is not None:
                primary = self.proposals[i]
                self.proposals[i] = Proposal(bundle(primary.strategy, s), primary.needs_approval)
                ev["event"] = "strategy.bundled"
                ev["detail"] = f"{s.description} (bundled into {primary.strategy.id})"
            elif placed.keys() & agents or not all(self._eligible(a, t + s.implementation_time_s) for a in agents):
                ev["event"] = "strategy.deferred"
            else:
                placed |= dict.fromkeys(agents, len(self.proposals))
                needs = s.risk > self.autonomy
                self.proposals.append(Proposal(s, needs))
                if needs:
                    events.append(ev)
                    ev = strategy_event(t, "approval.requested", s)
            events.append(ev)
        return list(self.proposals), rollbacks, events

    def commit(self, t: float, decisions: dict[str, bool]) -> tuple[list[ScheduledChange], list[dict]]:
        """Schedule the selected strategies; ``decisions`` maps the id of every
        proposal that needed approval to the Orchestrator's answer."""
        changes: list[ScheduledChange] = []
        events: list[dict] = []
        for prop in self.proposals:
            s = prop.strategy
            if prop.needs_approval:
                ok = decisions.get(s.id, False)
                events.append(strategy_event(t, "strategy.approved" if ok else "strategy.rejected", s))
                if not ok:
                    continue
            eff = align(t + s.implementation_time_s, self.window_s)
            for c in s.actions:
                changes.append(ScheduledChange(eff, c, s.id))
                self.knobs[c.agent] = set_knob(self.knobs[c.agent], c.knob, c.new)
            for agent in {c.agent for c in s.actions}:
                since = self._regime_start(agent, s.target_metric, t)
                self.in_flight[agent] = new_trial(s, eff, self.cfg, self.window_s, before_from_s=since,
                                                  rows=self.history.recent(agent, self.cfg.measure_windows))
            ev = strategy_event(t, "optimization.scheduled", s)
            ev["effective_s"] = eff
            events.append(ev)
        self.proposals = []
        return changes, events

    def commit_and_report(self, t: float, decisions: dict[str, bool]) -> tuple[list[ScheduledChange], list[dict], dict]:
        """:meth:`commit` then :meth:`report` (one actor call)."""
        changes, events = self.commit(t, decisions)
        return changes, events, self.report(t)

    def report(self, t: float) -> dict:
        """The cycle report for the Orchestrator: results judged since the last
        report (each with its ``decision`` keep/rollback/revert, whether it was
        ``forced``, and ``reason``),
        bottlenecks, per-agent health (last window), agents with a change in
        flight, recommendations (in recommend-only mode, every strategy it
        would have applied), the optimizer's autonomy with its changes
        since the last report (``autonomy_changes``: t_s, old, new, reason),
        ``advice``, the structured recommendations of
        :func:`swarmopt.protocol.advise` (kind, agents, text) on the last cycle,
        each agent's last window row (``rows``) and the reviewers' mean
        ``review_utilization`` over the windows of the last cycle (NaN without
        a reviewer or a window)."""
        health = {a: health_score(rows[-1], self.cfg.thresholds.response_time_ms)
                  for a, rows in self.history.rows.items() if rows}
        recs = [f"Reduce autonomy for {a} (poor performance)" for a, h in health.items()
                if h == h and h < self.cfg.thresholds.system_critical]
        advice = advise(self._snaps, health, self.cfg.thresholds, self.cfg.margin)
        util = [r["review_utilization"] for a, p in self.profiles.items() if p.review is not None
                for r in self.history.window_rows(a, t - self.cfg.cycle_s, t)]
        rep = {"t_s": t, "results": self.results, "bottlenecks": [b.__dict__ for b in self.bottlenecks],
               "health": health, "in_flight": sorted(self.in_flight), "recommendations": recs + self.recommended,
               "optimizer_autonomy": self.autonomy, "autonomy_changes": self.autonomy_changes,
               "advice": [a.__dict__ for a in advice],
               "rows": {a: dict(rows[-1]) for a, rows in self.history.rows.items() if rows},
               "review_utilization": sum(util) / len(util) if util else float("nan")}
        self.results, self.autonomy_changes, self.recommended = [], [], []
        return rep

    # ------------------------------------------------------------------ inspection (Simulation)
    def note_user_change(self, change: KnobChange) -> None:
        """A knob set by the user: later changes and rollbacks start from it."""
        self.knobs[change.agent] = set_knob(self.knobs[change.agent], change.knob, change.new)

    def state(self) -> dict:
        """Autonomy, streak, learning (per strategy type and remedy: judged changes
        and their mean measured improvement, %), changes in flight, tabu, the
        frozen-planning time and the mode the Orchestrator's commands set
        (:class:`~swarmopt.protocol.Mode`, in words)."""
        def learned(table: dict[str, list[float]]) -> dict:
            return {k: {"judged": len(v), "mean_improvement_pct": sum(v) / len(v)} for k, v in table.items()}

        return {
            "autonomy": self.autonomy, "streak": self.streak,
            "learning": {"by_type": learned(self.learning.by_type), "by_remedy": learned(self.learning.by_remedy)},
            "in_flight": {a: {"strategy_id": tr.strategy.id, "kind": tr.strategy.kind,
                              "changes": [(c.knob, c.old, c.new) for c in tr.strategy.actions],
                              "effective_s": tr.effective_s, "measure_at_s": tr.measure_at_s,
                              "undoes": tr.undone.id if tr.undone else None}
                          for a, tr in sorted(self.in_flight.items())},
            "tabu": {f"{a}:{kind}": until for (a, kind), until in sorted(self.tabu.items())},
            "planning_frozen_s": self.frozen_from_s,
            "mode": self.mode.describe(),
        }

    # ------------------------------------------------------------------ internals
    def _regime_start(self, agent: str, metric: str, t: float) -> float:
        """Since when (s) ``agent`` has been in the state a change at ``t``
        answers: its configuration unchanged and its ``metric`` at one level
        (from the last level shift, :func:`~swarmopt.optimizer.measure.last_shift_s`),
        or, with no shift in the metric, since its bottleneck was first detected."""
        stable = self.history.last_change_s[agent]
        rows = self.history.window_rows(agent, stable, t)
        onset = last_shift_s([r["t_start_s"] for r in rows], [r.get(metric, math.nan) for r in rows])
        return max(stable, onset if onset > -math.inf else self.troubled_since.get(agent, math.inf))

    def _bundle_with(self, s: Strategy, placed: dict[str, int]) -> int | None:
        """The index of the proposal ``s`` joins (``bundle``), given the index
        of each agent's proposal of this cycle (``placed``): its agent's, when
        both are reactive changes of that one agent, touch different knobs and,
        if ``s`` is riskier than the optimizer's autonomy, the proposal goes to
        the Orchestrator anyway. None: ``s`` is planned on its own."""
        agents = {c.agent for c in s.actions}
        i = placed.get(next(iter(agents))) if self.cfg.bundle and len(agents) == 1 else None
        if i is None:
            return None
        p = self.proposals[i]
        joins = bundle_conflict(p.strategy, s) is None and (p.needs_approval or s.risk <= self.autonomy)
        return i if joins else None

    def _eligible(self, agent: str, effective_s: float) -> bool:
        """No change in flight and a stable configuration over the windows the
        change will be compared against."""
        stable_since = align(effective_s, self.window_s) - self.cfg.measure_windows * self.window_s
        return agent not in self.in_flight and self.history.last_change_s[agent] <= stable_since

    def _judge(self, t: float, events: list[dict]) -> list[ScheduledChange]:
        """Judge every trial whose after-windows are complete and apply the
        outcome; returns the undo and restore changes it schedules."""
        scheduled: list[ScheduledChange] = []
        cfg = self.cfg
        for agent, trial in sorted(self.in_flight.items()):
            if trial.measure_at_s > t + 1e-9:
                continue
            del self.in_flight[agent]
            s = trial.strategy
            before_s = trial.before_start_s(self.window_s, cfg.measure_windows, cfg.max_measure_windows)
            base_s = trial.effective_s - cfg.measure_windows * self.window_s
            if before_s < base_s and not steady_load(self.history.window_rows(agent, before_s, trial.effective_s),
                                                     base_s):
                before_s = base_s  # a load that changed over the longer span would bias a before/after comparison
            if trial.arms:  # switchback: the old arm's windows against the new arm's
                (before_rows, before), (after_rows, after) = (
                    self.history.windows(agent, [w for w, new in trial.arms if new == arm]) for arm in (False, True))
            elif trial.split:  # split: the old arm's decisions against the new arm's, in the same windows
                pooled = self.history.task_sample(agent, trial.split_s, trial.measure_at_s)
                before_rows, after_rows, before, after = [], [], pooled.of_arm(True), pooled.of_arm(False)
            else:
                spans = (before_s, trial.effective_s), (trial.after_start_s, trial.measure_at_s)
                before_rows, after_rows = (self.history.window_rows(agent, *sp) for sp in spans)
                before, after = (self.history.task_sample(agent, *sp) for sp in spans)
            alpha = look_alpha(cfg, trial.after_windows(self.window_s))
            judge = partial(judge_change, before_rows, after_rows, before, after, min_improvement=cfg.min_improvement,
                            min_samples=cfg.min_samples, success_drop=cfg.guardrail_success_drop,
                            error_rise=cfg.guardrail_error_rise, cost_rise=cfg.guardrail_cost_rise,
                            trend_adjust=cfg.trend_adjust, latency_limit_ms=cfg.thresholds.response_time_ms,
                            success_limit=cfg.thresholds.success_rate_medium,
                            price=None if trial.undone else price_of(s.price, cfg), batch_means=cfg.batch_means,
                            rank_test=cfg.rank_test, actions=s.actions if cfg.control_variate else (),
                            tail_unless_mean=cfg.tail_unless_mean)
            j = judge(s.target_metric, alpha)
            forced = self._forced(s, j, t) if trial.undone is None else None
            state = TrialState(self.autonomy, self.streak)
            out = decide_trial(agent, trial, j, state, cfg, self.window_s, t, forced)
            # a bundle's other remedies may work where the first one's gain cannot be seen: undoing it would undo them
            if out.decision == "revert" and forced is None and trial.undone is None and s.co_targets:
                others = (judge(m, alpha / len(s.co_targets)) for m in s.co_targets)
                if (passed := next((jc for jc in others if jc.verdict == "pass"), None)) is not None:
                    j = passed
                    out = decide_trial(agent, trial, j, state, cfg, self.window_s, t)
            events.append(measure_event(t, j, trial, before_s, out, cfg.alpha))
            if (cfg.judge_design == "switchback" and switchback.switchable(s) and out.undo is not None
                    and out.undo.undone is None):  # measuring on: by O N blocks
                start = align(t + cfg.rollback_time_s, self.window_s)
                arms, flips = switchback.plan(s.actions, start, cfg.measure_windows, self.window_s, s.id,
                                              cfg.switchback_block)
                scheduled += flips
                lead = trial.lead_windows if trial.arms else trial.after_windows(self.window_s)
                out = replace(out, undo=replace(trial, measure_at_s=arms[-1][0] + self.window_s,
                                                arms=trial.arms + arms, lead_windows=lead))
            elif (cfg.judge_design == "split" and not trial.split and out.undo is not None and out.undo.undone is None
                  and split.splittable(s, self.knobs[agent])):  # measuring on: the two arms at once
                begin = align(t + cfg.rollback_time_s, self.window_s)
                judged_s = begin + split.burn_in(s.actions, self.window_s) * self.window_s
                scheduled += split.start(s.actions, begin, s.id)
                lead = trial.after_windows(self.window_s)
                out = replace(out, undo=replace(trial, split_s=judged_s, lead_windows=lead,
                                                measure_at_s=judged_s + 2 * cfg.measure_windows * self.window_s))
            elif trial.split and out.decision:  # decided: the split ends with the decision
                scheduled += split.end(s.actions, align(t + cfg.rollback_time_s, self.window_s), s.id)
            scheduled += self._apply(t, agent, trial, out)
            if out.learn:
                self.policy.learn(s, out.decision == "keep")
                self.learning.record(s.type, s.kind, out.decision == "keep", learned_improvement(s, j, before_rows,
                                                                                                  after_rows))
                self.results.append({"strategy_id": s.id, "agent": agent, "type": s.type, "kind": s.kind,
                                     "kept": out.decision == "keep", "decision": out.decision, "forced": out.forced,
                                     "improvement_pct": j.effect(cfg.alpha).improvement_pct, "verdict": j.verdict,
                                     "reason": out.reason})
            if out.decision:
                events.append(decision_event(t, trial.undone or s, j, out, cfg.alpha))
            if out.autonomy_reason:
                events.append(autonomy_event(t, self.autonomy, out.state.autonomy, out.autonomy_reason))
                self.autonomy_changes.append({"t_s": t, "old": self.autonomy, "new": out.state.autonomy,
                                              "reason": out.autonomy_reason})
            self.autonomy, self.streak = out.state.autonomy, out.state.streak
        return scheduled

    def _forced(self, s: Strategy, j: Judgement, t: float) -> str | None:
        """The decision forced on the judged change ``s``: its override, else
        what :attr:`decide` returns, else None (the judge decides)."""
        hooked = self.decide(DecisionContext(s, j, t)) if self.decide is not None else None
        return self.overrides.get(s.id, hooked)

    def _apply(self, t: float, agent: str, trial: Trial, out: TrialOutcome) -> list[ScheduledChange]:
        """Apply a trial's outcome to the optimizer's view of the knobs, the
        changes in flight and the tabu; returns the changes to schedule."""
        for c in out.changes:
            self.knobs[c.agent] = set_knob(self.knobs[c.agent], c.knob, c.new)
        if out.changes:  # an undo is never held, but a new change against it within the window is
            self.planner.stabilizer.record(out.effective_s, out.changes)
        if out.undo is not None:
            self.in_flight[agent] = out.undo
        elif out.decision == "revert":  # not measured on (measure_reverts false): as if never made
            self.history.forget(agent, {trial.strategy.id, out.ref})
        kind = (trial.undone or trial.strategy).kind
        if out.tabu_until_s is not None:
            self.tabu[(agent, kind)] = out.tabu_until_s
        if out.lift_tabu:
            for a in {c.agent for c in out.changes}:
                self.tabu.pop((a, kind), None)
        return [ScheduledChange(out.effective_s, c, out.ref) for c in out.changes]
