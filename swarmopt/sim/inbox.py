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
        self.head = 0
        self.free_at = 0.0

    def receive(self, messages: list[Message]) -> None:
        """Add delivered messages (any order; kept sorted by time, sender, seq)."""
        if messages:
            # timsort merges the two sorted runs in linear time
            self.pending = sorted(self.pending[self.head:] + list(messages))
            self.head = 0

    def process(self, until: float, batch_size: int) -> list[tuple[float, int, int, int]]:
        """Handle every batch that starts before ``until``.

        Returns one ``(start_s, handled, in_time, conflicts)`` tuple per batch.
        """
        out = []
        p, h, n = self.pending, self.head, len(self.pending)
        while h < n:
            ready = p[h].time + self.max_wait_s
            if n - h >= batch_size:
                ready = min(p[h + batch_size - 1].time, ready)
            start = max(self.free_at, ready)
            if start >= until:
                break
            j, stop = h, min(n, h + batch_size)
            while j < stop and p[j].time <= start:
                j += 1
            batch, h = p[h:j], j
            seen: dict[int, str] = {}
            conflicts = 0
            for m in batch:
                if seen.setdefault(m.resource, m.sender) != m.sender:
                    conflicts += 1
            finish = start + self.overhead_s + len(batch) * self.per_message_s + conflicts * self.conflict_s
            in_time = sum(1 for m in batch if finish - m.time <= self.deadline_s)
            out.append((start, len(batch), in_time, conflicts))
            self.free_at = finish
        self.head = h
        return out
