"""Common random numbers: every policy sees the same arrivals and service draws for a scenario and seed.

That is what makes the load test's comparisons paired. Arrivals depend on the
seed only, so the arrival rate of every window is the same whatever the
policy changes (its decision count is not: a reviewed decision counts in the
window where its review answer came back); before the first knob change
every figure is the same.
"""

from __future__ import annotations

import pytest

from swarmopt import run_scenario

from conftest import assert_same, short


@pytest.mark.parametrize("seed", [1, 4])
def test_policies_see_the_same_draws(mh_scenario, seed):
    runs = {}
    for policy in ("monitor", "rules", "thompson"):
        sc = short(mh_scenario, 4200, optimizer=mh_scenario.optimizer.model_dump() | {"policy": policy})
        runs[policy] = run_scenario(sc, seed=seed, runtime="local")
    base = runs["monitor"].metrics
    for policy in ("rules", "thompson"):
        res = runs[policy]
        ev = res.events
        first_change = ev.loc[ev["event"] == "knob.applied", "t_s"].min()
        assert 1800 < first_change < 4200, policy  # the policy did change something, after the fault
        m = res.metrics
        assert (m["arrival_rate_per_s"].to_numpy() == base["arrival_rate_per_s"].to_numpy()).all(), policy
        before = m["t_end_s"] <= first_change
        assert_same(m[before], base[before])
        assert not m[~before].equals(base[~before])  # and the change did change the outcome
