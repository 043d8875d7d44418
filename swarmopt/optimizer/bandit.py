"""Discounted Thompson sampling over named strategies (Beta-Bernoulli arms).

For each bottleneck type the optimizer keeps one :class:`DiscountedThompson`
instance whose arms are candidate strategies (plain strings).  After each
trial it reports whether the change was kept (``success=True``) or reverted.

Model (Raj & Kalyani 2017, "Taming non-stationary bandits: a Bayesian
approach", arXiv:1707.09727, Algorithm 1, "dTS"):

* every arm ``k`` carries discounted counts ``S_k`` (successes) and
  ``F_k`` (failures), both starting at 0;
* on every update, *all* tracked arms decay, then the played arm ``j``
  receives the observation ``r`` in {0, 1}::

      S_k <- gamma * S_k + [k == j] * r
      F_k <- gamma * F_k + [k == j] * (1 - r)

* at selection time each arm is scored by a draw
  ``theta_k ~ Beta(alpha0 + S_k, beta0 + F_k)`` and the argmax is played.

Because the counts are geometrically discounted they never exceed
``1 / (1 - gamma)`` (the *effective memory*, 10 observations at
``gamma = 0.9``), so the posterior never becomes so concentrated that a change
of the best arm goes unnoticed.  ``gamma = 1`` recovers ordinary (stationary)
Thompson sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ArmStats", "DiscountedThompson"]


@dataclass(frozen=True)
class ArmStats:
    """Discounted evidence for one arm.

    Attributes:
        successes: discounted success count ``S_k`` (dimensionless, >= 0,
            bounded by ``1 / (1 - gamma)`` when ``gamma < 1``).
        failures: discounted failure count ``F_k`` (same bounds).
        pulls: raw, undiscounted number of updates this arm received.
    """

    successes: float
    failures: float
    pulls: int


_EMPTY = ArmStats(successes=0.0, failures=0.0, pulls=0)


class DiscountedThompson:
    """Discounted Thompson sampling with a Beta(alpha0, beta0) prior.

    Args:
        gamma: discount factor in ``(0, 1]`` applied to every arm's counts on
            every update; ``1.0`` disables forgetting.
        prior: ``(alpha0, beta0)``, both finite and > 0.  The prior is added
            at sampling time only, so it is never discounted away.

    Raises:
        ValueError: if ``gamma`` is not in ``(0, 1]`` or ``prior`` is not a
            pair of finite positive numbers.
    """

    def __init__(self, gamma: float = 0.9, prior: tuple[float, float] = (1.0, 1.0)) -> None:
        if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and 0.0 < gamma <= 1.0):
            raise ValueError(f"gamma must be a number in (0, 1], got {gamma!r}")
        if (
            not isinstance(prior, (tuple, list))
            or len(prior) != 2
            or not all(isinstance(p, (int, float)) and math.isfinite(p) and p > 0 for p in prior)
        ):
            raise ValueError(f"prior must be a pair (alpha0, beta0) of finite numbers > 0, got {prior!r}")
        self._gamma = float(gamma)
        self._alpha0 = float(prior[0])
        self._beta0 = float(prior[1])
        self._arms: dict[str, ArmStats] = {}

    @property
    def gamma(self) -> float:
        """The discount factor."""
        return self._gamma

    def select(self, arms: Sequence[str], rng: np.random.Generator, bonus: Sequence[float] = ()) -> str:
        """Draw one posterior sample per arm and return the arm with the largest.

        Arms never updated are scored from the prior alone, so new strategies
        can be introduced at any time.

        Args:
            arms: non-empty sequence of distinct arm names; order breaks ties
                (the first maximal draw wins).
            rng: source of randomness; exactly ``len(arms)`` Beta draws are
                consumed, so runs are reproducible for a seeded generator.
            bonus: per arm, pseudo-successes added to its prior's ``alpha0``
                (an informative prior, never discounted); empty = none. With
                ``bonus`` 1 against 0 and no evidence yet, the arm draws from
                Beta(2, 1) against Beta(1, 1) and wins with probability 2/3.

        Returns:
            The selected arm name (an element of ``arms``).

        Raises:
            ValueError: if ``arms`` is empty, contains a non-string or
                duplicates, ``rng`` is not a ``numpy.random.Generator``, or
                ``bonus`` is not empty or one finite number >= 0 per arm.
        """
        if isinstance(arms, str) or len(arms) == 0:
            raise ValueError("arms must be a non-empty sequence of strings")
        if not all(isinstance(a, str) for a in arms):
            raise ValueError("arms must contain only strings")
        if len(set(arms)) != len(arms):
            raise ValueError("arms must not contain duplicates")
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator")
        bonus = list(bonus) or [0.0] * len(arms)
        if len(bonus) != len(arms) or not all(math.isfinite(b) and b >= 0 for b in bonus):
            raise ValueError(f"bonus must be one finite number >= 0 per arm, got {bonus!r}")
        stats = [self._arms.get(a, _EMPTY) for a in arms]
        # one scalar draw per arm, in order: the draws of rng.beta on the arrays, without its array checks
        a0, b0 = self._alpha0, self._beta0
        draws = [rng.beta(a0 + b + s.successes, b0 + s.failures) for s, b in zip(stats, bonus, strict=True)]
        return arms[max(range(len(draws)), key=draws.__getitem__)]  # the first maximal draw, as np.argmax

    def update(self, arm: str, success: bool) -> None:
        """Discount every arm by ``gamma``, then credit ``arm`` with the outcome.

        Discounting *all* arms (not just the played one) is what lets an arm
        that has been neglected drift back towards the prior, so it gets
        re-explored after the environment changes (Raj & Kalyani 2017, Alg. 1).

        Args:
            arm: name of the arm that was played (need not have been seen).
            success: ``True`` if the trial's change was kept.

        Raises:
            ValueError: if ``arm`` is not a string or ``success`` is not a bool.
        """
        if not isinstance(arm, str):
            raise ValueError(f"arm must be a string, got {type(arm).__name__}")
        if not isinstance(success, (bool, np.bool_)):
            raise ValueError(f"success must be a bool (True or False), got {success!r}")
        g = self._gamma
        decayed = {
            k: ArmStats(successes=g * v.successes, failures=g * v.failures, pulls=v.pulls)
            for k, v in self._arms.items()
        }
        cur = decayed.get(arm, _EMPTY)
        r = 1.0 if success else 0.0
        decayed[arm] = ArmStats(
            successes=cur.successes + r,
            failures=cur.failures + (1.0 - r),
            pulls=cur.pulls + 1,
        )
        self._arms = decayed

    def stats(self) -> dict[str, ArmStats]:
        """Snapshot of the discounted counts for every arm updated so far."""
        return dict(self._arms)

    def mean(self, arm: str) -> float:
        """Posterior mean success probability of ``arm``.

        ``(alpha0 + S) / (alpha0 + S + beta0 + F)``; for an arm never updated
        this is the prior mean ``alpha0 / (alpha0 + beta0)``.

        Raises:
            ValueError: if ``arm`` is not a string.
        """
        if not isinstance(arm, str):
            raise ValueError(f"arm must be a string, got {type(arm).__name__}")
        s = self._arms.get(arm, _EMPTY)
        a = self._alpha0 + s.successes
        return a / (a + self._beta0 + s.failures)
