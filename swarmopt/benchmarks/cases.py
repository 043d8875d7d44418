"""The benchmark cases. Each runs in its own fresh process (see
:func:`swarmopt.benchmarks.run`) and returns its raw measurements as a dict.

All times are wall-clock seconds from ``time.perf_counter`` and exclude the
interpreter start and module imports; every scenario has a fixed seed.
"""

from __future__ import annotations

import math
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from swarmopt.api import run_scenario
from swarmopt.benchmarks.loadtest_case import loadtest_scaling
from swarmopt.benchmarks.queues import (
    Queue,
    agreement,
    engine_queue,
    engine_scenario,
    mean_wait,
    plain_queue,
    simpy_queue,
)
from swarmopt.loader import SCENARIOS_DIR, build_scenario
from swarmopt.queueing import mmc_mean_wait
from swarmopt.results import Collector
from swarmopt.runtime.components import make_optimizer
from swarmopt.runtime.driver import drive
from swarmopt.runtime.local import LocalBackend
from swarmopt.schema import Scenario

SCENARIO = SCENARIOS_DIR / "market_hunter_degradation.yaml"
SEED = 1


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one benchmark run (full or ``--quick``)."""

    day_s: float = 86_400.0            # simulated seconds of the "one day" runs
    day_tick_s: float = 300.0         # one tick per optimizer cycle: results do not depend on the tick
    ray_ticks_duration_s: float = 1_800.0  # simulated seconds of the tick-rate run
    ray_ticks_tick_s: float = 1.0
    optimizer_agents: tuple[int, ...] = (5, 100, 1000)
    optimizer_reps: tuple[int, ...] = (21, 11, 7)
    scale_count: int = 100             # replicas of each of the five profiles
    scale_s: float = 3_600.0
    dense_factor: float = 100.0        # arrival rate and workers x this in the dense run
    dense_s: float = 600.0
    scale_tick_s: float = 300.0
    queue_dense_s: float = 12_000.0    # simulated seconds of the dense reference queue (~600,000 tasks)
    queue_sparse_s: float = 120_000.0  # of the sparse one (~240,000 tasks)
    queue_reps: int = 3                # interleaved timed runs of each implementation; the median counts
    loadtest_seeds: int = 8            # seeds of the load-test case (x 2 policies = runs)
    loadtest_s: float = 7_200.0        # simulated seconds of each of its runs
    share_count: int = 200             # replicas of each profile in the optimizer-share run (1,000 agents)
    share_s: float = 3_600.0
    window_cost_counts: tuple[int, ...] = (1, 20, 100)  # replicas of each profile: 5, 100 and 500 agents
    window_cost_s: float = 3_600.0
    window_cost_reps: tuple[int, ...] = (5, 1, 1)
    stream_short_s: float = 86_400.0   # simulated seconds of the streamed runs whose peak memory is compared:
    stream_long_s: float = 604_800.0   # a day and a week


FULL = Sizes()
QUICK = Sizes(day_s=3_600.0, ray_ticks_duration_s=120.0, optimizer_agents=(5, 10, 20),
              optimizer_reps=(3, 3, 3), scale_count=5, scale_s=600.0, dense_factor=10.0, dense_s=120.0,
              queue_dense_s=600.0, queue_sparse_s=6_000.0, queue_reps=1, loadtest_seeds=2, loadtest_s=1_800.0,
              share_count=4, share_s=900.0, window_cost_counts=(1, 2, 4), window_cost_s=900.0,
              window_cost_reps=(1, 1, 1), stream_short_s=7_200.0, stream_long_s=28_800.0)


def scenario(count: int = 1, duration_s: float = 3_600.0, tick_s: float = 60.0,
             faults_at_s: float | None = None, path: Path = SCENARIO) -> Scenario:
    """The five-agent scenario at ``path`` with ``count`` replicas of every
    profile, ``duration_s`` simulated seconds in ticks of ``tick_s`` seconds, and
    its faults moved to ``faults_at_s`` seconds if given."""
    data = yaml.safe_load(path.read_text())
    data["agents"] = [dict(a if isinstance(a, dict) else {"profile": a}, count=count) for a in data["agents"]]
    data["duration_s"], data["tick_s"], data["seed"] = duration_s, tick_s, SEED
    if faults_at_s is not None:
        data["faults"] = [dict(f, at_s=faults_at_s) for f in data.get("faults") or []]
    return build_scenario(data, str(path), path.parent)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux ``ru_maxrss`` is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_run(sc: Scenario, runtime: str) -> dict[str, Any]:
    """Time ``run_scenario(sc, runtime=runtime)``; on Ray, time starting a
    fresh local Ray before it (as ``run_scenario`` would) and stopping it after
    it, and include both in ``wall_s``."""
    out: dict[str, Any] = {}
    if runtime == "ray":
        import ray

        from swarmopt.runtime.ray_backend import ensure_ray
    t = time.perf_counter()
    if runtime == "ray":
        ensure_ray()
        out["ray_init_s"] = time.perf_counter() - t
    t_run = time.perf_counter()
    res = run_scenario(sc, runtime=runtime)
    out["run_s"] = time.perf_counter() - t_run
    if runtime == "ray":
        t_stop = time.perf_counter()
        ray.shutdown()
        out["ray_shutdown_s"] = time.perf_counter() - t_stop
    out["wall_s"] = time.perf_counter() - t
    return out | {"tasks": int(res.metrics["decision_count"].sum()), "agents": len(sc.agents),
                  "windows": len(res.metrics), "driver_peak_rss_mib": peak_rss_mib()}


def local_day(sizes: Sizes) -> dict[str, Any]:
    """One simulated day of the five-agent scenario on the local runtime.

    Returns wall_s (run_scenario, s), tasks (sum of decision_count) and the
    process's peak RSS (MiB)."""
    return _timed_run(scenario(duration_s=sizes.day_s, tick_s=sizes.day_tick_s), "local")


