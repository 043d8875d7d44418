"""A cache change judged once the cache has settled: a TTL change with ``optimizer.cache_settle``, a raised size
bound always, once the added entries have filled."""

from __future__ import annotations

import pytest

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange
from swarmopt.loader import load_scenario
from swarmopt.optimizer import split
from swarmopt.optimizer.trial import fill_windows, settle_windows

from conftest import MH_SCENARIO, ROOT

MH = "market-hunter"


def test_a_ttl_change_settles_over_its_longer_ttl():
    def ttl(old, new, tool="data_source"):
        return KnobChange(MH, f"cache_ttl_s.{tool}", old, new)

    assert settle_windows((ttl(60.0, 240.0),), 60.0) == 4
    assert settle_windows((ttl(3600.0, 960.0),), 60.0) == 60  # a cut: entries filled under 3600 s still live
    assert settle_windows((ttl(0.0, 90.0), ttl(30.0, 60.0, "web_search")), 60.0) == 2
    assert settle_windows((KnobChange(MH, "max_concurrency", 4, 8),), 60.0) == 0
    assert split.burn_in((KnobChange(MH, "max_concurrency", 4, 8),), 60.0) == 1  # a split always burns one in


@pytest.fixture(scope="module")
def runs():
    return {on: run_scenario(MH_SCENARIO, seed=2, runtime="local", overrides={"optimizer.cache_settle": on})
            for on in (False, True)}


def first_ttl_change(events):
    scheduled = events[(events["event"] == "optimization.scheduled") & (events["kind"] == "raise_cache_ttl")
                       & (events["agent"] == MH)].iloc[0]
    looks = events[(events["event"] == "optimization.measured") & (events["strategy_id"] == scheduled["strategy_id"])]
    return scheduled, looks


def test_the_after_span_starts_one_ttl_after_the_change(runs):
    """Seed 2 raises the data source's TTL 60 -> 960 s at its second change: with ``cache_settle`` every look's
    after-span starts 960 s (the longer TTL) after the change took effect (without it, at once) and the first
    look still judges ``measure_windows`` windows. (How the hit rate settles after a raise, in a controlled
    cache: tests/test_cache.py::test_after_a_ttl_raise_the_hit_ratio_keeps_its_old_level_for_one_old_ttl.)"""
    measure = runs[True].scenario.optimizer.measure_windows * runs[True].scenario.window_s
    for on, res in runs.items():
        scheduled, looks = first_ttl_change(res.events)
        eff, ttl = scheduled["effective_s"], max(scheduled["old_value"], scheduled["new_value"])
        assert ttl == 960.0 and len(looks) >= 1
        assert (looks["after_start_s"] == eff + (ttl if on else 0.0)).all()
        assert looks["after_end_s"].iloc[0] - looks["after_start_s"].iloc[0] == measure


def test_a_cache_size_raise_settles_until_the_added_entries_fill():
    """Every miss fills an entry: 480 added entries at 75 decisions a window, 49% of them hits, fill in 13 windows."""
    raise_ = KnobChange(MH, "max_cache_size.data_source", 160, 640)
    rows = [{"decision_count": 75, "cache_hit_rate_data_source": 0.49}] * 5
    assert fill_windows((raise_,), rows) == 13  # ceil(480 / 38.25)
    assert fill_windows((raise_,), rows + [{"decision_count": 0, "cache_hit_rate_data_source": float("nan")}]) == 13
    assert fill_windows((raise_.inverse(),), rows) == 0  # a cut evicts at once
    assert fill_windows((KnobChange(MH, "max_cache_size.data_source", 0, 640),), rows) == 0  # 0 is unbounded
    assert fill_windows((raise_,), []) == 0 and fill_windows((raise_,), [{"decision_count": 75}]) == 0
    assert fill_windows((KnobChange(MH, "max_concurrency", 4, 8),), rows) == 0


def test_a_raised_cache_bound_is_judged_once_filled_and_the_hit_rate_rises_over_the_fill():
    """cache_too_small, the default policy, seed 1: both raises of the data source's bound (40 -> 160, then 160 ->
    640) are judged from their fill on, at most ``max_measure_windows`` after the change (the second's fill, 480
    entries at about 22 misses a window, is capped), and the cache's hit rate in the windows judged is above
    that of the windows it filled in (0.49 then 0.53 for the second; so for the second raise on each of seeds
    1-10, where the first five windows after it used to read no gain and 5 of those 10 raises were reverted)."""
    res = run_scenario(load_scenario(ROOT / "scenarios" / "library" / "cache_too_small.yaml"), seed=1,
                       runtime="local")
    ev, cfg, window_s = res.events, res.scenario.optimizer, res.scenario.window_s
    m = res.metrics[res.metrics["agent"] == MH]
    raises = ev[(ev["event"] == "optimization.scheduled") & (ev["kind"] == "raise_cache_size")]
    assert list(zip(raises["old_value"], raises["new_value"], strict=True)) == [(40, 160), (160, 640)]
    for _, r in raises.iterrows():
        seen = m[m["t_end_s"] <= r["t_s"] + 1e-9].tail(cfg.measure_windows).to_dict("records")
        fill = min(cfg.max_measure_windows, fill_windows((KnobChange(MH, r["knob"], r["old_value"], r["new_value"]),),
                                                          seen))
        looks = ev[(ev["event"] == "optimization.measured") & (ev["strategy_id"] == r["strategy_id"])]
        assert fill >= 3 and len(looks) >= 1
        assert (looks["after_start_s"] == r["effective_s"] + fill * window_s).all()
    assert fill == cfg.max_measure_windows
    hits = m.set_index("t_start_s")["cache_hit_rate"]
    start = looks["after_start_s"].iloc[0]
    assert hits.loc[start:looks["after_end_s"].iloc[0] - window_s].mean() > hits.loc[
        r["effective_s"]:start - window_s].mean()
