"""Bounded tool caches and invalidation (pure Python + numpy).

Reference 002 ("Caching Strategies": ``max_cache_size``,
``invalidate_cache(tool_name=..., pattern=...)``). A tool's cache is its
expiry array (key -> time its entry expires; -1 = not cached), shared with the
agent engine. Unbounded, it is the TTL cache of
:func:`swarmopt.sim.service.ttl_cache`. With a size bound (the
``max_cache_size`` knob) an :class:`LRUCache` also keeps its live entries in
recency order: a hit makes its entry the most recently used (a hit does not
extend the TTL), a successful fetch inserts its key until ``t + ttl``, and when
more than ``capacity`` entries would be live the expired ones go first, then
the least recently used (as cachetools' ``TTLCache`` does). An invalidation
drops the live entries of the keys a pattern matches (:func:`pattern_keys`).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict

import numpy as np

_KNUTH = 2654435761  # Knuth's multiplicative hash constant (TAOCP vol. 3, 6.4): floor(2^32 / golden ratio)


def pattern_keys(keyspace: int, share: float) -> np.ndarray:
    """The keys a pattern matching ``share`` of a keyspace matches: (keyspace,)
    bool, key ``k`` when ``frac(k x 2654435761 / 2^32) < share`` (Knuth's
    multiplicative hash), a fixed subset spread evenly over popular and rare
    keys alike; every key for ``share`` >= 1."""
    if share >= 1.0:
        return np.ones(keyspace, dtype=bool)
    k = np.arange(keyspace, dtype=np.uint64)
    return (k * np.uint64(_KNUTH)) % np.uint64(2**32) < np.uint64(int(share * 2**32))


class LRUCache:
    """A size bound of ``capacity`` live entries with LRU eviction on the
    expiry array ``expiry`` (updated in place; an evicted key's entry becomes
    -1). Entries live at ``t`` (a bound set on a running cache) are taken in
    the order they were fetched as their recency. ``evictions`` counts the
    live entries evicted so far."""

    def __init__(self, expiry: np.ndarray, capacity: int, t: float) -> None:
        self.expiry = expiry
        self.capacity = capacity
        self.evictions = 0
        self.order: OrderedDict[int, None] = OrderedDict()  # live keys, least recently used first
        self.heap: list[tuple[float, int]] = []              # (expiry, key) of insertions, to purge expired ones
        live = np.flatnonzero(expiry > t)
        for k in live[np.argsort(expiry[live], kind="stable")].tolist():
            self.order[k] = None
            self.heap.append((float(expiry[k]), k))
        heapq.heapify(self.heap)
        self._shrink(t)

    def resize(self, capacity: int, t: float) -> None:
        """Set the bound at ``t``; evicts down to it at once."""
        self.capacity = capacity
        self._shrink(t)

    def hit(self, t: float, key: int) -> bool:
        """Look ``key`` up at ``t``: True (and now the most recently used) when
        its entry is live."""
        if t < self.expiry[key]:
            self.order.move_to_end(key)
            return True
        return False

    def fill(self, t: float, key: int, ttl: float) -> None:
        """Insert ``key`` at ``t`` until ``t + ttl`` (a fetch succeeded), evicting if the bound is passed."""
        exp = t + ttl
        self.expiry[key] = exp
        self.order[key] = None
        self.order.move_to_end(key)
        heapq.heappush(self.heap, (exp, key))
        if len(self.order) > self.capacity:
            self._shrink(t)

    def lookups(self, t: np.ndarray, keys: np.ndarray, fills: np.ndarray, ttl: float) -> np.ndarray:
        """:func:`swarmopt.sim.service.ttl_cache` with the bound: hits (n,) of
        lookups at sorted times ``t`` of ``keys``; a miss with ``fills[i]``
        inserts its key. With ``ttl <= 0`` every lookup misses."""
        n = len(t)
        hit = np.zeros(n, dtype=bool)
        if ttl <= 0.0 or n == 0:
            return hit
        for i, (ti, key, fill) in enumerate(zip(t.tolist(), keys.tolist(), fills.tolist(), strict=True)):
            if self.hit(ti, key):
                hit[i] = True
            elif fill:
                self.fill(ti, key, ttl)
        return hit

    def drop(self, keys: np.ndarray) -> None:
        """Forget ``keys`` (their entries were invalidated)."""
        for k in keys.tolist():
            self.order.pop(k, None)

    def _shrink(self, t: float) -> None:
        """Purge expired entries, then evict the least recently used, until at most ``capacity`` are live."""
        order, heap, expiry = self.order, self.heap, self.expiry
        while len(order) > self.capacity and heap and heap[0][0] <= t:
            exp, key = heapq.heappop(heap)
            if expiry[key] == exp and key in order:  # still the key's current entry, now expired
                del order[key]
        while len(order) > self.capacity:
            key, _ = order.popitem(last=False)
            self.expiry[key] = -1.0
            self.evictions += 1
        if len(heap) > 4 * len(order) + 64:  # entries replaced or evicted since: rebuild from the live ones
            self.heap = [(float(expiry[k]), k) for k in order]
            heapq.heapify(self.heap)


def invalidate(expiry: np.ndarray, matched: np.ndarray, t: float, lru: LRUCache | None = None) -> int:
    """Drop at ``t`` the live entries of the ``matched`` keys (bool mask) from a
    tool's cache; returns how many were dropped."""
    dropped = np.flatnonzero(matched & (expiry > t))
    expiry[dropped] = -1.0
    if lru is not None:
        lru.drop(dropped)
    return int(dropped.size)


__all__ = ["LRUCache", "invalidate", "pattern_keys"]
