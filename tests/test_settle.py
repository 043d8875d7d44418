"""A cache TTL change judged once the cache has settled (``optimizer.cache_settle``)."""

from __future__ import annotations

import pytest

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange
from swarmopt.optimizer import split
from swarmopt.optimizer.trial import settle_windows

from conftest import MH_SCENARIO

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
    return {on: run_scenario(MH_SCENARIO, seed=1, runtime="local", overrides={"optimizer.cache_settle": on})
            for on in (False, True)}


def first_ttl_change(events):
    scheduled = events[(events["event"] == "optimization.scheduled") & (events["kind"] == "raise_cache_ttl")
                       & (events["agent"] == MH)].iloc[0]
    looks = events[(events["event"] == "optimization.measured") & (events["strategy_id"] == scheduled["strategy_id"])]
    return scheduled, looks


def test_the_after_span_starts_one_ttl_after_the_change_and_the_hit_rate_settles_there(runs):
    """Seed 1 raises the data source's TTL 60 -> 240 s at its first change: with ``cache_settle`` every look's
    after-span starts 240 s after the change took effect (without it, at once) and the first look still judges
    ``measure_windows`` windows; the cache's hit rate is lower in those 240 s than in the windows judged: the
    transient the setting leaves out."""
    window_s = runs[True].scenario.window_s
    measure = runs[True].scenario.optimizer.measure_windows * window_s
    for on, res in runs.items():
        scheduled, looks = first_ttl_change(res.events)
        eff = scheduled["effective_s"]
        assert len(looks) >= 1
        assert (looks["after_start_s"] == eff + (240.0 if on else 0.0)).all()
        assert looks["after_end_s"].iloc[0] - looks["after_start_s"].iloc[0] == measure
    scheduled, looks = first_ttl_change(runs[True].events)
    eff = scheduled["effective_s"]
    m = runs[True].metrics
    hits = m[m["agent"] == MH].set_index("t_start_s")["cache_hit_rate_data_source"]
    settling = hits.loc[eff:eff + 240.0 - window_s].mean()
    judged = hits.loc[eff + 240.0:looks["after_end_s"].iloc[0] - window_s].mean()
    # 0.49 then 0.54 here; the first TTL's windows are 0.02-0.05 below the next five on each of the five seeds
    # of 1-8 that raise this TTL (a window's hit rate has a standard error of about 0.05: direction, not size)
    assert judged > settling
