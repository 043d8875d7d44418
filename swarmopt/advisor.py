"""The advisor: the Performance Optimizer's cycle on real agents.

:class:`Advisor` feeds the windows of a :class:`~swarmopt.instrument.Telemetry`
to the same :class:`~swarmopt.optimizer.core.Optimizer` the simulation runs
(``cycle_with`` then ``commit_and_report``): detection, planning, the canary
judge, keep or roll back, learning. It acts only through knobs the user
declares with :meth:`Advisor.knob`:

* with getters only (the default) it is **recommend-only**: every strategy it
  would apply is a recommendation (:meth:`Advisor.recommendations`) with its
  evidence (the bottleneck: metric, value, threshold) and expected effect;
* with setters it **applies** a change when it takes effect, measures it with
  the same judge on the windows before and after, and keeps it or rolls it
  back (calling the setter with the old value). A strategy riskier than the
  optimizer's autonomy is applied only if ``approve`` says yes.

Only declared knobs are considered (a policy wrapper hides the others from the
optimizer's choice); in apply mode only knobs with a setter. Predictive
pre-scaling (``proactive``) is on only when every agent has such a
``max_concurrency`` knob.

Window clock: one wall-clock window of the telemetry (``window_s`` seconds)
counts as one of the optimizer's 60 s windows, so its schedule keeps its length
in windows whatever ``window_s`` is: a cycle every ``cycle_windows`` windows, a
change in force two windows after it is planned (one for a rollback), judged on
``measure_windows`` windows before and after, no knob reversal within 60
windows. Events report wall-clock seconds since the telemetry started.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Callable

import numpy as np
import pandas as pd
from pydantic import ValidationError

from swarmopt.instrument import Telemetry
from swarmopt.knobs import ScheduledChange, set_knob
from swarmopt.loader import InputError, describe
from swarmopt.optimizer.core import Optimizer
from swarmopt.plugins import resolve
from swarmopt.schema import AgentProfile, Knobs, OptimizerConfig, ToolProfile

NOMINAL_WINDOW_S = 60.0
TIME_FIELDS = ("t_s", "effective_s", "before_start_s", "before_end_s", "after_start_s", "after_end_s",
               "implementation_time_s")
UNMEASURED_TOOL_MS = 1e-3  # a declared tool never called before the first cycle: no latency measured


@dataclasses.dataclass
class _Knob:
    get: Callable[[], Any]
    set: Callable[[Any], Any] | None


class _Declared:
    """A policy that chooses like ``inner`` among the remedies whose knobs all pass ``allowed(agent, knob)``."""

    def __init__(self, inner, allowed: Callable[[str, str], bool]) -> None:
        self.inner, self.allowed = inner, allowed

    def choose(self, ctx, rng: np.random.Generator):
        usable = tuple(o for o in ctx.options if all(self.allowed(c.agent, c.knob) for c in o[1]))
        return self.inner.choose(dataclasses.replace(ctx, options=usable), rng) if usable else None

    def learn(self, strategy, kept: bool) -> None:
        self.inner.learn(strategy, kept)


class Advisor:
    """The optimizer's cycle over ``telemetry`` (see the module docstring).

    ``cycle_windows``: windows between cycles. ``config``: optimizer settings
    (an :class:`~swarmopt.schema.OptimizerConfig` or a dict of its fields;
    times in the optimizer's 60 s windows, see the module docstring);
    ``thresholds.response_time_ms`` defaults to the telemetry's ``slo_ms``.
    ``budget_usd_per_decision``: the cost budget of every agent. ``approve``:
    called with a strategy (dict) that needs approval; True applies it.
    ``seed``: the optimizer's RNG (Thompson sampling). Raises InputError for
    invalid settings.
    """

    def __init__(self, telemetry: Telemetry, *, cycle_windows: int = 5, config: OptimizerConfig | dict | None = None,
                 budget_usd_per_decision: float = 0.05, approve: Callable[[dict], bool] | None = None,
                 seed: int = 0) -> None:
        self.tel = telemetry
        self.scale = NOMINAL_WINDOW_S / telemetry.window_s  # optimizer seconds per wall-clock second
        data = config.model_dump() if isinstance(config, OptimizerConfig) else dict(config or {})
        data["thresholds"] = {"response_time_ms": telemetry.slo_ms, **data.get("thresholds", {})}
        if cycle_windows < 1:
            raise InputError(f"Advisor: cycle_windows must be >= 1, got {cycle_windows}")
        data["cycle_s"] = cycle_windows * NOMINAL_WINDOW_S
        try:
            self.config = OptimizerConfig.model_validate(data)
        except ValidationError as err:
            raise InputError(describe(err, "Advisor config")) from None
        self.cycle_windows = cycle_windows
        self.budget = budget_usd_per_decision
        self.approve = approve
        self.seed = seed
        self.knobs: dict[tuple[str, str], _Knob] = {}
        self.optimizer: Optimizer | None = None
        self.event_rows: list[dict] = []
        self.last_report: dict | None = None
        self._next_cycle = cycle_windows
        self._rows: list[dict] = []
        self._samples: list = []
        self._applied: list[dict] = []
        self._pending: list[ScheduledChange] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ setup
    def knob(self, agent: str, knob: str, get: Callable[[], Any],
             set: Callable[[Any], Any] | None = None) -> None:  # noqa: A002 (get/set read best here)
        """Declare ``knob`` (a dotted path of :class:`~swarmopt.schema.Knobs`,
        e.g. ``cache_ttl_s.price_feed``, ``max_concurrency``) of ``agent``:
        ``get()`` returns its current value, ``set(value)`` (optional) changes
        it. Declare knobs before the first cycle. A ``max_concurrency`` getter
        also gives the telemetry the agent's worker count. Raises InputError for
        an unknown knob or a current value out of its bounds."""
        try:
            set_knob(Knobs(), knob, get())
        except KeyError as err:
            raise InputError(f"knob: {err.args[0]}") from None
        except ValidationError as err:
            raise InputError(describe(err, f"knob({agent!r}, {knob!r})")) from None
        if self.optimizer is not None:
            raise InputError(f"knob: declare {knob!r} before the first cycle")
        self.tel.declare(agent, workers=get if knob == "max_concurrency" else None)
        self.knobs[(agent, knob)] = _Knob(get, set)

    @property
    def applies(self) -> bool:
        """Whether it applies changes (some knob has a setter and the config is not recommend-only)."""
        return any(k.set is not None for k in self.knobs.values()) and not self.config.recommend_only

    def _allowed(self, agent: str, knob: str) -> bool:
        k = self.knobs.get((agent, knob))
        return k is not None and (k.set is not None or not self.applies)

    def _make_optimizer(self) -> Optimizer:
        """The optimizer over the agents seen (or declared) before the first
        cycle (agents that appear later are not optimized); each agent's profile has
        its declared knobs' current values and, per tool, the median latency
        and error rate of its calls that were not cache hits so far."""
        m = self.tel.metrics
        profiles = {}
        for agent in self.tel.agents:
            knobs = Knobs()
            for (a, name), k in sorted(self.knobs.items()):
                if a == agent:
                    knobs = set_knob(knobs, name, k.get())
            rows = m[m["agent"] == agent] if len(m) else m
            rate = float(rows["arrival_rate_per_s"].mean()) if len(rows) else 0.0
            profiles[agent] = AgentProfile(id=agent, name=agent, base_rate_per_s=min(10_000.0, max(rate, 1e-6)),
                                           tools=self._tools(agent, knobs), knobs=knobs,
                                           cost_budget_usd_per_decision=self.budget)
        # predictive pre-scaling changes max_concurrency outside the policy: only where that knob may change
        proactive = self.config.proactive and all(self._allowed(a, "max_concurrency") for a in profiles)
        cfg = self.config.model_copy(update={"recommend_only": not self.applies, "proactive": proactive})
        inner, _, _ = resolve(cfg)
        policy = _Declared(inner, self._allowed)
        return Optimizer(cfg, profiles, NOMINAL_WINDOW_S, policy, np.random.default_rng(self.seed))

    def _tools(self, agent: str, knobs: Knobs) -> list[ToolProfile]:
        stats = self.tel.tool_stats(agent)
        names = dict.fromkeys([*stats, *knobs.cache_ttl_s])
        tools = []
        for name in names:
            st = stats.get(name, {})
            latency = st.get("miss_latency_ms_median", math.nan)
            tools.append(ToolProfile(name=name, latency_ms_median=UNMEASURED_TOOL_MS if latency != latency else
                                     max(latency, UNMEASURED_TOOL_MS), error_rate=st.get("miss_error_rate", 0.0),
                                     price_usd_per_call=self.tel.tool_prices.get(name, 0.0)))
        return tools

    # ------------------------------------------------------------------ loop
    def tick(self, now_s: float | None = None) -> list[dict]:
        """Apply the changes due, close the windows that can close and run the
        cycles due at ``now_s`` (seconds since the telemetry started; default
        now). Returns the new events."""
        with self._lock:
            now = self.tel.clock() - self.tel.origin if now_s is None else now_s
            events: list[dict] = []
            self._apply_due(now, events)
            rows, samples = self.tel.close(now)
            self._rows += rows
            self._samples += samples
            while self.tel.closed >= self._next_cycle:
                events += self._cycle(self._next_cycle)
                self._next_cycle += self.cycle_windows
                self._apply_due(now, events)
            self.event_rows += events
            return events

    def _cycle(self, window: int) -> list[dict]:
        """The optimizer's cycle at the start of ``window`` on the rows of the windows before it."""
        end = window * self.tel.window_s
        rows = [r for r in self._rows if r["t_end_s"] <= end + 1e-9]
        samples = [s for s in self._samples if s.t_end_s <= end + 1e-9]
        self._rows, self._samples = self._rows[len(rows):], self._samples[len(samples):]
        if self.optimizer is None:
            self.optimizer = self._make_optimizer()
        sc, known = self.scale, self.optimizer.profiles
        rows = [dict(r, t_start_s=r["t_start_s"] * sc, t_end_s=r["t_end_s"] * sc) for r in rows if r["agent"] in known]
        samples = [dataclasses.replace(s, t_start_s=s.t_start_s * sc, t_end_s=s.t_end_s * sc)
                   for s in samples if s.agent in known]
        t = window * NOMINAL_WINDOW_S
        proposals, rollbacks, events = self.optimizer.cycle_with(t, rows, self._applied, samples, True)
        self._applied = []
        decisions = {p.strategy.id: bool(self.approve(_strategy(p.strategy)))
                     for p in proposals if p.needs_approval and self.approve is not None}
        changes, more, self.last_report = self.optimizer.commit_and_report(t, decisions)
        self._pending += rollbacks + changes
        return [self._wall_clock(e) for e in events + more]

    def _apply_due(self, now: float, events: list[dict]) -> None:
        due = [c for c in self._pending if c.at_s / self.scale <= now + 1e-9]
        self._pending = [c for c in self._pending if c not in due]
        for c in due:
            ch = c.change
            ev = {"t_s": now, "event": "knob.applied", "agent": ch.agent, "knob": ch.knob, "old": ch.old,
                  "new": ch.new, "ref": c.ref, "effective_s": c.at_s / self.scale}
            knob = self.knobs.get((ch.agent, ch.knob))
            try:
                if knob is None or knob.set is None:
                    raise LookupError(f"no setter declared for {ch.knob} of {ch.agent}")
                knob.set(ch.new)
            except Exception as err:  # the user's setter: report it, the judge will see no effect
                ev |= {"event": "knob.failed", "detail": f"{type(err).__name__}: {err}"}
            self._applied.append({"t_s": c.at_s, "agent": ch.agent, "knob": ch.knob, "old": ch.old, "new": ch.new})
            events.append(ev)

    def _wall_clock(self, event: dict) -> dict:
        return {k: (v / self.scale if k in TIME_FIELDS and isinstance(v, (int, float)) else v)
                for k, v in event.items()}

    def start(self, interval_s: float | None = None) -> "Advisor":
        """Run :meth:`tick` in a background thread every ``interval_s``
        (default a tenth of a window, at most 1 s); returns self."""
        interval = min(1.0, self.tel.window_s / 10) if interval_s is None else interval_s
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                self.tick()

        self._thread = threading.Thread(target=loop, name="swarmopt-advisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "Advisor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ results
    @property
    def events(self) -> pd.DataFrame:
        """The events so far (the simulation's events table; times in seconds since the telemetry started)."""
        with self._lock:
            return pd.DataFrame(self.event_rows)

    def recommendations(self) -> list[dict]:
        """The strategies it recommends (recommend-only mode) or could not
        apply (needing approval that was not given), latest first and each
        change once: agent,
        knob, old and new value, kind, expected improvement (%), the evidence
        (the bottleneck that raised it) and the description."""
        with self._lock:
            evs = list(self.event_rows)
        found = {(e["t_s"], e["agent"], e["type"]): e for e in evs if e["event"] == "bottleneck.detected"}
        out, seen = [], set()
        for e in reversed(evs):
            key = (e["event"], e.get("agent"), e.get("knob"), e.get("new"))
            if e["event"] not in ("strategy.recommended", "strategy.rejected") or key in seen:
                continue
            seen.add(key)
            b = found.get((e["t_s"], e["agent"], e["type"]))
            evidence = (f"{b['metric']} = {b['value']:.4g} against a target of {b['threshold']:.4g} "
                        f"({b['severity']}, impact {b['impact']:+.1f}%): {b['detail']}") if b else e["detail"]
            out.append({"t_s": e["t_s"], "agent": e["agent"], "knob": e["knob"], "old": e["old"], "new": e["new"],
                        "kind": e["kind"], "expected_improvement_pct": e["expected_improvement"],
                        "evidence": evidence, "description": e["detail"],
                        "status": "recommended" if e["event"] == "strategy.recommended" else "needs approval"})
        return out

    def measurements(self) -> pd.DataFrame:
        """The judged changes (``optimization.measured`` events): before, after,
        improvement and its interval, p-value, verdict and decision."""
        ev = self.events
        return ev[ev["event"] == "optimization.measured"].reset_index(drop=True) if len(ev) else ev


def _strategy(s) -> dict:
    return {"id": s.id, "agent": ",".join(sorted({c.agent for c in s.actions})), "kind": s.kind, "risk": s.risk,
            "changes": [(c.knob, c.old, c.new) for c in s.actions], "expected_improvement": s.expected_improvement,
            "description": s.description}

