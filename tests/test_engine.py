"""Engine properties: determinism, tick invariance, common random numbers, autonomy effect."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from swarmopt import run_scenario
from swarmopt.knobs import KnobChange, ScheduledChange
from swarmopt.loader import load_scenario
from swarmopt.metrics import COLUMN, window_index
from swarmopt.sim.agent import AgentSim
from swarmopt.sim.environment import Environment
from swarmopt.sim.seeds import agent_seeds

from conftest import assert_same, short


def test_a_time_a_rounding_error_short_of_a_window_end_counts_in_the_next_window():
    # 0.1 x 3 x 600 is 180.00000000000003 and 3 x (0.1 x 600) may land a hair short of 180: both are window 3
    assert window_index(180.0 - 1e-12, 60.0) == 3
    assert window_index(180.0 + 1e-12, 60.0) == 3
    assert window_index(180.0 - 1e-6, 60.0) == 2  # a real time before the boundary stays in its window
    assert window_index(np.array([59.99999999999, 60.0, 119.9999]), 60.0).tolist() == [1, 1, 1]
    assert window_index(0.0, 60.0) == 0


def test_same_seed_same_tables_other_seed_differs(mh_scenario):
    sc = short(mh_scenario, 1200)
    a = run_scenario(sc, seed=3, runtime="local")
    b = run_scenario(sc, seed=3, runtime="local")
    c = run_scenario(sc, seed=4, runtime="local")
    assert_same(a.metrics, b.metrics)
    assert_same(a.events, b.events)
    assert not a.metrics["response_time_ms_mean"].equals(c.metrics["response_time_ms_mean"])


def test_results_do_not_depend_on_tick(mh_scenario):
    """Messages carry their own times and every random draw is made per window
    block, so the BSP tick only sets how often actors synchronize."""
    sc = short(mh_scenario, 2400)
    runs = [run_scenario(short(sc, 2400, tick_s=tick), runtime="local") for tick in (1.0, 15.0, 60.0, 300.0)]
    for other in runs[1:]:
        assert_same(runs[0].metrics, other.metrics)
        assert_same(runs[0].events, other.events)


def test_results_do_not_depend_on_tick_when_a_change_lands_inside_a_tick(mh_scenario):
    """With a 240 s cycle the optimizer's first change (2 min after the cycle at
    2100 s) takes effect at 2220 s: a window boundary that a 120 s or 240 s
    tick steps over. The window ending there must still show the knobs before
    the change, as with ticks that stop at it."""
    sc = short(mh_scenario, 2400, optimizer=mh_scenario.optimizer.model_dump() | {"cycle_s": 240.0})
    runs = {tick: run_scenario(short(sc, 2400, tick_s=tick), runtime="local") for tick in (30.0, 60.0, 120.0, 240.0)}
    ev = runs[60.0].events
    at = ev.loc[(ev["event"] == "knob.applied") & (ev["knob"] == "max_concurrency"), "t_s"].tolist()
    assert at and all(t % sc.window_s == 0 and t % 120.0 for t in at)  # the case under test does occur
    for tick, other in runs.items():
        assert_same(runs[60.0].metrics, other.metrics, obj=f"metrics at tick {tick:g} s")
        assert_same(runs[60.0].events, other.events, obj=f"events at tick {tick:g} s")


def test_inbox_batches_follow_a_batch_size_change_inside_a_tick():
    """The inbox is served lazily, up to the start of the next step. Under the
    coordination storm the source's rules' first change (message_batch_size 1 -> 4,
    planned at 2100 s) takes effect at 2280 s, inside a 300 s tick: the batches
    before it keep size 1 (about 430 messages a window), the later ones take 4
    (about 1,180), as with ticks that stop at the change."""
    sc = load_scenario(Path(__file__).parent.parent / "scenarios" / "library" / "coordination_storm.yaml")
    runs = {tick: run_scenario(short(sc, 2700, tick_s=tick), runtime="local", policy="rules") for tick in (60.0, 300.0)}
    m = runs[60.0].metrics
    handled = m[m["agent"] == "strategic-orchestrator"].set_index("t_start_s")["messages_handled"]
    assert handled[2220.0] < 500 < 1000 < handled[2280.0]  # the case under test does occur
    for tick, other in runs.items():
        assert_same(m, other.metrics, obj=f"metrics at tick {tick:g} s")
        assert_same(runs[60.0].events, other.events, obj=f"events at tick {tick:g} s")


def _sim(sc, agent="market-hunter", **knobs):
    seeds, _ = agent_seeds(7, len(sc.agents))
    i = [a.id for a in sc.agents].index(agent)
    p = sc.agents[i]
    if knobs:
        p = p.model_copy(update={"knobs": p.knobs.model_copy(update=knobs)})
    return AgentSim(p, sc.models, Environment(sc.load, [], 3600), seeds[i], 60.0)


def _run(sim, until=3600.0, changes=()):
    sim.step(0.0, 0.0, [], list(changes))
    sim.step(0.0, until, [], [])
    _, closed, _ = sim.step(until, until, [], [])
    return closed


def test_a_change_at_a_window_end_belongs_to_the_next_window_whatever_the_tick(mh_scenario):
    """Workers 4 -> 8 and autonomy 0.85 -> 0.55 at 60 s, the end of window 0:
    window 0 is recorded with the old state and window 1 with the new one,
    whether a tick stops at 60 s (30, 60) or steps over it (120)."""
    def rows(tick, until=240.0):
        sim = _sim(mh_scenario)
        closed = list(sim.step(0.0, 0.0, [], [
            ScheduledChange(60.0, KnobChange(sim.id, "max_concurrency", 4, 8), "test"),
            ScheduledChange(60.0, KnobChange(sim.id, "autonomy", 0.85, 0.55), "test")])[1])
        for k in range(int(until / tick)):
            closed += sim.step(k * tick, (k + 1) * tick, [], [])[1]
        closed += sim.step(until, until, [], [])[1]
        return pd.DataFrame([sim.metrics_row(w) for w in closed])

    by_tick = {tick: rows(tick) for tick in (30.0, 60.0, 120.0)}
    base = by_tick[60.0]
    assert base["max_concurrency"].tolist() == [4, 8, 8, 8]
    assert base["autonomy"].tolist() == [0.85, 0.55, 0.55, 0.55]
    for tick, other in by_tick.items():
        assert_same(base, other, obj=f"windows at tick {tick:g} s")


def test_a_change_due_at_a_span_start_does_not_hide_the_next_one(mh_scenario):
    """Workers 4 -> 1 at 60 s and 1 -> 8 at 90 s, both inside one 120 s tick: the span that starts at 60 s must
    end at 90 s (the second change), as it does with ticks that stop there."""
    def rows(tick, until=240.0):
        sim = _sim(mh_scenario)
        closed = list(sim.step(0.0, 0.0, [], [
            ScheduledChange(60.0, KnobChange(sim.id, "max_concurrency", 4, 1), "test"),
            ScheduledChange(90.0, KnobChange(sim.id, "max_concurrency", 1, 8), "test")])[1])
        for k in range(int(until / tick)):
            closed += sim.step(k * tick, (k + 1) * tick, [], [])[1]
        closed += sim.step(until, until, [], [])[1]
        return pd.DataFrame([sim.metrics_row(w) for w in closed])

    base = rows(30.0)
    assert base["max_concurrency"].tolist() == [4, 8, 8, 8]
    assert_same(base, rows(120.0))


def test_common_random_numbers_same_arrivals_whatever_the_knobs(mh_scenario):
    a = _run(_sim(mh_scenario))
    b = _run(_sim(mh_scenario, max_concurrency=1, parallel_tools=True))
    for wa, wb in zip(a, b, strict=True):
        assert (wa.arrays["arrival"] == wb.arrays["arrival"]).all()
    wait_a = sum((w.arrays["start"] - w.arrays["arrival"]).sum() for w in a)
    wait_b = sum((w.arrays["start"] - w.arrays["arrival"]).sum() for w in b)
    assert wait_b > 10 * wait_a  # one worker instead of four queues hard on the same arrivals


def test_lower_autonomy_escalates_more(mh_scenario):
    """Escalation probability is 1 - autonomy (plus low-confidence cases): on
    ~4300 decisions the rate must move by about the autonomy difference."""
    hi = _run(_sim(mh_scenario))
    sim = _sim(mh_scenario)
    lo = _run(sim, changes=[ScheduledChange(0.0, KnobChange(sim.id, "autonomy", 0.85, 0.55), "test")])

    def rate(ws):
        n = sum(w.arrays["arrival"].size for w in ws)
        return sum(w.arrays["escalated"].sum() for w in ws) / n, n

    (r_hi, _), (r_lo, _) = rate(hi), rate(lo)
    # difference 0.30 of valid decisions; binomial s.e. of each rate < 0.008 at n ~ 4300
    assert r_lo - r_hi == pytest.approx(0.30 * (1 - 0.02), abs=0.04)
    def resp(ws):
        return sum(w.response_ms.sum() for w in ws) / sum(w.arrays["arrival"].size for w in ws)

    assert resp(lo) > resp(hi) + 300  # each extra review costs ~1.5 s on ~30% of decisions


def test_wall_clock_mode_gives_the_same_results(mh_scenario):
    """--realtime only sleeps between ticks: 600 simulated s at 1200x take ~0.5 s and match virtual time."""
    import time

    sc = short(mh_scenario, 600)
    started = time.monotonic()
    paced = run_scenario(sc, runtime="local", realtime=1200.0)
    assert time.monotonic() - started >= 0.45
    assert_same(paced.metrics, run_scenario(sc, runtime="local").metrics)


def test_a_link_to_a_population_spreads_messages_evenly_over_its_replicas(mh_scenario):
    """The Orchestrator's link to 4 Market Hunter replicas (probability 0.5) sends
    each message to one replica picked by the same uniform draw that decided to
    send: per decision the message rate is unchanged, and over ~690 messages
    each replica gets a quarter (binomial s.e. 0.0165; tolerance 4 s.e.)."""
    from swarmopt.loader import build_scenario

    sc = build_scenario({"name": "pop", "duration_s": 3600, "agents": [
        {"profile": "market_hunter.yaml", "count": 4}, "market_analyzer.yaml", "strategic_orchestrator.yaml",
        "narrative_architect.yaml", "execution_agent.yaml"]})
    i = [a.id for a in sc.agents].index("strategic-orchestrator")
    seeds, _ = agent_seeds(3, len(sc.agents))
    sim = AgentSim(sc.agents[i], sc.models, Environment(sc.load, [], 3600), seeds[i], 60.0)
    out, _, _ = sim.step(0.0, 3600.0, [], [])
    to_hunters = [m.receiver for m in out if m.receiver.startswith("market-hunter")]
    assert len(to_hunters) > 500
    shares = pd.Series(to_hunters).value_counts(normalize=True)
    assert sorted(shares.index) == [f"market-hunter-{k}" for k in range(4)]
    assert (shares - 0.25).abs().max() < 0.066


def test_cache_bypass_makes_every_lookup_of_the_tool_miss(mh_scenario):
    """From 1800 s the data source's answers cannot be cached: its hits vanish
    while the web search keeps hitting. By the TTL hit-rate formula the web
    search holds 0.397 of the plain run's hits; over ~1,400 hits the ratio's
    s.e. is ~0.013 (tolerance 4 s.e.)."""
    from swarmopt.queueing import ttl_cache_hit_rate, zipf_probabilities
    from swarmopt.schema import CacheBypassFault

    i = [a.id for a in mh_scenario.agents].index("market-hunter")
    p = mh_scenario.agents[i]
    bypass = CacheBypassFault(kind="cache_bypass", target=p.id, tool="data_source", at_s=1800.0)
    runs = {}
    for name, faults in (("plain", []), ("bypass", [bypass])):
        seeds, _ = agent_seeds(5, len(mh_scenario.agents))  # a SeedSequence spawns once per agent
        sim = AgentSim(p, mh_scenario.models, Environment(mh_scenario.load, faults, 3600), seeds[i], 60.0)
        runs[name] = _run(sim)
    hits = {name: [float(w.arrays["hits"].sum()) for w in ws] for name, ws in runs.items()}
    assert hits["bypass"][:30] == hits["plain"][:30]  # same draws, same hits before the fault
    late = slice(31, 60)
    ratio = sum(hits["bypass"][late]) / sum(hits["plain"][late])
    rate = {t.name: ttl_cache_hit_rate(zipf_probabilities(t.keyspace, t.zipf_s), p.base_rate_per_s,
                                       p.knobs.cache_ttl_s[t.name]) for t in p.tools}
    assert ratio == pytest.approx(rate["web_search"] / sum(rate.values()), abs=0.05)


def test_cache_hit_rate_is_per_lookup_and_tool_call_hit_rate_counts_retries(mh_scenario):
    """Two tools, two retries: ``hot`` has one key, never errs and is cached for
    a day, so only the first decision misses it (one call, which fills the
    cache); ``broken`` always errs and is not cached, so every decision calls it
    on all 3 attempts. A window of n decisions (h of them hot hits: n - 1 in
    window 0, n later) has 2n lookups and 3n + (n - h) calls, so
    cache_hit_rate = h / 2n and tool_call_hit_rate = h / (h + 4n - h) = h / 4n."""
    from swarmopt.schema import ToolProfile

    i = [a.id for a in mh_scenario.agents].index("market-hunter")
    p = mh_scenario.agents[i]
    tools = [ToolProfile(name="hot", latency_ms_median=10, keyspace=1, error_rate=0.0),
             ToolProfile(name="broken", latency_ms_median=10, error_rate=1.0)]
    p = p.model_copy(update={"tools": tools, "knobs": p.knobs.model_copy(
        update={"cache_ttl_s": {"hot": 86_400.0}, "max_retries": 2})})
    seeds, _ = agent_seeds(7, len(mh_scenario.agents))
    sim = AgentSim(p, mh_scenario.models, Environment(mh_scenario.load, [], 300), seeds[i], 60.0)
    rows = [sim.metrics_row(w) for w in _run(sim, until=300.0)]
    assert len(rows) == 5 and all(r["decision_count"] > 50 for r in rows)
    assert all(r["error_rate"] == 1.0 for r in rows)  # every attempt failed on the broken tool
    for r in rows:
        n = r["decision_count"]
        h = n - 1 if r["window"] == 0 else n
        assert r["cache_hit_rate"] == h / (2 * n)
        assert r["tool_call_hit_rate"] == h / (4 * n)


def test_steady_multiplier_is_the_rate_everywhere_in_its_interval_or_none():
    # a block whose rate is steady is drawn without sampling the rate: it must be the rate at every time of
    # the closed interval, and None whenever a surge starts or ends inside it (window boundaries included)
    from swarmopt.schema import LoadShape, LoadSurgeFault

    faults = [LoadSurgeFault(kind="load_surge", target="a", at_s=120.0, duration_s=300.0, factor=1.4),
              LoadSurgeFault(kind="load_surge", target="a", at_s=400.0, factor=0.5)]
    env = Environment(LoadShape(multiplier=1.3), faults, 3600.0)
    seen = set()
    for t0 in np.arange(0.0, 900.0, 30.0):
        for length in (10.0, 60.0, 120.0):
            steady = env.steady_multiplier(t0, t0 + length)
            grid = env.rate_multiplier(np.linspace(t0, t0 + length, 241))
            seen.add(steady is None)
            if steady is None:
                assert any(t0 < b <= t0 + length for b in (120.0, 420.0, 400.0))
            else:
                assert (grid == steady).all()
    assert seen == {True, False}
    assert Environment(LoadShape(kind="diurnal"), [], 3600.0).steady_multiplier(0.0, 60.0) is None


@pytest.mark.parametrize("multiplier", [1.0, 4.0])
def test_throughput_and_queue_length_count_the_served_decisions(mh_scenario, multiplier):
    """Per window, ``throughput_per_s`` x window is the decisions whose worker finished in it (whenever they
    arrived) and ``queue_length`` those that arrived before its end and started after it, counted from the
    windows' own per-task tables; at four times the Hunter's load (about 1.35 times its workers' capacity)
    the queue grows all along and the throughput stays at that capacity, below the arrival rate."""
    profile = next(a for a in mh_scenario.agents if a.id == "market-hunter")
    load = mh_scenario.load.model_copy(update={"multiplier": multiplier})
    sim = AgentSim(profile, mh_scenario.models, Environment(load, [], 1800.0), agent_seeds(3, 1)[0][0], 60.0)
    closed = []
    for k in range(31):
        closed += sim.step(60.0 * k, min(60.0 * (k + 1), 1800.0), [], [])[1]
    rows = [sim.metrics_row(w) for w in closed]
    tasks = np.concatenate([w.table for w in closed], axis=1)
    arrival, start, end = (tasks[COLUMN[f]] for f in ("arrival", "start", "end"))
    ended = np.bincount(window_index(end, 60.0), minlength=len(rows))
    assert len(rows) == 30
    for k, r in enumerate(rows):
        assert r["throughput_per_s"] == pytest.approx(ended[k] / 60.0, rel=1e-12)
        assert r["queue_length"] == np.count_nonzero((window_index(arrival, 60.0) <= k)
                                                     & (window_index(start, 60.0) > k))
    late = rows[10:]
    if multiplier == 1.0:
        assert np.mean([r["queue_length"] for r in late]) < profile.knobs.max_concurrency
    else:
        assert all(b["queue_length"] > a["queue_length"] for a, b in itertools.pairwise(late))
        thr, arr = (np.mean([r[f] for r in late]) for f in ("throughput_per_s", "arrival_rate_per_s"))
        assert thr < arr / 1.2
