"""Decision policies: which remedy the optimizer tries for a bottleneck.

A policy is a pure function object ``choose(type_, options, optimizer, rng)``
over the applicable remedies (each a ``(Remedy, [KnobChange])`` pair, in the
source design's rule order) that returns one of them or None. Swapping the
policy is how load tests compare decision logic on the same scenario and seed.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np


class Policy(Protocol):
    """Picks one remedy among the applicable options, or None to do nothing."""

    name: str

    def choose(self, type_: str, options: Sequence[tuple], optimizer, rng: np.random.Generator):
        ...


class RulePolicy:
    """The source design's fixed rules: the first applicable remedy in order."""

    name = "rules"

    def choose(self, type_: str, options: Sequence[tuple], optimizer, rng: np.random.Generator):
        return options[0] if options else None


class MonitorPolicy:
    """Detects and reports, never acts."""

    name = "monitor"

    def choose(self, type_: str, options: Sequence[tuple], optimizer, rng: np.random.Generator):
        return None


POLICIES = {"rules": RulePolicy, "monitor": MonitorPolicy}


def make_policy(name: str) -> Policy:
    """The policy called ``name``; raises ValueError listing the allowed names."""
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown policy '{name}'; allowed: {sorted(POLICIES)}") from None
