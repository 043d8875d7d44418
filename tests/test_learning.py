"""Learning: the Thompson policy re-learns which remedy works when the cure that worked stops working."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from swarmopt.knobs import KnobChange
from swarmopt.optimizer.detect import Bottleneck
from swarmopt.optimizer.strategies import REMEDIES, remedy
from swarmopt.plugins import resolve
from swarmopt.policies import PolicyContext, RulePolicy, ThompsonPolicy
from swarmopt.results import Collector
from swarmopt.runtime.components import make_optimizer
from swarmopt.runtime.driver import drive
from swarmopt.runtime.local import LocalBackend

from conftest import short

CACHE, PARALLEL = REMEDIES["raise_cache_ttl"], REMEDIES["enable_parallel_tools"]
OPTIONS = ((CACHE, (KnobChange("market-hunter", "cache_ttl_s.data_source", 60.0, 240.0),)),
           (PARALLEL, (KnobChange("market-hunter", "parallel_tools", False, True),)))
SLOW = Bottleneck("agent_response_time", "high", "market-hunter", "response_time_ms_mean", 2800.0, 2000.0, 40.0, "",
                  "")
# probability that the judge keeps each remedy, before and after the change point: caching the data source cures
# the latency until its keys become uncacheable (e.g. every request asks for fresh prices); parallel tool calls
# then become the cure
KEEP = {"raise_cache_ttl": (0.8, 0.1), "enable_parallel_tools": (0.2, 0.8)}
BEFORE, AFTER = 30, 40


def stream(policy, seed: int) -> list[tuple[str, bool]]:
    """(remedy kind, kept) of each trial of an agent's response-time bottleneck: the policy picks, the outcome is
    drawn with the current keep probability and fed back, as the optimizer's judge does after each trial."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(BEFORE + AFTER):
        ctx = PolicyContext("market-hunter", SLOW, SLOW.type, OPTIONS, (), {}, 300.0 * i)
        remedy, actions = policy.choose(ctx, rng)
        kept = bool(rng.random() < KEEP[remedy.name][i >= BEFORE])
        policy.learn(SimpleNamespace(actions=actions, type="agent_response_time", kind=remedy.name), kept)
        out.append((remedy.name, kept))
    return out


def switch_trials(trials) -> int | None:
    """Trials after the change point until the policy plays the new cure in at least 4 of 5 consecutive trials."""
    post = [k == "enable_parallel_tools" for k, _ in trials[BEFORE:]]
    return next((j for j in range(len(post) - 4) if sum(post[j:j + 5]) >= 4), None)


def test_thompson_is_selectable_by_name(mh_scenario):
    policy, _, _ = resolve(mh_scenario.optimizer.model_copy(update={"policy": "thompson"}))
    assert isinstance(policy, ThompsonPolicy)
    with pytest.raises(ValueError):
        ThompsonPolicy(gamma=1.5)


def test_thompson_switches_to_the_new_cure_within_a_bounded_number_of_trials():
    """Bound: 20 trials (a trial is one change and its judgement, about two optimizer cycles). With gamma = 0.9
    the evidence for the old cure (~8 discounted successes, 2 failures at the change point) halves every ~7 trials
    while failures accrue, so its posterior mean falls under the untried prior's 0.5 after ~5 trials; a Monte Carlo
    of 400 other seeds (1000-1399) gives a median of 6 trials, 95th percentile 15, 99th 18, all within 20. Asserted
    on seeds 0-199: at least 95% switch within 20 trials (measured 99%) and the median is at most 10 (measured
    5.5). The fixed rules never switch: they always play the first applicable remedy."""
    runs = [stream(ThompsonPolicy(), seed) for seed in range(200)]
    sw = np.array([s if s is not None else 10_000 for s in map(switch_trials, runs)])
    assert np.mean(sw <= 20) >= 0.95 and np.median(sw) <= 10
    rules = [stream(RulePolicy(), seed) for seed in range(20)]
    assert all(switch_trials(r) is None for r in rules)
    # after the switch has had time (the last 20 trials), the learner keeps ~0.7 of its changes, the rules ~0.1
    def late(rs):
        return np.mean([kept for r in rs for _, kept in r[-20:]])

    assert late(runs) > 0.6 and late(rules) < 0.2


