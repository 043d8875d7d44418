"""Rate limits with burst: token buckets in front of an agent's workers (pure numpy + Python).

Reference 002 ("Optimal Rate Limits": ``max_tokens_per_minute``,
``max_tool_calls_per_minute``, ``token_burst_size``). An agent has one bucket
per model tier (the tier's provider meters the model tokens) and one per tool
(its provider meters the calls). A bucket fills at ``rate`` units per second up
to ``burst`` units. A decision asks, when it arrives, for its model tokens
(input and output of every attempt it makes) from its tier's bucket and for its
calls of each tool from that tool's bucket; it is *admitted* once every bucket
it needs holds what it asks for (a request larger than the burst waits for a
full bucket and leaves it in debt), and only then queues for a worker (FCFS,
:func:`swarmopt.sim.service.fcfs`). Admission is first come, first served: a
decision is never admitted before an earlier one. The wait from arrival to
admission is the decision's *throttle wait*; it is part of its queueing wait.

Each bucket is kept in the virtual-scheduling form of the Generic Cell Rate
Algorithm (ITU-T Recommendation I.371; the leaky-bucket and token-bucket views
are equivalent): with ``y`` the virtual time at which the bucket is empty, its
level at ``t`` is ``min(burst, rate (t - y))``. With demands ``D_i`` and burst
``tau`` in seconds of the rate, a decision arriving at ``a_i`` is admitted at
``g_i = max(a_i, g_{i-1}, y + min(D_i, tau))`` and leaves
``y = max(y, g_i - tau) + D_i``. For one bucket and FCFS admission this is
Lindley's recursion ``y_i = D_i + max(y_{i-1}, a_i - tau)`` (solved in closed
form with cumulative sums, as :func:`~swarmopt.sim.service.fcfs` does for one
worker); several buckets are coupled through ``g_i`` and are stepped decision
by decision. A saturated bucket passes its rate on in the long run: tokens
admitted per second equal ``rate`` while the demand exceeds it
(tests/test_ratelimit.py checks it). The closed form sums demands from the
start of each span, so results depend on where spans are cut (the tick) only
by rounding, about 1e-12 s, as :func:`~swarmopt.sim.service.fcfs`'s one-worker
closed form does.

Bucket state is kept per agent across spans: a change of limit (a knob, a
fault) keeps each bucket's level (:meth:`Limiter.configure`).
"""

from __future__ import annotations

import math

import numpy as np

from swarmopt.schema import TIERS, Knobs
from swarmopt.sim.environment import Effects

_N_TIERS = len(TIERS)


def bucket_limits(knobs: Knobs, fx: Effects, tools: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(rate per second, burst) of every bucket (tiers, then ``tools``; inf =
    unlimited) under ``knobs`` and the rate-limit cuts of ``fx``, or None when
    nothing is limited. A token bucket's burst is ``token_burst_size`` (0: one
    minute of the limit); a tool's is one minute of its limit."""
    tpm, cpm = knobs.max_tokens_per_minute, knobs.max_tool_calls_per_minute
    if not tpm and not cpm:
        return None
    rate = np.full(_N_TIERS + len(tools), math.inf)
    burst = rate.copy()
    if tpm:
        size = knobs.token_burst_size or tpm
        for i, tier in enumerate(TIERS):
            f = fx.tier_limit.get(tier, 1.0)
            rate[i], burst[i] = tpm * f / 60.0, size * f
    for j, name in enumerate(tools):
        calls = cpm.get(name, 0.0)
        if calls:
            f = fx.tool_limit.get(name, 1.0)
            rate[_N_TIERS + j], burst[_N_TIERS + j] = calls * f / 60.0, calls * f
    return rate, burst


def one_bucket(arrival: np.ndarray, demand_s: np.ndarray, tau_s: float, empty_at: float, after: float = -math.inf
               ) -> tuple[np.ndarray, float]:
    """Admission times (n,) through one bucket, and its new empty time.

    ``arrival`` (n,) sorted; ``demand_s`` (n,) each decision's demand in
    seconds of the bucket's rate (0: it needs nothing from the bucket and only
    keeps its place in line); ``tau_s`` the burst in seconds of the rate;
    ``empty_at`` the bucket's virtual empty time before the first decision;
    ``after`` the admission time of the decision before the first.
    """
    s = np.cumsum(demand_s)
    y = s + np.maximum(empty_at, np.maximum.accumulate(arrival - tau_s - (s - demand_s)))
    y_prev = np.concatenate(([empty_at], y[:-1]))
    g = np.maximum(arrival, np.where(demand_s > 0, y_prev + np.minimum(demand_s, tau_s), -math.inf))
    g[0] = max(g[0], after)
    return np.maximum.accumulate(g), float(y[-1])


