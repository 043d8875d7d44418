"""Overrides: change fields of a scenario by dotted path, without editing its YAML.

A path walks the scenario's fields as they appear in the YAML after loading:
``optimizer.proactive``, ``optimizer.thresholds.response_time_ms``, ``seed``.
Agents are addressed by id (``agents.market-hunter.knobs.max_concurrency``,
a replica of a population by its replica id ``<id>-<k>``), other lists by index
(``faults.0.at_s``), mappings by key (``agents.market-hunter.knobs.cache_ttl_s.data_source``;
a new key is allowed where the mapping allows one). The overridden scenario is
validated like a scenario file, so a bad value fails with the same message,
naming the path instead of the file.

On the command line (``swarmopt run S --set PATH=VALUE``) values are parsed as
YAML scalars (``false``, ``8``, ``0.5``, ``fast``, ``[a, b]``); in Python
(``run_scenario(..., overrides={"optimizer.proactive": False})``) they are used
as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from swarmopt.loader import InputError
from swarmopt.schema import Scenario


def parse_assignments(items: Iterable[str], source: str = "--set") -> dict[str, Any]:
    """``PATH=VALUE`` strings as ``{path: value}``, each value parsed as a YAML
    scalar (a later assignment of the same path wins). Raises
    :class:`~swarmopt.loader.InputError` for an item without ``=``, an empty
    path or a value that is not valid YAML."""
    out: dict[str, Any] = {}
    for item in items:
        path, eq, text = item.partition("=")
        path = path.strip()
        if not eq or not path:
            raise InputError(f"{source} {item!r}: expected PATH=VALUE, e.g. optimizer.proactive=false")
        try:
            out[path] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise InputError(f"{source} {path}: value {text!r} is not valid YAML "
                             f"({getattr(exc, 'problem', exc)})") from None
    return out


def _child(node: Any, key: str, where: str, source: str) -> tuple[Any, Any]:
    """(key into the dumped data, the model's child) of ``node`` at ``key``."""
    if isinstance(node, BaseModel):
        fields = type(node).model_fields
        if key not in fields:
            raise InputError(f"{source} {where}: unknown field {key!r}; allowed: {', '.join(sorted(fields))}")
        return key, getattr(node, key)
    if isinstance(node, list):
        ids = [getattr(x, "id", None) for x in node]
        if key in ids:
            return ids.index(key), node[ids.index(key)]
        if key.isdigit() and int(key) < len(node) and not any(ids):
            return int(key), node[int(key)]
        allowed = (", ".join(ids[:12]) + (", ..." if len(ids) > 12 else "")) if any(ids) else \
            f"an index from 0 to {len(node) - 1}" if node else "none (the list is empty)"
        raise InputError(f"{source} {where}: no item {key!r}; allowed: {allowed}")
    if isinstance(node, dict):
        return key, node.get(key)
    raise InputError(f"{source} {where}: {where.rpartition('.')[0]} is a single value ({node!r}), not a mapping")


def _error(err: ValidationError, sc: Scenario, paths: list[str], source: str) -> str:
    """One line for the first validation error, with agent indices shown as ids
    and the override path it concerns."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"] if not str(p).startswith("function-after")]
    if loc[:1] == ["agents"] and len(loc) > 1 and loc[1].isdigit() and int(loc[1]) < len(sc.agents):
        loc[1] = sc.agents[int(loc[1])].id
    if loc[:1] == ["faults"] and len(loc) > 3:
        del loc[2]  # the fault kind pydantic adds to a discriminated union's location
    where = ".".join(loc)
    mine = [p for p in paths if where and (where == p or where.startswith(p + ".") or p.startswith(where + "."))]
    msg = first["msg"].removeprefix("Value error, ")
    if "input" in first and first["type"] != "missing" and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    named = ", ".join(mine or paths)
    return f"{source} {named}: {msg}" if not where or where in mine else f"{source} {named}: {where}: {msg}"


def apply_overrides(sc: Scenario, overrides: Mapping[str, Any], source: str = "overrides") -> Scenario:
    """``sc`` with each ``{dotted path: value}`` of ``overrides`` set, re-validated
    as a whole (so related fields may be changed together). ``source`` names the
    overrides in messages (the CLI passes ``--set``). Raises
    :class:`~swarmopt.loader.InputError` naming the path: an unknown field,
    agent id or index, or a value the scenario's schema rejects."""
    if not overrides:
        return sc
    data = sc.model_dump()
    for path, value in overrides.items():
        parts = path.split(".")
        if not all(parts):
            raise InputError(f"{source} {path!r}: empty part in the dotted path")
        node, target = sc, data
        for i, key in enumerate(parts):
            where = ".".join(parts[: i + 1])
            index, child = _child(node, key, where, source)
            if i == len(parts) - 1:
                target[index] = value
            elif child is None:
                raise InputError(f"{source} {path}: {where} is not set; set it as a whole ({where}=...)")
            else:
                node, target = child, target[index]
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise InputError(_error(err, sc, list(overrides), source)) from None
