"""The bulk-synchronous driver, written once for every runtime.

Each tick every agent group steps over ``[t, t + tick_s)`` in parallel and
returns its outbound messages (coordination messages, review requests and
answers), which are delivered at the next tick (sorted by arrival time, sender
and sequence number), and the metric rows of the windows that closed with their
per-task samples. An agent closes a window once every review answer of it is
back (:mod:`swarmopt.sim.review`); before a cycle the driver runs one more
exchange at the same instant, so that the answers to the review requests that
arrived before it are back and the optimizer sees every window that ended. At every optimizer cycle the driver
passes the new rows and samples to the Performance Optimizer (the samples go
nowhere else), routes its proposals through the Orchestrator, and
delivers the scheduled knob and autonomy changes to the agents. A *backend*
says how a call reaches a component: directly (local) or as a Ray actor call.
"""

from __future__ import annotations

import functools
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from swarmopt.knobs import ScheduledChange
from swarmopt.metrics import TaskSample
from swarmopt.runtime.group import group_name
from swarmopt.schema import Scenario
from swarmopt.sim.inbox import Message


class Backend(Protocol):
    """Creates components and calls their methods."""

    def groups(self, scenario: Scenario, seed: int) -> list[tuple[Any, list[str]]]:
        """(handle, hosted agent ids) for every agent group."""

    def optimizer(self, scenario: Scenario, seed: int) -> Any: ...

    def orchestrator(self, scenario: Scenario) -> Any: ...

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        """Start ``handle.method(*args)``; returns a future (or the value)."""

    def get(self, futures: list[Any]) -> list[Any]:
        """Wait for futures, in order."""

    def checkpoint(self, components: "Components") -> Any:
        """A copy of every component's state now, or None if components cannot die (local)."""

    def restore(self, token: Any, components: "Components") -> "Components":
        """Components rebuilt from a :meth:`checkpoint` (the old ones are discarded)."""

    def fork(self, components: "Components") -> tuple["Backend", "Components"]:
        """A new backend with independent copies of the components."""

    def dead_actor(self, exc: BaseException, components: "Components") -> str | None:
        """The name of the component whose death raised ``exc``, or None if ``exc`` is not an actor death."""

    def kill(self, handle: Any) -> None:
        """Kill a component's process (a ``crash`` fault with ``mode: process``)."""

    def close(self) -> None: ...


class Sink(Protocol):
    """Receives what the run produces, as it is produced."""

    def rows(self, rows: list[dict]) -> None: ...
    def events(self, events: list[dict]) -> None: ...
    def process(self, samples: list[dict]) -> None: ...

    def samples(self, samples: list[TaskSample]) -> None:
        """The per-task samples of the windows that just closed (beside their rows)."""

    def mark(self) -> Any:
        """A position to :meth:`rewind` to; what came before the latest mark is
        final (the driver marks at every checkpoint and rewinds to the latest)."""

    def rewind(self, mark: Any) -> None:
        """Forget everything received after ``mark`` (the latest one)."""


@dataclass
class Components:
    """The backend handles of a run: agent groups (handle, hosted agent ids), optimizer, orchestrator."""

    groups: list[tuple[Any, list[str]]]
    opt: Any
    orch: Any

    def named(self) -> dict[str, Any]:
        """Handle by component name: each group's name, ``optimizer``, ``orchestrator``."""
        out = {group_name(i, members): h for i, (h, members) in enumerate(self.groups)}
        return out | {"optimizer": self.opt, "orchestrator": self.orch}


class ActorLostError(RuntimeError):
    """A component's actor died more often than the run may restart it."""

    def __init__(self, actor: str, restarts: int) -> None:
        super().__init__(f"actor {actor} died after {restarts} restart(s); giving up")
        self.actor = actor


CHECKPOINT_EVERY_S = 3600.0
"""Default simulated seconds between recovery checkpoints (:class:`Driver`)."""
LOOP_STATE = ("k", "done", "inbound", "pending", "new_rows", "new_samples", "applied")


def _by_agent(items, key) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for it in items:
        out[key(it)].append(it)
    return out


