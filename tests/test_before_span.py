"""The before/after judge's before-span: as long as the after-span, back to a stable, troubled, steady start."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange
from swarmopt.optimizer.measure import steady_load
from swarmopt.optimizer.strategies import Strategy
from swarmopt.optimizer.trial import Trial

from conftest import MH_SCENARIO

MH = "market-hunter"
TRIALS = 200


def trial(before_from_s: float, looks: int) -> Trial:
    s = Strategy("x", "agent_response_time", "noop", "high", MH, "x", 0.0, 0.0,
                 (KnobChange(MH, "max_concurrency", 4, 8),), (), "", 0.3, "response_time_ms_mean")
    return Trial(s, 1200.0, 1200.0 + 300.0 * looks, before_from_s=before_from_s)


@pytest.mark.parametrize(("before_from_s", "starts"), [
    (300.0, [900.0, 600.0, 300.0, 300.0]),  # grows with the after-span, 15 windows at most
    (720.0, [900.0, 720.0, 720.0, 720.0]),  # not before the configuration or the bottleneck
    (1000.0, [900.0, 900.0, 900.0, 900.0]),  # never shorter than measure_windows
    (math.inf, [900.0, 900.0, 900.0, 900.0]),  # unknown: the measure_windows before the change
])
def test_the_before_span_grows_with_the_after_span_back_to_its_earliest_start(before_from_s, starts):
    assert [trial(before_from_s, looks).before_start_s(60.0, 5, 15) for looks in (1, 2, 3, 4)] == starts


def rows(counts: np.ndarray) -> list[dict]:
    return [{"t_start_s": 60.0 * i, "t_end_s": 60.0 * (i + 1), "arrival_rate_per_s": c / 60.0}
            for i, c in enumerate(counts)]


def test_a_steady_load_is_told_from_a_ramp():
    """15 windows of Poisson arrivals (2/s), the last 5 the base before-span: at one rate the split is found
    unsteady at about alpha (binomial criterion as the A/A tests), under a ramp of 1.4x over the 15 windows (the
    load of the A/A ramp test, tests/test_decisions.py) nearly always."""
    rng = np.random.default_rng(0)
    steady = sum(steady_load(rows(rng.poisson(120.0, 15)), 600.0) for _ in range(TRIALS))
    assert stats.binomtest(TRIALS - steady, TRIALS, 0.05, alternative="greater").pvalue >= 0.01
    ramp = 120.0 * np.linspace(1.0, 1.4, 15)
    assert sum(steady_load(rows(rng.poisson(ramp)), 600.0) for _ in range(TRIALS)) < 0.1 * TRIALS
    assert steady_load([], 600.0) and steady_load(rows(np.zeros(15)), 600.0)


@pytest.fixture(scope="module")
def worked_example():
    return run_scenario(MH_SCENARIO, seed=15, runtime="local").events


def test_every_before_span_is_of_one_configuration_and_some_are_longer(worked_example):
    """Seed 15 of the worked example: no knob of the judged agent changes inside a before-span (but for a
    reverted change, which the judge could not tell from no change, and its undo), and a change judged at a later
    look is compared with more windows before it (a retry raise in force from 4,680 s, judged at its second look
    at 5,400 s against the 10 windows before it)."""
    ev = worked_example
    applied = ev[ev["event"] == "knob.applied"]
    reverted = set(ev.loc[ev["event"] == "optimization.reverted", "strategy_id"])
    looks = ev[ev["event"] == "optimization.measured"]
    for look in looks.itertuples():
        inside = applied[(applied["agent"] == look.agent) & (applied["t_s"] > look.before_start_s)
                         & (applied["t_s"] < look.before_end_s)]
        assert set(inside["ref"].str.removeprefix("rollback:")) <= reverted, look.strategy_id
    spans = (looks["before_end_s"] - looks["before_start_s"]) / 60.0
    assert spans.min() == 5 and spans.max() > 5
