"""Command line: ``swarmopt run`` and ``swarmopt scenarios``.

A user mistake (bad file, bad field, bad option) prints one line naming the
file, the field and the allowed values and exits with code 2, no traceback.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from swarmopt.loader import SCENARIOS_DIR, InputError, list_scenarios

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
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="Scenario YAML file (see `swarmopt scenarios`)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Random seed (default: the scenario's)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<scenario>-seed<N>)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Simulated seconds (a multiple of window_s)."),
    address: Optional[str] = typer.Option(None, "--address", help="Join this Ray cluster instead of starting a local Ray."),
    runtime: Runtime = typer.Option(Runtime.ray, "--runtime", help="ray: actors; local: one process, same results."),
    realtime: Optional[float] = typer.Option(None, "--realtime", min=0.001,
                                             help="Pace simulated time at FACTOR x wall-clock speed (1 = real time)."),
    log_format: LogFormat = typer.Option(LogFormat.auto, "--log-format", help="Narrative format."),
    assignments: list[str] = typer.Option([], "--set", metavar="PATH=VALUE",
                                          help="Override a scenario field by dotted path (repeatable), e.g. "
                                               "optimizer.proactive=false or "
                                               "agents.market-hunter.knobs.max_concurrency=8."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No narrative: only the final summary."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Every event, including cycle.started and reports."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="Progress bar on stderr [default: on a terminal unless --quiet]."),
) -> None:
    """Run a scenario: live narrative on stderr, run directory on disk, summary on stdout."""
    from swarmopt import logs
    from swarmopt.api import run_scenario
    from swarmopt.loader import load_scenario
    from swarmopt.overrides import apply_overrides, parse_assignments
    from swarmopt.results import format_summary
    from swarmopt.simulation import prepare

    if quiet and verbose:
        _fail("--quiet and --verbose: choose one")
    logs.configure(log_format.value, "quiet" if quiet else "verbose" if verbose else "normal")
    if progress is None:
        progress = sys.stderr.isatty() and not quiet
    try:
        sc = prepare(apply_overrides(load_scenario(scenario), parse_assignments(assignments), "--set"), seed)
        out_dir = out or Path("runs") / f"{sc.name}-seed{sc.seed}"
        res = run_scenario(sc, duration_s=duration, runtime=runtime.value, address=address,
                           out_dir=out_dir, realtime=realtime, narrate=True, progress=progress)
    except InputError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        typer.echo("interrupted; partial results kept in the run directory", err=True)
        raise typer.Exit(code=130)
    typer.echo(f"run directory: {res.out_dir}")
    for line in format_summary(res.summary):
        typer.echo(line)


@app.command()
def scenarios(directory: Path = typer.Option(SCENARIOS_DIR, "--dir", help="Directory to list.")) -> None:
    """List the scenario files with their descriptions."""
    try:
        rows = list_scenarios(directory)
    except InputError as err:
        _fail(str(err))
    if not rows:
        typer.echo(f"no scenarios in {directory}")
    for path, name, desc in rows:
        typer.echo(f"{path}\n    {name}: {' '.join(desc.split())}")


def main() -> None:
    """Entry point for ``python -m swarmopt``."""
    app(prog_name="swarmopt")


if __name__ == "__main__":
    sys.exit(main())
