"""A TTL change is tried only where it can show: a raise where its predicted effect on the service time or the
error rate (:func:`swarmopt.optimizer.strategies.ttl_raise_gain`) reaches the judge's minimum improvement, a cut
where the caches hold enough of the memory to free that much of it."""

from __future__ import annotations

import math

import pytest

from swarmopt import run_scenario
from swarmopt.loader import load_scenario
from swarmopt.optimizer.strategies import MIN_VISIBLE_GAIN, lower_cache_ttl, raise_cache_ttl, ttl_raise_gain

from conftest import ROOT, short

SC = load_scenario(ROOT / "scenarios" / "library" / "orchestrator_command.yaml")
PROFILES = {a.id: a for a in SC.agents}


def view(agent: str, tool: str, hold_share: float, hit_rate: float, error_rate: float = 0.0) -> dict:
    """A snapshot of ``agent`` at its profile's arrival rate whose ``tool`` holds ``hold_share`` of the busy time,
    hits ``hit_rate`` of its lookups and fails ``error_rate`` of its calls."""
    return {"arrival_rate_per_s": PROFILES[agent].base_rate_per_s,
            "tools": {tool: {"hold_share": hold_share, "hit_rate": hit_rate, "error_rate": error_rate}}}


def proposed(agent: str, s: dict) -> bool:
    p = PROFILES[agent]
    return raise_cache_ttl(s, p.knobs, p) is not None


def test_a_tool_that_holds_little_of_the_busy_time_is_not_cached_longer():
    """The Narrative Architect's style guide (a 100 ms call on the 23% of decisions that miss, against a model call
    of about two seconds once its model is slowed) holds about 1.5% of its busy time and hits 0.766 of its lookups
    at 600 s (the model's figure; 0.905 at an hour): an hour would cut the service time by 0.015 x (0.905 - 0.766)
    / 0.234 = 0.9%, under the 2% a trial needs. A tool slowed until it holds half the busy time is worth one."""
    latency, errors = ttl_raise_gain(view("narrative-architect", "style_guide", 0.015, 0.766), PROFILES[
        "narrative-architect"].tools[0], PROFILES["narrative-architect"].knobs, 3600.0)
    assert latency == pytest.approx(0.015 * (0.905 - 0.766) / 0.234, abs=0.001) and errors == 0.0
    assert latency < MIN_VISIBLE_GAIN
    assert not proposed("narrative-architect", view("narrative-architect", "style_guide", 0.015, 0.766))
    assert proposed("narrative-architect", view("narrative-architect", "style_guide", 0.5, 0.766))


def test_a_bypassed_cache_is_not_cached_longer_and_a_working_one_is():
    """The Market Hunter's data source holding a quarter of the busy time at the model's 0.415 hit rate: an hour
    would cut it by 0.25 x (0.815 - 0.415) / 0.585 = 17%. A cache that hits nothing (bypassed) gains nothing
    from a longer TTL; one that hits half the model's rate gains half the model's rise."""
    mh, tool = PROFILES["market-hunter"], PROFILES["market-hunter"].tools[0]
    latency, _ = ttl_raise_gain(view("market-hunter", "data_source", 0.25, 0.415), tool, mh.knobs, 3600.0)
    assert latency == pytest.approx(0.25 * 0.400 / 0.585, abs=0.003)
    assert proposed("market-hunter", view("market-hunter", "data_source", 0.25, 0.415))
    assert not proposed("market-hunter", view("market-hunter", "data_source", 0.25, 0.0))
    half, _ = ttl_raise_gain(view("market-hunter", "data_source", 0.25, 0.2075), tool, mh.knobs, 3600.0)
    assert half == pytest.approx(0.25 * 0.200 / 0.7925, abs=0.003)


def test_a_failing_tool_is_cached_longer_for_its_errors_alone():
    """The Execution Agent's broker API at its 5 s TTL (hit rate 0.07, 0.95 at an hour), failing 30% of its calls
    but holding only 5% of the busy time: the error rate would fall by up to 0.30 x 0.88 = 26 points."""
    ea = PROFILES["execution-agent"]
    s = view("execution-agent", "broker_api", 0.05, 0.07, error_rate=0.30)
    _, errors = ttl_raise_gain(s, next(t for t in ea.tools if t.name == "broker_api"), ea.knobs, 3600.0)
    assert errors == pytest.approx(0.30 * (0.949 - 0.07), abs=0.005)
    assert proposed("execution-agent", s)


def test_with_no_figures_to_predict_from_the_raise_is_proposed_as_before():
    assert proposed("narrative-architect", {"arrival_rate_per_s": 0.3})
    assert proposed("narrative-architect", {"arrival_rate_per_s": math.nan, "tools": {}})


def test_each_tools_share_of_the_busy_time_is_a_metric():
    """``tool_hold_share.<tool>`` per window: each in [0, 1], their largest the window's ``tool_hold_share``."""
    run = run_scenario(short(load_scenario(ROOT / "scenarios" / "market_hunter_degradation.yaml"), 1200), seed=1,
                       policy="monitor", runtime="local")
    m = run.metrics
    m = m[(m["agent"] == "market-hunter") & m["tool_hold_share"].notna()]
    cols = ["tool_hold_share.data_source", "tool_hold_share.web_search"]
    assert len(m) > 10 and ((m[cols] >= 0) & (m[cols] <= 1)).all().all()
    assert (m[cols].max(axis=1) - m["tool_hold_share"]).abs().max() < 1e-12


def test_a_ttl_cut_frees_memory_only_where_the_caches_hold_it():
    """Halving a TTL frees at most half the caches' entries. Under memory_leak the Narrative Architect's memory
    is some 130% of its capacity and its style guide cache holds 0.1% of it (at most 200 keys of 64 KB): no cut is
    proposed. Caches holding 40% of a 90% use are worth one; with no figure to go by it is proposed as before."""
    na = PROFILES["narrative-architect"]
    assert lower_cache_ttl({"memory_percent": 129.5, "cache_memory_percent": 0.13}, na.knobs, na) is None
    assert lower_cache_ttl({"memory_percent": 90.0, "cache_memory_percent": 40.0}, na.knobs, na) is not None
    assert lower_cache_ttl({"memory_percent": 90.0}, na.knobs, na) is not None


def test_the_caches_share_of_memory_is_a_metric():
    """``cache_memory_percent``: the live entries' memory (64 KB each) over the capacity, within ``memory_percent``."""
    sc = load_scenario(ROOT / "scenarios" / "library" / "memory_leak.yaml")
    m = run_scenario(short(sc, 1200), seed=1, policy="monitor", runtime="local").metrics
    na = m[m["agent"] == "narrative-architect"]
    assert (na["cache_memory_percent"] > 0).all() and (na["cache_memory_percent"] < na["memory_percent"]).all()
    assert na["cache_memory_percent"].max() <= 100.0 * 200 * 64 / 1024 / 2048 + 1e-9  # the style guide's 200 keys
