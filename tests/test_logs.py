"""The narrative's levels, its JSON lines, the run id and the progress bar."""

from __future__ import annotations

import json
import re

import pytest
import structlog

from swarmopt import Simulation, logs, progress, run_scenario

from conftest import MH_SCENARIO, assert_same, short, swarmopt_cli


def _cycle(t, severity="high", results=0):
    return [
        {"t_s": t, "event": "cycle.started", "autonomy": 0.8},
        {"t_s": t, "event": "bottleneck.detected", "agent": "market-hunter", "type": "agent_response_time",
         "severity": severity, "metric": "response_time_ms_mean", "value": 2300.0},
        {"t_s": t, "event": "strategies.generated", "value": 0, "detail": "0 reactive, 0 proactive"},
        {"t_s": t, "event": "report.received", "agent": "strategic-orchestrator", "value": results, "detail": ""},
    ]


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield
    structlog.reset_defaults()


def _lines(capsys, verbosity, fmt="plain"):
    logs.configure(fmt, verbosity)
    for t, sev in ((300, "high"), (600, "high"), (900, "medium"), (1200, "medium")):
        logs.narrate(_cycle(t, sev), run_id="r1")
    logs.narrate([{"t_s": 1260, "event": "knob.applied", "agent": "market-hunter", "knob": "max_concurrency",
                   "old": 4, "new": 8}], run_id="r1")
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_normal_shows_what_changed_once(capsys):
    lines = _lines(capsys, "normal")
    events = [re.search(r"\] (\S+)", line).group(1) for line in lines]
    # the bottleneck when it starts and when its severity changes; no empty cycles, no reports
    assert events == ["bottleneck.detected", "bottleneck.detected", "knob.applied"]
    assert lines[0].startswith("0:05:00 ") and lines[1].startswith("0:15:00 ") and "severity=medium" in lines[1]
    assert lines[2].startswith("0:21:00 ") and "change='max_concurrency 4 -> 8'" in lines[2]


def test_verbose_shows_everything_and_quiet_nothing(capsys):
    assert len(_lines(capsys, "verbose")) == 4 * 4 + 1
    assert _lines(capsys, "quiet") == []


def test_a_repeat_is_per_run(capsys):
    logs.configure("plain", "normal")
    logs.narrate(_cycle(300), run_id="a")
    logs.narrate(_cycle(300), run_id="b")  # another run (a fork) sees the bottleneck for the first time too
    assert capsys.readouterr().err.count("bottleneck.detected") == 2


def test_json_lines_carry_numeric_time_run_id_and_wall_clock(capsys):
    lines = [json.loads(line) for line in _lines(capsys, "normal", "json")]
    assert [e["t_s"] for e in lines] == [300, 900, 1260]
    assert {e["run_id"] for e in lines} == {"r1"} and {e["level"] for e in lines} == {"info"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", e["timestamp"]) for e in lines)
    assert lines[2]["new"] == 8  # values keep their type


def test_run_ids_are_unique_and_do_not_touch_results(mh_scenario):
    sc = short(mh_scenario, 1200)
    a, b = Simulation(sc, seed=4), Simulation(sc, seed=4)
    fork = a.fork()
    assert re.fullmatch(r"market_hunter_degradation-seed4-[0-9a-f]{6}", a.run_id)
    assert len({a.run_id, b.run_id, fork.run_id}) == 3
    for s in (a, b, fork):
        s.run()
    assert_same(a.metrics, b.metrics)
    assert_same(a.events, fork.events)


def test_progress_bar_reports_simulated_time_and_keeps_results(mh_scenario, capsys, monkeypatch):
    sc = short(mh_scenario, 1200)
    plain = run_scenario(sc, seed=3, runtime="local")
    monkeypatch.setattr(progress, "in_jupyter", lambda: True)  # the Jupyter path: tqdm.auto (text without widgets)
    shown = run_scenario(sc, seed=3, runtime="local")  # progress=None: on in Jupyter
    err = capsys.readouterr().err
    assert "market_hunter_degradation seed 3: 100%" in err and "1200/1200 sim s" in err and "sim s/s" in err
    assert_same(plain.metrics, shown.metrics)
    assert_same(plain.events, shown.events)
    monkeypatch.setattr(progress, "in_jupyter", lambda: False)  # the terminal path: rich on stderr
    on_terminal = run_scenario(sc, seed=3, runtime="local", progress=True)
    assert_same(plain.events, on_terminal.events)


def test_cli_quiet_prints_only_the_summary_and_verbose_every_event(tmp_path):
    args = ("run", str(MH_SCENARIO), "--seed", "2", "--duration", "2400", "--runtime", "local")
    quiet = swarmopt_cli(*args, "--out", str(tmp_path / "q"), "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith("run directory:") and "market-hunter" in quiet.stdout
    verbose = swarmopt_cli(*args, "--out", str(tmp_path / "v"), "-v", "--log-format", "json")
    events = [json.loads(line)["event"] for line in verbose.stderr.splitlines()]
    assert events.count("cycle.started") == 8 and "report.received" in events
    normal = swarmopt_cli(*args, "--out", str(tmp_path / "n"), "--log-format", "json")
    shown = [json.loads(line)["event"] for line in normal.stderr.splitlines()]
    assert "cycle.started" not in shown and "bottleneck.detected" in shown and len(shown) < len(events) / 2
