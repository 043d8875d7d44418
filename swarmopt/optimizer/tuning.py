"""Timeout and circuit-breaker tuning from observed latencies and failures (pure).

Timeouts (reference/004 ``_optimize_timeouts`` sets the timeout from the
average response time; here it is set from the tail, as the AWS Builders'
Library "Timeouts, retries and backoff with jitter" advises: pick the latency
percentile of the downstream you accept to cut, and leave headroom):

* :func:`tighten_timeout`: when attempts that run into the timeout hold at
  least :data:`TIMEOUT_HOLD_SHARE` of the workers' busy time (a hung call holds
  its worker for the whole timeout), set ``timeout_s`` to
  :data:`TIMEOUT_TAIL_MULTIPLE` x the p99 of the valid attempts' duration
  (:func:`timeout_target`), if the timeout is more than :data:`TIMEOUT_SLACK`
  times that;
* :func:`relax_timeout`: when at least :data:`TIMEOUT_CUT_RATE` of the attempts
  time out and the valid attempts' p99 reaches :data:`TIMEOUT_CENSORED` of the
  timeout (the timeout cuts into the body of the latency distribution, not
  off a separate hung tail), raise it to the same target.

Circuit breaker (reference/000's "adaptive thresholds"): a decision that goes
on without a tool an open breaker skipped is right with the tool's
``fallback_quality`` q times the usual probability; one that calls it errs
when all its ``a`` attempts' calls fail, with probability p^a at failure rate
p. Opening pays iff q > 1 - p^a, i.e. iff p exceeds the **break-even failure
rate** p* = (1 - q)^(1/a) (:func:`break_even`). :func:`breaker_threshold` is
the failure-rate threshold that opens the breaker for tools failing above
their break-even and keeps it closed, up to a false-trip probability of
:data:`FALSE_TRIP` per window of ``window_calls`` calls (a binomial quantile),
for tools failing below theirs:

* :func:`tune_breaker_threshold`: raise a trigger-happy threshold (the
  breaker skips tools on at least :data:`DEGRADED_SHARE` of decisions while no
  tool fails above its break-even) or lower a lax one (a tool fails above its
  break-even and below the threshold, so the breaker never opens);
* :func:`shorten_breaker_open`: halve ``open_duration_s`` when the breaker
  skips tools that fail below their break-even (it keeps decisions degraded
  after a blip); :func:`lengthen_breaker_open`: double it when a tool keeps
  failing above its break-even while the breaker cycles (every half-open
  probe into a dead tool is a failed call).

Per-tool figures come from :func:`tool_view` (the snapshot's ``tools``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from swarmopt.knobs import KnobChange, get_knob
from swarmopt.schema import KNOB_BOUNDS, AgentProfile, CircuitBreaker, Knobs

TIMEOUT_TAIL_MULTIPLE = 2.0
"""Timeout = this x the p99 of the valid attempts' duration."""
TIMEOUT_HOLD_SHARE = 0.10
"""Tighten when attempts cut by the timeout hold at least this share of the workers' busy time."""
TIMEOUT_SLACK = 1.5
"""Tighten only a timeout more than this x its target (a dead band, as the HPA's tolerance)."""
TIMEOUT_CUT_RATE = 0.05
"""Relax when at least this share of attempts time out ..."""
TIMEOUT_CENSORED = 0.7
"""... and the valid attempts' p99 is at least this share of the timeout."""
TIMEOUT_STEP_S = 0.5
"""Timeouts are set in steps of this many seconds (rounded up)."""
FALSE_TRIP = 1e-3
"""Largest probability that a window of ``window_calls`` calls of a tool failing below its break-even trips it."""
DEGRADED_SHARE = 0.05
"""A breaker that skips tools on at least this share of decisions is acting, not idle."""
MIN_TOOL_CALLS = 20
"""Calls of a tool over the last cycle below which its failure rate is not trusted."""
MIN_OPEN_S = 5.0
"""Shortest open duration :func:`shorten_breaker_open` sets (s)."""


