"""One vectorized pass that serves the decisions of many agents (pure numpy).

A step of an agent group cuts each agent's time into *spans* (knobs and faults
constant) and each span into *parts* (the span's decisions of one window); the
agents' sequential work is done by then (:meth:`AgentSim.spans
<swarmopt.sim.agent.AgentSim.spans>`: draws, cache and breaker lookups).
:func:`serve` gathers every part's decisions into struct-of-arrays (one row
per decision, the parameters of its agent and span repeated along), runs the
attempt model, asks each agent to queue its spans (FCFS, sequential), then
computes outcomes, costs, coordination messages (routed through the
topology, :mod:`swarmopt.sim.topology`) and the per-task table of
every part in one pass; the number of numpy calls does not grow with the
number of decisions and grows with agents only through a few calls per agent
and per part.

Agents served together share a layout (``pad``: the most tools and links of
any of them); a padded tool is a cache hit of zero latency that is not
counted, a padded link is never taken. Every value is computed with the same
floating-point operations in the same order as for one agent alone, so the
results do not depend on which agents are served together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from swarmopt.metrics import PER_TOOL_FIELDS, TASK_FIELDS, WindowData, window_index
from swarmopt.schema import MAX_ATTEMPTS, ROUTED_TIERS, SHAPES, TIERS, Knobs
from swarmopt.sim.environment import Effects
from swarmopt.sim.review import HeldPass, held_mask
from swarmopt.sim.sched import steal
from swarmopt.sim.service import attempts
from swarmopt.sim.topology import RELAYED

_DIST = {"lognormal": 0, "exponential": 1, "deterministic": 2}
_FAST, _STRONG = TIERS.index(ROUTED_TIERS["simple"]), TIERS.index(ROUTED_TIERS["complex"])
# columns of the per-span parameter rows
(_SIMPLE, _COMPLEX, _TIER, _ROUTING, _WEIGHT, _N_ATT, _TIMEOUT, _PARALLEL, _DIST_COL, _BASE_SUCCESS, _AUTONOMY,
 _CONF_TH, _REVIEW_S, _REVIEW_SUCCESS, _PROMPT, _OUTPUT, _PRICE, _NET_S, _DEADLINE, _N_TOOLS) = (
    0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
_TIER_TABLE = 22                   # then quality, confidence mean, input and output price, latency scale, sigma
_TIER_VALUES = 6
_TOOLS = _TIER_TABLE + _TIER_VALUES * len(TIERS)  # then per tool: median (s), sigma, hit latency (s), price
_TOOL_VALUES = 4


def _factors(n_tools: int) -> int:
    """Column of the model's latency factor (the tools' follow), after the tools' values."""
    return _TOOLS + _TOOL_VALUES * n_tools


def _tails(n_tools: int, n_links: int) -> int:
    """Column of the model's latency-tail threshold (a standard normal; the
    tools' follow, then the model's and the tools' tail factors, then the
    tools' fallback qualities), after the links."""
    return _factors(n_tools) + 1 + n_tools + n_links


@dataclass(slots=True)
class Part:
    """A span's decisions in one window: rows ``lo:hi`` of ``block``, with the
    memory factor at the part's start and the tool lookups settled per
    (padded) tool: ``hit``, ``stop`` (attempt whose call succeeded or was
    rejected) and ``rejected``, each (tools, hi - lo)."""

    window: WindowData
    block: Any
    lo: int
    hi: int
    memory_factor: float
    hit: np.ndarray
    stop: np.ndarray
    rejected: np.ndarray


@dataclass(frozen=True, slots=True)
class Sent:
    """Messages as arrays (n,): arrival ``time`` at the receiver, ``sender`` and
    ``receiver`` (indices into the sorted ``names`` the agents share), ``seq``
    (the sender's numbering), ``resource`` and ``origin`` (arrival of the
    decision that sent it)."""

    names: list[str]
    time: np.ndarray
    sender: np.ndarray
    seq: np.ndarray
    receiver: np.ndarray
    resource: np.ndarray
    origin: np.ndarray


