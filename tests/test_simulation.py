"""The Simulation object: stepping, running in pieces, forking, live changes and decision overrides."""

from __future__ import annotations

import pandas as pd
import pytest

from swarmopt import InputError, Simulation, run_scenario

from conftest import MH_SCENARIO, assert_same, short

# the worked example's seed 1 under the source's fixed rules (policy="rules"), whose changes these tests name
# seed 3 under the source's rules: workers 4 -> 8 bundled with a data source TTL 60 -> 960 s, in flight from 2220 s,
# kept at 2700 s; then that TTL 960 -> 3600 s bundled with a circuit breaker and a retry, judged at 3300 s, kept
RULES_SEED = 3
FIRST_CHANGE = "opt_2100_market-hunter_scale_concurrency_1"
DECIDED = "opt_2700_market-hunter_raise_cache_ttl_6"


def same_tables(a, b) -> None:
    assert_same(a.metrics, b.metrics)
    assert_same(a.events, b.events)


@pytest.fixture(scope="module")
def reference(mh_scenario):
    return run_scenario(mh_scenario, seed=2, runtime="local")


def test_stepping_pieces_and_forks_give_the_tables_of_one_run(mh_scenario, reference):
    stepped = Simulation(mh_scenario, seed=2)
    while not stepped.done:
        stepped.step()
    same_tables(reference, stepped)

    pieces = Simulation(mh_scenario, seed=2)
    for until in (60, 1800, 1800, 2400, 5000 - 5000 % 60):
        pieces.run(until)
        assert pieces.now == until
    fork = pieces.fork()
    pieces.run()
    fork.run()
    same_tables(reference, pieces)
    same_tables(reference, fork)
    assert pieces.done and fork.done and fork.now == mh_scenario.duration_s


def test_run_until_stops_before_the_cycle_due_then(mh_scenario):
    sim = Simulation(short(mh_scenario, 1200), seed=1).run(600)
    assert sim.next_cycle_s == 600
    assert not (sim.events["t_s"] == 600).any()
    sim.step()
    assert (sim.events.query("event == 'cycle.started'")["t_s"] == 600).any()
    with pytest.raises(ValueError, match="before now"):
        sim.run(300)
    with pytest.raises(ValueError, match="multiple of tick_s"):
        sim.run(690.5)


def test_a_fork_is_independent_of_its_original(mh_scenario):
    base = Simulation(mh_scenario, seed=3).run(1800)
    fork = base.fork()
    fork.set_knob("market-hunter", "max_concurrency", 1)
    base.run(3600)
    fork.run(3600)
    mb = base.metrics.query("agent == 'market-hunter' and t_start_s >= 1800")
    mf = fork.metrics.query("agent == 'market-hunter' and t_start_s >= 1800")
    # same arrivals (common random numbers), one worker instead of four: far longer waits
    assert (mb["arrival_rate_per_s"].values == mf["arrival_rate_per_s"].values).all()
    assert mf["queue_wait_ms_mean"].mean() > 5 * mb["queue_wait_ms_mean"].mean()
    assert not (base.events["event"] == "knob.set").any()
    assert base.agent("market-hunter")["knobs"]["max_concurrency"] != 1


def test_a_reseeded_fork_continues_in_another_world_the_same_each_time(mh_scenario):
    """Simulation.reseed: the state at 1,800 s continued on a replica stream: other arrivals from then on (the
    windows before are the run's), the same again for the same stream, other ones for another stream."""
    base = Simulation(short(mh_scenario, 2700), seed=3).run(1800)
    a, b, c = base.fork(), base.fork(), base.fork()
    a.reseed(1)
    b.reseed(1)
    c.reseed(2)
    for s in (base, a, b, c):
        s.run()
    same_tables(a, b)

    def arrivals(s, after: bool):
        return s.metrics.query(f"t_start_s {'>=' if after else '<'} 1800")["decision_count"].to_numpy()

    assert (arrivals(a, False) == arrivals(base, False)).all()
    for other in (base, c):
        assert not (arrivals(a, True) == arrivals(other, True)).all()
    assert a.events.query("event == 'run.reseeded'")[["t_s", "value"]].values.tolist() == [[1800.0, 1.0]]
    with pytest.raises(ValueError, match="stream must be"):
        a.reseed(0)


