"""Switchback looks: a change measured on against its old configuration in alternating blocks (pure).

A before/after judge compares the windows after a change with the windows
before it, so whatever else moved in between (a fault that deepens, a load
ramp, a cure elsewhere) is read as the change's effect, and the trend
adjustment that guards against it (:func:`swarmopt.optimizer.measure.adjusted_measure`)
about doubles the standard error. A switchback design (the experiment of
marketplaces whose units interfere, where a per-request split is impossible:
Bojinov, Simchi-Levi & Zhao, "Design and Analysis of Switchback Experiments",
Management Science 2023) instead runs the new and the old configuration in
alternating blocks of windows, so both arms see the same fault, load and time
and the arm is nearly orthogonal to any trend.

A change is judged before/after first (a clear effect is decided within
``measure_windows``); one that the judge cannot decide yet is measured on by
switchback looks (``optimizer.judge_design``): O N O N ... O N, ``2 n`` blocks
for ``n = measure_windows``, each judged on its last window (the ones before it
are its burn-in), ending in the new configuration, and judged on its two arms
alone. Knobs whose effect outlives a window (:data:`CARRIED`: a cache entry
lives a TTL, so an old-arm window would still hit the entries the new arm
filled) are measured on before/after.
"""

from __future__ import annotations

from swarmopt.knobs import KnobChange, ScheduledChange
from swarmopt.optimizer.strategies import Strategy

#: Knob families whose effect outlives the window it was set in (cache entries keep the expiry they were filled
#: with): a change of one is judged before/after, not by switchback.
CARRIED = ("cache_ttl_s", "max_cache_size")

#: The ``ref`` of a switchback flip is this prefix and the strategy's id.
REF = "switchback:"

#: Arms of a switchback trial: (window start (s), True for the new configuration), in time order.
Arms = tuple[tuple[float, bool], ...]


def switchable(strategy: Strategy) -> bool:
    """Whether every knob ``strategy`` changes takes full effect within a window (none in :data:`CARRIED`)."""
    return all(c.knob.partition(".")[0] not in CARRIED for c in strategy.actions)


def plan(actions: tuple[KnobChange, ...], start_s: float, new_blocks: int, window_s: float, strategy_id: str,
         block: int = 1) -> tuple[Arms, list[ScheduledChange]]:
    """The judged windows and knob flips of a switchback look at ``actions``, in force at ``start_s``.

    From ``start_s`` (s, a window boundary) the look runs ``2 n`` blocks of
    ``block`` windows (``n = new_blocks``), O N O N ... O N: the old
    configuration (``actions`` undone), then the new one, and so on, ending in
    the new one ``2 n x block`` windows after ``start_s``. Returns the judged
    windows, each block's last (start s, new?), and the flips that make the
    blocks, each with reference :data:`REF` + ``strategy_id``. Raises
    ValueError for ``new_blocks`` or ``block`` < 1.
    """
    if new_blocks < 1 or block < 1:
        raise ValueError(f"new_blocks and block must be >= 1, got {new_blocks!r} and {block!r}")
    undo = tuple(c.inverse() for c in reversed(actions))
    arms, flips = [], []
    for b in range(2 * new_blocks):
        new = b % 2 == 1
        flips += [ScheduledChange(start_s + b * block * window_s, c, REF + strategy_id)
                  for c in (actions if new else undo)]
        arms.append((start_s + ((b + 1) * block - 1) * window_s, new))
    return tuple(arms), flips
