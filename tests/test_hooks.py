"""Decision hooks for counterfactual runs, end to end on the engine: forcing decisions, freezing planning."""

from __future__ import annotations

import pandas as pd
import pytest

from swarmopt.results import Collector
from swarmopt.runtime.components import make_optimizer
from swarmopt.runtime.driver import drive
from swarmopt.runtime.local import LocalBackend

from conftest import short

SEED = 2  # the judge keeps two changes and undoes one on this seed


def run(sc, opt):
    """Events of ``sc`` (seed ``SEED``, local) driven with the optimizer ``opt``."""

    class Backend(LocalBackend):
        def optimizer(self, scenario, seed):
            return opt

    sink = Collector(sc, narrate_events=False)
    drive(sc, SEED, Backend(), sink)
    return sink.result(SEED, "local").events


@pytest.fixture(scope="module")
def sc(mh_scenario):
    return short(mh_scenario, 5400.0)


@pytest.fixture(scope="module")
def judged(sc):
    """The run as the judge decides it."""
    return run(sc, make_optimizer(sc, SEED))


def test_forcing_keep_keeps_every_change_the_judge_would_undo(sc, judged):
    undone = judged[judged["event"].isin(["optimization.reverted", "optimization.rolled_back"])]
    assert len(undone) >= 1  # the judge undoes at least one change on this seed
    opt = make_optimizer(sc, SEED)
    opt.decide = lambda ctx: "keep"
    ev = run(sc, opt)
    measured = ev[ev["event"] == "optimization.measured"]
    assert len(measured) >= 2 and measured["forced"].eq(True).all() and measured["decision"].eq("keep").all()
    assert (measured["judge_decision"] != "keep").any()
    assert not ev["event"].isin(["optimization.reverted", "optimization.rolled_back", "rollback.measured"]).any()
    applied = ev[ev["event"] == "knob.applied"]
    assert not applied["ref"].str.startswith("rollback:").any()  # the agents keep every changed knob
    # until the first judged change, both runs are the same run
    first = measured["t_s"].min()
    assert judged[judged["t_s"] < first].reset_index(drop=True).equals(
        ev[ev["t_s"] < first].reset_index(drop=True))


def test_frozen_planning_schedules_nothing_after_its_time_but_judging_and_detection_go_on(sc, judged):
    scheduled = judged[judged["event"] == "optimization.scheduled"]
    freeze = float(scheduled["t_s"].min())  # the first change is scheduled, later ones are not
    opt = make_optimizer(sc, SEED)
    opt.freeze_planning(freeze + 1.0)
    ev = run(sc, opt)
    late = ev[ev["t_s"] > freeze]
    planning = ["strategy.planned", "strategies.generated", "approval.requested", "optimization.scheduled",
                "strategy.deferred"]
    assert not late["event"].isin(planning).any()
    (frozen,) = ev[ev["event"] == "planning.frozen"].itertuples()
    assert frozen.t_s == freeze + sc.optimizer.cycle_s and frozen.effective_s == freeze + 1.0
    assert (late["event"] == "bottleneck.detected").any()  # detection goes on
    first = scheduled.iloc[0]
    measured = ev[(ev["event"] == "optimization.measured") & (ev["strategy_id"] == first["strategy_id"])]
    # the change in flight is still judged: looks after the freeze (interim ones undecided), the last one decides
    assert len(measured) >= 1 and measured["t_s"].min() > freeze and not pd.isna(measured["decision"].iloc[-1])
    assert judged[judged["t_s"] <= freeze].reset_index(drop=True).equals(
        ev[ev["t_s"] <= freeze].reset_index(drop=True)[judged.columns])
