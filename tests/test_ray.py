"""The Ray runtime: actors produce exactly the local runtime's tables."""

from __future__ import annotations

import pytest

from swarmopt import Simulation, run_scenario

from conftest import assert_same, short

pytestmark = pytest.mark.ray


def test_ray_and_local_runtimes_agree(ray_session, mh_scenario):
    sc = short(mh_scenario, 2700, tick_s=30.0)
    on_ray = run_scenario(sc, seed=5, runtime="ray")
    local = run_scenario(sc, seed=5, runtime="local")
    assert len(on_ray.metrics) == 5 * 45
    assert_same(on_ray.metrics, local.metrics)
    assert_same(on_ray.events, local.events)
    assert set(on_ray.process["actor"]) == {a.id for a in sc.agents}  # one actor per agent
    assert ray_session.is_initialized()


def test_agents_that_share_actors_give_the_local_tables(ray_session, mh_scenario):
    """Two agent-group actors for five agents, dealt round-robin (the first, third and fifth agent in one): the
    driver puts what the groups return in the scenario's agent order, so the tables are the local runtime's."""
    sc = short(mh_scenario, 1800)
    with Simulation(sc, seed=3, runtime="ray", actor_groups=2) as sim:
        sim.run()
        assert set(sim.actors()) == {"group-0", "group-1", "optimizer", "orchestrator"}
        assert sim.actor_of("market-hunter") == sim.actor_of("market-analyzer") == "group-1"
        on_ray = sim.result()
    local = run_scenario(sc, seed=3, runtime="local")
    assert_same(on_ray.metrics, local.metrics)
    assert_same(on_ray.events, local.events)
    assert set(on_ray.process["actor"]) == {"group-0", "group-1"}


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
