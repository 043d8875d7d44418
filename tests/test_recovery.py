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


CRASH = {"kind": "crash", "target": "market-analyzer", "at_s": 630, "duration_s": 120, "mode": "process"}
# one kill per 600 s checkpoint interval, at a tick drawn in it: each one replays from a different checkpoint
KILL_TICKS = (10 * np.arange(3) + np.random.default_rng(2026).integers(1, 10, size=3)).tolist()


def test_killed_actors_are_rebuilt_and_the_tables_are_identical(ray_session, scenario):
    """The Orchestrator, the optimizer and an agent group are killed in turn, and a process-crash fault kills the
    Market Analyzer's actor, all in one run: each is found dead at its next call, rebuilt from its last checkpoint
    and replayed, and the tables equal those of the local run, where the crash is simulated only."""
    every_s = 600.0  # checkpoints at 0, 600 and 1200 s
    tick_s, per_checkpoint = scenario.tick_s, every_s / scenario.tick_s
    sc = short(scenario, scenario.duration_s, faults=[*scenario.model_dump()["faults"], CRASH])
    local = run_scenario(sc, seed=6, runtime="local")  # no process to kill: the simulated crash only
    found_by = {}
    deaths = len(KILL_TICKS) + 1  # a run's restarts are counted together (at most 3 by default)
    with Simulation(sc, seed=6, runtime="ray", checkpoint_every_s=every_s, max_restarts=deaths) as sim:
        crashed = sim.actor_of(CRASH["target"])  # the actor hosting it (with fewer CPUs than agents, others too)
        group = next(name for name in sim.actors() if name not in ("optimizer", "orchestrator", crashed))
        kills = dict(zip(["orchestrator", "optimizer", group], KILL_TICKS, strict=True))
        for actor, kill_at in kills.items():
            while sim.now < kill_at * tick_s:
                sim.step()
            found_by[actor] = sim.next_cycle_s if actor in ("optimizer", "orchestrator") else sim.now + tick_s
            ray_session.kill(sim.actors()[actor])
        sim.run()
        ev = sim.events
    restarted = ev[ev["event"] == "actor.restarted"].set_index("agent")
    # each was rebuilt before the next death; the crash's restart (at 660 s) is kept though the optimizer's
    # recovery (at 900 s) replays from the checkpoint of 600 s
    assert list(restarted.index) == ["orchestrator", crashed, "optimizer", group]
    for actor, kill_at in kills.items():
        # found dead at its next call: agents are called every tick, optimizer and orchestrator every cycle
        assert kill_at * tick_s <= restarted.loc[actor, "t_s"] <= found_by[actor]
        assert kill_at % per_checkpoint <= restarted.loc[actor, "value"] <= per_checkpoint
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
