"""Circuit breaker state machine (Resilience4j's count-based sliding window).

States: ``closed`` (calls pass; outcomes and call times are kept for the last
``window_calls`` calls), ``open`` (calls are rejected until ``open_duration_s``
has passed), ``half_open`` (``half_open_calls`` trial calls pass; when all have
been recorded, a failure rate at or above the threshold re-opens the breaker,
otherwise it closes; if they are not all made within ``max_wait_half_open_s`` it
opens again). The breaker opens when the window holds at least the minimum
number of calls and the failure rate is at least ``failure_rate_threshold``.

The minimum scales with traffic: ``max(minimum_calls, rate x
minimum_calls_traffic_s)``, capped at ``window_calls``, where ``rate`` is the
call rate over the window (calls per simulated second). At 100 calls/s a fixed
minimum of 10 would let 0.1 s of errors trip the breaker.

Sources: Resilience4j CircuitBreaker documentation (COUNT_BASED sliding window,
minimumNumberOfCalls, waitDurationInOpenState,
permittedNumberOfCallsInHalfOpenState, maxWaitDurationInHalfOpenState).
"""

from __future__ import annotations

import math
from collections import deque

from swarmopt.schema import CircuitBreaker


class Breaker:
    """One tool's breaker; times are simulated seconds."""

    __slots__ = ("cfg", "state", "open_until", "half_open_since", "window", "failures", "trials", "opened")

    def __init__(self, cfg: CircuitBreaker) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.open_until = 0.0
        self.half_open_since = 0.0
        self.window: deque[tuple[float, bool]] = deque()
        self.failures = 0
        self.trials: list[bool] = []
        self.opened = 0

    def minimum_calls(self) -> int:
        """The minimum number of calls in the window before the breaker may open."""
        cfg, n = self.cfg, len(self.window)
        span = self.window[-1][0] - self.window[0][0] if n > 1 else 0.0
        by_traffic = math.ceil((n - 1) / span * cfg.minimum_calls_traffic_s) if span > 0 else 0
        return max(cfg.minimum_calls, min(cfg.window_calls, by_traffic))

    def allow(self, t: float) -> bool:
        """Whether a call at ``t`` may go through (moves open -> half_open when due,
        half_open -> open when the trial calls took too long)."""
        if self.state == "open":
            if t < self.open_until:
                return False
            self.state = "half_open"
            self.half_open_since = t
            self.trials = []
        if self.state == "half_open":
            wait = self.cfg.max_wait_half_open_s
            if wait > 0 and t - self.half_open_since > wait:
                self._open(t)
                return False
            return len(self.trials) < self.cfg.half_open_calls
        return True

    def record(self, t: float, ok: bool) -> None:
        """Record the outcome of a call made at ``t`` (after :meth:`allow` said yes)."""
        if self.state == "half_open":
            self.trials.append(ok)
            if len(self.trials) >= self.cfg.half_open_calls:
                if self.trials.count(False) >= self.cfg.failure_rate_threshold * len(self.trials):
                    self._open(t)
                else:
                    self.state = "closed"
                    self.window.clear()
                    self.failures = 0
            return
        self.window.append((t, ok))
        if not ok:
            self.failures += 1
        if len(self.window) > self.cfg.window_calls and not self.window.popleft()[1]:
            self.failures -= 1
        n = len(self.window)
        # the failure count first: it is cheap and, in a healthy window, already false
        if self.failures >= self.cfg.failure_rate_threshold * n and n >= self.minimum_calls():
            self._open(t)

    def _open(self, t: float) -> None:
        self.state = "open"
        self.open_until = t + self.cfg.open_duration_s
        self.window.clear()
        self.failures = 0
        self.trials = []
        self.opened += 1
