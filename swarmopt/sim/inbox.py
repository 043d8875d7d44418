"""An agent's inbox: inbound coordination messages handled in batches.

One handler serves the inbox FCFS. It starts a batch when ``batch_size``
messages wait or the oldest has waited ``max_wait_s``, whichever is first, and
takes up to ``batch_size`` messages that have arrived by then. A batch costs
``overhead_ms + n * per_message_ms`` plus ``conflict_ms`` for every message
about the same resource as an earlier message of the batch from a different
sender (a conflict to resolve; a relayed copy, resource < 0, claims
nothing). A message is handled in time if its batch
finishes within ``deadline_s`` of its arrival. With shedding on (the
``shed_expired`` knob), when the handler is about to start a batch it first
drops every waiting message that could not be handled in time even alone
(its arrival + ``deadline_s`` before the start + ``overhead_ms`` +
``per_message_ms``): shed, never handled.

Processing only goes up to a horizon ``until``: every message that arrives
before the horizon is already known (all senders have simulated that far), so
results do not depend on how the run is cut into ticks.

Waiting messages are kept as arrays (arrival time, sender, sequence number,
resource) in the order of :class:`Message` tuples: by time, then sender name,
then sequence number. Messages between agents hosted together never become
:class:`Message` objects (:func:`swarmopt.sim.agent.step_agents`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from swarmopt.metrics import WINDOW_EPS, window_index

STORM = "~storm"  # the sender of a coordination storm's messages


class Message(NamedTuple):
    """A coordination message; ``time`` is its arrival at the receiver (s)."""

    time: float
    sender: str
    seq: int
    receiver: str
    resource: int
    origin_s: float


class Inbox:
    """Inbound message queue of one agent (see module docstring)."""

    def __init__(self, overhead_ms: float, per_message_ms: float, conflict_ms: float,
                 max_wait_s: float, deadline_s: float, names: list[str] | None = None) -> None:
        self.overhead_s = overhead_ms / 1000.0
        self.per_message_s = per_message_ms / 1000.0
        self.conflict_s = conflict_ms / 1000.0
        self.max_wait_s = max_wait_s
        self.deadline_s = deadline_s
        # sorted sender names (shared by the agents of a group): a sender's rank orders messages as its name does
        self.names: list[str] = names if names is not None else []
        self._rank = {s: i for i, s in enumerate(self.names)}
        self.time = np.zeros(0)
        self.sender = np.zeros(0, dtype=np.int64)
        self.seq = np.zeros(0, dtype=np.int64)
        self.resource = np.zeros(0, dtype=np.int64)
        self.free_at = 0.0

    def receive(self, messages: list[Message]) -> None:
        """Add delivered messages (any order)."""
        if messages:
            self._learn({m.sender for m in messages})
            rank = self._rank
            self.add(np.array([m.time for m in messages]), np.array([rank[m.sender] for m in messages]),
                     np.array([m.seq for m in messages]), np.array([m.resource for m in messages]), self.names)

    def _learn(self, names) -> None:
        """Rank new sender names among the known ones (re-ranking waiting messages)."""
        rank = self._rank
        if any(s not in rank for s in names):
            merged = sorted(set(self.names).union(names))
            new = {s: i for i, s in enumerate(merged)}
            self.sender = np.array([new[s] for s in self.names], dtype=np.int64)[self.sender]
            self.names, self._rank = merged, new

    def add(self, time: np.ndarray, sender: np.ndarray, seq: np.ndarray, resource: np.ndarray,
            names: list[str]) -> None:
        """Add messages given as arrays (n,): arrival ``time``, ``sender`` (index
        into the sorted ``names``), ``seq`` and ``resource``; any order."""
        if not len(time):
            return
        if names is not self.names:
            used = [names[i] for i in np.unique(sender).tolist()]
            self._learn(used)
            lut = np.zeros(len(names), dtype=np.int64)
            lut[[names.index(s) for s in used]] = [self._rank[s] for s in used]
            sender = lut[sender]
        t = np.concatenate((self.time, time))
        snd = np.concatenate((self.sender, sender))
        sq = np.concatenate((self.seq, seq))
        order = np.lexsort((sq, snd, t))
        self.time, self.sender, self.seq = t[order], snd[order], sq[order]
        self.resource = np.concatenate((self.resource, resource))[order]

    def process(self, until: float, batch_size: int, window_s: float, shed: bool = False) -> dict[int, list[int]]:
        """Handle every batch that starts before ``until``, shedding expired
        messages first if ``shed``.

        Returns, per window (index = batch start // ``window_s``) in which a
        batch started or a message was shed, [messages handled, handled in
        time, conflicts, shed].
        """
        # a batch starts no earlier than its first message: later messages are not needed
        k = int(np.searchsorted(self.time, until, side="left"))
        if not k:
            return {}
        totals: dict[int, list[int]] = {}
        times = self.time[:min(len(self.time), k + batch_size)].tolist()
        ov, per, deadline, free_at, eps = self.overhead_s, self.per_message_s, self.deadline_s, self.free_at, WINDOW_EPS
        h = 0
        if batch_size == 1:  # one message per batch: it starts when both it and the handler are there
            for t in times[:k]:
                start = free_at if free_at >= t else t
                if start >= until:
                    break
                finish = start + ov + per
                key = int((start / window_s + eps) // 1.0)  # window_index(start, window_s), inlined in this hot loop
                tot = totals.get(key)
                if tot is None:
                    tot = totals[key] = [0, 0, 0, 0]
                h += 1
                if shed and finish - t > deadline:
                    tot[3] += 1
                    continue
                tot[0] += 1
                tot[1] += finish - t <= deadline
                free_at = finish
        else:
            h, free_at = self._batches(times, until, batch_size, window_s, totals, shed)
        self.free_at = free_at
        if h:
            self.time, self.sender, self.seq, self.resource = (
                self.time[h:], self.sender[h:], self.seq[h:], self.resource[h:])
        return totals

    def _batches(self, times: list[float], until: float, batch_size: int, window_s: float,
                 totals: dict[int, list[int]], shed: bool) -> tuple[int, float]:
        """:meth:`process` for batches of up to ``batch_size`` messages; returns
        (messages handled or shed, the time the handler is free)."""
        n = len(times)
        senders, resources = self.sender[:n].tolist(), self.resource[:n].tolist()
        h, free_at = 0, self.free_at
        alone = self.overhead_s + self.per_message_s
        while h < n:
            ready = times[h] + self.max_wait_s
            if n - h >= batch_size:
                ready = min(times[h + batch_size - 1], ready)
            start = max(free_at, ready)
            if start >= until:
                break
            if shed and start + alone - times[h] > self.deadline_s:
                dropped = h
                while h < n and times[h] <= start and start + alone - times[h] > self.deadline_s:
                    h += 1
                totals.setdefault(window_index(start, window_s), [0, 0, 0, 0])[3] += h - dropped
                continue  # the batch forms again from the first message left
            j, stop = h, min(n, h + batch_size)
            while j < stop and times[j] <= start:
                j += 1
            seen: dict[int, int] = {}
            conflicts = 0
            for i in range(h, j):
                if resources[i] >= 0 and seen.setdefault(resources[i], senders[i]) != senders[i]:
                    conflicts += 1
            finish = start + self.overhead_s + (j - h) * self.per_message_s + conflicts * self.conflict_s
            in_time = sum(1 for i in range(h, j) if finish - times[i] <= self.deadline_s)
            tot = totals.setdefault(window_index(start, window_s), [0, 0, 0, 0])
            tot[0] += j - h
            tot[1] += in_time
            tot[2] += conflicts
            free_at = finish
            h = j
        return h, free_at
