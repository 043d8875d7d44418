"""One agent's workload and queueing model (pure numpy + Python, no Ray).

Per decision (task), following the product's design (docs/architecture.md):

* arrivals: Poisson with rate ``base_rate_per_s x load shape x load surges``,
  generated per window-long block by thinning;
* queueing: FCFS over ``max_concurrency`` workers (start = max(arrival, first
  free worker));
* service, per attempt: a model call (lognormal by tier, or exponential or
  deterministic per ``latency_distribution``) plus the decision's tools (a cache
  hit if the Zipf-drawn key was fetched within ``cache_ttl_s`` before the
  decision arrived, else the tool's latency, price and error probability; run in
  parallel (max) or in sequence (sum)); an attempt longer than ``timeout_s``
  fails at ``timeout_s``; a failed attempt is retried up to ``max_retries``
  times on the same worker (:mod:`swarmopt.sim.service`);
* tier: the ``model_tier`` knob, or with ``tier_routing`` the source's rule per
  action class (simple -> fast, complex -> strong);
* outcome: a decision with a valid attempt is right with probability
  ``base_success x quality``, where the tier's quality gap to ``standard`` is
  weighted by the action class (:class:`~swarmopt.schema.ActionMix`), x the
  tool's ``fallback_quality`` (default 0.85) when an open circuit breaker
  skipped a tool (the lowest of them when it skipped several); its
  confidence falls with its latent error; it escalates to review with
  probability ``1 - autonomy`` or when confidence < ``confidence_threshold``
  (review takes time off the worker, in the reviewer's queue,
  :mod:`swarmopt.sim.review`, and succeeds with ``review_success``);
* cost: tokens x the model price table plus the price of each tool miss;
* coordination: a decision sends a message to each downstream agent with the
  link's probability; the request is met in time if the decision succeeded and
  its message arrives within ``coordination_deadline_s`` of the decision's
  arrival, routed through the relays of the ``topology`` knob's shape
  (:mod:`swarmopt.sim.topology`). Inbound messages are served by the
  :class:`~swarmopt.sim.inbox.Inbox`.

Every random number a task needs is drawn when its window-long block of
arrivals is generated, from the agent's own stream, in a fixed layout that does
not depend on the knobs. So the same seed gives the same tasks whatever the
optimizer does (common random numbers), and results do not depend on how the
run is cut into ticks: the engine only needs changes to be announced before
the simulation reaches their time.

The work is split by what state forces: :class:`AgentSim` holds one agent's
state and does what is sequential per agent (knob changes, the draws of its
blocks, cache and breaker lookups, the FCFS queue after the first wait);
:func:`step_agents` steps any number of agents at once and serves all their
decisions in one vectorized pass (:mod:`swarmopt.sim.serve`), so the cost of a
step is a fixed number of numpy calls plus a little Python per agent-window.
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_left
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from swarmopt.knobs import ScheduledChange, set_knob
from swarmopt.metrics import COLUMN, WindowData, window_index, window_metrics
from swarmopt.schema import ACTIONS, MAX_ATTEMPTS, TIERS, AgentProfile, LoadSurgeFault, MemoryLeakFault, ModelTier
from swarmopt.sim.breaker import Breaker
from swarmopt.sim.cache import LRUCache, invalidate, pattern_keys
from swarmopt.sim.environment import Environment
from swarmopt.sim.inbox import STORM, Inbox, Message
from swarmopt.sim.ratelimit import Limiter
from swarmopt.sim.review import Awaiting, Desk, ReviewReply, ReviewRequest, is_review
from swarmopt.sim.sched import ordered, pools, serve_pools
from swarmopt.sim.serve import Part, Sent, Span, serve
from swarmopt.sim.service import breaker_calls, fcfs, first_success, ttl_cache
from swarmopt.sim.topology import Routes

_GRID = np.linspace(0.0, 1.0, 65)  # where a block's peak arrival rate is looked for
CACHE_ENTRY_KB = 64.0
_NO_KEYS = np.zeros((0, 0), dtype=np.int64)
_NO_LOOKUPS = (np.zeros((0, 0), dtype=bool), np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=bool))


@dataclass(slots=True)
class Block:
    """Tasks arriving in [start, end) and their random draws (fixed layout).

    ``u`` (n, tools x (1 + MAX_ATTEMPTS) + 3 + links) uniforms: tool keys, tool
    errors, success, escalation, action class, links; ``z`` (n, MAX_ATTEMPTS x
    (1 + tools) + 3) standard normals: model and tool latencies, confidence,
    review time, tokens. ``served_z`` and ``served_u`` are the columns the
    vectorized pass reads, in the group's layout (:class:`AgentSim` ``pad``):
    ``z`` with the tool latencies padded with zeros to the group's tool count,
    and the uniforms from success on with links padded with ones.
    """

    start: float
    end: float
    arrival: np.ndarray          # (n,) seconds, sorted
    u: np.ndarray
    z: np.ndarray
    keys: np.ndarray             # (n_tools, n) int key index
    resource: np.ndarray         # (n, pad links) int
    served_z: np.ndarray
    served_u: np.ndarray

    def u_err(self, tool: int, n_tools: int) -> np.ndarray:
        """(n, MAX_ATTEMPTS) uniforms of the tool's call errors per attempt."""
        return self.u[:, n_tools + tool * MAX_ATTEMPTS:n_tools + (tool + 1) * MAX_ATTEMPTS]


