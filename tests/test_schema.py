"""Validation of profiles and scenarios: clear errors that name file, field and allowed values."""

from __future__ import annotations

import pytest

from swarmopt.loader import InputError, build_scenario, load_profile, load_scenario
from swarmopt.schema import Knobs

from conftest import MH_SCENARIO, ROOT

FIVE = ["strategic_orchestrator.yaml", "market_hunter.yaml", "narrative_architect.yaml", "market_analyzer.yaml",
        "execution_agent.yaml"]


def test_repository_profiles_and_scenario_load():
    sc = load_scenario(MH_SCENARIO)
    assert [a.id for a in sc.agents] == [
        "strategic-orchestrator", "market-hunter", "narrative-architect", "market-analyzer", "execution-agent"]
    assert sc.window_s == 60 and sc.optimizer.cycle_s == 300


def test_knob_bounds_are_enforced():
    with pytest.raises(ValueError, match="max_concurrency"):
        Knobs(max_concurrency=0)
    with pytest.raises(ValueError, match="'fast', 'standard' or 'strong'"):
        Knobs(model_tier="turbo")


def test_profile_error_names_file_field_and_allowed_values(tmp_path):
    bad = tmp_path / "hunter.yaml"
    text = (ROOT / "agents" / "market_hunter.yaml").read_text()
    bad.write_text(text.replace("model_tier: standard", "model_tier: turbo"))
    with pytest.raises(InputError) as err:
        load_profile(bad)
    msg = str(err.value)
    assert str(bad) in msg and "knobs.model_tier" in msg and "'fast', 'standard' or 'strong'" in msg and "turbo" in msg


def test_unknown_field_is_an_error(tmp_path):
    with pytest.raises(InputError, match="durration_s"):
        build_scenario({"name": "x", "durration_s": 60, "duration_s": 60, "agents": FIVE},
                       "x.yaml", ROOT / "scenarios")


def test_fault_kind_lists_allowed_values():
    data = {"name": "x", "duration_s": 600, "agents": FIVE,
            "faults": [{"kind": "meteor", "target": "market-hunter", "at_s": 0}]}
    with pytest.raises(InputError) as err:
        build_scenario(data, "x.yaml", ROOT / "scenarios")
    assert "faults.0" in str(err.value) and "'latency'" in str(err.value) and "'crash'" in str(err.value)


def test_fault_target_and_tool_are_checked():
    base = {"name": "x", "duration_s": 600, "agents": FIVE}
    with pytest.raises(InputError, match="unknown agent 'nobody'"):
        build_scenario(base | {"faults": [{"kind": "load_surge", "target": "nobody", "at_s": 0, "factor": 2}]})
    with pytest.raises(InputError, match="no tool 'fax'.*allowed: \\['data_source', 'web_search'\\]"):
        build_scenario(base | {"faults": [{"kind": "latency", "target": "market-hunter", "tool": "fax", "at_s": 0,
                                           "factor": 2}]})


def test_time_grid_must_align():
    with pytest.raises(InputError, match="window_s"):
        build_scenario({"name": "x", "duration_s": 600, "window_s": 45, "tick_s": 10, "agents": FIVE})


def test_population_expands_to_replicas_and_links_reach_every_replica():
    sc = build_scenario({"name": "pop", "duration_s": 600, "agents": [
        {"profile": "market_hunter.yaml", "count": 3}, "market_analyzer.yaml", "strategic_orchestrator.yaml",
        "narrative_architect.yaml", "execution_agent.yaml"]})
    ids = [a.id for a in sc.agents]
    assert ids[:3] == ["market-hunter-0", "market-hunter-1", "market-hunter-2"]
    orch = next(a for a in sc.agents if a.id == "strategic-orchestrator")
    (to_hunters,) = [link for link in orch.downstream if link.to == "market-hunter"]
    assert to_hunters.probability == pytest.approx(0.5)
    assert to_hunters.receivers == ["market-hunter-0", "market-hunter-1", "market-hunter-2"]


def test_a_tick_may_span_windows_but_must_divide_the_cycle():
    grid = {"name": "x", "duration_s": 600, "window_s": 60, "agents": FIVE}
    assert build_scenario(grid | {"tick_s": 300}).tick_s == 300
    with pytest.raises(InputError, match="tick_s \\(90.0\\) must divide window_s"):
        build_scenario(grid | {"tick_s": 90})
    with pytest.raises(InputError, match="optimizer.cycle_s \\(300.0\\) must be a multiple of tick_s \\(120.0\\)"):
        build_scenario(grid | {"tick_s": 120})
