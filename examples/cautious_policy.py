"""A cautious decision policy for swarmopt's optimizer (a plug-in example).

It tries the least risky remedy that applies, never one riskier than
``max_risk``, and passes over a remedy that was undone (rolled back or
reverted) in most of its judged attempts so far. Reference it from a scenario
as ``optimizer: {policy: "cautious_policy:CautiousPolicy"}`` with this
directory on PYTHONPATH, or pass ``policy=CautiousPolicy()`` to
``swarmopt.run_scenario``.
"""

from __future__ import annotations

import numpy as np

from swarmopt.plugins import PolicyContext


class CautiousPolicy:
    """Lowest risk first, nothing above ``max_risk`` (0-1, the scale of the
    optimizer's autonomy), nothing that mostly failed."""

    def __init__(self, max_risk: float = 0.4) -> None:
        self.max_risk = max_risk

    def choose(self, ctx: PolicyContext, rng: np.random.Generator):
        """The least risky acceptable option of ``ctx.options`` (the first of equals), or None."""
        acceptable = [opt for opt in ctx.options if opt[0].risk <= self.max_risk and not self._failing(ctx, opt)]
        return min(acceptable, key=lambda opt: opt[0].risk, default=None)

    @staticmethod
    def _failing(ctx: PolicyContext, option) -> bool:
        stats = ctx.stats.get(option[0].name)
        return stats is not None and stats.attempts >= 2 and stats.kept < stats.attempts / 2

    def learn(self, strategy, kept: bool) -> None:
        """Nothing to keep: outcomes reach :meth:`choose` through ``ctx.stats``."""