def _change(agent: str, knobs: Knobs, knob: str, new) -> list[KnobChange] | None:
    old = get_knob(knobs, knob)
    return None if old == new else [KnobChange(agent, knob, old, new)]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _mean(values) -> float:
    finite = [v for v in values if _finite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def tool_view(snapshot: dict, rows: Sequence[Mapping], tools: Sequence[str]) -> dict:
    """``snapshot`` with ``tools``: per tool name, its ``calls`` (sum), ``error_rate``
    (failed / made calls), ``cost_usd`` (sum), ``hold_share`` (mean of its share
    of the worker busy time) and ``hit_rate`` (mean cache hit rate) over ``rows``
    (the window rows the snapshot averages, per-tool columns of
    :func:`swarmopt.metrics.window_rows`; ``error_rate`` is NaN without calls, the
    means NaN without a value), and ``model_cost_usd_sum``, the model cost summed
    over them. Returns a new dict."""
    view = {}
    for name in tools:
        calls = sum(r.get(f"tool_calls.{name}", 0) for r in rows)
        failed = sum(r.get(f"tool_calls.{name}", 0) * r.get(f"tool_error_rate.{name}", 0.0)
                     for r in rows if r.get(f"tool_calls.{name}", 0))
        view[name] = {"calls": calls, "error_rate": failed / calls if calls else math.nan,
                      "cost_usd": sum(r.get(f"tool_cost_usd.{name}", 0.0) for r in rows),
                      "hold_share": _mean(r.get(f"tool_hold_share.{name}", math.nan) for r in rows),
                      "hit_rate": _mean(r.get(f"cache_hit_rate_{name}", math.nan) for r in rows)}
    model = sum(x for x in (r.get("model_cost_usd", math.nan) for r in rows) if _finite(x))
    return dict(snapshot, tools=view, model_cost_usd_sum=model)


# ---------------------------------------------------------------------------------------------- timeouts
def timeout_target(attempt_p99_ms: float) -> float:
    """The timeout (s) for valid attempts whose p99 is ``attempt_p99_ms``:
    :data:`TIMEOUT_TAIL_MULTIPLE` x p99, rounded up to :data:`TIMEOUT_STEP_S`,
    within the knob's bounds."""
    lo, hi = KNOB_BOUNDS["timeout_s"]
    raw = TIMEOUT_TAIL_MULTIPLE * attempt_p99_ms / 1000.0
    return min(hi, max(lo, math.ceil(raw / TIMEOUT_STEP_S - 1e-9) * TIMEOUT_STEP_S))


def tighten_timeout(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Cut a timeout that lets hung attempts hold workers (see the module doc)."""
    hold, p99 = s.get("timeout_busy_share", math.nan), s.get("attempt_ms_p99", math.nan)
    if not (_finite(hold) and _finite(p99)) or hold < TIMEOUT_HOLD_SHARE:
        return None
    target = timeout_target(p99)
    return _change(p.id, k, "timeout_s", target) if k.timeout_s > TIMEOUT_SLACK * target else None


def relax_timeout(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Raise a timeout that cuts healthy attempts (see the module doc)."""
    rate, p99 = s.get("timeout_rate", math.nan), s.get("attempt_ms_p99", math.nan)
    if not (_finite(rate) and _finite(p99)) or rate < TIMEOUT_CUT_RATE:
        return None
    if p99 / 1000.0 < TIMEOUT_CENSORED * k.timeout_s:
        return None
    target = timeout_target(p99)
    return _change(p.id, k, "timeout_s", target) if target > k.timeout_s else None


# ---------------------------------------------------------------------------------------------- breaker
def break_even(fallback_quality: float, attempts: int) -> float:
    """The failure rate p* = (1 - q)^(1/a) above which going on without a tool
    (quality ``fallback_quality`` q) beats calling it over ``attempts`` a
    attempts (see the module doc)."""
    return (1.0 - fallback_quality) ** (1.0 / attempts)


def trip_floor(failure_rate: float, window_calls: int, false_trip: float = FALSE_TRIP) -> float:
    """The smallest threshold a breaker over ``window_calls`` calls of a tool
    failing at ``failure_rate`` reaches with probability at most ``false_trip``:
    (the 1 - false_trip binomial quantile of failures + 1) / window_calls."""
    from scipy import stats  # here: the remedies are imported by the Orchestrator's actor, which stays light

    return (float(stats.binom.ppf(1.0 - false_trip, window_calls, failure_rate)) + 1.0) / window_calls


def _tool_rates(s: dict, p: AgentProfile, k: Knobs) -> list[tuple[float, float]]:
    """(observed failure rate, break-even) of every tool with enough calls over the cycle."""
    view = s.get("tools", {})
    attempts = k.max_retries + 1
    out = []
    for t in p.tools:
        v = view.get(t.name)
        if v and v["calls"] >= MIN_TOOL_CALLS and _finite(v["error_rate"]):
            out.append((v["error_rate"], break_even(t.fallback_quality, attempts)))
    return out


def breaker_threshold(rates: list[tuple[float, float]], cfg: CircuitBreaker) -> float | None:
    """The failure-rate threshold for tools with (observed failure rate,
    break-even) ``rates``: the lowest break-even of the tools failing above
    theirs (so the breaker opens for them), else the lowest break-even of all;
    raised to the :func:`trip_floor` of every tool failing below its
    break-even (so noise does not trip it), rounded to 0.01 within the
    threshold's bounds. None when no tool has enough calls."""
    if not rates:
        return None
    failing = [be for rate, be in rates if rate > be]
    t = min(failing) if failing else min(be for _, be in rates)
    floor = max((trip_floor(rate, cfg.window_calls) for rate, be in rates if rate <= be), default=0.0)
    lo, hi = KNOB_BOUNDS["circuit_breaker.failure_rate_threshold"]
    return round(min(hi, max(lo, t, floor)), 2)


def tune_breaker_threshold(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Set a trigger-happy or lax breaker's failure-rate threshold to
    :func:`breaker_threshold` (see the module doc)."""
    cb = k.circuit_breaker
    rates = _tool_rates(s, p, k)
    if not cb.enabled or not rates:
        return None
    new = breaker_threshold(rates, cb)
    degraded = s.get("degraded_rate", 0.0)
    happy = new > cb.failure_rate_threshold and _finite(degraded) and degraded >= DEGRADED_SHARE
    lax = new < cb.failure_rate_threshold and any(be < rate < cb.failure_rate_threshold for rate, be in rates)
    return _change(p.id, k, "circuit_breaker.failure_rate_threshold", new) if happy or lax else None


def shorten_breaker_open(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Halve the open duration of a breaker that keeps decisions degraded
    while every tool fails below its break-even (see the module doc)."""
    cb, degraded = k.circuit_breaker, s.get("degraded_rate", math.nan)
    rates = _tool_rates(s, p, k)
    if not (cb.enabled and rates and _finite(degraded)) or degraded < DEGRADED_SHARE:
        return None
    if any(rate > be for rate, be in rates):
        return None
    return _change(p.id, k, "circuit_breaker.open_duration_s", max(MIN_OPEN_S, cb.open_duration_s / 2))


def lengthen_breaker_open(s: dict, k: Knobs, p: AgentProfile) -> list[KnobChange] | None:
    """Double the open duration of a breaker that keeps probing a tool failing
    above its break-even (see the module doc)."""
    cb, degraded = k.circuit_breaker, s.get("degraded_rate", math.nan)
    rates = _tool_rates(s, p, k)
    if not (cb.enabled and rates and _finite(degraded)) or degraded < DEGRADED_SHARE:
        return None
    if not any(rate > max(be, cb.failure_rate_threshold) for rate, be in rates):
        return None
    longest = KNOB_BOUNDS["circuit_breaker.open_duration_s"][1]
    return _change(p.id, k, "circuit_breaker.open_duration_s", min(longest, cb.open_duration_s * 2))
