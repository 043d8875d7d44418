"""Command line: ``swarmopt run`` and ``swarmopt scenarios``.

A user mistake (bad file, bad field, bad option) prints one line naming the
file, the field and the allowed values and exits with code 2, no traceback.
"""

from __future__ import annotations

import sys
import threading
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
    serve: Optional[int] = typer.Option(None, "--serve", min=0, max=65535, metavar="PORT",
                                        help="Serve a live dashboard, /api/state and Prometheus /metrics on "
                                             "127.0.0.1:PORT during the run and after it until Ctrl-C "
                                             "(0: any free port)."),
) -> None:
    """Run a scenario: live narrative on stderr, run directory on disk, summary on stdout."""
    from swarmopt import logs
    from swarmopt.api import run_scenario
    from swarmopt.loader import load_scenario

    logs.configure(log_format.value)
    live = None
    try:
        sc = load_scenario(scenario)
        seed_v = sc.seed if seed is None else seed
        out_dir = out or Path("runs") / f"{sc.name}-seed{seed_v}"
        if serve is not None:
            live = _serve(sc, seed_v, duration, serve)
        res = run_scenario(sc, seed=seed_v, duration_s=duration, runtime=runtime.value, address=address,
                           out_dir=out_dir, realtime=realtime, narrate=True, observers=live.observers if live else ())
    except InputError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        typer.echo("interrupted; partial results kept in the run directory", err=True)
        raise typer.Exit(code=130)
    s = res.summary
    o = s["optimizations"]
    typer.echo(f"run directory: {res.out_dir}")
    typer.echo(f"optimizations: {o['attempted']} attempted, {o['kept']} kept, {o['rolled_back']} rolled back, "
               f"{o['reverted']} reverted, {o['restored']} restored, {o['rejected']} rejected")
    for agent, spans in s["agents"].items():
        parts = []
        for name in ("baseline", "before", "after"):
            if name in spans:
                v = spans[name]
                parts.append(f"{name} {v['response_time_ms_mean']:.0f}ms/{v['success_rate']:.0%}/"
                             f"{v['coordination_score']:.0%}")
        typer.echo(f"  {agent:24s} " + "  ".join(parts))
    typer.echo("  (response time mean / success rate / coordination score)")
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
