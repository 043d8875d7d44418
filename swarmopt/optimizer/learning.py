"""What the optimizer learns from judged changes: measured improvements (pure).

Every judged change adds its measured window-level improvement (percent, see
:class:`~swarmopt.optimizer.measure.Measurement`) to its strategy type and to
its remedy; the means set the expected improvement of future strategies, which
orders them (:func:`~swarmopt.optimizer.strategies.priority_key`).
"""

from __future__ import annotations

import math

import numpy as np


class Learning:
    """Measured improvements (%) of judged changes, per strategy type and per remedy."""

    def __init__(self) -> None:
        self.by_type: dict[str, list[float]] = {}
        self.by_remedy: dict[str, list[float]] = {}

    def record(self, type_: str, remedy: str, improvement_pct: float) -> None:
        """Add a judged change's measured improvement (NaN, when it could not be
        measured, is left out)."""
        if not math.isnan(improvement_pct):
            self.by_type.setdefault(type_, []).append(improvement_pct)
            self.by_remedy.setdefault(remedy, []).append(improvement_pct)

    def expected_improvement(self, type_: str, remedy: str, impact: float, default: float) -> float:
        """Learned mean measured improvement of ``remedy`` (then of ``type_``); with
        no history, 70% of the bottleneck's ``impact`` as the source design does
        (``expectedImprovement: 17.5 // 70% of potential``), capped at 50, or
        ``default`` when the impact is 0 (proactive strategies)."""
        for table, key in ((self.by_remedy, remedy), (self.by_type, type_)):
            if table.get(key):
                return round(float(np.mean(table[key])), 2)
        return round(min(50.0, 0.7 * impact), 2) if impact else default
