"""Plug-ins: a user's policy, detection rule and remedy, by import path (YAML) or as Python objects, on both
runtimes."""

from __future__ import annotations

import subprocess
import sys
from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest

from swarmopt import run_scenario
from swarmopt.loader import InputError, load_scenario
from swarmopt.optimizer.core import Optimizer
from swarmopt.plugins import remedy
from swarmopt.policies import RulePolicy

from conftest import EXAMPLES, ROOT, assert_same, short

YAML = EXAMPLES / "cautious_queue.yaml"
PLANNED = ["strategy.planned", "strategy.deferred", "approval.requested", "strategy.recommended"]
PROACTIVE = ["predictive_optimization", "coordination_enhancement"]


@pytest.fixture(scope="module", autouse=True)
def examples_importable():
    """examples/ on this process's path, as a user's PYTHONPATH would put it."""
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def sc(examples_importable):
    return short(load_scenario(YAML), 3600.0, tick_s=300.0)


@pytest.fixture(scope="module")
def local(sc):
    return run_scenario(sc, seed=1, runtime="local")


def reactive_plans(events: pd.DataFrame) -> pd.DataFrame:
    return events[events["event"].isin(PLANNED) & ~events["type"].isin(PROACTIVE)]


def assert_plugins_used(events: pd.DataFrame) -> None:
    """The rule's bottleneck type is detected and answered by the plug-in remedy, and the cautious policy
    chose every reactive strategy (none riskier than 0.4)."""
    detected = events[events["event"] == "bottleneck.detected"]
    assert (detected["type"] == "queue_saturation").any()
    plans = reactive_plans(events)
    assert ((plans["kind"] == "more_workers") & (plans["type"] == "queue_saturation")).any()
    assert len(plans) >= 2 and (plans["risk"] <= 0.4).all()


def test_yaml_plugins_are_used_on_the_local_runtime(sc, local):
    assert_plugins_used(local.events)
    # the same scenario under the fixed rules plans riskier remedies: the choice above was the policy's
    rules = run_scenario(short(sc, sc.duration_s, optimizer=sc.optimizer.model_dump() | {"policy": "rules"}),
                         seed=1, runtime="local")
    assert (reactive_plans(rules.events)["risk"] > 0.4).any()


def python_objects(sc):
    from cautious_policy import CautiousPolicy
    from queue_rule import more_workers, queue_rule

    bare = short(sc, sc.duration_s, optimizer=sc.optimizer.model_dump() | {"policy": "rules", "rules": [],
                                                                          "remedies": []})
    return bare, {"policy": CautiousPolicy(), "rules": [queue_rule], "remedies": [more_workers]}


def test_python_objects_do_what_the_import_paths_do(sc, local):
    bare, plugins = python_objects(sc)
    res = run_scenario(bare, seed=1, runtime="local", **plugins)
    assert_same(res.events, local.events)


@pytest.mark.ray
def test_plugins_on_ray_workers(ray_session, sc, local):
    """On a Ray worker the optimizer actor imports the rule and the remedy by their import paths and unpickles
    the policy object (by reference to its module): examples/ is on the workers' PYTHONPATH (see the
    ray_session fixture). The tables are the local runtime's."""
    from cautious_policy import CautiousPolicy

    paths_only = short(sc, sc.duration_s, optimizer=sc.optimizer.model_dump() | {"policy": "rules"})
    on_ray = run_scenario(paths_only, seed=1, runtime="ray", policy=CautiousPolicy())
    assert_plugins_used(on_ray.events)
    assert_same(on_ray.events, local.events)
    assert_same(on_ray.metrics, local.metrics)


class Recorder(RulePolicy):
    """The fixed rules, keeping every context it was given."""

    def __init__(self) -> None:
        self.seen = []

    def choose(self, ctx, rng):
        self.seen.append(ctx)
        return super().choose(ctx, rng)


