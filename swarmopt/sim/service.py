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


def ttl_cache(t: np.ndarray, keys: np.ndarray, fills: np.ndarray, ttl: float, expiry: np.ndarray) -> np.ndarray:
    """Hits of lookups at times ``t`` (n,) sorted, of ``keys`` (n,) int, in a TTL cache.

    A lookup misses when its key's entry has expired (``t >= expiry[key]``); a
    miss with ``fills[i]`` true (its fetch succeeded) sets ``expiry[key] = t + ttl``.
    ``expiry`` (keyspace,) is updated in place. Returns hits (n,) bool; with
    ``ttl <= 0`` the cache is off and every lookup misses.

    Vectorized by rounds: each round settles, for every key at once, the lookups
    up to that key's next miss, so rounds = the most misses of one key in the
    segment (a handful when ``ttl`` is not tiny against the segment).
    """
    n = len(t)
    hit = np.zeros(n, dtype=bool)
    if ttl <= 0.0 or n == 0:
        return hit
    idx = np.arange(n)
    while idx.size:
        k = keys[idx]
        cand = idx[t[idx] >= expiry[k]]
        cand_keys = keys[cand]
        if len(set(cand_keys.tolist())) == cand.size:  # one miss per key (the common case): settled in one pass
            hit[idx] = True
            hit[cand] = False
            filled = cand[fills[cand]]
            expiry[keys[filled]] = t[filled] + ttl
            break
        first_keys, first_pos = np.unique(cand_keys, return_index=True)
        miss = cand[first_pos]
        limit = np.full(expiry.shape[0], n)
        limit[first_keys] = miss
        lim = limit[k]
        settled = idx <= lim
        hit[idx[idx < lim]] = True
        filled = miss[fills[miss]]
        expiry[keys[filled]] = t[filled] + ttl
        idx = idx[~settled]
    return hit


def first_success(err: np.ndarray) -> np.ndarray:
    """Index of the first attempt whose call succeeds, per row of ``err`` (n, A)
    bool; ``A`` when every call errs."""
    a = err.shape[1]
    good = ~err
    return np.where(good.any(axis=1), good.argmax(axis=1), a)


def breaker_calls(t: np.ndarray, keys: np.ndarray, err: np.ndarray, ttl: float, expiry: np.ndarray,
                  breaker: Breaker) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cache lookups and calls of one tool through a circuit breaker.

    ``t`` (n,) arrival times, ``keys`` (n,), ``err`` (n, A) per-attempt call
    errors. Calls are made at the decision's arrival time, in order; with
    ``ttl <= 0`` the cache is off (as in :func:`ttl_cache`). Returns
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
    for i in range(n):
        ti, key = t_l[i], k_l[i]
        if ttl > 0.0 and ti < expiry[key]:
            hit[i] = True
            continue
        for a in range(a_max):
            if not breaker.allow(ti):
                stop[i], rejected[i] = a, True
                break
            bad = err_l[i][a]
            breaker.record(ti, not bad)
            if not bad:
                stop[i] = a
                if ttl > 0.0:
                    expiry[key] = ti + ttl
                break
    return hit, stop, rejected


def attempts(model_s: np.ndarray, tool_s: list[np.ndarray], hit_s: list[float], hit: list[np.ndarray],
             stop: list[np.ndarray], rejected: list[np.ndarray], parallel: bool,
             timeout_s: float) -> dict[str, np.ndarray]:
    """Run the attempts of ``n`` decisions.

    ``model_s`` (n, A) model-call seconds per attempt; per tool ``j``:
    ``tool_s[j]`` (n, A) call seconds, ``hit_s[j]`` cache-hit seconds,
    ``hit[j]`` (n,), ``stop[j]`` and ``rejected[j]`` (n,) from
    :func:`ttl_cache`/:func:`first_success` or :func:`breaker_calls`. Tools run
    in parallel (max) or in sequence (sum).

    Returns arrays (n,): ``service`` (s, on the worker), ``ok`` (some attempt
    valid), ``attempts`` (made), ``degraded`` (a tool was skipped by an open
    breaker), ``hits`` (tools answered from cache), ``calls`` (n, tools) calls
    made per tool.
    """
    n, a_max = model_s.shape
    att = np.arange(a_max)
    tools_t = np.zeros((n, a_max))
    failed = np.zeros((n, a_max), dtype=bool)
    for j in range(len(tool_s)):
        h, s, r = hit[j][:, None], stop[j][:, None], rejected[j][:, None]
        calls = ~h & ((att < s) | ((att == s) & ~r))
        lat = np.where(h, hit_s[j], np.where(calls, tool_s[j], 0.0))
        tools_t = np.maximum(tools_t, lat) if parallel else tools_t + lat
        failed |= ~h & (att < s)
    d = model_s + tools_t
    failed |= d > timeout_s
    ok = ~failed.all(axis=1)
    made = np.where(ok, (~failed).argmax(axis=1) + 1, a_max)
    service = (np.minimum(d, timeout_s) * (att < made[:, None])).sum(axis=1)
    calls = np.zeros((n, len(tool_s)), dtype=np.int64)
    degraded = np.zeros(n, dtype=bool)
    hits = np.zeros(n, dtype=np.int64)
    for j in range(len(tool_s)):
        s, r, done = stop[j], rejected[j], stop[j] < made
        # attempts before the stop all call; the stop attempt calls unless the breaker rejected it
        calls[:, j] = np.where(hit[j], 0, np.minimum(s, made) + (done & ~r))
        degraded |= r & done
        hits += hit[j]
    return {"service": service, "ok": ok, "attempts": made, "degraded": degraded & ok, "hits": hits, "calls": calls}


def fcfs(arrival: np.ndarray, service: np.ndarray, workers: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """FCFS over ``c = len(workers)`` workers: (start, end) arrays (n,).

    ``workers`` is a heap of the times each worker is next free; it is updated
    in place. One worker: Lindley's recursion in closed form,
    ``end_i = S_i + max(w, max_{k<=i} (a_k - S_{k-1}))`` with ``S`` the cumulative
    service. Several: the prefix in which no decision waits is found vectorized
    (a decision waits iff ``c`` earlier decisions or busy workers are still in
    service at its arrival); from the first wait on, a heap assigns each
    decision to the first free worker.
    """
    n = len(arrival)
    if n == 0:
        return arrival.copy(), arrival.copy()
    if len(workers) == 1:
        cum = np.cumsum(service)
        end = cum + np.maximum(workers[0], np.maximum.accumulate(arrival - (cum - service)))
        start = np.maximum(arrival, end - service)  # no negative wait from cumsum rounding
        end = start + service
        workers[0] = float(end[-1])
        return start, end
    c = len(workers)
    end = arrival + service
    busy_before = np.arange(n) - np.searchsorted(np.sort(end), arrival, side="right")
    busy_before += np.searchsorted(-np.sort(workers)[::-1], -arrival, side="left")
    waits = np.flatnonzero(busy_before >= c)
    m = int(waits[0]) if waits.size else n
    start = arrival.copy()
    if m:
        top = np.concatenate([np.asarray(workers), end[:m]])
        workers[:] = np.sort(top)[-c:].tolist()
    if m < n:
        st_l, a_l, s_l = start.tolist(), arrival.tolist(), service.tolist()
        heapreplace = heapq.heapreplace
        for i in range(m, n):
            free = workers[0]
            s = a_l[i] if a_l[i] > free else free
            st_l[i] = s
            heapreplace(workers, s + s_l[i])
        start = np.asarray(st_l)
        end = start + service
    return start, end