@dataclass
class Driver:
    """The BSP loop of one run as an object that advances one tick at a time.

    ``components`` are the backend handles; the rest is the loop's own state
    (:data:`LOOP_STATE`: tick counter, messages and changes in transit, what
    the next optimizer cycle gets), plain data that pickles. :meth:`advance`
    runs one tick: the optimizer cycle if one is due at the current time
    ``now``, then every group over ``[now, now + tick_s)``.
    The last call runs the final cycle (judge and detect only) and sets
    ``done``.

    Recovery: on backends whose components can die, at the start and then
    before the first optimizer cycle at least ``checkpoint_every_s`` simulated
    seconds after the last checkpoint, the driver takes a checkpoint of every
    component and of its loop state, and marks the sink's position (the sink
    may write out what precedes the mark). A checkpoint of every component
    costs about as much as a tick on Ray, so by default it is taken once per
    simulated hour, as Flink checkpoints per interval and Ray Tune per
    ``checkpoint_frequency`` iterations: a recovery replays up to that much, and
    a streamed run holds the rows since. On other backends only the mark is
    taken, at the start and before every cycle. When an actor dies,
    every component is rebuilt from the last checkpoint, the sink is rewound
    and the ticks since are replayed, so the tables are those of an
    undisturbed run plus one ``actor.restarted`` event per restart (a
    restart's event survives a later recovery from an earlier checkpoint); after
    ``max_restarts`` restarts it raises :class:`ActorLostError` naming the actor.
    """

    scenario: Scenario
    backend: Backend
    sink: Sink
    components: Components
    max_restarts: int = 3
    checkpoint_every_s: float = CHECKPOINT_EVERY_S
    k: int = 0
    done: bool = False
    inbound: list[Message] = field(default_factory=list)
    pending: list[ScheduledChange] = field(default_factory=list)
    new_rows: list[dict] = field(default_factory=list)
    new_samples: list[TaskSample] = field(default_factory=list)
    applied: list[dict] = field(default_factory=list)
    restarts: int = 0
    restart_events: list[dict] = field(default_factory=list)  # a replay does not send these again
    killed: set[int] = field(default_factory=set)  # process-crash faults already executed (never replayed)
    _checkpoint: tuple | None = None
    _checkpoint_k: int = 0  # the tick of the last checkpoint

    @classmethod
    def start(cls, scenario: Scenario, seed: int, backend: Backend, sink: Sink, max_restarts: int = 3,
              checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> "Driver":
        """Create the run's components on ``backend``; ValueError if
        ``checkpoint_every_s`` is not positive."""
        if not checkpoint_every_s > 0:
            raise ValueError(f"checkpoint_every_s must be > 0 simulated seconds, got {checkpoint_every_s!r}")
        comps = Components(backend.groups(scenario, seed), backend.optimizer(scenario, seed),
                           backend.orchestrator(scenario))
        return cls(scenario, backend, sink, comps, max_restarts, checkpoint_every_s)

    @property
    def groups(self) -> list[tuple[Any, list[str]]]:
        return self.components.groups

    @functools.cached_property
    def _rank(self) -> dict[str, int]:
        """Each agent's position in the scenario."""
        return {a.id: i for i, a in enumerate(self.scenario.agents)}

    @property
    def opt(self) -> Any:
        return self.components.opt

    @property
    def now(self) -> float:
        """Simulated time (s) the run has reached: every group has stepped up to it."""
        return min(self.k * self.scenario.tick_s, self.scenario.duration_s)

    @property
    def reviews(self) -> bool:
        """Whether an agent of the scenario reviews the escalated decisions (:mod:`swarmopt.sim.review`)."""
        return any(a.review is not None for a in self.scenario.agents)

    @property
    def cycle_ticks(self) -> int:
        return int(round(self.scenario.optimizer.cycle_s / self.scenario.tick_s))

    def cycle_due(self) -> bool:
        """Whether the optimizer cycle runs at the start of the next :meth:`advance`."""
        return not self.done and (self.k > 0 and self.k % self.cycle_ticks == 0 or self._last())

    def _last(self) -> bool:
        return self.k * self.scenario.tick_s >= self.scenario.duration_s - 1e-9

    def host_of(self, agent: str) -> int:
        """Index of the group hosting ``agent``; KeyError naming the allowed ids."""
        for i, (_, members) in enumerate(self.groups):
            if agent in members:
                return i
        raise KeyError(f"unknown agent '{agent}'; allowed: {sorted(a for _, m in self.groups for a in m)}")

    def _pickled_loop_state(self) -> bytes:
        # a pickle round trip copies the loop state several times faster than copy.deepcopy on its rows
        return pickle.dumps({f: getattr(self, f) for f in LOOP_STATE}, pickle.HIGHEST_PROTOCOL)

    def loop_state(self) -> dict:
        """A deep copy of the loop state (for a fork)."""
        return pickle.loads(self._pickled_loop_state())

    def fork(self, sink: Sink) -> "Driver":
        """An independent driver at the same point, feeding ``sink``."""
        backend, comps = self.backend.fork(self.components)
        return Driver(self.scenario, backend, sink, comps, self.max_restarts, self.checkpoint_every_s,
                      **self.loop_state(), killed=set(self.killed))

    def advance(self) -> None:
        """One tick (see the class docstring); no-op once ``done``."""
        if not self.done:
            self.guard(self._checkpoint_and_advance)

    def guard(self, op: Callable[[], Any]) -> Any:
        """Run ``op()``; when an actor dies under it, rebuild the run as it was
        just before (:meth:`_recover`) and run ``op`` again."""
        while True:
            try:
                return op()
            except Exception as exc:
                actor = self.backend.dead_actor(exc, self.components)
                if actor is None:
                    raise
                self._recover(actor)

    def checkpoint(self) -> None:
        """Take the recovery checkpoint now, between ticks (also after a user's
        change, so that a restart keeps it), and the sink's mark on every
        backend: a recovery never rewinds the sink past it, so the sink may
        write out what came before. Raises if an actor is dead."""
        token = self.backend.checkpoint(self.components)  # first: a dead actor raises before the sink moves on
        mark = self.sink.mark()
        self._checkpoint = () if token is None else (token, self._pickled_loop_state(), mark,
                                                          len(self.restart_events))
        self._checkpoint_k = self.k

    def _checkpoint_due(self) -> bool:
        # without component checkpoints (a backend whose components cannot die) only the sink's mark is taken:
        # every cycle, so that a streamed run holds few rows
        elapsed_s = (self.k - self._checkpoint_k) * self.scenario.tick_s
        return self._checkpoint is None or self.cycle_due() and (
            self._checkpoint == () or elapsed_s >= self.checkpoint_every_s - 1e-9)

    def _checkpoint_and_advance(self) -> None:
        if self._checkpoint_due():
            self.checkpoint()
        self._advance()

    def _recover(self, actor: str) -> None:
        """Rebuild every component from the last checkpoint, rewind the sink and
        replay the ticks since, back to where the run was when ``actor`` died."""
        if not self._checkpoint or self.restarts >= self.max_restarts:
            raise ActorLostError(actor, self.restarts)
        self.restarts += 1
        token, state, mark, sent_before = self._checkpoint
        failed_at, target = self.now, self.k
        self.components = self.backend.restore(token, self.components)
        state = pickle.loads(state)
        for f, v in state.items():
            setattr(self, f, v)
        self.sink.rewind(mark)
        replayed = target - self.k
        while self.k < target:
            self._advance()
        self.restart_events.append({
            "t_s": failed_at, "event": "actor.restarted", "agent": actor, "value": replayed,
            "detail": f"{actor} died at {failed_at:g}s; every component rebuilt from the checkpoint of "
                      f"{state['k'] * self.scenario.tick_s:g}s and {replayed} tick(s) replayed (restart "
                      f"{self.restarts} of at most {self.max_restarts})"})
        # the sink's rewind also dropped the restarts since the checkpoint, which no replay sends again
        self.sink.events(self.restart_events[sent_before:])

    def _advance(self) -> None:
        t0 = self.k * self.scenario.tick_s
        last = self._last()
        if self.cycle_due():
            # close the windows that ended by t0 first, so that the cycle's
            # changes reach the agents before they simulate past t0; with a
            # reviewer, a second exchange brings back the answers it gave in the first
            self._step(t0, t0)
            if self.reviews:
                self._step(t0, t0)
            orch = self.scenario.orchestrator
            self.pending += _cycle(self.backend, self.components.opt, self.components.orch, t0, self.new_rows,
                                   self.applied, self.new_samples, self.sink, plan=not last,
                                   protocol=bool(orch.commands or orch.act_on_recommendations))
            self.new_rows, self.new_samples, self.applied = [], [], []
        if last:
            self.done = True
            return
        t1 = min(self.scenario.duration_s, t0 + self.scenario.tick_s)
        self._crash_processes(t0, t1)
        self._step(t0, t1)
        self.k += 1

    def _crash_processes(self, t0: float, t1: float) -> None:
        """Kill the actor hosting the target of every ``crash`` fault with
        ``mode: process`` that starts in [t0, t1), once per fault (a replay
        after the restart does not kill it again)."""
        for i, f in enumerate(self.scenario.faults):
            if f.kind == "crash" and f.mode == "process" and t0 <= f.at_s < t1 and i not in self.killed:
                self.killed.add(i)
                self.backend.kill(self.groups[self.host_of(f.target)][0])

    def _step(self, t0: float, t1: float) -> None:
        """Step every group over [t0, t1) with the messages and changes due; a
        step with t1 == t0 only closes the windows that ended by t0."""
        host = {aid: i for i, (_, members) in enumerate(self.groups) for aid in members}
        msgs = [[] for _ in self.groups]
        for m in sorted(self.inbound):
            msgs[host[m.receiver]].append(m)
        chg = [[] for _ in self.groups]
        for c in self.pending:
            chg[host[c.change.agent]].append(c)
        futures = [
            self.backend.call(h, "step", t0, t1, _by_agent(msgs[i], lambda m: m.receiver),
                              _by_agent(chg[i], lambda c: c.change.agent))
            for i, (h, _) in enumerate(self.groups)
        ]
        self.inbound, self.pending = [], []
        results = self.backend.get(futures)
        rows, smp, ap = [], [], []
        for out, g_rows, g_ap, proc, g_smp in results:
            self.inbound += out
            rows += g_rows
            smp += g_smp
            ap += g_ap
            if proc:
                self.sink.process(proc)
        if len(results) > 1:
            # in the scenario's agent order, each agent's in time order, however the agents are grouped (a stable
            # sort of the groups' agent-major lists; one group's already is): what the optimizer and the tables see
            # does not depend on the placement
            rank = self._rank
            order = sorted(range(len(rows)), key=lambda i: rank[rows[i]["agent"]])
            rows, smp = [rows[i] for i in order], [smp[i] for i in order]
            ap.sort(key=lambda a: rank[a["agent"]])
        self.new_samples.extend(smp)
        if smp:
            self.sink.samples(smp)
        if rows:
            self.new_rows.extend(rows)
            self.sink.rows(rows)
        if ap:
            self.applied.extend(ap)
            self.sink.events([dict(a, event="knob.applied" if a["knob"] != "autonomy" else "autonomy.applied")
                              for a in ap])


def drive(scenario: Scenario, seed: int, backend: Backend, sink: Sink,
          pace: Callable[[float], None] | None = None) -> None:
    """Run ``scenario`` with ``seed`` to its end on ``backend``, feeding ``sink``.

    ``pace(t)`` (wall-clock mode) is called before each tick with the simulated
    time; it sleeps as needed and never changes results.
    """
    d = Driver.start(scenario, seed, backend, sink)
    while not d.done:
        if pace is not None:
            pace(d.now)
        d.advance()


def _cycle(backend: Backend, opt, orch, t: float, rows: list[dict], applied: list[dict], samples: list[TaskSample],
           sink: Sink, plan: bool, protocol: bool = False) -> list[ScheduledChange]:
    """One optimizer cycle at ``t``; with ``protocol`` (the scenario's
    Orchestrator sends commands or acts on recommendations,
    :mod:`swarmopt.protocol`) the Orchestrator's due commands go to the
    optimizer first and it acts on the report last."""
    commands = ()
    if protocol:
        (commands, ev), = backend.get([backend.call(orch, "commands_due", t)])
        sink.events(ev)
    args = (t, rows, applied, samples, plan) + ((commands,) if commands else ())
    (proposals, rollbacks, ev), = backend.get([backend.call(opt, "cycle_with", *args)])
    sink.events(ev)
    decisions: dict[str, bool] = {}
    if any(p.needs_approval for p in proposals):  # the Orchestrator only reviews what needs approval
        (decisions, ev), = backend.get([backend.call(orch, "review", t, proposals)])
        sink.events(ev)
    (changes, ev, report), = backend.get([backend.call(opt, "commit_and_report", t, decisions)])
    sink.events(ev)
    (auto, ev), = backend.get([backend.call(orch, "receive_report", t, report)])
    sink.events(ev)
    if protocol:
        (more, ev), = backend.get([backend.call(orch, "act_on_report", t, report)])
        sink.events(ev)
        auto = auto + more
    return rollbacks + changes + auto
