"""One vectorized pass that serves the decisions of many agents (pure numpy).

A step of an agent group cuts each agent's time into *spans* (knobs and faults
constant) and each span into *parts* (the span's decisions of one window); the
agents' sequential work is done by then (:meth:`AgentSim.spans
<swarmopt.sim.agent.AgentSim.spans>`: draws, cache and breaker lookups).
:func:`serve` gathers every part's decisions into struct-of-arrays (one row
per decision, the parameters of its agent and span repeated along), runs the
attempt model, asks each agent to queue its spans (FCFS, sequential), then
computes outcomes, costs, coordination messages and the per-task table of
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
from scipy.special import ndtr

from swarmopt.metrics import TASK_FIELDS, WindowData
from swarmopt.schema import MAX_ATTEMPTS, TIERS, Knobs
from swarmopt.sim.environment import Effects
from swarmopt.sim.service import attempts

DEGRADED_QUALITY = 0.85
_DIST = {"lognormal": 0, "exponential": 1, "deterministic": 2}
_FAST, _STRONG = TIERS.index("fast"), TIERS.index("strong")
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
    """An agent's decisions over a stretch in which knobs, autonomy and fault
    effects do not change; ``ops`` are the worker changes due at its start
    (applied by ``sim.queue`` before its decisions queue)."""

    sim: Any
    knobs: Knobs
    autonomy: float
    fx: Effects
    ops: list[tuple]
    parts: list[Part]


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
        row += [t.latency_ms_median / 1000.0, t.latency_sigma, t.hit_latency_ms / 1000.0, t.price_usd_per_call]
    row += [0.0] * (_TOOL_VALUES * (n_tools - len(p.tools)))
    row += [fx.model_latency] + [fx.tool_latency.get(t, 1.0) for t in sim.tool_names]
    row += [0.0] * (n_tools - len(p.tools))
    row += [prob for _, prob in sim.links] + [0.0] * (n_links - len(sim.links))
    return row


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
            out[expo] = -scale[expo, None] * np.log(ndtr(-z[expo]))
        if det.any():
            out[det] = np.broadcast_to(scale[det, None], (int(det.sum()), z.shape[1]))
    return out


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
            sp.sim.queue(sp, empty, empty)
        return None
    part_n = [p.hi - p.lo for _, p in parts]
    arr = _cat([p.block.arrival[p.lo:p.hi] for _, p in parts])
    z = _cat([p.block.served_z[p.lo:p.hi] for _, p in parts])
    u = _cat([p.block.served_u[p.lo:p.hi] for _, p in parts])
    prm = np.array([_span_row(sp, n_tools, n_links) for sp in spans], dtype=float)  # (spans, parameters)
    # each decision's span; a parameter equal in every span is one value for all (broadcast), the others are
    # gathered per decision and column by column (a per-decision copy of every row would be mostly unread)
    span_of = np.repeat(np.arange(len(spans)), span_n) if len(spans) > 1 else None
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
    res = attempts(model_s, tool_s, [col(_TOOLS + _TOOL_VALUES * j + 2) for j in range(n_tools)], hit, stop,
                   rejected, col(_PARALLEL) != 0, col(_TIMEOUT), col(_N_ATT).astype(np.int64))
    ok, made, degraded, calls = res["ok"], res["attempts"], res["degraded"], res["calls"]
    service = res["service"]
    hits = res["hits"] - (n_tools - col(_N_TOOLS).astype(np.int64))  # padded tools count as hits: not counted
    miss_cost = np.zeros(n)
    for j in range(n_tools):
        miss_cost = miss_cost + calls[:, j] * col(_TOOLS + _TOOL_VALUES * j + 3)  # as calls @ prices, in order

    # queueing, per agent and span in time order
    if len(spans) == 1:
        start, end = spans[0].sim.queue(spans[0], arr, service)
    else:
        start, end = np.empty(n), np.empty(n)
        lo = 0
        for sp, m in zip(spans, span_n.tolist(), strict=False):
            start[lo:lo + m], end[lo:lo + m] = sp.sim.queue(sp, arr[lo:lo + m], service[lo:lo + m])
            lo += m

    # outcome
    p_ok = np.minimum(0.99, col(_BASE_SUCCESS) * (1.0 + (quality - 1.0) * weight)
                      * np.where(degraded, DEGRADED_QUALITY, 1.0))
    u_s = u[:, 0]
    conf = np.clip(conf_mean - 0.3 * (u_s - p_ok) + 0.08 * z[:, -3], 0.01, 0.99)
    escalated = ok & ((u[:, 1] >= col(_AUTONOMY)) | (conf < col(_CONF_TH)))
    review_s = col(_REVIEW_S) * np.exp(0.5 * z[:, -2])
    finish = end + np.where(escalated, review_s, 0.0)
    success = ok & (u_s < np.where(escalated, np.maximum(p_ok, col(_REVIEW_SUCCESS)), p_ok))
    tok = np.exp(0.25 * z[:, -1] - 0.03125)
    tokens_in = np.rint(col(_PROMPT) * made * tok)
    tokens_out = np.rint(col(_OUTPUT) * made * tok)
    cost = (tokens_in * in_price + tokens_out * out_price) * col(_PRICE) / 1e6 + miss_cost

    # coordination
    coord_req = np.zeros(n)
    coord_ok = np.zeros(n)
    sent = np.zeros(n, dtype=np.int64)
    msgs = None
    if n_links:
        lat_s = col(_NET_S)
        in_time = success & (finish + lat_s - arr <= col(_DEADLINE))
        link0 = f0 + 1 + n_tools
        sends = []
        for d_ in range(n_links):
            wants = u[:, 3 + d_] < col(link0 + d_)
            coord_req += wants
            coord_ok += wants & in_time
            sent += wants & success
            sends.append(np.flatnonzero(wants & success))
        msgs = _messages(spans, span_n, sends, arr, finish + lat_s, u, prm, link0, parts)

    table = np.empty((len(TASK_FIELDS), n))
    for i, c in enumerate((arr, start, end, finish, ok, success, np.where(ok, conf, np.nan), escalated, degraded,
                           made, hits, col(_N_TOOLS), calls.sum(axis=1), tokens_in, tokens_out, cost, coord_req,
                           coord_ok, tier)):
        table[i] = c
    sent_cum = np.concatenate(([0], np.cumsum(sent))).tolist()
    lo = 0
    for (i, p), m in zip(parts, part_n, strict=False):
        p.window.add_table(table[:, lo:lo + m], spans[i].sim.slo_s, sent_cum[lo + m] - sent_cum[lo])
        lo += m
    return msgs


def _messages(spans: list[Span], span_n: np.ndarray, sends: list[np.ndarray], arr: np.ndarray, at: np.ndarray,
              u: np.ndarray, prm: np.ndarray, link0: int, parts: list[tuple[int, Part]]) -> Sent | None:
    """The messages of the decisions ``sends[d]`` (indices) on link ``d``,
    arriving at ``at``. Each agent numbers its messages on, span by span, link
    by link, in decision order; a link to several replicas picks one by the
    uniform that decided to send (given u < p, u / p is uniform on [0, 1))."""
    task = np.concatenate(sends)
    if not task.size:
        return None
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
                arr[task])