def ray_day(sizes: Sizes) -> dict[str, Any]:
    """One simulated day of the five-agent scenario on the Ray runtime; the
    wall time includes starting and stopping a fresh local Ray."""
    return _timed_run(scenario(duration_s=sizes.day_s, tick_s=sizes.day_tick_s), "ray")


def local_dense(sizes: Sizes) -> dict[str, Any]:
    """Per-task cost of the engine: the five agents with ``dense_factor`` times
    their arrival rate and workers (at most 256), no faults, ``dense_s``
    simulated seconds on the local runtime; the per-window overhead that
    dominates the sparse day is spread over many more tasks."""
    sc = scenario(duration_s=sizes.dense_s, tick_s=60.0)
    f = sizes.dense_factor
    agents = [a.model_copy(update={"base_rate_per_s": a.base_rate_per_s * f, "knobs": a.knobs.model_copy(
        update={"max_concurrency": int(min(256, a.knobs.max_concurrency * f))})}) for a in sc.agents]
    return _timed_run(Scenario.model_validate(sc.model_dump() | {"agents": [a.model_dump() for a in agents],
                                                                 "faults": []}), "local")


def scale_local(sizes: Sizes) -> dict[str, Any]:
    """The scale scenario (``scale_count`` replicas of each profile) on the local runtime."""
    return _timed_run(scenario(sizes.scale_count, sizes.scale_s, sizes.scale_tick_s), "local")


def scale_ray(sizes: Sizes) -> dict[str, Any]:
    """The scale scenario on the Ray runtime, including a fresh Ray start."""
    return _timed_run(scenario(sizes.scale_count, sizes.scale_s, sizes.scale_tick_s), "ray")