def test_set_knob_takes_effect_next_tick_and_is_recorded(mh_scenario):
    sim = Simulation(short(mh_scenario, 1200), seed=1).run(300)
    sim.set_knob("market-hunter", "cache_ttl_s.data_source", 600)
    assert sim.agent("market-hunter")["pending_changes"][-1]["new"] == 600
    sim.step()
    snap = sim.agent("market-hunter")
    assert snap["knobs"]["cache_ttl_s"]["data_source"] == 600 and snap["pending_changes"] == []
    ev = sim.events
    set_ev = ev[ev["event"] == "knob.set"].iloc[0]
    assert (set_ev["ref"], set_ev["kind"], set_ev["t_s"], set_ev["knob"]) == ("user", "user", 300,
                                                                               "cache_ttl_s.data_source")
    assert (set_ev["old_value"], set_ev["new_value"]) == (60, 600)
    applied = ev[(ev["event"] == "knob.applied") & (ev["ref"] == "user")].iloc[0]
    assert applied["t_s"] == 300 and applied["kind"] == "user" and pd.isna(applied["strategy_id"])


def test_set_knob_rejects_bad_values_naming_the_knob(mh_scenario):
    sim = Simulation(short(mh_scenario, 600), seed=1)
    with pytest.raises(InputError, match="max_concurrency"):
        sim.set_knob("market-hunter", "max_concurrency", 0)
    with pytest.raises(InputError, match="unknown knob 'warp_drive'"):
        sim.set_knob("market-hunter", "warp_drive", 1)
    with pytest.raises(KeyError, match="allowed"):
        sim.set_knob("nobody", "max_concurrency", 2)
    assert sim.events.empty


def test_inject_validates_and_acts(mh_scenario):
    base = Simulation(short(mh_scenario, 1800), seed=4).run(600)
    fork = base.fork()
    f = fork.inject({"kind": "latency", "target": "execution-agent", "factor": 4.0})
    assert f.at_s == 600
    base.run()
    fork.run()
    ev = fork.events.query("event == 'fault.injected'")
    assert list(ev["agent"]) == ["execution-agent"] and list(ev["effective_s"]) == [600]
    rt = [s.metrics.query("agent == 'execution-agent' and t_start_s >= 600")["response_time_ms_mean"].mean()
          for s in (base, fork)]
    assert rt[1] > 1.5 * rt[0]
    assert fork.result().summary["agents"]["execution-agent"]["baseline"]["from_s"] == 300
    with pytest.raises(InputError, match="target"):
        fork.inject({"kind": "latency", "target": "nobody", "factor": 2.0})
    with pytest.raises(InputError, match="kind"):
        base.inject({"kind": "meteor", "target": "market-hunter"})
    sim = Simulation(short(mh_scenario, 1800, tick_s=30), seed=4).run(630)
    with pytest.raises(InputError, match="load_surge must start at or after 660"):
        sim.inject({"kind": "load_surge", "target": "market-hunter", "factor": 2.0})
    with pytest.raises(InputError, match="before now"):
        sim.inject({"kind": "latency", "target": "market-hunter", "factor": 2.0, "at_s": 0})


def test_agent_snapshot(mh_scenario):
    sim = Simulation(mh_scenario, seed=RULES_SEED, policy="rules").run(2400)
    snap = sim.agent("market-hunter")
    assert 0 <= snap["busy_workers"] <= snap["workers"] == snap["knobs"]["max_concurrency"]
    assert snap["queue_length"] >= 0 and snap["cached_keys"]["data_source"] > 0
    assert set(snap["active_faults"]) == {"latency", "error_spike", "load_surge"}
    assert snap["in_flight"]["strategy_id"] == FIRST_CHANGE
    state = sim.optimizer_state()
    assert state["autonomy"] == pytest.approx(0.8) and FIRST_CHANGE == state["in_flight"]["market-hunter"][
        "strategy_id"]


