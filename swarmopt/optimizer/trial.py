"""Trial judgement: what to do with a change once its after-windows are judged (pure).

:func:`decide_trial` is a pure policy in the style of Ray Serve's
``autoscaling_policy.py``: the trial, the canary judge's
:class:`~swarmopt.optimizer.measure.Judgement` and the carried
:class:`TrialState` go in; a :class:`TrialOutcome` (the decision, the changes
to schedule, the undo to measure, the tabu, the new state) comes out. The
optimizer only applies it.

A change is kept on a pass; rolled back (exact old knob values restored) on a
fail or a guardrail breach, which lowers the optimizer's autonomy at once;
reverted the same way, without blame, when it shows no measured benefit. Its
remedy is then barred on that agent for :data:`TABU_S` or the stabilization
window, whichever is longer (a change that cannot be told from no change is
not retried while a reversal would be held anyway). An inconclusive judgement
(no data: NaN, zero variance, too few tasks), or a marginal one whose estimate
is a gain at the window level and whose interval there still reaches ``cfg.min_improvement``, is no decision
yet: the change is measured on over
``measure_windows`` more windows, up to ``cfg.max_measure_windows`` after it
took effect, and past that, up to ``cfg.extend_windows`` more, only while it is in the promising zone (its
deciding test's estimate a gain at p < ``cfg.promising_p``, :meth:`~swarmopt.optimizer.measure.Judgement.effect`:
close enough to a pass that measuring on is likely to decide it), each look at its share of alpha
(:func:`look_alpha`), and only then reverted (a change that cannot be told from no change is reverted once), or with
``cfg.at_horizon`` "keep_gain" kept when the deciding test's estimate is a gain, or "keep_promising" when it is
still promising at the last look of its extension. The undo of a revert whose estimate was a gain is measured
too (with ``cfg.measure_reverts``), and the change restored when undoing it made its target significantly worse
with no guardrail breach (the change and its undo are two experiments, and the second found the effect the first
was too noisy to show). Other undos are not measured, as nothing could follow from them: a rollback is never
restored, nor a change whose own estimate was no gain, and measuring them held the agent's next remedy back two
cycles (docs/decision-quality.md). Autonomy rises after ``autonomy_raise_after`` consecutive kept changes.

A decision can be forced ("keep", "rollback" or "revert"), e.g. by a
counterfactual run that continues a judged change the other way
(:attr:`swarmopt.optimizer.core.Optimizer.overrides`); everything that follows
(undo, tabu, learning, autonomy) follows the forced decision.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, stats

from swarmopt.knobs import KnobChange, align
from swarmopt.optimizer.measure import Judgement
from swarmopt.optimizer.strategies import Strategy
from swarmopt.optimizer.switchback import Arms
from swarmopt.schema import OptimizerConfig

TABU_S = 1800.0
DECISIONS = ("keep", "rollback", "revert")


@dataclass(frozen=True)
class Trial:
    """A change in flight on one agent, waiting for its after-windows; the undo
    of a reverted change (``undone``) is a trial too, measured but not decided
    on. ``arms``: the windows of a
    switchback trial (:mod:`swarmopt.optimizer.switchback`), empty for a
    before/after one; ``split_s``: where the judged span of a split look
    (:mod:`swarmopt.optimizer.split`) begins, NaN for none; ``before_from_s``:
    the earliest start of the before-span (:meth:`before_start_s`), inf for
    none before the ``measure_windows`` windows before the change."""

    strategy: Strategy
    effective_s: float
    measure_at_s: float
    undone: Strategy | None = None
    arms: Arms = ()
    lead_windows: int = 0
    split_s: float = math.nan
    settle_s: float = 0.0
    before_from_s: float = math.inf

    @property
    def split(self) -> bool:
        """Whether the trial is judged on the two arms of a split."""
        return not math.isnan(self.split_s)

    def after_windows(self, window_s: float) -> int:
        """The after-windows judged so far: of a switchback trial the new
        arm's and the ``lead_windows`` judged before/after before its arms
        began, of a split trial the lead and half the split's (each arm serves
        half the decisions), else those from the change to ``measure_at_s``."""
        if self.arms:
            return self.lead_windows + sum(new for _, new in self.arms)
        if self.split:
            return self.lead_windows + round((self.measure_at_s - self.split_s) / window_s / 2)
        return round((self.measure_at_s - self.after_start_s) / window_s)

    def before_start_s(self, window_s: float, measure_windows: int, max_windows: int) -> float:
        """Start of the before/after judge's before-span: the ``measure_windows``
        windows before the change, reaching back as many windows as the
        after-span has so far (at most ``max_windows``) but not before
        ``before_from_s``, since when the agent's configuration was the one
        the change replaced and its target at the level the change answers
        (from the target's last level shift, else since its bottleneck was
        first detected: :meth:`swarmopt.optimizer.core.Optimizer._regime_start`;
        the windows compared are then of the same system, and a balanced
        design halves the variance the short before-span adds at later looks)."""
        n = min(max(self.after_windows(window_s), measure_windows), max_windows)
        return min(self.effective_s - measure_windows * window_s,
                   max(self.before_from_s, self.effective_s - n * window_s))

    @property
    def after_start_s(self) -> float:
        """Start of the before/after judge's after-span: ``settle_s`` after the change took effect."""
        return self.effective_s + self.settle_s


