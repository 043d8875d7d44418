"""Load shedding in the inbox (the ``shed_expired`` knob) and its remedy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from swarmopt import run_scenario
from swarmopt.loader import load_scenario
from swarmopt.optimizer.strategies import shed_expired_messages
from swarmopt.sim.inbox import Inbox

from conftest import HEALTHY_SNAPSHOT, assert_same, short

STORM = Path(__file__).parent.parent / "scenarios" / "library" / "coordination_storm.yaml"
SO = "strategic-orchestrator"


def _inbox(times: np.ndarray) -> Inbox:
    box = Inbox(overhead_ms=120.0, per_message_ms=20.0, conflict_ms=0.0, max_wait_s=1.0, deadline_s=2.0,
                names=["a"])
    n = len(times)
    box.add(times, np.zeros(n, dtype=np.int64), np.arange(n), np.full(n, -1), box.names)
    return box


def _totals(box: Inbox, cuts: list[float], batch: int, shed: bool) -> np.ndarray:
    out: dict[int, np.ndarray] = {}
    for until in cuts:
        for k, counts in box.process(until, batch, 60.0, shed).items():
            out[k] = out.get(k, np.zeros(4, dtype=int)) + counts
    return np.array([out[k] for k in sorted(out)])


@pytest.mark.parametrize("batch", [1, 4])
def test_a_backlog_is_shed_and_more_messages_are_handled_in_time(batch):
    """100 messages at once, then one every 0.5 s for a minute: a message costs 140 ms alone (120 + 20) and must
    be handled within 2 s, so without shedding the burst keeps the handler busy for about 14 s (batches of 1) and
    the messages arriving meanwhile are late too; with shedding the handler handles the burst's head in time,
    drops the rest of it when it reaches them and serves the later messages on time. Every message is handled
    or shed, whatever the cuts; in batches of 1 every message handled is in time (it is shed exactly when it
    could not be), in larger batches the batch's own length can still make one late."""
    times = np.concatenate((np.zeros(100), 1.0 + 0.5 * np.arange(120)))
    plain = _totals(_inbox(times), [90.0], batch, shed=False).sum(axis=0)
    assert plain[3] == 0 and plain[0] == 220
    handled, in_time, _, dropped = _totals(_inbox(times), [90.0], batch, shed=True).sum(axis=0).tolist()
    assert handled + dropped == 220 and dropped >= 50
    assert in_time > plain[1]
    if batch == 1:
        assert in_time == handled and handled - plain[1] > 25  # 134 against 103
    cut = _totals(_inbox(times), [0.7, 5.0, 13.0, 31.0, 31.2, 90.0], batch, shed=True)
    np.testing.assert_array_equal(cut, _totals(_inbox(times), [90.0], batch, shed=True))


@pytest.fixture(scope="module")
def storm():
    sc = load_scenario(STORM)
    over = {f"agents.{SO}.knobs.shed_expired": True, "optimizer.policy": "monitor"}
    return {tick: run_scenario(short(sc, 3000, tick_s=tick), runtime="local", overrides=over) for tick in (60.0, 300.0)}


def test_under_the_storm_shedding_serves_the_inbox_s_capacity_in_time(storm):
    """Under the coordination storm (24 extra messages a second on the Orchestrator, whose inbox handles 1 / 0.14 s
    = 7.1 a second in batches of 1) shedding keeps the backlog from growing: each window about 7.1 x 60 messages
    are handled, nearly all in time, and the rest shed, so the in-time share is about 7.1 / 24.4 = 0.29 instead of
    0 (windows of 1,400 messages: a binomial share's standard error is about 0.012). Same tables at any tick."""
    m = storm[60.0].metrics
    so = m[(m["agent"] == SO) & (m["t_start_s"] >= 1920.0)]
    inbound = so["messages_handled"] + so["messages_shed"]
    assert so["messages_handled"].between(420, 435).all() and (so["messages_shed"] > 800).all()
    rate = so["inbox_in_time_rate"].mean()
    assert rate == pytest.approx(7.14 * 60 / inbound.mean(), abs=0.02) and 0.25 < rate < 0.33
    assert_same(m, storm[300.0].metrics)


def test_the_remedy_asks_for_shedding_when_messages_are_late(mh_scenario):
    p = next(a for a in mh_scenario.agents if a.id == SO)
    late = dict(HEALTHY_SNAPSHOT, inbox_in_time_rate=0.3)
    [change] = shed_expired_messages(late, p.knobs, p)
    assert (change.knob, change.old, change.new) == ("shed_expired", False, True)
    assert shed_expired_messages(dict(HEALTHY_SNAPSHOT, inbox_in_time_rate=0.95), p.knobs, p) is None
    assert shed_expired_messages(dict(HEALTHY_SNAPSHOT, inbox_in_time_rate=float("nan")), p.knobs, p) is None
    assert shed_expired_messages(late, p.knobs.model_copy(update={"shed_expired": True}), p) is None
