"""Circuit breaker state machine (Resilience4j's count-based sliding window).

States: ``closed`` (calls pass, outcomes recorded in a window of the last
``window_calls`` calls), ``open`` (calls are rejected until ``open_duration_s``
has passed), ``half_open`` (one trial call: success closes the breaker and
clears the window, failure re-opens it). The breaker opens when the window
holds at least ``minimum_calls`` outcomes and the failure rate is at least
``failure_rate_threshold``. Source: Resilience4j CircuitBreaker documentation
(COUNT_BASED sliding window, minimumNumberOfCalls, waitDurationInOpenState).
"""

from __future__ import annotations

from collections import deque

from swarmopt.schema import CircuitBreaker


class Breaker:
    """One tool's breaker; times are simulated seconds."""

    __slots__ = ("cfg", "state", "open_until", "window", "failures", "opened")

    def __init__(self, cfg: CircuitBreaker) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.open_until = 0.0
        self.window: deque[bool] = deque()
        self.failures = 0
        self.opened = 0

    def allow(self, t: float) -> bool:
        """Whether a call at ``t`` may go through (moves open -> half_open when due)."""
        if self.state == "open":
            if t < self.open_until:
                return False
            self.state = "half_open"
        return True

    def record(self, t: float, ok: bool) -> None:
        """Record the outcome of a call made at ``t``."""
        if self.state == "half_open":
            if ok:
                self.state = "closed"
                self.window.clear()
                self.failures = 0
            else:
                self._open(t)
            return
        self.window.append(ok)
        if not ok:
            self.failures += 1
        if len(self.window) > self.cfg.window_calls and not self.window.popleft():
            self.failures -= 1
        n = len(self.window)
        if n >= self.cfg.minimum_calls and self.failures >= self.cfg.failure_rate_threshold * n:
            self._open(t)

    def _open(self, t: float) -> None:
        self.state = "open"
        self.open_until = t + self.cfg.open_duration_s
        self.window.clear()
        self.failures = 0
        self.opened += 1
