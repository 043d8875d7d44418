"""Benchmark case: load-test throughput and its speed-up from 1 to 2 workers, in one Ray session."""

from __future__ import annotations

import os
import time
from typing import Any

from swarmopt.loader import SCENARIOS_DIR

SCENARIO = SCENARIOS_DIR / "market_hunter_degradation.yaml"


def loadtest_scaling(seeds: int, duration_s: float) -> dict[str, Any]:
    """Run one load test (policies monitor and rules x ``seeds`` seeds of the
    five-agent scenario for ``duration_s`` simulated seconds; no ground truth,
    no oracle, nothing written) with 1 worker, then with 2, in one fresh local
    Ray of 2 CPUs, after a warm-up load test that starts both worker processes
    (so neither timed run pays for Ray workers importing swarmopt). Returns
    the wall times (s), the runs' summed CPU time (s), the runs and the
    simulated agent-hours of one load test, and the machine's 1-minute load
    average before and after (other processes compete for the 2 cores)."""
    import ray

    from swarmopt.loadtest.api import loadtest
    from swarmopt.runtime.ray_backend import ensure_ray

    spec = {"name": "benchmark", "policies": [{"name": "monitor"}, {"name": "rules"}], "scenarios": [str(SCENARIO)],
            "seeds": {"count": seeds}, "duration_s": duration_s, "ground_truth": False, "oracle": False}
    load_before = os.getloadavg()[0]
    ensure_ray(num_cpus=2)
    try:
        loadtest(spec | {"seeds": [10_001], "duration_s": 600.0}, workers=2, progress=False)
        walls, cpu = {}, {}
        for workers in (1, 2):
            t = time.perf_counter()
            res = loadtest(spec, workers=workers, progress=False)
            walls[workers] = time.perf_counter() - t
            cpu[workers] = float(res.runs["cpu_s"].sum())
            if res.summary["runs_failed"]:
                raise RuntimeError(f"{res.summary['runs_failed']} runs failed: {res.runs['error'].iloc[0]}")
    finally:
        ray.shutdown()
    return {"runs": len(res.runs), "agent_hours": float(res.runs["agent_hours"].sum()), "wall_s_1": walls[1],
            "wall_s_2": walls[2], "cpu_s_1": cpu[1], "cpu_s_2": cpu[2], "load_before": load_before,
            "load_after": os.getloadavg()[0]}