def test_a_policy_sees_a_small_read_only_context(mh_scenario):
    policy = Recorder()
    res = run_scenario(short(mh_scenario, 5400.0, tick_s=300.0), seed=1, runtime="local", policy=policy)
    assert len(policy.seen) >= 3
    judged = set(res.events.loc[res.events["event"] == "optimization.measured", "kind"])
    for ctx in policy.seen:
        assert ctx.options and all(c.agent == ctx.agent for _, actions in ctx.options for c in actions)
        if ctx.bottleneck.affected_component != "system":  # a system-wide one is answered on the least healthy agent
            assert ctx.bottleneck_type == ctx.bottleneck.type and ctx.bottleneck.affected_component == ctx.agent
        assert ctx.t_s % mh_scenario.optimizer.cycle_s == 0
        assert len(ctx.rows) == mh_scenario.optimizer.long_windows and ctx.rows[-1]["t_end_s"] == ctx.t_s
        assert all(r["agent"] == ctx.agent and isinstance(r, MappingProxyType) for r in ctx.rows)
        with pytest.raises(TypeError):
            ctx.rows[0]["success_rate"] = 1.0
        with pytest.raises(AttributeError):
            ctx.agent = "someone-else"
    last = policy.seen[-1].stats
    assert set(last) <= judged and sum(s.attempts for s in last.values()) >= 1
    assert all(0 <= s.kept <= s.attempts for s in last.values())


def scenario_text(**optimizer) -> str:
    body = "\n".join(f"  {k}: {v}" for k, v in optimizer.items())
    return YAML.read_text().split("optimizer:")[0] + "optimizer:\n" + body + "\n"


@pytest.mark.parametrize("optimizer,message", [
    ({"policy": '"no_such_module:Policy"'}, "optimizer.policy: cannot import 'no_such_module:Policy'"),
    ({"policy": "foo"}, "optimizer.policy: unknown policy 'foo'; allowed: monitor, rules, thompson"),
    ({"policy": '"cautious_policy:Reckless"'}, "has no attribute 'Reckless'"),
    ({"policy": '"queue_rule:queue_rule"'}, "optimizer.policy: expected a policy"),
    ({"rules": '["queue_rule:LEVEL"]'}, "optimizer.rules.0: expected a detection rule"),
    ({"remedies": '["queue_rule:queue_rule"]'}, "optimizer.remedies.0: expected a remedy"),
    ({"rules": '["queue_rule"]'}, "optimizer.rules.0: Value error, must be an import path"),
])
def test_a_bad_plugin_is_an_input_error_naming_the_field_and_the_path(tmp_path, optimizer, message):
    path = tmp_path / "bad.yaml"
    path.write_text(scenario_text(**optimizer))
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_wrong_python_objects_and_taken_names_are_input_errors(sc):
    bare, _ = python_objects(sc)
    with pytest.raises(InputError, match="Simulation: policy: expected a policy"):
        run_scenario(bare, runtime="local", policy=42)
    with pytest.raises(InputError, match="Simulation: rules.0: expected a detection rule"):
        run_scenario(bare, runtime="local", rules=["queue_rule:queue_rule"])

    @remedy(risk=0.2, implementation_time_s=60, answers=["agent_response_time"])
    def scale_concurrency(snapshot, knobs, profile):
        return None

    with pytest.raises(InputError, match=r"remedies: name\(s\) \['scale_concurrency'\] taken"):
        run_scenario(bare, runtime="local", remedies=[scale_concurrency])


def test_cli_exits_2_with_one_line_for_a_bad_import_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(scenario_text(policy='"no_such_module:Policy"'))
    p = subprocess.run([sys.executable, "-m", "swarmopt", "run", str(path), "--runtime", "local"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert str(path) in line and "optimizer.policy" in line and "no_such_module:Policy" in line


def test_a_rule_returning_something_else_fails_naming_the_rule(mh_scenario):
    def sloppy(agent_id, rows, thresholds):
        return "queue is long"

    profiles = {a.id: a for a in mh_scenario.agents}
    opt = Optimizer(mh_scenario.optimizer, profiles, 60.0, RulePolicy(), np.random.default_rng(0), rules=[sloppy])
    opt.observe([{"agent": "market-hunter", "t_start_s": 0.0, "t_end_s": 60.0, "decision_count": 10}], [])
    with pytest.raises(ValueError, match="detection rule .*sloppy: must return a list of Bottleneck"):
        opt.cycle(60.0)
