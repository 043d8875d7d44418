"""Local runtime: the same components in this process, called directly."""

from __future__ import annotations

import copy
from typing import Any

from swarmopt.plugins import Plugins
from swarmopt.runtime.components import make_optimizer, make_orchestrator
from swarmopt.runtime.driver import Components
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

    def checkpoint(self, components: Components) -> None:
        """In-process components cannot die alone: no checkpoint needed."""
        return None

    def restore(self, token: Any, components: Components) -> Components:
        raise RuntimeError("the local runtime takes no checkpoints")

    def fork(self, components: Components) -> tuple["LocalBackend", Components]:
        """Deep copies of the components (numpy generators included, so a copy
        draws what the original would)."""
        return LocalBackend(self.plugins), copy.deepcopy(components)

    def dead_actor(self, exc: BaseException, components: Components) -> None:
        return None

    def kill(self, handle: Any) -> None:
        """No process to kill: a process crash acts as a simulated one (its workers stop)."""

    def close(self) -> None:
        pass