def test_a_remedy_that_observed_its_mechanism_is_tried_first_two_times_in_three():
    """Untried, a remedy whose precondition observed its mechanism (``Remedy.evidence``: the breaker threshold,
    proposed because the breaker keeps decisions degraded while its tools fail below their break-even) draws from
    Beta(2, 1) and a generic one (a longer TTL) from Beta(1, 1), so it is chosen with probability E[Beta(2, 1)] =
    2/3; with ``evidence_prior`` 0 with 1/2. Learning overrules the prior: after three rollbacks of it (discounted
    failures 1 + 0.9 + 0.81) its draw is Beta(2, 3.71) and it is chosen with probability 2 / 5.71 = 0.350. Each
    share over 3,000 seeded choices is within 4 standard errors (at most 4 x 0.0091) of its probability."""
    breaker = REMEDIES["tune_breaker_threshold"]
    assert breaker.evidence and not CACHE.evidence
    options = ((CACHE, OPTIONS[0][1]), (breaker, (KnobChange("market-hunter", "circuit_breaker.failure_rate_threshold",
                                                              0.1, 0.4),)))
    ctx = PolicyContext("market-hunter", SLOW, SLOW.type, options, (), {}, 0.0)

    def share(policy, n=3000):
        rng = np.random.default_rng(7)
        return np.mean([policy.choose(ctx, rng)[0] is breaker for _ in range(n)])

    for policy, p in ((ThompsonPolicy(), 2 / 3), (ThompsonPolicy(evidence_prior=0.0), 0.5)):
        assert abs(share(policy) - p) < 4 * np.sqrt(p * (1 - p) / 3000)
    taught = ThompsonPolicy()
    taught.choose(ctx, np.random.default_rng(0))
    for _ in range(3):
        taught.learn(SimpleNamespace(actions=options[1][1], type=SLOW.type, kind=breaker.name), False)
    p = 2 / (3 + 0.9 ** 2 + 0.9 + 1)
    assert abs(share(taught) - p) < 4 * np.sqrt(p * (1 - p) / 3000)
    with pytest.raises(ValueError, match="evidence_prior"):
        ThompsonPolicy(evidence_prior=-1.0)

    @remedy(risk=0.2, implementation_time_s=60, answers=["agent_response_time"], evidence=True)
    def drain_backlog(snapshot, knobs, profile):
        return None

    assert drain_backlog.remedy.evidence  # a plug-in remedy says so itself


def test_thompson_learns_from_the_judged_outcomes_end_to_end(mh_scenario):
    """The worked example with the learning policy: every reactive change the judge keeps, reverts or rolls back is one
    Bernoulli observation (1 = kept) of the remedy's arm in that agent's bandit for that bottleneck type."""
    sc = short(mh_scenario, mh_scenario.duration_s,
               optimizer=mh_scenario.optimizer.model_dump() | {"policy": "thompson"})
    opt = make_optimizer(sc, sc.seed)

    class Backend(LocalBackend):
        def optimizer(self, scenario, seed):
            return opt

    sink = Collector(sc, narrate_events=False)
    drive(sc, sc.seed, Backend(), sink)
    ev = sink.result(sc.seed, "local").events
    judged = ev[ev["event"].isin(["optimization.kept", "optimization.rolled_back", "optimization.reverted"])
                & ~ev["type"].isin(["predictive_optimization", "coordination_enhancement"])]
    assert len(judged) >= 2
    for (agent, type_), g in judged.groupby(["agent", "type"]):
        arms = opt.policy.bandits[(agent, type_)].stats()
        for kind, gk in g.groupby("kind"):
            assert arms[kind].pulls == len(gk)
        assert sum(a.pulls for a in arms.values()) == len(g)
