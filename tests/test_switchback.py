"""Switchback looks (``optimizer.judge_design: switchback``): the block plan, which changes take them, and
the reversal count that ignores their flips, end to end on a library scenario. Their A/A false-decision rate
is checked in tests/test_decisions.py beside the default design's."""

from __future__ import annotations

import pandas as pd
import pytest

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange
from swarmopt.loader import load_scenario
from swarmopt.loadtest.measures import knob_reversals
from swarmopt.optimizer.strategies import Strategy
from swarmopt.optimizer.switchback import plan, switchable

from conftest import ROOT

MH = "market-hunter"
UP = KnobChange(MH, "max_concurrency", 4, 8)


def test_a_look_runs_old_new_blocks_judged_on_their_last_window_and_ends_in_the_new_configuration():
    arms, flips = plan((UP,), 1260.0, 2, 60.0, "x", block=2)
    # blocks O N O N of 2 windows from 1,260 s
    assert arms == ((1320.0, False), (1440.0, True), (1560.0, False), (1680.0, True))
    assert [(f.at_s, f.change.new) for f in flips] == [(1260.0, 4), (1380.0, 8), (1500.0, 4), (1620.0, 8)]
    assert {f.ref for f in flips} == {"switchback:x"}
    arms, _ = plan((UP,), 1260.0, 2, 60.0, "x")
    assert arms == ((1260.0, False), (1320.0, True), (1380.0, False), (1440.0, True))
    with pytest.raises(ValueError, match="block"):
        plan((UP,), 0.0, 2, 60.0, "r", block=0)


def test_cache_changes_are_judged_before_after():
    def strategy(*actions: KnobChange) -> Strategy:
        return Strategy("s", "agent_response_time", "k", "high", MH, "", 0.0, 60.0, actions, (), "", 0.3,
                        "response_time_ms_mean")
    assert switchable(strategy(UP, KnobChange(MH, "model_tier", "standard", "fast")))
    assert not switchable(strategy(KnobChange(MH, "cache_ttl_s.data_source", 60.0, 240.0)))
    assert not switchable(strategy(UP, KnobChange(MH, "max_cache_size.data_source", 40, 160)))


def test_a_switchback_trials_flips_are_not_reversals():
    rows = [(600.0, 4, 8, "opt_1"), (660.0, 8, 4, "switchback:opt_1"), (720.0, 4, 8, "switchback:opt_1"),
            (1500.0, 8, 4, "opt_2")]
    ev = pd.DataFrame([{"t_s": t, "event": "knob.applied", "agent": MH, "knob": "max_concurrency",
                        "old_value": float(o), "old_text": None, "new_value": float(n), "new_text": None, "ref": r}
                       for t, o, n, r in rows])
    assert knob_reversals(ev, 3600.0) == 1  # only opt_2 against opt_1
    assert knob_reversals(ev.iloc[:3], 3600.0) == 0


def test_an_undecided_change_is_measured_on_by_alternating_blocks_and_ends_in_its_new_configuration():
    """On the library's diurnal_model_latency (seed 1, switchback looks) predictive pre-scaling of the Market
    Hunter is undecided at its first look; the optimizer then flips its workers back and forth every window for
    10 windows, judges the arms (5 windows each, ``switchback`` true in the event) and keeps it: the last flip
    restores the new value, and no flip counts as a knob reversal."""
    sc = load_scenario(ROOT / "scenarios" / "library" / "diurnal_model_latency.yaml")
    sc = sc.model_copy(update={"duration_s": 3900.0, "optimizer": sc.optimizer.model_copy(
        update={"judge_design": "switchback"})})
    ev = run_scenario(sc, runtime="local").events
    measured = ev[(ev["event"] == "optimization.measured") & (ev["agent"] == MH)]
    looks = measured[measured["strategy_id"] == measured["strategy_id"].iloc[0]]
    assert list(looks["switchback"]) == [False, True] and list(looks["decision"].fillna("")) == ["", "keep"]
    sid = looks["strategy_id"].iloc[0]
    flips = ev[(ev["event"] == "knob.applied") & (ev["ref"] == f"switchback:{sid}")]
    assert len(flips) == 10 and (flips["t_s"].diff().dropna() == 60.0).all()
    own = ev[(ev["event"] == "knob.applied") & (ev["ref"] == sid)]
    assert flips["new_value"].iloc[-1] == own["new_value"].iloc[0]
    assert list(flips["new_value"][::2]) == [own["old_value"].iloc[0]] * 5
    assert looks["after_end_s"].iloc[1] == flips["t_s"].iloc[-1] + 60.0
    assert knob_reversals(ev, sc.optimizer.stabilization_window_s, planned_only=True) == 0
