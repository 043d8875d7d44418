"""The source design's worked example, end to end on the local runtime."""

from __future__ import annotations

import pandas as pd
import pytest

from swarmopt import run_scenario
from swarmopt.optimizer.measure import adjusted_measure, measure
from swarmopt.optimizer.trial import look_alpha

from conftest import MH_SCENARIO


@pytest.fixture(scope="module")
def result():
    return run_scenario(MH_SCENARIO, seed=1, runtime="local")


def test_initial_state_matches_the_source_example(result):
    before = result.summary["agents"]["market-hunter"]["before"]
    assert before["response_time_ms_mean"] == pytest.approx(2800, rel=0.10)
    assert before["success_rate"] == pytest.approx(0.62, abs=0.05)
    # "before" is the cycle before the first change takes effect, so it moves with the optimizer's timing; a
    # one-window shift of that span moves this per-window-noisy score by ~0.05 (healthy baseline: 0.80)
    assert before["coordination_score"] == pytest.approx(0.54, abs=0.08)


@pytest.fixture(scope="module")
def rules_result():
    return run_scenario(MH_SCENARIO, seed=6, runtime="local", policy="rules")


def test_optimizer_recovers_the_market_hunter_by_knobs(rules_result):
    # the source design's optimizer, its fixed rules (the default thompson policy ends seed 1 at ~1,380 ms, 75%
    # success, 78% coordination: README "Reading the output")
    result = rules_result
    mh = result.summary["agents"]["market-hunter"]
    # the optimizer acts until the metric is within the tolerance band around its setpoint (10% under the 2000 ms
    # threshold: it acts above 1,980 ms); on seed 6 its changes (workers 4 -> 8 kept, a retry rolled back for its
    # price in response time: 1,635 -> 1,879 ms, past the 1,800 ms setpoint, a TTL raise reverted, the circuit
    # breaker kept) may leave the last cycle near the threshold, so this checks the last cycle within 10% of it
    cfg = result.scenario.optimizer
    assert mh["after"]["response_time_ms_mean"] < cfg.thresholds.response_time_ms * (1 + cfg.tolerance)
    assert mh["after"]["response_time_ms_mean"] < 0.85 * mh["before"]["response_time_ms_mean"]
    assert mh["after"]["coordination_score"] >= 0.60
    assert mh["after"]["success_rate"] > mh["before"]["success_rate"]
    ev = result.events
    guarded = ev[(ev["event"] == "optimization.measured") & (ev["decision"] == "rollback")]["guardrails"]
    assert guarded.str.contains("paid its price: mean response time").any()
    applied = result.events[result.events["event"] == "knob.applied"]
    assert set(applied["agent"]) == {"market-hunter"} and len(applied) >= 2
    assert result.summary["optimizations"]["kept"] >= 2


def test_healthy_agents_meet_source_thresholds_at_baseline(result):
    for agent, spans in result.summary["agents"].items():
        b = spans["baseline"]
        healthy = b["response_time_ms_mean"] < 2000 and b["success_rate"] >= 0.70 and b["coordination_score"] >= 0.60
        assert healthy, agent


def test_every_improvement_recomputes_from_the_metrics_table(result):
    m, ev = result.metrics, result.events
    measured = ev[ev["event"].isin(["optimization.measured", "rollback.measured"])]
    assert len(measured) >= 2

    def span(agent, a, b):
        return m[(m["agent"] == agent) & (m["t_start_s"] >= a) & (m["t_end_s"] <= b)].to_dict("records")

    cfg = result.scenario.optimizer
    for e in measured.itertuples():
        alpha = look_alpha(cfg, round((e.after_end_s - e.after_start_s) / result.scenario.window_s))
        # where the window values decided, adjusted for trend and load; elsewhere Welch's on the window means
        compare = measure if e.window_method == "welch" else adjusted_measure
        assert e.window_method == "welch" or e.method.startswith("segmented-windows") or "batch-means" in e.method
        again = compare(span(e.agent, e.before_start_s, e.before_end_s), span(e.agent, e.after_start_s, e.after_end_s),
                        e.metric, e.better, alpha, cfg.min_improvement)
        assert again.improvement_pct == pytest.approx(e.window_improvement_pct, nan_ok=True)
        assert again.verdict == e.window_verdict and again.method == e.window_method


def test_every_verdict_is_a_canary_verdict_on_per_task_samples(result):
    ev = result.events
    measured = ev[ev["event"] == "optimization.measured"]
    assert set(measured["verdict"]) <= {"pass", "marginal", "fail", "inconclusive"}
    for e in measured.itertuples():
        assert e.method in ("mann-whitney", "two-proportion", "segmented-windows")
        # thinned to the effective size: never more tasks than decisions, tau >= 1
        assert 0 < e.n_eff_before <= e.tasks_before and 0 < e.n_eff_after <= e.tasks_after
        assert e.tau_before >= 1 and e.tau_after >= 1
        if e.method != "segmented-windows":
            assert e.ci_low_pct <= e.improvement_pct <= e.ci_high_pct and e.reasons
        # one sign convention: a pass improved its target, a failing target got worse
        if e.verdict == "pass":
            assert e.improvement_pct > 0
        if e.verdict == "fail":
            assert e.improvement_pct < 0
        decided = {"pass": "keep", "fail": "rollback"}.get(e.verdict, "revert")
        if pd.isna(e.decision) or e.decision == "":  # no decision yet: measured on (no data, or a gain too small)
            assert pd.isna(e.guardrails)
            # a marginal look is measured on when its window-level estimate is a gain (trial.decide_trial); the
            # per-task figure may still be a small loss (seed 1's parallel tools at 6,900 s: -0.4%, windows +5.4%)
            assert e.verdict == "inconclusive" or (decided == "revert" and e.window_improvement_pct > 0)
            continue
        assert e.decision == ("rollback" if pd.notna(e.guardrails) else decided)
    kept = ev[ev["event"] == "optimization.kept"]
    assert set(kept["strategy_id"]) == set(measured.loc[measured["decision"] == "keep", "strategy_id"])


def test_autonomy_trajectory_stays_in_bounds(result):
    traj = [p["autonomy"] for p in result.summary["optimizer_autonomy"]]
    assert traj[0] == 0.80 and all(0.80 <= a <= 0.95 for a in traj)
    # every rise follows autonomy_raise_after kept changes in a row, with no rollback or revert between
    ev = result.events
    decided = ev[ev["event"].isin(["optimization.kept", "optimization.rolled_back", "optimization.reverted"])]
    n = result.scenario.optimizer.autonomy_raise_after
    moves = ev[ev["event"] == "autonomy.optimizer"]
    for move in moves.itertuples():
        last = decided[decided["t_s"] <= move.t_s]["event"].tolist()
        if move.new_value > move.old_value:
            assert last[-n:] == ["optimization.kept"] * n
        else:
            assert last[-1] == "optimization.rolled_back"
