"""Decision policies: which remedy the optimizer tries for a bottleneck.

A policy is a pure function object ``choose(type_, options, rng)``
over the applicable remedies (each a ``(Remedy, [KnobChange])`` pair, in the
source design's rule order) that returns one of them or None, and
``learn(strategy, kept)`` takes the measured outcome of every judged change.
Swapping the policy is how load tests compare decision logic on the same
scenario and seed.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from swarmopt.optimizer.bandit import DiscountedThompson


class Policy(Protocol):
    """Picks one remedy among the applicable options, or None to do nothing."""

    def choose(self, type_: str, options: Sequence[tuple], rng: np.random.Generator):
        ...

    def learn(self, strategy, kept: bool) -> None:
        ...


class RulePolicy:
    """The source design's fixed rules: the first applicable remedy in order."""

    def choose(self, type_: str, options: Sequence[tuple], rng: np.random.Generator):
        return options[0] if options else None

    def learn(self, strategy, kept: bool) -> None:
        """Fixed rules ignore outcomes."""


class MonitorPolicy:
    """Detects and reports, never acts."""

    def choose(self, type_: str, options: Sequence[tuple], rng: np.random.Generator):
        return None

    def learn(self, strategy, kept: bool) -> None:
        """Nothing is ever tried, so nothing is learned."""


class ThompsonPolicy:
    """Discounted Thompson sampling over the remedies of a bottleneck.

    One :class:`~swarmopt.optimizer.bandit.DiscountedThompson` per (agent,
    bottleneck type); its arms are remedy kinds. ``choose`` draws from each
    applicable remedy's Beta posterior and plays the largest draw; ``learn``
    credits the played remedy with reward 1 when its change was kept (the
    canary judge measured a significant improvement and no guardrail broke),
    0 when it was rolled back, and discounts every arm by ``gamma``, so after
    about ``1 / (1 - gamma)`` outcomes old evidence has faded and a cure that
    stopped working loses to the alternatives (Raj & Kalyani 2017,
    arXiv:1707.09727, Algorithm 1). Raises ValueError for ``gamma`` outside
    (0, 1].
    """

    def __init__(self, gamma: float = 0.9) -> None:
        DiscountedThompson(gamma)  # fail on a bad gamma now, not at the first choice
        self.gamma = gamma
        self.bandits: dict[tuple[str, str], DiscountedThompson] = {}

    def choose(self, type_: str, options: Sequence[tuple], rng: np.random.Generator):
        """One Beta draw per distinct remedy kind (first option of each kind),
        the largest wins; None when there is no option."""
        if not options:
            return None
        by_kind: dict[str, tuple] = {}
        for opt in options:
            by_kind.setdefault(opt[0].name, opt)
        key = (options[0][1][0].agent, type_)
        bandit = self.bandits.setdefault(key, DiscountedThompson(self.gamma))
        return by_kind[bandit.select(list(by_kind), rng)]

    def learn(self, strategy, kept: bool) -> None:
        """Reward 1 (kept) or 0 (rolled back) for ``strategy.kind`` in the
        bandit of its agent and type; strategies the policy did not choose
        (proactive ones) have no bandit and are ignored."""
        key = (strategy.actions[0].agent, strategy.type)
        if key in self.bandits:
            self.bandits[key].update(strategy.kind, bool(kept))


POLICIES = {"rules": RulePolicy, "monitor": MonitorPolicy, "thompson": ThompsonPolicy}


def make_policy(name: str) -> Policy:
    """The policy called ``name``; raises ValueError listing the allowed names."""
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown policy '{name}'; allowed: {sorted(POLICIES)}") from None
