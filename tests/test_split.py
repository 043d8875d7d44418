"""Split looks (``optimizer.judge_design: split``), a concurrent canary: the engine serves the other arm of
``Knobs.split`` to every second decision (or a cache's odd keys), the optimizer plans and ends splits for the
changes it can split, and its end-to-end run on a library scenario. The A/A false-decision rate of the design
is checked in tests/test_decisions.py beside the other designs'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange, ScheduledChange
from swarmopt.loader import load_scenario
from swarmopt.loadtest.measures import knob_reversals
from swarmopt.metrics import COLUMN, TIERS, task_sample
from swarmopt.optimizer import split
from swarmopt.optimizer.strategies import Strategy
from swarmopt.schema import Knobs
from swarmopt.sim.agent import AgentSim
from swarmopt.sim.environment import Environment
from swarmopt.sim.seeds import agent_seeds

from conftest import MH_SCENARIO, ROOT

SC = load_scenario(MH_SCENARIO)
MH = "market-hunter"
PROFILE = next(a for a in SC.agents if a.id == MH)
END_S = 900.0


def windows(changes: list[ScheduledChange], profile=PROFILE, seed: int = 3):
    """The Market Hunter's closed windows over 15 minutes with ``changes``."""
    seeds, _ = agent_seeds(seed, 1)
    sim = AgentSim(profile, SC.models, Environment(SC.load, [], END_S), seeds[0], 60.0)
    closed = []
    for k in range(int(END_S / 60.0) + 1):
        closed += sim.step(60.0 * k, min(60.0 * (k + 1), END_S), [], changes if k == 0 else [])[1]
    return sim, closed


def test_a_split_with_the_agents_own_values_changes_no_number_but_the_arm():
    _, plain = windows([])
    sim, split_same = windows([ScheduledChange(300.0, KnobChange(MH, "split.model_tier", None, "standard"), "s")])
    pd.testing.assert_frame_equal(pd.DataFrame([sim.metrics_row(w) for w in plain]),
                                  pd.DataFrame([sim.metrics_row(w) for w in split_same]))
    arm = COLUMN["arm"]
    for a, b in zip(plain, split_same, strict=True):
        assert np.array_equal(np.delete(a.table, arm, axis=0), np.delete(b.table, arm, axis=0), equal_nan=True)
    assert not plain[-1].table[arm].any() and split_same[-1].table[arm].any()


