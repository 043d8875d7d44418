"""Recovery from dead actors: every component rebuilt from its last checkpoint, the ticks since replayed,
tables identical to an undisturbed run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from swarmopt import Simulation, run_scenario
from swarmopt.runtime.driver import ActorLostError

from conftest import assert_same, short

pytestmark = pytest.mark.ray


def without_restarts(events: pd.DataFrame) -> pd.DataFrame:
    return events[events["event"] != "actor.restarted"].reset_index(drop=True)


@pytest.fixture(scope="module")
def scenario(mh_scenario):
    return short(mh_scenario, 1800)


@pytest.fixture(scope="module")
def undisturbed(scenario):
    return run_scenario(scenario, seed=6, runtime="local")


ACTORS = ["market-hunter", "optimizer", "orchestrator"]
KILL_TICKS = dict(zip(ACTORS, np.random.default_rng(2026).integers(1, 30, size=len(ACTORS)).tolist(), strict=True))


@pytest.mark.parametrize("actor", ACTORS)
def test_a_killed_actor_is_rebuilt_and_the_tables_are_identical(ray_session, scenario, undisturbed, actor):
    kill_at = KILL_TICKS[actor]
    every_s = 600.0  # checkpoints at 0, 600 and 1200 s: a kill after 600 s replays from one taken mid-run
    with Simulation(scenario, seed=6, runtime="ray", checkpoint_every_s=every_s) as sim:
        for _ in range(kill_at):
            sim.step()
        next_cycle = sim.next_cycle_s
        ray_session.kill(sim.actors()[actor])
        sim.run()
        ev = sim.events
    restarted = ev[ev["event"] == "actor.restarted"]
    assert list(restarted["agent"]) == [actor]
    # found dead at its next call: agents are called every tick, optimizer and orchestrator every cycle
    assert kill_at * scenario.tick_s <= restarted["t_s"].iloc[0] <= next_cycle
    replayed = restarted["value"].iloc[0]
    assert kill_at % (every_s / scenario.tick_s) <= replayed <= every_s / scenario.tick_s
    assert_same(undisturbed.metrics, sim.metrics)
    assert_same(undisturbed.events, without_restarts(ev), check_like=True)


def test_a_process_crash_fault_kills_the_actor_and_the_run_recovers(ray_session, scenario, undisturbed):
    crash = {"kind": "crash", "target": "market-analyzer", "at_s": 630, "duration_s": 120, "mode": "process"}
    sc = short(scenario, 1800, faults=[*scenario.model_dump()["faults"], crash])
    local = run_scenario(sc, seed=6, runtime="local")  # no process to kill: the simulated crash only
    with Simulation(sc, seed=6, runtime="ray") as sim:
        sim.run()
    ev = sim.events
    assert list(ev.loc[ev["event"] == "actor.restarted", "agent"]) == ["market-analyzer"]
    assert_same(local.metrics, sim.metrics)
    assert_same(local.events, without_restarts(ev), check_like=True)
    busy = local.metrics.query("agent == 'market-analyzer'").set_index("t_start_s")["queue_wait_ms_mean"]
    assert busy.loc[660:720].mean() > 10 * busy.loc[:540].mean()  # the crash itself is simulated too


def test_giving_up_names_the_actor_and_keeps_what_ran(ray_session, scenario, tmp_path):
    with Simulation(scenario, seed=6, runtime="ray", max_restarts=0) as sim:
        sim.run(600)
        ray_session.kill(sim.actors()["optimizer"])
        with pytest.raises(ActorLostError, match="actor optimizer died"):
            sim.run()
        sim.write(tmp_path / "run", status="failed", error="ActorLostError: optimizer")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "optimizer" in summary["error"]
    # the windows closed before the optimizer was found dead, at its cycle at 600 s, are kept: all ten, as the
    # cycle first closes the windows that ended by then (no checkpoint at 600 s: every 3,600 s by default)
    assert summary["windows"] == 10
