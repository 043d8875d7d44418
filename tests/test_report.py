"""Summaries, plots and the run directory: honest figures, counts that add up, a self-contained report."""

from __future__ import annotations

import base64
import json
import re

import pandas as pd
import pytest
import structlog

from swarmopt import logs, run_scenario
from swarmopt.plots import STATUS_STYLE, plot_changes
from swarmopt.report import write_run
from swarmopt.results import format_summary

from conftest import MH_SCENARIO, ROOT, short

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def res():
    # seed 4 under the default policy: four changes; parallel tools with a circuit breaker (a bundle) kept, a
    # retry rolled back for its price, a faster tier rolled back (success fell), the breaker threshold kept
    return run_scenario(MH_SCENARIO, seed=4, runtime="local")


@pytest.fixture(scope="module")
def restored():
    # slow_tool_bulkhead seed 2 under thompson: four changes; a worker raise (4 -> 8, +15.9%, p = 0.18) whose gain
    # was too noisy to pass is reverted, undoing it makes the response time significantly worse, so it is restored
    return run_scenario(ROOT / "scenarios" / "slow_tool_bulkhead.yaml", seed=2, runtime="local", policy="thompson")


def test_counts_add_up(res, restored):
    for run in (res, restored):
        o = run.summary["optimizations"]
        assert o["attempted"] == o["kept"] + o["rolled_back"] + o["reverted"] + o["measuring"] == len(run.changes)
        assert o["in_force_at_end"] == o["kept"] + o["restored"] + o["measuring"]
        ev = run.events
        assert o["kept"] == (ev["event"] == "optimization.kept").sum()
        assert o["reverted"] == (ev["event"] == "optimization.reverted").sum()
        assert o["restored"] == (ev["event"] == "optimization.restored").sum()
    assert restored.summary["optimizations"]["restored"] >= 1
    back = restored.changes.query("status == 'restored'").iloc[0]
    assert back.undo_verdict == "fail" and back.undone_s < back.restored_s


def test_a_change_still_being_measured_at_the_end_is_counted(mh_scenario):
    # seed 1 under the source's rules schedules max_concurrency 4 -> 8 at 2100 s, effective 2220 s, first looked
    # at at 2700 s
    cut = run_scenario(short(mh_scenario, 2400), seed=1, runtime="local", policy="rules")
    o = cut.summary["optimizations"]
    assert o["measuring"] == 1 and o["attempted"] == o["kept"] + o["rolled_back"] + o["reverted"] + 1
    assert cut.changes.iloc[-1]["status"] == "measuring" and pd.isna(cut.changes.iloc[-1]["verdict"])


def test_a_short_run_says_n_a_with_the_reason_never_nan(mh_scenario):
    tiny = run_scenario(short(mh_scenario, 600), seed=1, runtime="local")
    text = "\n".join(format_summary(tiny.summary))
    assert "nan" not in text.lower()
    assert re.search(r"baseline +25-30 n/a: the run stopped at 10 min, before this span", text)
    assert re.search(r"before +n/a: no change took effect", text)
    hunter = tiny.summary["agents"]["market-hunter"]
    assert hunter["baseline"]["windows"] == 0 and hunter["after"]["windows"] == 5 and hunter["after"]["note"] is None
    no_fault = run_scenario(short(mh_scenario, 600, faults=[]), seed=1, runtime="local")
    assert re.search(r"baseline +n/a: no fault in the scenario", "\n".join(format_summary(no_fault.summary)))


