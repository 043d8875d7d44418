"""Closed-form queueing and caching results the simulation engine is checked against.

All rates are per unit time and all times are in the reciprocal unit (rates in
1/s give waits in s).  Every function validates its inputs and raises
``ValueError`` naming the offending argument; in particular no function
extrapolates into an unstable regime (utilisation >= 1), where the
steady-state means do not exist.

References:
    * L. Kleinrock, *Queueing Systems, Vol. 1: Theory*, Wiley 1975:
      M/M/c and Erlang C (sec. 3.5), Erlang B (sec. 3.7), M/G/1 and the
      Pollaczek-Khinchine mean-value formula (ch. 5).
    * Erlang B recursion ``B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))``:
      D. L. Jagerman, "Some properties of the Erlang loss function",
      Bell System Technical Journal 53(3), 1974.  ``C = B / (1 - rho (1 - B))``
      follows by comparing the M/M/c and M/M/c/c state probabilities.
    * TTL caches: J. Jung, A. W. Berger & H. Balakrishnan, "Modeling TTL-based
      Internet caches", IEEE INFOCOM 2003; N. C. Fofack, P. Nain, G. Neglia &
      D. Towsley, "Analysis of TTL-based cache networks", VALUETOOLS 2012.
    * LRU caches: H. Che, Y. Tung & Z. Wang, "Hierarchical Web caching systems:
      modeling, design and experimental results", IEEE JSAC 20(7), 2002 (the
      characteristic-time approximation); C. Fricker, P. Robert & J. Roberts,
      "A versatile and accurate approximation for LRU cache performance", ITC
      2012 (why it is accurate under the independent reference model).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "erlang_c",
    "mmc_mean_wait",
    "md1_mean_wait",
    "mg1_mean_wait",
    "zipf_probabilities",
    "ttl_cache_hit_rate",
    "che_characteristic_time",
    "lru_cache_hit_rate",
    "lru_capacity_for_hit_rate",
    "invalidated_cache_hit_rate",
]


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _servers(c: int) -> int:
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
        raise ValueError(f"c must be an int >= 1, got {c!r}")
    return int(c)


def _stable(rho: float) -> None:
    if rho >= 1.0:
        raise ValueError(f"utilization rho must be < 1 for a steady state, got rho = {rho:.6g}")


def erlang_c(c: int, arrival_rate: float, service_rate: float) -> float:
    """Probability that an arrival has to wait in an M/M/c queue (Erlang C).

    With offered load ``a = lambda / mu`` (Erlangs) and utilisation
    ``rho = a / c``::

        C(c, a) = B(c, a) / (1 - rho (1 - B(c, a)))

    where the Erlang B blocking probability comes from the recursion
    ``B(0) = 1``, ``B(k) = a B(k-1) / (k + a B(k-1))``.  The recursion only
    combines positive numbers of order one, so unlike the textbook sum of
    ``a^k / k!`` it neither overflows nor cancels for hundreds of servers.

    Args:
        c: number of servers, int >= 1.
        arrival_rate: ``lambda`` > 0.
        service_rate: per-server ``mu`` > 0, same time unit.

    Returns:
        Probability in (0, 1).

    Raises:
        ValueError: if ``c`` < 1 or not an int, a rate is not a finite
            positive number, or ``rho = lambda / (c mu) >= 1``.
    """
    c = _servers(c)
    lam = _positive("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    a = lam / mu
    rho = a / c
    _stable(rho)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b / (1.0 - rho * (1.0 - b))


def mmc_mean_wait(c: int, arrival_rate: float, service_rate: float) -> float:
    """Mean time in queue (excluding service) for M/M/c.

    ``Wq = C(c, a) / (c mu - lambda)`` (Kleinrock 1975, sec. 3.5).  For
    ``c = 1`` this is ``rho / (mu - lambda)``.

    Args / Raises: as :func:`erlang_c`.

    Returns:
        Mean wait in the reciprocal time unit of the rates (s for 1/s).
    """
    c = _servers(c)
    lam = _positive("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    return erlang_c(c, lam, mu) / (c * mu - lam)


def mg1_mean_wait(arrival_rate: float, mean_service: float, second_moment_service: float) -> float:
    """Mean time in queue for M/G/1 (Pollaczek-Khinchine mean-value formula).

    ``Wq = lambda E[S^2] / (2 (1 - rho))`` with ``rho = lambda E[S]``
    (Kleinrock 1975, ch. 5).

    Args:
        arrival_rate: ``lambda`` > 0.
        mean_service: ``E[S]`` > 0 (time).
        second_moment_service: ``E[S^2]`` (time^2); must satisfy
            ``E[S^2] >= E[S]^2`` since a variance cannot be negative.

    Returns:
        Mean wait in the time unit of ``mean_service``.

    Raises:
        ValueError: if an argument is not finite and positive,
            ``second_moment_service < mean_service**2``, or ``rho >= 1``.
    """
    lam = _positive("arrival_rate", arrival_rate)
    es = _positive("mean_service", mean_service)
    es2 = _positive("second_moment_service", second_moment_service)
    # Relative slack so E[S^2] computed as E[S]**2 in floating point is accepted.
    if es2 < es * es * (1.0 - 1e-12):
        raise ValueError(
            f"second_moment_service must be >= mean_service**2 = {es * es:.6g}, got {es2!r}"
        )
    rho = lam * es
    _stable(rho)
    return lam * es2 / (2.0 * (1.0 - rho))


def md1_mean_wait(arrival_rate: float, service_time: float) -> float:
    """Mean time in queue for M/D/1 (deterministic service ``D``).

    P-K with ``E[S^2] = D^2``: ``Wq = rho D / (2 (1 - rho))``, ``rho = lambda D``,
    exactly half the M/M/1 wait at the same ``rho`` and mean service time.

    Args:
        arrival_rate: ``lambda`` > 0.
        service_time: ``D`` > 0 (time).

    Returns:
        Mean wait in the time unit of ``service_time``.

    Raises:
        ValueError: if an argument is not finite and positive or ``rho >= 1``.
    """
    lam = _positive("arrival_rate", arrival_rate)
    d = _positive("service_time", service_time)
    rho = lam * d
    _stable(rho)
    return rho * d / (2.0 * (1.0 - rho))


def zipf_probabilities(n_keys: int, s: float) -> np.ndarray:
    """Bounded Zipf popularity law ``p_k = k^-s / H(n, s)``, ``k = 1..n_keys``.

    Args:
        n_keys: number of keys, int >= 1.
        s: exponent, finite and >= 0 (``s = 0`` is uniform).

    Returns:
        Array of shape ``(n_keys,)``, non-increasing, summing to 1; entry
        ``i`` is the probability of the key of rank ``i + 1``.

    Raises:
        ValueError: if ``n_keys`` is not an int >= 1 or ``s`` is not a finite
            number >= 0.
    """
    if isinstance(n_keys, bool) or not isinstance(n_keys, (int, np.integer)) or n_keys < 1:
        raise ValueError(f"n_keys must be an int >= 1, got {n_keys!r}")
    if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) or not (
        math.isfinite(float(s)) and s >= 0
    ):
        raise ValueError(f"s must be a finite number >= 0, got {s!r}")
    # Rank 1 has weight exactly 1, so the normaliser is >= 1: a large s can
    # only underflow tail weights to 0, never produce 0/0 or inf.
    w = np.arange(1, int(n_keys) + 1, dtype=float) ** -float(s)
    return w / w.sum()


def ttl_cache_hit_rate(probabilities: np.ndarray, request_rate: float, ttl_s: float) -> float:
    """Steady-state hit ratio of a TTL cache under the independent reference model.

    Model: requests form a Poisson process of rate ``R`` (``request_rate``,
    1/s); each request independently targets key ``k`` with probability
    ``p_k``, so key ``k`` sees a Poisson stream of rate ``lambda_k = p_k R``.
    A miss inserts the key with a timer of ``T = ttl_s`` seconds; hits do not
    reset the timer, and the key is evicted when the timer expires (no
    capacity limit).

    Formula::

        h_k = lambda_k T / (1 + lambda_k T),     hit_rate = sum_k p_k h_k

    Derivation (renewal-reward): the instants at which key ``k`` misses are
    regeneration points.  A cycle starts with a miss, the key then stays
    cached for exactly ``T``, during which a Poisson number of requests with
    mean ``lambda_k T`` arrive, all hits; after expiry the wait for the next
    request (the next miss) is exponential with mean ``1 / lambda_k`` by
    memorylessness.  Each cycle therefore holds one miss and on average
    ``lambda_k T`` hits, and the long-run fraction of key-``k`` requests that
    hit is ``lambda_k T / (1 + lambda_k T)``.  Weighting by the share
    ``p_k`` of requests that go to key ``k`` gives the overall hit ratio.

    Sources: Jung, Berger & Balakrishnan, "Modeling TTL-based Internet
    caches", IEEE INFOCOM 2003 (hit ratio of a TTL cache with Poisson
    requests, TTL set on miss); Fofack, Nain, Neglia & Towsley, "Analysis of
    TTL-based cache networks", VALUETOOLS 2012 (renewal analysis of the
    non-reset TTL cache).

    Args:
        probabilities: shape ``(n,)``, finite, >= 0, summing to 1 (within
            1e-9), e.g. from :func:`zipf_probabilities`.
        request_rate: aggregate request rate ``R`` > 0 (1/s).
        ttl_s: time-to-live ``T`` >= 0 (s); 0 gives hit rate 0.

    Returns:
        Fraction of requests that are hits, in [0, 1).

    Raises:
        ValueError: if ``probabilities`` is not a non-empty 1-D array of
            finite non-negative values summing to 1, ``request_rate`` is not
            finite and > 0, or ``ttl_s`` is not finite and >= 0.
    """
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probabilities must be a non-empty 1-D array, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and >= 0")
    total = float(p.sum())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"probabilities must sum to 1, got {total:.12g}")
    rate = _positive("request_rate", request_rate)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float, np.integer, np.floating)) or not (
        math.isfinite(float(ttl_s)) and ttl_s >= 0
    ):
        raise ValueError(f"ttl_s must be a finite number >= 0, got {ttl_s!r}")
    x = p * rate * float(ttl_s)
    return float(np.sum(p * x / (1.0 + x)))


def _probabilities(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probabilities must be a non-empty 1-D array, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and >= 0")
    if abs(float(p.sum()) - 1.0) > 1e-9:
        raise ValueError(f"probabilities must sum to 1, got {float(p.sum()):.12g}")
    return p


def che_characteristic_time(probabilities: np.ndarray, request_rate: float, capacity: int) -> float:
    """Characteristic time ``T_C`` (s) of an LRU cache of ``capacity`` entries (Che's approximation).

    Model: the independent reference model of :func:`ttl_cache_hit_rate`, key
    ``k`` requested at rate ``q_k = p_k R``; an LRU cache holding at most
    ``C`` entries. Che et al. replace the time a key stays after its last
    request (random, and dependent on the other keys) by one constant ``T_C``,
    the time it takes ``C`` distinct other keys to be requested, which solves::

        sum_k (1 - exp(-q_k T_C)) = C

    (the expected number of distinct keys requested in ``T_C``, i.e. the
    cache's occupancy, equals its size). The left side rises from 0 to the
    number of keys with ``p_k > 0``, so the root is unique; it is found by
    Brent's method.

    Args:
        probabilities: shape ``(n,)``, finite, >= 0, summing to 1.
        request_rate: aggregate request rate ``R`` > 0 (1/s).
        capacity: ``C``, an int >= 1 below the number of keys with ``p_k > 0``
            (a cache that holds every key never evicts).

    Returns:
        ``T_C`` in seconds, > 0.

    Raises:
        ValueError: for invalid probabilities or rate, or a capacity outside
            ``[1, keys with p_k > 0)``.
    """
    p = _probabilities(probabilities)
    rate = _positive("request_rate", request_rate)
    keys = int(np.count_nonzero(p))
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or not 1 <= capacity < keys:
        raise ValueError(f"capacity must be an int in [1, {keys}) (keys with p > 0), got {capacity!r}")
    q = p[p > 0] * rate
    # imported here: the optimizer's remedies (imported by the light Orchestrator actor) use this module
    from scipy.optimize import brentq

    def excess(t: float) -> float:
        return float(np.sum(-np.expm1(-q * t))) - capacity

    hi = capacity / float(q.sum())  # sum(1 - exp(-q t)) <= q.sum() t, so the root is past it
    while excess(hi) < 0:
        hi *= 2.0
    return float(brentq(excess, 0.0, hi, xtol=1e-12 * hi, rtol=1e-12))


def lru_cache_hit_rate(probabilities: np.ndarray, request_rate: float, capacity: int) -> float:
    """Steady-state hit ratio of an LRU cache of ``capacity`` entries, Che's approximation.

    Formula, with ``T_C`` from :func:`che_characteristic_time` and
    ``q_k = p_k R``::

        hit_rate = sum_k p_k (1 - exp(-q_k T_C))

    (a request hits iff its key was requested within the last ``T_C``; by the
    Poisson property that has probability ``1 - exp(-q_k T_C)``). It does not
    depend on ``R``: ``T_C`` scales as ``1 / R``. A capacity at least the number
    of keys with ``p_k > 0`` gives 1 (every key stays once requested).

    Args and errors: as :func:`che_characteristic_time`, but ``capacity`` may
    be any int >= 1.
    """
    p = _probabilities(probabilities)
    if isinstance(capacity, (int, np.integer)) and not isinstance(capacity, bool) and capacity >= np.count_nonzero(p):
        return 1.0
    t_c = che_characteristic_time(p, request_rate, capacity)
    return float(np.sum(p * -np.expm1(-p * request_rate * t_c)))


def lru_capacity_for_hit_rate(probabilities: np.ndarray, hit_rate: float) -> int:
    """The smallest LRU capacity whose hit ratio by Che's approximation
    (:func:`lru_cache_hit_rate`) reaches ``hit_rate``, found by bisection (the
    hit ratio grows with the capacity). The answer does not depend on the
    request rate. Returns the number of keys with ``p_k > 0`` when only holding
    them all reaches it. Raises ValueError for invalid probabilities or a
    ``hit_rate`` outside [0, 1]."""
    p = _probabilities(probabilities)
    if isinstance(hit_rate, bool) or not isinstance(hit_rate, (int, float, np.floating)) or not 0 <= hit_rate <= 1:
        raise ValueError(f"hit_rate must be a number in [0, 1], got {hit_rate!r}")
    lo, hi = 0, int(np.count_nonzero(p))  # lru_cache_hit_rate(hi) = 1 >= hit_rate; capacity 0 hits nothing
    if hit_rate <= 0:
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if lru_cache_hit_rate(p, 1.0, mid) >= hit_rate:
            hi = mid
        else:
            lo = mid
    return hi


def invalidated_cache_hit_rate(probabilities: np.ndarray, request_rate: float, every_s: float) -> float:
    """Steady-state hit ratio of a cache whose every entry is invalidated each ``every_s`` seconds.

    Model: the independent reference model of :func:`ttl_cache_hit_rate`; a
    miss caches its key until the next invalidation (the TTL is at least
    ``every_s`` and there is no size bound). In each period of length
    ``D = every_s`` key ``k`` is requested a Poisson number of times of mean
    ``q_k D``; the first of them misses and the rest hit, so::

        h_k = 1 - (1 - exp(-q_k D)) / (q_k D),     hit_rate = sum_k p_k h_k

    Args:
        probabilities: shape ``(n,)``, finite, >= 0, summing to 1.
        request_rate: aggregate request rate ``R`` > 0 (1/s).
        every_s: time between invalidations ``D`` > 0 (s).

    Returns:
        Fraction of requests that are hits, in [0, 1).

    Raises:
        ValueError: for invalid probabilities, rate or period.
    """
    p = _probabilities(probabilities)
    x = p * _positive("request_rate", request_rate) * _positive("every_s", every_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(x > 0, 1.0 + np.expm1(-x) / np.where(x > 0, x, 1.0), 0.0)
    return float(np.sum(p * h))