def settle_windows(actions: tuple[KnobChange, ...], window_s: float) -> int:
    """Windows a change of cache TTLs takes to show its effect: as many as the
    longest TTL it sets or replaces lasts (an entry filled under the old TTL is
    served until it expires, and the hit rate under the new one builds up over
    one new TTL); 0 for a change of no TTL."""
    ttls = [float(v) for c in actions if c.knob.startswith("cache_ttl_s.") for v in (c.old, c.new) if v is not None]
    return math.ceil(max(ttls) / window_s - 1e-9) if ttls else 0


def fill_windows(actions: tuple[KnobChange, ...], rows: Sequence[Mapping]) -> int:
    """Windows a raise of a tool cache's size bound takes to fill: the entries
    it adds over the tool's misses per window in ``rows`` (the agent's recent
    window rows; every decision looks each tool up once, so a tool misses
    ``decision_count x (1 - cache_hit_rate_<tool>)`` times a window, and every
    miss fills an entry, none evicted until the bound is reached). Until then
    the hit rate has not reached its new level: on cache_too_small a 160 -> 640
    raise fills over about 13 windows, and its first five read no gain. 0 for
    no raise, or a tool with no misses (or none measured) in ``rows``."""
    out = 0
    for c in actions:
        if not (c.knob.startswith("max_cache_size.") and c.old and c.new and c.new > c.old):
            continue
        col = "cache_hit_rate_" + c.knob.split(".", 1)[1]
        misses = [r["decision_count"] * (1.0 - hit) for r in rows if not math.isnan(hit := r.get(col, math.nan))]
        per_window = sum(misses) / len(misses) if misses else 0.0
        if per_window > 0:
            out = max(out, math.ceil((c.new - c.old) / per_window - 1e-9))
    return out


def new_trial(s: Strategy, effective_s: float, cfg: OptimizerConfig, window_s: float, undone: Strategy | None = None,
              before_from_s: float = math.inf, rows: Sequence[Mapping] = ()) -> Trial:
    """The trial of ``s`` taking effect at ``effective_s``: its first look after
    ``measure_windows`` windows, which begin once a raised cache size bound
    has filled (:func:`fill_windows` of the agent's recent window ``rows``, at
    most ``cfg.max_measure_windows``) and, with ``cfg.cache_settle``, once a
    TTL change has settled (:func:`settle_windows`): the Spinnaker/Kayenta
    canary's warm-up, a transient deleted as in simulation output analysis."""
    fill = min(cfg.max_measure_windows, fill_windows(s.actions, rows))
    settle_s = max(settle_windows(s.actions, window_s) if cfg.cache_settle else 0, fill) * window_s
    return Trial(s, effective_s, effective_s + settle_s + cfg.measure_windows * window_s, undone,
                 settle_s=settle_s, before_from_s=before_from_s)


@dataclass(frozen=True)
class DecisionContext:
    """What a decision hook sees of a judged change: the ``strategy``, the canary
    judge's ``judgement`` (its ``decision`` is the judge's) and the simulated
    time ``t_s``."""

    strategy: Strategy
    judgement: Judgement
    t_s: float


@dataclass(frozen=True)
class TrialState:
    """What judging carries from one trial to the next: the optimizer's autonomy
    and its run of consecutive kept changes."""

    autonomy: float
    streak: int = 0


@dataclass(frozen=True)
class TrialOutcome:
    """What the optimizer does after judging a trial.

    ``decision``: "keep", "rollback" or "revert" for a change (``forced`` when
    it is not the judge's), "restore" or "" (nothing to do) for an undo.
    ``reason``: why, in one line. ``changes`` take effect at ``effective_s``
    under the reference ``ref`` (``rollback:<id>`` or ``restore:<id>``);
    ``undo`` is the trial that measures a rollback or revert. ``tabu_until_s``
    bars the remedy on the agent until then; ``lift_tabu`` lifts the bar of a
    restored change. ``learn``: the outcome is credited to learning (judged
    changes only). ``state``: the new autonomy and streak; ``autonomy_reason``
    says why autonomy moved ("" when it did not).
    """

    decision: str
    reason: str
    forced: bool = False
    changes: tuple[KnobChange, ...] = ()
    effective_s: float = math.nan
    ref: str = ""
    undo: Trial | None = None
    tabu_until_s: float | None = None
    lift_tabu: bool = False
    learn: bool = False
    state: TrialState | None = None
    autonomy_reason: str = ""


