"""The bulk-synchronous driver, written once for every runtime.

Each tick every agent group steps over ``[t, t + tick_s)`` in parallel and
returns its outbound messages, which are delivered at the next tick (sorted by
arrival time, sender and sequence number), and the metric rows of the windows
that closed with their per-task samples. At every optimizer cycle the driver
passes the new rows and samples to the Performance Optimizer (the samples go
nowhere else), routes its proposals through the Orchestrator, and
delivers the scheduled knob and autonomy changes to the agents. A *backend*
says how a call reaches a component: directly (local) or as a Ray actor call.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Protocol

from swarmopt.knobs import ScheduledChange
from swarmopt.metrics import TaskSample
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

    def close(self) -> None: ...


class Sink(Protocol):
    """Receives what the run produces, as it is produced."""

    def rows(self, rows: list[dict]) -> None: ...
    def events(self, events: list[dict]) -> None: ...
    def process(self, samples: list[dict]) -> None: ...


def _by_agent(items, key) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for it in items:
        out[key(it)].append(it)
    return out


def drive(scenario: Scenario, seed: int, backend: Backend, sink: Sink,
          pace: Callable[[float], None] | None = None) -> None:
    """Run ``scenario`` with ``seed`` to its end on ``backend``, feeding ``sink``.

    ``pace(t)`` (wall-clock mode) is called before each tick with the simulated
    time; it sleeps as needed and never changes results.
    """
    groups = backend.groups(scenario, seed)
    host_of = {aid: i for i, (_, members) in enumerate(groups) for aid in members}
    opt = backend.optimizer(scenario, seed)
    orch = backend.orchestrator(scenario)
    tick, duration = scenario.tick_s, scenario.duration_s
    cycle_ticks = int(round(scenario.optimizer.cycle_s / tick))
    inbound: list[Message] = []
    pending: list[ScheduledChange] = []
    new_rows: list[dict] = []
    new_samples: list[TaskSample] = []
    applied: list[dict] = []

    def step(t0: float, t1: float) -> None:
        """Step every group over [t0, t1) with the messages and changes due; a
        step with t1 == t0 only closes the windows that ended by t0."""
        nonlocal inbound, pending
        msgs = [[] for _ in groups]
        for m in sorted(inbound):
            msgs[host_of[m.receiver]].append(m)
        chg = [[] for _ in groups]
        for c in pending:
            chg[host_of[c.change.agent]].append(c)
        futures = [
            backend.call(h, "step", t0, t1, _by_agent(msgs[i], lambda m: m.receiver),
                         _by_agent(chg[i], lambda c: c.change.agent))
            for i, (h, _) in enumerate(groups)
        ]
        inbound, pending = [], []
        for out, rows, ap, proc, smp in backend.get(futures):
            inbound += out
            new_samples.extend(smp)
            if rows:
                new_rows.extend(rows)
                sink.rows(rows)
            if ap:
                applied.extend(ap)
                sink.events([dict(a, event="knob.applied" if a["knob"] != "autonomy" else "autonomy.applied")
                             for a in ap])
            if proc:
                sink.process(proc)

    k = 0
    while True:
        t0 = k * tick
        last = t0 >= duration - 1e-9
        if pace is not None:
            pace(t0)
        if k > 0 and k % cycle_ticks == 0 or last:
            # close the windows that ended by t0 first, so that the cycle's
            # changes reach the agents before they simulate past t0
            step(t0, t0)
            pending += _cycle(backend, opt, orch, t0, new_rows, applied, new_samples, sink, plan=not last)
            new_rows, new_samples, applied = [], [], []
        if last:
            break
        step(t0, min(duration, t0 + tick))
        k += 1


def _cycle(backend: Backend, opt, orch, t: float, rows: list[dict], applied: list[dict], samples: list[TaskSample],
           sink: Sink, plan: bool) -> list[ScheduledChange]:
    (proposals, rollbacks, ev), = backend.get([backend.call(opt, "cycle_with", t, rows, applied, samples, plan)])
    sink.events(ev)
    decisions: dict[str, bool] = {}
    if any(p.needs_approval for p in proposals):  # the Orchestrator only reviews what needs approval
        (decisions, ev), = backend.get([backend.call(orch, "review", t, proposals)])
        sink.events(ev)
    (changes, ev, report), = backend.get([backend.call(opt, "commit_and_report", t, decisions)])
    sink.events(ev)
    (auto, ev), = backend.get([backend.call(orch, "receive_report", t, report)])
    sink.events(ev)
    return rollbacks + changes + auto
