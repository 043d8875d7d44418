"""Checks made before a run starts: its estimated cost against a budget, and the run directory.

:func:`estimate` predicts, from the scenario alone, what a run will simulate and
hold in memory:

* decisions (tasks): per agent, ``base_rate_per_s`` x the mean of the load
  shape x load-surge faults over the run (the engine's own
  :meth:`~swarmopt.sim.environment.Environment.rate_multiplier`, on a grid of
  up to 20,000 points) x ``duration_s``;
* messages: decisions x the summed probability of the agent's downstream
  links, plus coordination-storm messages (``messages_per_s`` x active time);
* metric rows: windows x agents; ticks: ``duration_s / tick_s``;
* peak memory: a fixed base plus per-item costs, each measured (see
  :class:`Costs`): every agent's open window and block of random draws at its
  peak rate, the vectorized pass of the busiest agent over one tick (or
  window, if longer), the per-task samples the canary judge pools and the
  optimizer keeps, every message as if it were still waiting in an inbox (an
  overloaded receiver keeps them all), every metric row (or, for a run
  streamed to a run directory, those it holds: :func:`held_rows`), every
  cached key, and, on Ray, one interpreter per actor plus Ray's own processes.

The memory figure is an estimate meant to err high: decisions are Poisson and
messages are counted as if none were ever handled. :func:`check_budget`
refuses a run over ``max_tasks`` decisions or ``max_memory_mb`` MiB with an
:class:`~swarmopt.loader.InputError` (exit code 2 on the command line) that
states the estimate and the option that raises the budget.

:func:`check_out_dir` refuses to write a run into an existing file or into a
non-empty directory that is not a swarmopt run directory (one with
``summary.json``) unless ``overwrite`` is set.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swarmopt.loader import InputError, flat
from swarmopt.optimizer.history import kept_windows
from swarmopt.runtime.group import MAX_GROUPS, placement
from swarmopt.schema import CoordinationStormFault, LoadSurgeFault, Scenario
from swarmopt.sim.environment import Environment
from swarmopt.spool import CHUNK_ROWS

#: Default budgets: about a minute or two of local simulation, and the 4 GiB the benchmarks allow 500 agents.
DEFAULT_MAX_TASKS = 10_000_000
DEFAULT_MAX_MEMORY_MB = 4_096

_GRID_POINTS = 20_000
_MIB = 2**20


@dataclass(frozen=True)
class Costs:
    """Memory cost per item (bytes; bases in MiB), fitted to the peak RSS of
    local runs (PSS summed over processes for Ray) of scenarios that stress one
    item each, on Python 3.11 / numpy 2 / Ray 2.60, rounded up
    (``tests/test_guard.py`` re-measures the shipped scenario and, marked
    slow, a very busy agent, a message flood and 2,000 agents)."""

    base_mib: float = 260.0            # interpreter, numpy/pandas/scipy/pyarrow/matplotlib, a small run written out
    ray_base_mib: float = 300.0        # GCS, raylet and agents of a local Ray
    actor_mib: float = 100.0           # one Ray actor process (interpreter + swarmopt)
    window_task: float = 200.0         # per decision of each agent's open window (block of draws + columns)
    window_task_tool: float = 200.0    # the same, per tool of the agent
    span_task: float = 150.0           # per decision of the busiest agent's vectorized pass over a tick
    span_task_tool: float = 150.0      # the same, per tool of the agent
    judged_task: float = 200.0         # per decision the canary judge pools (before + after spans of one agent)
    kept_sample: float = 12.0          # per decision whose sample the optimizer keeps for a judgement
    message: float = 200.0             # per message waiting in an inbox
    row: float = 3_000.0               # per metrics row (dict, optimizer history, final table)
    cached_key: float = 16.0           # per key of a tool's keyspace (Zipf CDF + cache expiry)
    agent: float = 170_000.0           # per agent (models, engine state incl. rate limits, caches, routes, tables)


COSTS = Costs()


@dataclass(frozen=True)
class Estimate:
    """What a run of a scenario is expected to simulate and hold.

    ``tasks`` decisions, ``messages`` coordination messages, ``rows`` metric
    rows, ``ticks`` driver ticks, ``agents`` agents, ``peak_mb`` peak memory in
    MiB (summed over processes on Ray); ``peak_rate_per_s`` the busiest agent's
    peak arrival rate.
    """

    agents: int
    ticks: int
    tasks: int
    messages: int
    rows: int
    peak_rate_per_s: float
    peak_mb: float

    def __str__(self) -> str:
        return (f"{self.tasks:,} decisions, {self.messages:,} messages, {self.rows:,} metric rows "
                f"({self.agents:,} agents, {self.ticks:,} ticks); peak memory about {self.peak_mb:,.0f} MiB")


def _rate_multipliers(sc: Scenario) -> dict[str | None, tuple[float, float]]:
    """(mean, peak) over the run of the arrival-rate multiplier (load shape x
    load surges), per agent id with load surges, under ``None`` for the others."""
    duration = sc.duration_s
    n = int(min(_GRID_POINTS, max(256, 8 * round(duration / sc.window_s))))
    grid = (np.arange(n) + 0.5) * (duration / n)  # midpoint rule for the mean
    edges = {0.0, sc.load.start_s, sc.load.end_s}
    for f in sc.faults:
        edges |= {f.at_s, f.at_s + (f.duration_s or 0.0)}
    probe = np.array(sorted(e for e in edges if 0.0 <= e < duration))  # short surges fall between grid points
    surges: dict[str | None, list[LoadSurgeFault]] = defaultdict(list, {None: []})
    for f in sc.faults:
        if isinstance(f, LoadSurgeFault):
            surges[f.target].append(f)
    seen: dict[tuple, tuple[float, float]] = {}  # the replicas of a population share their surges
    out = {}
    for target, faults in surges.items():
        key = tuple((f.at_s, f.duration_s, f.factor) for f in faults)
        if key not in seen:
            env = Environment(sc.load, faults, duration)
            m = env.rate_multiplier(grid)
            seen[key] = (float(m.mean()), float(max(m.max(), env.rate_multiplier(probe).max())))
        out[target] = seen[key]
    return out


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.3g}"


def held_rows(sc: Scenario, rows: int) -> int:
    """Metrics rows a run streamed to a run directory holds in memory at most:
    the optimizer's history of every agent, one chunk not yet written out and
    one optimizer cycle's rows (:mod:`swarmopt.spool`), or all ``rows`` if fewer."""
    per_cycle = math.ceil(sc.optimizer.cycle_s / sc.window_s) * len(sc.agents)
    return min(rows, 2 * kept_windows(sc.optimizer.long_windows) * len(sc.agents) + CHUNK_ROWS + per_cycle)


