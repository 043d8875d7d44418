"""Load-test statistics and measures on constructed data: pairing, MTTR, reversals, SLO, rates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from swarmopt.loadtest.compare import comparisons, paired_difference
from swarmopt.loadtest.measures import attainment, knob_reversals, mttr, slo_met
from swarmopt.loadtest.oracle import gap_interval, oracle_table
from swarmopt.loadtest.spec import DEFAULT_SLO, Objective, slo_of
from swarmopt.loadtest.summary import rate


def test_pairing_gives_a_narrower_interval_than_no_pairing():
    # 30 seeds whose difficulty varies a lot (sd 0.10) and a policy that adds 0.02 +- 0.005 on each:
    # the seed-to-seed spread cancels in the paired differences only
    rng = np.random.default_rng(7)
    difficulty = rng.normal(0.7, 0.10, 30)
    baseline = difficulty
    policy = difficulty + 0.02 + rng.normal(0, 0.005, 30)
    s = paired_difference(policy, baseline)
    assert s["n_pairs"] == 30
    assert s["mean_diff"] == pytest.approx(0.02, abs=0.003)
    assert s["ci_low"] < s["mean_diff"] < s["ci_high"]
    assert s["ci_low"] > 0.015 and s["ci_high"] < 0.025  # sd of the mean difference is 0.005/sqrt(30) ~ 0.001
    # unpaired, the interval's half width is ~ 1.96 * 0.10 * sqrt(2/30) ~ 0.05: it straddles 0
    assert s["unpaired_ci_low"] < 0 < s["unpaired_ci_high"]
    assert s["ci_width"] < s["unpaired_ci_width"] / 10
    assert s["wilcoxon_p"] < 1e-6


def test_paired_difference_degenerate_cases():
    same = paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same["mean_diff"] == 0 and same["ci_low"] == same["ci_high"] == 0 and same["wilcoxon_p"] == 1.0
    one = paired_difference([0.9], [0.5])
    assert one["n_pairs"] == 1 and one["mean_diff"] == pytest.approx(0.4)
    assert math.isnan(one["ci_low"]) and math.isnan(one["wilcoxon_p"])
    dropped = paired_difference([0.9, math.nan, 0.7], [0.5, 0.5, 0.5])
    assert dropped["n_pairs"] == 2


def test_comparisons_pair_by_scenario_and_seed():
    rows = []
    for seed, base in enumerate([0.5, 0.8, 0.6, 0.9]):
        rows.append({"kind": "policy", "status": "ok", "policy": "monitor", "scenario": "s", "seed": seed,
                     "slo_attainment": base})
        rows.append({"kind": "policy", "status": "ok", "policy": "rules", "scenario": "s", "seed": seed,
                     "slo_attainment": base + 0.1})
    rows.append({"kind": "policy", "status": "error", "policy": "rules", "scenario": "s", "seed": 9})
    table = comparisons(pd.DataFrame(rows), "monitor", {"slo_attainment": "higher"})
    assert set(table["scenario"]) == {"s", "all"}
    r = table[table["scenario"] == "all"].iloc[0]
    assert r["n_pairs"] == 4 and r["mean_diff"] == pytest.approx(0.1)
    assert r["ci_low"] == pytest.approx(0.1) and r["ci_high"] == pytest.approx(0.1)
    # a load test of the baseline alone compares nothing, and says so with the table's columns
    alone = comparisons(pd.DataFrame(rows[::2]), "monitor", {"slo_attainment": "higher"})
    assert alone.empty and list(alone.columns) == list(table.columns)


def _windows(agent: str, met: list[bool], window_s: float = 60.0) -> pd.DataFrame:
    n = len(met)
    return pd.DataFrame({"agent": agent, "t_start_s": np.arange(n) * window_s,
                         "t_end_s": (np.arange(n) + 1) * window_s, "decision_count": 10,
                         "response_time_ms_mean": [1000.0 if m else 3000.0 for m in met],
                         "success_rate": 0.9, "coordination_score": np.nan})


def test_the_gap_closed_interval_covers_the_true_gap_about_as_often_as_a_bootstrap_on_ten_seeds_can():
    # baseline ~ N(0.2, 0.05) per seed, the policy 0.42 above it (noise 0.08), oracle 0.9: the true gap closed is
    # 0.42 / 0.7 = 0.6. BCa on 10 pairs under-covers (measured 0.873 of 300 data sets with this seed); a binomial
    # sd of 0.019 puts 0.80 and 0.97 more than 3.5 sd away
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(300):
        b = rng.normal(0.2, 0.05, 10)
        lo, hi = gap_interval(b + 0.42 + rng.normal(0, 0.08, 10), b, 0.9)
        hits += lo <= 0.6 <= hi
    assert 0.80 <= hits / 300 <= 0.97
    assert all(math.isnan(x) for x in gap_interval(np.array([0.5]), np.array([0.1]), 0.9))  # one pair
    assert all(math.isnan(x) for x in gap_interval(np.full(5, 0.5), np.full(5, 0.9), 0.9))  # no gap


def test_oracle_table_gives_each_policy_its_gap_closed_with_an_interval_over_paired_seeds():
    rows = [{"kind": "policy", "status": "ok", "policy": pol, "scenario": sc, "seed": seed,
             "slo_attainment_faulted": base + (gain + 0.01 * seed if pol == "p" else 0.0)}
            for sc, base, gain in (("a", 0.1, 0.4), ("b", 0.3, 0.2)) for seed in range(1, 6) for pol in ("m", "p")]
    best = pd.DataFrame([{"scenario": "a", "config": "x", "oracle": 0.9},
                         {"scenario": "b", "config": "y", "oracle": 0.7}])
    t = oracle_table(pd.DataFrame(rows), best, "m", "slo_attainment_faulted").set_index(["policy", "scenario"])
    a = t.loc[("p", "a")]
    assert a["gap_closed"] == pytest.approx(0.43 / 0.8)  # gains 0.41..0.45 over a gap of 0.8
    assert a["gap_closed_low"] < a["gap_closed"] < a["gap_closed_high"]
    assert a["gap_closed_low"] >= 0.41 / 0.8 - 1e-9 and a["gap_closed_high"] <= 0.45 / 0.8 + 1e-9
    # over all: the policy's 0.53 and the baseline's 0.2 (means of the scenario means) against the oracles' 0.8
    assert t.loc[("p", "all"), "gap_closed"] == pytest.approx(0.33 / 0.6)
    assert t.loc[("p", "all"), "gap_closed_low"] < 0.55 < t.loc[("p", "all"), "gap_closed_high"]
    assert t.loc[("m", "a"), ["gap_closed", "gap_closed_low", "gap_closed_high"]].tolist() == [0.0, 0.0, 0.0]


def test_slo_met_and_attainment():
    df = _windows("a", [True, False, True, True])
    df.loc[3, "decision_count"] = 0  # no decision served: not met
    met = slo_met(df, DEFAULT_SLO)  # coordination NaN (nothing to coordinate) is not held against a window
    assert met.tolist() == [True, False, True, False]
    assert attainment(df, met, 60.0) == pytest.approx(1 / 3)
    assert attainment(df, met, 0.0, ["a"]) == pytest.approx(0.5)
    assert math.isnan(attainment(df, met, 0.0, ["b"]))
    with pytest.raises(KeyError, match="unknown SLO metric 'latency'"):
        slo_met(df, [DEFAULT_SLO[0].model_copy(update={"metric": "latency"})])


def test_an_objective_scoped_to_an_agent_and_a_scenario_judges_only_its_windows_in_its_runs():
    df = pd.concat([_windows("a", [True, True]), _windows("b", [True, True])], ignore_index=True)
    df["cost_per_decision_usd"] = [0.05, 0.08, 0.08, 0.08]
    cap = Objective(metric="cost_per_decision_usd", op="<=", value=0.06, agent="a", scenario="price_change")
    assert slo_of([*DEFAULT_SLO, cap], "surge") == list(DEFAULT_SLO)
    assert slo_of([*DEFAULT_SLO, cap], "price_change") == [*DEFAULT_SLO, cap]
    # agent a's second window is over the cap; agent b's windows are over it too but not held to it
    assert slo_met(df, slo_of([*DEFAULT_SLO, cap], "price_change")).tolist() == [True, False, True, True]


def test_mttr_counts_from_onset_to_three_good_windows_after_the_first_violation():
    t = np.arange(20) * 60.0
    good = np.ones(20, bool)
    assert mttr(t, good, 300.0, 1200.0) == (0.0, False)  # never violated
    met = good.copy()
    met[6:10] = False  # violated from minute 6 to 9; minutes 10, 11, 12 good again
    met[11] = False    # ... but minute 11 is bad: recovery starts at 12 (12, 13, 14 good)
    assert mttr(t, met, 300.0, 1200.0) == (pytest.approx((720 - 300) / 60), False)
    bad = good.copy()
    bad[6:] = False
    assert mttr(t, bad, 300.0, 1200.0) == (pytest.approx(15.0), True)  # censored at the end


def test_knob_reversals_within_the_window_only():
    def applied(t, agent, knob, old, new, ref="opt_1"):
        typed = {f"{side}_{kind}": (v if isinstance(v, str) == (kind == "text") else None)
                 for side, v in (("old", old), ("new", new)) for kind in ("value", "text")}
        return {"t_s": t, "event": "knob.applied", "agent": agent, "knob": knob, "ref": ref, **typed}

    ev = pd.DataFrame([
        applied(600.0, "a", "max_concurrency", 4.0, 8.0),
        applied(1200.0, "a", "max_concurrency", 8.0, 4.0, "rollback:opt_1"),
        applied(1500.0, "a", "max_concurrency", 4.0, 8.0),
        applied(9000.0, "a", "max_concurrency", 8.0, 4.0),
        applied(1300.0, "b", "model_tier", "standard", "fast"),
        applied(1400.0, "b", "model_tier", "fast", "standard"),
        {"t_s": 1450.0, "event": "cycle.started", "agent": None, "knob": None},
    ])
    assert knob_reversals(ev, 3600.0) == 3  # a: down at 1200, up at 1500 (not at 9000: 7500 s later); b: once
    assert knob_reversals(ev, 0.0) == 0
    assert knob_reversals(ev, 3600.0, planned_only=True) == 2  # a's rollback at 1200 is an undo, not a flap


def test_false_rates_have_wilson_intervals():
    r, lo, hi = rate(2, 20)
    assert r == 0.1 and 0.02 < lo < 0.03 and 0.30 < hi < 0.31  # Wilson 95% for 2/20: [0.028, 0.301]
    assert all(math.isnan(x) for x in rate(0, 0))


def test_summary_rates_and_confusion_from_labelled_decisions():
    from swarmopt.loadtest.summary import confusion, summarize
    from swarmopt.loadtest.truth import label

    cases = [("keep", "helped")] * 8 + [("keep", "no effect"), ("keep", "hurt")] + \
        [("rollback", "hurt")] * 3 + [("revert", "no effect"), ("revert", "helped")]
    decisions = pd.DataFrame([{"policy": "rules", "decision": d, "truth": t, "label": label(d, t),
                               "correct": label(d, t).startswith("correct")} for d, t in cases])
    runs = pd.DataFrame([{"kind": "policy", "policy": p, "status": "ok", "scenario": "s", "seed": 1,
                          "truth_status": "on" if p == "rules" else "off", "slo_attainment": 0.8}
                         for p in ("monitor", "rules")])
    s = summarize(runs, decisions, pd.DataFrame(), pd.DataFrame(), ["monitor", "rules"], "monitor")
    r = s["rules"]
    assert r["decisions_judged"] == 15 and r["decision_accuracy"] == pytest.approx(12 / 15)
    assert r["false_keep_rate"] == pytest.approx(0.2) and r["false_rollback_rate"] == pytest.approx(0.2)
    assert r["false_keep_rate_ci_low"] < 0.2 < r["false_keep_rate_ci_high"]
    assert math.isnan(s["monitor"]["false_keep_rate"])  # monitor judges nothing
    assert math.isnan(r["truth_agreement"])  # one pair of arms per decision: nothing to agree with
    replicated = decisions.assign(replicas=3, truth_agreement=[1.0] * 14 + [1 / 3])
    agree = summarize(runs, replicated, pd.DataFrame(), pd.DataFrame(), ["monitor", "rules"], "monitor")
    assert agree["rules"]["truth_agreement"] == pytest.approx((14 + 1 / 3) / 15)
    assert s["monitor"]["slo_attainment_diff"] == 0.0 and math.isnan(r["slo_attainment_diff"])  # no pairs given
    conf = confusion(decisions).set_index("decision")
    assert conf.loc["keep", ["helped", "no effect", "hurt"]].tolist() == [8, 1, 1]
    assert conf.loc["revert", ["helped", "no effect", "hurt"]].tolist() == [1, 1, 0]


def test_decisions_by_remedy_count_each_remedys_right_and_wrong_calls():
    from swarmopt.loadtest.summary import by_remedy
    from swarmopt.loadtest.truth import label

    cases = [("ttl", "keep", "helped"), ("ttl", "revert", "helped"), ("ttl", "revert", "no effect"),
             ("ttl", "rollback", "helped"), ("tier", "keep", "helped"), ("tier", "keep", "no effect")]
    decisions = pd.DataFrame([{"policy": "rules", "kind": k, "decision": d, "truth": t, "label": label(d, t)}
                              for k, d, t in cases])
    t = by_remedy(decisions)
    assert t["kind"].tolist() == ["ttl", "tier"]  # two false calls before one
    ttl, tier = (t.set_index("kind").loc[k] for k in ("ttl", "tier"))
    counts = ("decisions", "correct keep", "false keep", "correct undo", "false undo")
    assert [ttl[c] for c in counts] == [4, 1, 0, 1, 2]
    assert ttl["false_undo_share"] == pytest.approx(2 / 3)
    assert tier["false keep"] == 1 and math.isnan(tier["false_undo_share"])  # no undo: no share
    assert by_remedy(decisions.iloc[:0]).empty


def test_the_report_shows_label_agreement_only_for_a_replicated_ground_truth():
    from swarmopt.loadtest.report import render

    empty = pd.DataFrame()
    summary = {"name": "t", "runs_ok": 2, "runs_failed": 0, "baseline": "monitor", "ground_truth": "on",
               "status": "completed", "quick": False}
    for agreement, shown in ((math.nan, False), (0.97, True)):
        policies = {"rules": {"runs": 2, "false_rollback_rate": 0.5, "truth_agreement": agreement}}
        page = render(empty, empty, empty, empty, empty, empty, summary | {"policies": policies})
        assert ("truth_agreement" in page) is shown and "false_rollback_rate" in page