def ray_ticks(sizes: Sizes) -> dict[str, Any]:
    """Ticks per second of the Ray runtime and of a bare Ray barrier, in one Ray.

    After Ray has started, the five-agent scenario runs through the driver on
    a :class:`RayBackend`; the clock starts once every actor is ready and stops
    when the run ends (ticks, optimizer cycles and all). Then as many no-op
    actors as swarmopt created (agent groups + optimizer + orchestrator) are
    stepped for the same number of ticks, each tick calling them and waiting
    with one ``ray.get`` — the driver's pattern: once calling only as many as
    there are agent groups (what the driver steps every tick) and once calling
    all of them. Returns the three rates (ticks/s), the tick and actor counts,
    the Ray start time and the time from creating swarmopt's actors until all
    are ready (s).
    """
    import ray

    from swarmopt.runtime.ray_backend import RayBackend, ensure_ray

    class ReadyTimedBackend(RayBackend):
        """A RayBackend that notes when all actors are ready and counts ticks."""

        def __init__(self) -> None:
            super().__init__()
            self.step_calls = 0
            self.n_groups = 0
            self.t_created = self.t_ready = math.nan

        def groups(self, scenario: Scenario, seed: int) -> list[tuple[Any, list[str]]]:
            self.t_created = time.perf_counter()
            out = super().groups(scenario, seed)
            self.n_groups = len(out)
            return out

        def orchestrator(self, scenario: Scenario) -> Any:
            h = super().orchestrator(scenario)
            ray.get([a.__ray_ready__.remote() for a in self.actors])
            self.t_ready = time.perf_counter()
            return h

        def call(self, handle: Any, method: str, *args: Any) -> Any:
            self.step_calls += method == "step"
            return super().call(handle, method, *args)

    @ray.remote(num_cpus=0)
    class Noop:
        def step(self, t0, t1, inbound, changes):
            return [], [], [], []

    def barrier(actors: list, ticks: int, tick_s: float) -> float:
        t = time.perf_counter()
        for k in range(ticks):
            ray.get([a.step.remote(k * tick_s, (k + 1) * tick_s, {}, {}) for a in actors])
        return time.perf_counter() - t

    sc = scenario(duration_s=sizes.ray_ticks_duration_s, tick_s=sizes.ray_ticks_tick_s)
    t = time.perf_counter()
    ensure_ray()
    ray_start_s = time.perf_counter() - t
    try:
        backend = ReadyTimedBackend()
        try:
            drive(sc, sc.seed, backend, Collector(sc, narrate_events=False))
            swarm_s = time.perf_counter() - backend.t_ready
            n_actors = len(backend.actors)
        finally:
            backend.close()
        ticks = backend.step_calls // backend.n_groups
        actors = [Noop.remote() for _ in range(n_actors)]
        ray.get([a.__ray_ready__.remote() for a in actors])
        bare_groups_s = barrier(actors[:backend.n_groups], ticks, sc.tick_s)
        bare_all_s = barrier(actors, ticks, sc.tick_s)
    finally:
        ray.shutdown()
    return {"ticks": ticks, "actors": n_actors, "groups": backend.n_groups, "swarm_ticks_per_s": ticks / swarm_s,
            "bare_groups_ticks_per_s": ticks / bare_groups_s, "bare_all_ticks_per_s": ticks / bare_all_s,
            "ray_start_s": ray_start_s, "actors_ready_s": backend.t_ready - backend.t_created}


def loadtest(sizes: Sizes) -> dict[str, Any]:
    """Load-test throughput with 1 and 2 workers (see
    :func:`swarmopt.benchmarks.loadtest_case.loadtest_scaling`)."""
    return loadtest_scaling(sizes.loadtest_seeds, sizes.loadtest_s)