def estimate(sc: Scenario, runtime: str = "local", streamed: bool = False) -> Estimate:
    """The :class:`Estimate` of running ``sc`` on ``runtime`` (``"local"`` or
    ``"ray"``); ``streamed``: to a run directory, holding only
    :func:`held_rows` metrics rows in memory."""
    duration, window, c = sc.duration_s, sc.window_s, COSTS
    multipliers = _rate_multipliers(sc)
    storm = defaultdict(float)  # storm messages per agent
    for f in sc.faults:
        if isinstance(f, CoordinationStormFault):
            end = duration if f.duration_s is None else min(duration, f.at_s + f.duration_s)
            storm[f.target] += f.messages_per_s * max(0.0, end - f.at_s)
    tasks = messages = window_tasks = window_bytes = span_bytes = keys = 0.0
    peak_rate = 0.0
    for a in sc.agents:
        mean, peak = multipliers.get(a.id, multipliers[None])
        n = a.base_rate_per_s * mean * duration
        tasks += n
        messages += n * sum(link.probability for link in a.downstream) + storm[a.id]
        rate, tools = a.base_rate_per_s * peak, len(a.tools)
        window_tasks += rate * window
        window_bytes += rate * window * (c.window_task + tools * c.window_task_tool)
        span_bytes = max(span_bytes, rate * max(sc.tick_s, window) * (c.span_task + tools * c.span_task_tool))
        keys += sum(t.keyspace for t in a.tools)
        peak_rate = max(peak_rate, rate)
    n_agents = len(sc.agents)
    rows = round(duration / window) * n_agents
    opt = sc.optimizer
    judged = 2 * opt.measure_windows * window  # seconds of one agent's decisions in one judgement
    kept = (2 * opt.measure_windows + opt.cycle_s / window) * window_tasks
    held = held_rows(sc, rows) if streamed else rows
    work = (window_bytes + span_bytes + peak_rate * judged * c.judged_task + kept * c.kept_sample
            + messages * c.message + held * c.row + keys * c.cached_key + n_agents * c.agent)
    base = c.base_mib
    if runtime == "ray":
        actors = len(placement(sc.agents, MAX_GROUPS)) + 2  # + optimizer, orchestrator; fewer with actor_groups
        base += c.ray_base_mib + actors * c.actor_mib
    return Estimate(agents=n_agents, ticks=math.ceil(duration / sc.tick_s - 1e-9), tasks=round(tasks),
                    messages=round(messages), rows=rows, peak_rate_per_s=peak_rate, peak_mb=base + work / _MIB)


