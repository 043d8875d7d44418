"""Decision policies: which remedy the optimizer tries for a bottleneck.

A policy is an object with ``choose(ctx, rng)``, which gets a small read-only
:class:`PolicyContext` (the agent, its bottleneck, the applicable remedies with
their concrete knob changes, its recent window rows, what was learned of each
remedy, the simulated time) and returns one of ``ctx.options`` or None, and
``learn(strategy, kept)``, which takes the outcome of every judged change.
Swapping the policy is how load tests compare decision logic on the same
scenario and seed; a plug-in policy needs nothing but these two methods
(:mod:`swarmopt.plugins`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from swarmopt.optimizer.bandit import DiscountedThompson

if TYPE_CHECKING:
    from swarmopt.knobs import KnobChange
    from swarmopt.optimizer.detect import Bottleneck
    from swarmopt.optimizer.learning import RemedyStats
    from swarmopt.optimizer.strategies import Remedy, Strategy

Option = tuple["Remedy", tuple["KnobChange", ...]]


@dataclass(frozen=True)
class PolicyContext:
    """What a policy sees when it picks a remedy (read-only).

    ``agent``: the agent the remedy would change. ``bottleneck``: the detected
    :class:`~swarmopt.optimizer.detect.Bottleneck` (for a system-wide one,
    ``agent`` is the least healthy agent). ``bottleneck_type``: the type the
    options answer (the bottleneck's, or for a system-wide one the worst type of
    ``agent``). ``options``: the applicable remedies, each a ``(Remedy,
    (KnobChange, ...))`` pair of bounded, stabilized changes, in the rule order
    of the type (plug-in remedies first); never empty. ``rows``: the agent's
    last window rows (``OptimizerConfig.long_windows`` of them, oldest first)
    as read-only mappings of the metrics table's columns. ``stats``: per remedy
    name, a :class:`~swarmopt.optimizer.learning.RemedyStats` (attempts, kept,
    mean measured improvement) of the changes judged so far, over all agents.
    ``t_s``: simulated time (s).
    """

    agent: str
    bottleneck: Bottleneck
    bottleneck_type: str
    options: tuple[Option, ...]
    rows: tuple[Mapping, ...]
    stats: Mapping[str, RemedyStats]
    t_s: float


class Policy(Protocol):
    """Picks one remedy among the applicable options, or None to do nothing."""

    def choose(self, ctx: PolicyContext, rng: np.random.Generator) -> Option | None:
        """One of ``ctx.options`` or None; ``rng`` is the optimizer's own stream."""

    def learn(self, strategy: Strategy, kept: bool) -> None:
        """The outcome of a judged change (kept, or rolled back or reverted)."""


class RulePolicy:
    """The source design's fixed rules: the first applicable remedy in order."""

    def choose(self, ctx: PolicyContext, rng: np.random.Generator) -> Option | None:
        """The first option."""
        return ctx.options[0] if ctx.options else None

    def learn(self, strategy: Strategy, kept: bool) -> None:
        """Fixed rules ignore outcomes."""


class MonitorPolicy:
    """Detects and reports, never acts (the optimizer does not even plan under it)."""

    def choose(self, ctx: PolicyContext, rng: np.random.Generator) -> Option | None:
        """Never an option."""
        return None

    def learn(self, strategy: Strategy, kept: bool) -> None:
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
    arXiv:1707.09727, Algorithm 1). A remedy whose precondition observed its
    mechanism at work (:attr:`~swarmopt.optimizer.strategies.Remedy.evidence`)
    starts with ``evidence_prior`` pseudo-successes, never discounted: with
    the default 1 it is drawn from Beta(2, 1) against a generic remedy's
    Beta(1, 1) before either is tried, so the diagnosis is tried first more
    often (2 in 3 against one generic remedy) and learning still overrules it.
    Raises ValueError for ``gamma`` outside (0, 1] or a negative or non-finite
    ``evidence_prior``.
    """

    def __init__(self, gamma: float = 0.9, evidence_prior: float = 1.0) -> None:
        DiscountedThompson(gamma)  # fail on a bad gamma now, not at the first choice
        if not (isinstance(evidence_prior, (int, float)) and math.isfinite(evidence_prior) and evidence_prior >= 0):
            raise ValueError(f"evidence_prior must be a finite number >= 0, got {evidence_prior!r}")
        self.gamma = gamma
        self.evidence_prior = float(evidence_prior)
        self.bandits: dict[tuple[str, str], DiscountedThompson] = {}

    def choose(self, ctx: PolicyContext, rng: np.random.Generator) -> Option | None:
        """One Beta draw per distinct remedy (first option of each name), the
        largest wins; None when there is no option."""
        if not ctx.options:
            return None
        by_name: dict[str, Option] = {}
        for opt in ctx.options:
            by_name.setdefault(opt[0].name, opt)
        bandit = self.bandits.setdefault((ctx.agent, ctx.bottleneck_type), DiscountedThompson(self.gamma))
        bonus = [self.evidence_prior if opt[0].evidence else 0.0 for opt in by_name.values()]
        return by_name[bandit.select(list(by_name), rng, bonus)]

    def learn(self, strategy: Strategy, kept: bool) -> None:
        """Reward 1 (kept) or 0 (rolled back) for ``strategy.kind`` in the
        bandit of its agent and type; strategies the policy did not choose
        (proactive ones) have no bandit and are ignored."""
        key = (strategy.actions[0].agent, strategy.type)
        if key in self.bandits:
            self.bandits[key].update(strategy.kind, bool(kept))


POLICIES = {"rules": RulePolicy, "monitor": MonitorPolicy, "thompson": ThompsonPolicy}
"""The built-in policies by the name a scenario gives them (``optimizer.policy``)."""
