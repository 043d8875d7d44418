"""Flat memory: a run with a run directory writes its rows there in chunks as it goes, holds only the rows since,
and ends with the very tables an in-memory run has."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from swarmopt import Simulation, run_scenario, spool
from swarmopt.guard import COSTS, estimate, held_rows
from swarmopt.live.state import LiveState
from swarmopt.results import Collector

from conftest import assert_same, short

CHUNK = 40  # rows per part: a few optimizer cycles of five agents (25 rows a cycle)
HOURS = 3.0


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(spool, "CHUNK_ROWS", CHUNK)


@pytest.fixture(scope="module")
def scenario(mh_scenario):
    return short(mh_scenario, HOURS * 3600, seed=4)


@pytest.fixture(scope="module")
def in_memory(scenario):
    return run_scenario(scenario, runtime="local")


def without_run_id(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "run_id"}


def test_parts_are_written_as_the_run_goes_and_memory_holds_few_rows(scenario, in_memory, tmp_path):
    out = tmp_path / "run"
    sim = Simulation(scenario, out_dir=out)
    per_cycle = len(scenario.agents) * scenario.optimizer.cycle_s / scenario.window_s
    held = []
    while not sim.done:
        sim.step()
        held.append(len(sim._sink.metric_rows))
        if sim.now == 3600:  # an hour in: most rows closed so far are on disk already
            on_disk = pd.read_parquet(out / "parts" / "metrics")
            closed = len(on_disk) + len(sim._sink.metric_rows)
            assert closed >= 250 and len(on_disk) >= closed - CHUNK - per_cycle
            assert_same(on_disk, in_memory.metrics.iloc[:len(on_disk)])
            assert json.loads((out / "summary.json").read_text())["status"] == "running"
    # the rows held never exceed one chunk and one cycle, while the run closed 900
    assert max(held) <= CHUNK + per_cycle < len(in_memory.metrics) / 10
    assert max(len(sim._sink.event_rows), len(sim._sink.process_rows)) <= CHUNK + 200
    sim.write()
    res = sim.result()
    for name in ("metrics", "events", "autonomy"):
        assert_same(getattr(in_memory, name), getattr(res, name))
        assert_same(getattr(in_memory, name), pd.read_parquet(out / f"{name}.parquet"))
    assert_same(in_memory.changes, res.changes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and without_run_id(res.summary) == without_run_id(in_memory.summary)
    assert not (out / "parts").exists()  # merged into the tables


def test_run_scenario_streams_and_reads_its_result_from_the_run_directory(scenario, in_memory, tmp_path):
    res = run_scenario(scenario, runtime="local", out_dir=tmp_path / "run")
    assert res.tables["metrics"].chunks == (tmp_path / "run" / "metrics.parquet",)  # loaded when asked for
    assert f", {len(in_memory.metrics)} metric rows, {len(in_memory.events)} events," in repr(res)
    assert_same(in_memory.metrics, res.metrics)
    assert_same(in_memory.events, res.events)
    assert without_run_id(res.summary) == without_run_id(in_memory.summary)
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.suffix != ".png") == [
        "autonomy.parquet", "events.parquet", "metrics.parquet", "process.parquet", "report.html", "report.md",
        "summary.json"]


def test_a_killed_run_leaves_its_parts_and_says_it_was_running(scenario, in_memory, tmp_path):
    sim = Simulation(scenario, out_dir=tmp_path / "run")
    sim.run(until=5400)  # then nothing: as if the process were killed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "running" and summary["parts"] == "parts/" and summary["seed"] == 4
    events = pd.read_parquet(tmp_path / "run" / "parts" / "events")
    assert len(events) >= CHUNK
    assert_same(events, in_memory.events.iloc[:len(events)])


def test_a_fork_of_a_streamed_run_continues_exactly_in_memory(scenario, in_memory, tmp_path):
    sim = Simulation(scenario, out_dir=tmp_path / "run")
    sim.run(until=6000)
    other = sim.fork()
    assert other.out_dir is None and other._sink.spool is None
    other.run()
    sim.run()
    assert_same(in_memory.metrics, other.metrics)
    assert_same(in_memory.events, other.events)
    assert_same(in_memory.metrics, sim.metrics)


def test_a_live_view_of_a_streamed_run_starts_from_what_is_on_disk(scenario, tmp_path):
    streamed = Simulation(scenario, out_dir=tmp_path / "run").run(until=7200)
    kept = Simulation(scenario).run(until=7200)
    assert streamed._sink.chunks["metrics"] and streamed._sink.chunks["events"]
    views = []
    for sim in (streamed, kept):
        state = LiveState(sim.scenario)
        sim._sink.replay(state)
        views.append(state.snapshot())
    a, b = views
    assert a["agents"] == b["agents"] and a["now_s"] == b["now_s"] > 7000
    assert a["optimizer"]["judged"] == b["optimizer"]["judged"]
    assert [(d["t_s"], d["event"], d["agent"]) for d in a["optimizer"]["decisions"]] == [
        (d["t_s"], d["event"], d["agent"]) for d in b["optimizer"]["decisions"]]


def test_a_rewind_never_reaches_rows_written_out(mh_scenario, tmp_path):
    sink = Collector(mh_scenario, narrate_events=False, spool=spool.PartFiles(tmp_path / "parts"), chunk_rows=2)
    sink.rows([{"agent": "a", "window": 0, "t_start_s": 0.0, "t_end_s": 60.0}] * 3)
    early = sink.mark()  # three rows: written out as a part
    assert early[0] == 3 and sink.metric_rows == [] and sink.written["metrics"] == 3
    sink.rows([{"agent": "a", "window": 1, "t_start_s": 60.0, "t_end_s": 120.0}])
    later = sink.mark()  # one row: kept
    sink.rows([{"agent": "a", "window": 2, "t_start_s": 120.0, "t_end_s": 180.0}])
    sink.rewind(later)
    assert len(sink.metric_rows) == 1 and len(sink.metrics_frame()) == 4
    sink.rewind(early)
    assert sink.metric_rows == []
    with pytest.raises(RuntimeError, match="before the rows written out"):
        sink.rewind((2, 0, 0, len(sink.autonomy_rows)))


def test_the_budget_of_a_streamed_week_counts_only_the_rows_held(mh_scenario):
    week = short(mh_scenario, 7 * 86400.0)
    kept, streamed = estimate(week), estimate(week, streamed=True)
    assert kept.rows == streamed.rows == 7 * 1440 * 5
    held = held_rows(week, kept.rows)
    assert held == held_rows(short(mh_scenario, 86400.0), 1440 * 5) < kept.rows / 8  # a day holds as many
    assert kept.peak_mb - streamed.peak_mb == pytest.approx((kept.rows - held) * COSTS.row / 2**20)


@pytest.mark.ray
def test_a_dead_actor_in_a_streamed_ray_run_gives_the_same_tables(ray_session, scenario, tmp_path):
    sc = short(scenario, 5400)  # past the checkpoint of 3600 s (one per simulated hour by default)
    in_memory = run_scenario(sc, runtime="local")
    with Simulation(sc, runtime="ray", out_dir=tmp_path / "run") as sim:
        sim.run(until=4500)
        written = sim._sink.written["metrics"]
        assert written > 0
        sim.step()  # into the next cycle: rows since the last mark are not written yet
        ray_session.kill(sim.actors()["optimizer"])
        sim.run()
        restarted = sim.events[sim.events["event"] == "actor.restarted"]
        assert list(restarted["agent"]) == ["optimizer"]
        sim.write()
    events = pd.read_parquet(tmp_path / "run" / "events.parquet")
    assert_same(in_memory.metrics, pd.read_parquet(tmp_path / "run" / "metrics.parquet"))
    pd.testing.assert_frame_equal(in_memory.events,
                                  events[events["event"] != "actor.restarted"].reset_index(drop=True))
