"""Benchmarks: ``python -m swarmopt.benchmarks [--quick] [--only CASE] [--json PATH]``.

Every case of :mod:`swarmopt.benchmarks.cases` runs in its own fresh process
(forked from a forkserver that has imported swarmopt, so its imports are not
timed and no earlier case's heap is inherited), while this process samples the
resident memory of that process and all its descendants (Ray's GCS, raylet
and workers included). The result is one table: each figure, its unit, its
target and whether it was met. Nothing is hard-coded: every value is measured
on this machine in this run. Not part of the default test run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import psutil

from swarmopt.benchmarks.cases import CASES, FULL, LOCAL_CASES, QUICK, Sizes
from swarmopt.benchmarks.queues import SIGMA
from swarmopt.report import json_safe

SAMPLE_S = 0.1   # RSS sampling interval (s)
SCAN_S = 1.0     # interval (s) at which the process tree is re-listed and its PSS sampled
COLUMNS = ["figure", "value", "unit", "target", "status", "conditions"]


@dataclass(frozen=True)
class CaseRun:
    """What one case process produced: its result dict (None if it failed),
    the peaks of the summed RSS and of the summed PSS of its process tree
    (MiB, sampled every ``SAMPLE_S`` and ``SCAN_S`` seconds) and an error."""

    result: dict[str, Any] | None
    tree_peak_rss_mib: float
    tree_peak_pss_mib: float
    error: str | None = None


def _child(name: str, sizes: Sizes, conn) -> None:
    try:
        conn.send((CASES[name](sizes), None))
    except BaseException as exc:  # reported to the parent as the case's error
        conn.send((None, repr(exc)))
    finally:
        conn.close()


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _sum_mib(procs: list[psutil.Process], pss: bool = False) -> float:
    """Summed RSS (or PSS: shared pages split among their sharers) of ``procs``, MiB."""
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss if pss else p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**20


def run_case(name: str, sizes: Sizes, timeout_s: float = 900.0) -> CaseRun:
    """Run case ``name`` in a fresh process, sampling its process tree's summed
    RSS every ``SAMPLE_S`` seconds and summed PSS every ``SCAN_S`` seconds (PSS
    is slower to read); kill that tree after ``timeout_s`` seconds."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["swarmopt.benchmarks.cases"])
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(name, sizes, send), name=f"benchmark-{name}")
    proc.start()
    send.close()
    root = psutil.Process(proc.pid)
    procs, rss, pss, next_scan = [root], 0.0, 0.0, 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while not recv.poll(SAMPLE_S):
            now = time.monotonic()
            if now > deadline:
                for p in reversed(_tree(root)):
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        pass
                return CaseRun(None, rss, pss, f"timed out after {timeout_s:g} s")
            if now >= next_scan:
                procs, next_scan = _tree(root) or procs, now + SCAN_S
                pss = max(pss, _sum_mib(procs, pss=True))
            rss = max(rss, _sum_mib(procs))
        try:
            result, error = recv.recv()
        except EOFError:
            proc.join()
            return CaseRun(None, rss, pss, f"case process exited with code {proc.exitcode}")
        return CaseRun(result, rss, pss, error)
    finally:
        recv.close()
        proc.join(timeout=30)


def _status(value: float, op: str | None, threshold: float | None, judged: bool) -> str:
    if not math.isfinite(value):
        return "failed"
    if op is None:
        return "-"
    if not judged:
        return "not judged (--quick)"
    ok = {"<=": value <= threshold, "<": value < threshold, ">=": value >= threshold}[op]
    return "met" if ok else "missed"


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


class _Table:
    def __init__(self, judged: bool) -> None:
        self.judged = judged
        self.rows: list[dict[str, Any]] = []

    def add(self, fid: str, figure: str, value: float, unit: str, conditions: str,
            op: str | None = None, threshold: float | None = None, target: str | None = None) -> None:
        if target is None:
            target = f"{op} {_fmt(threshold)}" if op else "-"
        self.rows.append({"id": fid, "figure": figure, "value": float(value), "unit": unit, "target": target,
                          "status": _status(float(value), op, threshold, self.judged), "conditions": conditions})


