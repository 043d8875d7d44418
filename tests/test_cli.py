"""The command line: the error path (exit 2, one line, no traceback) and a short run."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import MH_SCENARIO, ROOT


def swarmopt(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "swarmopt", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_invalid_scenario_exits_2_with_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MH_SCENARIO.read_text().replace("cycle_s: 300", "cycle_s: 90").replace(
        "agents:\n  - strategic_orchestrator.yaml", f"agents:\n  - {ROOT / 'agents' / 'strategic_orchestrator.yaml'}"))
    p = swarmopt("run", str(bad))
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "optimizer.cycle_s (90.0) must be a multiple of window_s" in p.stderr or "not found" in p.stderr


def test_bad_field_value_names_file_field_and_allowed_values(tmp_path):
    prof = tmp_path / "hunter.yaml"
    prof.write_text((ROOT / "agents" / "market_hunter.yaml").read_text().replace("parallel_tools: false",
                                                                                 "parallel_tools: maybe"))
    sc = tmp_path / "s.yaml"
    sc.write_text(f"name: s\nduration_s: 600\nagents: [{prof}]\n")
    p = swarmopt("run", str(sc))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    line = p.stderr.strip()
    assert str(prof) in line and "knobs.parallel_tools" in line and "boolean" in line and "maybe" in line


def test_missing_file_and_malformed_yaml(tmp_path):
    p = swarmopt("run", str(tmp_path / "nope.yaml"))
    assert p.returncode == 2 and "file not found" in p.stderr and "Traceback" not in p.stderr
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    p = swarmopt("run", str(bad))
    assert p.returncode == 2 and "not valid YAML" in p.stderr and "Traceback" not in p.stderr


def test_scenarios_lists_the_repository_scenarios():
    p = swarmopt("scenarios")
    assert p.returncode == 0 and "market_hunter_degradation" in p.stdout


def test_local_run_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    p = swarmopt("run", str(MH_SCENARIO), "--seed", "2", "--duration", "2400", "--runtime", "local", "--out", str(out),
                 "--log-format", "json")
    assert p.returncode == 0, p.stderr
    for name in ("metrics.parquet", "events.parquet", "autonomy.parquet", "summary.json", "report.md", "report.html"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["windows"] == 40 and summary["seed"] == 2
    logged = [json.loads(line) for line in p.stderr.splitlines() if line.startswith("{")]
    assert "bottleneck.detected" in {e["event"] for e in logged}  # cycle.started only with --verbose
    assert p.stdout.startswith(f"run directory: {out}\noptimizations: ")