def optimizer(sizes: Sizes) -> dict[str, Any]:
    """Latency of one optimizer cycle (``Optimizer.cycle_with``: observe the
    cycle's window rows, judge, detect, plan and select) per population size.

    For each size the agents (profiles replicated) run one optimizer cycle
    locally with the scenario's faults active from t = 0, so the cycle sees
    degraded agents and plans strategies; then a fresh optimizer takes those
    rows ``reps`` times, the sizes interleaved (small, medium, large, small,
    ...) so that a change in the machine's load hits them alike. Returns per
    size the median, min and max (ms), the number of rows and of bottlenecks
    detected.
    """
    inputs = {}
    for n in sizes.optimizer_agents:
        if n % 5:
            raise ValueError(f"optimizer sizes must be multiples of the five profiles, got {n}")
        probe = scenario(n // 5, faults_at_s=0.0)
        sc = Scenario.model_validate(probe.model_dump() | {"duration_s": probe.optimizer.cycle_s})
        sink = Collector(sc, narrate_events=False)
        drive(sc, sc.seed, LocalBackend(), sink)
        inputs[n] = (sc, sink.metric_rows)
    times_ms: dict[int, list[float]] = {n: [] for n in inputs}
    found: dict[int, int] = {}
    for i in range(max(sizes.optimizer_reps)):
        for n, reps in zip(sizes.optimizer_agents, sizes.optimizer_reps, strict=True):
            if i >= reps:
                continue
            sc, rows = inputs[n]
            opt = make_optimizer(sc, sc.seed)
            batch = [dict(r) for r in rows]
            t = time.perf_counter()
            opt.cycle_with(sc.optimizer.cycle_s, batch, [], [], True)
            times_ms[n].append((time.perf_counter() - t) * 1e3)
            found[n] = len(opt.bottlenecks)
    return {str(n): {"median_ms": statistics.median(ts), "min_ms": min(ts), "max_ms": max(ts), "reps": len(ts),
                     "rows": len(inputs[n][1]), "bottlenecks": found[n]} for n, ts in times_ms.items()}


class _TimedLocal(LocalBackend):
    """A LocalBackend that adds up the wall time spent in the optimizer's calls."""

    def __init__(self) -> None:
        super().__init__()
        self.optimizer_s = 0.0
        self.handle: Any = None

    def optimizer(self, scenario: Scenario, seed: int) -> Any:
        self.handle = super().optimizer(scenario, seed)
        return self.handle

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        if handle is not self.handle:
            return super().call(handle, method, *args)
        t = time.perf_counter()
        try:
            return super().call(handle, method, *args)
        finally:
            self.optimizer_s += time.perf_counter() - t


def _timed_drive(sc: Scenario) -> dict[str, Any]:
    """Wall time of driving ``sc`` to its end on the local runtime (every tick
    and optimizer cycle, the results table not built), of the optimizer's
    calls within it, and the run's task and agent-window counts."""
    backend = _TimedLocal()
    sink = Collector(sc, narrate_events=False)
    t = time.perf_counter()
    drive(sc, sc.seed, backend, sink)
    wall = time.perf_counter() - t
    return {"wall_s": wall, "optimizer_s": backend.optimizer_s, "agents": len(sc.agents),
            "agent_windows": len(sink.metric_rows), "tasks": int(sum(r["decision_count"] for r in sink.metric_rows))}


def optimizer_share(sizes: Sizes) -> dict[str, Any]:
    """The optimizer's share of a large run: ``share_count`` replicas of each
    profile (1,000 agents) for ``share_s`` simulated seconds at tick 300 s on
    the local runtime, its faults at their times. Returns the run's wall time,
    the optimizer's (all its calls: cycle, commit and report), agents,
    agent-windows and tasks."""
    return _timed_drive(scenario(sizes.share_count, sizes.share_s, 300.0))


def window_cost(sizes: Sizes) -> dict[str, Any]:
    """Wall time per agent-window of a whole local run (engine and optimizer)
    at ``window_cost_counts`` replicas of each profile (5, 100 and 500 agents),
    each ``window_cost_s`` simulated seconds at tick 300 s; the median of
    ``window_cost_reps`` runs per size, after one untimed run of the smallest
    (lazy imports and first-call costs are not the agents'). Returns per agent
    count the median cost (us per agent-window), the runs' costs and
    agent-windows."""
    _timed_drive(scenario(sizes.window_cost_counts[0], sizes.window_cost_s, 300.0))
    out: dict[str, Any] = {}
    for count, reps in zip(sizes.window_cost_counts, sizes.window_cost_reps, strict=True):
        runs = [_timed_drive(scenario(count, sizes.window_cost_s, 300.0)) for _ in range(reps)]
        costs = [1e6 * r["wall_s"] / r["agent_windows"] for r in runs]
        out[str(5 * count)] = {"us_per_agent_window": statistics.median(costs), "runs_us": costs,
                               "agent_windows": runs[0]["agent_windows"], "optimizer_s": runs[0]["optimizer_s"]}
    return out


def _streamed_run(duration_s: float) -> dict[str, Any]:
    """``run_scenario`` of the five-agent scenario as shipped (tick 60 s) for
    ``duration_s`` simulated seconds on the local runtime, to a run directory
    in a temporary folder: rows streamed to part files, then the tables,
    report and plots written, as ``swarmopt run`` does. Returns the wall time
    (s), this process's peak RSS (MiB) and the metric rows."""
    sc = scenario(duration_s=duration_s, tick_s=60.0)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = run_scenario(sc, runtime="local", out_dir=Path(tmp) / "run")
        wall = time.perf_counter() - t
        peak = peak_rss_mib()
        return {"wall_s": wall, "peak_rss_mib": peak, "rows": res.count("metrics")}


def stream_short(sizes: Sizes) -> dict[str, Any]:
    """The shorter streamed run (a simulated day): see :func:`_streamed_run`."""
    return _streamed_run(sizes.stream_short_s)


def stream_long(sizes: Sizes) -> dict[str, Any]:
    """The longer streamed run (a simulated week): see :func:`_streamed_run`."""
    return _streamed_run(sizes.stream_long_s)


DENSE_QUEUE = Queue(lam=50.0, c=8)
SPARSE_QUEUE = Queue(lam=2.0, c=4)


def _queue_case(q: Queue, duration_s: float, reps: int) -> dict[str, Any]:
    """Queue ``q`` in the three implementations of
    :mod:`swarmopt.benchmarks.queues`, in this one process.

    First each runs once with exponential service (untimed: it also warms up
    imports and caches), whose mean waits are checked against Erlang C; then
    each runs ``reps`` times with lognormal service, interleaved (engine,
    plain, SimPy, engine, ...) so that a change in the machine's load hits all
    three alike, timed from its first random draw to its last wait. Returns per
    implementation its task count, tasks per second (over the median time) and
    mean waits (ms, with batch-means s.e.) per service law; Erlang C's mean wait
    (ms); the |z| of every comparison of mean waits; and the largest per-task
    wait difference (s) between the plain and SimPy queues, which run on the
    same draws.
    """
    scenarios = {law: engine_scenario(q, law, duration_s, SEED) for law in ("lognormal", "exponential")}
    impls = {
        "engine": lambda law: engine_queue(scenarios[law]),
        "plain": lambda law: plain_queue(q, law, duration_s, SEED),
        "simpy": lambda law: simpy_queue(q, law, duration_s, SEED),
    }
    waits: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in impls}
    for name, run in impls.items():
        waits[name]["exponential"] = mean_wait(*run("exponential"), duration_s)
    times: dict[str, list[float]] = {name: [] for name in impls}
    last = {}
    for _ in range(reps):
        for name, run in impls.items():
            t = time.perf_counter()
            last[name] = run("lognormal")
            times[name].append(time.perf_counter() - t)
    out: dict[str, Any] = {}
    for name, (arrival, wait) in last.items():
        waits[name]["lognormal"] = mean_wait(arrival, wait, duration_s)
        out[name] = {"tasks": int(arrival.size), "tasks_per_s": arrival.size / statistics.median(times[name]),
                     "wait_ms": {law: [1e3 * v for v in mw] for law, mw in waits[name].items()}}
    erlang = (mmc_mean_wait(q.c, q.lam, 1.0 / q.mean_service_s), 0.0)
    z = {f"{a}-{b} {law}": agreement(waits[a][law], waits[b][law])
         for a, b in (("engine", "plain"), ("engine", "simpy")) for law in ("lognormal", "exponential")}
    z |= {f"{name}-erlang_c exponential": agreement(waits[name]["exponential"], erlang) for name in impls}
    return out | {"lam": q.lam, "c": q.c, "rho": q.rho, "mean_service_ms": 1e3 * q.mean_service_s,
                  "duration_s": duration_s, "reps": reps, "erlang_c_wait_ms": 1e3 * erlang[0], "z": z,
                  "simpy_plain_max_abs_diff_s": float(abs(last["simpy"][1] - last["plain"][1]).max())}


def queue_dense(sizes: Sizes) -> dict[str, Any]:
    """The dense reference queue (50 arrivals/s, 8 workers, rho 0.7): see :func:`_queue_case`."""
    return _queue_case(DENSE_QUEUE, sizes.queue_dense_s, sizes.queue_reps)


def queue_sparse(sizes: Sizes) -> dict[str, Any]:
    """The sparse reference queue (2 arrivals/s, 4 workers, rho 0.7): see :func:`_queue_case`."""
    return _queue_case(SPARSE_QUEUE, sizes.queue_sparse_s, sizes.queue_reps)


CASES = {"local-day": local_day, "local-dense": local_dense, "queue-dense": queue_dense, "queue-sparse": queue_sparse,
         "ray-day": ray_day, "ray-ticks": ray_ticks, "optimizer": optimizer, "optimizer-share": optimizer_share,
         "window-cost": window_cost, "scale-local": scale_local, "scale-ray": scale_ray, "loadtest": loadtest,
         "stream-short": stream_short, "stream-long": stream_long}
LOCAL_CASES = ("local-day", "local-dense", "queue-dense", "queue-sparse", "optimizer", "optimizer-share", "window-cost",
               "scale-local", "stream-short", "stream-long")
