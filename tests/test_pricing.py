"""A change's known price: tier changes scale the cost per decision by the tier table's ratio, and a change that
must break the cost guardrail is not tried."""

from __future__ import annotations

import math

import numpy as np
import pytest

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange
from swarmopt.loader import load_scenario
from swarmopt.optimizer.detect import Bottleneck, snapshot
from swarmopt.optimizer.learning import Learning
from swarmopt.optimizer.planning import Planner
from swarmopt.optimizer.pricing import predicted_cost_rise, tier_price
from swarmopt.schema import DEFAULT_TIERS

from conftest import MH_SCENARIO, short

SC = load_scenario(MH_SCENARIO)
PROFILES = {a.id: a for a in SC.agents}
HUNTER = PROFILES["market-hunter"]  # standard tier; 40% simple and 20% complex actions
ROUTE = [KnobChange(HUNTER.id, "tier_routing", False, True)]


def test_routing_scales_the_model_cost_by_the_tier_tables_ratio():
    """Per attempt, the Hunter's 1,800 prompt and 250 output tokens cost $420 per million on the fast tier, $9,150
    on standard and $45,750 on strong. Routing sends the simple 40% to the fast tier and the complex 20% to the
    strong one: from standard the model cost per decision rises by (0.4 x 420 + 0.2 x 45,750 + 0.4 x 9,150) /
    9,150 - 1 = +41.8%, under the +50% guardrail; from the fast tier by 0.8 + 0.2 x 45,750 / 420 - 1 = +2,159%."""
    assert [tier_price(DEFAULT_TIERS[t], HUNTER) for t in ("fast", "standard", "strong")] == [420.0, 9150.0, 45750.0]
    assert predicted_cost_rise(ROUTE, HUNTER.knobs, HUNTER, DEFAULT_TIERS, 1.0, 0.0) == pytest.approx(
        (0.4 * 420 + 0.2 * 45750 + 0.4 * 9150) / 9150 - 1)
    fast = HUNTER.knobs.model_copy(update={"model_tier": "fast"})
    assert predicted_cost_rise(ROUTE, fast, HUNTER, DEFAULT_TIERS, 1.0, 0.0) == pytest.approx(0.2 * 45750 / 420 - 0.2)
    # the tools' spend does not scale: with as much spent on tools, the rise is half
    assert predicted_cost_rise(ROUTE, fast, HUNTER, DEFAULT_TIERS, 2.0, 2.0) == pytest.approx(0.1 * 45750 / 420 - 0.1)
    cheaper = [KnobChange(HUNTER.id, "model_tier", "standard", "fast")]
    assert predicted_cost_rise(cheaper, HUNTER.knobs, HUNTER, DEFAULT_TIERS, 1.0, 0.0) == pytest.approx(420 / 9150 - 1)


def test_no_price_without_a_tier_change_or_a_known_spend():
    workers = [KnobChange(HUNTER.id, "max_concurrency", 4, 6)]
    assert predicted_cost_rise(workers, HUNTER.knobs, HUNTER, DEFAULT_TIERS, 1.0, 0.0) is None
    assert predicted_cost_rise(ROUTE, HUNTER.knobs, HUNTER, DEFAULT_TIERS, math.nan, 0.0) is None  # not observed
    assert predicted_cost_rise(ROUTE, HUNTER.knobs, HUNTER, DEFAULT_TIERS, 0.0, 0.0) is None


class TakeRouting:
    """A policy that takes routing by complexity whenever it is offered."""

    def choose(self, ctx, rng):
        return next((o for o in ctx.options if o[0].name == "route_by_complexity"), None)


@pytest.fixture(scope="module")
def rows():
    """The Hunter's window rows of a healthy half hour (monitor: no change)."""
    run = run_scenario(short(SC, 1800, faults=[]), seed=1, policy="monitor", runtime="local")
    return [r for r in run.metrics.to_dict("records") if r["agent"] == HUNTER.id][-5:]


def plan_for_low_success(rows, tier: str, guardrail: float, models=SC.models) -> tuple[list, list[dict]]:
    """One planning cycle for the Hunter on ``tier`` with a success rate of 0.5 (its remedies include routing)."""
    knobs = HUNTER.knobs.model_copy(update={"model_tier": tier})
    cfg = SC.optimizer.model_copy(update={"guardrail_cost_rise": guardrail})
    planner = Planner(cfg, PROFILES, 60.0, TakeRouting(), np.random.default_rng(0), Learning(), models=models)
    snap = snapshot(rows) | {"success_rate": 0.5}
    low = Bottleneck("agent_success_rate", "high", HUNTER.id, "success_rate", 0.5, 0.7, 20.0, "", "")
    events: list[dict] = []
    out = planner.plan(1800.0, [low], {HUNTER.id: snap}, {}, {HUNTER.id: knobs}, {}, lambda a: tuple(rows), events)
    return out, events


def test_routing_that_must_break_the_cost_guardrail_is_not_tried(rows):
    planned, events = plan_for_low_success(rows, "fast", 0.5)
    assert planned == []
    held = [e for e in events if e["event"] == "strategy.held"]
    # a stronger tier (fast -> standard, 22 times the price) is held too
    assert {e["kind"] for e in held} == {"route_by_complexity", "stronger_model_tier"}
    assert all("cost guardrail" in e["detail"] for e in held)
    # from the standard tier (+42%), with a looser guardrail, or with no tier table (an observed agent) it is tried
    for tier, guardrail, models in (("standard", 0.5, SC.models), ("fast", 25.0, SC.models), ("fast", 0.5, None)):
        planned, _ = plan_for_low_success(rows, tier, guardrail, models)
        assert [s.kind for s in planned] == ["route_by_complexity"], (tier, guardrail, models)
