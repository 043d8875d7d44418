"""The Performance Optimizer's autonomous cycle (pure; the Ray actor wraps it).

Each cycle (every ``cycle_s``, DESIGN.md "The optimizer cycle"):

1. collect the window rows of every agent since the last cycle;
2. judge every change whose after-windows are complete with the canary judge
   on the per-task samples of the windows before and after
   (:func:`~swarmopt.optimizer.measure.judge_change`): keep it on a pass;
   roll it back (restoring the exact old knob values) on a fail or a guardrail
   breach; revert it the same way, without blame, when it shows no measured
   benefit (marginal or inconclusive). Learn per strategy type; raise the
   optimizer's autonomy after ``autonomy_raise_after`` consecutive kept
   changes, lower it at once on a rollback and tell the Orchestrator why;
3. detect bottlenecks that breach over a long and a short span of windows
   (multiwindow alerting with a minimum-traffic guard) and level shifts of each
   agent's metrics against its own history (``anomaly.detected``);
4. plan reactive strategies per bottleneck outside the tolerance band (the
   policy picks the remedy) and the proactive ones (predictive pre-scaling from
   a Holt-Winters load forecast; coordination enhancement), each a bounded step
   that does not reverse a knob within the stabilization window
   (:mod:`swarmopt.optimizer.stabilize`); sort by severity, expected
   improvement, implementation time;
5. select at most one change per agent, and only on agents whose configuration
   has been stable for the ``measure_windows`` windows the change will be
   compared against; strategies riskier than the optimizer's autonomy go to the
   Orchestrator (:meth:`Optimizer.commit` takes its decisions);
6. schedule the approved changes after their implementation time and report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from swarmopt.knobs import KnobChange, ScheduledChange, set_knob
from swarmopt.metrics import TaskSample, health_score, pool_samples
from swarmopt.optimizer.detect import (
    SEVERITY_RANK,
    SNAPSHOT_FIELDS,
    Bottleneck,
    detect_multiwindow,
    level_shifts,
    short_span,
    snapshots,
    window_vectors,
)
from swarmopt.optimizer.forecast import forecast_peak
from swarmopt.optimizer.measure import Judgement, judge_change
from swarmopt.optimizer.stabilize import Stabilizer, bound_step, outside_dead_band
from swarmopt.optimizer.strategies import (
    BATCH,
    PRE_SCALE,
    REMEDIES,
    SUCCESS_METRICS,
    TARGETS,
    Proposal,
    Remedy,
    Strategy,
    pre_scale,
    priority_key,
)
from swarmopt.policies import Policy
from swarmopt.schema import AgentProfile, Knobs, OptimizerConfig

SOURCE_EXPECTED = {"predictive_optimization": 15.0, "coordination_enhancement": 10.0}
TABU_S = 1800.0
ANOMALY_HISTORY = 60  # windows of an agent's own history a level shift is judged against
FORECAST_WINDOWS = 60  # windows of arrival rate the Holt forecast is fitted on
ARRIVAL_RATE = SNAPSHOT_FIELDS.index("arrival_rate_per_s")
HISTORY_WINDOWS = 360  # window rows kept per agent: detection, anomalies and forecasts look back at most 65


@dataclass
class Trial:
    """A change in flight on one agent, waiting for its after-windows; the undo
    of a change (``undone``, reverted or rolled back by ``undo_decision``) is a
    trial too, measured but not decided on."""

    strategy: Strategy
    effective_s: float
    measure_at_s: float
    undone: Strategy | None = None
    undo_decision: str = ""


class Optimizer:
    """State and decisions of the Performance Optimizer.

    ``profiles`` and ``knobs`` describe every monitored agent; ``window_s`` is the
    metric window. Methods return event dicts (``event`` key, simulated time
    ``t_s``) for the events table.
    """

    def __init__(self, config: OptimizerConfig, profiles: dict[str, AgentProfile], window_s: float,
                 policy: Policy, rng: np.random.Generator) -> None:
        self.cfg = config
        self.profiles = profiles
        self.knobs: dict[str, Knobs] = {a: p.knobs for a, p in profiles.items()}
        self.window_s = window_s
        self.policy = policy
        self.rng = rng
        self.autonomy = config.initial_autonomy
        self.history: dict[str, list[dict]] = {a: [] for a in profiles}
        self.vectors: dict[str, list[np.ndarray]] = {a: [] for a in profiles}
        self.samples: dict[str, list[TaskSample]] = {a: [] for a in profiles}
        self.streak = 0
        self.autonomy_changes: list[dict] = []
        self.recommended: list[str] = []
        self.in_flight: dict[str, Trial] = {}
        self.last_change_s: dict[str, float] = {a: 0.0 for a in profiles}
        self.tabu: dict[tuple[str, str], float] = {}
        # measured improvements (%) of the judged changes, per strategy type and per remedy kind
        self.improvements: dict[str, list[float]] = {}
        self.kind_improvements: dict[str, list[float]] = {}
        self.proposals: list[Proposal] = []
        self.results: list[dict] = []
        self.bottlenecks: list[Bottleneck] = []
        self.anomalous: set[tuple[str, str]] = set()
        self.stabilizer = Stabilizer(config.stabilization_window_s)
        self._seq = 0

    # ------------------------------------------------------------------ inputs
    def observe(self, rows: list[dict], applied: list[dict], samples: list[TaskSample] = ()) -> None:
        """Take new window rows, the knob/autonomy changes agents applied and the
        per-task samples of the new windows (in time order per agent).

        Samples are kept only while a judgement may need them: per agent, the
        last ``measure_windows`` windows (the before-span of a change scheduled
        now) and, while a change is in flight, everything since its before-span
        began. Memory is thus about (2 x measure_windows + cycle windows) x
        decisions per window x 10 bytes per agent at most.
        """
        for r, v in zip(rows, window_vectors(rows), strict=True):
            hist, vec = self.history[r["agent"]], self.vectors[r["agent"]]
            hist.append(r)
            vec.append(v)
            if len(hist) > 2 * HISTORY_WINDOWS:  # every consumer looks back far less
                del hist[:-HISTORY_WINDOWS], vec[:-HISTORY_WINDOWS]
        for a in applied:
            self.last_change_s[a["agent"]] = max(self.last_change_s[a["agent"]], a["t_s"])
        for smp in samples:
            self.samples[smp.agent].append(smp)
        for agent in {smp.agent for smp in samples}:
            self._prune(agent)

    def _prune(self, agent: str) -> None:
        kept = self.samples[agent]
        k = self.cfg.measure_windows * self.window_s
        floor = kept[-1].t_end_s - k
        trial = self.in_flight.get(agent)
        if trial is not None:
            floor = min(floor, trial.effective_s - k)
        self.samples[agent] = [smp for smp in kept if smp.t_end_s > floor + 1e-9]

    # ------------------------------------------------------------------ cycle
    def cycle_with(self, t: float, rows: list[dict], applied: list[dict], samples: list[TaskSample] = (),
                   plan: bool = True):
        """:meth:`observe` then :meth:`cycle` (one actor call)."""
        self.observe(rows, applied, samples)
        return self.cycle(t, plan)

    def cycle(self, t: float, plan: bool = True) -> tuple[list[Proposal], list[ScheduledChange], list[dict]]:
        """Run steps 2-5 at time ``t``: judge finished trials (returns their
        rollbacks, already scheduled), detect, plan and select. Returns
        (proposals awaiting :meth:`commit`, rollback changes, events). With
        ``plan=False`` (end of run) it only judges and detects."""
        events: list[dict] = [{"t_s": t, "event": "cycle.started", "autonomy": self.autonomy}]
        rollbacks = self._judge(t, events)
        cycle_windows = int(round(self.cfg.cycle_s / self.window_s))
        th = self.cfg.thresholds
        # each agent's recent window rows as one matrix, shared by detection, anomalies and the forecast
        depth = max(self.cfg.long_windows, cycle_windows + ANOMALY_HISTORY, FORECAST_WINDOWS)
        mats = {a: np.array(v[-depth:]) for a, v in self.vectors.items() if v}
        snaps = snapshots(mats, dict.fromkeys(mats, cycle_windows))
        short = {a: short_span(m[-self.cfg.long_windows:, 0], th.min_decisions) for a, m in mats.items()}
        self.bottlenecks = detect_multiwindow(snapshots(mats, dict.fromkeys(mats, self.cfg.long_windows)),
                                              snapshots(mats, short), self.profiles, th)
        for b in self.bottlenecks:
            events.append({"t_s": t, "event": "bottleneck.detected", "agent": b.affected_component, "type": b.type,
                           "severity": b.severity, "metric": b.metric, "value": b.value, "threshold": b.threshold,
                           "impact": b.impact, "detail": b.description})
        events += self._anomalies(t, snaps, mats, cycle_windows)
        self.proposals = []
        if self.cfg.policy == "monitor" or not plan:
            return [], rollbacks, events
        strategies = self._plan(t, snaps, mats, events)
        events.append({"t_s": t, "event": "strategies.generated", "value": len(strategies),
                       "detail": f"{sum(not s.proactive for s in strategies)} reactive, "
                                 f"{sum(s.proactive for s in strategies)} proactive"})
        busy: set[str] = set()
        for s in strategies:
            agents = {c.agent for c in s.actions}
            ev = self._strategy_event(t, "strategy.planned", s)
            if self.cfg.recommend_only:
                ev["event"] = "strategy.recommended"
                self.recommended.append(s.description)
            elif busy & agents or not all(self._eligible(a, t + s.implementation_time_s) for a in agents):
                ev["event"] = "strategy.deferred"
            else:
                busy |= agents
                needs = s.risk > self.autonomy
                self.proposals.append(Proposal(s, needs))
                if needs:
                    events.append(ev)
                    ev = self._strategy_event(t, "approval.requested", s)
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
                events.append(self._strategy_event(t, "strategy.approved" if ok else "strategy.rejected", s))
                if not ok:
                    continue
            eff = self._align(t + s.implementation_time_s)
            for c in s.actions:
                changes.append(ScheduledChange(eff, c, s.id))
                self.knobs[c.agent] = set_knob(self.knobs[c.agent], c.knob, c.new)
            for agent in {c.agent for c in s.actions}:
                self.in_flight[agent] = Trial(s, eff, eff + self.cfg.measure_windows * self.window_s)
            ev = self._strategy_event(t, "optimization.scheduled", s)
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
        report (each with its ``decision`` keep/rollback/revert and ``reason``),
        bottlenecks, per-agent health (last window), agents with a change in
        flight, recommendations (in recommend-only mode, every strategy it
        would have applied), and the optimizer's autonomy with its changes
        since the last report (``autonomy_changes``: t_s, old, new, reason)."""
        health = {a: health_score(rows[-1], self.cfg.thresholds.response_time_ms)
                  for a, rows in self.history.items() if rows}
        recs = [f"Reduce autonomy for {a} (poor performance)" for a, h in health.items()
                if h == h and h < self.cfg.thresholds.system_critical]
        rep = {"t_s": t, "results": self.results, "bottlenecks": [b.__dict__ for b in self.bottlenecks],
               "health": health, "in_flight": sorted(self.in_flight), "recommendations": recs + self.recommended,
               "optimizer_autonomy": self.autonomy, "autonomy_changes": self.autonomy_changes}
        self.results, self.autonomy_changes, self.recommended = [], [], []
        return rep

    # ------------------------------------------------------------------ internals
    def _align(self, t: float) -> float:
        return math.ceil(t / self.window_s - 1e-9) * self.window_s

    def _eligible(self, agent: str, effective_s: float) -> bool:
        """No change in flight and a stable configuration over the windows the
        change will be compared against."""
        stable_since = self._align(effective_s) - self.cfg.measure_windows * self.window_s
        return agent not in self.in_flight and self.last_change_s[agent] <= stable_since

    def _rows(self, agent: str, start: float, end: float) -> list[dict]:
        return [r for r in self.history[agent] if start - 1e-9 <= r["t_start_s"] and r["t_end_s"] <= end + 1e-9]

    def _samples(self, agent: str, start: float, end: float) -> TaskSample:
        return pool_samples([smp for smp in self.samples[agent]
                             if start - 1e-9 <= smp.t_start_s and smp.t_end_s <= end + 1e-9])

    def _judge(self, t: float, events: list[dict]) -> list[ScheduledChange]:
        rollbacks: list[ScheduledChange] = []
        k = self.cfg.measure_windows * self.window_s
        th = self.cfg
        for agent, trial in sorted(self.in_flight.items()):
            if trial.measure_at_s > t + 1e-9:
                continue
            del self.in_flight[agent]
            s = trial.strategy
            spans = (trial.effective_s - k, trial.effective_s), (trial.effective_s, trial.measure_at_s)
            j = judge_change(*(self._rows(agent, *sp) for sp in spans), *(self._samples(agent, *sp) for sp in spans),
                             s.target_metric, s.better, th.alpha, th.min_improvement, th.min_samples,
                             th.guardrail_success_drop, th.guardrail_error_rise, th.guardrail_cost_rise)
            ev = self._measure_event(t, s, j, trial)
            if trial.undone is not None:
                del ev["decision"]  # a rollback is measured, not decided on
                events.append(ev | {"event": "rollback.measured"})
                rollbacks += self._restore(t, trial, j, events)
                continue
            events.append(ev)
            decision, m = j.decision, j.window
            keep = decision == "keep"
            self._learn(s, keep, m.improvement_pct)
            self.results.append({"strategy_id": s.id, "agent": agent, "type": s.type, "kind": s.kind, "kept": keep,
                                 "decision": decision, "improvement_pct": m.improvement_pct, "verdict": j.verdict,
                                 "reason": j.reason})
            if keep:
                events.append(self._strategy_event(t, "optimization.kept", s) | {
                    "improvement_pct": m.improvement_pct, "verdict": j.verdict})
                self.streak += 1
                if self.streak >= th.autonomy_raise_after:
                    self._move_autonomy(t, th.autonomy_step_up, f"{self.streak} consecutive kept changes, no rollback",
                                        events)
                    self.streak = 0
                continue
            self.streak = 0
            eff = self._align(t + th.rollback_time_s)
            for c in s.rollback():
                rollbacks.append(ScheduledChange(eff, c, f"rollback:{s.id}"))
                self.knobs[c.agent] = set_knob(self.knobs[c.agent], c.knob, c.new)
            self.tabu[(agent, s.kind)] = t + TABU_S
            rb = Strategy(**{**s.__dict__, "id": f"rollback:{s.id}", "actions": s.rollback()})
            self.in_flight[agent] = Trial(rb, eff, eff + self.cfg.measure_windows * self.window_s, s, decision)
            name = "optimization.rolled_back" if decision == "rollback" else "optimization.reverted"
            events.append(self._strategy_event(t, name, s) | {
                "effective_s": eff, "detail": j.reason, "improvement_pct": m.improvement_pct, "verdict": j.verdict})
            if decision == "rollback":
                self._move_autonomy(t, -th.autonomy_step_down, f"rollback of {s.id} on {agent}: {j.reason}", events)
        return rollbacks

    def _restore(self, t: float, trial: Trial, j: Judgement, events: list[dict]) -> list[ScheduledChange]:
        """Re-apply a change that was reverted for lack of evidence when undoing
        it made its target significantly worse with no guardrail breach: the
        change and its undo are two experiments, and the second found the
        effect the first was too noisy to show. Changes rolled back for a fail
        or a guardrail breach are never restored."""
        s = trial.undone
        if s is None or trial.undo_decision != "revert" or j.verdict != "fail" or j.breaches:
            return []
        eff = self._align(t + self.cfg.rollback_time_s)
        for c in s.actions:
            self.knobs[c.agent] = set_knob(self.knobs[c.agent], c.knob, c.new)
        for agent in {c.agent for c in s.actions}:
            self.tabu.pop((agent, s.kind), None)
        events.append(self._strategy_event(t, "optimization.restored", s) | {
            "effective_s": eff, "detail": f"undoing it made {s.target_metric} worse: {j.reason}"})
        return [ScheduledChange(eff, c, f"restore:{s.id}") for c in s.actions]

    def _move_autonomy(self, t: float, step: float, reason: str, events: list[dict]) -> None:
        """Move the optimizer's autonomy by ``step`` within its bounds; a change
        is logged and goes to the Orchestrator in the next report."""
        old = self.autonomy
        self.autonomy = min(self.cfg.max_autonomy, max(self.cfg.min_autonomy, old + step))
        if self.autonomy == old:
            return
        events.append({"t_s": t, "event": "autonomy.optimizer", "agent": "performance-optimizer",
                       "old": old, "new": self.autonomy, "detail": reason})
        self.autonomy_changes.append({"t_s": t, "old": old, "new": self.autonomy, "reason": reason})

    def _learn(self, s: Strategy, kept: bool, improvement_pct: float) -> None:
        self.policy.learn(s, kept)
        if improvement_pct == improvement_pct:
            self.improvements.setdefault(s.type, []).append(improvement_pct)
            self.kind_improvements.setdefault(s.kind, []).append(improvement_pct)

    def expected_improvement(self, type_: str, kind: str, impact: float) -> float:
        """Learned mean measured improvement of ``kind`` (then of ``type_``); with
        no history, 70% of the bottleneck's impact as the source design does
        (``expectedImprovement: 17.5 // 70% of potential``), capped at 50."""
        for table, key in ((self.kind_improvements, kind), (self.improvements, type_)):
            if table.get(key):
                return round(float(np.mean(table[key])), 2)
        return round(min(50.0, 0.7 * impact), 2) if impact else SOURCE_EXPECTED.get(type_, 10.0)

    def _new_id(self, t: float, agent: str, kind: str) -> str:
        self._seq += 1
        return f"opt_{int(t)}_{agent}_{kind}_{self._seq}"

    def _make(self, t: float, type_: str, severity: str, agent: str, remedy: Remedy,
              actions: list[KnobChange], impact: float, proactive: bool = False, target: str | None = None) -> Strategy:
        metric, better = TARGETS[type_]
        return Strategy(
            id=self._new_id(t, agent, remedy.kind), type=type_, kind=remedy.kind, priority=severity,
            target_component=target or agent,
            description=f"{'Proactive: ' if proactive else 'Optimize '}{type_} for {agent}: {remedy.actions}",
            expected_improvement=self.expected_improvement(type_, remedy.kind, impact),
            implementation_time_s=remedy.implementation_time_s, actions=tuple(actions),
            success_metrics=SUCCESS_METRICS[type_],
            rollback_plan="Restore " + ", ".join(f"{c.knob}={c.old!r}" for c in actions) + " if performance degrades",
            risk=remedy.risk, target_metric=metric, better=better, proactive=proactive,
        )

    def _anomalies(self, t: float, snaps: dict[str, dict], mats: dict[str, np.ndarray], recent: int) -> list[dict]:
        """``anomaly.detected`` events for level shifts that start this cycle
        (an ongoing shift is reported once); agents under the minimum traffic
        of the last cycle are skipped."""
        found = {}
        for agent, m in sorted(mats.items()):
            if snaps[agent]["decision_count"] >= self.cfg.thresholds.min_decisions:
                for x in level_shifts(agent, m, recent, self.cfg.anomaly_z, self.cfg.tolerance,
                                      max_history=ANOMALY_HISTORY):
                    found[(agent, x.metric)] = x
        events = [{"t_s": t, "event": "anomaly.detected", "agent": x.agent, "metric": x.metric, "value": x.value,
                   "baseline": x.baseline, "impact": x.shift_pct, "z": x.z,
                   "detail": f"{x.agent} {x.metric} shifted {x.shift_pct:+.0f}% from its median {x.baseline:.4g} "
                             f"(robust z {x.z:.1f})"}
                  for key, x in found.items() if key not in self.anomalous]
        self.anomalous = set(found)
        return events

    def _stable(self, t: float, remedy: Remedy, actions: list[KnobChange],
                events: list[dict]) -> list[KnobChange] | None:
        """``actions`` as bounded steps, or None (with a ``strategy.held``
        event) when they would reverse a knob within the stabilization window."""
        actions = [bound_step(c) for c in actions]
        if self.stabilizer.allows(self._align(t + remedy.implementation_time_s), actions):
            return actions
        events.append({"t_s": t, "event": "strategy.held", "agent": actions[0].agent, "kind": remedy.kind,
                       "knob": ";".join(c.knob for c in actions), "new": ";".join(repr(c.new) for c in actions),
                       "detail": f"would reverse a knob within the {self.cfg.stabilization_window_s:.0f}s "
                                 "stabilization window"})
        return None

    def _plan(self, t: float, snaps: dict[str, dict], mats: dict[str, np.ndarray],
              events: list[dict]) -> list[Strategy]:
        out: list[Strategy] = []
        taken: set[tuple[str, str]] = set()
        for b in self.bottlenecks:
            if not outside_dead_band(b, self.cfg.tolerance):
                events.append({"t_s": t, "event": "bottleneck.within_tolerance", "agent": b.affected_component,
                               "type": b.type, "metric": b.metric, "value": b.value, "threshold": b.threshold,
                               "detail": f"within {self.cfg.tolerance:.0%} of its threshold: no action"})
                continue
            agent, type_ = b.affected_component, b.type
            if agent == "system":
                agent = min((a for a in snaps if snaps[a]["decision_count"] > 0),
                            key=lambda a: health_score(snaps[a]), default=None)
                if agent is None:
                    continue
                worst = [x for x in self.bottlenecks if x.affected_component == agent]
                type_ = max(worst, key=lambda x: SEVERITY_RANK[x.severity]).type if worst else "agent_success_rate"
            options = []
            for r in REMEDIES.get(type_, []):
                if self.tabu.get((agent, r.kind), -1.0) > t:
                    continue
                actions = r.propose(snaps[agent], self.knobs[agent], self.profiles[agent])
                if actions and not any((agent, c.knob) in taken for c in actions):
                    actions = self._stable(t, r, actions, events)
                    if actions:
                        options.append((r, actions))
            choice = self.policy.choose(type_, options, self.rng)
            if choice is None:
                continue
            r, actions = choice
            taken |= {(agent, c.knob) for c in actions}
            out.append(self._make(t, type_, b.severity, agent, r, actions, b.impact,
                                  target=b.affected_component if b.affected_component == "system" else None))
        if self.cfg.proactive:
            out += self._proactive(t, snaps, mats, taken, events)
        for s in out:
            self.stabilizer.record(self._align(t + s.implementation_time_s), s.actions)
        out.sort(key=priority_key)
        return out

    def _proactive(self, t: float, snaps: dict[str, dict], mats: dict[str, np.ndarray],
                   taken: set[tuple[str, str]], events: list[dict]) -> list[Strategy]:
        """Predictive pre-scaling of agents with no bottleneck this cycle (an
        agent in trouble is the reactive remedies' job: a proactive change would
        occupy it and be judged on confounded windows) and coordination
        enhancement."""
        out = []
        horizon = int(round((self.cfg.cycle_s + PRE_SCALE.implementation_time_s) / self.window_s))
        troubled = {b.affected_component for b in self.bottlenecks}
        for agent, m in sorted(mats.items()):
            if (len(m) < 12 or agent in troubled or (agent, "max_concurrency") in taken
                    or self.tabu.get((agent, "pre_scale"), -1) > t):
                continue
            series = m[-FORECAST_WINDOWS:, ARRIVAL_RATE]
            peak = forecast_peak(series, horizon)
            actions = pre_scale(snaps[agent], self.knobs[agent], self.profiles[agent], peak,
                                tolerance=self.cfg.tolerance)
            if actions:
                actions = self._stable(t, PRE_SCALE, actions, events)
            if actions:
                out.append(self._make(t, "predictive_optimization", "medium", agent, PRE_SCALE, actions, 0.0,
                                      proactive=True, target="system"))
        for agent, s in sorted(snaps.items()):
            if (agent, "message_batch_size") in taken or self.tabu.get((agent, BATCH.kind), -1) > t:
                continue
            rate = s["inbox_in_time_rate"]
            if rate == rate and rate < 0.95:
                actions = BATCH.propose(dict(s, inbox_in_time_rate=min(rate, 0.89)), self.knobs[agent],
                                        self.profiles[agent])
                if actions:
                    actions = self._stable(t, BATCH, actions, events)
                if actions:
                    out.append(self._make(t, "coordination_enhancement", "low", agent, BATCH, actions, 0.0,
                                          proactive=True, target="inter_agent"))
        return out

    def _strategy_event(self, t: float, name: str, s: Strategy) -> dict:
        return {
            "t_s": t, "event": name, "agent": ",".join(sorted({c.agent for c in s.actions})), "strategy_id": s.id,
            "type": s.type, "kind": s.kind, "severity": s.priority, "risk": s.risk,
            "expected_improvement": s.expected_improvement, "implementation_time_s": s.implementation_time_s,
            "knob": ";".join(c.knob for c in s.actions), "old": ";".join(repr(c.old) for c in s.actions),
            "new": ";".join(repr(c.new) for c in s.actions), "detail": s.description,
        }

    def _measure_event(self, t: float, s: Strategy, j: Judgement, trial: Trial) -> dict:
        k = self.cfg.measure_windows * self.window_s
        m, cv = j.window, j.canary
        nan = math.nan
        return {
            "t_s": t, "event": "optimization.measured", "agent": ",".join(sorted({c.agent for c in s.actions})),
            "strategy_id": s.id, "type": s.type, "kind": s.kind, "metric": m.metric, "better": m.better,
            "before": m.before, "after": m.after, "improvement_pct": m.improvement_pct, "ci_low_pct": m.ci_low_pct,
            "ci_high_pct": m.ci_high_pct, "p_value": m.p_value, "window_verdict": m.verdict,
            "verdict": j.verdict, "decision": j.decision, "method": j.method,
            "tasks_before": j.tasks_before, "tasks_after": j.tasks_after,
            "tau_before": j.tau_before, "tau_after": j.tau_after,
            "n_eff_before": cv.n_before if cv else j.tasks_before, "n_eff_after": cv.n_after if cv else j.tasks_after,
            "canary_before": cv.before if cv else nan, "canary_after": cv.after if cv else nan,
            "shift": cv.shift if cv else nan, "shift_ci_low": cv.ci_low if cv else nan,
            "shift_ci_high": cv.ci_high if cv else nan, "relative_change": cv.relative_change if cv else nan,
            "canary_p_value": cv.p_value if cv else nan, "reasons": j.reason, "guardrails": "; ".join(j.breaches),
            "before_start_s": trial.effective_s - k, "before_end_s": trial.effective_s,
            "after_start_s": trial.effective_s, "after_end_s": trial.measure_at_s,
        }