def _ray_parts(r: dict[str, Any]) -> str:
    if "ray_init_s" not in r:
        return ""
    return (f" (= ray.init {r['ray_init_s']:.3g} s + run_scenario {r['run_s']:.3g} s + ray.shutdown "
            f"{r['ray_shutdown_s']:.3g} s)")


LOCAL_MEM = "peak RSS (ru_maxrss) of the run's process, interpreter and imports included"


def _tree_mem(run: CaseRun) -> str:
    return ("peak summed PSS (shared pages split among their sharers) of driver + GCS + raylet + Ray workers, "
            f"sampled every {SCAN_S:g} s; summed RSS peak {run.tree_peak_rss_mib:,.0f} MiB")


def _queue_figures(t: _Table, size: str, r: dict[str, Any], failed: str) -> None:
    """The figures of one reference-queue case (``size`` dense or sparse):
    tasks per second of the engine, the plain queue and SimPy, the engine's
    ratios to the other two, and the agreement of their mean waits."""
    nan = math.nan
    rate = {name: r.get(name, {}).get("tasks_per_s", nan) for name in ("engine", "plain", "simpy")}
    wait = {name: r.get(name, {}).get("wait_ms", {}) for name in rate}
    label = f"{size} queue ({r.get('lam', nan):g}/s, c={r.get('c', 0)})"
    cond = (f"Poisson arrivals {r.get('lam', nan):g}/s, FCFS over {r.get('c', 0)} workers, lognormal service "
            f"(log-sd {SIGMA:g}) of mean {r.get('mean_service_ms', nan):.0f} ms, rho {r.get('rho', nan):g}; "
            f"{r.get('duration_s', nan):,.0f} s simulated; median of {r.get('reps', 0)} interleaved runs per "
            f"implementation, draws included" + failed)
    how = {"engine": "swarmopt's AgentSim with one agent that is this queue, stepped over spans of whole 60 s "
                     "windows holding about 12,000 tasks (validation.simulate_tasks: every per-task draw and column "
                     "of the engine, drawn per window, no optimizer; as in a run, each window's table "
                     "goes once the window is closed, its arrival and start rows kept)",
           "plain": "numpy draws, then a heapq of the workers' free times in a Python loop",
           "simpy": "SimPy: a source process and one process per task on a Resource, same draws as plain"}
    for name, what in how.items():
        t.add(f"queue_{size}_{name}_tasks_per_s", f"{label}: {name}, tasks per second", rate[name], "tasks/s",
              f"{what}; {r.get(name, {}).get('tasks', 0):,} tasks; " + cond, target="(reference)")
    t.add(f"queue_{size}_engine_over_plain", f"{label}: engine / plain queue", 100 * rate["engine"] / rate["plain"],
          "%", "tasks per second of the two rows above, same run" + failed, ">=", 50.0)
    t.add(f"queue_{size}_engine_over_simpy", f"{label}: engine / SimPy", rate["engine"] / rate["simpy"], "x",
          "tasks per second of the two rows above, same run" + failed, target="(reference)")

    def ms(name: str, law: str) -> str:
        m, se = wait[name].get(law, (nan, nan))
        return f"{name} {m:.4g} ± {se:.2g}"

    z = r.get("z", {})
    t.add(f"queue_{size}_wait_max_z", f"{label}: mean waits agree, max |z|", max(z.values(), default=nan), "|z|",
          "mean wait after a 10% warm-up, ms ± batch-means s.e.: lognormal "
          + ", ".join(ms(n, "lognormal") for n in how) + "; exponential "
          + ", ".join(ms(n, "exponential") for n in how) + f", Erlang C {r.get('erlang_c_wait_ms', nan):.4g}; "
          f"z over engine vs plain and vs SimPy (both laws) and each vs Erlang C; SimPy vs plain on the same draws: "
          f"max per-task |difference| {r.get('simpy_plain_max_abs_diff_s', nan):.2g} s" + failed, "<=", 4.0)


def _span_name(seconds: float) -> str:
    return {86_400: "a simulated day", 604_800: "a simulated week"}.get(seconds, f"{seconds:,.0f} simulated s")