@dataclass(slots=True)
class Span:
    """An agent's decisions over a stretch from ``t0`` on in which knobs,
    autonomy and fault effects do not change; ``ops`` are the worker changes
    due at its start (applied by ``sim.queue`` before its decisions queue)."""

    sim: Any
    knobs: Knobs
    autonomy: float
    fx: Effects
    ops: list[tuple]
    parts: list[Part]
    t0: float = 0.0


def _span_row(sp: Span, n_tools: int, n_links: int) -> list[float]:
    """The parameters of a span's decisions (the ``_*`` columns)."""
    sim, k, fx = sp.sim, sp.knobs, sp.fx
    p = sim.profile
    mix = p.action_mix
    dist = p.latency_distribution
    row = [mix.simple, 1.0 - mix.complex, TIERS.index(k.model_tier), k.tier_routing, mix.simple_weight, 1.0,
           mix.complex_weight, k.max_retries + 1, k.timeout_s, k.parallel_tools, _DIST[dist], p.base_success,
           sp.autonomy, k.confidence_threshold, p.review_ms_median / 1000.0, p.review_success, p.prompt_tokens,
           p.output_tokens, fx.price, p.network_latency_ms / 1000.0, p.coordination_deadline_s, len(p.tools)]
    tiers = sim.tiers
    row += [t.quality for t in tiers] + [t.confidence_mean for t in tiers]
    row += [t.input_usd_per_mtok for t in tiers] + [t.output_usd_per_mtok for t in tiers]
    # the model latency's scale: the lognormal's median, else its mean (see model_latency)
    row += [t.latency_ms_median / 1000.0 if dist == "lognormal"
            else t.latency_ms_median / 1000.0 * math.exp(t.latency_sigma * t.latency_sigma / 2.0)
            for t in tiers]
    row += [t.latency_sigma for t in tiers]
    for t in p.tools:
        row += [t.latency_ms_median / 1000.0, t.latency_sigma, t.hit_latency_ms / 1000.0,
                t.price_usd_per_call * fx.tool_price.get(t.name, 1.0)]
    row += [0.0] * (_TOOL_VALUES * (n_tools - len(p.tools)))
    row += [fx.model_latency] + [fx.tool_latency.get(t, 1.0) for t in sim.tool_names]
    row += [0.0] * (n_tools - len(p.tools))
    row += [prob for _, prob in sim.links] + [0.0] * (n_links - len(sim.links))
    pad = [math.inf] * (n_tools - len(p.tools))
    tails = [fx.tail.get(name, (0.0, 1.0)) for name in [None, *sim.tool_names]]
    row += [_tail_z(share) for share, _ in tails] + pad
    row += [factor for _, factor in tails] + [1.0] * len(pad)
    row += [t.fallback_quality for t in p.tools] + [1.0] * len(pad)
    return row


def _tail_z(share: float) -> float:
    """The standard normal quantile a share ``share`` of draws lies above (inf for none)."""
    if not share:
        return math.inf
    from scipy.special import ndtri  # here: an agent-group worker imports scipy only for a latency tail

    return float(ndtri(1.0 - share))


def model_latency(z: np.ndarray, scale: np.ndarray, sigma: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Model-call latency (s) per attempt from standard normals ``z`` (n, A),
    per decision its tier's ``scale`` and ``sigma`` (n,) and latency law
    ``dist`` (n,): 0 lognormal, ``scale`` the median, scale x exp(sigma z);
    1 exponential and 2 deterministic keep the lognormal's mean, ``scale`` =
    median x exp(sigma^2 / 2): exponential by inversion of Phi(z) (1 - Phi(z)
    = Phi(-z), without rounding to 1 in the tail), deterministic that constant."""
    out = scale[:, None] * np.exp(sigma[:, None] * z)
    if dist.any():
        expo, det = dist == 1, dist == 2
        if expo.any():
            from scipy.special import ndtr  # here: an agent-group worker imports scipy only for this law

            out[expo] = -scale[expo, None] * np.log(ndtr(-z[expo]))
        if det.any():
            out[det] = np.broadcast_to(scale[det, None], (int(det.sum()), z.shape[1]))
    return out


def _split(spans: list[Span], parts: list[tuple[int, Part]], span_n: np.ndarray, rows: list[list[float]],
           n_tools: int, n_links: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per decision, whether its span's split arm serves it (:attr:`Knobs.split
    <swarmopt.schema.Knobs.split>`), and its parameter row; (None, None) when
    no span has a split. Appends a row to ``rows`` per span with one."""
    if not any(sp.knobs.split for sp in spans):
        return None, None
    row_of = np.repeat(np.arange(len(spans)), span_n)
    arm = _cat([spans[i].sim.split_arm(spans[i].knobs, p) for i, p in parts])
    for i, sp in enumerate(spans):
        if sp.knobs.split:
            rows.append(_span_row(Span(sp.sim, sp.knobs.arm(), sp.autonomy, sp.fx, sp.ops, sp.parts, sp.t0),
                                  n_tools, n_links))
            row_of[(row_of == i) & arm] = len(rows) - 1
    return arm, row_of


def _cat(arrays: list[np.ndarray], axis: int = 0) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=axis)


