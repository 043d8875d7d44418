"""Recovery when a cure stops working, end to end on scenarios/library/cache_bypass_after_cure.yaml.

At 1800 s the Market Hunter's data source becomes 3.5x slower, and a longer data-source cache TTL cures it; at
5400 s the source turns into a live feed that cannot be cached (``cache_bypass``) and the TTL cure stops working.
The learning policy (``thompson``: discounted Thompson sampling, :class:`swarmopt.policies.ThompsonPolicy`) moves
to another remedy within N = 1 trial of the stale cure after it stops working: a change with no measured benefit
is reverted and its remedy barred on the agent for the stabilization window
(:func:`swarmopt.optimizer.trial.decide_trial`), and a revert is reward 0 in the bandit, so the next remedy tried
is another one. Only a restore (the undo of the reverted change judged significantly worse, which a change with
no effect meets at about the judge's false-decision rate, under 5%) lifts the bar, and then the stale cure may
take one more step: N + 1.

Seeds 1-12 (measured at c29871f): the TTL cure was kept before the bypass on seeds 2, 3, 5, 6, 9 and 10; on none
was the stale cure tried again: a longer TTL is proposed only where its predicted effect reaches the judge's
minimum (:func:`swarmopt.optimizer.strategies.ttl_raise_gain`), and a cache that hits nothing predicts none, so the
first trial after the bypass is another remedy (0 stale trials; before that gate, seeds 6, 8, 9 and 10 each spent
one TTL raise, reverted, first). Moving is not curing, but here it did: parallel tools and the faster tier were
kept on each of the six.
"""

from __future__ import annotations

import pytest

from swarmopt import Simulation

from conftest import ROOT

SCENARIO = ROOT / "scenarios" / "library" / "cache_bypass_after_cure.yaml"
AGENT, CURE, ONSET_S = "market-hunter", "raise_cache_ttl", 5400.0
N = 1
SEEDS = [2, 3, 5, 6, 9, 10]
JUDGED = ("optimization.kept", "optimization.reverted", "optimization.rolled_back")


def trials(seed: int) -> list[tuple[float, str, str]]:
    """(time scheduled, remedy, outcome) of the reactive changes on the Market Hunter under thompson, in order;
    a restore is an outcome of its own, at the time it was decided."""
    sim = Simulation(SCENARIO, seed, policy="thompson")
    sim.run()
    ev = sim.events
    ev = ev[ev["agent"] == AGENT]
    scheduled = ev[(ev["event"] == "optimization.scheduled") & (ev["type"] != "predictive_optimization")]
    outcome = {r.strategy_id: r.event.split(".")[1] for r in ev[ev["event"].isin(JUDGED)].itertuples()}
    out = [(r.t_s, r.kind, outcome.get(r.strategy_id, "in flight")) for r in scheduled.itertuples()]
    out += [(r.t_s, r.kind, "restored") for r in ev[ev["event"] == "optimization.restored"].itertuples()]
    return sorted(out, key=lambda x: (x[0], x[2] != "restored"))  # a cycle judges (restores) before it plans


@pytest.fixture(scope="module")
def runs() -> dict[int, list[tuple[float, str, str]]]:
    return {seed: trials(seed) for seed in SEEDS}


def test_the_case_occurs_the_cure_was_kept_before_it_stopped_working(runs):
    cured = [seed for seed, tr in runs.items() if any(t < ONSET_S and k == CURE and o == "kept" for t, k, o in tr)]
    assert len(cured) >= 3, runs


@pytest.mark.parametrize("seed", SEEDS)
def test_the_learning_policy_moves_to_another_remedy_within_n_trials(runs, seed):
    tr = runs[seed]
    if not any(t < ONSET_S and k == CURE and o == "kept" for t, k, o in tr):
        pytest.skip(f"seed {seed}: the TTL cure was not kept before the bypass")
    after = [(k, o) for t, k, o in tr if t >= ONSET_S]
    first_other = next((i for i, (k, o) in enumerate(after) if k != CURE), None)
    assert first_other is not None, after  # it does move
    stale = [o for k, o in after[:first_other] if o != "restored"]
    restores = sum(o == "restored" for _, o in after[:first_other])
    assert all(o in ("reverted", "rolled_back") for o in stale), after  # the stale cure is never kept
    assert len(stale) <= N + restores, after
