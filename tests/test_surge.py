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
    difference is paired. Measured (mean p95 in ms from the start of the ramp, predictive vs reactive-only, seeds
    1-10): 3130/4508, 3253/3307, 3140/3738, 3274/4355, 3136/4479, 3170/3994, 3246/4281, 3277/3996, 3257/4869,
    3240/4095: lower on 10 of 10 seeds, by 22.0% on average (paired t = -6.7). Asserted: lower on at least
    8 of 10 seeds (probability 56/1024 = 0.055 under no effect, sign test) and at least 5% lower on average (under
    a quarter of the measured effect, room for engine changes)."""
    pro = np.array([p[0][0] for p in paired.values()])
    re = np.array([p[1][0] for p in paired.values()])
    assert (pro < re).sum() >= 8, (pro, re)
    assert np.mean(1 - pro / re) >= 0.05, (pro, re)
