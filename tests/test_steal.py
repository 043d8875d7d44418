"""Work stealing in the engine: a hot replica's siblings take its waiting decisions (swarmopt/sim/sched.py steal),
the remedy that turns it on, and the placement that keeps a population in one agent group."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt import run_scenario
from swarmopt.loader import load_scenario
from swarmopt.optimizer.strategies import enable_work_stealing
from swarmopt.runtime.group import placement
from swarmopt.schema import Knobs

from conftest import HEALTHY_SNAPSHOT, ROOT, assert_same, short

SKEWED = ROOT / "scenarios" / "library" / "skewed_replicas.yaml"
HOT, ONSET = "market-analyzer-0", 1800.0


def _static(stealing: bool, duration_s: float = 3600.0, tick_s: float = 300.0):
    """The skewed population under monitor, replica 0 with ``work_stealing`` set from the start."""
    sc = load_scenario(SKEWED)
    agents = [a.model_dump() for a in sc.agents]
    for a in agents:
        if a["id"] == HOT:
            a["knobs"]["work_stealing"] = stealing
    opt = sc.optimizer.model_dump() | {"policy": "monitor"}
    return short(sc, duration_s, agents=agents, optimizer=opt, tick_s=tick_s)


@pytest.fixture(scope="module")
def runs():
    return {s: run_scenario(_static(s), seed=2, runtime="local").metrics for s in (False, True)}


def test_stealing_cures_the_hot_replica_with_its_siblings_idle_workers(runs):
    """Replica 0 at 4.5x load: without stealing its mean response after the onset is far past the 2,000 ms SLO
    (seed 2: 4.8 s); with it under the SLO (1.4 s), its siblings' workers busier and its own less busy."""
    after = {s: m[m["t_start_s"] >= ONSET].groupby("agent").mean(numeric_only=True) for s, m in runs.items()}
    off, on = after[False], after[True]
    assert off.loc[HOT, "response_time_ms_mean"] > 3000 and on.loc[HOT, "response_time_ms_mean"] < 2000
    assert off.loc[HOT, "stolen_share"] == 0 and on.loc[HOT, "stolen_share"] > 0.02
    siblings = [f"market-analyzer-{k}" for k in (1, 2, 3)]
    assert (on.loc[siblings, "stolen_share"] == 0).all()  # they do not share: their decisions stay
    assert (on.loc[siblings, "cpu_percent"] > off.loc[siblings, "cpu_percent"] + 2).all()
    assert on.loc[HOT, "cpu_percent"] < off.loc[HOT, "cpu_percent"] - 10


def test_stealing_does_not_depend_on_the_tick(runs):
    a = runs[True]
    b = run_scenario(_static(True, tick_s=60.0), seed=2, runtime="local").metrics
    assert_same(a, b)


def test_remedy_turns_stealing_on_for_a_queueing_replica_only():
    sc = load_scenario(SKEWED)
    hot = next(a for a in sc.agents if a.id == HOT)
    single = next(a for a in sc.agents if a.id == "market-hunter")
    queueing = HEALTHY_SNAPSHOT | {"response_time_ms_mean": 4000.0, "queue_wait_ms_mean": 2500.0}
    (change,) = enable_work_stealing(queueing, hot.knobs, hot)
    assert (change.agent, change.knob, change.old, change.new) == (HOT, "work_stealing", False, True)
    assert enable_work_stealing(queueing | {"queue_wait_ms_mean": 100.0}, hot.knobs, hot) is None  # no queue
    assert enable_work_stealing(queueing, single.knobs, single) is None  # no population
    assert enable_work_stealing(queueing, Knobs(work_stealing=True), hot) is None
    assert enable_work_stealing(queueing, Knobs(scheduling="priority"), hot) is None


def test_placement_keeps_a_population_in_one_group():
    sc = load_scenario(SKEWED)
    ids = [a.id for a in sc.agents]
    groups = placement(sc.agents, 16)
    assert sorted(i for g in groups for i in g) == list(range(len(ids)))
    assert len(groups) == 5 and [ids[i] for i in groups[0]] == [f"market-analyzer-{k}" for k in range(4)]
    assert all(len(g) == 1 for g in groups[1:])
    two = placement(sc.agents, 2)
    assert sorted(len(g) for g in two) == [4, 4]
    assert any({ids[i] for i in g} >= {HOT, "market-analyzer-3"} for g in two)
    with pytest.raises(ValueError, match="max_groups"):
        placement(sc.agents, 0)


def test_stolen_share_is_a_share():
    m = run_scenario(_static(True, duration_s=2400.0), seed=1, runtime="local").metrics
    assert np.all((m["stolen_share"] >= 0) & (m["stolen_share"] <= 1))


def test_the_loader_names_a_replicas_population_and_keeps_one_set_by_hand():
    sc = load_scenario(SKEWED)
    assert {a.id: a.population for a in sc.agents if a.id.startswith("market-analyzer")} == {
        f"market-analyzer-{k}": "market-analyzer" for k in range(4)}
    assert next(a for a in sc.agents if a.id == "market-hunter").population is None
    from swarmopt.loader import build_scenario

    data = {"name": "pool", "duration_s": 600, "window_s": 60, "tick_s": 60,
            "agents": ["strategic_orchestrator.yaml", "narrative_architect.yaml", "execution_agent.yaml",
                       {"profile": "market_hunter.yaml", "set": {"population": "pool"}},
                       {"profile": "market_analyzer.yaml", "set": {"population": "pool"}}]}
    pooled = build_scenario(data, base=ROOT / "agents")
    assert [a.population for a in pooled.agents] == [None, None, None, "pool", "pool"]
    assert sorted(len(g) for g in placement(pooled.agents, 16)) == [1, 1, 1, 2]  # the pool shares a group


def test_a_fork_mid_run_continues_the_stealing_run_exactly(runs):
    """Stealing state is the replicas' worker heaps: a fork at 2,100 s (the hot replica backlogged) and the
    original both finish with the uninterrupted run's tables."""
    from swarmopt import Simulation

    sim = Simulation(_static(True), seed=2).run(2100)
    fork = sim.fork()
    for s in (sim, fork):
        s.run()
        assert_same(s.metrics, runs[True])