def _stream_figures(t: _Table, sizes: Sizes, short: dict[str, Any], long: dict[str, Any], failed: str) -> None:
    """Peak memory of the five agents streamed to a run directory for a short
    and a long run, each in its own process, and their ratio (flat memory)."""
    nan = math.nan
    cond = ("5 agents as shipped (tick 60 s), local runtime, run_scenario with out_dir: rows written to part files "
            "as the run goes, then tables, report and plots; its own process; " + LOCAL_MEM)
    peaks = {}
    for label, seconds, r in (("short", sizes.stream_short_s, short), ("long", sizes.stream_long_s, long)):
        peaks[label] = r.get("peak_rss_mib", nan)
        t.add(f"stream_peak_mem_mib_{label}", f"{_span_name(seconds)} streamed: peak memory", peaks[label], "MiB",
              f"{cond}; {r.get('rows', 0):,} metric rows; wall time {r.get('wall_s', nan):.3g} s" + failed)
    t.add("stream_wall_s_long", f"{_span_name(sizes.stream_long_s)} streamed: wall time", long.get("wall_s", nan),
          "s", "the long run above, start to run directory written" + failed)
    t.add("stream_mem_ratio", f"peak memory, {_span_name(sizes.stream_long_s)} / {_span_name(sizes.stream_short_s)}",
          peaks["long"] / peaks["short"], "x",
          f"stream_peak_mem_mib_long / stream_peak_mem_mib_short: {sizes.stream_long_s / sizes.stream_short_s:g}x "
          "the simulated time; flat memory if within 10%" + failed, "<=", 1.10)


