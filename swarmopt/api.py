"""Python API: :func:`run_scenario`, a thin wrapper over :class:`~swarmopt.simulation.Simulation`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from swarmopt.guard import check_budget
from swarmopt.observe import Observer
from swarmopt.results import RunResult
from swarmopt.schema import Scenario
from swarmopt.simulation import Simulation, prepare


def run_scenario(scenario: str | Path | Scenario, seed: int | None = None, *, duration_s: float | None = None,
                 runtime: str = "ray", address: str | None = None, out_dir: str | Path | None = None,
                 realtime: float | None = None, narrate: bool = False, progress: bool | None = None,
                 overrides: Mapping[str, Any] | None = None, policy: Any = None, rules: Sequence[Callable] = (),
                 remedies: Sequence[Callable] = (), observers: Sequence[Observer] = (), max_tasks: int | None = None,
                 max_memory_mb: float | None = None, overwrite: bool = False,
                 actor_groups: int | None = None) -> RunResult:
    """Run a scenario to its end and return its :class:`~swarmopt.results.RunResult`.

    ``scenario``: a YAML path or a :class:`~swarmopt.schema.Scenario`. ``seed``
    overrides the scenario's seed; ``duration_s`` its duration (a multiple of
    its window). ``runtime``: ``"ray"`` (actors; ``address`` joins a cluster,
    default starts a local Ray; ``actor_groups``: agent-group actors, see
    :class:`~swarmopt.simulation.Simulation`) or ``"local"`` (one process; same results).
    ``out_dir`` writes the run directory (each file atomically) before the
    runtime shuts down — also when the run fails or is interrupted half way,
    with ``status: failed`` or ``interrupted`` in ``summary.json``; an
    interruption while the runtime starts writes nothing. With ``out_dir`` the
    rows are written there in chunks as the run goes and memory stays flat
    (see :class:`~swarmopt.simulation.Simulation`); the result's tables are
    read from the run directory when asked for. ``realtime``: pace simulated
    time at ``realtime`` x wall-clock speed. ``narrate``: log the live narrative
    (:mod:`swarmopt.logs`). ``progress``: a progress bar with simulated time,
    speed and ETA (None: on in Jupyter, off elsewhere). ``overrides``:
    ``{dotted path: value}`` set on the scenario before the run, e.g.
    ``{"optimizer.proactive": False, "agents.market-hunter.knobs.max_concurrency": 8}``
    (:mod:`swarmopt.overrides`).
    ``policy``, ``rules``, ``remedies``: plug-ins as Python objects
    (:mod:`swarmopt.plugins`; a policy given as a string is a built-in's name or
    an import path); the policy replaces the scenario's, rules and
    remedies add to its own.
    ``observers`` receive what the run produces as it goes (:mod:`swarmopt.observe`).
    Before anything starts, the run is refused if its estimate
    (:func:`swarmopt.guard.check_budget`) exceeds ``max_tasks`` decisions or
    ``max_memory_mb`` MiB (defaults: 10 million, 4,096 MiB), or if ``out_dir``
    is an existing file or a non-empty directory that is not a run directory,
    unless ``overwrite`` (:func:`swarmopt.guard.check_out_dir`).

    Raises :class:`swarmopt.loader.InputError` for invalid input or a refused
    run, and ValueError for an unknown runtime or a bad ``actor_groups``.
    """
    sc = prepare(scenario, seed, duration_s, overrides)
    check_budget(sc, runtime, max_tasks, max_memory_mb, streamed=out_dir is not None)
    sim = Simulation(sc, runtime=runtime, address=address, narrate=narrate, policy=policy, rules=rules,
                     remedies=remedies, observers=observers, out_dir=out_dir, overwrite=overwrite,
                     actor_groups=actor_groups)
    try:  # from here on, whatever happens, the run directory says what ran
        try:
            sim.run(realtime=realtime, progress=progress)
        except BaseException as exc:
            if out_dir is not None:
                stopped = isinstance(exc, KeyboardInterrupt)
                sim._write(sim.result(), None, "interrupted" if stopped else "failed",
                           f"interrupted at {sim.now:g}s" if stopped else repr(exc), final=True)
            raise
        res = sim.result()
        if out_dir is not None:
            sim._write(res, None, "completed", None, final=True)
    finally:
        sim.close()  # a Ctrl-C while Ray shuts down cannot lose the run: it is written already
    return res
