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
  weighted by the action class (:class:`~swarmopt.schema.ActionMix`), x0.85
  when an open circuit breaker skipped a tool; its confidence falls with its
  latent error; it escalates to review with
  probability ``1 - autonomy`` or when confidence < ``confidence_threshold``
  (review takes time off the worker and succeeds with ``review_success``);
* cost: tokens x the model price table plus the price of each tool miss;
* coordination: a decision sends a message to each downstream agent with the
  link's probability; the request is met in time if the decision succeeded and
  its message arrives within ``coordination_deadline_s`` of the decision's
  arrival. Inbound messages are served by the :class:`~swarmopt.sim.inbox.Inbox`.

Every random number a task needs is drawn when its window-long block of
arrivals is generated, from the agent's own stream, in a fixed layout that does
not depend on the knobs. So the same seed gives the same tasks whatever the
optimizer does (common random numbers), and results do not depend on how the
run is cut into ticks: the engine only needs changes to be announced before
the simulation reaches their time.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from swarmopt.knobs import ScheduledChange, set_knob
from swarmopt.metrics import WindowData, window_metrics
from swarmopt.schema import MAX_ATTEMPTS, TIERS, AgentProfile, ModelTier
from swarmopt.sim.breaker import Breaker
from swarmopt.sim.environment import Environment
from swarmopt.sim.inbox import Inbox, Message
from swarmopt.sim.service import attempts, breaker_calls, fcfs, first_success, ttl_cache

DEGRADED_QUALITY = 0.85
_GRID = np.linspace(0.0, 1.0, 65)  # where a block's peak arrival rate is looked for
CACHE_ENTRY_KB = 64.0


@dataclass
class Block:
    """Tasks arriving in [start, end) and their random draws (fixed layout)."""

    start: float
    end: float
    arrival: np.ndarray          # (n,) seconds, sorted
    z_model: np.ndarray          # (n, MAX_ATTEMPTS) standard normal
    keys: np.ndarray             # (n_tools, n) int key index
    z_tool: np.ndarray           # (n_tools, n, MAX_ATTEMPTS) standard normal
    u_err: np.ndarray            # (n_tools, n, MAX_ATTEMPTS) uniform
    u_success: np.ndarray        # (n,)
    z_conf: np.ndarray           # (n,)
    u_escalate: np.ndarray       # (n,)
    z_review: np.ndarray         # (n,)
    z_tokens: np.ndarray         # (n,)
    u_link: np.ndarray           # (n, n_links)
    resource: np.ndarray         # (n, n_links) int
    u_action: np.ndarray         # (n,) uniform: simple / ordinary / complex action


def zipf_cdf(n_keys: int, s: float) -> np.ndarray:
    """Cumulative distribution of a Zipf law p_k ~ k^-s over keys 0..n_keys-1."""
    w = np.arange(1, n_keys + 1, dtype=float) ** -s
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def service_latency(z: np.ndarray, median_ms: float, sigma: float, dist: str) -> np.ndarray:
    """Latency in seconds from standard normals ``z`` (any shape).

    ``lognormal``: median x exp(sigma z). ``exponential`` and ``deterministic``
    keep the lognormal's mean, median x exp(sigma^2 / 2): exponential by
    inversion of Phi(z), deterministic as that constant.
    """
    if dist == "lognormal":
        return median_ms / 1000.0 * np.exp(sigma * z)
    mean = median_ms / 1000.0 * math.exp(sigma * sigma / 2.0)
    if dist == "exponential":
        return -mean * np.log(ndtr(-z))  # 1 - Phi(z) = Phi(-z), without rounding to 1 in the tail
    return np.full(z.shape, mean)