def test_every_second_decision_of_a_window_is_served_by_the_other_arm():
    _, closed = windows([ScheduledChange(300.0, KnobChange(MH, "split.model_tier", None, "fast"), "s")])
    fast, standard = TIERS.index("fast"), TIERS.index("standard")
    for w in closed:
        smp = task_sample(w)
        if w.info["t_start_s"] < 300.0:
            assert not smp.arm.any() and (smp.tier == standard).all()
            continue
        # arrival order alternates arms (reviewed decisions may close in a later window, so allow one off)
        assert abs(int(smp.arm.sum()) - smp.n // 2) <= 2
        assert (smp.tier[smp.arm] == fast).all() and (smp.tier[~smp.arm] == standard).all()
        # the faster tier answers faster, in the same windows, under the same queue
        assert np.median(smp.of_arm(True).response_ms) < np.median(smp.of_arm(False).response_ms)


def test_a_cache_ttl_split_gives_the_odd_keys_the_other_ttl():
    """web_search uncached, data_source cached 60 s, and 0 s (no caching) for its odd keys from 300 s on: the
    decisions of the odd keys then never hit, the others keep hitting."""
    profile = PROFILE.model_copy(update={"knobs": PROFILE.knobs.model_copy(
        update={"cache_ttl_s": {"data_source": 60.0}})})
    _, closed = windows([ScheduledChange(300.0, KnobChange(MH, "split.cache_ttl_s.data_source", None, 0.0), "s")],
                        profile)
    late = np.concatenate([w.table for w in closed if w.info["t_start_s"] >= 360.0], axis=1)
    arm, hits = late[COLUMN["arm"]] != 0, late[COLUMN["hits"]]
    assert 0.4 < arm.mean() < 0.6
    assert hits[arm].sum() == 0 and hits[~arm].mean() > 0.2


def test_a_split_names_the_knobs_it_allows():
    with pytest.raises(ValidationError, match="split: knobs \\['max_concurrency'\\] cannot be split; allowed"):
        Knobs(split={"max_concurrency": 8})
    with pytest.raises(ValidationError, match="one 'cache_ttl_s.<tool>' alone"):
        Knobs(split={"cache_ttl_s.a": 5.0, "model_tier": "fast"})
    with pytest.raises(ValidationError, match="timeout_s"):
        Knobs(split={"timeout_s": 1000.0})
    assert Knobs(split={"model_tier": "fast"}).arm() == Knobs(model_tier="fast")


def strategy(*actions: KnobChange, metric: str = "response_time_ms_mean") -> Strategy:
    return Strategy("s", "agent_response_time", "k", "high", MH, "", 0.0, 60.0, actions, (), "", 0.3, metric)


def test_which_changes_a_split_can_measure():
    knobs = PROFILE.knobs
    tier = KnobChange(MH, "model_tier", "standard", "fast")
    ttl = KnobChange(MH, "cache_ttl_s.data_source", 60.0, 240.0)
    assert split.splittable(strategy(tier, KnobChange(MH, "parallel_tools", False, True)), knobs)
    assert split.splittable(strategy(ttl), knobs)
    assert not split.splittable(strategy(KnobChange(MH, "max_concurrency", 4, 8)), knobs)  # shared workers
    assert not split.splittable(strategy(ttl, tier), knobs)  # two ways of splitting at once
    assert not split.splittable(strategy(tier, metric="cpu_percent"), knobs)  # a window metric has no arms
    bounded = knobs.model_copy(update={"max_cache_size": {"data_source": 100}})
    assert not split.splittable(strategy(ttl), bounded)  # one LRU order over both arms
    assert split.burn_in((tier,), 60.0) == 1 and split.burn_in((ttl,), 60.0) == 4


def test_a_split_is_not_a_knob_reversal():
    tier = KnobChange(MH, "model_tier", "standard", "fast")
    changes = [ScheduledChange(600.0, tier, "opt_1"), *split.start((tier,), 960.0, "opt_1"),
               *split.end((tier,), 1860.0, "opt_1"), ScheduledChange(1860.0, tier.inverse(), "rollback:opt_1")]
    ev = pd.DataFrame([{"t_s": c.at_s, "event": "knob.applied", "agent": MH, "knob": c.change.knob,
                        "old_value": None, "old_text": c.change.old, "new_value": None, "new_text": c.change.new,
                        "ref": c.ref} for c in changes])
    assert [c.ref for c in changes[1:3]] == ["split:opt_1", "split:opt_1"]
    assert knob_reversals(ev, 3600.0) == 1  # the rollback, not the split's start and end


def test_an_undecided_change_is_measured_on_by_a_split_and_the_split_ends_with_the_decision():
    """On the library's invalidation_storm (seed 9, split looks) the Market Hunter's web search TTL raise (120 ->
    1,920 s) is undecided at its first look; its old TTL then serves the odd keys while the new one serves the
    rest, after a burn-in of one new TTL, for 10 windows; the arms are judged (``split`` true in the event) and
    the split ends when the decision takes effect (a parallel-tools change that follows gets a split of its own)."""
    sc = load_scenario(ROOT / "scenarios" / "library" / "invalidation_storm.yaml")
    sc = sc.model_copy(update={"duration_s": 8400.0, "optimizer": sc.optimizer.model_copy(
        update={"judge_design": "split"})})
    ev = run_scenario(sc, seed=9, runtime="local", progress=False).events
    applied = ev[(ev["event"] == "knob.applied") & ev["ref"].astype(str).str.startswith(split.REF)]
    ttl = applied[applied["knob"] == "split.cache_ttl_s.web_search"]
    assert len(ttl) == 2 and ttl["ref"].nunique() == 1  # the first split (a later change gets its own)
    assert applied["knob"].iloc[0] == "split.cache_ttl_s.web_search"
    begin, stop = ttl["t_s"].tolist()
    judged = ev[(ev["event"] == "optimization.measured") & (ev["split"] == True)  # noqa: E712 (nullable)
                & (ev["strategy_id"] == ttl["ref"].iloc[0].removeprefix(split.REF))]
    assert len(judged) == 1
    m = judged.iloc[0]
    assert m["after_start_s"] == begin + 1920.0 and m["after_end_s"] == begin + 1920.0 + 600.0
    assert m["tasks_before"] > 200 and m["tasks_after"] > 200  # 335 and 376 here: each arm has half of 10 windows
    decided = ev[(ev["event"].isin(["optimization.kept", "optimization.reverted", "optimization.rolled_back"]))
                 & (ev["strategy_id"] == m["strategy_id"])]
    assert decided["t_s"].tolist() == [m["t_s"]] and stop == m["t_s"] + 60.0
