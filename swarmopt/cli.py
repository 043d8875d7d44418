"""Command line: ``swarmopt run``, ``swarmopt scenarios`` and ``swarmopt loadtest``.

A user mistake (bad file, bad field, bad option) prints one line naming the
file, the field and the allowed values and exits with code 2, no traceback.
So does a run refused before it starts: estimated over the ``--max-tasks`` or
``--max-memory`` budget, or an ``--out`` that would overwrite something that is
not a run directory (see :mod:`swarmopt.guard`).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from swarmopt.guard import DEFAULT_MAX_MEMORY_MB, DEFAULT_MAX_TASKS
from swarmopt.loader import SCENARIOS_DIR, InputError, list_scenarios

MAX_LINE = 300  # characters of an error line

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Simulate an autonomous multi-agent system and optimize it while it runs.")


class Runtime(str, Enum):
    ray = "ray"
    local = "local"


class LogFormat(str, Enum):
    auto = "auto"
    console = "console"
    plain = "plain"
    json = "json"


def _fail(message: str) -> None:
    """Print ``message`` as one line of at most 300 characters and exit with code 2."""
    line = "error: " + " ".join(message.split())
    typer.echo(line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "...", err=True)
    raise typer.Exit(code=2)


def interrupted_note(out_dir: Path | None, started: float) -> str:
    """What a Ctrl-C left behind: the run directory this run wrote (with the
    status it recorded), or that nothing was written."""
    summary = out_dir / "summary.json" if out_dir is not None else None
    if summary is None or not summary.is_file() or summary.stat().st_mtime < started:
        return "no run directory was written"
    status = json.loads(summary.read_text()).get("status", "unknown")
    if status == "completed":
        return f"the run had finished and is kept in {out_dir} (status completed)"
    return f"what ran is kept in {out_dir} (status {status})"


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file (see `swarmopt scenarios`).")],
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Random seed (default: the scenario's).")] = None,
    out: Annotated[Optional[Path],
                   typer.Option("--out", help="Run directory (default: runs/<scenario>-seed<N>).")] = None,
    duration: Annotated[Optional[float],
                        typer.Option("--duration", help="Simulated seconds (a multiple of window_s).")] = None,
    address: Annotated[Optional[str],
                       typer.Option("--address", help="Join this Ray cluster instead of starting a local Ray.")] = None,
    runtime: Annotated[Runtime,
                       typer.Option("--runtime", help="ray: actors; local: one process, same results.")] = Runtime.ray,
    actor_groups: Annotated[Optional[int], typer.Option(
        "--actor-groups", min=1, help="Ray: agent-group actors (default one per agent, up to 16); fewer run faster "
        "where agents outnumber the cores, same results.")] = None,
    realtime: Annotated[Optional[float], typer.Option(
        "--realtime", min=0.001, help="Pace simulated time at FACTOR x wall-clock speed (1 = real time).")] = None,
    log_format: Annotated[LogFormat, typer.Option("--log-format", help="Narrative format.")] = LogFormat.auto,
    serve: Annotated[Optional[int], typer.Option(
        "--serve", min=0, max=65535, metavar="PORT",
        help="Serve a live dashboard, /api/state and Prometheus /metrics on 127.0.0.1:PORT during the run and "
             "after it until Ctrl-C (0: any free port).")] = None,
    assignments: Annotated[list[str], typer.Option(
        "--set", metavar="PATH=VALUE", help="Override a scenario field by dotted path (repeatable), e.g. "
        "optimizer.proactive=false or agents.market-hunter.knobs.max_concurrency=8.")] = [],  # noqa: B006
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No narrative: only the final summary.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Every event, including cycle.started and the reports.")] = False,
    progress: Annotated[Optional[bool], typer.Option(
        "--progress/--no-progress", help="Progress bar on stderr [default: on a terminal unless --quiet].")] = None,
    max_tasks: Annotated[int, typer.Option(
        "--max-tasks", min=1, help="Refuse a run estimated to simulate more decisions than this.")] = DEFAULT_MAX_TASKS,
    max_memory: Annotated[float, typer.Option(
        "--max-memory", min=1, help="Refuse a run whose estimated peak memory (MiB) is above this.")
    ] = DEFAULT_MAX_MEMORY_MB,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Write into --out even if it is a file or a non-empty non-run directory.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Validate the scenario and options, print the estimate, and stop.")] = False,
) -> None:
    """Run a scenario: live narrative on stderr, run directory on disk, summary on stdout."""
    from swarmopt import logs
    from swarmopt.api import run_scenario
    from swarmopt.guard import check_budget, check_out_dir
    from swarmopt.loader import flat, load_scenario
    from swarmopt.overrides import apply_overrides, parse_assignments
    from swarmopt.results import format_summary
    from swarmopt.simulation import prepare

    if quiet and verbose:
        _fail("--quiet and --verbose: choose one")
    logs.configure(log_format.value, "quiet" if quiet else "verbose" if verbose else "normal")
    if progress is None:
        progress = sys.stderr.isatty() and not quiet
    started, out_dir = time.time(), out
    live = None
    try:
        if realtime is not None and not math.isfinite(realtime):
            raise InputError(f"--realtime: {realtime}; allowed: a finite factor >= 0.001")
        if not math.isfinite(max_memory):
            raise InputError(f"--max-memory: {max_memory}; allowed: a finite number of MiB >= 1")
        sc = prepare(apply_overrides(load_scenario(scenario), parse_assignments(assignments), "--set"), seed, duration)
        est = check_budget(sc, runtime.value, max_tasks, max_memory, source=flat(scenario), streamed=True)
        out_dir = out or Path("runs") / f"{sc.name}-seed{sc.seed}"
        check_out_dir(out_dir, overwrite)
        if dry_run:
            typer.echo(f"valid: {flat(scenario)}, seed {sc.seed}, {sc.duration_s:g} s; estimate: {est}")
            typer.echo(f"run directory: {out_dir}")
            return
        if serve is not None:
            live = _serve(sc, None, None, serve)  # sc has the options applied
        res = run_scenario(sc, runtime=runtime.value, address=address, actor_groups=actor_groups, out_dir=out_dir,
                           realtime=realtime, narrate=True, progress=progress, observers=live.observers if live else (),
                           max_tasks=max_tasks, max_memory_mb=max_memory, overwrite=overwrite)
    except InputError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        typer.echo(f"interrupted; {interrupted_note(out_dir, started)}", err=True)
        raise typer.Exit(code=130) from None
    typer.echo(f"run directory: {res.out_dir}")
    for line in format_summary(res.summary):
        typer.echo(line)
    if live is not None:
        typer.echo(f"run finished; still serving {live.url} (Ctrl-C to stop)", err=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            live.close()


def _serve(sc, seed: int, duration: float | None, port: int):
    """Start the live server for the run of ``sc`` (exit code 2 when the port is taken)."""
    from swarmopt.live.server import LiveServer
    from swarmopt.simulation import prepare

    try:
        live = LiveServer(prepare(sc, seed, duration), port)
    except OSError as err:
        _fail(f"--serve: cannot listen on 127.0.0.1:{port}: {err.strerror or err}")
    typer.echo(f"live dashboard: {live.url}  (JSON: {live.url}api/state, Prometheus: {live.url}metrics)", err=True)
    return live


@app.command()
def scenarios(directory: Annotated[Path, typer.Option("--dir", help="Directory to list.")] = SCENARIOS_DIR) -> None:
    """List the scenario files with their descriptions."""
    try:
        rows = list_scenarios(directory)
    except InputError as err:
        _fail(str(err))
    if not rows:
        typer.echo(f"no scenarios in {directory}")
    for path, name, desc in rows:
        typer.echo(f"{path}\n    {name}: {' '.join(desc.split())}")


@app.command()
def loadtest(
    spec: Annotated[Path, typer.Argument(help="Load-test spec YAML (e.g. scenarios/loadtests/policies.yaml).")],
    out: Annotated[Optional[Path],
                   typer.Option("--out", help="Output directory (default: loadtests/<spec name>).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join this Ray cluster, not a local Ray.")] = None,
    workers: Annotated[Optional[int],
                       typer.Option("--workers", min=1, help="Runs at once (default: the CPUs).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Run only the runs the output directory lacks.")] = False,
    fail_if: Annotated[Optional[list[str]], typer.Option(
        "--fail-if", help="Exit 1 when this expression over the summary holds, "
                          "e.g. 'thompson.false_rollback_rate > 0.10' (repeatable).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The spec's quick form: 1 seed, short runs, tiny oracle.")
                     ] = False,
) -> None:
    """Load-test policies x scenarios x seeds on Ray: tables, report.html, exit 1 on a --fail-if that holds."""
    from swarmopt.loadtest.api import loadtest as run_loadtest
    from swarmopt.loadtest.cli import out_dir, print_result

    try:
        directory = out_dir(spec, out)
    except InputError as err:
        _fail(str(err))
    try:
        res = run_loadtest(spec, out_dir=directory, address=address, workers=workers, resume=resume, quick=quick,
                           fail_if=fail_if or [])
    except InputError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        typer.echo(f"interrupted; the finished runs are kept in {directory}: --resume continues", err=True)
        raise typer.Exit(code=130) from None
    print_result(res)
    if res.failed_gates:
        for expr in res.failed_gates:
            typer.echo(f"fail-if holds: {expr}", err=True)
        raise typer.Exit(code=1)


def main() -> None:
    """Entry point for ``python -m swarmopt``."""
    app(prog_name="swarmopt")


if __name__ == "__main__":
    sys.exit(main())
