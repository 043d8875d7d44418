"""Reviews: escalated decisions served as tasks in the reviewer's own queue (pure).

A decision that escalates (:mod:`swarmopt.sim.serve`: with probability
``1 - autonomy`` or when its confidence is below ``confidence_threshold``)
does not finish when its agent's worker is done. Its agent sends a
:class:`ReviewRequest` to the scenario's reviewer (the agent whose profile has
a ``review`` section, :class:`~swarmopt.schema.ReviewDesk`: the Strategic
Orchestrator), arriving one network hop after the worker is done. The
reviewer's :class:`Desk` serves the requests FCFS over its ``workers``, a
review taking ``service_ms_median`` x exp(``service_sigma`` z), z the
decision's own standard normal (drawn with its block, so the same decision
takes the same review time whatever the policy: common random numbers). The
:class:`ReviewReply` goes back one hop (the reviewer's network latency); the
decision's answer is final when it arrives, and its response time
(``finish - arrival``) holds both hops, the wait in the reviewer's queue and
the review. So every escalation loads the reviewer and slows every review.

Time and windows. Every group steps in lockstep (BSP), so a request sent
while its agent steps over ``[t, t')`` reaches the reviewer by its next step
(directly when hosted together, else through the driver), and the reviewer
serves, at the start of a step at ``t0``, every request that arrives before
``t0``: all of them are known by then, as the inbox's messages are
(:mod:`swarmopt.sim.inbox`). Its replies reach their agents one step later.
An agent therefore knows, at the start of a step, the answer of every
decision whose request arrived before the start of its *previous* step
(:attr:`Awaiting.settled_s`). A reviewed decision belongs to the window in
which its answer came back, so a window can close once ``settled_s`` has
passed its end; the driver runs one extra exchange at every optimizer cycle
(:mod:`swarmopt.runtime.driver`), so the optimizer sees the same windows
whatever the tick. A decision whose answer comes back after the run's end is
not counted. The coordination message a reviewed decision sends leaves when
its worker is done (the receivers' inboxes must know their arrivals by the
same horizon rule); each of its coordination requests is met in time only
if the reviewed answer succeeded and, delivered as its message was (one hop,
plus the relays of a routed topology), reaches the receiver within the
deadline.

Without a reviewer in the scenario, a review is a fixed lognormal delay of
the agent's ``review_ms_median`` (:func:`swarmopt.sim.serve.serve`).
"""

from __future__ import annotations

import bisect
import math
import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from swarmopt.metrics import COLUMN, WindowData, window_index
from swarmopt.schema import ReviewDesk
from swarmopt.sim.service import fcfs

_ARRIVAL, _END, _FINISH = COLUMN["arrival"], COLUMN["end"], COLUMN["finish"]
_COORD_OK, _REVIEW_WAIT = COLUMN["coord_ok"], COLUMN["review_wait"]
_TIME = operator.attrgetter("time")


class ReviewRequest(NamedTuple):
    """An escalated decision sent for review; ``time`` is its arrival at the reviewer (s)."""

    time: float
    sender: str
    seq: int
    receiver: str
    z: float          # the decision's standard normal of its review time
    origin_s: float   # the decision's arrival


class ReviewReply(NamedTuple):
    """A review's answer; ``time`` is its arrival back at the decision's agent (s)."""

    time: float
    sender: str
    seq: int          # the request's
    receiver: str
    wait_s: float     # the request's wait in the reviewer's queue
    origin_s: float


def is_review(message: tuple) -> bool:
    """Whether a delivered message is a review request or reply (not a coordination message)."""
    return isinstance(message, (ReviewRequest, ReviewReply))


def held_mask(spans: list, span_n: np.ndarray, escalated: np.ndarray) -> np.ndarray | None:
    """Per decision of a serving pass (``span_n`` decisions per span, in
    order), whether it waits for the reviewer: escalated, of an agent with
    one; None when no span's agent has a reviewer."""
    flags = [sp.sim.awaiting is not None for sp in spans]
    if not any(flags):
        return None
    return escalated & (np.repeat(flags, span_n) if len(spans) > 1 else flags[0])


@dataclass
class _Batch:
    """The decisions one serving pass sent for review, sequence numbers ``seq0``
    on: their task table ``cols`` (fields, m), per-tool figures ``figs``
    (figures, tools, m), the delivery delays of each one's coordination
    messages (by position; none: no entry) and how many are still ``waiting``."""

    seq0: int
    cols: np.ndarray
    figs: np.ndarray
    sent: dict[int, list[float]]
    waiting: int


