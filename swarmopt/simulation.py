"""The :class:`Simulation` object: a run you can step, inspect, change and fork.

The driver as an object, the way SimPy's ``Environment`` and Mesa's ``Model``
are: ``step()`` one tick, ``run(until=...)``, live tables, agent snapshots,
``set_knob``, ``inject``, decision overrides and ``fork()``. ``run_scenario``
is a thin wrapper over it. Stepping tick by tick, running in pieces, running
to the end in one call and continuing a fork all give identical tables: the
engine draws every random number per window from per-component streams
(common random numbers), and a fork copies those streams with the rest of the
state.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import TypeAdapter, ValidationError

from swarmopt.autonomy import check_rule
from swarmopt.guard import prepare_out_dir
from swarmopt.knobs import KnobChange, ScheduledChange, get_knob, set_knob
from swarmopt.loader import InputError, describe, load_scenario
from swarmopt.logs import new_run_id
from swarmopt.observe import Fanout, Observer
from swarmopt.overrides import apply_overrides
from swarmopt.plugins import Plugins, check
from swarmopt.progress import progress as show_progress
from swarmopt.report import PARTS, begin_run_dir, write_run
from swarmopt.results import Collector, RunResult
from swarmopt.runtime.driver import CHECKPOINT_EVERY_S, Driver
from swarmopt.runtime.group import MAX_GROUPS, group_name
from swarmopt.schema import Fault, Knobs, Scenario
from swarmopt.spool import PartFiles

VERDICTS = ("keep", "rollback", "revert")
_FAULT = TypeAdapter(Fault)


def _pacer(factor: float) -> Callable[[float], None]:
    """Wall-clock pacing from the first call on: simulated second s is reached
    no sooner than (s - s0) / factor real seconds later. Only sleeps."""
    origin: list[float] = []

    def pace(t_sim: float) -> None:
        if not origin:
            origin[:] = [time.monotonic(), t_sim]
        delay = origin[0] + (t_sim - origin[1]) / factor - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    return pace


def _backend(runtime: str, address: str | None, plugins: Plugins, actor_groups: int | None):
    if actor_groups is not None and not (isinstance(actor_groups, int) and actor_groups >= 1):
        raise ValueError(f"actor_groups must be an integer >= 1 or None, got {actor_groups!r}")
    if runtime == "ray":
        from swarmopt.runtime.ray_backend import RayBackend

        return RayBackend(address, actor_groups or MAX_GROUPS, plugins=plugins)
    if runtime == "local":
        from swarmopt.runtime.local import LocalBackend

        return LocalBackend(plugins)
    raise ValueError(f"runtime must be 'ray' or 'local', got {runtime!r}")


def prepare(scenario: str | Path | Scenario, seed: int | None = None, duration_s: float | None = None,
            overrides: Mapping[str, Any] | None = None) -> Scenario:
    """The scenario (a YAML path or a model) with ``overrides`` ({dotted path:
    value}, :func:`~swarmopt.overrides.apply_overrides`), then ``seed`` and
    ``duration_s`` applied and re-validated. Raises :class:`~swarmopt.loader.InputError`."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    sc = apply_overrides(sc, overrides or {})
    update: dict[str, Any] = {}
    if seed is not None:
        update["seed"] = seed
    if duration_s is not None:
        update["duration_s"] = duration_s
    if not update:
        return sc
    try:
        return Scenario.model_validate(sc.model_dump() | update)
    except ValidationError as err:
        raise InputError(describe(err, "options seed/duration_s")) from None


