"""Running the load test: one Ray task per run, the local runtime inside.

:func:`run_one` is the task: it runs one (policy, scenario, seed) — with
ground truth when asked and available — and returns its row of the ``runs``
table and its rows of the ``decisions`` table; an exception becomes a row with
``status == "error"`` and the error, so the load test goes on. :func:`execute`
submits the tasks to Ray with at most ``workers`` in flight, takes each result
as it finishes (``ray.wait``) and hands it to ``on_done`` at once. One Ray
session serves every run: an existing one (``ray.init`` already called, or
``address``) is joined, else a local Ray is started and stopped at the end.
"""

from __future__ import annotations

import time
import traceback
from typing import Callable, Sequence

from swarmopt.loadtest import truth as gt
from swarmopt.loadtest.measures import run_measures
from swarmopt.loadtest.plan import RunTask
from swarmopt.loadtest.spec import GroundTruth, slo_of


def _base(task: RunTask) -> dict:
    return {"task_id": task.task_id, "kind": task.kind, "policy": task.policy, "scenario": task.scenario,
            "seed": task.seed, "policy_spec": task.config.optimizer.policy, "source": task.source}


def run_one(task: RunTask, slo: Sequence, truth: GroundTruth, reversal_window_s: float) -> tuple[dict, list[dict]]:
    """Run ``task`` on the local runtime in this process. Returns (row of
    ``runs``, rows of ``decisions``); ``wall_s`` and ``cpu_s`` are its wall
    and CPU time (s) in this process. ``truth_status``: ``on`` (every judged
    change has its ground truth), ``off`` (not asked: monitor, oracle or
    ``ground_truth: false``) or ``unavailable`` (no ``swarmopt.Simulation``)."""
    from swarmopt.api import run_scenario

    base = _base(task)
    slo = slo_of(slo, task.scenario)
    t0, c0 = time.perf_counter(), time.process_time()
    status = "off"
    try:
        if task.truth and gt.simulation_class() is not None:
            res, decisions = gt.run_with_truth(task.config, task.seed, slo, truth.helped_slo_points,
                                               truth.helped_target_pct, replicas=truth.replicas)
            status = "on"
        else:
            res, decisions = run_scenario(task.config, seed=task.seed, runtime="local"), []
            status = "unavailable" if task.truth else "off"
        row = base | {"status": "ok", "error": ""} | run_measures(task.config, res.metrics, res.events, slo,
                                                                   reversal_window_s)
        if status == "on":
            row |= gt.label_counts(decisions)
    except Exception as exc:  # the run's failure is its row; the load test goes on
        row, decisions = base | {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc(limit=-3)}, []
    row |= {"truth_status": status, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    keys = {k: base[k] for k in ("task_id", "policy", "scenario", "seed")}
    return row, [keys | d for d in decisions]


def error_row(task: RunTask, exc: BaseException) -> dict:
    """The row of a run whose task died outside :func:`run_one` (e.g. its worker was killed)."""
    return _base(task) | {"status": "error", "error": f"{type(exc).__name__}: {exc}", "truth_status": "off"}


def execute(tasks: Sequence[RunTask], slo: Sequence, truth: GroundTruth, reversal_window_s: float,
            on_done: Callable[[dict, list[dict]], None], workers: int | None = None,
            address: str | None = None) -> None:
    """Run ``tasks`` as Ray tasks (one CPU each), at most ``workers`` in flight
    (default: the cluster's CPUs), calling ``on_done(row, decisions)`` as each
    finishes. On an interrupt the tasks in flight are cancelled and the
    interrupt propagates; what finished was already handed over."""
    import ray

    from swarmopt.runtime.ray_backend import ensure_ray

    if not tasks:
        return
    started = ensure_ray(address)
    try:
        cap = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1, max_retries=0)(run_one)
        slo_ref, truth_ref = ray.put(list(slo)), ray.put(truth)
        queue = list(tasks)
        pending: dict = {}
        try:
            while queue or pending:
                while queue and len(pending) < cap:
                    task = queue.pop(0)
                    pending[remote.remote(task, slo_ref, truth_ref, reversal_window_s)] = task
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        row, decisions = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        row, decisions = error_row(task, exc), []
                    on_done(row, decisions)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
