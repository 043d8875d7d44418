"""Overrides by dotted path: what they set, how they fail, and that a run with them is the run of the edited file."""

from __future__ import annotations

import pytest

from swarmopt import Simulation, run_scenario
from swarmopt.loader import InputError
from swarmopt.overrides import apply_overrides, parse_assignments
from swarmopt.schema import Scenario

from conftest import MH_SCENARIO, assert_same, short, swarmopt_cli


def test_values_are_parsed_as_yaml_scalars():
    got = parse_assignments(["optimizer.proactive=false", "a.b=8", "c=0.5", "d=fast", "e=[x, y]", "f=", "a.b=9"])
    assert got == {"optimizer.proactive": False, "a.b": 9, "c": 0.5, "d": "fast", "e": ["x", "y"], "f": ""}
    with pytest.raises(InputError, match=r"--set 'seed': expected PATH=VALUE"):
        parse_assignments(["seed"])
    with pytest.raises(InputError, match=r"--set x: value '\[1' is not valid YAML"):
        parse_assignments(["x=[1"])


def test_paths_reach_optimizer_agents_by_id_faults_by_index_and_mappings(mh_scenario):
    sc = apply_overrides(mh_scenario, {
        "optimizer.proactive": False, "optimizer.thresholds.response_time_ms": 1500,
        "agents.market-hunter.knobs.max_concurrency": 8, "agents.market-hunter.knobs.cache_ttl_s.data_source": 120,
        "faults.0.factor": 3.0,
    })
    hunter = next(a for a in sc.agents if a.id == "market-hunter")
    assert sc.optimizer.proactive is False and sc.optimizer.thresholds.response_time_ms == 1500
    assert hunter.knobs.max_concurrency == 8 and hunter.knobs.cache_ttl_s["data_source"] == 120
    assert sc.faults[0].factor == 3.0
    # nothing else moved
    untouched = mh_scenario.model_dump()
    changed = sc.model_dump()
    for key in ("duration_s", "seed", "load", "orchestrator", "models"):
        assert changed[key] == untouched[key]
    others = [a for a in sc.agents if a.id != "market-hunter"]
    assert others == [a for a in mh_scenario.agents if a.id != "market-hunter"]
    assert apply_overrides(mh_scenario, {}) is mh_scenario


def test_related_fields_are_validated_together(mh_scenario):
    sc = apply_overrides(mh_scenario, {"window_s": 30, "tick_s": 30, "optimizer.cycle_s": 150})
    assert (sc.window_s, sc.optimizer.cycle_s) == (30, 150)


@pytest.mark.parametrize("overrides, message", [
    ({"optimizer.proactiv": False}, "overrides optimizer.proactiv: unknown field 'proactiv'; allowed: alpha,"),
    ({"agents.hunter.knobs.max_concurrency": 8},
     "overrides agents.hunter: no item 'hunter'; allowed: strategic-orchestrator, market-hunter,"),
    ({"faults.9.at_s": 60}, "overrides faults.9: no item '9'; allowed: an index from 0 to 2"),
    ({"agents.market-hunter.knobs.max_concurrency": 0},
     "overrides agents.market-hunter.knobs.max_concurrency: Input should be greater than or equal to 1 (got 0)"),
    ({"faults.0.factor": -1}, "overrides faults.0.factor: Input should be greater than 0 (got -1)"),
    ({"optimizer.cycle_s": 90}, "overrides optimizer.cycle_s: optimizer.cycle_s (90.0) must be a multiple of window_s"),
    ({"optimizer.proactive.x": 1}, "overrides optimizer.proactive.x: optimizer.proactive is a single value (True)"),
    ({"optimizer..alpha": 0.1}, "overrides 'optimizer..alpha': empty part in the dotted path"),
])
def test_errors_name_the_path_and_what_is_allowed(mh_scenario, overrides, message):
    with pytest.raises(InputError) as err:
        apply_overrides(mh_scenario, overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_run_with_overrides_is_the_run_of_the_edited_scenario(mh_scenario):
    base = short(mh_scenario, 2400)
    edited = Scenario.model_validate(base.model_dump() | {
        "optimizer": base.optimizer.model_copy(update={"proactive": False}),
        "agents": [a.model_copy(update={"knobs": a.knobs.model_copy(update={"max_concurrency": 8})})
                   if a.id == "market-hunter" else a for a in base.agents],
    })
    overrides = {"optimizer.proactive": False, "agents.market-hunter.knobs.max_concurrency": 8}
    by_hand = run_scenario(edited, seed=2, runtime="local")
    by_api = run_scenario(base, seed=2, runtime="local", overrides=overrides)
    with Simulation(base, seed=2, overrides=overrides) as sim:
        stepped = sim.run().result()
    assert by_api.scenario == edited.model_copy(update={"seed": 2})
    assert (by_api.metrics.query("agent == 'market-hunter'")["max_concurrency"].iloc[0]) == 8
    for res in (by_api, stepped):
        assert_same(res.metrics, by_hand.metrics)
        assert_same(res.events, by_hand.events)


def test_cli_set_errors_exit_2_with_one_line_naming_the_path(tmp_path):
    p = swarmopt_cli("run", str(MH_SCENARIO), "--runtime", "local", "--out", str(tmp_path / "r"),
                 "--set", "optimizer.proactive=false", "--set", "agents.market-hunter.knobs.max_concurrency=zero")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == ("error: --set agents.market-hunter.knobs.max_concurrency: Input should be a valid "
                                "integer, unable to parse string as an integer (got 'zero')")
    assert not (tmp_path / "r").exists()