def check_budget(sc: Scenario, runtime: str = "local", max_tasks: int | None = None,
                 max_memory_mb: float | None = None, source: str | None = None, streamed: bool = False) -> Estimate:
    """:func:`estimate` ``sc`` and refuse it over budget.

    ``max_tasks`` (default :data:`DEFAULT_MAX_TASKS`) caps the decisions,
    ``max_memory_mb`` (default :data:`DEFAULT_MAX_MEMORY_MB`) the estimated peak
    memory in MiB. Returns the estimate. Raises :class:`InputError` naming the
    estimate and the option (``--max-tasks`` / ``--max-memory``, or the keyword
    argument of :func:`~swarmopt.api.run_scenario`) that raises the budget,
    and ``source`` (the scenario file; default: the scenario's name).
    """
    max_tasks = DEFAULT_MAX_TASKS if max_tasks is None else max_tasks
    max_memory_mb = DEFAULT_MAX_MEMORY_MB if max_memory_mb is None else max_memory_mb
    est = estimate(sc, runtime, streamed)
    source = source or f"scenario {sc.name}"
    if est.tasks > max_tasks:
        raise InputError(f"{source}: about {est.tasks:,} decisions ({est.agents:,} agents, peak "
                         f"{_rate(est.peak_rate_per_s)}/s per agent); allowed: at most {max_tasks:,} "
                         "(raise it with --max-tasks / max_tasks=)")
    if est.peak_mb > max_memory_mb:
        raise InputError(f"{source}: peak memory about {est.peak_mb:,.0f} MiB ({est.tasks:,} decisions, "
                         f"{est.messages:,} messages, {est.rows:,} rows); allowed: at most {max_memory_mb:,.0f} MiB "
                         "(raise it with --max-memory / max_memory_mb=)")
    return est


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Refuse ``out_dir`` as a run directory if it is an existing file or a
    non-empty directory without ``summary.json``, unless ``overwrite``.

    A missing or empty directory, or an earlier run's directory, is fine (the
    run replaces its files). Returns the path. Raises :class:`InputError`.
    """
    out = Path(out_dir)
    shown = flat(out)
    try:
        if out.is_dir():
            if overwrite or (out / "summary.json").is_file() or next(out.iterdir(), None) is None:
                return out
            raise InputError(f"--out {shown}: a non-empty directory that is not a swarmopt run directory "
                             "(no summary.json); allowed: a new or empty directory, an earlier run's "
                             "directory, or --overwrite")
        if (out.exists() or out.is_symlink()) and not overwrite:
            raise InputError(f"--out {shown}: an existing file; allowed: a new or empty directory, "
                             "an earlier run's directory, or --overwrite (replaces the file)")
    except OSError as exc:
        raise InputError(f"--out {shown}: cannot use it ({flat(exc.strerror or exc, 60)})") from None
    return out


def prepare_out_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """:func:`check_out_dir`, then, with ``overwrite``, remove an existing file
    of that name so the run directory can be created. Raises :class:`InputError`."""
    out = check_out_dir(out_dir, overwrite)
    try:
        if overwrite and not out.is_dir() and (out.exists() or out.is_symlink()):
            out.unlink()
    except OSError as exc:
        raise InputError(f"--out {flat(out)}: cannot replace it ({flat(exc.strerror or exc, 60)})") from None
    return out
