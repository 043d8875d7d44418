"""What the optimizer learns from judged changes (pure).

Every judged change adds its outcome (kept or not) and its measured
window-level improvement (percent, see
:class:`~swarmopt.optimizer.measure.Measurement`) to its strategy type and to
its remedy. The mean improvements set the expected improvement of future
strategies, which orders them
(:func:`~swarmopt.optimizer.strategies.priority_key`); the per-remedy figures
are what a policy sees (:attr:`swarmopt.policies.PolicyContext.stats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RemedyStats:
    """Judged changes of one remedy: ``attempts``, how many were ``kept``, and
    the mean measured improvement (%, NaN before any was measured)."""

    attempts: int = 0
    kept: int = 0
    mean_improvement_pct: float = math.nan


class Learning:
    """Outcomes and measured improvements (%) of judged changes, per strategy
    type and per remedy."""

    def __init__(self) -> None:
        self.by_type: dict[str, list[float]] = {}
        self.by_remedy: dict[str, list[float]] = {}
        self.outcomes: dict[str, tuple[int, int]] = {}  # remedy -> (attempts, kept)

    def record(self, type_: str, remedy: str, kept: bool, improvement_pct: float) -> None:
        """Add a judged change's outcome and its measured improvement (NaN,
        when it could not be measured, is left out of the means)."""
        attempts, n_kept = self.outcomes.get(remedy, (0, 0))
        self.outcomes[remedy] = (attempts + 1, n_kept + bool(kept))
        if not math.isnan(improvement_pct):
            self.by_type.setdefault(type_, []).append(improvement_pct)
            self.by_remedy.setdefault(remedy, []).append(improvement_pct)

    def remedy_stats(self) -> dict[str, RemedyStats]:
        """A :class:`RemedyStats` per remedy judged so far."""
        return {name: RemedyStats(attempts, kept, float(np.mean(self.by_remedy[name]))
                                  if self.by_remedy.get(name) else math.nan)
                for name, (attempts, kept) in self.outcomes.items()}

    def expected_improvement(self, type_: str, remedy: str, impact: float, default: float) -> float:
        """Learned mean measured improvement of ``remedy`` (then of ``type_``); with
        no history, 70% of the bottleneck's ``impact`` as the source design does
        (``expectedImprovement: 17.5 // 70% of potential``), capped at 50, or
        ``default`` when the impact is 0 (proactive strategies)."""
        for table, key in ((self.by_remedy, remedy), (self.by_type, type_)):
            if table.get(key):
                return round(float(np.mean(table[key])), 2)
        return round(min(50.0, 0.7 * impact), 2) if impact else default
