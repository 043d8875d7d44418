"""Task scheduling and bulkheads: who of the decisions waiting gets the next free worker (numpy + Python).

Reference 000 (the load balancer: task priorities, weighted fair queuing;
resource pool separation). The ``scheduling`` knob orders the decisions
waiting for a worker of an agent:

* ``fcfs``: by arrival (:func:`swarmopt.sim.service.fcfs`, vectorized);
* ``priority``: non-preemptive priority by class (0 first), FCFS within a
  class: a decision in service is never interrupted. Mean waits per class are
  Cobham's (1954): ``W_k = W_0 / ((1 - s_{k-1}) (1 - s_k))``, ``s_k`` the
  load of classes 0..k (tests/test_sched.py checks M/M/1 and M/M/c);
* ``wfq``: weighted fair queuing over the classes, self-clocked (Golestani
  1994): a decision of class ``k`` queued at virtual time ``V`` gets the finish
  tag ``F = max(V, F_last[k]) + 1 / w_k`` and the waiting decision of smallest
  tag starts next; ``V`` is the tag of the decision started last. Each
  decision counts one unit (its service time is not known when it queues), so
  a backlogged class ``k`` gets a share ``w_k / sum w`` of the decisions started.

The ``bulkhead`` knob reserves pools of the agent's workers for the decisions
that call a tool (a thread-pool bulkhead, as Resilience4j's): a decision that
calls a pooled tool (a cache miss) is served by the pool of the first such
tool of the profile, every other decision by the shared rest. A slow tool then
fills its own pool's queue, not every worker.

The decisions of one window (within a span) are ordered among themselves and
after the ones queued before them (the workers' free times carry over), so
with ``priority`` or ``wfq`` a decision still waiting at the end of a window
is not overtaken by the next window's: the ordering horizon is the window,
whatever the tick when ``tick_s`` is a multiple of ``window_s``; a tick shorter
than the window cuts it at every tick (a span ends there), so with sub-window
ticks results depend on ``tick_s`` in that way. With ``fcfs`` and no bulkhead
nothing here runs.
"""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from swarmopt.sim.service import _no_wait_prefix, fcfs

ORDERED = ("priority", "wfq")


def ordered(arrival: np.ndarray, service: np.ndarray, cls: np.ndarray, workers: list[float], mode: str,
            weights: tuple[float, ...] = (1.0, 1.0, 1.0), stretch: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) arrays (n,) of decisions served non-preemptively over the
    workers ``workers`` (heap of free times, updated in place) in the order of
    ``mode``: ``priority`` (smallest ``cls`` first, then arrival) or ``wfq``
    (smallest self-clocked finish tag, ``weights[cls]`` per class).

    ``arrival`` (n,) sorted, ``service`` (n,) seconds, ``cls`` (n,) int class
    in ``0..len(weights)-1``. Decisions that find a free worker start on
    arrival (found vectorized); from the first wait on, an event loop.
    ``stretch`` (n,) non-decreasing ints: the decisions of one stretch are
    ordered among themselves, after the earlier stretches' (the engine passes
    each decision's arrival window, so the order does not depend on the tick);
    None: one stretch.
    Raises ValueError for an unknown ``mode``.
    """
    if mode not in ORDERED:
        raise ValueError(f"unknown scheduling '{mode}'; allowed: fcfs, {', '.join(ORDERED)}")
    if stretch is not None:
        cuts = np.flatnonzero(np.diff(stretch)) + 1
        if cuts.size:
            parts = [_ordered(arrival[lo:hi], service[lo:hi], cls[lo:hi], workers, mode, weights)
                     for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(arrival)], strict=True)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return _ordered(arrival, service, cls, workers, mode, weights)


def _ordered(arrival: np.ndarray, service: np.ndarray, cls: np.ndarray, workers: list[float], mode: str,
             weights: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ordered` over one ordering stretch."""
    n = len(arrival)
    if n == 0:
        return arrival.copy(), arrival.copy()
    end = arrival + service
    m = _no_wait_prefix(arrival, end, workers)
    if m:
        c = len(workers)
        workers[:] = np.sort(np.concatenate([np.asarray(workers), end[:m]]))[-c:].tolist()
    start = np.empty(n)
    start[:m] = arrival[:m]
    if m < n:
        _event_loop(arrival.tolist(), service.tolist(), cls.tolist(), workers, mode, weights, m, start)
    return start, start + service


