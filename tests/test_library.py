"""The scenario library (scenarios/library/): every scenario breaches the load test's SLO on its faulted agent
when nothing acts, and the static knob configuration of that agent in scenarios/loadtests/library_cures.yaml cures it
(static: the optimizer monitors and the Orchestrator keeps every agent's autonomy fixed).

Attainment = share of the faulted agent's windows after the fault onset that meet the SLO (mean response time
< 2000 ms, success rate >= 0.70, coordination score >= 0.60; for price_change also cost per decision within the
optimizer's cost threshold; for cost_spike_budget also spend per hour within the agent's budget). Seed 1, local
runtime, about 1.5-3 s per run (about 60 s in all).

Bounds, from seeds 1-6 of the first eight scenarios and of timeout_tail, breaker_trigger_happy, breaker_too_lax,
cost_spike_budget, orchestrator_command and resource_grant (scenarios/library/measure.py and its helpers): under
monitor each of them attains at most 0.41 (bound 0.5); with its cure at least 0.78 (bound 0.75) and at least 0.45
more than under monitor (bound 0.4). Each figure is a share of 120-150 windows, so its binomial standard error is at
most 0.05 and the bounds sit at least four of them from the seed-1 values (cure 0.83-1.00, monitor 0.00-0.34, gain
0.54-1.00), except two. The memory leak's cure (0.83; 0.78-0.89 over the seeds): there the fast tier's success rate
(about 0.80 on 18 decisions a window) leaves about one window in eight under 0.70 by chance alone. And
orchestrator_command (monitor 0.39, gain 0.46 at seed 1; 0.32-0.41 and 0.45-0.58 over the seeds): its fault is meant
to sit just past the SLO (about 2.1 s against 2.0 s), inside a cautious optimizer's band, so a share of its windows
meets the SLO by chance under monitor. Under monitor the actor crash's breach comes mostly from the Orchestrator's
source rule: it lowers the Market Hunter's autonomy after every unhealthy report (0.85 -> 0.50 on seed 1), and the
extra reviews keep the review queue about 90% busy (attainment 0.69 with autonomy fixed, 0.00 with the rule).
"""

from __future__ import annotations

import importlib.util

import pytest
from pydantic import ValidationError

from swarmopt import run_scenario
from swarmopt.loader import load_scenario

from conftest import ROOT

LIBRARY = ROOT / "scenarios" / "library"
_spec = importlib.util.spec_from_file_location("library_measure", LIBRARY / "measure.py")
lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lib)

CURES = lib.load_cures()
PATHS = lib.scenario_paths()
SEED = 1
BREACHED = 0.5
CURED = 0.75
GAIN = 0.4
PROFILES = {"strategic-orchestrator", "market-hunter", "narrative-architect", "market-analyzer", "execution-agent"}
FAMILIES = {"latency", "error_spike", "price_change", "memory_leak", "coordination_storm", "cache_bypass", "crash",
            "rate_limit", "cache_invalidation", "relay_delay", "latency_tail", "load_surge"}


def test_library_scenarios_have_one_shape_and_each_a_cure():
    assert len(PATHS) >= 19 and set(PATHS) == set(CURES)
    kinds = set()
    for name, path in PATHS.items():
        sc = load_scenario(path)
        assert {a.population or a.id for a in sc.agents} == PROFILES, name  # a population's replicas: <id>-<k>
        assert sc.window_s == 60 and sc.optimizer.cycle_s == 300 and sc.tick_s in (60, 300), name
        assert 7200 <= sc.duration_s <= 14400 and lib.onset_s(sc) >= 1800, name
        # a relay delay hits the hub that routes the faulted agent's messages
        assert {f.target for f in sc.faults if f.kind != "relay_delay"} <= {CURES[name]["agent"]}, name
        assert sc.description.strip(), name
        kinds |= {f.kind for f in sc.faults}
    assert FAMILIES <= kinds
    loads = {load_scenario(p).load.kind for p in PATHS.values()}
    assert {"diurnal", "ramp"} <= loads


def test_price_change_cost_limit_is_the_optimizers_cost_threshold():
    sc = load_scenario(PATHS["price_change"])
    cure = CURES["price_change"]
    profile = next(a for a in sc.agents if a.id == cure["agent"])
    limit = profile.cost_budget_usd_per_decision * sc.optimizer.thresholds.cost_budget_factor
    assert cure["cost_max_usd"] == pytest.approx(limit)


