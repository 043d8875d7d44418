"""Circuit breaker states (Resilience4j semantics) and the traffic-scaled minimum."""

from swarmopt.schema import CircuitBreaker
from swarmopt.sim.breaker import Breaker


def feed(b: Breaker, times, ok: bool):
    for t in times:
        if b.allow(t):
            b.record(t, ok)


def tripped(**cfg) -> Breaker:
    """A breaker (2-call window, 30 s open) opened by failures at 0 and 1 s: half-open from 31 s."""
    b = Breaker(CircuitBreaker(enabled=True, minimum_calls=2, window_calls=2, minimum_calls_traffic_s=0,
                               open_duration_s=30, **cfg))
    feed(b, [0.0, 1.0], ok=False)
    return b


def test_minimum_call_count_scales_with_traffic():
    # 10 failures in a row open the breaker at 1 call/s (minimum 10 calls) ...
    cfg = CircuitBreaker(enabled=True, minimum_calls=10, window_calls=100, minimum_calls_traffic_s=10)
    slow = Breaker(cfg)
    feed(slow, [float(i) for i in range(10)], ok=False)
    assert slow.state == "open"
    # ... but at 100 calls/s ten seconds of traffic is 1000 calls, capped at the
    # 100-call window: 10 failures in 0.1 s do not trip it
    fast = Breaker(cfg)
    feed(fast, [i / 100 for i in range(10)], ok=False)
    assert fast.state == "closed"
    assert fast.minimum_calls() == 100
    feed(fast, [0.1 + i / 100 for i in range(90)], ok=False)
    assert fast.state == "open"


def test_fixed_minimum_when_traffic_scaling_is_off():
    cfg = CircuitBreaker(enabled=True, minimum_calls=10, window_calls=100, minimum_calls_traffic_s=0)
    b = Breaker(cfg)
    feed(b, [i / 100 for i in range(10)], ok=False)
    assert b.state == "open"


def test_half_open_lets_a_bounded_number_of_trials_and_closes_on_success():
    b = tripped(half_open_calls=3)
    assert b.state == "open" and not b.allow(20.0)
    assert b.allow(31.0) and b.state == "half_open"
    b.record(31.0, True)
    b.record(31.5, True)
    assert b.allow(31.6)
    b.record(31.6, False)  # 1 failure of 3 trials < 50%
    assert b.state == "closed"


def test_half_open_reopens_when_trials_fail():
    b = tripped(half_open_calls=2)
    feed(b, [31.0, 32.0], ok=False)
    assert b.state == "open" and b.opened == 2
    assert b.open_until == 62.0


def test_half_open_wait_is_bounded():
    b = tripped(half_open_calls=3, max_wait_half_open_s=60)
    assert b.allow(31.0)
    b.record(31.0, True)  # one trial of three, then traffic stops
    assert not b.allow(92.0)  # more than 60 s in half-open: open again
    assert b.state == "open" and b.open_until == 122.0
    unbounded = tripped(half_open_calls=3, max_wait_half_open_s=0)
    assert unbounded.allow(31.0)
    unbounded.record(31.0, True)
    assert unbounded.allow(5000.0) and unbounded.state == "half_open"
