"""The service model of one agent's decisions, vectorized with numpy (pure).

A segment of ``n`` decisions (arrival-ordered) with up to ``A`` attempts each:

* :func:`ttl_cache`: which tool lookups hit a TTL cache;
* :func:`breaker_calls`: the same plus a circuit breaker (sequential by nature);
* :func:`attempts`: per-attempt durations, failures and the retry outcome;
* :func:`fcfs`: FCFS start and end times over ``c`` workers.

Model (docs/architecture.md "One tick"): a decision looks its tools up when it
arrives. A hit answers from cache for every attempt. On a miss the tool is
called on each attempt until a call succeeds; a decision keeps a tool's
successful answer for its later attempts, and a successful call fills the cache
entry of its key until ``arrival + ttl``. An attempt fails if a tool call in it
errs or it runs past the timeout (it then costs the timeout); the next attempt
follows at once on the same worker.
"""

from __future__ import annotations

import heapq

import numpy as np

from swarmopt.sim.breaker import Breaker
from swarmopt.sim.cache import LRUCache


def ttl_cache(t: np.ndarray, keys: np.ndarray, fills: np.ndarray, ttl: float, expiry: np.ndarray) -> np.ndarray:
    """Hits of lookups at times ``t`` (n,) sorted, of ``keys`` (n,) int, in a TTL cache.

    A lookup misses when its key's entry has expired (``t >= expiry[key]``); a
    miss with ``fills[i]`` true (its fetch succeeded) sets ``expiry[key] = t + ttl``.
    ``expiry`` (keyspace,) is updated in place. Returns hits (n,) bool; with
    ``ttl <= 0`` the cache is off and every lookup misses.

    A lookup before its key's expiry at the start is a hit whatever happens
    later (a refill only comes after that expiry), so only the others are
    candidates; when no key has two candidates each is a miss (the common
    case, vectorized); otherwise the candidates are settled in time order.
    """
    n = len(t)
    if ttl <= 0.0 or n == 0:
        return np.zeros(n, dtype=bool)
    cand = np.flatnonzero(t >= expiry[keys])
    hit = np.ones(n, dtype=bool)
    hit[cand] = False
    cand_keys = keys[cand]
    if len(set(cand_keys.tolist())) == cand.size:
        filled = cand[fills[cand]]
        expiry[keys[filled]] = t[filled] + ttl
        return hit
    refilled: dict[int, float] = {}
    for i, key, ti, fill in zip(cand.tolist(), cand_keys.tolist(), t[cand].tolist(), fills[cand].tolist(),
                                strict=True):
        until = refilled.get(key)
        if until is not None and ti < until:
            hit[i] = True
        elif fill:
            refilled[key] = ti + ttl
    if refilled:
        expiry[list(refilled)] = list(refilled.values())
    return hit


def first_success(err: np.ndarray) -> np.ndarray:
    """Index of the first attempt whose call succeeds, along the last axis of
    ``err`` (..., A) bool (per decision, or per decision and tool); ``A`` when
    every call errs."""
    a = err.shape[-1]
    good = ~err
    return np.where(good.any(axis=-1), good.argmax(axis=-1), a)


