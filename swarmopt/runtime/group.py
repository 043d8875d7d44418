"""A group of agents hosted together (one Ray actor, or the whole local run).

For five agents the Ray runtime gives each its own group; for populations of
hundreds a group hosts many agents so that actor count follows cores, not
agents (as AgentSociety's ``AgentGroup`` does).
"""

from __future__ import annotations

import os

import psutil

from swarmopt.knobs import ScheduledChange
from swarmopt.metrics import TaskSample, task_samples, window_rows
from swarmopt.schema import AgentProfile, Scenario
from swarmopt.sim.agent import AgentSim, share_layout, step_agents
from swarmopt.sim.environment import Environment
from swarmopt.sim.inbox import STORM, Message
from swarmopt.sim.seeds import agent_seeds, replica_seeds
from swarmopt.sim.topology import Routes

MAX_GROUPS = 16
"""The most agent-group actors a Ray run gets by default: one per agent up to this many."""


def group_name(index: int, members: list[str]) -> str:
    """The name of the agent-group component ``index`` hosting ``members``: its agent's id when it hosts one, else
    ``group-<index>``."""
    return members[0] if len(members) == 1 else f"group-{index}"


def placement(profiles: list[AgentProfile], max_groups: int) -> list[list[int]]:
    """The agents (indices into ``profiles``) of each group, at most
    ``max_groups`` groups: a population's replicas stay together (they may
    steal each other's work, :func:`swarmopt.sim.sched.steal`, which happens
    inside one group), each population or single agent going, largest first,
    to the group with the fewest agents so far (the lowest on a tie). Five
    single agents get a group each. Raises ValueError if ``max_groups < 1``."""
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    units: dict[str, list[int]] = {}
    for i, p in enumerate(profiles):
        units.setdefault(p.population or p.id, []).append(i)
    k = min(len(units), max_groups)
    groups: list[list[int]] = [[] for _ in range(k)]
    for unit in sorted(units.values(), key=len, reverse=True):
        min(groups, key=len).extend(unit)
    return [sorted(g) for g in groups]


def _process() -> psutil.Process:
    proc = psutil.Process(os.getpid())
    proc.cpu_percent(None)
    return proc


class AgentGroup:
    """Hosts the agents of ``scenario`` whose indices are in ``members``."""

    def __init__(self, name: str, scenario: Scenario, members: list[int], seed: int) -> None:
        self.name = name
        self.seed, self.members, self.n_agents = seed, members, len(scenario.agents)
        seeds, _ = agent_seeds(seed, self.n_agents)
        th = scenario.optimizer.thresholds
        hosted = [scenario.agents[i] for i in members]
        pad = (max((len(p.tools) for p in hosted), default=0), max((len(p.downstream) for p in hosted), default=0))
        names = sorted({a.id for a in scenario.agents} | {STORM})
        routes = Routes(scenario.topology, names, [a.id for a in scenario.agents], scenario.faults)
        reviewers = sorted(a.id for a in scenario.agents if a.review is not None)
        self.sims: dict[str, AgentSim] = {}
        for i, p in zip(members, hosted, strict=False):
            env = Environment(scenario.load, [f for f in scenario.faults if f.target == p.id], scenario.duration_s)
            self.sims[p.id] = AgentSim(p, scenario.models, env, seeds[i], scenario.window_s, th.response_time_ms, pad,
                                       names, routes, reviewers)
        share_layout(list(self.sims.values()))
        self.cycle_s = scenario.optimizer.cycle_s
        self.sampled_cycle = -1
        self.proc = _process()

    def __getstate__(self) -> dict:
        # a psutil handle names this process: a copy (fork, checkpoint) measures its own
        return {k: v for k, v in self.__dict__.items() if k != "proc"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.proc = _process()

    def reseed(self, stream: int) -> None:
        """Every hosted agent draws from replica stream ``stream`` (>= 1) of the
        run's seed from now on (:func:`~swarmopt.sim.seeds.replica_seeds`,
        :meth:`AgentSim.reseed`). Raises ValueError for ``stream`` < 1."""
        seeds = replica_seeds(self.seed, self.n_agents, stream)
        for i, sim in zip(self.members, self.sims.values(), strict=True):
            sim.reseed(seeds[i])

    def snapshot(self, agent: str, t: float) -> dict:
        """:meth:`AgentSim.snapshot` of a hosted agent at ``t``."""
        return self.sims[agent].snapshot(t)

    def inject(self, fault) -> None:
        """:meth:`AgentSim.add_fault` on the fault's target (a hosted agent)."""
        self.sims[fault.target].add_fault(fault)

    def step(self, t0: float, t1: float, inbound: dict[str, list[Message]],
             changes: dict[str, list[ScheduledChange]]
             ) -> tuple[list[Message], list[dict], list[dict], list[dict], list[TaskSample]]:
        """Step every hosted agent over ``[t0, t1)`` (see :meth:`AgentSim.step`).

        Returns (outbound messages, metrics rows of closed windows, applied
        changes, process samples — the real CPU and memory of this process,
        taken once per optimizer cycle: in the first step at or after a cycle
        boundary that closes a window —, per-task samples of the closed windows
        — one per metrics row, for the optimizer's canary judge only).
        """
        sims = list(self.sims.values())
        out, results = step_agents(sims, t0, t1, inbound, changes)
        closed = [w for _, ws, _ in results for w in ws]
        applied = [a for *_, ap in results for a in ap]
        proc = []
        cycle = int(t0 / self.cycle_s + 1e-9)
        if closed and cycle > self.sampled_cycle:
            self.sampled_cycle = cycle
            proc.append({"t_s": t0, "actor": self.name, "pid": self.proc.pid,
                         "process_cpu_percent": self.proc.cpu_percent(None),
                         "process_rss_mb": self.proc.memory_info().rss / 2**20})
        return out, window_rows(closed), applied, proc, task_samples(closed)
