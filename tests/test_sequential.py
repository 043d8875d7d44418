"""The group-sequential levels of a change's looks (``trial.look_levels``, ``trial.look_alpha``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from swarmopt.knobs import KnobChange
from swarmopt.optimizer.measure import Judgement, Measurement
from swarmopt.optimizer.strategies import Strategy
from swarmopt.optimizer.trial import Trial, TrialState, decide_trial, look_alpha, look_levels
from swarmopt.schema import OptimizerConfig


@pytest.mark.parametrize("looks", [2, 3, 6])
def test_the_levels_spend_exactly_the_budget_over_correlated_looks(looks):
    """Under no effect the score has independent N(0, 1) increments: 200,000 simulated paths cross some look's
    boundary with probability alpha (3 standard errors), half of it at the first look, where Bonferroni's
    levels (the share of each look alone) cross less (their sum is alpha only for independent looks)."""
    alpha, n = 0.02, 200_000
    levels = np.array(look_levels(alpha, looks))
    z = np.cumsum(np.random.default_rng(looks).standard_normal((n, looks)), axis=1) / np.sqrt(np.arange(1, looks + 1))
    crossed = (z > stats.norm.isf(levels)).any(axis=1).mean()
    assert crossed == pytest.approx(alpha, abs=3 * np.sqrt(alpha * (1 - alpha) / n))
    assert levels[0] == pytest.approx(alpha / 2) and (levels[1:] > alpha / (2 * (looks - 1))).all()
    bonferroni = np.array([alpha / 2] + [alpha / (2 * (looks - 1))] * (looks - 1))
    assert (z > stats.norm.isf(bonferroni)).any(axis=1).mean() < crossed - 3 * np.sqrt(alpha / n)


def test_look_alpha_is_two_sided_per_look_and_the_last_look_holds_after_the_horizon():
    cfg = OptimizerConfig()  # alpha 0.05, looks of 5 windows up to 15 and, for a promising change, 10 more
    levels = [look_alpha(cfg, h) for h in (5, 10, 15, 20, 25, 30)]
    assert levels[:5] == pytest.approx([0.025, 0.01024, 0.0111, 0.01273, 0.0146], abs=1e-4)
    assert levels[5] == levels[4]
    no_extension = cfg.model_copy(update={"extend_windows": 0})  # three looks: 0.025, 0.0184, 0.0218
    assert [look_alpha(no_extension, h) for h in (5, 10, 15)] == pytest.approx([0.025, 0.01844, 0.02185], abs=1e-4)
    assert look_alpha(no_extension.model_copy(update={"max_measure_windows": 5}), 5) == cfg.alpha
    assert look_levels(0.05, 1) == (0.05,)
    with pytest.raises(ValueError, match="looks >= 1"):
        look_levels(0.05, 0)


def _marginal_gain(p_value: float) -> Judgement:
    """A window-judged marginal verdict: a 6% gain whose interval still reaches the minimum improvement."""
    m = Measurement("coordination_score", "higher", 0.50, 0.53, 6.0, -1.0, 13.0, p_value, "marginal", 15, 15)
    return Judgement("marginal", "welch-windows", m, None, 1.0, 1.0, 900, 900, ())


BATCH = Strategy("s", "coordination_efficiency", "larger_message_batch", "high", "market-hunter", "", 0.0, 60.0,
                 (KnobChange("market-hunter", "message_batch_size", 1, 4),), (), "", 0.3, "coordination_score")


def _decide(cfg: OptimizerConfig, windows: int, p_value: float):
    """The outcome of judging BATCH after ``windows`` after-windows (60 s) as a marginal gain at ``p_value``."""
    return decide_trial("market-hunter", Trial(BATCH, 0.0, 60.0 * windows), _marginal_gain(p_value), TrialState(0.8),
                        cfg, 60.0, 60.0 * windows)


@pytest.mark.parametrize(("windows", "p_value", "measured_on"), [
    (5, 0.30, True), (10, 0.30, True),   # within the horizon any marginal gain is measured on
    (15, 0.30, False), (15, 0.03, True),  # past it only a promising one (p < promising_p, 0.05)
    (20, 0.03, True), (25, 0.03, False),  # up to extend_windows (10) more
])
def test_past_the_horizon_only_a_promising_change_is_measured_on(windows, p_value, measured_on):
    cfg = OptimizerConfig()
    assert (cfg.max_measure_windows, cfg.extend_windows, cfg.promising_p) == (15, 10, 0.05)
    out = _decide(cfg, windows, p_value)
    assert (out.decision == "") is measured_on
    if measured_on:
        assert out.undo.measure_at_s == 60.0 * (windows + cfg.measure_windows) and not out.changes
    else:
        assert out.decision == "revert" and out.changes == BATCH.rollback()


@pytest.mark.parametrize(("at_horizon", "windows", "p_value", "decision"), [
    ("keep_promising", 25, 0.03, "keep"), ("keep_promising", 25, 0.20, "revert"),
    ("keep_promising", 15, 0.20, "revert"),  # not promising at the horizon: no extension to keep it after
    ("revert", 25, 0.03, "revert"),
])
def test_keep_promising_keeps_a_change_still_promising_at_the_end_of_its_extension(at_horizon, windows, p_value,
                                                                                   decision):
    out = _decide(OptimizerConfig(at_horizon=at_horizon), windows, p_value)
    assert out.decision == decision and (out.changes == ()) is (decision == "keep")


@pytest.mark.parametrize(("monotone", "windows", "p_value", "decision"), [
    (True, 25, 0.03, "keep"),     # still promising at the last look of its extension
    (True, 25, 0.20, "revert"),   # not promising: reverted as any other
    (True, 15, 0.20, "revert"),
    (False, 25, 0.03, "revert"),  # a remedy that could make its target worse: undecided is reverted
])
def test_keep_monotone_keeps_a_promising_change_that_cannot_make_its_target_worse(monotone, windows, p_value,
                                                                                   decision):
    s = replace(BATCH, monotone=monotone)
    out = decide_trial("market-hunter", Trial(s, 0.0, 60.0 * windows), _marginal_gain(p_value), TrialState(0.8),
                       OptimizerConfig(keep_monotone=True), 60.0, 60.0 * windows)
    assert out.decision == decision and (out.changes == ()) is (decision == "keep")
    if decision == "keep":
        assert "cannot make coordination_score worse" in out.reason
    off = decide_trial("market-hunter", Trial(s, 0.0, 60.0 * windows), _marginal_gain(p_value), TrialState(0.8),
                       OptimizerConfig(keep_monotone=False), 60.0, 60.0 * windows)
    assert off.decision == "revert"
    assert OptimizerConfig().keep_monotone


def test_a_strategy_is_monotone_only_on_a_target_its_remedy_cannot_make_worse():
    """A remedy names the targets it cannot make worse; a bundle is monotone only when both of its remedies are,
    on the same target."""
    from swarmopt.optimizer.strategies import REMEDIES, bundle

    assert "response_time_ms_mean" in REMEDIES["scale_concurrency"].monotone
    assert "coordination_score" not in REMEDIES["scale_concurrency"].monotone
    assert not REMEDIES["raise_cache_ttl"].monotone and not REMEDIES["route_by_complexity"].monotone
    a = replace(BATCH, kind="scale_concurrency", target_metric="response_time_ms_mean", monotone=True,
                actions=(KnobChange("market-hunter", "max_concurrency", 4, 8),))
    b = replace(BATCH, kind="raise_token_limit", target_metric="response_time_ms_mean", monotone=True,
                actions=(KnobChange("market-hunter", "max_tokens_per_minute", 1000, 4000),))
    c = replace(BATCH, kind="raise_retries", target_metric="error_rate", monotone=True,
                actions=(KnobChange("market-hunter", "max_retries", 1, 2),))
    assert bundle(a, b).monotone and not bundle(a, c).monotone
    assert not bundle(a, replace(b, monotone=False)).monotone