@dataclass
class HeldPass:
    """The decisions of one serving pass held for review, taken out of its
    task table at once: their columns ``cols`` (fields, h), per-tool figures
    ``figs`` (figures, tools, h) and review-time normals ``z`` (h,);
    ``at[i]``: how many of the pass's decisions before decision ``i`` are held
    (so the held decisions of a part ``[lo, hi)`` are ``at[lo]:at[hi]``); the
    held position of the sender of each coordination message (ascending) and
    its delivery time after the sender's worker was done."""

    cols: np.ndarray
    figs: np.ndarray
    z: np.ndarray
    at: list[int]
    sender: list[int]
    delay: list[float]

    @classmethod
    def split(cls, table: np.ndarray, per_tool: np.ndarray, reviewed: np.ndarray, z: np.ndarray,
              delays: tuple[np.ndarray, np.ndarray] | None) -> HeldPass:
        """The ``reviewed`` (n,) decisions of a pass's ``table`` (fields, n), ``per_tool`` (figures, tools, n)
        and normals ``z`` (n,); ``delays``: (sending decision, delay) of its messages, sorted by decision."""
        idx = np.flatnonzero(reviewed)
        at = np.concatenate(([0], np.cumsum(reviewed)))
        sender, delay = [], []
        if delays is not None:
            task, after = delays
            mine = reviewed[task]
            sender, delay = at[task[mine]].tolist(), after[mine].tolist()
        return cls(table[:, idx], per_tool[:, :, idx], z[idx], at.tolist(), sender, delay)

    def hand_over(self, awaiting: Awaiting | None, lo: int, hi: int) -> None:
        """Give ``awaiting`` (the agent of decisions ``[lo, hi)`` of the pass) its held decisions."""
        a, b = self.at[lo], self.at[hi]
        if a == b:
            return
        r0, r1 = bisect.bisect_left(self.sender, a), bisect.bisect_left(self.sender, b)
        awaiting.hold(self.cols[:, a:b], self.figs[:, :, a:b], self.z[a:b], [k - a for k in self.sender[r0:r1]],
                      self.delay[r0:r1])


class Awaiting:
    """One agent's decisions waiting for their review.

    ``reviewers``: the scenario's reviewers, sorted (a request goes to
    ``reviewers[seq % len(reviewers)]``, its sequence numbers counted from
    ``first_seq``: each sender starts its round robin at a different reviewer,
    so a population's requests spread over a population of reviewers instead of
    all starting at the first); ``latency_s`` and ``deadline_s``:
    the agent's network latency (the request's hop) and coordination
    deadline; ``horizon_s``: the run's end (a later answer is not counted).
    ``waiting``: decisions sent and not answered yet.
    """

    def __init__(self, agent: str, reviewers: list[str], latency_s: float, deadline_s: float,
                 horizon_s: float, first_seq: int = 0) -> None:
        self.agent = agent
        self.reviewers = reviewers
        self.latency_s = latency_s
        self.deadline_s = deadline_s
        self.horizon_s = horizon_s
        self.batches: dict[int, _Batch] = {}  # by first sequence number, ascending
        self.waiting = 0
        self.seq = first_seq
        self.outbox: list[ReviewRequest] = []
        self.replies: list[ReviewReply] = []
        self.settled_s = 0.0

    def hold(self, cols: np.ndarray, figs: np.ndarray, z: np.ndarray, sent_k: list[int], sent_d: list[float]
             ) -> None:
        """Keep decisions (task table ``cols`` (fields, m), per-tool figures
        ``figs`` (figures, tools, m)) until their reviews come back, and send
        their requests (``z``: their review-time normals). Decision
        ``sent_k[j]`` sent a coordination message delivered ``sent_d[j]``
        seconds after its worker was done."""
        m, seq0 = cols.shape[1], self.seq
        sent: dict[int, list[float]] = {}
        for k, d in zip(sent_k, sent_d, strict=True):
            sent.setdefault(k, []).append(d)
        self.batches[seq0] = _Batch(seq0, cols, figs, sent, m)
        self.seq += m
        self.waiting += m
        seqs, n_rev = range(seq0, seq0 + m), len(self.reviewers)
        self.outbox += map(ReviewRequest._make, zip(
            (cols[_END] + self.latency_s).tolist(), [self.agent] * m, seqs, [self.reviewers[s % n_rev] for s in seqs],
            z.tolist(), cols[_ARRIVAL].tolist(), strict=True))

    def absorb(self, replies: list[ReviewReply], window_of: Callable[[float], WindowData], window_s: float) -> None:
        """Complete the decisions of ``replies``: answer time, wait at the
        reviewer, coordination met in time; add each to the window in which
        its answer came back (dropped after the run's end)."""
        if not replies:
            return
        firsts = list(self.batches)
        which = (np.searchsorted(firsts, [r.seq for r in replies], side="right") - 1).tolist()
        # every batch with an answer, as one table: column offset[b] + k is decision k of batch b
        used = sorted(set(which))
        batches = [self.batches[firsts[b]] for b in used]
        offset = dict(zip(used, np.cumsum([0] + [bt.cols.shape[1] for bt in batches[:-1]]).tolist(), strict=True))
        held = [self.batches[firsts[b]] for b in which]  # each answer's batch
        ks = [r.seq - bt.seq0 for r, bt in zip(replies, held, strict=True)]
        pos = [offset[b] + k for b, k in zip(which, ks, strict=True)]
        table = batches[0].cols if len(batches) == 1 else np.concatenate([bt.cols for bt in batches], axis=1)
        figs = batches[0].figs if len(batches) == 1 else np.concatenate([bt.figs for bt in batches], axis=2)
        times = [r.time for r in replies]
        table[_FINISH, pos] = times
        table[_REVIEW_WAIT, pos] = [r.wait_s for r in replies]
        # a failed decision sends no message and meets none of its requests
        deadline = self.deadline_s
        table[_COORD_OK, pos] = [sum(t + d - a <= deadline for d in bt.sent.get(k, ())) for t, a, bt, k in
                                 zip(times, table[_ARRIVAL, pos].tolist(), held, ks, strict=True)]
        counts = Counter(which)
        for b, bt in zip(used, batches, strict=True):
            bt.waiting -= counts[b]
            if not bt.waiting:
                del self.batches[bt.seq0]
        self.waiting -= len(replies)
        late: dict[int, list[int]] = {}
        for rep, p in zip(replies, pos, strict=True):
            if rep.time < self.horizon_s:
                late.setdefault(window_index(rep.time, window_s), []).append(p)
        for k, cols in late.items():
            window_of(k * window_s).add_late(table[:, cols], figs[:, :, cols])