def zipf_cdf(n_keys: int, s: float) -> np.ndarray:
    """Cumulative distribution of a Zipf law p_k ~ k^-s over keys 0..n_keys-1."""
    w = np.arange(1, n_keys + 1, dtype=float) ** -s
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


@dataclass(frozen=True)
class LinkTable:
    """Where the downstream links of agents stepped together lead: ``ranks``
    holds the receivers' ranks in the shared sorted ``names``, every agent's
    links one after the other; agent ``slot``'s link ``d`` (up to the group's
    padded number of links) has ``count[slot, d]`` receivers from
    ``offset[slot, d]`` on (a padded link one, never used)."""

    ranks: np.ndarray
    offset: np.ndarray
    count: np.ndarray

    @staticmethod
    def of(sims: list[AgentSim], names: list[str], n_links: int) -> LinkTable:
        """The table of ``sims`` (agent ``i`` in slot ``i``), links padded to ``n_links``."""
        rank = {s: i for i, s in enumerate(names)}
        ranks: list[int] = []
        offset = np.zeros((len(sims), n_links), dtype=np.int64)
        count = np.ones((len(sims), n_links), dtype=np.int64)
        for i, sim in enumerate(sims):
            for d, (receivers, _) in enumerate(sim.links):
                offset[i, d], count[i, d] = len(ranks), len(receivers)
                ranks += [rank[r] for r in receivers]
        return LinkTable(np.array(ranks, dtype=np.int64), offset, count)