def test_override_forces_a_verdict_and_frozen_planning_plans_nothing(mh_scenario):
    sim = Simulation(mh_scenario, seed=RULES_SEED, policy="rules").run(3000)
    revert, roll = sim.fork(), sim.fork()
    revert.override(DECIDED, "revert")
    roll.override(DECIDED, "rollback")
    for s in (sim, revert, roll):
        s.freeze_planning()
        s.run()
    decided = {name: s.events.query("strategy_id == @DECIDED and event.str.startswith('optimization.')")
               for name, s in (("judge", sim), ("revert", revert), ("roll", roll))}
    assert "optimization.kept" in set(decided["judge"]["event"])
    reverted = decided["revert"].query("event == 'optimization.reverted'")
    assert len(reverted) == 1 and reverted["forced"].iloc[0] == True  # noqa: E712 (a table cell, not a flag)
    assert "optimization.rolled_back" in set(decided["roll"]["event"])
    ttl = {name: s.agent("market-hunter")["knobs"]["cache_ttl_s"]["data_source"]
           for name, s in (("judge", sim), ("revert", revert), ("roll", roll))}
    assert ttl == {"judge": 3600, "revert": 960, "roll": 960}
    for s in (sim, revert, roll):
        ev = s.events
        assert not ((ev["event"] == "optimization.scheduled") & (ev["t_s"] >= 3000)).any()
        assert (ev["event"] == "planning.frozen").sum() == 1
    with pytest.raises(ValueError, match="verdict"):
        sim.override(DECIDED, "maybe")


def test_write_partial_then_complete(mh_scenario, tmp_path):
    import json

    sim = Simulation(short(mh_scenario, 1200), seed=1).run(600)
    sim.write(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["status"] == "partial"
    sim.run().write(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["status"] == "completed"
    assert "seed=1" in repr(sim) and "done" in repr(sim)


@pytest.mark.ray
def test_ray_runtime_steps_and_forks_like_local(ray_session, mh_scenario):
    sc = short(mh_scenario, 2400)
    local = run_scenario(sc, seed=5, runtime="local")
    with Simulation(sc, seed=5, runtime="ray") as sim:
        sim.run(1200)
        with sim.fork() as fork:
            fork.run()
            same_tables(local, fork)
        sim.run()
        same_tables(local, sim)
    assert ray_session.is_initialized()


def test_a_reseeded_run_is_the_same_on_ray(ray_session, mh_scenario):
    sc = short(mh_scenario, 1800)
    local = Simulation(sc, seed=5, runtime="local").run(600)
    local.reseed(1)
    local.run()
    with Simulation(sc, seed=5, runtime="ray") as sim:
        sim.run(600)
        sim.reseed(1)
        sim.run()
        same_tables(local, sim)


def test_path_scenario_and_seed(tmp_path):
    sim = Simulation(MH_SCENARIO, seed=9, duration_s=600)
    assert sim.seed == 9 and sim.scenario.duration_s == 600
    with pytest.raises(InputError, match="duration_s"):
        Simulation(MH_SCENARIO, duration_s=-5)


def test_a_decide_hook_forces_every_verdict(mh_scenario):
    seen = []

    def keep_everything(ctx):
        seen.append((ctx.strategy.id, ctx.t_s))
        return "keep"

    sim = Simulation(mh_scenario, seed=2, policy="rules", decide=keep_everything).run()
    ev = sim.events
    judged = ev[ev["event"].isin(["optimization.kept", "optimization.rolled_back", "optimization.reverted"])]
    assert len(judged) == len(seen) >= 3
    assert set(judged["event"]) == {"optimization.kept"} and judged["forced"].eq(True).all()
    assert "opt_2100_market-hunter_scale_concurrency_1" in {sid for sid, _ in seen}  # seed 2's first change


def test_a_checkpoint_interval_must_be_positive(mh_scenario):
    with pytest.raises(ValueError, match="checkpoint_every_s must be > 0 simulated seconds, got 0"):
        Simulation(mh_scenario, runtime="local", checkpoint_every_s=0)
