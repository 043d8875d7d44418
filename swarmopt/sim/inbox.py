"""An agent's inbox: inbound coordination messages handled in batches.

One handler serves the inbox FCFS. It starts a batch when ``batch_size``
messages wait or the oldest has waited ``max_wait_s``, whichever is first, and
takes up to ``batch_size`` messages that have arrived by then. A batch costs
``overhead_ms + n * per_message_ms`` plus ``conflict_ms`` for every message
about the same resource as an earlier message of the batch from a different
sender (a conflict to resolve). A message is handled in time if its batch
finishes within ``deadline_s`` of its arrival.

Processing only goes up to a horizon ``until``: every message that arrives
before the horizon is already known (all senders have simulated that far), so
results do not depend on how the run is cut into ticks.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple


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
                 max_wait_s: float, deadline_s: float) -> None:
        self.overhead_s = overhead_ms / 1000.0
        self.per_message_s = per_message_ms / 1000.0
        self.conflict_s = conflict_ms / 1000.0
        self.max_wait_s = max_wait_s
        self.deadline_s = deadline_s
        self.pending: list[Message] = []
        self.free_at = 0.0

    def receive(self, messages: list[Message]) -> None:
        """Add delivered messages (any order; the heap orders by time, sender, seq)."""
        for m in messages:
            heapq.heappush(self.pending, m)

    def process(self, until: float, batch_size: int) -> list[tuple[float, int, int, int]]:
        """Handle every batch that starts before ``until``.

        Returns one ``(start_s, handled, in_time, conflicts)`` tuple per batch.
        """
        out = []
        pending = self.pending
        while pending:
            if len(pending) >= batch_size:
                ready = min(heapq.nsmallest(batch_size, pending)[-1].time, pending[0].time + self.max_wait_s)
            else:
                ready = pending[0].time + self.max_wait_s
            start = max(self.free_at, ready)
            if start >= until:
                break
            batch = []
            while pending and len(batch) < batch_size and pending[0].time <= start:
                batch.append(heapq.heappop(pending))
            seen: dict[int, str] = {}
            conflicts = 0
            for m in batch:
                first = seen.setdefault(m.resource, m.sender)
                if first != m.sender:
                    conflicts += 1
            finish = start + self.overhead_s + len(batch) * self.per_message_s + conflicts * self.conflict_s
            in_time = sum(1 for m in batch if finish - m.time <= self.deadline_s)
            out.append((start, len(batch), in_time, conflicts))
            self.free_at = finish
        return out