def _event_loop(arr: list[float], svc: list[float], cls: list[int], workers: list[float], mode: str,
                weights: tuple[float, ...], i: int, start: np.ndarray) -> None:
    """Serve decisions ``i..`` (``start`` filled in place): at each worker's
    free time, queue the arrivals by then and start the one ``mode`` picks."""
    n, k = len(arr), len(weights)
    queues: list[deque] = [deque() for _ in range(k)]
    tag_last = [0.0] * k
    inv_w = [1.0 / w for w in weights]
    virtual = 0.0
    waiting = 0
    heappush, heappop = heapq.heappush, heapq.heappop
    tags: list[list] = [[] for _ in range(k)] if mode == "wfq" else []
    for _ in range(n - i):
        free = workers[0]
        if not waiting and arr[i] > free:
            free = arr[i]
        while i < n and arr[i] <= free:
            c = cls[i]
            queues[c].append(i)
            if tags:
                tag = (virtual if virtual > tag_last[c] else tag_last[c]) + inv_w[c]
                tag_last[c] = tag
                tags[c].append(tag)
            waiting += 1
            i += 1
        if tags:
            c = min((tags[q][0], q) for q in range(k) if queues[q])[1]
            virtual = tags[c].pop(0)
        else:
            c = next(q for q in range(k) if queues[q])
        j = queues[c].popleft()
        waiting -= 1
        start[j] = free
        heappop(workers)
        heappush(workers, free + svc[j])


def pools(calls: np.ndarray, pooled: list[int]) -> np.ndarray:
    """The pool of each decision (n,): ``1 + p`` for the first tool ``pooled[p]``
    it calls (``calls`` (n, tools) calls per tool), else 0 (the shared pool)."""
    pool = np.zeros(len(calls), dtype=np.int64)
    for p in range(len(pooled) - 1, -1, -1):
        pool[calls[:, pooled[p]] > 0] = 1 + p
    return pool


def serve_pools(arrival: np.ndarray, service: np.ndarray, cls: np.ndarray, pool: np.ndarray,
                heaps: list[list[float]], mode: str, weights: tuple[float, ...], stretch: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) (n,) when decision ``i`` is served by the workers
    ``heaps[pool[i]]`` (each a heap of free times, updated in place), by
    ``mode`` (``fcfs`` or one of :data:`ORDERED`, by ``stretch``) within each pool."""
    start, end = np.empty(len(arrival)), np.empty(len(arrival))
    for p, heap in enumerate(heaps):
        idx = np.flatnonzero(pool == p)
        if not idx.size:
            continue
        if mode == "fcfs":
            start[idx], end[idx] = fcfs(arrival[idx], service[idx], heap)
        else:
            start[idx], end[idx] = ordered(arrival[idx], service[idx], cls[idx], heap, mode, weights,
                                           None if stretch is None else stretch[idx])
    return start, end


def steal(ready: np.ndarray, service: np.ndarray, owner: np.ndarray, share: np.ndarray, sims: list,
          ops: list[tuple[float, int, list[tuple]]]) -> tuple[np.ndarray, np.ndarray]:
    """FCFS over the replicas ``sims`` of one population with work stealing
    (reference 000's load balancer): a decision that finds its own replica's
    workers busy, when its replica shares work (``share``: the
    ``work_stealing`` knob of its span), is served by the worker of the
    population that frees up first, its own on a tie, as if that worker, once
    idle, took the oldest decision waiting anywhere in the population. Every
    other decision waits for its own replica's workers.

    ``ready`` (m,) seconds, ``service`` (m,) seconds, ``owner`` (m,) index of
    the decision's replica in ``sims`` (each with a heap of free times
    ``workers``, updated in place, and ``apply_ops``), ``share`` (m,) bool.
    ``ops`` are ``(t, replica, worker changes)`` due at ``t``, applied before
    any decision ready at or after ``t``. Decisions are taken in order of
    ``ready`` (ties in input order), so the plan is the same whatever the
    ticks. Returns (start (m,), server (m,) the index of the replica whose
    worker served the decision).

    A thief serves the decision with the service time its own replica drew
    (tools, cache and model are the owner's); with all replicas sharing, the
    population is one M/G/(sum of workers) queue, which tests/test_sched.py
    checks against Erlang C.
    """
    m = len(ready)
    start, server = np.empty(m), owner.astype(np.int64)
    order = np.argsort(ready, kind="stable").tolist()
    ops = sorted(ops, key=lambda o: o[0])
    mins = np.array([sim.workers[0] for sim in sims])
    k = 0
    rdy, svc, own_of, shares = ready.tolist(), service.tolist(), owner.tolist(), share.tolist()
    for i in order:
        a = rdy[i]
        while k < len(ops) and ops[k][0] <= a:
            _, r, op = ops[k]
            sims[r].apply_ops(op)
            mins[r] = sims[r].workers[0]
            k += 1
        r = own_of[i]
        if shares[i] and mins[r] > a:
            j = int(mins.argmin())
            if mins[j] < mins[r]:
                r = j
                server[i] = j
        heap = sims[r].workers
        s = a if heap[0] < a else heap[0]
        start[i] = s
        heapq.heapreplace(heap, s + svc[i])
        mins[r] = heap[0]
    for _, r, op in ops[k:]:
        sims[r].apply_ops(op)
    return start, server


__all__ = ["ORDERED", "ordered", "pools", "serve_pools", "steal"]
