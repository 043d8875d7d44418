"""Local runtime: the same components in this process, called directly."""

from __future__ import annotations

from typing import Any

from swarmopt.plugins import Plugins
from swarmopt.runtime.components import make_optimizer, make_orchestrator
from swarmopt.runtime.group import AgentGroup
from swarmopt.schema import Scenario


class LocalBackend:
    """Every component is a plain object; a call is a method call. ``plugins``
    go to the optimizer (:func:`~swarmopt.runtime.components.make_optimizer`)."""

    def __init__(self, plugins: Plugins | None = None) -> None:
        self.plugins = plugins

    def groups(self, scenario: Scenario, seed: int) -> list[tuple[Any, list[str]]]:
        group = AgentGroup("local", scenario, list(range(len(scenario.agents))), seed)
        return [(group, list(group.sims))]

    def optimizer(self, scenario: Scenario, seed: int) -> Any:
        return make_optimizer(scenario, seed, self.plugins)

    def orchestrator(self, scenario: Scenario) -> Any:
        return make_orchestrator(scenario)

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method)(*args)

    def get(self, futures: list[Any]) -> list[Any]:
        return futures

    def close(self) -> None:
        pass