def _figures(runs: dict[str, CaseRun], sizes: Sizes, judged: bool) -> pd.DataFrame:
    nan = math.nan
    t = _Table(judged)
    day = "one simulated day" if sizes.day_s == 86_400 else f"{sizes.day_s:,.0f} simulated s"

    def res(case: str) -> dict[str, Any]:
        run = runs.get(case)
        return run.result if run is not None and run.result is not None else {}

    def why(case: str) -> str:
        run = runs[case]
        return f"; FAILED: {run.error}" if run.error else ""

    if "local-day" in runs:
        r = res("local-day")
        wall, tasks = r.get("wall_s", nan), r.get("tasks", nan)
        cond = f"5 agents, {sizes.day_s:,.0f} s simulated, tick {sizes.day_tick_s:g} s, local runtime"
        t.add("engine_tasks_per_s", "simulated tasks per second (one process = one core)", tasks / wall,
              "tasks/s", f"{tasks:,} tasks (sum of decision_count) / wall time of run_scenario; {cond}"
              + why("local-day"), ">=", 2e6)
        t.add("day_wall_s_local", f"{day}, local: wall time", wall, "s", cond + why("local-day"),
              "<=", 2.0)
        t.add("day_peak_mem_mib_local", f"{day}, local: peak memory", r.get("driver_peak_rss_mib", nan), "MiB",
              LOCAL_MEM + why("local-day"))
    if "local-dense" in runs:
        r = res("local-dense")
        wall, tasks = r.get("wall_s", nan), r.get("tasks", nan)
        t.add("engine_tasks_per_s_dense", f"simulated tasks per second at {sizes.dense_factor:g}x load", tasks / wall,
              "tasks/s", f"{tasks:,} tasks / wall time; 5 agents at {sizes.dense_factor:g}x arrival rate and workers, "
              f"{sizes.dense_s:,.0f} s simulated, no faults, local runtime" + why("local-dense"),
              target="(reference: per-task cost)")
    for case in ("queue-dense", "queue-sparse"):
        if case in runs:
            _queue_figures(t, case.split("-")[1], res(case), why(case))
    if "local-day" in runs and "queue-sparse" in runs:
        day_run, simpy = res("local-day"), res("queue-sparse").get("simpy", {})
        ratio = day_run.get("tasks", nan) / day_run.get("wall_s", nan) / simpy.get("tasks_per_s", nan)
        t.add("engine_day_over_simpy", "simulated tasks per second, one day / SimPy's sparse queue", ratio, "x",
              "engine_tasks_per_s (5 agents, full model, optimizer included) over queue_sparse_simpy_tasks_per_s "
              "(one bare FCFS queue in SimPy; the day's agents are sparse too, a few arrivals/s on 4 workers), "
              "measured in this run" + why("local-day") + why("queue-sparse"), ">=", 3.0)
    if "ray-day" in runs:
        r = res("ray-day")
        cond = f"5 agents, {sizes.day_s:,.0f} s simulated, tick {sizes.day_tick_s:g} s"
        t.add("day_wall_s_ray", f"{day}, Ray: wall time", r.get("wall_s", nan), "s",
              cond + ", fresh local Ray started and stopped inside the timed span" + _ray_parts(r) + why("ray-day"),
              "<=", 15.0)
        t.add("day_peak_mem_mib_ray", f"{day}, Ray: peak memory", runs["ray-day"].tree_peak_pss_mib if r else nan,
              "MiB", _tree_mem(runs["ray-day"]) + why("ray-day"))
    if "ray-ticks" in runs:
        r = res("ray-ticks")
        swarm, bare = r.get("swarm_ticks_per_s", nan), r.get("bare_groups_ticks_per_s", nan)
        n, g = r.get("actors", 0), r.get("groups", 0)
        cond = (f"{r.get('ticks', 0):,} ticks ({sizes.ray_ticks_duration_s:,.0f} s simulated at tick "
                f"{sizes.ray_ticks_tick_s:g} s), timed after Ray start and actor readiness" + why("ray-ticks"))
        t.add("ray_ticks_per_s", "Ray runtime: ticks per second", swarm, "ticks/s",
              f"five-agent scenario through the driver ({g} agent-group actors stepped per tick, optimizer and "
              f"orchestrator called each cycle); " + cond, ">=", 0.5 * bare,
              target=f">= 50% of bare ({_fmt(0.5 * bare)})" if math.isfinite(bare) else None)
        t.add("bare_ray_ticks_per_s", f"bare Ray barrier, {g} of {n} actors stepped", bare, "ticks/s",
              f"{n} no-op actors; per tick the {g} the driver steps are called, then one ray.get; " + cond,
              target="(reference)")
        t.add("bare_ray_ticks_per_s_all", f"bare Ray barrier, all {n} actors stepped",
              r.get("bare_all_ticks_per_s", nan), "ticks/s",
              f"{n} no-op actors; per tick all are called, then one ray.get; " + cond, target="(reference)")
        t.add("ray_over_bare", f"Ray runtime / bare barrier ({g} of {n}) tick rate", 100 * swarm / bare, "%",
              "same Ray session, same number of ticks" + why("ray-ticks"), ">=", 50.0)
        t.add("ray_start_s", "Ray start (ray.init, fresh local Ray)", r.get("ray_start_s", nan), "s",
              "included in every Ray wall time (day, scale)" + why("ray-ticks"))
        t.add("ray_actors_ready_s", f"swarmopt's {n} actors: creation until ready", r.get("actors_ready_s", nan),
              "s", "worker processes start and import swarmopt; included in every Ray wall time (day, scale)"
              + why("ray-ticks"))
    if "optimizer" in runs:
        r = res("optimizer")
        targets = {5: ("<=", 5.0), 1000: ("<=", 100.0)}
        for label, n in zip(("small", "medium", "large"), sizes.optimizer_agents, strict=True):
            o = r.get(str(n), {})
            op, threshold = targets.get(n, (None, None))
            t.add(f"optimizer_cycle_ms_{label}", f"optimizer cycle, {n} agents", o.get("median_ms", nan), "ms",
                  f"Optimizer.cycle_with on one cycle of rows ({o.get('rows', 0)} rows, "
                  f"{o.get('bottlenecks', 0)} bottlenecks; faults from t=0); median of {o.get('reps', 0)} interleaved, "
                  f"min {o.get('min_ms', nan):.3g}, max {o.get('max_ms', nan):.3g}" + why("optimizer"),
                  op, threshold)
        _, medium, large = (r.get(str(n), {}).get("median_ms", nan) for n in sizes.optimizer_agents)
        n_med, n_large = sizes.optimizer_agents[1:]
        t.add("optimizer_cycle_ratio", f"optimizer cycle, {n_large} / {n_med} agents", large / medium, "x",
              f"optimizer_cycle_ms_large / optimizer_cycle_ms_medium: {n_large / n_med:g}x the agents; linear or "
              f"better in agents if <= {n_large / n_med:g}" + why("optimizer"), "<=", n_large / n_med)
    if "optimizer-share" in runs:
        r = res("optimizer-share")
        t.add("optimizer_share", f"optimizer share of a {r.get('agents', 0):,}-agent run", 100 * r.get(
            "optimizer_s", nan) / r.get("wall_s", nan), "%",
              f"wall time of the optimizer's calls (cycle, commit and report) / wall time of the run: "
              f"{r.get('optimizer_s', nan):.3g} s of {r.get('wall_s', nan):.3g} s; {sizes.share_s:,.0f} s simulated "
              f"at tick 300 s, local runtime, {r.get('agent_windows', 0):,} agent-windows, {r.get('tasks', 0):,} "
              "tasks, results table not built" + why("optimizer-share"), "<=", 10.0)
    if "window-cost" in runs:
        r = res("window-cost")
        costs = {int(k): v.get("us_per_agent_window", nan) for k, v in r.items()}
        for n, cost in costs.items():
            o = r[str(n)]
            t.add(f"agent_window_us_{n}", f"wall time per agent-window, {n} agents", cost, "us",
                  f"a whole local run (engine, optimizer, driver) of {sizes.window_cost_s:,.0f} s simulated at tick "
                  f"300 s / its {o.get('agent_windows', 0):,} agent-windows (agents x 60 s windows); median of "
                  f"{len(o.get('runs_us', []))} run(s); optimizer {o.get('optimizer_s', nan):.3g} s"
                  + why("window-cost"), target="(reference)")
        if len(costs) > 1:
            first = min(costs)
            spread = max(costs[n] / costs[first] for n in costs if n != first)
            t.add("agent_window_cost_ratio", f"cost per agent-window, most agents / {first} agents", spread, "x",
                  f"the largest of agent_window_us_N / agent_window_us_{first} over N = "
                  f"{', '.join(str(n) for n in sorted(costs) if n != first)}: flat within 20% (or cheaper) as agents "
                  "grow" + why("window-cost"), "<=", 1.2)
    if "stream-short" in runs and "stream-long" in runs:
        _stream_figures(t, sizes, res("stream-short"), res("stream-long"), why("stream-short") + why("stream-long"))
    for case, rt in (("scale-local", "local"), ("scale-ray", "Ray")):
        if case not in runs:
            continue
        r = res(case)
        n = 5 * sizes.scale_count
        cond = (f"{n} agents ({sizes.scale_count} replicas of each profile), {sizes.scale_s:,.0f} s simulated, "
                f"tick {sizes.scale_tick_s:g} s, {r.get('tasks', 0):,} tasks")
        if rt == "Ray":
            cond += ", at most 16 agent-group actors, fresh local Ray started and stopped inside the timed span"
            cond += _ray_parts(r)
            mem, mem_cond = (runs[case].tree_peak_pss_mib if r else nan), _tree_mem(runs[case])
        else:
            mem, mem_cond = r.get("driver_peak_rss_mib", nan), LOCAL_MEM
        kind = case.split("-")[1]
        t.add(f"scale_wall_s_{kind}", f"{n} agents, {rt}: wall time", r.get("wall_s", nan), "s",
              cond + why(case), "<", 60.0)
        t.add(f"scale_peak_mem_mib_{kind}", f"{n} agents, {rt}: peak memory", mem, "MiB", mem_cond + why(case),
              "<", 4096.0)
    if "loadtest" in runs:
        r = res("loadtest")
        hours, w1, w2 = r.get("agent_hours", nan), r.get("wall_s_1", nan), r.get("wall_s_2", nan)
        cond = (f"{r.get('runs', 0)} runs (monitor and rules x {sizes.loadtest_seeds} seeds of the five-agent "
                f"scenario, {sizes.loadtest_s:,.0f} s simulated each; no ground truth, no oracle) = {hours:,.0f} "
                f"simulated agent-hours; one local Ray of 2 CPUs, workers warmed up; 1 worker {w1:.3g} s, "
                f"2 workers {w2:.3g} s; machine load average {r.get('load_before', nan):.2g} before, "
                f"{r.get('load_after', nan):.2g} after" + why("loadtest"))
        t.add("loadtest_agent_hours_per_core_s", "load test: simulated agent-hours per core-second (2 workers)",
              hours / (2 * w2), "agent-h/core-s", cond, target="(reference)")
        t.add("loadtest_agent_hours_per_core_s_1", "load test: simulated agent-hours per core-second (1 worker)",
              hours / w1, "agent-h/core-s", cond, target="(reference)")
        t.add("loadtest_agent_hours_per_cpu_s", "load test: simulated agent-hours per CPU-second the runs used",
              hours / r.get("cpu_s_2", nan), "agent-h/CPU-s",
              "process CPU time summed over the 2-worker runs (less sensitive to other processes than wall time); "
              + cond, target="(reference)")
        t.add("loadtest_speedup_2_workers", "load test: speed-up from 1 to 2 workers", w1 / w2, "x", cond)
        t.add("loadtest_parallel_efficiency", "load test: parallel efficiency at 2 workers", 100 * w1 / (2 * w2),
              "%", "speed-up / 2; " + cond, ">=", 75.0)
    return pd.DataFrame(t.rows).set_index("id")


