"""The two-way protocol between the Strategic Orchestrator and the Performance Optimizer (pure).

Reference/001 ("Agent Interactions") has the Orchestrator send the optimizer
commands ("Focus on agent X", "Increase optimization aggressiveness", "Reduce
resource consumption") and the optimizer send back recommendations ("Reduce
autonomy for agent X (poor performance)", "Increase resources for agent Y (high
efficiency)", "System-wide coordination needs improvement"). Here both change
what the other does, and both are events of the run:

* commands (``orchestrator.commands`` of a scenario, :mod:`swarmopt.schema`)
  reach the optimizer at the first cycle at or after their time
  (``orchestrator.command``); the optimizer's :class:`Mode` turns them into
  its effective configuration (:meth:`Mode.config`: tolerance, margin, step,
  thresholds), remedies it may not try (:meth:`Mode.barred`) and agents it
  may not change (:meth:`Mode.deferral`), reported as ``optimizer.mode``;
* recommendations (:func:`advise`, in every optimizer report) are acted on by
  the Orchestrator when ``orchestrator.act_on_recommendations`` is set
  (``optimizer.recommendation``, ``orchestrator.action``): it lowers the
  autonomy of a poorly performing agent, raises that of agents whose reviews
  make them miss coordination deadlines (an escalated decision waits for
  review), and *grants resources* to an efficient agent near capacity by
  sending the optimizer a :class:`Grant`, which the optimizer answers with a
  ``resource_grant`` strategy (:func:`grant_workers`) judged like every other
  change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from swarmopt.knobs import KnobChange
from swarmopt.optimizer.detect import Bottleneck
from swarmopt.schema import (
    KNOB_BOUNDS,
    AgentProfile,
    AggressivenessCommand,
    FocusCommand,
    Knobs,
    OptimizerConfig,
    ReduceResourcesCommand,
    Thresholds,
)

RESOURCE_ADDING = frozenset({"scale_concurrency", "pre_scale", "stronger_model_tier", "route_by_complexity"})
"""Remedies a "reduce resource consumption" command bars: they add workers or dearer model calls (a grant of
resources by the Orchestrator, :class:`Grant`, is its explicit exception)."""
REDUCED_COST_FACTOR = 1.0
"""Cost threshold factor (x the profile's per-decision budget) while resources are reduced (default 1.5)."""
REDUCED_MEMORY_PERCENT = 70.0
"""Memory threshold while resources are reduced (default 85%)."""
HIGH_EFFICIENCY = 0.80
"""Success rate from which a busy agent is "efficient" enough to be given resources."""
NEAR_CAPACITY = 70.0
"""Worker utilization (%) from which an efficient agent is recommended more resources."""
GRANT_UTILIZATION = 0.5
"""Worker utilization a grant of resources sizes the worker count for."""


@dataclass(frozen=True)
class Grant:
    """The Orchestrator's grant of resources to ``agent`` (its answer to an
    "increase resources" recommendation), for the optimizer's next cycle."""

    agent: str
    at_s: float
    kind: str = "grant_resources"


def command_text(cmd) -> str:
    """A command in the source's words ("Focus on agent X", "Increase optimization aggressiveness", ...)."""
    if isinstance(cmd, FocusCommand):
        return f"Focus on agent {cmd.agent}"
    if isinstance(cmd, AggressivenessCommand):
        verb = "Increase" if cmd.level > 1 else "Lower" if cmd.level < 1 else "Reset"
        return f"{verb} optimization aggressiveness (level {cmd.level:g})"
    if isinstance(cmd, ReduceResourcesCommand):
        return "Reduce resource consumption"
    return f"Resources granted to {cmd.agent}"


@dataclass(frozen=True)
class Mode:
    """What the Orchestrator's commands have set: ``aggressiveness`` (1 = the
    configuration), ``focus`` (an agent) until ``focus_until_s``, reduced
    resources until ``reduce_until_s`` and the ``grants`` not yet answered."""

    aggressiveness: float = 1.0
    focus: str | None = None
    focus_until_s: float = -math.inf
    reduce_until_s: float = -math.inf
    grants: tuple[str, ...] = ()

    def apply(self, cmd, t: float) -> tuple[Mode, str]:
        """The mode after command ``cmd`` at ``t`` (s), and what changed, in words.
        Raises ValueError for an unknown command."""
        if isinstance(cmd, FocusCommand):
            return (replace(self, focus=cmd.agent, focus_until_s=t + cmd.duration_s),
                    f"focus on {cmd.agent} until {t + cmd.duration_s:.0f}s: other agents' changes deferred")
        if isinstance(cmd, AggressivenessCommand):
            return replace(self, aggressiveness=cmd.level), f"aggressiveness {cmd.level:g}"
        if isinstance(cmd, ReduceResourcesCommand):
            return (replace(self, reduce_until_s=t + cmd.duration_s),
                    f"reducing resources until {t + cmd.duration_s:.0f}s: no {', '.join(sorted(RESOURCE_ADDING))}; "
                    f"cost threshold x{REDUCED_COST_FACTOR:g} of budget, memory {REDUCED_MEMORY_PERCENT:.0f}%")
        if isinstance(cmd, Grant):
            return replace(self, grants=(*self.grants, cmd.agent)), f"resources granted to {cmd.agent}"
        raise ValueError(f"unknown command {cmd!r}")

    def expire(self, t: float) -> tuple[Mode, list[str]]:
        """The mode at ``t`` with ended focus and resource reduction dropped, and what ended."""
        mode, ended = self, []
        if mode.focus is not None and t >= mode.focus_until_s - 1e-9:
            ended.append(f"focus on {mode.focus} ended")
            mode = replace(mode, focus=None, focus_until_s=-math.inf)
        if mode.reduce_until_s != -math.inf and t >= mode.reduce_until_s - 1e-9:
            ended.append("resource reduction ended")
            mode = replace(mode, reduce_until_s=-math.inf)
        return mode, ended

    def reducing(self, t: float) -> bool:
        """Whether resources are being reduced at ``t``."""
        return t < self.reduce_until_s - 1e-9

    def config(self, base: OptimizerConfig, t: float) -> OptimizerConfig:
        """The optimizer's effective configuration at ``t``: ``base`` with the
        aggressiveness applied (tolerance / level, margin x level at most 0.5,
        max step ratios x level at least 1) and, while resources are reduced,
        the tighter cost and memory thresholds and no proactive pre-scaling."""
        a = self.aggressiveness
        update = {}
        if a != 1.0:
            update |= {"tolerance": min(0.95, base.tolerance / a), "margin": min(0.5, base.margin * a),
                       "max_step_ratio": max(1.0, base.max_step_ratio * a),
                       "max_ttl_step_ratio": max(1.0, base.max_ttl_step_ratio * a)}
        if self.reducing(t):
            th = base.thresholds
            update["thresholds"] = th.model_copy(update={
                "cost_budget_factor": min(th.cost_budget_factor, REDUCED_COST_FACTOR),
                "memory_percent": min(th.memory_percent, REDUCED_MEMORY_PERCENT)})
        return base.model_copy(update=update) if update else base

    def barred(self, t: float) -> frozenset[str]:
        """Remedies the optimizer may not try at ``t``."""
        return RESOURCE_ADDING if self.reducing(t) else frozenset()

    def deferral(self, agents: set[str], t: float) -> str | None:
        """Why a strategy changing ``agents`` must wait at ``t`` (None: it need not)."""
        if self.focus is not None and t < self.focus_until_s - 1e-9 and not agents <= {self.focus}:
            return f"the Orchestrator asked to focus on {self.focus}"
        return None

    def describe(self) -> str:
        """The mode in words (for ``optimizer.mode`` events)."""
        parts = [f"aggressiveness {self.aggressiveness:g}"]
        if self.focus is not None:
            parts.append(f"focus {self.focus} until {self.focus_until_s:.0f}s")
        if self.reduce_until_s != -math.inf:
            parts.append(f"reducing resources until {self.reduce_until_s:.0f}s")
        return ", ".join(parts)


def grant_bottlenecks(mode: Mode, snaps: dict[str, dict]) -> list[Bottleneck]:
    """A ``resource_grant`` bottleneck per granted agent (its workers' busy
    share against :data:`GRANT_UTILIZATION`), for the planner to answer."""
    out = []
    for agent in mode.grants:
        s = snaps.get(agent)
        if not s or not s["decision_count"]:
            continue
        cpu, target = s["cpu_percent"], 100.0 * GRANT_UTILIZATION
        out.append(Bottleneck("resource_grant", "medium", agent, "cpu_percent", float(cpu), target,
                              round((cpu / target - 1.0) * 100.0, 1),
                              f"the Orchestrator granted resources to {agent}: workers {cpu:.0f}% busy",
                              "Add workers"))
    return out


def grant_workers(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Workers for :data:`GRANT_UTILIZATION` at the offered load (Little's law:
    arrival rate x service time), at least one more; the planner bounds the step."""
    offered = s.get("arrival_rate_per_s", math.nan) * s.get("service_time_ms_mean", math.nan) / 1000.0
    if not (offered == offered and math.isfinite(offered)):
        return None
    need = max(k.max_concurrency + 1, math.ceil(offered / GRANT_UTILIZATION))
    need = min(need, int(KNOB_BOUNDS["max_concurrency"][1]))
    return None if need == k.max_concurrency else [KnobChange(p.id, "max_concurrency", k.max_concurrency, need)]


@dataclass(frozen=True)
class Advice:
    """A recommendation of the optimizer to the Orchestrator: ``kind``
    (``reduce_autonomy``, ``increase_resources`` or ``improve_coordination``),
    the ``agents`` it concerns and its ``text`` (the source's wording)."""

    kind: str
    agents: tuple[str, ...]
    text: str


def advise(snaps: dict[str, dict], health: dict[str, float], th: Thresholds, margin: float) -> list[Advice]:
    """The optimizer's recommendations from each agent's last-cycle snapshot
    (``snaps``: ``decision_count``, ``success_rate``, ``cpu_percent`` and
    ``coordination_score`` at least) and health:

    * ``reduce_autonomy`` for an agent whose health is below the critical
      system level (``th.system_critical``): more of its decisions reviewed;
    * ``increase_resources`` for an agent with a success rate of at least
      :data:`HIGH_EFFICIENCY` whose workers are at least
      :data:`NEAR_CAPACITY` % busy (it performs well and is close to its limit);
    * ``improve_coordination`` (system-wide) when two or more agents with
      decisions have a coordination score below its setpoint (the threshold
      moved in by ``margin``, as :func:`~swarmopt.optimizer.detect.setpoint`).
    """
    out = []
    for a in sorted(health):
        h = health[a]
        if h == h and h < th.system_critical:
            out.append(Advice("reduce_autonomy", (a,), f"Reduce autonomy for {a} (poor performance)"))
    for a, s in sorted(snaps.items()):
        if s["decision_count"] and s["success_rate"] >= HIGH_EFFICIENCY and s["cpu_percent"] >= NEAR_CAPACITY:
            out.append(Advice("increase_resources", (a,), f"Increase resources for {a} (high efficiency)"))
    goal = 1.0 - (1.0 - th.coordination_medium) * (1.0 - margin)
    low = tuple(a for a, s in sorted(snaps.items()) if s["decision_count"] and s["coordination_score"] < goal)
    if len(low) >= 2:
        out.append(Advice("improve_coordination", low, "System-wide coordination needs improvement"))
    return out