def serve(spans: list[Span]) -> Sent | None:
    """Serve the decisions of ``spans`` (agents in any order, each agent's spans
    in time order): attempts, FCFS queueing (``span.sim.queue``), outcome, cost
    and coordination. Appends each part's per-task table to its window and
    returns the messages sent (None if none)."""
    if not spans:
        return None
    n_tools, n_links = spans[0].sim.pad
    parts = [(i, p) for i, sp in enumerate(spans) for p in sp.parts if p.hi > p.lo]
    span_n = np.zeros(len(spans), dtype=np.int64)
    for i, p in parts:
        span_n[i] += p.hi - p.lo
    n = int(span_n.sum())
    if n == 0:
        empty = np.zeros(0)
        for sp in spans:
            sp.sim.queue(sp, empty, empty, empty, empty, np.zeros((0, n_tools)))
        return None
    part_n = [p.hi - p.lo for _, p in parts]
    arr = _cat([p.block.arrival[p.lo:p.hi] for _, p in parts])
    z = _cat([p.block.served_z[p.lo:p.hi] for _, p in parts])
    u = _cat([p.block.served_u[p.lo:p.hi] for _, p in parts])
    rows = [_span_row(sp, n_tools, n_links) for sp in spans]
    # each decision's parameter row (its span's, or its span's split arm's, appended after the spans'); a
    # parameter equal in every row is one value for all (broadcast), the others are gathered per decision and
    # column by column (a per-decision copy of every row would be mostly unread)
    arm, span_of = _split(spans, parts, span_n, rows, n_tools, n_links)
    prm = np.array(rows, dtype=float)  # (rows, parameters)
    if span_of is None and len(spans) > 1:
        span_of = np.repeat(np.arange(len(spans)), span_n)
    same = np.ones(prm.shape[1], dtype=bool) if span_of is None else (prm == prm[0]).all(axis=0)
    cols: dict[int, np.ndarray] = {}

    def col(c: int) -> np.ndarray:
        """Parameter ``c`` per decision (or one for all)."""
        v = cols.get(c)
        if v is None:
            v = cols[c] = prm[:1, c] if same[c] else prm[span_of, c]
        return v

    def block(lo: int, hi: int) -> np.ndarray:
        """Parameters ``lo:hi`` as (decisions or 1, hi - lo)."""
        return prm[:1, lo:hi] if same[lo:hi].all() else prm[span_of, lo:hi]

    # latency factors (model, then each tool): the fault's factor x the memory factor of the decision's part
    mem = [p.memory_factor for _, p in parts]
    f0 = _factors(n_tools)
    fac = block(f0, f0 + 1 + n_tools)
    if any(m != 1.0 for m in mem):
        fac = fac * (np.repeat(mem, part_n) if len(parts) > 1 else np.asarray(mem))[:, None]

    # tier and action class
    ua = u[:, 2]
    action = (ua >= col(_SIMPLE)).astype(np.int64) + (ua >= col(_COMPLEX))
    tier = np.broadcast_to(col(_TIER).astype(np.int64), (n,))
    routing = col(_ROUTING) != 0
    if routing.any():
        routed = np.where(action == 0, _FAST, np.where(action == 2, _STRONG, tier))
        tier = np.where(routing, routed, tier)
    if same[_TIER_TABLE:_TOOLS].all():
        tv = prm[0, _TIER_TABLE:_TOOLS].reshape(_TIER_VALUES, len(TIERS))[:, tier]
    else:
        tv = prm[span_of[:, None], _TIER_TABLE + len(TIERS) * np.arange(_TIER_VALUES) + tier[:, None]].T
    weight = prm[0, _WEIGHT:_WEIGHT + 3][action] if same[_WEIGHT:_WEIGHT + 3].all() else (
        prm[span_of, _WEIGHT + action])
    quality, conf_mean, in_price, out_price, scale, sigma = tv

    # attempts: the first ``na`` draws of each, na = the most any span makes
    na = max(sp.knobs.max_retries for sp in spans) + 1
    model_s = model_latency(z[:, :na], scale, sigma, np.broadcast_to(col(_DIST_COL), (n,))) * fac[:, :1]
    no_lookups = np.zeros((n_tools, n), dtype=bool)
    hit, stop, rejected = (_cat([getattr(p, f) for _, p in parts], axis=1) for f in ("hit", "stop", "rejected")
                           ) if n_tools else (no_lookups, no_lookups, no_lookups)
    tool_s = []
    for j in range(n_tools):
        c0, z0 = _TOOLS + _TOOL_VALUES * j, MAX_ATTEMPTS * (1 + j)
        tool_s.append(col(c0)[:, None] * np.exp(col(c0 + 1)[:, None] * z[:, z0:z0 + na]) * fac[:, 1 + j:2 + j])
    t0 = _tails(n_tools, n_links)
    if (prm[:, t0 + 1 + n_tools:t0 + 2 * (1 + n_tools)] != 1.0).any():
        # latency tails: the calls whose own draw is in the tail take longer (no new random number)
        for j, lat in enumerate([model_s, *tool_s]):
            z0 = MAX_ATTEMPTS * j
            lat *= np.where(z[:, z0:z0 + na] > col(t0 + j)[:, None], col(t0 + 1 + n_tools + j)[:, None], 1.0)
    res = attempts(model_s, tool_s, [col(_TOOLS + _TOOL_VALUES * j + 2) for j in range(n_tools)], hit, stop,
                   rejected, col(_PARALLEL) != 0, col(_TIMEOUT), col(_N_ATT).astype(np.int64))
    ok, made, degraded, calls = res["ok"], res["attempts"], res["degraded"], res["calls"]
    service = res["service"]
    hits = res["hits"] - (n_tools - col(_N_TOOLS).astype(np.int64))  # padded tools count as hits: not counted
    miss_cost = np.zeros(n)
    per_tool = np.empty((len(PER_TOOL_FIELDS), n_tools, n))
    per_tool[1], per_tool[2] = calls.T, res["call_errors"].T
    for j in range(n_tools):
        per_tool[0, j] = calls[:, j] * col(_TOOLS + _TOOL_VALUES * j + 3)
        miss_cost = miss_cost + per_tool[0, j]  # as calls @ prices, in order

    tok = np.exp(0.25 * z[:, -1] - 0.03125)
    tokens_in = np.rint(col(_PROMPT) * made * tok)
    tokens_out = np.rint(col(_OUTPUT) * made * tok)
    tokens = tokens_in + tokens_out

    # rate limits and queueing, per agent and span in time order (sim/ratelimit.py, service.fcfs)
    ready, token_held, stolen = arr, None, 0.0
    if len(spans) == 1:
        start, end, admitted = spans[0].sim.queue(spans[0], arr, service, tier, tokens, calls, action)
        if admitted is not None:
            ready, token_held = admitted
    else:
        start, end = np.empty(n), np.empty(n)
        bounds = np.concatenate(([0], np.cumsum(span_n))).tolist()
        joint = _stealing(spans)
        queued = set().union(*joint)
        for i, sp in enumerate(spans):
            lo, hi = bounds[i], bounds[i + 1]
            if i in queued:
                admitted = sp.sim.admit(sp, arr[lo:hi], tier[lo:hi], tokens[lo:hi], calls[lo:hi])
            else:
                start[lo:hi], end[lo:hi], admitted = sp.sim.queue(sp, arr[lo:hi], service[lo:hi], tier[lo:hi],
                                                                  tokens[lo:hi], calls[lo:hi], action[lo:hi])
            if admitted is not None:
                if token_held is None:
                    ready, token_held = arr.copy(), np.zeros(n, dtype=bool)
                ready[lo:hi], token_held[lo:hi] = admitted
        if joint:
            stolen = np.zeros(n)
            for group in joint:
                _steal(spans, group, bounds, arr, ready, service, start, end, stolen)

    # outcome
    fallback = np.ones(n)
    if degraded.any():  # a decision that went on without tools has the lowest fallback quality among them
        q0 = t0 + 2 * (1 + n_tools)
        for j in range(n_tools):
            fallback = np.where(res["skipped"][:, j], np.minimum(fallback, col(q0 + j)), fallback)
    p_ok = np.minimum(0.99, col(_BASE_SUCCESS) * (1.0 + (quality - 1.0) * weight) * fallback)
    u_s = u[:, 0]
    conf = np.clip(conf_mean - 0.3 * (u_s - p_ok) + 0.08 * z[:, -3], 0.01, 0.99)
    escalated = ok & ((u[:, 1] >= col(_AUTONOMY)) | (conf < col(_CONF_TH)))
    review_s = col(_REVIEW_S) * np.exp(0.5 * z[:, -2])
    finish = end + np.where(escalated, review_s, 0.0)
    # decisions reviewed by the scenario's reviewer finish when its answer is back (sim.review); their
    # coordination messages leave when the worker is done
    reviewed = held_mask(spans, span_n, escalated)
    done = finish if reviewed is None else np.where(reviewed, end, finish)
    success = ok & (u_s < np.where(escalated, np.maximum(p_ok, col(_REVIEW_SUCCESS)), p_ok))
    model_cost = (tokens_in * in_price + tokens_out * out_price) * col(_PRICE) / 1e6
    cost = model_cost + miss_cost

    # coordination
    coord_req = np.zeros(n)
    coord_ok = np.zeros(n)
    sent = np.zeros(n, dtype=np.int64)
    msgs, delays = None, None
    if n_links:
        lat_s = col(_NET_S)
        in_time = success & (finish + lat_s - arr <= col(_DEADLINE))
        link0 = f0 + 1 + n_tools
        sends = []
        routed = any(sp.knobs.topology != "mesh" for sp in spans)
        for d_ in range(n_links):
            wants = u[:, 3 + d_] < col(link0 + d_)
            coord_req += wants
            if not routed:
                coord_ok += wants & in_time
            sent += wants & success
            sends.append(np.flatnonzero(wants & success))
        msgs, task = _messages(spans, span_n, sends, arr, done + lat_s, u, prm, link0, parts)
        if routed and msgs is not None:
            msgs = _route(spans, span_n, msgs, task)
            # a request is met in time when its message reaches the receiver within the deadline
            deadline = col(_DEADLINE)  # per decision, or one for all
            coord_ok += np.bincount(task, weights=msgs.time[:task.size] - arr[task] <= deadline[
                task if deadline.size > 1 else 0], minlength=n)
        if reviewed is not None and msgs is not None:
            # each message's delivery time after its sender's worker was done (a reviewed decision's requests
            # are met in time or not once its answer is back)
            order = np.argsort(task, kind="stable")  # by decision: each agent's hold finds its slice by bisection
            delays = (task[order], (msgs.time[:task.size] - done[task])[order])

    # priority class (0 most urgent) of each decision, from its agent's action mix
    classes = [sp.sim.profile.action_mix.priority_classes() for sp in spans]
    priority = 0.0
    if any(any(c) for c in classes):
        priority = (np.repeat(np.array(classes), span_n, axis=0) if len(spans) > 1 else np.array(classes))[
            np.arange(n) if len(spans) > 1 else 0, action]
    table = np.empty((len(TASK_FIELDS), n))
    timeouts = res["timeouts"]
    for i, c in enumerate((arr, start, end, finish, ok, success, np.where(ok, conf, np.nan), escalated, degraded,
                           made, hits, col(_N_TOOLS), calls.sum(axis=1), tokens_in, tokens_out, cost, coord_req,
                           coord_ok, tier, ready, 0.0 if token_held is None else token_held, priority, timeouts,
                           timeouts * col(_TIMEOUT), res["attempt_s"], per_tool[2].sum(axis=0), model_cost, 0.0,
                           stolen, 0.0 if arm is None else arm, res["work"])):
        table[i] = c
    sent_cum = np.concatenate(([0], np.cumsum(sent))).tolist()
    # cache hits per (padded) tool and part, for the per-tool hit ratios
    tool_hits = np.add.reduceat(hit, np.cumsum([0] + part_n[:-1]), axis=1, dtype=np.int64).T if n_tools else (
        np.zeros((len(parts), 0), dtype=np.int64))
    # seconds of worker time each tool's calls hold, per tool and decision (sim/sched.py's bulkheads answer a tool
    # holding most), summed per window when it closes
    if n_tools:
        att = np.arange(na)
        timeout = col(_TIMEOUT)[:, None]  # per decision, or one for all
        tool_held = np.stack([(np.minimum(tool_s[j], timeout) * (att < calls[:, j:j + 1])).sum(axis=1)
                              for j in range(n_tools)])
    else:
        tool_held = np.zeros((0, n))
    bounds = np.cumsum([0] + part_n).tolist()
    kept_at, held = bounds, None
    if reviewed is not None and reviewed.any():
        # split every part into its decisions that finish now and those held for review, in one pass
        kept_at = np.concatenate(([0], np.cumsum(~reviewed)))[bounds].tolist()
        held = HeldPass.split(table, per_tool, reviewed, z[:, -2], delays)
        table, per_tool = table[:, ~reviewed], per_tool[:, :, ~reviewed]
    for k, ((i, p), m, h) in enumerate(zip(parts, part_n, tool_hits, strict=False)):
        if held is not None:
            held.hand_over(spans[i].sim.awaiting, bounds[k], bounds[k + 1])
        a, b = kept_at[k], kept_at[k + 1]
        p.window.add_table(table[:, a:b], spans[i].sim.slo_s, sent_cum[bounds[k + 1]] - sent_cum[bounds[k]], h,
                           tool_held[:, bounds[k]:bounds[k + 1]], per_tool[:, :, a:b], m)
    window_s = spans[0].sim.window_s
    start_k, end_k = window_index(start, window_s), window_index(end, window_s)
    lo = 0
    for sp, m in zip(spans, span_n.tolist(), strict=True):
        if m:
            sp.sim.count_service(start_k[lo:lo + m], end_k[lo:lo + m])
            lo += m
    return msgs