class AgentSim:
    """The workload + queueing model of one agent.

    ``profile`` gives the workload; ``models`` the tier table; ``env`` the load
    shape and faults aimed at this agent; ``seed`` its own ``SeedSequence``;
    ``window_s`` the metric window. Drive it with :meth:`step`.
    """

    def __init__(self, profile: AgentProfile, models: dict[str, ModelTier], env: Environment,
                 seed: np.random.SeedSequence, window_s: float, slo_ms: float = 2000.0) -> None:
        self.profile = profile
        self.id = profile.id
        self.models = models
        self.env = env
        self.window_s = window_s
        self.slo_s = slo_ms / 1000.0
        tasks_seed, storm_seed = seed.spawn(2)
        self.rng = np.random.default_rng(tasks_seed)
        self.storm_rng = np.random.default_rng(storm_seed)
        self.knobs = profile.knobs
        self.autonomy = profile.autonomy
        self.workers: list[float] = [0.0] * self.knobs.max_concurrency
        tools = profile.tools
        self.tool_names = [t.name for t in tools]
        self.zipf = [zipf_cdf(t.keyspace, t.zipf_s) for t in tools]
        self.cache_exp = [np.full(t.keyspace, -1.0) for t in tools]
        self.breakers = [Breaker(self.knobs.circuit_breaker) for _ in tools]
        self.tiers = [models[name] for name in TIERS]
        self.tier_table = {f: np.array([getattr(t, f) for t in self.tiers]) for f in (
            "quality", "confidence_mean", "input_usd_per_mtok", "output_usd_per_mtok")}
        self.hit_s = [t.hit_latency_ms / 1000.0 for t in tools]
        self.tool_price = np.array([t.price_usd_per_call for t in tools])
        mix = profile.action_mix
        self.class_weight = np.array([mix.simple_weight, 1.0, mix.complex_weight])
        self.links = [(l.receivers, l.probability) for l in profile.downstream]
        self.inbox = Inbox(profile.message_overhead_ms, profile.message_cost_ms,
                           profile.conflict_resolution_ms, profile.batch_max_wait_s,
                           profile.inbox_deadline_s)
        self.pending: list[tuple[float, int, ScheduledChange]] = []
        self._pending_seq = 0
        self.seq = 0
        self.storm_seq = 0
        self.block: Block | None = None
        self.block_pos = 0
        self.windows: dict[int, WindowData] = {}
        self.window_end_state: dict[int, dict] = {}
        self.next_window = 0
        self.applied: list[dict] = []
        self.crashes = env.crashes()
        self.fault_points = env.breakpoints()

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
        for ch in changes:
            if ch.at_s < t0:
                raise ValueError(f"change {ch.ref} at {ch.at_s}s arrives after the agent passed it ({t0}s)")
            heapq.heappush(self.pending, (ch.at_s, self._pending_seq, ch))
            self._pending_seq += 1
        self.inbox.receive(inbound)
        self._serve_inbox(t0)
        closed = []
        while (self.next_window + 1) * self.window_s <= t0 + 1e-9:
            closed.append(self._close_window(self.next_window))
            self.next_window += 1
        out: list[Message] = []
        t = t0
        while t < t1:
            cut = min(t1, self._next_point(t))
            self._apply_due(t)
            out += self._simulate(t, cut)
            t = cut
        applied, self.applied = self.applied, []
        return out, closed, applied

    def _next_point(self, t: float) -> float:
        nxt = math.inf
        if self.pending:
            nxt = self.pending[0][0]
        i = bisect_left(self.fault_points, t + 1e-12)
        if i < len(self.fault_points):
            nxt = min(nxt, self.fault_points[i])
        return nxt if nxt > t else math.inf

    def _apply_due(self, t: float) -> None:
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
                self._resize_workers(old_c, self.knobs.max_concurrency, at)
            self.applied.append({"t_s": at, "agent": self.id, "knob": ch.knob, "old": ch.old,
                                 "new": ch.new, "ref": sc.ref})
        for start, end in self.crashes:
            if start <= t < end:
                self.workers = [max(w, end) for w in self.workers]

    def _resize_workers(self, old: int, new: int, at: float) -> None:
        if new > old:
            for _ in range(new - old):
                heapq.heappush(self.workers, at)
        elif new < old:
            # the workers that free up last are the ones retired
            self.workers = sorted(self.workers)[:new]

    # ------------------------------------------------------------------ arrivals
    def _block_at(self, t: float) -> Block:
        k = int(t // self.window_s + 1e-9)
        if self.block is None or self.block.start != k * self.window_s:
            if k:
                self._record_end_state(k - 1)
            self.block = self._make_block(k * self.window_s, (k + 1) * self.window_s)
            self.block_pos = 0
        return self.block

    def _make_block(self, start: float, end: float) -> Block:
        rng = self.rng
        grid = start + (end - start) * _GRID
        lam = self.profile.base_rate_per_s * self.env.rate_multiplier(grid)
        lam_max = float(lam.max()) * 1.05
        n0 = rng.poisson(lam_max * (end - start))
        cand = np.sort(rng.uniform(start, end, n0))
        keep = rng.uniform(0.0, lam_max, n0) < self.profile.base_rate_per_s * self.env.rate_multiplier(cand)
        arrival = cand[keep]
        n, nt, nl, na = len(arrival), len(self.tool_names), len(self.links), MAX_ATTEMPTS
        # one draw per distribution in a fixed layout: columns of U are tool keys,
        # tool errors, success, escalation, action class, links; of Z the model
        # and tool latencies, confidence, review time, tokens
        u = rng.uniform(size=(n, nt * (1 + na) + 3 + nl))
        z = rng.standard_normal((n, na * (1 + nt) + 3))
        e = nt * (1 + na)
        keys = np.array([np.searchsorted(cdf, u[:, j], side="right") for j, cdf in enumerate(self.zipf)],
                        dtype=np.int64).reshape(nt, n)
        block = Block(
            start=start, end=end, arrival=arrival,
            z_model=z[:, :na],
            keys=keys,
            z_tool=z[:, na:na * (1 + nt)].reshape(n, nt, na).transpose(1, 0, 2),
            u_err=u[:, nt:e].reshape(n, nt, na).transpose(1, 0, 2),
            u_success=u[:, e],
            z_conf=z[:, -3],
            u_escalate=u[:, e + 1],
            z_review=z[:, -2],
            z_tokens=z[:, -1],
            u_link=u[:, e + 3:],
            resource=rng.integers(0, self.profile.resources, size=(n, nl)),
            u_action=u[:, e + 2],
        )
        self._storm(start, end)
        return block

    def _storm(self, start: float, end: float) -> None:
        msgs = []
        for a, b, rate in self.env.storm_rate(start, end):
            k = self.storm_rng.poisson(rate * (b - a))
            times = np.sort(self.storm_rng.uniform(a, b, k))
            res = self.storm_rng.integers(0, self.profile.resources, k)
            for tm, r in zip(times.tolist(), res.tolist()):
                msgs.append(Message(tm, "~storm", self.storm_seq, self.id, r, tm))
                self.storm_seq += 1
        self.inbox.receive(msgs)

    # ------------------------------------------------------------------ service
    def _tiers(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-decision tier index into :data:`TIERS`, and the action class
        (0 simple, 1 ordinary, 2 complex), from the decisions' draws ``u``."""
        mix = self.profile.action_mix
        action = (u >= mix.simple).astype(np.int64) + (u >= 1.0 - mix.complex)
        base = TIERS.index(self.knobs.model_tier)
        if not self.knobs.tier_routing:
            return np.full(len(u), base), action
        return np.choose(action, [TIERS.index("fast"), base, TIERS.index("strong")]), action

    def _lookups(self, t0: float, t1: float, n_att: int, fx) -> tuple[list[tuple], list[list[tuple]]]:
        """Walk the windows of ``[t0, t1)`` in order: make each window's block,
        take its decisions in the span and settle their tool lookups (cache and
        breaker are sequential, and a window's end state is recorded once its
        lookups are done). Returns the parts (window data, block, lo, hi,
        memory factor) and per part and tool (hit, stop, rejected)."""
        k, p = self.knobs, self.profile
        parts, lookups = [], []
        t = t0
        while t < t1:
            block = self._block_at(t)
            end = min(t1, block.end)
            lo, hi = self.block_pos, int(np.searchsorted(block.arrival, end, side="left"))
            self.block_pos = hi
            arr = block.arrival[lo:hi]
            settled = []
            for j, tool in enumerate(p.tools):
                err = block.u_err[j, lo:hi, :n_att] < min(1.0, tool.error_rate + fx.tool_error.get(tool.name, 0.0))
                ttl = 0.0 if tool.name in fx.uncacheable else k.cache_ttl_s.get(tool.name, 0.0)
                keys = block.keys[j, lo:hi]
                if k.circuit_breaker.enabled:
                    settled.append(breaker_calls(arr, keys, err, ttl, self.cache_exp[j], self.breakers[j]))
                else:
                    stop = first_success(err)
                    settled.append((ttl_cache(arr, keys, stop < n_att, ttl, self.cache_exp[j]), stop,
                                    np.zeros(hi - lo, dtype=bool)))
            parts.append((self._window(t), block, lo, hi, self._memory_factor(t)))
            lookups.append(settled)
            t = end
        return parts, lookups

    def _simulate(self, t0: float, t1: float) -> list[Message]:
        """Serve the decisions arriving in ``[t0, t1)``, a span in which knobs and
        faults do not change, in one vectorized pass however many windows it
        spans (per-call numpy overhead, not per-task work, dominates a window)."""
        p, k, fx = self.profile, self.knobs, self.env.effects(t0)
        n_att = k.max_retries + 1
        parts, lookups = self._lookups(t0, t1, n_att, fx)
        sizes = [hi - lo for _, _, lo, hi, _ in parts]
        n = sum(sizes)
        if n == 0:
            return []

        if len(parts) == 1:
            _, only, lo1, hi1, _ = parts[0]

            def take(field, *index):
                """A block field's rows of the span."""
                return getattr(only, field)[index + (slice(lo1, hi1),)]
        else:
            def take(field, *index):
                """A block field's rows of every part, concatenated."""
                return np.concatenate([getattr(b, field)[index + (slice(lo, hi),)] for _, b, lo, hi, _ in parts])

        arr = take("arrival")
        factors = [m for *_, m in parts]
        mem_factor = factors[0] if len(set(factors)) == 1 else np.repeat(factors, sizes)[:, None]
        tier_idx, action = self._tiers(take("u_action"))
        z_model = take("z_model")[:, :n_att]
        if k.tier_routing:
            model_s = np.empty((n, n_att))
            for ti in np.unique(tier_idx).tolist():
                rows = tier_idx == ti
                tier = self.tiers[ti]
                model_s[rows] = service_latency(z_model[rows], tier.latency_ms_median, tier.latency_sigma,
                                                p.latency_distribution)
        else:
            tier = self.models[k.model_tier]
            model_s = service_latency(z_model, tier.latency_ms_median, tier.latency_sigma, p.latency_distribution)
        model_s *= fx.model_latency * mem_factor
        tool_s, hits, stops, rejected = [], [], [], []
        for j, tool in enumerate(p.tools):
            tool_s.append(service_latency(take("z_tool", j)[:, :n_att], tool.latency_ms_median, tool.latency_sigma,
                                          "lognormal") * (fx.tool_latency.get(tool.name, 1.0) * mem_factor))
            h, st, rj = lookups[0][j] if len(lookups) == 1 else (
                np.concatenate([settled[j][i] for settled in lookups]) for i in range(3))
            hits.append(h)
            stops.append(st)
            rejected.append(rj)
        res = attempts(model_s, tool_s, self.hit_s, hits, stops, rejected, k.parallel_tools, k.timeout_s)
        start, end = fcfs(arr, res["service"], self.workers)
        ok, degraded, n_tried = res["ok"], res["degraded"], res["attempts"]
        miss_cost = res["calls"] @ self.tool_price
        # outcome
        table = self.tier_table
        quality = 1.0 + (table["quality"][tier_idx] - 1.0) * self.class_weight[action]
        p_ok = np.minimum(0.99, p.base_success * quality * np.where(degraded, DEGRADED_QUALITY, 1.0))
        u_s = take("u_success")
        conf = np.clip(table["confidence_mean"][tier_idx] - 0.3 * (u_s - p_ok) + 0.08 * take("z_conf"), 0.01, 0.99)
        escalated = ok & ((take("u_escalate") >= self.autonomy) | (conf < k.confidence_threshold))
        review_s = p.review_ms_median / 1000.0 * np.exp(0.5 * take("z_review"))
        finish = end + np.where(escalated, review_s, 0.0)
        success = ok & (u_s < np.where(escalated, np.maximum(p_ok, p.review_success), p_ok))
        tok = np.exp(0.25 * take("z_tokens") - 0.03125)
        tokens_in = np.rint(p.prompt_tokens * n_tried * tok)
        tokens_out = np.rint(p.output_tokens * n_tried * tok)
        cost = (tokens_in * table["input_usd_per_mtok"][tier_idx] + tokens_out * table["output_usd_per_mtok"][tier_idx]
                ) * fx.price / 1e6 + miss_cost
        # coordination
        out: list[Message] = []
        coord_req = np.zeros(n)
        coord_ok = np.zeros(n)
        sent = np.zeros(n, dtype=np.int64)
        lat_s = p.network_latency_ms / 1000.0
        in_time = success & (finish + lat_s - arr <= p.coordination_deadline_s)
        u_link, resource = take("u_link"), take("resource")
        for d, (receivers, prob) in enumerate(self.links):
            u = u_link[:, d]
            wants = u < prob
            coord_req += wants
            coord_ok += wants & in_time
            sent += wants & success
            send = np.flatnonzero(wants & success)
            seqs = range(self.seq, self.seq + len(send))
            self.seq += len(send)
            if len(receivers) == 1:
                to = receivers * len(send)
            else:  # given u < prob, u / prob is uniform on [0, 1): it also picks the replica
                pick = np.minimum((u[send] / prob * len(receivers)).astype(np.int64), len(receivers) - 1)
                to = [receivers[i] for i in pick.tolist()]
            out += [Message(tm, self.id, sq, rc, r, o) for tm, sq, rc, r, o in
                    zip((finish[send] + lat_s).tolist(), seqs, to, resource[send, d].tolist(), arr[send].tolist())]
        cols = {"arrival": arr, "start": start, "end": end, "finish": finish, "ok": ok, "success": success,
                "confidence": np.where(ok, conf, np.nan), "escalated": escalated, "degraded": degraded,
                "attempts": n_tried, "hits": res["hits"], "lookups": np.full(n, len(p.tools)),
                "calls": res["calls"].sum(axis=1), "tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost,
                "coord_req": coord_req, "coord_ok": coord_ok, "tier": tier_idx}
        lo = 0
        for (w, *_), size in zip(parts, sizes):
            if size:
                piece = slice(lo, lo + size)
                w.add_tasks(slo_s=self.slo_s, messages_sent=int(sent[piece].sum()),
                            **{f: c[piece] for f, c in cols.items()})
            lo += size
        return out

    # ------------------------------------------------------------------ windows
    def _window(self, t: float) -> WindowData:
        k = int(t // self.window_s + 1e-9)
        w = self.windows.get(k)
        if w is None:
            w = self.windows[k] = WindowData()
        return w

    def _serve_inbox(self, until: float) -> None:
        totals: dict[int, list[int]] = {}
        for start, handled, in_time, conflicts in self.inbox.process(until, self.knobs.message_batch_size):
            tot = totals.setdefault(int(start // self.window_s + 1e-9), [0, 0, 0])
            tot[0] += handled
            tot[1] += in_time
            tot[2] += conflicts
        for k, (handled, in_time, conflicts) in totals.items():
            self._window(k * self.window_s).add_inbox(handled, in_time, conflicts)

    def _cached_keys(self, t: float) -> int:
        return sum(int(np.count_nonzero(c > t)) for c in self.cache_exp)

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
        return {"concurrency": self.knobs.max_concurrency, "autonomy": self.autonomy, "cached_keys": cached,
                "memory_mb": self.profile.memory_base_mb + cached * CACHE_ENTRY_KB / 1024.0 + self.env.leaked_mb(t_end)}

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
        w.finish(agent=self.id, index=k, t_start_s=k * self.window_s, t_end_s=t_end, window_s=self.window_s,
                 memory_capacity_mb=self.profile.memory_capacity_mb,
                 cache_capacity=sum(t.keyspace for t in self.profile.tools), **state)
        return w

    # ------------------------------------------------------------------ inspection and live changes
    def add_fault(self, fault) -> None:
        """Aim one more fault model at this agent (:meth:`Simulation.inject`
        checks that it starts no earlier than the time the agent has reached,
        and that a load surge starts at a window not drawn yet)."""
        self.env.faults.append(fault)
        self.crashes = self.env.crashes()
        self.fault_points = self.env.breakpoints()

    def snapshot(self, t: float) -> dict:
        """The agent's state at simulated time ``t`` (the time it has been
        stepped to): knobs, autonomy, ``queue_length`` (decisions arrived and
        waiting for a worker), ``busy_workers``, ``cached_keys`` (per tool),
        ``pending_changes`` (scheduled knob changes not yet in force) and the
        windows still open."""
        open_w = [w for k, w in sorted(self.windows.items()) if k >= self.next_window]
        arrival = [c for w in open_w for c in w._chunks.get("arrival", [])]
        start = [c for w in open_w for c in w._chunks.get("start", [])]
        waiting = 0
        if arrival:
            a, s = np.concatenate(arrival), np.concatenate(start)
            waiting = int(np.count_nonzero((a <= t) & (s > t)))
        return {
            "agent": self.id, "t_s": t, "knobs": self.knobs.model_dump(), "autonomy": self.autonomy,
            "queue_length": waiting, "busy_workers": sum(w > t for w in self.workers),
            "workers": self.knobs.max_concurrency,
            "cached_keys": {n: int(np.count_nonzero(c > t)) for n, c in zip(self.tool_names, self.cache_exp)},
            "pending_changes": [{"at_s": at, "knob": sc.change.knob, "old": sc.change.old, "new": sc.change.new,
                                 "ref": sc.ref} for at, _, sc in sorted(self.pending)],
            "active_faults": [f.kind for f in self.env.active(t)],
        }

    def metrics_row(self, w: WindowData) -> dict:
        """The metrics-table row of a closed window."""
        return window_metrics(w)


__all__ = ["AgentSim", "Block", "service_latency", "zipf_cdf"]
