"""Smoke test of ``python -m swarmopt.benchmarks --quick`` on the cases without Ray.

Checks that every figure is produced and sane; speed targets are not asserted.
"""

from __future__ import annotations

import json
import math

from swarmopt import benchmarks
from swarmopt.benchmarks.cases import LOCAL_CASES

LOCAL_FIGURES = {
    "engine_tasks_per_s", "engine_tasks_per_s_dense", "day_wall_s_local", "day_peak_mem_mib_local",
    "optimizer_cycle_ms_small", "optimizer_cycle_ms_medium", "optimizer_cycle_ms_large",
    "scale_wall_s_local", "scale_peak_mem_mib_local",
}


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