def _stealing(spans: list[Span]) -> list[list[int]]:
    """The spans whose decisions queue with work stealing, one list per
    population: the spans of every replica that takes part for the whole step
    (:meth:`AgentSim.steals <swarmopt.sim.agent.AgentSim.steals>`), when two
    or more do and one of their spans has ``work_stealing`` on."""
    by_population: dict[str, list[int]] = {}
    for i, sp in enumerate(spans):
        if sp.sim.profile.population is not None:
            by_population.setdefault(sp.sim.profile.population, []).append(i)
    groups = []
    for idx in by_population.values():
        if not any(spans[i].knobs.work_stealing for i in idx):
            continue  # the common case: nobody shares, so nobody's spans are looked at further
        out = {spans[i].sim.id for i in idx if not spans[i].sim.steals(spans[i])}
        idx = [i for i in idx if spans[i].sim.id not in out]
        if len({spans[i].sim.id for i in idx}) > 1 and any(spans[i].knobs.work_stealing for i in idx):
            groups.append(idx)
    return groups


def _steal(spans: list[Span], group: list[int], bounds: list[int], arr: np.ndarray, ready: np.ndarray,
           service: np.ndarray, start: np.ndarray, end: np.ndarray, stolen: np.ndarray) -> None:
    """Queue the decisions of the spans ``group`` (one population) with work
    stealing (:func:`~swarmopt.sim.sched.steal`); fills ``start``, ``end`` and
    ``stolen`` (1 where another replica's worker served) in place, and moves
    the worker time of a stolen decision to its thief's window (``lent_s``)."""
    sims = list(dict.fromkeys(spans[i].sim for i in group))  # each replica once, in span order
    rank = {sim: r for r, sim in enumerate(sims)}
    sizes = [bounds[i + 1] - bounds[i] for i in group]
    idx = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in group])
    owner = np.repeat([rank[spans[i].sim] for i in group], sizes)
    share = np.repeat([spans[i].knobs.work_stealing for i in group], sizes)
    ops = [(spans[i].t0, rank[spans[i].sim], spans[i].ops) for i in group if spans[i].ops]
    s, server = steal(ready[idx], service[idx], owner, share, sims, ops)
    away = server != owner
    start[idx], end[idx], stolen[idx] = s, s + service[idx], away
    moved = np.flatnonzero(away)
    # worker time moves with the decision: the thief's workers were busy, the owner's were not
    for r_from, r_to, t, secs in zip(owner[moved].tolist(), server[moved].tolist(), arr[idx[moved]].tolist(),
                                     service[idx[moved]].tolist(), strict=True):
        sims[r_from].window_at(t).lent_s -= secs
        sims[r_to].window_at(t).lent_s += secs


