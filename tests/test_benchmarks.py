"""Smoke test of ``python -m swarmopt.benchmarks --quick`` on the cases without Ray.

Checks that every figure is produced and sane; speed targets are not asserted.
"""

from __future__ import annotations

import json
import math

import pytest

from swarmopt import benchmarks
from swarmopt.benchmarks.cases import LOCAL_CASES

QUEUE_FIGURES = {f"queue_{size}_{what}" for size in ("dense", "sparse") for what in (
    "engine_tasks_per_s", "plain_tasks_per_s", "simpy_tasks_per_s", "engine_over_plain", "engine_over_simpy",
    "wait_max_z")}
LOCAL_FIGURES = {
    "engine_tasks_per_s", "engine_tasks_per_s_dense", "day_wall_s_local", "day_peak_mem_mib_local",
    "optimizer_cycle_ms_small", "optimizer_cycle_ms_medium", "optimizer_cycle_ms_large",
    "scale_wall_s_local", "scale_peak_mem_mib_local", "engine_day_over_simpy", "optimizer_cycle_ratio",
    "optimizer_share", "agent_window_us_5", "agent_window_us_10", "agent_window_us_20", "agent_window_cost_ratio",
    "stream_peak_mem_mib_short", "stream_peak_mem_mib_long", "stream_wall_s_long", "stream_mem_ratio",
} | QUEUE_FIGURES


def test_quick_local_benchmarks_report_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert benchmarks.main(["--quick", "--local-only", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    figures = {f["id"]: f for f in doc["figures"]}
    assert set(figures) == LOCAL_FIGURES
    assert set(doc["cases"]) == set(LOCAL_CASES)
    for fid, f in figures.items():
        assert math.isfinite(f["value"]) and f["value"] > 0, fid
        assert f["status"] in ("not judged (--quick)", "-"), fid
        assert f["figure"] in printed
    assert figures["day_peak_mem_mib_local"]["value"] < 4096
    assert all(c["error"] is None for c in doc["cases"].values())
    value = {fid: f["value"] for fid, f in figures.items()}
    assert value["engine_day_over_simpy"] == pytest.approx(
        value["engine_tasks_per_s"] / value["queue_sparse_simpy_tasks_per_s"])
    assert value["optimizer_cycle_ratio"] == pytest.approx(
        value["optimizer_cycle_ms_large"] / value["optimizer_cycle_ms_medium"])
    assert value["optimizer_share"] < 100  # the optimizer's calls are part of the run's wall time
    assert value["stream_mem_ratio"] == pytest.approx(
        value["stream_peak_mem_mib_long"] / value["stream_peak_mem_mib_short"])
    assert doc["cases"]["stream-long"]["result"]["rows"] == 4 * doc["cases"]["stream-short"]["result"]["rows"]
    assert value["agent_window_cost_ratio"] == pytest.approx(
        max(value["agent_window_us_10"], value["agent_window_us_20"]) / value["agent_window_us_5"])
    for size in ("dense", "sparse"):
        engine, plain, simpy = (value[f"queue_{size}_{name}_tasks_per_s"] for name in ("engine", "plain", "simpy"))
        assert value[f"queue_{size}_engine_over_plain"] == pytest.approx(100 * engine / plain)
        assert value[f"queue_{size}_engine_over_simpy"] == pytest.approx(engine / simpy)
        r = doc["cases"][f"queue-{size}"]["result"]
        # the plain and SimPy queues serve the same draws: the same waits, task by task
        assert r["simpy_plain_max_abs_diff_s"] < 1e-9
        assert r["plain"]["wait_ms"] == r["simpy"]["wait_ms"]
        # sane, not judged: every mean wait (exponential service) within a factor 2 of Erlang C; the
        # engine's and the plain queue's lognormal waits within a factor 1.5 of each other
        for name in ("engine", "plain", "simpy"):
            assert 0.5 < r[name]["wait_ms"]["exponential"][0] / r["erlang_c_wait_ms"] < 2.0, (size, name)
            assert r[name]["tasks"] > 5000
        assert 1 / 1.5 < r["engine"]["wait_ms"]["lognormal"][0] / r["plain"]["wait_ms"]["lognormal"][0] < 1.5


def test_every_figure_is_labelled_in_words():
    """The table's labels come from the sizes, never from a case's result: the Ray day's rows beside the local
    day's and the queues' (a name once reused for a result dict put that dict in the Ray day's labels)."""
    day = {"wall_s": 4.0, "tasks": 300_000, "driver_peak_rss_mib": 200.0, "run_s": 4.0}
    queue = {"simpy": {"tasks_per_s": 80_000.0}}
    runs = {"local-day": benchmarks.CaseRun(day, 200.0, 200.0),
            "ray-day": benchmarks.CaseRun(day | {"ray_init_s": 1.0, "ray_shutdown_s": 0.5}, 900.0, 800.0),
            "queue-sparse": benchmarks.CaseRun(queue, 100.0, 100.0)}
    table = benchmarks._figures(runs, benchmarks.FULL, judged=True).reset_index()
    labels = dict(zip(table["id"], table["figure"], strict=True))
    assert labels["day_wall_s_ray"] == "one simulated day, Ray: wall time"
    assert labels["day_peak_mem_mib_ray"] == "one simulated day, Ray: peak memory"
    assert not any("{" in label for label in labels.values())
