"""Python API: :func:`run_scenario`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from swarmopt.loader import InputError, describe, load_scenario
from swarmopt.plugins import Plugins, check
from swarmopt.report import write_run
from swarmopt.results import Collector, RunResult
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
                 realtime: float | None = None, narrate: bool = False, policy: Any = None,
                 rules: Sequence[Callable] = (), remedies: Sequence[Callable] = ()) -> RunResult:
    """Run a scenario and return its :class:`~swarmopt.results.RunResult`.

    ``scenario``: a YAML path or a :class:`~swarmopt.schema.Scenario`. ``seed``
    overrides the scenario's seed; ``duration_s`` its duration (a multiple of
    its window). ``runtime``: ``"ray"`` (actors; ``address`` joins a cluster,
    default starts a local Ray) or ``"local"`` (one process; same results).
    ``out_dir`` writes the run directory — also when the run fails half way,
    with ``status: failed`` in ``summary.json``. ``realtime``: pace simulated
    time at ``realtime`` x wall-clock speed. ``narrate``: log the live narrative.
    ``policy``, ``rules``, ``remedies``: plug-ins as Python objects
    (:mod:`swarmopt.plugins`); the policy replaces the scenario's, rules and
    remedies add to its own.

    Raises :class:`swarmopt.loader.InputError` for invalid input and ValueError
    for an unknown runtime.
    """
    sc = load_scenario(scenario) if not isinstance(scenario, Scenario) else scenario
    update = {}
    if seed is not None:
        update["seed"] = seed
    if duration_s is not None:
        update["duration_s"] = duration_s
    if update:
        try:
            sc = Scenario.model_validate(sc.model_dump() | update)
        except ValidationError as err:
            raise InputError(describe(err, "options --seed/--duration")) from None
    plugins = Plugins(policy, tuple(rules), tuple(remedies))
    check(sc.optimizer, plugins, "run_scenario")
    if runtime == "ray":
        from swarmopt.runtime.ray_backend import RayBackend

        backend = RayBackend(address, plugins=plugins)
    elif runtime == "local":
        from swarmopt.runtime.local import LocalBackend

        backend = LocalBackend(plugins)
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
