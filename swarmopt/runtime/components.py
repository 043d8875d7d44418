"""Factories of the optimizer and orchestrator of a scenario (shared by runtimes)."""

from __future__ import annotations

import numpy as np

from swarmopt.optimizer.core import Optimizer
from swarmopt.orchestrator import Orchestrator
from swarmopt.policies import make_policy
from swarmopt.schema import Scenario
from swarmopt.sim.seeds import agent_seeds


def make_optimizer(scenario: Scenario, seed: int) -> Optimizer:
    """The scenario's Performance Optimizer with its own RNG stream."""
    _, opt_seed = agent_seeds(seed, len(scenario.agents))
    profiles = {a.id: a for a in scenario.agents}
    return Optimizer(scenario.optimizer, profiles, scenario.window_s, make_policy(scenario.optimizer.policy),
                     np.random.default_rng(opt_seed))


def make_orchestrator(scenario: Scenario) -> Orchestrator:
    """The scenario's Strategic Orchestrator."""
    profiles = {a.id: a for a in scenario.agents}
    return Orchestrator(scenario.orchestrator, profiles, dict(scenario.models), scenario.window_s)