def breaker_calls(t: np.ndarray, keys: np.ndarray, err: np.ndarray, ttl: float, expiry: np.ndarray,
                  breaker: Breaker, lru: LRUCache | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cache lookups and calls of one tool through a circuit breaker.

    ``t`` (n,) arrival times, ``keys`` (n,), ``err`` (n, A) per-attempt call
    errors. Calls are made at the decision's arrival time, in order; with
    ``ttl <= 0`` the cache is off (as in :func:`ttl_cache`); ``lru``, when
    given, bounds the cache (its expiry array is ``expiry``). Returns
    (hit (n,) bool, stop (n,) int: the attempt whose call succeeded or was
    rejected, ``A`` if every call erred, rejected (n,) bool). The breaker's state
    and ``expiry`` are updated in place. A per-call loop: a breaker's state
    depends on every earlier outcome.
    """
    n, a_max = err.shape
    hit = np.zeros(n, dtype=bool)
    stop = np.full(n, a_max)
    rejected = np.zeros(n, dtype=bool)
    err_l, t_l, k_l = err.tolist(), t.tolist(), keys.tolist()
    i = -1
    while i + 1 < n:
        i += 1
        if breaker.state == "open" and lru is None and t_l[i] < breaker.open_until:
            # every call until the first at or after open_until is rejected and nothing fills: one vectorized pass
            later = t[i:] >= breaker.open_until
            j = i + int(later.argmax()) if later.any() else n
            miss = t[i:j] >= expiry[keys[i:j]] if ttl > 0.0 else np.ones(j - i, dtype=bool)
            hit[i:j] = ~miss
            stop[i:j][miss] = 0
            rejected[i:j] = miss
            i = j - 1
            continue
        ti, key = t_l[i], k_l[i]
        if ttl > 0.0 and ti < expiry[key]:
            hit[i] = True
            if lru is not None:
                lru.hit(ti, key)
            continue
        for a in range(a_max):
            if breaker.state != "closed" and not breaker.allow(ti):  # a closed breaker allows every call
                stop[i], rejected[i] = a, True
                break
            bad = err_l[i][a]
            breaker.record(ti, not bad)
            if not bad:
                stop[i] = a
                if ttl > 0.0:
                    if lru is None:
                        expiry[key] = ti + ttl
                    else:
                        lru.fill(ti, key, ttl)
                break
    return hit, stop, rejected


def _per_decision(v: np.ndarray) -> np.ndarray:
    """A per-decision parameter (n,) as a column to broadcast over attempts; a scalar as is."""
    return v[:, None] if v.ndim else v


def attempts(model_s: np.ndarray, tool_s: list[np.ndarray], hit_s: list, hit: list[np.ndarray],
             stop: list[np.ndarray], rejected: list[np.ndarray], parallel, timeout_s,
             n_att: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run the attempts of ``n`` decisions.

    ``model_s`` (n, A) model-call seconds per attempt; per tool ``j``:
    ``tool_s[j]`` (n, A) call seconds, ``hit_s[j]`` cache-hit seconds,
    ``hit[j]`` (n,), ``stop[j]`` and ``rejected[j]`` (n,) from
    :func:`ttl_cache`/:func:`first_success` or :func:`breaker_calls`. Tools run
    in parallel (max) or in sequence (sum). ``hit_s[j]``, ``parallel`` and
    ``timeout_s`` are one value for all decisions or one per decision (n,)
    (decisions of several agents served together); ``n_att`` (n,) the
    attempts each decision may make (default: all ``A``).

    Returns arrays (n,): ``service`` (s, on the worker), ``ok`` (some attempt
    valid), ``attempts`` (made), ``degraded`` (a tool was skipped by an open
    breaker), ``hits`` (tools answered from cache), ``calls`` (n, tools) calls
    made per tool, ``timeouts`` (attempts made that ran into the timeout),
    ``attempt_s`` (duration of the valid attempt, s; NaN when none), ``work``
    (s: the first attempt's model call and the tools it called, their times
    summed whatever ``parallel`` is, up to ``timeout_s``; what a trace of its
    spans records, and the judge's control variate for a change of the order
    alone: :data:`swarmopt.optimizer.measure.COVARIATES`),
    ``call_errors`` (n, tools) tool calls made that failed and ``skipped``
    (n, tools): the decision went on without the tool, which an open breaker
    rejected.
    """
    n, a_max = model_s.shape
    att = np.arange(a_max)
    timeout = _per_decision(np.asarray(timeout_s))
    parallel = np.asarray(parallel)
    failed = np.zeros((n, a_max), dtype=bool)
    if n_att is None:
        n_att = a_max
    elif (n_att < a_max).any():
        failed |= att >= n_att[:, None]
    d = model_s
    if tool_s:
        tools_t = np.zeros((n, a_max))
        for j in range(len(tool_s)):
            h, s, r = hit[j][:, None], stop[j][:, None], rejected[j][:, None]
            calls = ~h & ((att < s) | ((att == s) & ~r))
            lat = np.where(h, _per_decision(np.asarray(hit_s[j])), np.where(calls, tool_s[j], 0.0))
            if parallel.all():
                tools_t = np.maximum(tools_t, lat)
            elif not parallel.any():
                tools_t = tools_t + lat
            else:
                tools_t = np.where(_per_decision(parallel), np.maximum(tools_t, lat), tools_t + lat)
            failed |= ~h & (att < s)
        d = d + tools_t
    failed |= d > timeout
    ok = ~failed.all(axis=1)
    made = np.where(ok, (~failed).argmax(axis=1) + 1, n_att)
    service = (np.minimum(d, timeout) * (att < made[:, None])).sum(axis=1)
    calls = np.zeros((n, len(tool_s)), dtype=np.int64)
    call_errors = np.zeros((n, len(tool_s)), dtype=np.int64)
    skipped = np.zeros((n, len(tool_s)), dtype=bool)
    hits = np.zeros(n, dtype=np.int64)
    for j in range(len(tool_s)):
        s, r, done = stop[j], rejected[j], stop[j] < made
        # attempts before the stop all call (and fail); the stop attempt calls unless the breaker rejected it
        erred = np.where(hit[j], 0, np.minimum(s, made))
        calls[:, j] = erred + (~hit[j] & done & ~r)
        call_errors[:, j] = erred
        skipped[:, j] = r & done & ok
        hits += hit[j]
    timeouts = ((d > timeout) & (att < made[:, None])).sum(axis=1)
    attempt_s = np.where(ok, d[np.arange(n), made - 1], np.nan)
    # a trace's view of the first attempt: its calls' times summed, whatever their order, up to the timeout
    work = np.minimum(model_s[:, 0] + sum(tool_s[j][:, 0] * (calls[:, j] > 0) for j in range(len(tool_s))), timeout_s)
    return {"service": service, "ok": ok, "attempts": made, "degraded": skipped.any(axis=1), "hits": hits,
            "calls": calls, "timeouts": timeouts, "attempt_s": attempt_s,
            "call_errors": call_errors, "skipped": skipped, "work": work}


def fcfs(arrival: np.ndarray, service: np.ndarray, workers: list[float], closed_form: bool = True
         ) -> tuple[np.ndarray, np.ndarray]:
    """FCFS over ``c = len(workers)`` workers: (start, end) arrays (n,).

    ``workers`` is a heap of the times each worker is next free; it is updated
    in place. One worker: Lindley's recursion in closed form,
    ``end_i = S_i + max(w, max_{k<=i} (a_k - S_{k-1}))`` with ``S`` the cumulative
    service, whose rounding (about 1e-12 s) depends on the batch; with
    ``closed_form=False`` it takes the step-by-step path below, exact whatever
    the batch. Several: the prefix in which no decision waits is found vectorized
    (a decision waits iff ``c`` earlier decisions or busy workers are still in
    service at its arrival); from the first wait on, a heap assigns each
    decision to the first free worker.
    """
    n = len(arrival)
    if n == 0:
        return arrival.copy(), arrival.copy()
    if len(workers) == 1 and closed_form:
        cum = np.cumsum(service)
        end = cum + np.maximum(workers[0], np.maximum.accumulate(arrival - (cum - service)))
        start = np.maximum(arrival, end - service)  # no negative wait from cumsum rounding
        end = start + service
        workers[0] = float(end[-1])
        return start, end
    c = len(workers)
    end = arrival + service
    m = _no_wait_prefix(arrival, end, workers)
    if m:
        top = np.concatenate([np.asarray(workers), end[:m]])
        workers[:] = np.sort(top)[-c:].tolist()
    if m == n:
        return arrival.copy(), end
    start = arrival[:m].tolist()
    append, heapreplace = start.append, heapq.heapreplace
    for a, s in zip(arrival[m:].tolist(), service[m:].tolist(), strict=False):
        free = workers[0]
        if a > free:  # noqa: PLR1730 - an if is cheaper than max() in this loop
            free = a
        append(free)
        heapreplace(workers, free + s)
    start = np.fromiter(start, float, n)  # faster than np.array on a list of floats, same values
    return start, start + service


def _no_wait_prefix(arrival: np.ndarray, end: np.ndarray, workers: list[float]) -> int:
    """How many decisions, from the first, start at their arrival: decision i
    waits iff ``c`` earlier decisions or busy workers are still in service at
    its arrival. Looked for in prefixes of doubling length (the first wait
    usually comes early), each cut where arrivals strictly increase so that no
    later decision can have ended by an arrival inside it."""
    n, c = len(arrival), len(workers)
    busy_workers = -np.sort(workers)[::-1]
    size = 64
    while True:
        k = n if size >= n else int(np.searchsorted(arrival, arrival[size - 1], side="right"))
        a = arrival[:k]
        busy = np.arange(k) - np.searchsorted(np.sort(end[:k]), a, side="right")
        busy += np.searchsorted(busy_workers, -a, side="left")
        waits = np.flatnonzero(busy >= c)
        if waits.size:
            return int(waits[0])
        if k == n:
            return n
        size *= 2
