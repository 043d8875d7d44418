"""Observers: live consumers of what a run produces, as it is produced.

A :class:`~swarmopt.simulation.Simulation` hands every observer (``observers=``
or :meth:`~swarmopt.simulation.Simulation.observe`) the metrics rows of the
windows that close, the events and the per-task samples
(:class:`~swarmopt.metrics.TaskSample`), in order, on the thread that advances
the run. :class:`Fanout` is the driver's sink that does it: it feeds the run's
:class:`~swarmopt.results.Collector` and the observers, and sends an observer
nothing twice when the driver replays ticks after an actor restart (the replay
reproduces exactly what was sent before, so the observers just skip it).
"""

from __future__ import annotations

from typing import Any, Sequence

from swarmopt.metrics import TaskSample


class Observer:
    """Base class of an observer: override the methods you need (each gets a
    non-empty list)."""

    def rows(self, rows: list[dict]) -> None:
        """Metrics rows of windows that just closed (the metrics table's columns)."""

    def events(self, events: list[dict]) -> None:
        """New events (the events table's columns)."""

    def samples(self, samples: list[TaskSample]) -> None:
        """Per-task samples of the windows that just closed."""


_STREAMS = ("rows", "events", "samples")


class Fanout:
    """A driver sink (:class:`~swarmopt.runtime.driver.Sink`) that feeds
    ``collector`` (every call) and ``observers`` (each item once)."""

    def __init__(self, collector: Any, observers: Sequence[Observer] = ()) -> None:
        self.collector = collector
        self.observers = list(observers)
        self._pos = [0, 0, 0]   # items received per stream, rewound with the collector
        self._sent = [0, 0, 0]  # items sent to observers per stream: a high-water mark, never rewound

    def rows(self, rows: list[dict]) -> None:
        self.collector.rows(rows)
        self._send(0, rows)

    def events(self, events: list[dict]) -> None:
        self.collector.events(events)
        self._send(1, events)

    def samples(self, samples: list[TaskSample]) -> None:
        self.collector.samples(samples)
        self._send(2, samples)

    def process(self, samples: list[dict]) -> None:
        self.collector.process(samples)

    def mark(self) -> tuple:
        """The collector's mark and the stream positions (see :meth:`rewind`)."""
        return self.collector.mark(), tuple(self._pos)

    def rewind(self, mark: tuple) -> None:
        """Rewind the collector; what is received again up to the high-water
        mark is not sent to the observers again."""
        self.collector.rewind(mark[0])
        self._pos = list(mark[1])

    def _send(self, stream: int, items: list) -> None:
        start = self._pos[stream]
        self._pos[stream] += len(items)
        new = items[max(0, self._sent[stream] - start):]
        self._sent[stream] = max(self._sent[stream], self._pos[stream])
        if new:
            for obs in self.observers:
                getattr(obs, _STREAMS[stream])(new)
