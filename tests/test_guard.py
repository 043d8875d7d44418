"""The resource guard (estimate, budget) and the run-directory check."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swarmopt.api import run_scenario
from swarmopt.benchmarks import cases
from swarmopt.cli import app
from swarmopt.guard import DEFAULT_MAX_MEMORY_MB, DEFAULT_MAX_TASKS, check_budget, check_out_dir, estimate
from swarmopt.loader import InputError, build_scenario, load_scenario
from swarmopt.schema import Scenario

from conftest import MH_SCENARIO, ROOT, short


def cli(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stderr.strip(), result.stdout


def scaled(sc: Scenario, rate: float, **update) -> Scenario:
    """``sc`` with every agent's base rate set to ``rate`` (and other fields)."""
    agents = [a.model_copy(update={"base_rate_per_s": rate}) for a in sc.agents]
    return Scenario.model_validate(dict(sc) | {"agents": agents} | update)


def test_estimated_decisions_match_the_simulation_and_messages_bound_it(mh_scenario):
    sc = short(mh_scenario, 2400)  # 30 min healthy + 10 min with the 1.4x load surge on the Market Hunter
    est = estimate(sc)
    res = run_scenario(sc, runtime="local")
    # decisions are Poisson: 5 standard deviations of the expected count
    assert abs(res.metrics["decision_count"].sum() - est.tasks) < 5 * math.sqrt(est.tasks)
    # a message leaves only with a successful decision: the estimate counts every decision's draws
    sent = res.metrics["messages_sent"].sum()
    assert 0.6 * est.messages < sent <= est.messages
    assert est.rows == len(res.metrics) and est.ticks == 40 and est.agents == 5


def test_load_shape_and_surges_enter_the_estimate(mh_scenario):
    base = short(mh_scenario, 3600, faults=[])
    rate = sum(a.base_rate_per_s for a in base.agents)
    assert estimate(base).tasks == pytest.approx(rate * 3600, rel=1e-3)
    ramp = Scenario.model_validate(dict(base) | {"load": {"kind": "ramp", "start_s": 600, "end_s": 1800,
                                                          "multiplier": 1.0, "ramp_to": 3.0}})
    # 600 s at 1x, a linear ramp to 3x over 1200 s (mean 2x), then 1800 s at 3x
    assert estimate(ramp).tasks == pytest.approx(rate * (600 + 1200 * 2 + 1800 * 3), rel=1e-3)
    assert estimate(ramp).peak_rate_per_s == pytest.approx(3 * max(a.base_rate_per_s for a in base.agents))
    surge = dict(kind="load_surge", target="market-hunter", at_s=600, duration_s=600, factor=5.0)
    hunter = next(a.base_rate_per_s for a in base.agents if a.id == "market-hunter")
    with_surge = Scenario.model_validate(dict(base) | {"faults": [surge]})
    assert estimate(with_surge).tasks - estimate(base).tasks == pytest.approx(hunter * 4 * 600, rel=1e-3)


def test_shipped_and_benchmark_scenarios_fit_the_default_budget():
    full = cases.FULL
    scenarios = [load_scenario(p) for p in sorted((ROOT / "scenarios").glob("*.yaml"))] + [
        cases.scenario(duration_s=full.day_s, tick_s=full.day_tick_s),
        cases.scenario(full.scale_count, full.scale_s, full.scale_tick_s),
        cases.scenario(duration_s=full.ray_ticks_duration_s, tick_s=full.ray_ticks_tick_s),
        cases.scenario(max(full.optimizer_agents) // 5, faults_at_s=0.0),
    ]
    for sc in scenarios:
        for runtime in ("local", "ray"):
            est = check_budget(sc, runtime)
            assert est.tasks <= DEFAULT_MAX_TASKS and est.peak_mb <= DEFAULT_MAX_MEMORY_MB


def test_over_budget_is_refused_with_the_estimate_and_the_option(mh_scenario):
    busy = scaled(mh_scenario, 1000.0, load={"kind": "constant", "multiplier": 100.0})  # every bound at its top
    with pytest.raises(InputError, match=r"about [\d,]{13} decisions .*at most 10,000,000 "
                                         r"\(raise it with --max-tasks / max_tasks=\)"):
        run_scenario(busy, runtime="local")
    with pytest.raises(InputError, match=r"peak memory about [\d,]+ MiB .*at most 4,096 MiB \(raise it with "
                                         r"--max-memory / max_memory_mb="):
        check_budget(busy, max_tasks=10**12)
    assert check_budget(busy, max_tasks=10**12, max_memory_mb=10**9).tasks > 10**9
    # many replicas with a large keyspace: few decisions, but 16 bytes per cached key per agent
    data = {"name": "keys", "duration_s": 600, "agents": [{"profile": {
        "id": "k", "name": "K", "base_rate_per_s": 0.1, "tools": [{"name": f"t{i}", "latency_ms_median": 10,
                                                                   "keyspace": 1_000_000} for i in range(4)]},
        "count": 1000}]}
    sc = build_scenario(data)
    assert estimate(sc).peak_mb > 60_000 and estimate(sc).tasks < 100_000
    code, err, _ = cli("run", MH_SCENARIO, "--dry-run", "--runtime", "local", "--max-memory", "100")
    assert code == 2 and err.startswith(f"error: {MH_SCENARIO}: peak memory about") and "--max-memory" in err


def test_dry_run_prints_the_estimate_and_runs_nothing(tmp_path):
    out = tmp_path / "out"
    code, err, stdout = cli("run", MH_SCENARIO, "--dry-run", "--runtime", "local", "--out", out, "--seed", "3")
    assert code == 0, err
    assert "seed 3, 7200 s; estimate: 25,632 decisions" in stdout and "peak memory about" in stdout
    assert not out.exists()


def test_out_dir_checks(tmp_path):
    assert check_out_dir(tmp_path / "new") == tmp_path / "new"
    assert check_out_dir(tmp_path) == tmp_path  # empty
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="non-empty directory that is not a swarmopt run directory"):
        check_out_dir(tmp_path)
    assert check_out_dir(tmp_path, overwrite=True) == tmp_path
    with pytest.raises(InputError, match="an existing file; allowed: .* or --overwrite"):
        check_out_dir(tmp_path / "notes.txt")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("{}")
    (run_dir / "metrics.parquet").write_text("")
    assert check_out_dir(run_dir) == run_dir  # an earlier run's directory is replaced


