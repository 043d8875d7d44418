"""The Ray runtime: actors produce exactly the local runtime's tables."""

from __future__ import annotations

import pytest

from swarmopt import run_scenario
from swarmopt.runtime.group import group_name, placement
from swarmopt.runtime.ray_backend import default_groups

from conftest import assert_same, short

pytestmark = pytest.mark.ray


def test_ray_and_local_runtimes_agree(ray_session, mh_scenario):
    sc = short(mh_scenario, 2700, tick_s=30.0)
    on_ray = run_scenario(sc, seed=5, runtime="ray")
    local = run_scenario(sc, seed=5, runtime="local")
    assert len(on_ray.metrics) == 5 * 45
    assert_same(on_ray.metrics, local.metrics)
    assert_same(on_ray.events, local.events)
    # as many agent groups as Ray has CPUs (the session's 2), which changes no row
    groups = placement(sc.agents, default_groups())
    assert len(groups) == min(len(sc.agents), int(ray_session.cluster_resources()["CPU"])) < len(sc.agents)
    assert set(on_ray.process["actor"]) == {group_name(i, [sc.agents[j].id for j in g]) for i, g in enumerate(groups)}
    assert ray_session.is_initialized()


def test_a_population_that_steals_work_gives_the_local_tables_on_ray(ray_session):
    """Work stealing happens inside one agent group; Ray keeps the population in one (runtime.group.placement),
    so its tables are the local runtime's."""
    from test_steal import _static

    sc = _static(True, duration_s=2400.0)
    on_ray = run_scenario(sc, seed=3, runtime="ray")
    local = run_scenario(sc, seed=3, runtime="local")
    assert on_ray.metrics["stolen_share"].max() > 0
    assert_same(on_ray.metrics, local.metrics)
    assert_same(on_ray.events, local.events)
