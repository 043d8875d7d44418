"""Python API: :func:`run_scenario`, a thin wrapper over :class:`~swarmopt.simulation.Simulation`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swarmopt.results import RunResult, write_run
from swarmopt.schema import Scenario
from swarmopt.simulation import Simulation


def run_scenario(scenario: str | Path | Scenario, seed: int | None = None, *, duration_s: float | None = None,
                 runtime: str = "ray", address: str | None = None, out_dir: str | Path | None = None,
                 realtime: float | None = None, narrate: bool = False, progress: bool | None = None,
                 overrides: Mapping[str, Any] | None = None) -> RunResult:
    """Run a scenario to its end and return its :class:`~swarmopt.results.RunResult`.

    ``scenario``: a YAML path or a :class:`~swarmopt.schema.Scenario`. ``seed``
    overrides the scenario's seed; ``duration_s`` its duration (a multiple of
    its window). ``runtime``: ``"ray"`` (actors; ``address`` joins a cluster,
    default starts a local Ray) or ``"local"`` (one process; same results).
    ``out_dir`` writes the run directory — also when the run fails half way,
    with ``status: failed`` in ``summary.json``. ``realtime``: pace simulated
    time at ``realtime`` x wall-clock speed. ``narrate``: log the live narrative
    (:mod:`swarmopt.logs`). ``progress``: a progress bar with simulated time,
    speed and ETA (None: on in Jupyter, off elsewhere). ``overrides``:
    ``{dotted path: value}`` set on the scenario before the run, e.g.
    ``{"optimizer.proactive": False, "agents.market-hunter.knobs.max_concurrency": 8}``
    (:mod:`swarmopt.overrides`).

    Raises :class:`swarmopt.loader.InputError` for invalid input and ValueError
    for an unknown runtime.
    """
    with Simulation(scenario, seed, runtime=runtime, address=address, duration_s=duration_s,
                    narrate=narrate, overrides=overrides) as sim:
        try:
            sim.run(realtime=realtime, progress=progress)
        except BaseException as exc:
            if out_dir is not None:
                sim.write(out_dir, status="failed", error=repr(exc))
            raise
        res = sim.result()
    if out_dir is not None:
        write_run(res, out_dir)
    return res
