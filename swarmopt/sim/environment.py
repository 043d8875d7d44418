"""What the scenario imposes on one agent over time: load shape and faults.

Pure functions of time; the agent engine asks for the effects in force over a
segment in which nothing changes (:func:`breakpoints` lists the instants where
something does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from swarmopt.schema import (
    TIERS,
    CacheBypassFault,
    CacheInvalidationFault,
    CoordinationStormFault,
    CrashFault,
    ErrorSpikeFault,
    LatencyFault,
    LatencyTailFault,
    LoadShape,
    LoadSurgeFault,
    MemoryLeakFault,
    PriceChangeFault,
    RateLimitFault,
)


def load_multiplier(shape: LoadShape, t: np.ndarray | float) -> np.ndarray | float:
    """Arrival-rate multiplier of ``shape`` at time(s) ``t`` (seconds)."""
    t = np.asarray(t, dtype=float)
    m = shape.multiplier
    if shape.kind == "constant":
        out = np.full_like(t, m)
    elif shape.kind == "diurnal":
        out = m * (1.0 + shape.amplitude * np.sin(2 * math.pi * (t - shape.phase_s) / shape.period_s))
    elif shape.kind == "surge":
        out = np.where((t >= shape.start_s) & (t < shape.end_s), m * shape.surge_factor, m)
    else:
        span = max(shape.end_s - shape.start_s, 1e-9)
        frac = np.clip((t - shape.start_s) / span, 0.0, 1.0)
        out = m + (shape.ramp_to - m) * frac
    return out if out.ndim else float(out)


@dataclass(frozen=True)
class Effects:
    """Fault effects in force on one agent during a segment: multipliers of the
    model and tool latencies, added tool error rates, the price multiplier, the
    tools that cannot be cached, the tools' price multipliers (``tool_price``),
    the latency tails (``tail``) and the share of the rate limit left at each
    model tier's provider (``tier_limit``) and tool's (``tool_limit``)."""

    model_latency: float = 1.0
    tool_latency: dict[str, float] = field(default_factory=dict)
    tool_error: dict[str, float] = field(default_factory=dict)
    price: float = 1.0
    uncacheable: frozenset[str] = frozenset()
    tool_price: dict[str, float] = field(default_factory=dict)
    tail: dict[str | None, tuple[float, float]] = field(default_factory=dict)  # tool (None: model) -> share, factor
    tier_limit: dict[str, float] = field(default_factory=dict)
    tool_limit: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Invalidation:
    """An instant at which ``share`` of the keys of ``tool`` (every tool's when
    None) are invalidated."""

    t_s: float
    tool: str | None
    share: float


class Environment:
    """Load shape and the faults aimed at one agent.

    ``faults`` are the scenario's fault models whose target is this agent.
    """

    def __init__(self, load: LoadShape, faults: list, horizon_s: float) -> None:
        self.load = load
        self.faults = list(faults)
        self.horizon_s = horizon_s

    def _end(self, f) -> float:
        return f.at_s + f.duration_s if f.duration_s is not None else math.inf

    def active(self, t: float) -> list:
        """Faults in force at time ``t``."""
        return [f for f in self.faults if f.at_s <= t < self._end(f)]

    def breakpoints(self) -> list[float]:
        """Sorted instants where a fault starts or ends, or a cache invalidation
        happens (within the horizon)."""
        pts = {i.t_s for i in self.invalidations()}
        for f in self.faults:
            pts.add(f.at_s)
            end = self._end(f)
            if end < math.inf:
                pts.add(end)
        return sorted(p for p in pts if p <= self.horizon_s)

    def invalidations(self) -> list[Invalidation]:
        """Every cache invalidation of the cache-invalidation faults within the
        horizon, in time order (faults in scenario order at one instant): at
        ``at_s``, then every ``every_s`` while the fault lasts."""
        out = []
        for f in self.faults:
            if isinstance(f, CacheInvalidationFault):
                end = min(self._end(f), self.horizon_s + 1e-9)
                n = 1 if f.every_s is None else max(1, math.ceil((end - f.at_s) / f.every_s - 1e-9))
                out += [Invalidation(f.at_s + k * (f.every_s or 0.0), f.tool, f.share) for k in range(n)]
        return sorted(out, key=lambda i: i.t_s)

    def effects(self, t: float) -> Effects:
        """The combined service effects in force at ``t`` (multipliers multiply,
        error spikes add, capped at 1, rate-limit cuts too; of two latency tails
        on one call the one with the larger share is kept, its factor the
        product). Load surges and coordination storms act on arrivals instead
        (:meth:`rate_multiplier`, :meth:`storm_rate`)."""
        model_lat, price = 1.0, 1.0
        uncacheable: set[str] = set()
        tool_lat: dict[str, float] = {}
        tool_err: dict[str, float] = {}
        tool_price: dict[str, float] = {}
        tail: dict[str | None, tuple[float, float]] = {}
        tier_limit: dict[str, float] = {}
        tool_limit: dict[str, float] = {}
        for f in self.active(t):
            if isinstance(f, LatencyFault):
                if f.tool is None:
                    model_lat *= f.factor
                else:
                    tool_lat[f.tool] = tool_lat.get(f.tool, 1.0) * f.factor
            elif isinstance(f, ErrorSpikeFault):
                tool_err[f.tool] = min(1.0, tool_err.get(f.tool, 0.0) + f.error_rate)
            elif isinstance(f, LatencyTailFault):
                share, factor = tail.get(f.tool, (0.0, 1.0))
                tail[f.tool] = (max(share, f.share), factor * f.factor)
            elif isinstance(f, PriceChangeFault):
                if f.tool is None:
                    price *= f.factor
                else:
                    tool_price[f.tool] = tool_price.get(f.tool, 1.0) * f.factor
            elif isinstance(f, CacheBypassFault):
                uncacheable.add(f.tool)
            elif isinstance(f, RateLimitFault):
                if f.tool is not None:
                    tool_limit[f.tool] = tool_limit.get(f.tool, 1.0) * f.factor
                else:
                    for tier in (f.tier,) if f.tier else TIERS:
                        tier_limit[tier] = tier_limit.get(tier, 1.0) * f.factor
        return Effects(model_lat, tool_lat, tool_err, price, frozenset(uncacheable), tool_price=tool_price, tail=tail,
                       tier_limit=tier_limit, tool_limit=tool_limit)

    def rate_multiplier(self, t: np.ndarray) -> np.ndarray:
        """Load shape x load-surge faults at times ``t`` (vectorized)."""
        out = np.asarray(load_multiplier(self.load, t), dtype=float).copy()
        for f in self.faults:
            if isinstance(f, LoadSurgeFault):
                out[(t >= f.at_s) & (t < self._end(f))] *= f.factor
        return out

    def steady_multiplier(self, t0: float, t1: float) -> float | None:
        """:meth:`rate_multiplier` on all of ``[t0, t1]`` when it is the same
        there (a constant load shape, no load surge starting or ending in
        ``(t0, t1]``), else None."""
        if self.load.kind != "constant":
            return None
        for f in self.faults:
            if isinstance(f, LoadSurgeFault) and (t0 < f.at_s <= t1 or t0 < self._end(f) <= t1):
                return None
        return float(self.rate_multiplier(np.array([t0]))[0])

    def storm_rate(self, t0: float, t1: float) -> list[tuple[float, float, float]]:
        """(start, end, messages_per_s) pieces of coordination storms within [t0, t1)."""
        out = []
        for f in self.faults:
            if isinstance(f, CoordinationStormFault):
                a, b = max(t0, f.at_s), min(t1, self._end(f))
                if b > a:
                    out.append((a, b, f.messages_per_s))
        return out

    def leaked_mb(self, t: float) -> float:
        """Memory leaked by ``t`` (MB) from memory-leak faults."""
        total = 0.0
        for f in self.faults:
            if isinstance(f, MemoryLeakFault) and t > f.at_s:
                total += f.mb_per_min * (min(t, self._end(f)) - f.at_s) / 60.0
        return total

    def crashes(self) -> list[tuple[float, float]]:
        """(start, end) of every crash fault."""
        return [(f.at_s, f.at_s + f.duration_s) for f in self.faults if isinstance(f, CrashFault)]
