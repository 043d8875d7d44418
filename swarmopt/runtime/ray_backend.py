"""Ray runtime: each agent group, the optimizer and the orchestrator is a Ray actor.

The actors wrap the pure components one to one and only move data
(:class:`Host`). ``address=None`` starts a local Ray (dashboard off);
an address joins an existing cluster. Groups: one per agent up to
``max_groups`` agents, else agents are dealt round-robin into ``max_groups``
groups so that actor count follows cores, not agents.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import ray
from ray._private import ray_constants

from swarmopt.runtime.group import AgentGroup
from swarmopt.schema import Scenario


class Host:
    """Holds one component built by ``factory(*args)`` and forwards calls."""

    def __init__(self, factory, *args: Any) -> None:
        self.obj = factory(*args)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.obj, method)(*args)


AgentGroupActor = ray.remote(num_cpus=0)(type("AgentGroupActor", (Host,), {}))
OptimizerActor = ray.remote(num_cpus=0)(type("OptimizerActor", (Host,), {}))
OrchestratorActor = ray.remote(num_cpus=0)(type("OrchestratorActor", (Host,), {}))


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start or join Ray unless it is already up; returns True if this call started it.

    A Ray started here listens on 127.0.0.1 only: its node IP is the loopback
    address, so the GCS, the raylet, the workers and the runtime-env agent bind
    to it (they listen on all interfaces only when the node IP is not
    loopback), and the dashboard is off. ``_node_ip_address="127.0.0.1"`` alone
    is not enough: on Linux ``ray.init`` replaces a loopback address by the
    machine's external one (``ray._private.services.resolve_ip_for_localhost``)
    unless Ray runs in its single-machine mode, which the
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` setting (read at import, hence the
    patch of its constant) selects. Without ``address`` a new local Ray is
    always started (``RAY_ADDRESS`` is not followed); joining a cluster
    (``address``) leaves its network settings to that cluster.
    """
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
        return True
    if num_cpus:
        kwargs["num_cpus"] = num_cpus
    with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False):
        ray.init(address="local", _node_ip_address="127.0.0.1", **kwargs)
    return True


class RayBackend:
    """Components as Ray actors; ``max_groups`` caps the number of agent actors."""

    def __init__(self, address: str | None = None, max_groups: int = 16) -> None:
        self.started = ensure_ray(address)
        self.max_groups = max_groups
        self.actors: list[Any] = []

    def groups(self, scenario: Scenario, seed: int) -> list[tuple[Any, list[str]]]:
        n = len(scenario.agents)
        k = min(n, self.max_groups)
        members = [list(range(i, n, k)) for i in range(k)]
        out = []
        for i, idx in enumerate(members):
            name = scenario.agents[idx[0]].id if len(idx) == 1 else f"group-{i}"
            h = AgentGroupActor.remote(AgentGroup, name, scenario, idx, seed)
            self.actors.append(h)
            out.append((h, [scenario.agents[j].id for j in idx]))
        return out

    def optimizer(self, scenario: Scenario, seed: int) -> Any:
        from swarmopt.runtime.components import make_optimizer  # only its actor needs the optimizer's imports

        h = OptimizerActor.remote(make_optimizer, scenario, seed)
        self.actors.append(h)
        return h

    def orchestrator(self, scenario: Scenario) -> Any:
        from swarmopt.runtime.components import make_orchestrator

        h = OrchestratorActor.remote(make_orchestrator, scenario)
        self.actors.append(h)
        return h

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return handle.call.remote(method, *args)

    def get(self, futures: list[Any]) -> list[Any]:
        return ray.get(futures)

    def close(self) -> None:
        for h in self.actors:
            ray.kill(h)
        self.actors = []
        if self.started:
            ray.shutdown()