@functools.lru_cache(maxsize=32)
def look_levels(alpha: float, looks: int, grid: int = 401) -> tuple[float, ...]:
    """One-sided nominal levels of looks 1..``looks`` of a group-sequential
    test whose one-sided false-decision budget ``alpha`` is spent half at the
    first look and the rest evenly over the later ones (Lan & DeMets 1983),
    with equal information at each look (the z statistics of looks i < j
    correlated sqrt(i / j), as a before-span as long as the after-span gives,
    :meth:`Trial.before_start_s`; a before-span that stays shorter correlates
    the looks more, which only lowers the total). Each level is the one whose
    boundary is crossed at that look and at no earlier one with exactly its
    share of ``alpha``: the recursive integration of Armitage, McPherson &
    Rowe (1969) over the score's continuation region on ``grid`` points
    (Jennison & Turnbull 2000, ch. 19). By Bonferroni the later looks would
    each get their share alone; with 3 looks at 0.02 the levels are 0.01,
    0.0072 and 0.0085 against 0.01, 0.005 and 0.005. Raises ValueError for
    ``looks`` < 1 or ``alpha`` not in (0, 1)."""
    if looks < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need looks >= 1 and 0 < alpha < 1, got looks={looks}, alpha={alpha}")
    if looks == 1:
        return (alpha,)
    share = alpha / (2 * (looks - 1))
    out = [alpha / 2]
    b = float(stats.norm.isf(alpha / 2))  # the score S_k = Z_k sqrt(k) has independent N(0, 1) increments
    s = np.linspace(-8.0, b, grid)
    density = stats.norm.pdf(s)
    for k in range(2, looks + 1):
        mass = density * (s[1] - s[0])
        mass[[0, -1]] /= 2  # trapezoid weights
        b = optimize.brentq(_excess_crossing, s[0], s[-1] + 12.0, args=(mass, s, share))
        out.append(float(stats.norm.sf(b / math.sqrt(k))))
        nxt = np.linspace(-8.0 * math.sqrt(k), b, grid)
        density = stats.norm.pdf(nxt[:, None] - s[None, :]) @ mass
        s = nxt
    return tuple(out)


def _excess_crossing(c: float, mass: np.ndarray, s: np.ndarray, share: float) -> float:
    """Probability of crossing ``c`` from the continuation ``mass`` at scores ``s`` in one step, less ``share``."""
    return float(mass @ stats.norm.sf(c - s)) - share