class Desk:
    """The reviewer's queue: FCFS over ``config.workers`` reviewers.

    ``latency_s``: the reviewer's network latency (the reply's hop);
    ``horizon_s``: the run's end (busy time is counted in windows before it).
    """

    def __init__(self, name: str, config: ReviewDesk, latency_s: float, horizon_s: float) -> None:
        self.name = name
        self.workers = [0.0] * config.workers
        self.median_s = config.service_ms_median / 1000.0
        self.sigma = config.service_sigma
        self.latency_s = latency_s
        self.horizon_s = horizon_s
        self.pending: list[ReviewRequest] = []

    def receive(self, requests: list[ReviewRequest]) -> None:
        """Queue requests (any order)."""
        self.pending += requests

    def process(self, until: float, window_of: Callable[[float], WindowData], window_s: float) -> list[ReviewReply]:
        """Serve, in order of arrival (then sender and sequence number), every
        request that arrives before ``until``; count each review in the window
        where it starts and its busy time in the windows it spans. Returns the replies."""
        self.pending.sort()
        k = bisect.bisect_left(self.pending, until, key=_TIME)
        served = self.pending[:k]
        del self.pending[:k]
        if not served:
            return []
        median, sigma = self.median_s, self.sigma
        arrival = np.fromiter(map(_TIME, served), float, k)
        service = np.array([median * math.exp(sigma * r.z) for r in served])
        # step by step for one reviewer too: a review's times must not depend on how the horizon is cut
        start, end = fcfs(arrival, service, self.workers, closed_form=False)
        horizon, windows = self.horizon_s, {}

        def window(w: int) -> WindowData:
            wd = windows.get(w)
            if wd is None:
                wd = windows[w] = window_of(w * window_s)
            return wd

        starts, ends = start.tolist(), end.tolist()
        for s, e, w in zip(starts, ends, window_index(start, window_s).tolist(), strict=True):
            if s < horizon:
                window(w).reviews += 1
            stop = min(e, horizon)
            while w * window_s < stop:
                window(w).review_busy_s += min(e, (w + 1) * window_s) - max(s, w * window_s)
                w += 1
        lat = self.latency_s
        return [ReviewReply(e + lat, self.name, r.seq, r.sender, s - r.time, r.origin_s)
                for r, s, e in zip(served, starts, ends, strict=True)]