class AgentSim:
    """The workload + queueing model of one agent.

    ``profile`` gives the workload; ``models`` the tier table; ``env`` the load
    shape and faults aimed at this agent; ``seed`` its own ``SeedSequence``;
    ``window_s`` the metric window; ``pad`` the (tools, links) of the group's
    layout (at least the agent's own; default exactly those); ``names`` the
    sorted names of every agent that may send it a message and
    :data:`~swarmopt.sim.inbox.STORM` (one list shared by a group; default
    its own name and STORM); ``routes`` the scenario's message routes over
    ``names`` (:mod:`swarmopt.sim.topology`; None: only ``mesh``); ``reviewers``
    the sorted ids of the scenario's reviewers (:mod:`swarmopt.sim.review`;
    none: a review is a fixed delay). Drive it with :meth:`step`, or several
    agents at once with :func:`step_agents`.
    """

    def __init__(self, profile: AgentProfile, models: dict[str, ModelTier], env: Environment,
                 seed: np.random.SeedSequence, window_s: float, slo_ms: float = 2000.0,
                 pad: tuple[int, int] | None = None, names: list[str] | None = None,
                 routes: Routes | None = None, reviewers: list[str] | None = None) -> None:
        self.profile = profile
        self.id = profile.id
        self.models = models
        self.env = env
        self.window_s = window_s
        self.slo_s = slo_ms / 1000.0
        self.reseed(seed)
        self.knobs = profile.knobs
        self.autonomy = profile.autonomy
        self.workers: list[float] = [0.0] * self.knobs.max_concurrency
        self.pools: dict[str, list[float]] = {}  # bulkhead pools by tool (sim/sched.py), out of the workers
        tools = profile.tools
        self.tool_names = [t.name for t in tools]
        own = (len(tools), len(profile.downstream))
        self.pad = own if pad is None else (max(own[0], pad[0]), max(own[1], pad[1]))
        self.zipf = [zipf_cdf(t.keyspace, t.zipf_s) for t in tools]
        self.cache_exp = [np.full(t.keyspace, -1.0) for t in tools]
        self.cache_capacity = sum(t.keyspace for t in tools)
        self.lru: list[LRUCache | None] = [None] * len(tools)  # the size-bounded caches' recency
        self.limiter = Limiter(len(tools))
        self.breakers = [Breaker(self.knobs.circuit_breaker) for _ in tools]
        self.tiers = [models[name] for name in TIERS]
        self.links = [(link.receivers, link.probability) for link in profile.downstream]
        self.names = names if names is not None else sorted(
            {profile.id, STORM}.union(*(receivers for receivers, _ in self.links)))
        self.rank = self.names.index(profile.id)
        self.routes = routes
        self.link_table, self.slot = LinkTable.of([self], self.names, self.pad[1]), 0
        self.inbox = Inbox(profile.message_overhead_ms, profile.message_cost_ms,
                           profile.conflict_resolution_ms, profile.batch_max_wait_s,
                           profile.inbox_deadline_s, self.names)
        # the inbox is served lazily, up to the next step's start, under the batch size and shedding in force
        self.inbox_batch = self.knobs.message_batch_size
        self.inbox_shed = self.knobs.shed_expired
        self.inbox_changes: list[tuple[float, int, bool]] = []  # (time, batch size, shed) from then on
        lat_s = profile.network_latency_ms / 1000.0
        self.awaiting = Awaiting(self.id, reviewers, lat_s, profile.coordination_deadline_s,
                                 env.horizon_s, self.names.index(self.id)) if reviewers else None
        self.desk = Desk(self.id, profile.review, lat_s, env.horizon_s) if profile.review is not None else None
        self.review_out: list[ReviewReply] = []
        self.pending: list[tuple[float, int, ScheduledChange]] = []
        self._pending_seq = 0
        self.seq = 0
        self.storm_seq = 0
        self.block: Block | None = None
        self.block_pos = 0
        self.windows: dict[int, WindowData] = {}
        self.window_end_state: dict[int, dict] = {}
        self.next_window = 0
        # decisions a worker took (started) and let go (ended) per window index, and those waiting at the end of
        # the last closed window: a window's throughput and queue length (metrics.window_rows)
        self.started: dict[int, int] = {}
        self.ended: dict[int, int] = {}
        self.queued = 0
        self.applied: list[dict] = []
        self._faults_changed()

    def _faults_changed(self) -> None:
        env = self.env
        self.crashes = env.crashes()
        self.fault_points = env.breakpoints()
        self.constant_rate = env.load.kind == "constant" and not any(isinstance(f, LoadSurgeFault)
                                                                     for f in env.faults)
        self.storms = bool(env.storm_rate(-math.inf, math.inf))
        self.leaks = any(isinstance(f, MemoryLeakFault) for f in env.faults)
        self.invalidations = env.invalidations()
        self.next_invalidation = 0

    # ------------------------------------------------------------------ driving
    def step(self, t0: float, t1: float, inbound: list[Message],
             changes: list[ScheduledChange]) -> tuple[list[Message], list[WindowData], list[dict]]:
        """Advance over ``[t0, t1)``.

        First takes ``inbound`` messages and ``changes`` (each effective at its
        ``at_s`` >= t0), serves the inbox up to ``t0`` and closes every window
        that ends at or before ``t0``; then simulates the tasks arriving in
        ``[t0, t1)``. Returns (outbound messages, closed windows, applied-change
        records). ``t1 == t0`` only closes windows (end of run).
        """
        out, ((_, closed, applied),) = step_agents([self], t0, t1, {self.id: inbound}, {self.id: changes})
        return out, closed, applied

    def begin(self, t0: float, inbound: list[Message], changes: list[ScheduledChange]) -> list[WindowData]:
        """The first half of :meth:`step`: take changes and messages, serve the
        inbox up to ``t0``, take the review answers that came back, serve the
        review requests that arrived before ``t0`` (a reviewer) and close
        (finish) the windows that ended by ``t0`` (with a reviewer: by the
        time up to which every answer is back, :mod:`swarmopt.sim.review`)."""
        for ch in changes:
            if ch.at_s < t0:
                raise ValueError(f"change {ch.ref} at {ch.at_s}s arrives after the agent passed it ({t0}s)")
            heapq.heappush(self.pending, (ch.at_s, self._pending_seq, ch))
            self._pending_seq += 1
        reviews = [m for m in inbound if is_review(m)]
        self.inbox.receive([m for m in inbound if not is_review(m)] if reviews else inbound)
        self._serve_inbox(t0)
        closed_by = t0
        if self.awaiting is not None:
            replies = self.awaiting.replies + [m for m in reviews if isinstance(m, ReviewReply)]
            self.awaiting.replies = []
            self.awaiting.absorb(replies, self.window_at, self.window_s)
            closed_by, self.awaiting.settled_s = self.awaiting.settled_s, t0
        if self.desk is not None:
            self.desk.receive([m for m in reviews if isinstance(m, ReviewRequest)])
            self.review_out += self.desk.process(t0, self.window_at, self.window_s)
        closed = []
        while (self.next_window + 1) * self.window_s <= closed_by + 1e-9:
            closed.append(self._close_window(self.next_window))
            self.next_window += 1
        return closed

    def spans(self, t0: float, t1: float) -> list[Span]:
        """The spans of ``[t0, t1)`` cut at knob changes and fault instants,
        each with its changes applied, its blocks drawn and its decisions'
        lookups settled (in time order: cache and breakers are sequential)."""
        out = []
        t = t0
        while t < t1:
            ops = self._apply_due(t)  # first: a change due at t must not hide the next one from the cut
            cut = min(t1, self._next_point(t))
            out.append(self._span(t, cut, ops))
            t = cut
        return out

    def queue(self, span: Span, arrival: np.ndarray, service: np.ndarray, tier: np.ndarray, tokens: np.ndarray,
              calls: np.ndarray, action: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """(start, end) of a span's decisions, after the worker changes due
        at its start, and their admission through the rate limits
        (:meth:`Limiter.admit <swarmopt.sim.ratelimit.Limiter.admit>`: admission
        times and whether model tokens held each back; None when every decision
        is admitted on arrival). ``tier``, ``tokens``, ``calls`` (n, tools) and
        ``action`` are each decision's tier index, model tokens, calls per tool and
        action class (0 simple, 1 standard, 2 complex). Served FCFS, or as the ``scheduling`` and ``bulkhead``
        knobs say (:mod:`swarmopt.sim.sched`)."""
        self.apply_ops(span.ops)
        k = span.knobs
        admitted = self.admit(span, arrival, tier, tokens, calls)
        ready = arrival if admitted is None else admitted[0]
        if k.bulkhead or self.pools:
            self._carve_pools(k.bulkhead)
        cls = action
        if k.scheduling == "priority":  # wfq weighs the action classes, priority ranks their priority classes
            cls = np.asarray(self.profile.action_mix.priority_classes())[action]
        if self.pools:
            pooled = [self.tool_names.index(t) for t in self.pools]
            start, end = serve_pools(ready, service, cls, pools(calls, pooled), [self.workers, *self.pools.values()],
                                     k.scheduling, self.wfq_weights(k), window_index(arrival, self.window_s))
        elif k.scheduling == "fcfs":
            start, end = fcfs(ready, service, self.workers)
        else:
            start, end = ordered(ready, service, cls, self.workers, k.scheduling, self.wfq_weights(k),
                                 window_index(arrival, self.window_s))
        return start, end, admitted

    def split_arm(self, knobs, part: Part) -> np.ndarray:
        """Per decision of ``part`` (bool), whether the other arm of ``knobs.split`` serves it: every second
        decision of the window (odd position in its block), or for a cache TTL the decisions whose key of that
        tool is odd (:data:`~swarmopt.schema.SPLIT_KNOBS`); none without a split."""
        tool = self._split_tool(knobs)
        if tool is not None:
            return part.block.keys[tool, part.lo:part.hi] % 2 == 1
        return np.arange(part.lo, part.hi) % 2 == 1 if knobs.split else np.zeros(part.hi - part.lo, dtype=bool)

    def _split_tool(self, knobs) -> int | None:
        """Index of the tool whose cache TTL ``knobs.split`` splits by key (None: no such split). Raises
        ValueError for a tool the agent lacks or a cache the split cannot share (LRU-bounded, or behind a
        breaker: their state is one sequence over both arms)."""
        path = next(iter(knobs.split), "")
        if not path.startswith("cache_ttl_s."):
            return None
        name = path.partition(".")[2]
        if name not in self.tool_names:
            raise ValueError(f"split: agent {self.id} has no tool {name!r}; allowed: {self.tool_names}")
        if knobs.circuit_breaker.enabled or knobs.max_cache_size.get(name, 0):
            raise ValueError(f"split: {path} needs an unbounded cache and no circuit breaker on agent {self.id}")
        return self.tool_names.index(name)

    def admit(self, span: Span, arrival: np.ndarray, tier: np.ndarray, tokens: np.ndarray, calls: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """A span's admission through the rate limits (as :meth:`queue` takes it)."""
        return self.limiter.admit(span.t0, span.knobs, span.fx, self.tool_names, arrival, tier, tokens, calls)

    def apply_ops(self, ops: list[tuple]) -> None:
        """Apply worker changes due at a span's start: resizes and a crash in force (workers busy until it ends)."""
        for op in ops:
            if op[0] == "resize":
                self._resize_workers(*op[1:])
            else:
                self.workers = [max(w, op[1]) for w in self.workers]
                self.pools = {t: [max(w, op[1]) for w in h] for t, h in self.pools.items()}

    def steals(self, span: Span) -> bool:
        """Whether the span's decisions queue with the other replicas of the
        population (:func:`~swarmopt.sim.sched.steal`): a replica with plain FCFS
        workers (no ordering, no bulkhead) takes part, as a thief at least."""
        k = span.knobs
        return self.profile.population is not None and k.scheduling == "fcfs" and not k.bulkhead and not self.pools

    @staticmethod
    def wfq_weights(knobs) -> tuple[float, ...]:
        """The weighted-fair-queuing weight of each priority class: the
        ``wfq_weights`` of the action classes (sim/sched.py serves by class)."""
        return tuple(knobs.wfq_weights.get(a, 1.0) for a in ACTIONS)

    def _carve_pools(self, sizes: dict[str, int]) -> None:
        """Give each tool of the profile with a ``bulkhead`` size its own pool
        of workers, taken from the shared ones that free up first; a change of
        sizes returns every pool to the shared workers and carves anew."""
        want = {t: sizes[t] for t in self.tool_names if sizes.get(t, 0) > 0}
        if {t: len(h) for t, h in self.pools.items()} == want:
            return
        free = sorted(self.workers + [w for h in self.pools.values() for w in h])
        self.pools = {}
        for t, b in want.items():
            self.pools[t], free = free[:b], free[b:]
        self.workers = free  # a sorted list is a heap

    def _next_point(self, t: float) -> float:
        nxt = math.inf
        if self.pending:
            nxt = self.pending[0][0]
        i = bisect_left(self.fault_points, t + 1e-12)
        if i < len(self.fault_points):
            nxt = min(nxt, self.fault_points[i])
        return nxt if nxt > t else math.inf

    def _apply_due(self, t: float) -> list[tuple]:
        """Apply the knob and autonomy changes due at ``t``; returns the worker
        changes (resizes, then a crash in force) for :meth:`queue`."""
        ops: list[tuple] = []
        if self.pending and self.pending[0][0] <= t + 1e-12:
            k = round(t / self.window_s)
            if k and abs(t - k * self.window_s) <= 1e-9:  # a change at a window's end is not part of that window
                self._record_end_state(k - 1)
        while self.pending and self.pending[0][0] <= t + 1e-12:
            at, _, sc = heapq.heappop(self.pending)
            ch = sc.change
            if ch.knob == "autonomy":
                self.autonomy = float(ch.new)
            else:
                old_c = self.knobs.max_concurrency
                self.knobs = set_knob(self.knobs, ch.knob, ch.new)
                if ch.knob.startswith("circuit_breaker"):
                    self.breakers = [Breaker(self.knobs.circuit_breaker) for _ in self.tool_names]
                if ch.knob in ("message_batch_size", "shed_expired"):
                    self.inbox_changes.append((at, self.knobs.message_batch_size, self.knobs.shed_expired))
                ops.append(("resize", old_c, self.knobs.max_concurrency, at))
            self.applied.append({"t_s": at, "agent": self.id, "knob": ch.knob, "old": ch.old,
                                 "new": ch.new, "ref": sc.ref})
        for start, end in self.crashes:
            if start <= t < end:
                ops.append(("crash", end))
        return ops

    def _resize_workers(self, old: int, new: int, at: float) -> None:
        if self.pools:  # resize over all workers; the next queue carves the pools again
            self.workers = sorted(self.workers + [w for h in self.pools.values() for w in h])
            self.pools = {}
        if new > old:
            for _ in range(new - old):
                heapq.heappush(self.workers, at)
        elif new < old:
            # the workers that free up last are the ones retired
            self.workers = sorted(self.workers)[:new]

    # ------------------------------------------------------------------ arrivals
    def _block_at(self, t: float) -> Block:
        k = window_index(t, self.window_s)
        if self.block is None or self.block.start != k * self.window_s:
            if k:
                self._record_end_state(k - 1)
            self.block = self._make_block(k * self.window_s, (k + 1) * self.window_s)
            self.block_pos = 0
        return self.block

    def _make_block(self, start: float, end: float) -> Block:
        rng, base = self.rng, self.profile.base_rate_per_s
        # thinning: n0 candidates uniform on [start, end), each kept with probability lambda(t) / lambda_max; the
        # 2 n0 uniforms in one draw are rng.uniform(start, end, n0) then rng.uniform(0, lambda_max, n0), bit for bit
        # lambda(t) = lambda_max / 1.05 throughout a steady block: the whole run with a constant rate, else a block
        # no surge starts or ends in (most blocks of a surge): the same draws as sampling the rate, faster
        steady = self.env.load.multiplier if self.constant_rate else self.env.steady_multiplier(start, end)
        lam = None if steady is None else base * steady
        if lam is not None:
            lam_max = lam * 1.05
        else:
            lam_max = float((base * self.env.rate_multiplier(start + (end - start) * _GRID)).max()) * 1.05
        n0 = rng.poisson(lam_max * (end - start))
        r = rng.random(2 * n0)
        cand, keep = r[:n0], r[n0:]  # scaled in place: the same values as start + (end - start) * r[:n0] ...
        cand *= end - start
        cand += start
        keep *= lam_max  # ... and r[n0:] * lam_max
        cand.sort()
        arrival = cand[keep < (lam if lam is not None else base * self.env.rate_multiplier(cand))]
        n, nt, nl, na = len(arrival), len(self.tool_names), len(self.links), MAX_ATTEMPTS
        pt, pl = self.pad
        # one draw per distribution in a fixed layout: columns of U are tool keys,
        # tool errors, success, escalation, action class, links; of Z the model
        # and tool latencies, confidence, review time, tokens (flat sizes: the
        # same draws, filled row by row, without numpy's shape handling)
        cu, cz = nt * (1 + na) + 3 + nl, na * (1 + nt) + 3
        u = rng.random(n * cu).reshape(n, cu)  # rng.uniform(size=...)'s draws (0 + 1 x each), without its overhead
        z = rng.standard_normal(n * cz).reshape(n, cz)
        if nt:
            keys = np.empty((nt, n), dtype=np.int64)
            for j, cdf in enumerate(self.zipf):
                keys[j] = cdf.searchsorted(u[:, j], side="right")
        else:
            keys = _NO_KEYS
        # an empty draw takes nothing from the stream
        resource = rng.integers(0, self.profile.resources, size=n * nl).reshape(n, nl) if n * nl else (
            np.zeros((n, nl), dtype=np.int64))
        served_z, served_u = z, u[:, nt * (1 + na):]
        if pt > nt:
            served_z = np.zeros((n, na * (1 + pt) + 3))
            served_z[:, :na * (1 + nt)] = z[:, :na * (1 + nt)]
            served_z[:, -3:] = z[:, -3:]
        if pl > nl:
            served_u = np.ones((n, 3 + pl))
            served_u[:, :3 + nl] = u[:, nt * (1 + na):]
            resource = np.concatenate((resource, np.zeros((n, pl - nl), dtype=resource.dtype)), axis=1)
        if self.storms:
            self._storm(start, end)
        return Block(start, end, arrival, u, z, keys, resource, served_z, served_u)

    def _storm(self, start: float, end: float) -> None:
        for a, b, rate in self.env.storm_rate(start, end):
            k = self.storm_rng.poisson(rate * (b - a))
            times = np.sort(self.storm_rng.uniform(a, b, k))
            res = self.storm_rng.integers(0, self.profile.resources, k)
            self.inbox.add(times, np.full(k, self.names.index(STORM)), np.arange(self.storm_seq, self.storm_seq + k),
                           res, self.names)
            self.storm_seq += k

    # ------------------------------------------------------------------ lookups
    def _span(self, t0: float, t1: float, ops: list[tuple]) -> Span:
        """Walk the windows of ``[t0, t1)`` in order: make each window's block,
        take its decisions in the span and settle their tool lookups (cache and
        breaker are sequential, and a window's end state is recorded once its
        lookups are done)."""
        k, p, fx = self.knobs, self.profile, self.env.effects(t0)
        n_att = k.max_retries + 1
        nt, pt = len(p.tools), self.pad[0]
        err_p = [min(1.0, tool.error_rate + fx.tool_error.get(tool.name, 0.0)) for tool in p.tools]
        ttls = [0.0 if tool.name in fx.uncacheable else k.cache_ttl_s.get(tool.name, 0.0) for tool in p.tools]
        split = self._split_tool(k)  # the odd keys of this tool live under the split's TTL
        split_ttl = 0.0 if split is None or p.tools[split].name in fx.uncacheable else float(
            next(iter(k.split.values())))
        breaker = k.circuit_breaker.enabled
        err_col = np.array(err_p)[:, None]
        if self.invalidations:
            self._invalidate(t0)
        lru = self.lru
        if k.max_cache_size or any(lru):
            self._bound_caches(t0)
        evicted = sum(c.evictions for c in lru if c is not None)
        parts = []
        t = t0
        while t < t1:
            block = self._block_at(t)
            lo = self.block_pos
            end = min(t1, block.end)
            n_block = len(block.arrival)
            if end == block.end and (not n_block or block.arrival[-1] < end):
                hi = n_block
            else:
                hi = int(block.arrival.searchsorted(end, side="left"))
            self.block_pos = hi
            m = hi - lo
            if not pt:
                hit, stop, rejected = _NO_LOOKUPS
            elif not (m and nt):
                hit, stop, rejected = np.ones((pt, m), dtype=bool), np.zeros((pt, m), dtype=np.int64), np.zeros(
                    (pt, m), dtype=bool)
            else:
                hit = np.empty((pt, m), dtype=bool)
                hit[nt:] = True  # padded tools: a hit of zero latency, not counted
                stop = np.zeros((pt, m), dtype=np.int64)
                rejected = np.zeros((pt, m), dtype=bool)
                arr = block.arrival[lo:hi]
                if breaker:
                    for j in range(nt):
                        err = block.u_err(j, nt)[lo:hi, :n_att] < err_p[j]
                        hit[j], stop[j], rejected[j] = breaker_calls(arr, block.keys[j, lo:hi], err, ttls[j],
                                                                     self.cache_exp[j], self.breakers[j], lru[j])
                else:
                    # every tool's call errors at once, (decisions, tools, attempts)
                    u_err = block.u[lo:hi, nt:nt * (1 + MAX_ATTEMPTS)].reshape(m, nt, MAX_ATTEMPTS)
                    stop[:nt] = first_success(u_err[:, :, :n_att] < err_col).T
                    fills = stop[:nt] < n_att
                    for j in range(nt):
                        keys = block.keys[j, lo:hi]
                        if j == split:  # the two arms' keys are disjoint: each arm is a cache of its own
                            odd = keys % 2 == 1
                            for sel, ttl in ((~odd, ttls[j]), (odd, split_ttl)):
                                hit[j, sel] = ttl_cache(arr[sel], keys[sel], fills[j][sel], ttl, self.cache_exp[j])
                        elif lru[j] is None:
                            hit[j] = ttl_cache(arr, keys, fills[j], ttls[j], self.cache_exp[j])
                        else:
                            hit[j] = lru[j].lookups(arr, keys, fills[j], ttls[j])
            window = self.window_at(t)
            if evicted or any(lru):
                now = sum(c.evictions for c in lru if c is not None)
                window.add_cache(evictions=now - evicted)
                evicted = now
            parts.append(Part(window, block, lo, hi, self._memory_factor(t) if self.leaks else 1.0, hit, stop,
                              rejected))
            t = end
        return Span(self, k, self.autonomy, fx, ops, parts, t0)

    def _invalidate(self, t0: float) -> None:
        """Apply the cache invalidations due by ``t0`` (spans are cut at each
        one, so each is applied at its instant)."""
        todo = self.invalidations
        while self.next_invalidation < len(todo) and todo[self.next_invalidation].t_s <= t0 + 1e-12:
            inv = todo[self.next_invalidation]
            self.next_invalidation += 1
            k = round(inv.t_s / self.window_s)
            if k and abs(inv.t_s - k * self.window_s) <= 1e-9:  # at a window's end: not part of that window
                self._record_end_state(k - 1)
            dropped = 0
            for j, tool in enumerate(self.profile.tools):
                if inv.tool is None or inv.tool == tool.name:
                    dropped += invalidate(self.cache_exp[j], pattern_keys(tool.keyspace, inv.share), inv.t_s,
                                          self.lru[j])
            self.window_at(inv.t_s).add_cache(invalidations=dropped)

    def _bound_caches(self, t0: float) -> None:
        """Give each tool cache the size bound of the ``max_cache_size`` knob at ``t0`` (0: unbounded)."""
        sizes = self.knobs.max_cache_size
        for j, name in enumerate(self.tool_names):
            cap, cache = int(sizes.get(name, 0)), self.lru[j]
            if not cap:
                self.lru[j] = None
            elif cache is None:
                self.lru[j] = LRUCache(self.cache_exp[j], cap, t0)
            elif cache.capacity != cap:
                cache.resize(cap, t0)

    def count_service(self, start_k: np.ndarray, end_k: np.ndarray) -> None:
        """Count decisions just served by the window indices (int arrays of the
        same shape) in which a worker took them and let them go."""
        for counts, ks in ((self.started, start_k), (self.ended, end_k)):
            if ks.size:
                lo = int(ks.min())
                for k, c in enumerate(np.bincount(ks - lo).tolist(), lo):
                    if c:
                        counts[k] = counts.get(k, 0) + c

    # ------------------------------------------------------------------ windows
    def window_at(self, t: float) -> WindowData:
        """The window data of the window that holds time ``t`` (s), made on first use."""
        k = window_index(t, self.window_s)
        w = self.windows.get(k)
        if w is None:
            w = self.windows[k] = WindowData()
        return w

    def _serve_inbox(self, until: float) -> None:
        """Handle the inbox up to ``until``, each batch with the batch size and
        shedding in force when it starts (a change within the last step counts
        from its time)."""
        cuts = [c for c in self.inbox_changes if c[0] < until]
        self.inbox_changes = self.inbox_changes[len(cuts):]
        for at, *setting in cuts + [(until,)]:
            for k, counts in self.inbox.process(at, self.inbox_batch, self.window_s, self.inbox_shed).items():
                self.window_at(k * self.window_s).add_inbox(*counts)
            if setting:
                self.inbox_batch, self.inbox_shed = setting

    def _cached_keys(self, t: float) -> int:
        return sum(int(np.count_nonzero(c > t)) for c in self.cache_exp) if self.cache_exp else 0

    def _memory_mb(self, t: float) -> float:
        return self._end_state(t)["memory_mb"]

    def _memory_factor(self, t: float) -> float:
        """Service-time stretch above 90% memory (swap and GC pressure): +50% at 100%."""
        if not self.env.leaked_mb(t):
            return 1.0
        frac = self._memory_mb(t) / self.profile.memory_capacity_mb
        return 1.0 + 5.0 * max(0.0, frac - 0.9)

    def _end_state(self, t_end: float) -> dict:
        cached = self._cached_keys(t_end)
        leaked = self.env.leaked_mb(t_end) if self.leaks else 0.0
        cache_mb = cached * CACHE_ENTRY_KB / 1024.0
        return {"concurrency": self.knobs.max_concurrency, "autonomy": self.autonomy, "cached_keys": cached,
                "memory_mb": self.profile.memory_base_mb + cache_mb + leaked, "cache_mb": cache_mb}

    def _record_end_state(self, k: int) -> None:
        """Note the state at the end of window ``k`` the first time the
        simulation reaches that end: after its decisions' lookups, before
        anything of window ``k + 1`` happens, a knob change effective at the
        boundary included (so it does not depend on where ticks fall). A
        window already closed needs nothing: it was closed with that state."""
        if k >= self.next_window and k not in self.window_end_state:
            self.window_end_state[k] = self._end_state((k + 1) * self.window_s)

    def _close_window(self, k: int) -> WindowData:
        """Freeze window ``k``. Its knobs, autonomy and cache figures are those at
        its end before any change effective there: recorded when the simulation
        crossed it (a tick may run past several windows before they are closed,
        see :meth:`_record_end_state`), else taken now, at the start of a step
        that has not yet applied its changes."""
        w = self.windows.pop(k, None) or WindowData()
        t_end = (k + 1) * self.window_s
        state = self.window_end_state.pop(k, None) or self._end_state(t_end)
        self.queued += w.arrivals - self.started.pop(k, 0)
        w.finish(agent=self.id, index=k, t_start_s=k * self.window_s, t_end_s=t_end, window_s=self.window_s,
                 completed=self.ended.pop(k, 0), queued=self.queued,
                 memory_capacity_mb=self.profile.memory_capacity_mb,
                 cache_capacity=self.cache_capacity, tools=self.tool_names,
                 review_workers=len(self.desk.workers) if self.desk is not None else 0, **state)
        return w

    # ------------------------------------------------------------------ inspection and live changes
    def add_fault(self, fault) -> None:
        """Aim one more fault model at this agent (:meth:`Simulation.inject`
        checks that it starts no earlier than the time the agent has reached,
        and that a load surge starts at a window not drawn yet)."""
        self.env.faults.append(fault)
        self._faults_changed()

    def reseed(self, seed: np.random.SeedSequence) -> None:
        """Draw from ``seed``'s streams from now on: the tasks' (arrivals,
        uniforms, normals) and the message storms'. A window whose block is
        drawn already keeps its draws."""
        tasks_seed, storm_seed = seed.spawn(2)
        self.rng = np.random.default_rng(tasks_seed)
        self.storm_rng = np.random.default_rng(storm_seed)

    def snapshot(self, t: float) -> dict:
        """The agent's state at simulated time ``t`` (the time it has been
        stepped to): knobs, autonomy, ``queue_length`` (decisions arrived and
        waiting for a worker), ``busy_workers``, ``cached_keys`` (per tool),
        ``pending_changes`` (scheduled knob changes not yet in force) and the
        windows still open; with reviews, ``awaiting_review`` (decisions whose
        review is not back) and on a reviewer ``review_queue`` (requests not
        yet served)."""
        open_w = [w.tasks_so_far() for k, w in sorted(self.windows.items()) if k >= self.next_window]
        waiting = 0
        if open_w:
            tasks = np.concatenate(open_w, axis=1)
            a, s = tasks[COLUMN["arrival"]], tasks[COLUMN["start"]]
            waiting = int(np.count_nonzero((a <= t) & (s > t)))
        return {
            "agent": self.id, "t_s": t, "knobs": self.knobs.model_dump(), "autonomy": self.autonomy,
            "queue_length": waiting,
            "busy_workers": sum(w > t for h in (self.workers, *self.pools.values()) for w in h),
            "workers": self.knobs.max_concurrency,
            "cached_keys": {n: int(np.count_nonzero(c > t))
                            for n, c in zip(self.tool_names, self.cache_exp, strict=True)},
            "pending_changes": [{"at_s": at, "knob": sc.change.knob, "old": sc.change.old, "new": sc.change.new,
                                 "ref": sc.ref} for at, _, sc in sorted(self.pending)],
            "active_faults": [f.kind for f in self.env.active(t)],
        } | ({"awaiting_review": self.awaiting.waiting} if self.awaiting is not None else {}) | (
            {"review_queue": len(self.desk.pending)} if self.desk is not None else {})

    def take_reviews(self) -> list[ReviewRequest | ReviewReply]:
        """The review requests and answers sent since the last call."""
        out: list[ReviewRequest | ReviewReply] = self.review_out
        self.review_out = []
        if self.awaiting is not None:
            out, self.awaiting.outbox = out + self.awaiting.outbox, []
        return out

    def metrics_row(self, w: WindowData) -> dict:
        """The metrics-table row of a closed window."""
        return window_metrics(w)


def step_agents(sims: list[AgentSim], t0: float, t1: float, inbound: dict[str, list[Message]],
                changes: dict[str, list[ScheduledChange]]
                ) -> tuple[list[Message], list[tuple[str, list[WindowData], list[dict]]]]:
    """:meth:`AgentSim.step` for every agent of ``sims`` (set up by :func:`share_layout`)
    over ``[t0, t1)``, with ``inbound`` messages and ``changes`` by agent id:
    each agent's sequential work first, then one vectorized pass serving every
    agent's decisions. Messages between agents of ``sims`` go straight to the
    receiver's inbox (taken at its next step, as if delivered then). Returns
    (the messages to other agents, per agent (id, closed windows,
    applied-change records)).

    Raises:
        ValueError: if the agents do not share ``pad``, ``names`` and their link table.
    """
    if len({(sim.pad, id(sim.names), id(sim.link_table)) for sim in sims}) > 1:
        raise ValueError("agents stepped together must share one pad, list of names and link table (share_layout)")
    closed = [sim.begin(t0, inbound.get(sim.id, []), changes.get(sim.id, [])) for sim in sims]
    sent = serve([sp for sim in sims for sp in sim.spans(t0, t1)])
    result = []
    for sim, cl in zip(sims, closed, strict=True):
        applied, sim.applied = sim.applied, []
        result.append((sim.id, cl, applied))
    hosted = {sim.id: sim for sim in sims}
    return _deliver(sent, hosted) + _deliver_reviews([m for sim in sims for m in sim.take_reviews()], hosted), result


def share_layout(sims: list[AgentSim]) -> None:
    """Make ``sims`` (built with one ``pad`` and one ``names`` list) steppable
    together: one :class:`LinkTable` for all, agent ``i`` in slot ``i``."""
    table = LinkTable.of(sims, sims[0].names, sims[0].pad[1])
    for i, sim in enumerate(sims):
        sim.link_table, sim.slot = table, i


def _deliver_reviews(reviews: list[ReviewRequest | ReviewReply], hosted: dict[str, AgentSim]
                     ) -> list[ReviewRequest | ReviewReply]:
    """Hand review requests and answers to ``hosted`` receivers (taken at their
    next step, as if delivered then); return the others."""
    out = []
    for m in reviews:
        sim = hosted.get(m.receiver)
        if sim is None:
            out.append(m)
        elif isinstance(m, ReviewRequest):
            sim.desk.receive([m])
        else:
            sim.awaiting.replies.append(m)
    return out


def _deliver(sent: Sent | None, hosted: dict[str, AgentSim]) -> list[Message]:
    """Put the messages ``sent`` to ``hosted`` agents in their inboxes (they
    take them at their next step, as if delivered then); return the others as
    :class:`Message` objects."""
    if sent is None:
        return []
    out: list[Message] = []
    order = np.argsort(sent.receiver, kind="stable")
    receiver = sent.receiver[order]
    bounds = np.concatenate(([0], np.flatnonzero(receiver[1:] != receiver[:-1]) + 1, [len(order)])).tolist()
    for lo, hi in itertools.pairwise(bounds):
        idx = order[lo:hi]
        name = sent.names[receiver[lo]]
        sim = hosted.get(name)
        if sim is not None:
            sim.inbox.add(sent.time[idx], sent.sender[idx], sent.seq[idx], sent.resource[idx], sent.names)
        else:
            senders = [sent.names[i] for i in sent.sender[idx].tolist()]
            out += map(tuple.__new__, repeat(Message), zip(sent.time[idx].tolist(), senders, sent.seq[idx].tolist(),
                                                            repeat(name), sent.resource[idx].tolist(),
                                                            sent.origin[idx].tolist()))
    return out


__all__ = ["AgentSim", "Block", "LinkTable", "share_layout", "step_agents", "zipf_cdf"]