def look_alpha(cfg: OptimizerConfig, horizon_windows: int) -> float:
    """The two-sided false-decision level of one look at a change judged on
    ``horizon_windows`` after-windows, look k = ceil(horizon_windows /
    ``measure_windows``) of ``(max_measure_windows + extend_windows) // measure_windows``: each
    side's half of ``cfg.alpha`` spent over the looks by :func:`look_levels`,
    so that a change that changes nothing is kept or rolled back at some look
    with probability <= ``cfg.alpha``; with one look, all of it."""
    looks = max(1, (cfg.max_measure_windows + cfg.extend_windows) // cfg.measure_windows)
    k = min(looks, max(1, math.ceil(horizon_windows / cfg.measure_windows - 1e-9)))
    return 2.0 * look_levels(cfg.alpha / 2, looks)[k - 1]


def _move(state: TrialState, step: float, cfg: OptimizerConfig) -> float:
    return min(cfg.max_autonomy, max(cfg.min_autonomy, state.autonomy + step))


def decide_trial(agent: str, trial: Trial, judgement: Judgement, state: TrialState, cfg: OptimizerConfig,
                 window_s: float, t: float, forced: str | None = None) -> TrialOutcome:
    """The outcome of judging ``trial`` on ``agent`` at time ``t`` (s).

    ``forced`` (one of :data:`DECISIONS`) replaces the judge's decision on a
    change; it does not apply to an undo, which is measured, not decided on.
    Undo and restore changes take effect ``cfg.rollback_time_s`` after ``t``, on
    a window boundary. Raises ValueError for any other ``forced``.
    """
    j = judgement
    if trial.undone is not None:
        s = trial.undone
        if j.verdict != "fail" or j.breaches:
            return TrialOutcome("", j.reason, state=state)
        return TrialOutcome("restore", f"undoing it made {s.target_metric} worse: {j.reason}", changes=s.actions,
                            effective_s=align(t + cfg.rollback_time_s, window_s), ref=f"restore:{s.id}",
                            lift_tabu=True, state=state)
    if forced is not None and forced not in DECISIONS:
        raise ValueError(f"forced decision must be one of {DECISIONS}, got {forced!r}")
    s = trial.strategy
    horizon_s = trial.after_windows(window_s) * window_s
    # the window level's estimate is a gain (NaN is none; for a mean target it sees what a median test misses, e.g.
    # a shorter queue tail) that more windows could still show to be at least the minimum improvement; an interval
    # wholly below it is futile to measure on (futility stopping of group-sequential designs)
    w = j.window
    promising = (j.verdict == "marginal" and w.improvement_pct > 0
                 and not w.ci_high_pct < 100 * cfg.min_improvement)
    # the deciding test close to a pass: the promising zone of an adaptive design (Mehta & Pocock 2011)
    e = j.effect(cfg.alpha)
    gain = e.improvement_pct > 0  # the deciding test's estimate (NaN is none)
    in_zone = j.verdict == "marginal" and gain and e.p_value < cfg.promising_p
    windows = horizon_s / window_s + cfg.measure_windows  # the after-span of the next look
    no_look_left = windows > cfg.max_measure_windows + cfg.extend_windows + 1e-9
    past_horizon = windows > cfg.max_measure_windows + 1e-9
    if past_horizon:
        # past the horizon only a change in the zone, where measuring on is likely to decide; elsewhere it holds
        # the agent's next remedy back for little (a 3-5% gain on the Market Hunter stays undecided at 25 windows)
        promising = in_zone and not no_look_left
    if (forced is None and not j.breaches
            and (promising or j.verdict == "inconclusive" and not past_horizon)):
        # no data (or too little to tell a gain from noise) is never a verdict: measure on, with no
        # rollback, no blame and no autonomy change; the judge spends its alpha over the looks (look_alpha)
        longer = replace(trial, measure_at_s=trial.measure_at_s + cfg.measure_windows * window_s)
        return TrialOutcome("", f"measuring on to {longer.measure_at_s:.0f}s: {j.reason}", undo=longer, state=state)
    decision = forced or j.decision
    reason = j.reason if forced is None else f"forced {decision} (judge: {j.decision}, {j.reason})"
    if forced is None and decision == "revert" and in_zone and no_look_left:
        # still in the zone at the last look: a keep there errs on a no-op at most promising_p of the time
        if cfg.at_horizon == "keep_promising":
            decision, reason = "keep", f"kept at the horizon, still promising (p = {e.p_value:.3g}): {j.reason}"
        elif cfg.keep_monotone and s.monotone:
            # a remedy that cannot make its target worse: the question left is the size of its gain
            decision = "keep"
            reason = (f"kept at the horizon: {s.kind} cannot make {s.target_metric} worse and its gain is still "
                      f"promising (p = {e.p_value:.3g}): {j.reason}")
    if forced is None and decision == "revert" and cfg.at_horizon == "keep_gain" and gain:
        # undecided at the horizon: keep on the sign of the estimate (the Bayes decision under a symmetric loss);
        # guardrail breaches and measured harm are rollbacks before this
        decision = "keep"
        reason = f"kept at the horizon, the estimate is a gain ({e.improvement_pct:+.1f}%): {j.reason}"
    common = {"decision": decision, "reason": reason, "forced": forced is not None, "learn": True}
    if decision == "keep":
        streak = state.streak + 1
        if streak < cfg.autonomy_raise_after:
            return TrialOutcome(**common, state=replace(state, streak=streak))
        new = _move(state, cfg.autonomy_step_up, cfg)
        why = f"{streak} consecutive kept changes, no rollback" if new != state.autonomy else ""
        return TrialOutcome(**common, state=TrialState(new, 0), autonomy_reason=why)
    eff = align(t + cfg.rollback_time_s, window_s)
    undo = replace(s, id=f"rollback:{s.id}", actions=s.rollback())
    new = _move(state, -cfg.autonomy_step_down, cfg) if decision == "rollback" else state.autonomy
    why = f"rollback of {s.id} on {agent}: {reason}" if new != state.autonomy else ""
    return TrialOutcome(**common, changes=undo.actions, effective_s=eff, ref=undo.id,
                        undo=new_trial(undo, eff, cfg, window_s, s)
                        if decision == "revert" and cfg.measure_reverts and gain else None,
                        tabu_until_s=t + max(TABU_S, cfg.stabilization_window_s), state=TrialState(new, 0),
                        autonomy_reason=why)
