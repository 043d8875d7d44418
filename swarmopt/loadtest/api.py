"""``swarmopt.loadtest(spec, ...)``: run a load test and return its tables.

The steps: read and validate the spec; resolve it into runs
(:mod:`~swarmopt.loadtest.plan`); skip the runs an ``out_dir`` already holds
(``resume``); run the others as Ray tasks (:mod:`~swarmopt.loadtest.execute`),
storing each as it finishes (:mod:`~swarmopt.loadtest.store`); then build the
``runs``, ``comparisons`` and ``decisions`` tables, the oracle tables and the
summary, and write them with ``report.html``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from swarmopt.loader import InputError
from swarmopt.loadtest import gate
from swarmopt.loadtest.compare import comparisons as compare_runs
from swarmopt.loadtest.execute import execute
from swarmopt.loadtest.oracle import best_points, oracle_table
from swarmopt.loadtest.plan import Plan, make_plan
from swarmopt.loadtest.progress import make_progress
from swarmopt.loadtest.report import write_report
from swarmopt.loadtest.spec import LoadTestSpec, read_spec
from swarmopt.loadtest.store import RunStore
from swarmopt.loadtest.summary import confusion, summarize


@dataclass
class LoadTestResult:
    """What :func:`loadtest` returns.

    ``runs``: one row per run (policy runs and oracle runs, ``kind``), with
    the measures of :mod:`swarmopt.loadtest.measures`; ``comparisons``: paired
    differences from the baseline (:mod:`swarmopt.loadtest.compare`);
    ``decisions``: one row per judged change with its ground truth
    (:mod:`swarmopt.loadtest.truth`); ``summary``: the numbers per policy and
    the run's status (``summary.json``); ``oracle``: each policy against the
    best static configuration; ``best``: that configuration per scenario;
    ``confusion``: decisions by ground truth per policy; ``failed_gates``: the
    ``fail_if`` expressions that hold.
    """

    runs: pd.DataFrame
    comparisons: pd.DataFrame
    decisions: pd.DataFrame
    summary: dict
    oracle: pd.DataFrame = field(default_factory=pd.DataFrame)
    best: pd.DataFrame = field(default_factory=pd.DataFrame)
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed_gates: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    def __repr__(self) -> str:
        s = self.summary
        return (f"LoadTestResult({s['name']!r}: {s['runs_ok']} runs ok, {s['runs_failed']} failed, "
                f"{len(self.decisions)} decisions, status {s['status']!r}, out_dir={self.out_dir})")


def _probe_slo(plan: Plan) -> None:
    """Check the SLO's metric names against the columns of a one-window run of
    the first scenario (the metrics table's columns are only known from a run)."""
    from swarmopt.api import run_scenario

    first = plan.tasks[0].config
    cols = run_scenario(first, seed=0, duration_s=first.window_s, runtime="local").metrics.columns
    for i, o in enumerate(plan.spec.slo):
        if o.metric not in cols:
            raise InputError(f"{plan.label}: slo.{i}.metric: unknown metric '{o.metric}'; allowed: "
                             f"{sorted(c for c in cols if c not in ('agent', 'window', 't_start_s', 't_end_s'))}")


def _truth_status(runs: pd.DataFrame, spec: LoadTestSpec) -> str:
    status = set(runs["truth_status"]) if "truth_status" in runs else set()
    if "on" in status:
        return "on"
    if "unavailable" in status:
        return "unavailable (this build of swarmopt has no swarmopt.Simulation)"
    return "off" if not spec.ground_truth.enabled else "off (no policy run that changes anything)"


def build_result(plan: Plan, store: RunStore, status: str, fail_if: Sequence[str] = ()) -> LoadTestResult:
    """The tables and summary of ``plan`` from the finished runs in ``store``."""
    spec = plan.spec
    order = {t.task_id: i for i, t in enumerate(plan.tasks)}
    rows, decs = store.select(set(order))
    runs = pd.DataFrame(sorted(rows, key=lambda r: order[r["task_id"]]))
    decisions = pd.DataFrame(decs)
    if runs.empty:
        runs = pd.DataFrame(columns=["task_id", "kind", "policy", "scenario", "seed", "status"])
    comp = compare_runs(runs, spec.baseline)
    best = best_points(runs, spec.oracle.objective)
    orc = oracle_table(runs, best, spec.baseline, spec.oracle.objective)
    conf = confusion(decisions)
    names = [p.name for p in spec.policies]
    policies = summarize(runs, decisions, comp, orc, names, spec.baseline)
    ok = runs["status"] == "ok"
    summary = {
        "name": spec.name, "description": spec.description, "status": status, "quick": plan.quick,
        "baseline": spec.baseline, "ground_truth": _truth_status(runs, spec),
        "slo": [o.model_dump() for o in spec.slo], "runs_planned": len(plan.tasks), "runs_ok": int(ok.sum()),
        "runs_failed": int((~ok).sum()), "scenarios": {n: p for n, (p, _) in plan.scenarios.items()},
        "policies": policies,
        "oracle": {r["scenario"]: {"config": r["config"], spec.oracle.objective: r["oracle"]}
                   for r in best.to_dict("records")},
    }
    failed = [e for e in fail_if if gate.holds(e, policies)]
    summary["fail_if"] = [{"expression": e, "holds": e in failed} for e in fail_if]
    return LoadTestResult(runs, comp, decisions, summary, orc, best, conf, failed)


def _clean(o):
    """NaN and infinities -> None, recursively, so ``summary.json`` is strict JSON."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def write_outputs(res: LoadTestResult, out: Path) -> None:
    """``runs.parquet``, ``runs.csv``, ``comparisons.csv``, ``decisions.parquet``,
    ``oracle.csv``, ``summary.json`` (strict JSON: NaN as null) and ``report.html``."""
    out.mkdir(parents=True, exist_ok=True)
    res.runs.to_parquet(out / "runs.parquet", index=False)
    res.runs.to_csv(out / "runs.csv", index=False)
    res.comparisons.to_csv(out / "comparisons.csv", index=False)
    res.decisions.to_parquet(out / "decisions.parquet", index=False)
    res.oracle.to_csv(out / "oracle.csv", index=False)
    (out / "summary.json").write_text(json.dumps(_clean(res.summary), indent=2) + "\n")
    write_report(out / "report.html", res.runs, res.comparisons, res.decisions, res.confusion, res.best, res.oracle,
                 res.summary)
    res.out_dir = out


def loadtest(spec: str | Path | dict | LoadTestSpec, *, out_dir: str | Path | None = None,
             address: str | None = None, workers: int | None = None, resume: bool = False, quick: bool = False,
             fail_if: Sequence[str] = (), progress: bool = True) -> LoadTestResult:
    """Run the load test ``spec`` (a YAML path, a mapping or a
    :class:`~swarmopt.loadtest.spec.LoadTestSpec`) and return its
    :class:`LoadTestResult`.

    ``out_dir``: write each finished run there at once and the tables and
    ``report.html`` at the end (None: keep everything in memory).
    ``resume``: run only the runs ``out_dir`` does not hold yet. ``address``:
    join that Ray cluster (default: the running Ray, else a local one started
    and stopped here). ``workers``: at most this many runs at once (default:
    the cluster's CPUs). ``quick``: the spec's ``quick`` section (one seed, a
    short duration, a tiny oracle grid). ``fail_if``: expressions over the
    summary (:mod:`swarmopt.loadtest.gate`); those that hold are in
    ``failed_gates``. Works in Jupyter as is (Ray tasks, no multiprocessing).

    Raises :class:`swarmopt.loader.InputError` for a bad spec, option or
    expression (before any run). On an interrupt the tables of the finished
    runs are written (status ``interrupted``) and KeyboardInterrupt is raised.
    """
    parsed, base, label = read_spec(spec)
    for expr in fail_if:
        gate.check(expr, [p.name for p in parsed.policies])
    if workers is not None and workers < 1:
        raise InputError(f"--workers: must be at least 1, got {workers}")
    plan = make_plan(parsed, base, label, quick)
    _probe_slo(plan)
    store = RunStore(out_dir, resume)
    done = store.done()
    todo = [t for t in plan.tasks if t.task_id not in done]
    bar = make_progress(len(plan.tasks), len(plan.tasks) - len(todo), progress)

    def finished(row: dict, decisions: list[dict]) -> None:
        store.add(row, decisions)
        bar.advance(row["status"] != "ok")

    status = "completed"
    try:
        execute(todo, parsed.slo, parsed.ground_truth, parsed.reversal_window_s, finished, workers, address)
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        bar.close()
    res = build_result(plan, store, status, fail_if)
    if out_dir is not None:
        write_outputs(res, Path(out_dir))
    if status == "interrupted":
        raise KeyboardInterrupt
    return res