def test_cost_spike_budget_limit_is_the_agents_budget():
    sc = load_scenario(PATHS["cost_spike_budget"])
    cure = CURES["cost_spike_budget"]
    assert sc.budget.agents == {cure["agent"]: cure["cost_max_usd_per_hour"]}


def test_with_knobs_sets_the_named_agents_knobs_only():
    sc = load_scenario(PATHS["cache_bypass_after_cure"])
    out = lib.with_knobs(sc, "market-hunter", {"cache_ttl_s.data_source": 3600, "circuit_breaker.enabled": True})
    knobs = {a.id: a.knobs for a in out.agents}
    assert knobs["market-hunter"].cache_ttl_s == {"data_source": 3600, "web_search": 120}
    assert knobs["market-hunter"].circuit_breaker.enabled
    assert all(a.knobs == knobs[a.id] for a in sc.agents if a.id != "market-hunter")
    with pytest.raises(KeyError, match="unknown agent"):
        lib.with_knobs(sc, "nobody", {"max_retries": 2})
    with pytest.raises(ValidationError):
        lib.with_knobs(sc, "market-hunter", {"max_retries": 9})


@pytest.mark.parametrize("name", sorted(CURES))
def test_scenario_breaches_under_monitor_and_its_cure_cures_it(name):
    sc = load_scenario(PATHS[name])
    monitor = lib.run_case(sc, CURES[name], "monitor", SEED)
    cure = lib.run_case(sc, CURES[name], "cure", SEED)
    assert monitor <= BREACHED, (monitor, cure)
    assert cure >= CURED and cure - monitor >= GAIN, (monitor, cure)


def test_a_cure_applied_later_after_the_onset_attains_less():
    # orchestrator_command, seed 1: monitor 0.43; the cure from the start or at the onset 0.85 (before the onset
    # nothing breaches), 20 minutes after it 0.79, an hour after it 0.67 (windows of 120 after the onset)
    sc, cure = load_scenario(PATHS["orchestrator_command"]), CURES["orchestrator_command"]
    at = {after: lib.run_case(sc, cure, "cure", SEED, after) for after in (0.0, 1200.0, 3600.0)}
    assert at[0.0] == pytest.approx(lib.run_case(sc, cure, "cure", SEED), abs=0.02)
    assert lib.run_case(sc, cure, "monitor", SEED) < at[3600.0] < at[1200.0] < at[0.0]


def test_cache_bypass_stops_the_ttl_cure_from_working():
    """The TTL raise cures the slow data source until the cache bypass; then only the full cure holds.
    Seed 1: before the bypass 0.43 of the windows meet the SLO under monitor, 1.00 with the TTL alone; after it,
    0.00 with the TTL alone (the cure of library_cures.yaml: 0.93)."""
    sc = lib.with_policy(load_scenario(PATHS["cache_bypass_after_cure"]), "monitor")
    onset, bypass = (f.at_s for f in sc.faults)
    ttl_only = lib.with_knobs(sc, "market-hunter", {"cache_ttl_s.data_source": 3600})

    def phases(run):
        m = run_scenario(run, seed=SEED, runtime="local").metrics
        return lib.attainment(m[m["t_start_s"] < bypass], "market-hunter", onset), lib.attainment(
            m, "market-hunter", bypass)

    (mon_before, _), (ttl_before, ttl_after) = phases(sc), phases(ttl_only)
    assert ttl_before >= 0.9 and ttl_before - mon_before >= GAIN
    assert ttl_after <= 0.1


@pytest.mark.parametrize("name,remedy", [("rate_limit_cut", "raise_token_limit"),
                                         ("cache_too_small", "raise_cache_size"),
                                         ("skewed_replicas", "enable_work_stealing")])
def test_rules_try_the_mechanisms_remedy_and_the_judge_keeps_it(name, remedy):
    """The rate-limit cut is answered by a larger token allocation, the small cache by a larger one, the hot
    replica by work stealing, and the remedy stays: the canary judge measures a significant improvement of the
    target and keeps it (seed 1: response time +51%; the cache's hit rate +17.1%, p = 0.004, at the second look
    after the 40 -> 160 raise filled, and +17.7%, p = 0.0008, after the 160 -> 640 one, judged from 15 windows on
    as its fill is capped; response time +62%), or, where the gain stayed under the last look's bar and the
    change was reverted, measures the undo worse and restores it."""
    res = run_scenario(lib.with_policy(load_scenario(PATHS[name]), "rules"), seed=SEED, runtime="local")
    ev = res.events
    kept = ev[(ev["event"] == "optimization.kept") & (ev["kind"] == remedy)]
    restored = ev[(ev["event"] == "optimization.restored") & (ev["kind"] == remedy)]
    undo = ev[(ev["event"] == "rollback.measured") & (ev["kind"] == remedy) & ev["t_s"].isin(restored["t_s"])]
    assert len(kept) + len(restored) >= 1
    assert (kept["verdict"] == "pass").all() and (kept["improvement_pct"] > 5).all()
    assert (undo["verdict"] == "fail").all() and (undo["improvement_pct"] < -10).all() and len(undo) == len(restored)