class Simulation:
    """One run of a scenario, advanced on demand.

    ``scenario``: a YAML path or a :class:`~swarmopt.schema.Scenario`;
    ``seed`` overrides its seed, ``duration_s`` its duration and ``overrides``
    any field by dotted path (:mod:`swarmopt.overrides`). ``runtime``:
    ``"local"`` (every component in this process) or ``"ray"`` (actors;
    ``address`` joins a cluster, default starts a local Ray; ``actor_groups``:
    how many agent-group actors, default one per agent up to 16, fewer where
    agents outnumber the cores — agents that share an actor are stepped in one
    pass, and which share one changes no result: a five-agent day on two CPUs
    ran in 19 s with 2 and 26 s with 5 (Ray started)). ``narrate``
    logs the live narrative (:mod:`swarmopt.logs`) under ``run_id``
    (``<scenario>-seed<N>-<suffix>``; a fork gets its own). ``policy``,
    ``rules``, ``remedies``: plug-ins as Python objects (:mod:`swarmopt.plugins`;
    the policy replaces the scenario's, rules and remedies add to its own); a
    ``policy`` given as a string is a built-in policy's name or an import path,
    as in the scenario's ``optimizer.policy``.
    ``decide``: a decision hook called with a
    :class:`~swarmopt.optimizer.trial.DecisionContext` for every judged change,
    returning "keep", "rollback", "revert" or None (the judge decides).
    ``max_restarts``: how often a dead actor is rebuilt from its last
    checkpoint before the run fails with
    :class:`~swarmopt.runtime.driver.ActorLostError` (see
    :class:`~swarmopt.runtime.driver.Driver`); ``checkpoint_every_s``: the
    simulated seconds between those checkpoints (taken before an optimizer
    cycle; a recovery replays at most about this much plus one cycle). ``observers``
    (:class:`~swarmopt.observe.Observer`) receive the rows, events and per-task
    samples as the run produces them (see also :meth:`observe`).

    ``out_dir``: the run directory, written as the run goes: the metrics,
    events and process rows are written to part files under ``out_dir/parts/``
    in chunks (:mod:`swarmopt.spool`) once no recovery can change them, and
    only the rows since are kept in memory, so memory stays flat however long
    the run; :meth:`write` then writes the whole directory there. Refused like
    ``--out`` (:func:`~swarmopt.guard.check_out_dir`) unless ``overwrite``.
    Without ``out_dir`` every row stays in memory (about 3 KB per metrics row:
    some 20 MiB per simulated day of five agents), which suits notebook-sized
    runs; give one for long runs.

    Raises :class:`~swarmopt.loader.InputError` for invalid input or a refused
    ``out_dir``, ValueError for an unknown runtime or a ``checkpoint_every_s``
    that is not positive or an ``actor_groups`` that is not a positive integer.

    Time: ``now`` is the simulated time (s) every agent has been stepped to.
    An optimizer cycle due at time t runs at the start of the step that leaves
    t, so ``run(until=t)`` stops *before* the cycle at t: a fork taken there
    sees that cycle's decisions happen.

    Use it as a context manager (or call :meth:`close`) on the Ray runtime, so
    its actors are released.
    """

    def __init__(self, scenario: str | Path | Scenario, seed: int | None = None, *, runtime: str = "local",
                 address: str | None = None, duration_s: float | None = None, narrate: bool = False,
                 max_restarts: int = 3, checkpoint_every_s: float = CHECKPOINT_EVERY_S,
                 overrides: Mapping[str, Any] | None = None, policy: Any = None,
                 rules: Sequence[Callable] = (), remedies: Sequence[Callable] = (),
                 decide: Callable[[Any], str | None] | None = None, observers: Sequence[Observer] = (),
                 out_dir: str | Path | None = None, overwrite: bool = False,
                 actor_groups: int | None = None) -> None:
        if isinstance(policy, str):
            overrides, policy = {**(overrides or {}), "optimizer.policy": policy}, None
        self.scenario = prepare(scenario, seed, duration_s, overrides)
        self.seed = self.scenario.seed
        self.runtime = runtime
        self.run_id = new_run_id(self.scenario.name, self.seed)
        plugins = Plugins(policy, tuple(rules), tuple(remedies))
        check(self.scenario.optimizer, plugins, "Simulation")
        check_rule(self.scenario.orchestrator.policy, "Simulation")
        self.out_dir = None if out_dir is None else prepare_out_dir(out_dir, overwrite)
        spool = None
        if self.out_dir is not None:
            run = {"scenario": self.scenario.name, "seed": self.seed, "runtime": runtime, "run_id": self.run_id,
                   "duration_s": self.scenario.duration_s}
            spool = PartFiles(self.out_dir / PARTS, on_first=lambda: begin_run_dir(self.out_dir, run))
        self._backend = _backend(runtime, address, plugins, actor_groups)
        self._sink = Collector(self.scenario, narrate_events=narrate, run_id=self.run_id, spool=spool)
        self._out = Fanout(self._sink, observers)
        self._live = None
        try:
            self._driver = Driver.start(self.scenario, self.seed, self._backend, self._out, max_restarts,
                                        checkpoint_every_s)
            if decide is not None:
                self._get(self._opt, "set_decide", decide)
        except BaseException:
            self._backend.close()
            raise

    # ------------------------------------------------------------------ time
    @property
    def now(self) -> float:
        """Simulated time (s) reached."""
        return self._driver.now

    @property
    def done(self) -> bool:
        """True once the run reached its duration and ran its final cycle."""
        return self._driver.done

    @property
    def next_cycle_s(self) -> float | None:
        """Simulated time (s) of the next optimizer cycle; None when done."""
        if self.done:
            return None
        d, sc = self._driver, self.scenario
        ticks = d.cycle_ticks
        k = d.k if d.cycle_due() else (d.k // ticks + 1) * ticks
        return min(k * sc.tick_s, sc.duration_s)

    def step(self) -> None:
        """Advance one tick (``tick_s`` simulated seconds, with the optimizer
        cycle first when one is due now). No-op when done."""
        self._driver.advance()

    def run(self, until: float | None = None, *, realtime: float | None = None, live: bool = False,
            progress: bool | None = False) -> "Simulation":
        """Advance to simulated time ``until`` (s; stops before the optimizer
        cycle due at ``until``) or, with None or the run's duration, to the end
        of the run (``done``).
        ``realtime``: pace at that factor x wall-clock speed (results unchanged).
        ``live``: show a table of the agents, the optimizer and the
        Orchestrator in Jupyter, updated after every optimizer cycle
        (:class:`~swarmopt.live.notebook.NotebookView`; needs IPython).
        ``progress``: show a progress bar (:func:`swarmopt.progress.progress`;
        None: in Jupyter only). Raises ValueError when ``until`` is before
        ``now`` or not a multiple of ``tick_s``. Returns ``self``."""
        if until is not None:
            tick = self.scenario.tick_s
            if until < self.now - 1e-9:
                raise ValueError(f"until={until} is before now={self.now}")
            if abs(until / tick - round(until / tick)) > 1e-9:
                raise ValueError(f"until={until} is not a multiple of tick_s={tick}")
        if until is not None and until >= self.scenario.duration_s - 1e-9:
            until = None  # the end: its final cycle too, so a loop `while not sim.done: sim.run(...)` ends
        pace = _pacer(realtime) if realtime else None
        view = self._live_view() if live else None
        target = math.inf if until is None else until
        end = self.scenario.duration_s if until is None else until
        with show_progress(f"{self.scenario.name} seed {self.seed}", self.now, end, progress) as tick:
            while not self.done and (self.now < target - 1e-9 or until is None):
                if pace is not None:
                    pace(self.now)
                cycle = self._driver.cycle_due()
                self.step()
                tick(self.now)
                if view is not None and cycle:
                    view.update()
        if view is not None:
            view.update()
        return self

    def observe(self, observer: Observer) -> Observer:
        """Send ``observer`` what the run produces from now on (see
        :mod:`swarmopt.observe`); returns it."""
        self._out.observers.append(observer)
        return observer

    def _live_view(self):
        from swarmopt.live.notebook import NotebookView

        if self._live is None:
            self._live = NotebookView.attach(self)
        else:
            self._live.show()
        return self._live

    # ------------------------------------------------------------------ tables and state
    @property
    def metrics(self) -> pd.DataFrame:
        """Metrics rows of the windows closed so far (as ``RunResult.metrics``)."""
        return self._sink.metrics_frame()

    @property
    def events(self) -> pd.DataFrame:
        """Events so far (as ``RunResult.events``)."""
        return self._sink.events_frame()

    @property
    def autonomy(self) -> pd.DataFrame:
        """Autonomy trajectories so far (as ``RunResult.autonomy``)."""
        return pd.DataFrame(self._sink.autonomy_rows)

    def agent(self, agent_id: str) -> dict:
        """Snapshot of one agent now: ``knobs``, ``autonomy``, ``queue_length``,
        ``busy_workers``, ``workers``, ``cached_keys`` per tool,
        ``pending_changes`` (scheduled, not yet in force; including changes
        the driver has not delivered yet), ``active_faults`` and ``in_flight``
        (the optimizer's change being measured on it, or None). Raises
        KeyError naming the allowed ids."""
        d = self._driver
        i = d.host_of(agent_id)
        snap = self._get(lambda: d.groups[i][0], "snapshot", agent_id, self.now)
        snap["pending_changes"] += [{"at_s": c.at_s, "knob": c.change.knob, "old": c.change.old,
                                     "new": c.change.new, "ref": c.ref}
                                    for c in d.pending if c.change.agent == agent_id]
        snap["in_flight"] = self.optimizer_state()["in_flight"].get(agent_id)
        return snap

    def optimizer_state(self) -> dict:
        """The optimizer now: ``autonomy``, ``streak`` (consecutive kept
        changes), ``learning`` (per strategy type and remedy kind: attempts,
        kept, rolled back, mean measured improvement in %), ``in_flight`` (per
        agent: the change being measured, its knobs and times), ``tabu``
        (remedies not retried until a time), ``planning_frozen_s`` and
        ``mode`` (what the Orchestrator's commands set, in words)."""
        return self._get(self._opt, "state")

    def result(self) -> RunResult:
        """The tables and summary so far as a :class:`~swarmopt.results.RunResult`.
        With ``out_dir`` its tables are read from the part files written so far
        (and the rows held now) when asked for; once the finished run is written
        the parts are merged into the run directory's tables and deleted, so take
        the result again then."""
        return self._sink.result(self.seed, self.runtime)

    def write(self, out_dir: str | Path | None = None, *, status: str | None = None,
              error: str | None = None) -> Path:
        """Write the run directory (tables, ``summary.json``, report) to
        ``out_dir`` (default: the simulation's ``out_dir``; ValueError if it has
        none); status ``completed`` when done, else ``partial`` unless given.
        Written into its own ``out_dir`` once done, the part files are merged
        into the tables and deleted."""
        return self._write(self.result(), out_dir, status, error, final=self.done).out_dir

    def _write(self, res: RunResult, out_dir: str | Path | None, status: str | None, error: str | None,
               final: bool) -> RunResult:
        """:meth:`write` of ``res`` (this simulation's result); returns it,
        reading its tables from ``out_dir``. ``final``: the run goes no further
        (done, or about to be closed), so its part files in its own
        ``out_dir`` are merged into the tables and deleted."""
        out = self.out_dir if out_dir is None else Path(out_dir)
        if out is None:
            raise ValueError("write: no out_dir given, and the Simulation has none")
        write_run(res, out, status=status or ("completed" if self.done else "partial"), error=error)
        if final and self.out_dir is not None and out.resolve() == self.out_dir.resolve():
            self._sink.finished(out)
        return res

    # ------------------------------------------------------------------ changes
    def set_knob(self, agent_id: str, knob: str, value: Any) -> None:
        """Set ``knob`` (a dotted path, e.g. ``max_concurrency``,
        ``cache_ttl_s.data_source``) of ``agent_id`` to ``value`` from the next
        tick on, recorded as a ``knob.set`` event with ``ref: user``. The
        optimizer learns the new value (its rollbacks restore the right one).
        Raises :class:`~swarmopt.loader.InputError` naming the knob and its
        bounds when the value is invalid, KeyError for an unknown agent."""
        current = self.agent(agent_id)
        knobs = Knobs.model_validate(current["knobs"])
        for c in current["pending_changes"]:
            if c["knob"] != "autonomy":
                knobs = set_knob(knobs, c["knob"], c["new"])
        try:
            old = get_knob(knobs, knob)
            set_knob(knobs, knob, value)
        except KeyError as err:
            raise InputError(f"set_knob: {err.args[0]}") from None
        except ValidationError as err:
            raise InputError(describe(err, f"set_knob({agent_id!r}, {knob!r})")) from None
        change = KnobChange(agent_id, knob, old, value)
        self._driver.pending.append(ScheduledChange(self.now, change, "user"))
        self._get(self._opt, "note_user_change", change)
        self._out.events([{"t_s": self.now, "event": "knob.set", "agent": agent_id, "knob": knob, "old": old,
                           "new": value, "ref": "user"}])
        self._driver.guard(self._driver.checkpoint)

    def inject(self, fault: dict | Any) -> Any:
        """Add a fault (a dict as in the scenario YAML, or a fault model);
        ``at_s`` defaults to now and may not be earlier. Recorded as a
        ``fault.injected`` event. Returns the validated fault. Raises
        :class:`~swarmopt.loader.InputError` for an invalid fault, an unknown
        target, a start in the past, or a load surge starting inside a window
        whose arrivals are already drawn."""
        data = fault if isinstance(fault, dict) else fault.model_dump()
        data = {"at_s": self.now, **data}
        try:
            f = _FAULT.validate_python(data)
        except ValidationError as err:
            raise InputError(describe(err, "inject")) from None
        ids = [a.id for a in self.scenario.agents]
        if f.target not in ids:
            raise InputError(f"inject: target: unknown agent {f.target!r}; allowed: {ids}")
        if f.at_s < self.now - 1e-9:
            raise InputError(f"inject: at_s: {f.at_s} is before now ({self.now}s)")
        w = self.scenario.window_s
        drawn_until = math.ceil(self.now / w - 1e-9) * w
        if f.kind == "load_surge" and f.at_s < drawn_until - 1e-9:
            raise InputError(f"inject: at_s: a load_surge must start at or after {drawn_until}s: arrivals are "
                             "drawn per window and this window's are drawn already")
        d = self._driver
        i = d.host_of(f.target)
        self._get(lambda: d.groups[i][0], "inject", f)
        self.scenario = self.scenario.model_copy(update={"faults": [*self.scenario.faults, f]})
        self._sink.scenario = self._driver.scenario = self.scenario
        self._out.events([{"t_s": self.now, "event": "fault.injected", "agent": f.target, "kind": f.kind,
                           "effective_s": f.at_s, "detail": repr(f)}])
        self._driver.guard(self._driver.checkpoint)
        return f

    # ------------------------------------------------------------------ decisions
    def override(self, strategy_id: str, verdict: str) -> None:
        """Force the verdict (``keep``, ``rollback`` or ``revert``) of the change
        ``strategy_id`` when it is judged; its events record ``forced: true``.
        Raises ValueError for another verdict."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        self._get(self._opt, "force", strategy_id, verdict)
        self._driver.guard(self._driver.checkpoint)

    def freeze_planning(self, at_s: float | None = None) -> None:
        """No new strategies from ``at_s`` (default now) on; changes in flight
        are still judged and rolled back (the first cycle from then on records
        a ``planning.frozen`` event)."""
        self._get(self._opt, "freeze_planning", self.now if at_s is None else at_s)
        self._driver.guard(self._driver.checkpoint)

    def freeze_autonomy(self, at_s: float | None = None) -> None:
        """The Orchestrator changes no agent's autonomy and grants nothing from
        ``at_s`` (default now) on (:meth:`Orchestrator.freeze
        <swarmopt.orchestrator.Orchestrator.freeze>`); approvals and the
        scenario's commands go on."""
        self._get(self._orch, "freeze", self.now if at_s is None else at_s)
        self._driver.guard(self._driver.checkpoint)

    def reseed(self, stream: int) -> None:
        """From now on every agent draws its tasks and message storms from
        replica stream ``stream`` of the run's seed instead of its own streams
        (:func:`swarmopt.sim.seeds.replica_seeds`): the same state continued in
        another random world, deterministic for a given seed and stream. Use
        it on a :meth:`fork`: the load test's ground truth reseeds a fork of a
        decision's state and runs both arms of the decision from it, to replicate
        the decision's effect over continuations (common random numbers within a
        replica, independent streams between replicas). A window whose arrivals
        are drawn already (up to the next window boundary) keeps its draws.
        Recorded as a ``run.reseeded`` event (``value``: the stream). Raises
        ValueError for ``stream`` < 1 (0 names the run's own streams)."""
        if not isinstance(stream, int) or stream < 1:
            raise ValueError(f"stream must be an int >= 1 (0 names the run's own streams), got {stream!r}")
        d = self._driver
        d.guard(lambda: d.backend.get([d.backend.call(h, "reseed", stream) for h, _ in d.groups]))
        self._out.events([{"t_s": self.now, "event": "run.reseeded", "value": float(stream)}])
        d.guard(d.checkpoint)

    # ------------------------------------------------------------------ fork and lifetime
    def fork(self) -> "Simulation":
        """An independent simulation at the same point that continues exactly
        as this one would (same tables when nothing is changed in either).
        On Ray the components' state goes through the object store to new
        actors in the same session. Observers are not carried over; nor is
        ``out_dir``: the fork keeps its rows in memory (with the chunks this
        one wrote out so far, read back)."""
        other = copy.copy(self)
        other.run_id = new_run_id(self.scenario.name, self.seed)
        other._sink = self._sink.fork()
        other._sink.run_id = other.run_id
        other.out_dir = None
        other._out = Fanout(other._sink)
        other._live = None
        other._driver = self._driver.fork(other._out)
        other._backend = other._driver.backend
        return other

    def actors(self) -> dict[str, Any]:
        """The components' handles by name (each agent group's name,
        ``optimizer``, ``orchestrator``): Ray actor handles on the Ray runtime
        (e.g. to ``ray.kill`` one and watch the run recover), the objects
        themselves on the local runtime."""
        return self._driver.components.named()

    def actor_of(self, agent: str) -> str:
        """The name (a key of :meth:`actors`) of the component hosting ``agent``: on Ray an agent shares its actor
        with others when the run has more agents than CPUs. Raises KeyError naming the allowed agent ids."""
        i = self._driver.host_of(agent)
        return group_name(i, self._driver.components.groups[i][1])

    def close(self) -> None:
        """Release the runtime (Ray actors; the local Ray if this run started it)."""
        self._backend.close()

    def __enter__(self) -> "Simulation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _opt(self) -> Any:
        return self._driver.opt

    def _orch(self) -> Any:
        return self._driver.components.orch

    def __repr__(self) -> str:
        return (f"Simulation({self.scenario.name!r}, seed={self.seed}, runtime={self.runtime!r}, "
                f"now={self.now:g}s of {self.scenario.duration_s:g}s{', done' if self.done else ''})")

    def _get(self, handle: Any | Callable[[], Any], method: str, *args: Any) -> Any:
        """Call a component (``handle`` or a function of the current components,
        which a restart replaces) and wait, recovering from a dead actor."""
        b = self._backend

        def call() -> Any:
            h = handle() if callable(handle) else handle
            return b.get([b.call(h, method, *args)])[0]

        return self._driver.guard(call)