def test_one_panel_per_targeted_metric_with_a_legend_of_outcomes(res):
    fig = plot_changes(res, "market-hunter")
    panels = [ax for ax in fig.axes if ax.get_ylabel()]
    assert [ax.get_ylabel() for ax in panels] == ["service time, mean (ms)", "success rate"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    statuses = set(res.changes.query("agent == 'market-hunter'")["status"])
    assert {STATUS_STYLE[s][1] for s in statuses} <= set(legend)
    assert not {STATUS_STYLE[s][1] for s in set(STATUS_STYLE) - statuses} & set(legend)
    assert "fault active" in legend and "threshold" in legend
    # a numbered marker per change, on the top panel only
    numbers = [t.get_text() for t in panels[0].texts]
    assert numbers == [str(i + 1) for i in range(len(res.changes))] and not panels[1].texts
    with pytest.raises(KeyError, match="allowed"):
        res.plot("nobody")
    with pytest.raises(KeyError, match="unknown metric 'warp'"):
        res.plot("market-hunter", "warp")
    one = res.plot("market-hunter", "success_rate")
    assert [ax.get_ylabel() for ax in one.axes if ax.get_ylabel()] == ["success rate"]
    assert one._repr_png_().startswith(PNG)


def test_html_report_embeds_its_plots(res, restored, tmp_path):
    write_run(res, tmp_path)
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [name for name, _ in images] == ["market-hunter.png"]
    assert base64.b64decode(images[0][1]) == (tmp_path / "market-hunter.png").read_bytes()
    assert base64.b64decode(images[0][1]).startswith(PNG)
    assert "src=\"http" not in page and "<link" not in page and "<script" not in page
    changes = (tmp_path / "report.md").read_text().split("## Changes")[1].split("\n## ")[0]
    assert changes.count("| market-hunter |") == len(res.changes)
    write_run(restored, tmp_path / "restored")
    assert "restored" in (tmp_path / "restored" / "report.html").read_text()


def test_a_reused_run_directory_loses_the_stale_files_only(res, mh_scenario, tmp_path):
    write_run(res, tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "chart.png").write_bytes(PNG)
    assert (tmp_path / "market-hunter.png").exists()
    calm = run_scenario(short(mh_scenario, 600), seed=1, runtime="local")  # no change: no plot
    write_run(calm, tmp_path)
    assert not (tmp_path / "market-hunter.png").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "chart.png").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["files"]) == sorted(p.name for p in tmp_path.iterdir() if p.name not in
                                              ("notes.txt", "chart.png"))


def test_jupyter_views_are_short(res):
    assert len(repr(res)) < 300 and repr(res).startswith("RunResult('market_hunter_degradation', seed=4")
    page = res._repr_html_()
    assert len(page) < 5000 and page.count("<table>") == 2
    o = res.summary["optimizations"]
    assert f"{o['kept']} kept" in page and "in force at the end" in page
    assert "parallel_tools false → true; circuit_breaker.enabled false → true" in page  # a bundle, knob by knob


def test_one_measurement_per_change_everywhere(res, tmp_path, capsys):
    """The deciding judgement's improvement is the same number in the events table (measured and decided rows),
    the changes table, the report and the narrative, positive = better."""
    ev = res.events
    # a change measured on over several looks has one measured row per look; the last one decided
    measured = ev[ev["event"] == "optimization.measured"].drop_duplicates("strategy_id", keep="last")
    measured = measured.set_index("strategy_id")
    decided = ev[ev["event"].isin(["optimization.kept", "optimization.reverted", "optimization.rolled_back"])]
    for col in ("improvement_pct", "ci_low_pct", "ci_high_pct", "p_value", "verdict"):
        assert list(decided[col]) == list(measured.loc[decided["strategy_id"], col])
    changes = res.changes.set_index("strategy_id")
    assert list(changes["improvement_pct"]) == list(measured.loc[changes.index, "improvement_pct"])
    kept = changes.query("kind == 'enable_parallel_tools' and status == 'kept'").iloc[0]
    assert kept.improvement_pct > 5 and kept.before > kept.after  # seed 4: +32% on the service time
    write_run(res, tmp_path)
    assert f"+{kept.improvement_pct:.1f}% [+{kept.ci_low_pct:.1f}, +{kept.ci_high_pct:.1f}]" in \
        (tmp_path / "report.md").read_text()
    logs.configure("json", "normal")  # the narrative: JSON lines keep the numbers
    try:
        run_scenario(MH_SCENARIO, seed=4, runtime="local", narrate=True)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    logged = next(e for e in lines if e["event"] == "optimization.kept" and e["kind"] == "enable_parallel_tools")
    assert logged["improvement_pct"] == pytest.approx(kept.improvement_pct, abs=0.05)