def many_buckets(arrival: np.ndarray, demand_s: np.ndarray, tau_s: np.ndarray, empty_at: np.ndarray,
                 after: float = -math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Admission times (n,) through ``m`` buckets at once, and the bucket that
    held each decision back (n,) (-1: none; a decision held only by the one
    before it inherits that one's). ``demand_s`` (n, m) in seconds of each
    bucket's rate, ``tau_s`` (m,), ``empty_at`` (m,) updated in place, ``after``
    as in :func:`one_bucket`. A loop over decisions: the buckets are coupled
    through the admission time."""
    n = len(arrival)
    ready = np.empty(n)
    held = np.full(n, -1, dtype=np.int64)
    y, tau = empty_at.tolist(), tau_s.tolist()
    g_prev, b_prev = after, -1
    for i, (a, row) in enumerate(zip(arrival.tolist(), demand_s.tolist(), strict=True)):
        g, b_star = (a, -1) if a >= g_prev else (g_prev, b_prev)
        for b, d in enumerate(row):
            if d > 0.0:
                release = y[b] + (d if d < tau[b] else tau[b])
                if release > g:
                    g, b_star = release, b
        for b, d in enumerate(row):
            if d > 0.0:
                cap = g - tau[b]
                y[b] = (y[b] if y[b] > cap else cap) + d
        ready[i], held[i] = g, b_star
        g_prev, b_prev = g, b_star
    empty_at[:] = y
    return ready, held


class Limiter:
    """The token buckets of one agent with ``n_tools`` tools: one per model tier
    (model tokens), then one per tool (calls). Holds each bucket's rate, burst
    and virtual empty time (all unlimited and full at first)."""

    def __init__(self, n_tools: int) -> None:
        n = _N_TIERS + n_tools
        self.rate = np.full(n, math.inf)
        self.burst = np.full(n, math.inf)
        self.empty_at = np.full(n, -math.inf)
        self.admitted = -math.inf  # admission time of the last decision admitted through a bucket
        self.limited = False

    def configure(self, t0: float, rate: np.ndarray, burst: np.ndarray) -> None:
        """Take new limits at ``t0``, keeping each bucket's level (a bucket that
        was unlimited starts full; a level above the new burst is cut to it)."""
        changed = (rate != self.rate) | (burst != self.burst)
        if not changed.any():
            return
        for b in np.flatnonzero(changed).tolist():
            old_r, new_r = self.rate[b], rate[b]
            level = burst[b] if math.isinf(old_r) else min(self.burst[b], old_r * (t0 - self.empty_at[b]))
            self.empty_at[b] = -math.inf if math.isinf(new_r) else t0 - min(level, burst[b]) / new_r
        self.rate, self.burst = rate.copy(), burst.copy()

    def admit(self, t0: float, knobs: Knobs, fx: Effects, tools: list[str], arrival: np.ndarray,
              tier: np.ndarray, tokens: np.ndarray, calls: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Admission of a span's decisions, under the limits of ``knobs`` and
        ``fx`` from ``t0`` on: (admission times (n,), whether a model-token
        bucket held each back (n,) bool), or None when nothing is limited (every
        decision is admitted on arrival). ``arrival`` (n,) sorted, ``tier`` (n,)
        tier indices, ``tokens`` (n,) model tokens, ``calls`` (n, >= tools)
        calls made per tool."""
        limits = bucket_limits(knobs, fx, tools)
        if limits is None:
            if self.limited:
                self.configure(t0, np.full_like(self.rate, math.inf), np.full_like(self.burst, math.inf))
                self.limited = False
            return None
        self.configure(t0, *limits)
        self.limited = True
        cols, buckets = [], []
        for b in np.flatnonzero(np.isfinite(self.rate)).tolist():
            d = np.where(tier == b, tokens, 0.0) if b < _N_TIERS else calls[:, b - _N_TIERS].astype(float)
            if d.any():
                cols.append(d / self.rate[b])
                buckets.append(b)
        if not buckets:
            return None if not len(arrival) or arrival[0] >= self.admitted else (
                np.maximum(arrival, self.admitted), np.zeros(len(arrival), dtype=bool))
        tau = self.burst[buckets] / self.rate[buckets]
        if len(buckets) == 1:
            b = buckets[0]
            ready, self.empty_at[b] = one_bucket(arrival, cols[0], float(tau[0]), float(self.empty_at[b]),
                                                 self.admitted)
            token = (ready > arrival) & (b < _N_TIERS)
        else:
            state = self.empty_at[buckets]
            ready, held = many_buckets(arrival, np.stack(cols, axis=1), tau, state, self.admitted)
            self.empty_at[buckets] = state
            token = (held >= 0) & (np.asarray(buckets)[held] < _N_TIERS) & (ready > arrival)
        self.admitted = float(ready[-1])
        return ready, token


__all__ = ["Limiter", "bucket_limits", "many_buckets", "one_bucket"]
