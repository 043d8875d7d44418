"""Message topology (swarmopt/sim/topology.py): relays per shape, hops x hop latency, the hub's relay load, and
the direct_routes remedy kept by the judge on the star_hub_delay library scenario."""

from __future__ import annotations

import numpy as np
import pytest

from swarmopt import run_scenario
from swarmopt.loader import load_scenario
from swarmopt.schema import SHAPES, RelayDelayFault, Topology
from swarmopt.sim.topology import Routes

from conftest import ROOT, short

STAR = ROOT / "scenarios" / "library" / "star_hub_delay.yaml"
NAMES = ["a", "b", "c", "d", "hub", "~storm"]
AGENTS = NAMES[:-1]


def _routes(**kw) -> Routes:
    return Routes(Topology(hub="hub", hop_latency_ms=100, **kw), NAMES, AGENTS, [])


def test_relays_per_shape():
    r = _routes(parents={"a": "b", "c": "d"})
    a, b, c, d, hub = range(5)
    assert r.relays(SHAPES.index("mesh"), a, c) == ()
    assert r.relays(SHAPES.index("star"), a, c) == (hub,)
    assert r.relays(SHAPES.index("star"), hub, c) == () == r.relays(SHAPES.index("star"), a, hub)
    assert r.relays(SHAPES.index("hierarchical"), a, c) == (b, d)
    assert r.relays(SHAPES.index("hierarchical"), b, hub) == ()  # b's parent is the hub, the receiver
    assert r.relays(SHAPES.index("ring"), a, d) == (b, c)
    assert r.relays(SHAPES.index("ring"), d, b) == (hub, a)


def test_arrival_is_hops_times_hop_latency_and_each_relay_gets_a_copy():
    r = Routes(Topology(hub="hub", hop_latency_ms=100), NAMES, AGENTS,
               [RelayDelayFault(kind="relay_delay", target="c", at_s=10.0, extra_ms=2000)])
    ring = SHAPES.index("ring")
    at = np.array([1.0, 20.0, 5.0])
    final, idx, relay, t = r.route(np.array([ring, ring, 0]), np.array([0, 0, 0]), np.array([3, 3, 3]), at)
    # a -> b -> c -> d: two relays; c's hop is 2 s slower for the message sent after its fault
    np.testing.assert_allclose(final, [1.2, 22.2, 5.0])
    assert idx.tolist() == [0, 1, 0, 1] and relay.tolist() == [1, 1, 2, 2]
    np.testing.assert_allclose(t, [1.0, 20.0, 1.1, 20.1])


@pytest.fixture(scope="module")
def star_runs():
    """The library scenario without its fault under monitor, star vs mesh (same seed: common random numbers)."""
    sc = load_scenario(STAR)
    base = short(sc, 1800.0, faults=[], optimizer=sc.optimizer.model_dump() | {"policy": "monitor"})
    mesh = short(base, 1800.0, topology=base.topology.model_dump() | {"shape": "mesh"},
                 agents=[a.model_dump() | {"knobs": a.knobs.model_dump() | {"topology": "mesh"}}
                         for a in base.agents])
    return run_scenario(base, seed=1, runtime="local").metrics, run_scenario(mesh, seed=1, runtime="local").metrics


def test_the_hub_handles_one_copy_of_every_relayed_message(star_runs):
    """Conservation: the hub's extra inbox work is exactly the relayed messages (those between two other agents);
    the other agents handle what they handled in the mesh."""
    star, mesh = star_runs
    hub = "strategic-orchestrator"
    handled = lambda m: m.groupby("agent")["messages_handled"].sum()  # noqa: E731
    extra = handled(star) - handled(mesh)
    sent = star.groupby("agent")["messages_sent"].sum()
    sc = load_scenario(STAR)
    prof = {a.id: a for a in sc.agents}
    # expected relayed count: messages of non-hub senders to non-hub receivers, from each link's share
    relayed = sum(sent[a] * sum(link.probability for link in p.downstream if hub not in link.receivers)
                  / sum(link.probability for link in p.downstream) for a, p in prof.items() if a != hub)
    assert (extra.drop(hub).abs() <= 2).all()  # at most a message or two still in transit at the end
    # binomial split of ~4,000 messages over the links: 4 standard errors is about 3%
    assert extra[hub] == pytest.approx(relayed, rel=0.03)


def test_star_hop_lowers_coordination_only_of_relayed_senders(star_runs):
    star, mesh = star_runs
    score = lambda m: m.groupby("agent")["coordination_score"].mean()  # noqa: E731
    s, m = score(star), score(mesh)
    # the orchestrator is the hub: its own requests go direct, so nothing changes for the senders it serves
    assert s["market-hunter"] < m["market-hunter"] and s["market-analyzer"] < m["market-analyzer"]


def test_direct_routes_is_tried_and_kept_on_star_hub_delay():
    """Seed 1, thompson: the judge keeps topology star -> mesh on the Market Hunter (coordination score +139%)."""
    ev = run_scenario(STAR, seed=1, runtime="local").events
    kept = ev[(ev["event"] == "optimization.kept") & (ev["kind"] == "direct_routes")]
    assert len(kept) == 1 and kept["agent"].iloc[0] == "market-hunter"
    assert kept["verdict"].iloc[0] == "pass" and kept["improvement_pct"].iloc[0] > 50


def test_routes_do_not_depend_on_tick_s():
    sc = short(load_scenario(STAR), 2400.0)
    a = run_scenario(sc, seed=2, runtime="local").metrics
    b = run_scenario(short(sc, 2400.0, tick_s=60.0), seed=2, runtime="local").metrics
    cols = ["agent", "t_start_s", "coordination_score", "messages_handled", "inbox_in_time_rate"]
    assert a[cols].equals(b[cols])


def test_a_deadline_shared_by_agents_served_together_is_met_as_each_own():
    """Agents served together whose coordination deadline is equal get it as one broadcast value (sim/serve.py);
    on a star (requests met when their routed message arrives) that must score as a per-agent deadline does:
    the same run with one deadline 1 ns longer (then gathered per decision) has the same coordination, since no
    message of ~1,000 lands within 1 ns of the deadline."""
    sc = short(load_scenario(STAR), 1200.0, faults=[])

    def run(bump: float):
        agents = [a.model_dump() | {"coordination_deadline_s": 4.0 + (bump if i == 0 else 0.0)}
                  for i, a in enumerate(sc.agents)]
        return run_scenario(short(sc, 1200.0, agents=agents), seed=1, runtime="local").metrics

    shared, apart = run(0.0), run(1e-9)
    cols = ["agent", "t_start_s", "coordination_score", "coordination_requests"]
    assert shared["coordination_requests"].sum() > 500
    assert shared[cols].equals(apart[cols])