def run(quick: bool = False, only: Sequence[str] | None = None, timeout_s: float = 900.0,
        progress=None) -> tuple[pd.DataFrame, dict[str, CaseRun]]:
    """Run the benchmark cases ``only`` (default: all) at full or ``quick`` sizes.

    Returns the figures table (index: figure id; columns: figure, value,
    unit, target, status, conditions) and the raw result of every case.
    ``progress(name)`` is called before each case starts.
    """
    sizes = QUICK if quick else FULL
    runs: dict[str, CaseRun] = {}
    for name in only or CASES:
        if progress is not None:
            progress(name)
        runs[name] = run_case(name, sizes, timeout_s)
    return _figures(runs, sizes, judged=not quick), runs


def render(table: pd.DataFrame) -> str:
    """The figures table as text: values rounded for reading, right-aligned;
    the other columns left-aligned."""
    cells = {c: [c] + [str(v) for v in table[c]] for c in COLUMNS}
    cells["value"] = ["value"] + [_fmt(v) if math.isfinite(v) else "n/a" for v in table["value"]]
    widths = {c: max(map(len, col)) for c, col in cells.items()}
    lines = []
    for i in range(len(table) + 1):
        lines.append("  ".join(cells[c][i].rjust(widths[c]) if c == "value" else cells[c][i].ljust(widths[c])
                               for c in COLUMNS).rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m swarmopt.benchmarks``; returns the exit code
    (1 if a case failed, else 0 — a missed target is a result, not an error).
    ``--json`` writes strict JSON (a failed figure's value is null)."""
    ap = argparse.ArgumentParser(prog="python -m swarmopt.benchmarks", description=__doc__.split("\n\n")[1])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; targets not judged)")
    ap.add_argument("--only", action="append", choices=list(CASES), metavar="CASE",
                    help=f"run only this case (repeatable): {', '.join(CASES)}")
    ap.add_argument("--local-only", action="store_true", help=f"only the cases without Ray: {', '.join(LOCAL_CASES)}")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the figures and raw results as JSON")
    ap.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS", help="per case (default 900)")
    args = ap.parse_args(argv)
    only = args.only or (list(LOCAL_CASES) if args.local_only else None)
    table, runs = run(args.quick, only, args.timeout,
                      progress=lambda name: print(f"running {name} ...", file=sys.stderr, flush=True))
    print(render(table))
    if args.json:
        doc = {"quick": args.quick, "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "ray": importlib.metadata.version("ray"), "sizes": asdict(QUICK if args.quick else FULL),
               "figures": table.reset_index().to_dict("records"),
               "cases": {k: asdict(v) for k, v in runs.items()}}
        args.json.write_text(json.dumps(json_safe(doc), indent=2, default=str) + "\n")
    return 1 if any(r.error for r in runs.values()) else 0
