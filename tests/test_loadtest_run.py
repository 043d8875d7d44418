"""The load test end to end on the session's Ray: tables, files, resume, crashed runs, the CLI's exit codes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

import swarmopt
from swarmopt.loader import InputError
from swarmopt.loadtest import api
from swarmopt.loadtest.execute import execute
from swarmopt.loadtest.plan import make_plan
from swarmopt.loadtest.spec import DEFAULT_SLO, read_spec
from swarmopt.loadtest.store import RunStore
from swarmopt.schema import LatencyFault

from conftest import MH_SCENARIO, assert_same

pytestmark = pytest.mark.ray

# 2 policies x 1 scenario x 2 seeds + 1 oracle point x 1 seed = 5 runs of 45 simulated minutes
TINY = {"name": "tiny", "policies": [{"name": "monitor"}, {"name": "rules"}], "scenarios": [str(MH_SCENARIO)],
        "seeds": [1, 2], "duration_s": 2700, "ground_truth": False,
        "oracle": {"grid": {"max_concurrency": ["x2"]}, "seeds": [1]}}
RUNS = 5


def _spec_file(tmp_path, **update) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY | update))
    return str(path)


@pytest.fixture(scope="module")
def finished(ray_session, tmp_path_factory):
    """The tiny load test run to completion into a directory."""
    tmp = tmp_path_factory.mktemp("loadtest")
    spec = _spec_file(tmp)
    res = swarmopt.loadtest(spec, out_dir=tmp / "out", progress=False)
    return spec, tmp / "out", res


def test_a_load_test_writes_its_tables_and_report(finished):
    _, out, res = finished
    assert res.summary["status"] == "completed" and res.summary["runs_ok"] == RUNS
    runs = res.runs
    assert list(runs["kind"]).count("policy") == 4 and list(runs["kind"]).count("oracle") == 1
    assert (runs["status"] == "ok").all()
    pol = runs[runs["kind"] == "policy"].set_index(["policy", "seed"])
    assert (pol["agent_hours"] == 5 * 2700 / 3600).all()
    assert pol.loc[("monitor", 1), "changes_attempted"] == 0 < pol.loc[("rules", 1), "changes_attempted"]
    assert pol["slo_attainment"].between(0, 1).all()
    assert (pol["slo_attainment_faulted"] <= pol["slo_attainment"]).all()
    comp = res.comparisons
    row = comp[(comp["metric"] == "slo_attainment") & (comp["scenario"] == "all")].iloc[0]
    diffs = pol.loc["rules", "slo_attainment"] - pol.loc["monitor", "slo_attainment"]
    assert row["n_pairs"] == 2 and row["mean_diff"] == pytest.approx(diffs.mean())
    assert res.summary["policies"]["rules"]["slo_attainment_diff"] == pytest.approx(diffs.mean())
    assert res.best.iloc[0]["config"] == "max_concurrency=x2"
    rules = res.summary["policies"]["rules"]  # two seeds: the gap closed and its paired bootstrap interval
    assert rules["gap_closed_low"] <= rules["gap_closed"] <= rules["gap_closed_high"]
    assert res.summary["ground_truth"] == "off"
    for name in ("runs.parquet", "runs.csv", "comparisons.csv", "decisions.parquet", "summary.json", "report.html"):
        assert (out / name).exists(), name
    assert_same(pd.read_parquet(out / "runs.parquet"), res.runs, check_dtype=False)
    assert json.loads((out / "summary.json").read_text())["policies"]["rules"]["runs"] == 2
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<script" not in html


def test_a_finished_load_test_is_not_overwritten_but_resumed_for_free(finished):
    spec, out, res = finished
    with pytest.raises(InputError, match="already holds 5 finished runs; pass --resume"):
        swarmopt.loadtest(spec, out_dir=out, progress=False)
    again = swarmopt.loadtest(spec, out_dir=out, resume=True, progress=False)
    assert_same(again.runs, res.runs)


def test_resume_after_an_interruption_runs_only_the_missing_runs(finished, tmp_path, monkeypatch):
    """A resumed load test runs only what is missing, and its table is the uninterrupted load test's to the last
    bit, though its runs went through one worker and then the default two: a run's figures do not depend on where
    or when it ran."""
    spec, out = _spec_file(tmp_path), tmp_path / "out"
    stored = RunStore.add

    def add_then_interrupt(self, row, decisions):
        stored(self, row, decisions)
        if len(self.runs) == 2:
            raise KeyboardInterrupt  # Ctrl-C right after the second run was stored

    monkeypatch.setattr(RunStore, "add", add_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        swarmopt.loadtest(spec, out_dir=out, workers=1, progress=False)
    monkeypatch.undo()
    first = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(first) == 2
    partial = json.loads((out / "summary.json").read_text())
    assert partial["status"] == "interrupted" and partial["runs_ok"] == 2
    submitted = []

    def recording_execute(tasks, *args, **kwargs):
        submitted.extend(tasks)
        return execute(tasks, *args, **kwargs)

    monkeypatch.setattr(api, "execute", recording_execute)
    res = swarmopt.loadtest(spec, out_dir=out, resume=True, progress=False)
    assert len(submitted) == RUNS - 2
    assert {t.task_id for t in submitted}.isdisjoint({r["task_id"] for r in first})
    assert res.summary["status"] == "completed" and len(res.runs) == RUNS
    assert len(set(res.runs["task_id"])) == RUNS
    figures = [c for c in res.runs.columns if c not in ("wall_s", "cpu_s")]
    assert_same(*(r.runs[figures].sort_values("task_id", ignore_index=True) for r in (res, finished[2])))


def test_a_crashed_run_becomes_a_row_and_the_others_go_on(ray_session):
    spec, base, label = read_spec(TINY | {"seeds": [1], "oracle": False})
    good = make_plan(spec, base, label).tasks[0]
    ghost = LatencyFault(kind="latency", target="ghost", at_s=0.0, factor=2.0)
    broken = dataclasses.replace(good, task_id="broken", config=good.config.model_copy(update={"faults": [ghost]}))
    rows = []
    execute([broken, good], DEFAULT_SLO, spec.ground_truth, 3600.0, lambda row, d: rows.append(row), workers=2)
    by_id = {r["task_id"]: r for r in rows}
    assert by_id["broken"]["status"] == "error" and "unknown agent 'ghost'" in by_id["broken"]["error"]
    assert by_id[good.task_id]["status"] == "ok"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "swarmopt", "loadtest", *args], capture_output=True, text=True,
                          timeout=120)


def test_fail_if_sets_the_exit_code(finished):
    spec, out, res = finished
    s = res.summary["policies"]
    better = s["rules"]["slo_attainment"] >= s["monitor"]["slo_attainment"]
    holds = f"rules.slo_attainment {'>=' if better else '<'} monitor.slo_attainment"
    p = _cli(spec, "--out", str(out), "--resume", "--fail-if", "rules.changes_attempted > 100", "--fail-if", holds)
    assert p.returncode == 1, p.stderr
    assert f"fail-if holds: {holds}" in p.stderr and "changes_attempted > 100" not in p.stderr
    assert "SLO attainment, paired differences from monitor" in p.stdout
    p = _cli(spec, "--out", str(out), "--resume", "--fail-if", "rules.speed > 1")
    assert p.returncode == 2 and "unknown name 'rules.speed'" in p.stderr and "slo_attainment" in p.stderr