def _messages(spans: list[Span], span_n: np.ndarray, sends: list[np.ndarray], arr: np.ndarray, at: np.ndarray,
              u: np.ndarray, prm: np.ndarray, link0: int, parts: list[tuple[int, Part]]
              ) -> tuple[Sent | None, np.ndarray]:
    """The messages of the decisions ``sends[d]`` (indices) on link ``d``,
    arriving at ``at``. Each agent numbers its messages on, span by span, link
    by link, in decision order; a link to several replicas picks one by the
    uniform that decided to send (given u < p, u / p is uniform on [0, 1)).
    Also returns the sending decision of each message."""
    task = np.concatenate(sends)
    if not task.size:
        return None, task
    link = np.repeat(np.arange(len(sends)), [s.size for s in sends])
    span_of = np.repeat(np.arange(len(spans)), span_n)[task]
    order = np.lexsort((task, link, span_of))
    task, link, span_of = task[order], link[order], span_of[order]
    per_span = np.bincount(span_of, minlength=len(spans)).tolist()
    first = np.concatenate(([0], np.cumsum(per_span)[:-1]))
    base = []
    for sp, k in zip(spans, per_span, strict=True):
        base.append(sp.sim.seq)
        sp.sim.seq += k
    seq = (np.asarray(base, dtype=np.int64) - first)[span_of] + np.arange(task.size)
    table = spans[0].sim.link_table
    slot = np.array([sp.sim.slot for sp in spans], dtype=np.int64)[span_of]
    reps = table.count[slot, link]
    prob = prm[span_of, link0 + link]  # ``prm``: one row per span
    pick = np.minimum((u[task, 3 + link] / prob * reps).astype(np.int64), reps - 1)
    resource = _cat([p.block.resource[p.lo:p.hi] for _, p in parts])[task, link]
    sender = np.array([sp.sim.rank for sp in spans], dtype=np.int64)[span_of]
    return Sent(spans[0].sim.names, at[task], sender, seq, table.ranks[table.offset[slot, link] + pick], resource,
                arr[task]), task


def _route(spans: list[Span], span_n: np.ndarray, sent: Sent, task: np.ndarray) -> Sent:
    """``sent`` routed through the topology of each sender's span
    (:meth:`Routes.route <swarmopt.sim.topology.Routes.route>`): the messages
    (first, in order, at their arrival at the receiver), then each relayed
    copy (to its relay, resource :data:`~swarmopt.sim.topology.RELAYED`)."""
    routes = spans[0].sim.routes
    if routes is None:
        raise ValueError(f"agent {spans[0].sim.id}: a topology other than mesh needs the scenario's routes")
    shape = np.array([SHAPES.index(sp.knobs.topology) for sp in spans], dtype=np.int64)
    span_of = np.repeat(np.arange(len(spans)), span_n)[task]
    final, idx, relay, t = routes.route(shape[span_of], sent.sender, sent.receiver, sent.time)
    return Sent(sent.names, np.concatenate((final, t)), np.concatenate((sent.sender, sent.sender[idx])),
                np.concatenate((sent.seq, sent.seq[idx])), np.concatenate((sent.receiver, relay)),
                np.concatenate((sent.resource, np.full(idx.size, RELAYED, dtype=sent.resource.dtype))),
                np.concatenate((sent.origin, sent.origin[idx])))
