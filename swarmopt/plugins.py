"""Plug-ins: decision logic a user adds to the optimizer without editing the package.

Three seams (the source design's ``register_optimization_rule``):

* a **policy** picks the remedy to try: an object (or a class, instantiated once
  per run) with ``choose(ctx, rng)``, which gets a read-only
  :class:`~swarmopt.policies.PolicyContext` and returns one of ``ctx.options``
  or None, and ``learn(strategy, kept)``;
* a **detection rule** is a function ``(agent_id, rows, thresholds) ->
  list[Bottleneck]`` over the agent's recent window rows (read-only mappings,
  oldest first; ``thresholds`` the scenario's
  :class:`~swarmopt.schema.Thresholds`); a bottleneck's ``metric`` must be one
  of :data:`swarmopt.metrics.METRICS` (its direction decides the tolerance band
  and the judge);
* a **remedy** is a function ``(snapshot, knobs, profile) -> list[KnobChange] |
  None`` decorated with :func:`remedy` (name, risk, implementation time, the
  bottleneck types it answers); it is tried before the built-in remedies of
  those types.

A scenario references them by import path ``module:attribute`` (``optimizer:
{policy: ..., rules: [...], remedies: [...]}``); :func:`swarmopt.run_scenario`
also takes them as Python objects (``policy=``, ``rules=``, ``remedies=``), carried
as one :class:`Plugins` to the optimizer on either runtime. On Ray the optimizer
actor imports the modules (import paths) or unpickles the objects (cloudpickle,
by reference to their module), so the module must be importable on the workers:
on their ``PYTHONPATH`` (a local Ray started by swarmopt inherits the driver's
environment) or shipped with Ray's ``runtime_env`` (``working_dir`` or
``py_modules``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from swarmopt.errors import InputError
from swarmopt.knobs import KnobChange
from swarmopt.optimizer.detect import Bottleneck, DetectionRule
from swarmopt.optimizer.learning import RemedyStats
from swarmopt.optimizer.strategies import REMEDIES, Remedy, remedy
from swarmopt.policies import POLICIES, Policy, PolicyContext
from swarmopt.schema import OptimizerConfig

__all__ = ["Bottleneck", "KnobChange", "PolicyContext", "Plugins", "Remedy", "RemedyStats", "remedy", "check",
           "load_object", "resolve"]


@dataclass(frozen=True)
class Plugins:
    """Plug-ins passed as Python objects: a ``policy`` (an object with
    ``choose``/``learn``, or a class to instantiate; it replaces the scenario's),
    detection ``rules`` and ``remedies`` (added to the scenario's)."""

    policy: Any = None
    rules: tuple[DetectionRule, ...] = ()
    remedies: tuple[Any, ...] = ()


def load_object(path: str, field: str) -> Any:
    """The object at import path ``module:attribute`` (the attribute may be
    dotted). Raises :class:`InputError` naming ``field`` and ``path`` when the
    module cannot be imported or has no such attribute."""
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
    except Exception as exc:  # any failure of the user's module is an input error, reported in one line
        raise InputError(f"{field}: cannot import '{path}' ({type(exc).__name__}: {exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(f"{field}: cannot import '{path}' (module '{module}' has no attribute '{attr}')") from None
    return obj


def _policy(obj: Any, field: str) -> Any:
    if not all(callable(getattr(obj, m, None)) for m in ("choose", "learn")):
        raise InputError(f"{field}: expected a policy (an object or class with choose(ctx, rng) and "
                         f"learn(strategy, kept)), got {_kind(obj)}")
    return obj


def _rule(obj: Any, field: str) -> DetectionRule:
    if not callable(obj) or isinstance(obj, type):
        raise InputError(f"{field}: expected a detection rule (a function (agent_id, rows, thresholds) -> "
                         f"list[Bottleneck]), got {_kind(obj)}")
    return obj


def _remedy(obj: Any, field: str) -> Remedy:
    found = obj if isinstance(obj, Remedy) else getattr(obj, "remedy", None)
    if not isinstance(found, Remedy):
        raise InputError(f"{field}: expected a remedy (a function decorated with swarmopt.plugins.remedy(...)), "
                         f"got {_kind(obj)}")
    return found


def _kind(obj: Any) -> str:
    return f"class {obj.__qualname__}" if isinstance(obj, type) else f"{type(obj).__name__} {obj!r:.60}"


def check(config: OptimizerConfig, plugins: Plugins | None, source: str) -> None:
    """Import the plug-ins ``config`` names and check them with ``plugins``
    (:func:`resolve`), so that a bad one fails before a run starts. Raises
    :class:`InputError` naming ``source`` (the file or the argument) first."""
    try:
        resolve(config, plugins)
    except InputError as err:
        raise InputError(f"{source}: {err}") from None


def _resolve_config(config: OptimizerConfig) -> tuple[Any, list[DetectionRule], list[Remedy]]:
    if ":" in config.policy:
        policy = _policy(load_object(config.policy, "optimizer.policy"), "optimizer.policy")
    elif config.policy in POLICIES:
        policy = POLICIES[config.policy]
    else:
        raise InputError(f"optimizer.policy: unknown policy '{config.policy}'; allowed: {', '.join(sorted(POLICIES))} "
                         "or an import path 'module:attribute'")
    rules = [_rule(load_object(p, f"optimizer.rules.{i}"), f"optimizer.rules.{i}") for i, p in enumerate(config.rules)]
    remedies = [_remedy(load_object(p, f"optimizer.remedies.{i}"), f"optimizer.remedies.{i}")
                for i, p in enumerate(config.remedies)]
    return policy, rules, remedies


def resolve(config: OptimizerConfig, plugins: Plugins | None = None,
            ) -> tuple[Policy, tuple[DetectionRule, ...], tuple[Remedy, ...]]:
    """The policy, detection rules and remedies of an optimizer: the scenario's
    (built-in policy name or import paths, imported here, so on a Ray worker
    it is the worker that imports them) and the Python objects of ``plugins``
    (its policy replaces the scenario's; its rules and remedies come after the
    scenario's). A policy class is instantiated here, once per optimizer.
    Raises :class:`InputError` for a bad path, a wrong kind of object or a
    remedy name that is taken."""
    plugins = plugins or Plugins()
    policy, rules, remedies = _resolve_config(config)
    policy = _policy(plugins.policy, "policy") if plugins.policy is not None else policy
    rules += [_rule(r, f"rules.{i}") for i, r in enumerate(plugins.rules)]
    remedies += [_remedy(r, f"remedies.{i}") for i, r in enumerate(plugins.remedies)]
    names = list(REMEDIES) + [r.name for r in remedies]
    taken = sorted({n for n in names if names.count(n) > 1})
    if taken:
        raise InputError(f"remedies: name(s) {taken} taken (by a built-in remedy or another plug-in)")
    return (policy() if isinstance(policy, type) else policy), tuple(rules), tuple(remedies)
