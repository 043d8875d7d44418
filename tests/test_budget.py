"""Costs and budgets: the cost breakdown adds up, a tool's price change shows in its per-call cost, burn-rate
alerts follow the multiwindow rule, the cost remedy acts on the breakdown and the judge keeps it."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt import run_scenario
from swarmopt.loader import build_scenario, load_scenario
from swarmopt.optimizer.budget import SPEND, burn_alerts, cache_costly_tool
from swarmopt.optimizer.detect import SNAPSHOT_FIELDS
from swarmopt.optimizer.stabilize import bound_step, outside_dead_band
from swarmopt.schema import TIERS, Budget

from conftest import ROOT, short

LIBRARY = ROOT / "scenarios" / "library"
MA = "market-analyzer"


@pytest.fixture(scope="module")
def spike():
    """cost_spike_budget, seed 1, rules: the price feed 100x dearer from 30 min on."""
    return run_scenario(load_scenario(LIBRARY / "cost_spike_budget.yaml"), seed=1, runtime="local")


def test_cost_breakdown_adds_up_per_window(spike):
    """cost = model (the tiers' sum) + tools (each tool's sum), and a paid tool's cost is its calls times its
    price: $0.0005 a call before the price change, 100x that after it."""
    m = spike.metrics
    tiers = m[[f"model_cost_usd.{t}" for t in TIERS]].sum(axis=1)
    tools = m.filter(like="tool_cost_usd.").sum(axis=1)
    assert np.allclose(m["cost_usd"], m["model_cost_usd"] + m["tool_cost_usd"], rtol=1e-12, atol=1e-12)
    assert np.allclose(m["model_cost_usd"], tiers, rtol=1e-12) and np.allclose(m["tool_cost_usd"], tools, rtol=1e-12)
    a = m[(m["agent"] == MA) & (m["tool_calls.price_feed"] > 0)]
    per_call = a["tool_cost_usd.price_feed"] / a["tool_calls.price_feed"]
    assert np.allclose(per_call[a["t_start_s"] < 1800], 0.0005) and np.allclose(per_call[a["t_start_s"] >= 1800], 0.05)
    assert np.allclose(m["cost_usd_per_hour"], m["cost_usd"] * 60.0)


def test_summary_breaks_the_spend_down_and_follows_the_budget(spike):
    c = spike.summary["costs"]
    assert c["total_usd"] == pytest.approx(spike.metrics["cost_usd"].sum())
    assert c["model_usd"] + c["tools_usd"] == pytest.approx(c["total_usd"])
    assert sum(c["tiers"].values()) == pytest.approx(c["model_usd"])
    assert sum(v["cost_usd"] for v in c["agents"].values()) == pytest.approx(c["total_usd"])
    assert c["tools"]["price_feed"]["cost_usd"] > c["tools"]["web_search"]["cost_usd"]  # the spiked tool leads
    b = c["budget"]
    # about 1x over the run (0.95 at seed 1): twice the budget from the spike until the cache and the cheaper tier
    # bring it under, then under it
    assert b["agents"] == {MA: 60.0} and 0.8 < b["agent_burn_rates"][MA] < 1.2
    assert b["alerts"]["slow"] > 0 and 1800 < b["first_alert_s"] <= 3600  # within half an hour of the spike


def _mats(spend: list[float], n_agents: int = 1, extra: dict | None = None) -> dict[str, np.ndarray]:
    """Window vectors with ``cost_usd_per_hour`` = ``spend`` (oldest first) and 60 decisions a window."""
    out = {}
    for i in range(n_agents):
        m = np.zeros((len(spend), len(SNAPSHOT_FIELDS)))
        m[:, 0] = 60.0
        m[:, SPEND] = (extra or {}).get(i, spend)
        out[f"agent-{i}"] = m
    return out


def test_a_sustained_burn_pages_and_a_spike_that_is_over_does_not():
    budget = Budget(agents={"agent-0": 100.0})
    assert burn_alerts(_mats([95.0] * 360), budget, 60.0) == []  # within budget
    (at,) = burn_alerts(_mats([100.0] * 360), budget, 60.0)  # spending the whole budget: a ticket, not a page
    assert at.severity == "medium" and at.threshold == 1.0 and at.description.startswith("slow burn")
    hot = _mats([100.0] * 300 + [250.0] * 60)  # the last hour at 2.5x
    (b,) = burn_alerts(hot, budget, 60.0)
    assert (b.type, b.severity, b.affected_component, b.metric) == ("cost_burn", "high", "agent-0", "cost_burn_rate")
    assert b.value == pytest.approx(2.5) and b.threshold == 2.0 and b.description.startswith("fast burn")
    # the last hour burned 2.4x but its last 5 min are back at 1x: no page; the 6 h span burned 1.23x and its last
    # 30 min 2.25x: a ticket
    (ticket,) = burn_alerts(_mats([100.0] * 300 + [250.0] * 55 + [100.0] * 5), budget, 60.0)
    assert ticket.severity == "medium"
    # 1.8x for the last two hours: under the page's 2x, but the 6 h span burned 1.27x: a ticket
    (slow,) = burn_alerts(_mats([100.0] * 240 + [180.0] * 120), budget, 60.0)
    assert slow.severity == "medium" and slow.value == pytest.approx((240 * 100 + 120 * 180) / 360 / 100)


def test_the_optimizer_acts_on_a_burn_around_a_setpoint_inside_the_budget():
    """With the setpoint margin an alert fires at 0.9x the budget and the 10% tolerance band sits around that, so a
    spend at the budget is acted on; without it the band sat above the budget and 1.06x was "within tolerance"."""
    budget = Budget(agents={"agent-0": 100.0})
    assert burn_alerts(_mats([89.0] * 360), budget, 60.0, margin=0.1) == []
    (near,) = burn_alerts(_mats([95.0] * 360), budget, 60.0, margin=0.1)
    assert near.threshold == pytest.approx(0.9) and not outside_dead_band(near, 0.1)  # fires, inside the band
    (at,) = burn_alerts(_mats([100.0] * 360), budget, 60.0, margin=0.1)
    assert outside_dead_band(at, 0.1)
    (over,) = burn_alerts(_mats([106.0] * 360), budget, 60.0)
    assert over.threshold == 1.0 and not outside_dead_band(over, 0.1)  # no margin: 6% over budget and no action


def test_a_system_budget_charges_the_agent_whose_spend_rose():
    budget = Budget(usd_per_hour=250.0)
    mats = _mats([100.0] * 360, n_agents=3, extra={1: [50.0] * 300 + [400.0] * 60})  # agent-1 spikes
    (b,) = burn_alerts(mats, budget, 60.0)
    assert b.affected_component == "agent-1" and b.value == pytest.approx(600.0 / 250.0)
    assert "system" in b.description and "charged to agent-1" in b.description


def test_cache_costly_tool_caches_the_tool_that_burns_most():
    sc = load_scenario(LIBRARY / "cost_spike_budget.yaml")
    p = next(a for a in sc.agents if a.id == MA)
    snap = {"tools": {"price_feed": {"cost_usd": 8.0, "calls": 160, "error_rate": 0.0},
                      "sentiment_api": {"cost_usd": 0.6, "calls": 300, "error_rate": 0.0}},
            "model_cost_usd_sum": 3.0}
    (c,) = cache_costly_tool(snap, p.knobs, p)
    # toward an hour: the planner bounds the step (30 -> 480 s, bound_step's TTL ratio of 16)
    assert (c.knob, c.old, c.new) == ("cache_ttl_s.price_feed", 30.0, 3600.0)
    assert bound_step(c).new == 480.0
    snap["tools"]["price_feed"]["cost_usd"] = 0.5  # tools are a small share: the model burns the budget
    assert cache_costly_tool(snap, p.knobs, p) is None


def test_the_judge_keeps_a_cost_remedy_on_the_budget_alert(spike):
    """Seed 1, rules: the first change on the analyzer answers the burn-rate alert by caching the price feed; the
    judge measures spend per success on window means adjusted for the load. The TTL raises 30 -> 120 s and
    120 -> 480 s are kept (+21%, p = 0.003; +14%, p = 0.007), then a cheaper tier (+60%); the spend falls by more
    than a fifth. (With a fitted trend the first raise read no gain and was reverted.)"""
    ev = spike.events
    first = ev[(ev["event"] == "optimization.scheduled") & (ev["agent"] == MA)].iloc[0]
    assert (first["type"], first["kind"]) == ("cost_burn", "cache_costly_tool")
    kept = ev[(ev["event"] == "optimization.kept") & (ev["agent"] == MA)]
    assert len(kept) >= 1 and set(kept["kind"]) <= {"cache_costly_tool", "cheaper_model_tier"}
    assert (kept["metric"] == "cost_per_success_usd").all() and (kept["improvement_pct"] > 10).all()
    m = spike.metrics[spike.metrics["agent"] == MA]
    assert m[m["t_start_s"] >= 8400]["cost_usd_per_hour"].mean() < 0.8 * m[
        (m["t_start_s"] >= 1800) & (m["t_start_s"] < 3600)]["cost_usd_per_hour"].mean()


def test_no_budget_no_alert_and_a_bad_budget_is_named(mh_scenario):
    assert not Budget().enabled
    agents = [f"{a}.yaml" for a in ("strategic_orchestrator", "market_hunter", "narrative_architect", "market_analyzer",
                                     "execution_agent")]
    data = {"name": "x", "duration_s": 600, "agents": agents, "budget": {"agents": {"nobody": 5}}}
    with pytest.raises(Exception, match="budget.agents: unknown agent 'nobody'"):
        build_scenario(data)
    ev = run_scenario(short(mh_scenario, 3600), seed=1, runtime="local").events
    assert not (ev["type"] == "cost_burn").any()