def test_out_is_refused_before_running_and_overwrite_replaces_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    args = ["run", MH_SCENARIO, "--runtime", "local", "--duration", "60", "--log-format", "plain"]
    code, err, _ = cli(*args, "--out", tmp_path)
    assert code == 2 and "not a swarmopt run directory" in err
    code, err, _ = cli(*args, "--out", tmp_path / "notes.txt")
    assert code == 2 and "an existing file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written, nothing run
    code, err, _ = cli(*args, "--out", tmp_path / "notes.txt", "--overwrite")
    assert code == 0, err
    assert json.loads((tmp_path / "notes.txt" / "summary.json").read_text())["status"] == "completed"


def _peak_rss_mib(scenario: dict) -> tuple[float, float]:
    """(measured peak RSS, estimate) of a local run of ``scenario`` in a fresh interpreter, MiB.

    The peak is ``VmHWM`` of /proc/self/status, not ``ru_maxrss``: Linux carries
    the latter over ``exec`` from the forked parent (this whole test process)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc/self/status here")
    code = f"""
import json
from swarmopt.api import run_scenario
from swarmopt.guard import estimate
from swarmopt.loader import build_scenario, AGENTS_DIR
sc = build_scenario(json.loads({json.dumps(json.dumps(scenario))}), "calibration", AGENTS_DIR)
run_scenario(sc, runtime="local")
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps([int(hwm.split()[1]) / 1024, estimate(sc).peak_mb]))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return tuple(json.loads(p.stdout.splitlines()[-1]))


def test_memory_estimate_covers_the_shipped_scenario():
    measured, est = _peak_rss_mib({"name": "shipped", "duration_s": 1200, "tick_s": 60, "agents": [
        "strategic_orchestrator.yaml", "market_hunter.yaml", "narrative_architect.yaml", "market_analyzer.yaml",
        "execution_agent.yaml"]})
    assert measured <= est <= 2 * measured, (measured, est)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["busy agent", "message flood", "2,000 agents"])
def test_memory_estimate_covers_heavy_scenarios(kind):
    quiet = {"id": "q", "name": "Q", "base_rate_per_s": 0.01,
             "tools": [{"name": "t", "latency_ms_median": 10, "keyspace": 5000}]}
    scenario = {
        # 3,000 decisions/s into 4 workers: 180,000 per window, the queue never drains; the
        # optimizer adds workers and judges the change on 4 windows (720,000 decisions)
        "busy agent": {"duration_s": 600, "load": {"multiplier": 3},
                       "optimizer": {"cycle_s": 60, "measure_windows": 2},
                       "agents": [{"profile": {"id": "h", "name": "H", "base_rate_per_s": 1000,
                                               "tools": [{"name": "t", "latency_ms_median": 100}]}}]},
        # 600,000 storm messages into an inbox that handles about 7 a second
        "message flood": {"duration_s": 600, "agents": [{"profile": quiet}], "faults": [
            {"kind": "coordination_storm", "target": "q", "at_s": 0, "messages_per_s": 1000}]},
        "2,000 agents": {"duration_s": 600, "tick_s": 600, "optimizer": {"cycle_s": 600},
                         "agents": [{"profile": quiet, "count": 1000},
                                    {"profile": quiet | {"id": "r"}, "count": 1000}]},
    }[kind]
    measured, est = _peak_rss_mib({"name": "heavy"} | scenario)
    assert measured <= est <= 2.5 * measured, (measured, est)
