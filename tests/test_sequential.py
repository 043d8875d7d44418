"""The group-sequential levels of a change's looks (``trial.look_levels``, ``trial.look_alpha``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from swarmopt.optimizer.trial import look_alpha, look_levels
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
    cfg = OptimizerConfig()  # alpha 0.05, looks of 5 windows up to 15: 0.025, 0.0184, 0.0218
    levels = [look_alpha(cfg, h) for h in (5, 10, 15, 20)]
    assert levels[:3] == pytest.approx([0.025, 0.01844, 0.02185], abs=1e-4) and levels[3] == levels[2]
    assert look_alpha(cfg.model_copy(update={"max_measure_windows": 5}), 5) == cfg.alpha
    assert look_levels(0.05, 1) == (0.05,)
    with pytest.raises(ValueError, match="looks >= 1"):
        look_levels(0.05, 0)
