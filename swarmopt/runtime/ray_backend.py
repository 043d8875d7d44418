"""Ray runtime: each agent group, the optimizer and the orchestrator is a Ray actor.

The actors wrap the pure components one to one and only move data
(:class:`Host`), arguments and results pickled in one piece (:func:`pack`).
``address=None`` starts a local Ray (dashboard off); an address joins an
existing cluster. Groups: one per agent up to ``max_groups`` agents (default
:data:`~swarmopt.runtime.group.MAX_GROUPS`), else agents are dealt
round-robin into ``max_groups`` groups so that actor count follows cores, not
agents. Which agents share a group changes no result.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any
from unittest import mock

import ray
from ray import cloudpickle
from ray._private import ray_constants

from swarmopt.runtime.driver import Components
from swarmopt.runtime.group import MAX_GROUPS, AgentGroup, group_name, placement
from swarmopt.schema import Scenario

if TYPE_CHECKING:  # a worker hosting agents unpickles this module: it must not import the optimizer
    from swarmopt.plugins import Plugins


class Host:
    """Holds one component built by ``factory(*args)`` and forwards calls."""

    def __init__(self, factory, *args: Any) -> None:
        self.obj = factory(*args)

    def call(self, method: str, payload: bytes) -> bytes:
        """``method(*args)`` of the component, arguments and result pickled (:func:`pack`)."""
        return pack(getattr(self.obj, method)(*pickle.loads(payload)))

    def state(self) -> bytes:
        """The component, pickled here (:func:`pack`): a fork or a checkpoint
        of it. As bytes, the driver that keeps it never rebuilds it."""
        return pack(self.obj)


def pack(obj: Any) -> bytes:
    """``obj`` pickled by the standard library's C pickler, or by cloudpickle where that cannot carry it to another
    process: a lambda or a local class (which it refuses), or a class of the driver's ``__main__`` (which it would
    name where that process has no such class).

    Ray pickles a call's arguments and result with cloudpickle, whose per-object hook runs in Python: the window
    rows, task samples and messages of a tick, tens of thousands of small objects, and a checkpoint's components
    took most of a Ray run's driver time. As bytes they cross in one piece."""
    try:
        out = pickle.dumps(obj, protocol=5)
    except (pickle.PicklingError, AttributeError, TypeError):
        return cloudpickle.dumps(obj)
    return cloudpickle.dumps(obj) if b"__main__" in out else out


def _restored(state: bytes) -> Any:
    # unpickled in the new actor's process: its arrays are its own and writable (not views of the object store)
    return pickle.loads(state)


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
    """Components as Ray actors; ``max_groups`` caps the number of agent actors.

    Backends that share a Ray session started by swarmopt (a run and its
    forks) shut it down when the last of them closes. ``plugins`` go to the
    optimizer actor, pickled with cloudpickle (objects of a user's module by
    reference: the module must be importable on the workers, see
    :mod:`swarmopt.plugins`).
    """

    _session_users = 0

    def __init__(self, address: str | None = None, max_groups: int = MAX_GROUPS,
                 plugins: Plugins | None = None) -> None:
        if ensure_ray(address):
            RayBackend._session_users = 0
            self._owns_session = True
        else:
            self._owns_session = RayBackend._session_users > 0
        RayBackend._session_users += self._owns_session
        self.address = address
        self.max_groups = max_groups
        self.plugins = plugins
        self.actors: list[Any] = []

    def groups(self, scenario: Scenario, seed: int) -> list[tuple[Any, list[str]]]:
        out = []
        for i, idx in enumerate(placement(scenario.agents, self.max_groups)):
            members = [scenario.agents[j].id for j in idx]
            h = AgentGroupActor.remote(AgentGroup, group_name(i, members), scenario, idx, seed)
            self.actors.append(h)
            out.append((h, members))
        return out

    def optimizer(self, scenario: Scenario, seed: int) -> Any:
        from swarmopt.runtime.components import make_optimizer  # only its actor needs the optimizer's imports

        h = OptimizerActor.remote(make_optimizer, scenario, seed, self.plugins)
        self.actors.append(h)
        return h

    def orchestrator(self, scenario: Scenario) -> Any:
        from swarmopt.runtime.components import make_orchestrator

        h = OrchestratorActor.remote(make_orchestrator, scenario)
        self.actors.append(h)
        return h

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return handle.call.remote(method, pack(args))

    def get(self, futures: list[Any]) -> list[Any]:
        return [pickle.loads(b) for b in ray.get(futures)]

    def checkpoint(self, components: Components) -> list[Any]:
        """Every component's state, pickled by its actor and fetched into this
        driver as bytes (hundreds of KiB for five agents): the fetch proves each
        actor was alive, and the copy outlives the actors. Raises RayActorError
        if one is dead."""
        c = components
        return ray.get([h.state.remote() for h, _ in c.groups] + [c.opt.state.remote(), c.orch.state.remote()])

    def restore(self, token: list[Any], components: Components) -> Components:
        """Kill the current actors and create new ones from the checkpoint."""
        for h in self.actors:
            ray.kill(h)
        kinds = [AgentGroupActor] * len(components.groups) + [OptimizerActor, OrchestratorActor]
        self.actors = [kind.remote(_restored, state) for kind, state in zip(kinds, token, strict=True)]
        groups = [(h, members) for h, (_, members) in zip(self.actors[:-2], components.groups, strict=True)]
        return Components(groups, self.actors[-2], self.actors[-1])

    def fork(self, components: Components) -> tuple["RayBackend", Components]:
        """A backend in the same Ray session with new actors holding copies of
        these components' current state (through the object store)."""
        other = RayBackend(self.address, self.max_groups, self.plugins)
        return other, other.restore(self.checkpoint(components), components)

    def dead_actor(self, exc: BaseException, components: Components) -> str | None:
        """The component whose actor died, by the actor id Ray reports."""
        if not isinstance(exc, ray.exceptions.RayActorError):
            return None
        for name, h in components.named().items():
            if h._actor_id.hex() == exc.actor_id:
                return name
        return "unknown actor"

    def kill(self, handle: Any) -> None:
        """Kill the actor's process at once (no graceful exit, no Ray restart)."""
        ray.kill(handle, no_restart=True)

    def close(self) -> None:
        for h in self.actors:
            ray.kill(h)
        self.actors = []
        if self._owns_session:
            RayBackend._session_users -= 1
            if RayBackend._session_users == 0 and ray.is_initialized():
                ray.shutdown()
            self._owns_session = False
