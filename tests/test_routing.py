"""Model selection by action complexity (the source's RealTimeOptimizer rule):
simple actions on the fast tier, complex ones on the strong tier."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt.sim.agent import AgentSim
from swarmopt.sim.environment import Environment
from swarmopt.sim.seeds import agent_seeds


def tier_run(sc, seed: int, **knobs) -> dict:
    """One hour of the Market Hunter alone with ``knobs``: pooled figures."""
    seeds, _ = agent_seeds(seed, len(sc.agents))
    i = [a.id for a in sc.agents].index("market-hunter")
    p = sc.agents[i]
    p = p.model_copy(update={"knobs": p.knobs.model_copy(update=knobs)})
    sim = AgentSim(p, sc.models, Environment(sc.load, [], 3600), seeds[i], 60.0)
    sim.step(0.0, 3600.0, [], [])
    _, closed, _ = sim.step(3600.0, 3600.0, [], [])
    a = {f: np.concatenate([w.arrays[f] for w in closed]) for f in ("success", "cost", "tier")}
    resp = np.concatenate([w.response_ms for w in closed])
    return {"n": a["success"].size, "success": a["success"].mean(), "cost": a["cost"].mean(),
            "fast": (a["tier"] == 0).mean(), "strong": (a["tier"] == 2).mean(), "resp_ms": resp.mean()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_routing_buys_quality_below_the_strong_tier_price(mh_scenario, seed):
    """On the same decisions (common random numbers), routing 40% simple actions
    to fast and 20% complex ones to strong lifts success over the standard tier
    (complex actions gain most: quality gap weighted 2x) and costs less than
    putting every decision on strong."""
    std = tier_run(mh_scenario, seed, model_tier="standard")
    routed = tier_run(mh_scenario, seed, model_tier="standard", tier_routing=True)
    strong = tier_run(mh_scenario, seed, model_tier="strong")
    n = routed["n"]
    assert n > 3500
    # shares of the default action mix; binomial s.e. < 0.0085 at n > 3500: 4 s.e.
    assert routed["fast"] == pytest.approx(0.4, abs=0.035)
    assert routed["strong"] == pytest.approx(0.2, abs=0.035)
    assert std["fast"] == 0 and std["strong"] == 0
    # expected lift ~ 0.2 x (0.963 - 0.86) - 0.4 x (0.86 - 0.845) = +0.015; with
    # common random numbers only ~115 decisions flip, s.d. of the difference ~0.0025
    assert routed["success"] - std["success"] > 0.005
    assert std["cost"] < routed["cost"] < 0.6 * strong["cost"]
