"""Python API: :func:`run_scenario`."""

from __future__ import annotations

import time
from pathlib import Path

from swarmopt.guard import check_budget, prepare_out_dir
from swarmopt.loader import load_scenario, with_overrides
from swarmopt.results import Collector, RunResult, write_run
from swarmopt.runtime.driver import drive
from swarmopt.schema import Scenario


def _pacer(factor: float):
    """Wall-clock pacing: simulated second s is reached no sooner than s / factor
    real seconds after the start. Only sleeps; never changes results."""
    t_start = time.monotonic()

    def pace(t_sim: float) -> None:
        delay = t_start + t_sim / factor - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    return pace


def run_scenario(scenario: str | Path | Scenario, seed: int | None = None, *, duration_s: float | None = None,
                 runtime: str = "ray", address: str | None = None, out_dir: str | Path | None = None,
                 realtime: float | None = None, narrate: bool = False, max_tasks: int | None = None,
                 max_memory_mb: float | None = None, overwrite: bool = False) -> RunResult:
    """Run a scenario and return its :class:`~swarmopt.results.RunResult`.

    ``scenario``: a YAML path or a :class:`~swarmopt.schema.Scenario`. ``seed``
    overrides the scenario's seed; ``duration_s`` its duration (a multiple of
    its window). ``runtime``: ``"ray"`` (actors; ``address`` joins a cluster,
    default starts a local Ray) or ``"local"`` (one process; same results).
    ``out_dir`` writes the run directory — also when the run fails half way,
    with ``status: failed`` in ``summary.json``. ``realtime``: pace simulated
    time at ``realtime`` x wall-clock speed. ``narrate``: log the live narrative.
    Before anything starts, the run is refused if its estimate
    (:func:`swarmopt.guard.check_budget`) exceeds ``max_tasks`` decisions or
    ``max_memory_mb`` MiB (defaults: 10 million, 2,048 MiB), or if ``out_dir``
    is an existing file or a non-empty directory that is not a run directory,
    unless ``overwrite`` (:func:`swarmopt.guard.check_out_dir`).

    Raises :class:`swarmopt.loader.InputError` for invalid input or a refused
    run, and ValueError for an unknown runtime.
    """
    sc = load_scenario(scenario) if not isinstance(scenario, Scenario) else scenario
    sc = with_overrides(sc, seed, duration_s)
    check_budget(sc, runtime, max_tasks, max_memory_mb)
    if out_dir is not None:
        prepare_out_dir(out_dir, overwrite)
    if runtime == "ray":
        from swarmopt.runtime.ray_backend import RayBackend

        backend = RayBackend(address)
    elif runtime == "local":
        from swarmopt.runtime.local import LocalBackend

        backend = LocalBackend()
    else:
        raise ValueError(f"runtime must be 'ray' or 'local', got {runtime!r}")
    sink = Collector(sc, narrate_events=narrate)
    try:
        drive(sc, sc.seed, backend, sink, pace=_pacer(realtime) if realtime else None)
    except BaseException as exc:
        if out_dir is not None:
            write_run(sink.result(sc.seed, runtime), out_dir, status="failed", error=repr(exc))
        raise
    finally:
        backend.close()
    res = sink.result(sc.seed, runtime)
    if out_dir is not None:
        write_run(res, out_dir)
    return res