def test_a_change_that_shortens_the_work_is_judged_on_the_service_time_and_a_timeout_cut_on_the_time_hung():
    """Under a response-time bottleneck a remedy that shortens each decision's work (a faster tier, routing by
    complexity, a longer TTL, parallel tools, a larger cache) is judged on the per-task service time, whose values
    are about independent (tau about 1, so no thinning), where the response times of the same span thin to a
    tenth; the timeout cut, whose gain is in the tail (the decisions whose hung call it cuts) that a median test
    does not see, on the share of worker time timed-out attempts hold, by window, adjusted for the load. Seed 3
    of the diurnal latency: the faster tier twice, +28% and +53% on service time, both kept; seed 1 of
    timeout_tail: the timeout cut 30 -> 7.5 s +80% (0.43 of the worker time, then 0.09), p = 0.0007, kept at its
    first look."""
    runs = {name: run_scenario(load_scenario(PATHS[name]), seed=seed, runtime="local").events
            for name, seed in (("diurnal_model_latency", 3), ("timeout_tail", SEED))}
    measured = {name: ev[ev["event"] == "optimization.measured"] for name, ev in runs.items()}
    work = measured["diurnal_model_latency"]
    work = work[work["kind"].isin(["route_by_complexity", "faster_model_tier"])]
    assert len(work) >= 2 and (work["metric"] == "service_time_ms_mean").all()
    assert (work["method"] == "mann-whitney").all() and (work["n_eff_before"] > 0.8 * work["tasks_before"]).all()
    assert set(work.loc[work["decision"].notna(), "decision"]) == {"keep"}
    tail = measured["timeout_tail"]
    tail = tail[tail["kind"] == "tighten_timeout"]
    assert len(tail) == 1 and tail.iloc[0]["metric"] == "timeout_busy_share" and tail.iloc[0]["decision"] == "keep"
    assert tail.iloc[0]["method"] == "segmented-windows" and tail.iloc[0]["improvement_pct"] > 50


def test_a_longer_ttl_answers_cost_only_on_the_tool_that_costs_and_no_coordination_bottleneck():
    """A longer TTL answers a cost bottleneck on the tool the spend goes to (``cache_costly_tool``) and no
    coordination bottleneck (``strategies.TYPES``). Under thompson, on price_change the spend is the model's (its
    price x6), so no cache change applies and the first cost change is the cheaper tier, kept at its first look
    (seeds 1-3; before, a TTL raise of the slowest tool came first on seeds 1-3 and 5 and was reverted, no effect
    replayed on any); on coordination_storm, where a TTL raise came first on seeds 2-4 (no effect replayed on any
    of the 6 such trials of seeds 1-5), every change answering the storm is a message remedy, and by 3,900 s a
    larger batch is kept (seeds 2-3)."""
    for name, seeds, duration_s in (("price_change", (1, 2, 3), 3600.0), ("coordination_storm", (2, 3), 4800.0)):
        for seed in seeds:
            ev = run_scenario(lib.with_policy(load_scenario(PATHS[name]), "thompson"), seed=seed, runtime="local",
                              duration_s=duration_s).events
            scheduled = ev[(ev["event"] == "optimization.scheduled") & ~ev["kind"].isin(["pre_scale"])]
            kept = ev[ev["event"] == "optimization.kept"]
            if name == "price_change":
                assert list(scheduled["kind"]) == ["cheaper_model_tier"]
                assert list(kept["kind"]) == ["cheaper_model_tier"]
            else:
                storm = scheduled[scheduled["type"] == "coordination_efficiency"]
                assert len(storm) >= 2
                assert set(storm["kind"]) <= {"shed_expired_messages", "larger_message_batch", "direct_routes"}
                assert (kept.loc[kept["kind"] == "larger_message_batch", "t_s"] <= 3900).any()
