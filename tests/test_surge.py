"""Prediction: Holt-forecast pre-scaling against reactive-only scaling on a predictable surge, paired over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt import run_scenario
from swarmopt.loader import load_scenario

from conftest import ROOT, short

SURGE = load_scenario(ROOT / "scenarios" / "surge.yaml")
SEEDS = list(range(1, 11))


def surge_p95(proactive: bool, seed: int) -> tuple[float, set[str]]:
    """Mean over agents and windows of the per-window p95 response time (ms) from the start of the ramp to the end,
    and the strategy types the optimizer scheduled."""
    sc = short(SURGE, SURGE.duration_s, optimizer=SURGE.optimizer.model_dump() | {"proactive": proactive})
    res = run_scenario(sc, seed=seed, runtime="local")
    m = res.metrics
    ev = res.events
    types = set(ev.loc[ev["event"] == "optimization.scheduled", "type"])
    return float(m.loc[m["t_start_s"] >= SURGE.load.start_s, "response_time_ms_p95"].mean()), types


@pytest.fixture(scope="module")
def paired():
    return {seed: (surge_p95(True, seed), surge_p95(False, seed)) for seed in SEEDS}


def test_reactive_only_plans_no_proactive_strategy(paired):
    for (_, pro_types), (_, re_types) in paired.values():
        assert "predictive_optimization" in pro_types
        assert not re_types & {"predictive_optimization", "coordination_enhancement"}


def test_predictive_pre_scaling_cuts_p95_during_the_surge(paired):
    """Same seeds, so both policies see the same arrivals and service draws (common random numbers) and the
    difference is paired. Measured at the time of writing (mean p95 in ms from the start of the ramp, predictive
    vs reactive-only, seeds 1-10): 3160/4362, 3233/3531, 3142/3793, 3115/4048, 3211/4281, 3237/3539, 3265/5216,
    3171/4164, 4387/3401, 3201/3322: lower on 9 of 10 seeds, by 14.6% on average (paired t = 2.6). On seed 9 the
    judge's success-rate guardrail rolls back a pre-scale that passed, at the peak, because the success rate falls
    with the rising load (a before/after confound of the judge, not of the forecast). Asserted: lower on at least
    8 of 10 seeds (probability 56/1024 = 0.055 under no effect, sign test) and at least 5% lower on average (a
    third of the measured effect, room for engine changes)."""
    pro = np.array([p[0][0] for p in paired.values()])
    re = np.array([p[1][0] for p in paired.values()])
    assert (pro < re).sum() >= 8, (pro, re)
    assert np.mean(1 - pro / re) >= 0.05, (pro, re)
