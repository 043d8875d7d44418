"""Factories of the optimizer and orchestrator of a scenario (shared by runtimes)."""

from __future__ import annotations

import numpy as np

from swarmopt.optimizer.core import Optimizer
from swarmopt.orchestrator import Orchestrator
from swarmopt.plugins import Plugins, resolve
from swarmopt.schema import Scenario
from swarmopt.sim.seeds import agent_seeds


def make_optimizer(scenario: Scenario, seed: int, plugins: Plugins | None = None) -> Optimizer:
    """The scenario's Performance Optimizer with its own RNG stream, its policy,
    detection rules and remedies: the scenario's (built-in names or import
    paths, imported where the optimizer is built) and the Python objects of
    ``plugins`` (:func:`swarmopt.plugins.resolve`). Raises
    :class:`~swarmopt.errors.InputError` for a bad plug-in."""
    _, opt_seed = agent_seeds(seed, len(scenario.agents))
    profiles = {a.id: a for a in scenario.agents}
    policy, rules, remedies = resolve(scenario.optimizer, plugins)
    return Optimizer(scenario.optimizer, profiles, scenario.window_s, policy, np.random.default_rng(opt_seed),
                     rules, remedies, scenario.budget, dict(scenario.models))


def make_orchestrator(scenario: Scenario) -> Orchestrator:
    """The scenario's Strategic Orchestrator."""
    profiles = {a.id: a for a in scenario.agents}
    return Orchestrator(scenario.orchestrator, profiles, dict(scenario.models), scenario.window_s)
