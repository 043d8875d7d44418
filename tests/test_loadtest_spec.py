"""The load-test spec, its resolution into runs, and the --fail-if gate (no Ray needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swarmopt.loader import InputError
from swarmopt.loadtest import gate
from swarmopt.loadtest.plan import make_plan
from swarmopt.loadtest.spec import read_spec

from conftest import ROOT

SPEC = ROOT / "scenarios" / "loadtests" / "policies.yaml"
MH = str(ROOT / "scenarios" / "market_hunter_degradation.yaml")
SURGE = str(ROOT / "scenarios" / "surge.yaml")


def plan_of(data: dict, quick: bool = False):
    spec, base, label = read_spec(data)
    return make_plan(spec, base, label, quick)


SHIPPED_SPECS = sorted(p for p in (ROOT / "scenarios" / "loadtests").glob("*.yaml") if p.stem != "library_cures")


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_resolves_into_runs_of_its_policies_scenarios_and_seeds(path):
    spec, base, label = read_spec(path)
    plan = make_plan(spec, base, label)
    policy_runs = [t for t in plan.tasks if t.kind == "policy"]
    seeds = {t.seed for t in policy_runs}
    assert len(policy_runs) == len(spec.policies) * len(plan.scenarios) * len(seeds) > 0
    assert {t.policy for t in policy_runs} == {p.name for p in spec.policies}


def test_the_shipped_spec_resolves(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the scenario glob is found from anywhere (repository root fallback)
    spec, base, label = read_spec(SPEC)
    full = make_plan(spec, base, label)
    quick = make_plan(spec, base, label, quick=True)
    assert set(full.scenarios) == {"market_hunter_degradation", "market_open_surge"}
    assert [p.name for p in spec.policies] == ["monitor", "rules", "rules-2min", "thompson"]
    policy_runs = [t for t in full.tasks if t.kind == "policy"]
    assert len(policy_runs) == 4 * 2 * 5 and {t.seed for t in policy_runs} == {1, 2, 3, 4, 5}
    assert len([t for t in full.tasks if t.kind == "oracle"]) == 2 * 6 * 5  # 3 x 2 grid points
    assert len(quick.tasks) == 4 * 2 + 2 * 2
    assert {t.config.duration_s for t in quick.tasks} == {3000.0, 3600.0}  # surge is shorter than the quick cap
    fast = next(t for t in full.tasks if t.policy == "rules-2min")
    assert fast.config.optimizer.cycle_s == 120 and fast.config.optimizer.policy == "rules"
    assert not next(t for t in full.tasks if t.policy == "monitor").truth
    assert next(t for t in full.tasks if t.policy == "thompson").truth
    ids = [t.task_id for t in full.tasks]
    assert len(set(ids)) == len(ids) and ids == [t.task_id for t in make_plan(spec, base, label).tasks]


def test_a_policy_entry_can_set_the_orchestrators_autonomy_rule():
    """Autonomy rules are judged like optimizer policies: one entry per rule, same optimizer policy."""
    plan = plan_of({"policies": [{"name": "rules"}, {"name": "rules-fixed", "policy": "rules",
                                                      "orchestrator": {"policy": "fixed"}},
                                 {"name": "rules-load-aware", "policy": "rules",
                                  "orchestrator": {"policy": "load_aware", "max_review_utilization": 0.5}}],
                    "scenarios": [MH], "seeds": [1], "baseline": "rules", "oracle": False})
    cfg = {t.policy: t.config for t in plan.tasks}
    assert {p: c.optimizer.policy for p, c in cfg.items()} == dict.fromkeys(cfg, "rules")
    assert {p: c.orchestrator.policy for p, c in cfg.items()} == {"rules": "rules", "rules-fixed": "fixed",
                                                                 "rules-load-aware": "load_aware"}
    assert cfg["rules-load-aware"].orchestrator.max_review_utilization == 0.5
    assert cfg["rules-fixed"].orchestrator.autonomy_step == cfg["rules"].orchestrator.autonomy_step  # merged
    assert len({t.task_id for t in plan.tasks}) == 3


def test_oracle_points_set_the_faulted_agents_knobs_only():
    plan = plan_of({"policies": [{"name": "monitor"}], "scenarios": [MH], "seeds": [1],
                    "oracle": {"grid": {"max_concurrency": ["x2", 5], "cache_ttl_s.data_source": [600]}}})
    oracle = [t for t in plan.tasks if t.kind == "oracle"]
    assert [t.policy for t in oracle] == ["max_concurrency=x2,cache_ttl_s.data_source=600",
                                          "max_concurrency=5,cache_ttl_s.data_source=600"]
    agents = {a.id: a for a in oracle[0].config.agents}
    assert agents["market-hunter"].knobs.max_concurrency == 8
    assert agents["market-hunter"].knobs.cache_ttl_s["data_source"] == 600
    assert agents["market-analyzer"].knobs.max_concurrency == 4  # not faulted: untouched
    assert oracle[0].config.optimizer.policy == "monitor"


@pytest.mark.parametrize("data, message", [
    ({"policies": [{"name": "x", "policy": "greedy"}], "scenarios": [MH]},
     "policies.0.policy: Value error, unknown policy 'greedy'; allowed: ['monitor', 'rules', 'thompson']"),
    ({"policies": [{"name": "mine"}], "scenarios": [MH], "baseline": "mine"},
     "policies.0: Value error, policy: required, as 'mine' is not a built-in policy; allowed: ['monitor'"),
    ({"policies": [{"name": "rules"}], "scenarios": [MH], "baseline": "monitor"},
     "baseline: 'monitor' is not a policy of the spec; allowed: ['rules']"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH], "seeds": {"count": 0}},
     "seeds.count.count: Input should be greater than or equal to 1"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH], "slo": [{"metric": "success_rate", "op": "=>",
                                                                       "value": 1}]},
     "slo.0.op: Input should be '<', '<=', '>' or '>='"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH], "sedes": [1]}, "sedes: Extra inputs are not permitted"),
    ({"policies": [{"name": "monitor"}], "scenarios": ["nope/*.yaml"]}, "scenarios.0: 'nope/*.yaml' matches no file"),
    ({"policies": [{"name": "monitor"}, {"name": "fast", "policy": "rules", "optimizer": {"cycle_s": 90}}],
      "scenarios": [MH]},
     "policies.1 (fast) on " + MH + ": scenario: Value error, optimizer.cycle_s (90.0) must be a multiple of window_s"),
    ({"policies": [{"name": "rules"}, {"name": "lax", "policy": "rules", "orchestrator": {"policy": "lax"}}],
      "scenarios": [MH], "baseline": "rules"},
     "policies.1 (lax) on " + MH + ": orchestrator.policy: Value error, unknown autonomy rule 'lax'; allowed: rules, "
     "fixed, load_aware"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH], "oracle": {"grid": {"max_retries": [9]}}},
     "oracle.grid (max_retries=9) on " + MH + ": max_retries: Input should be less than or equal to 3"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH], "ground_truth": {"replicas": 0}},
     "ground_truth.replicas: Input should be greater than or equal to 1"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH], "oracle": {"grid": {"turbo": [1]}}},
     "oracle.grid (turbo=1) on " + MH + ": unknown knob 'turbo'"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH],
      "slo": [{"metric": "cost_per_decision_usd", "op": "<=", "value": 0.06, "scenario": "price_change"}]},
     "slo.0.scenario: 'price_change' is not a scenario of the spec; allowed: ['market_hunter_degradation']"),
    ({"policies": [{"name": "monitor"}], "scenarios": [MH],
      "slo": [{"metric": "cost_per_decision_usd", "op": "<=", "value": 0.06, "agent": "market-hunters"}]},
     "slo.0.agent: 'market-hunters' is not an agent of any scenario of the spec; allowed: ['execution-agent', "
     "'market-analyzer', 'market-hunter', 'narrative-architect', 'strategic-orchestrator']"),
])
def test_bad_specs_name_the_field_and_the_allowed_values(data, message):
    with pytest.raises(InputError) as err:
        plan_of(data)
    assert message in str(err.value)
    assert str(err.value).startswith("<spec>: ")


def test_a_bad_spec_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"policies: [{{name: monitor}}, {{name: greedy}}]\nscenarios: [{MH}]\n")
    p = subprocess.run([sys.executable, "-m", "swarmopt", "loadtest", str(bad), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    line = p.stderr.strip()
    assert line.count("\n") == 0 and str(bad) in line and "policies.1" in line and "'monitor'" in line
    assert not (tmp_path / "o").exists()


SUMMARY = {"monitor": {"slo_attainment": 0.80, "false_rollback_rate": float("nan")},
           "rules-2min": {"slo_attainment": 0.85, "false_rollback_rate": 0.2},
           "thompson": {"slo_attainment": 0.75, "false_rollback_rate": 0.05}}


@pytest.mark.parametrize("expr, expected", [
    ("thompson.false_rollback_rate > 0.10", False),
    ("rules_2min.false_rollback_rate > 0.10", True),
    ("thompson.slo_attainment < monitor.slo_attainment", True),
    ("not thompson.slo_attainment < monitor.slo_attainment", False),
    ("0.7 < thompson.slo_attainment < 0.8 and rules_2min.slo_attainment >= 0.85", True),
    ("thompson.slo_attainment > 0.9 or rules_2min.slo_attainment > 0.9", False),
    ("monitor.false_rollback_rate > -1", False),  # NaN: nothing measured, the gate does not fire
    ("thompson.slo_attainment - 0.1 > 0", None),
])
def test_fail_if_expressions(expr, expected):
    if expected is None:
        with pytest.raises(InputError, match="'BinOp' is not allowed"):
            gate.holds(expr, SUMMARY)
    else:
        assert gate.holds(expr, SUMMARY) is expected


@pytest.mark.parametrize("expr, message", [
    ("__import__('os').system('true')", "is not allowed"),
    ("thompson.slo_attainment.real > 0", "is not allowed"),
    ("greedy.slo_attainment > 0.5", "unknown name 'greedy.slo_attainment'; allowed: POLICY.FIELD with POLICY one"),
    ("thompson.speed > 1", "unknown name 'thompson.speed'"),
    ("thompson > 1", "unknown name 'thompson'"),
    ("thompson.slo_attainment", "must be a condition"),
    ("thompson.slo_attainment > 'a'", "only numbers"),
    ("thompson.slo_attainment >", "not an expression"),
])
def test_fail_if_refuses_everything_but_names_numbers_and_comparisons(expr, message):
    with pytest.raises(InputError) as err:
        gate.check(expr, SUMMARY)
    assert message in str(err.value)


def test_swarmopt_loadtest_is_callable_in_every_import_order():
    import swarmopt
    import swarmopt.loadtest.spec  # binds swarmopt.loadtest to the package

    assert swarmopt.loadtest.LoadTestResult is swarmopt.loadtest.api.LoadTestResult
    with pytest.raises(InputError, match="baseline: 'monitor' is not a policy"):
        swarmopt.loadtest({"policies": [{"name": "rules"}], "scenarios": [MH]})


def test_a_relay_delay_hits_the_agents_routed_through_the_relay():
    """On a star through the Orchestrator, the agents that message other non-hub agents are hit, not the hub;
    with every agent on mesh no route passes a relay and the relay itself is the incident's agent."""
    from swarmopt.loader import load_scenario
    from swarmopt.loadtest.measures import faulted_agents
    from swarmopt.schema import Scenario

    sc = load_scenario(ROOT / "scenarios" / "library" / "star_hub_delay.yaml")
    assert faulted_agents(sc) == ["market-analyzer", "market-hunter"]
    mesh = Scenario.model_validate(sc.model_dump() | {"agents": [
        a.model_dump() | {"knobs": a.knobs.model_dump() | {"topology": "mesh"}} for a in sc.agents]})
    assert faulted_agents(mesh) == ["strategic-orchestrator"]
