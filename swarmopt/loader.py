"""Read scenario and agent-profile YAML into validated models.

A scenario file has the fields of :class:`swarmopt.schema.Scenario` except that
``agents`` is a list of :class:`swarmopt.schema.AgentSpec` (a profile path or an
inline profile, and a population ``count``). Every failure raises
:class:`InputError` with one line naming the file, the field and the allowed
values, which the CLI prints without a traceback (exit code 2).

Files are read defensively: at most :data:`MAX_FILE_BYTES`, UTF-8 only, each key
of a mapping once, at most :data:`MAX_DEPTH` levels of nesting and
:data:`MAX_NODES` values once every YAML alias is expanded (a small file of
nested aliases, the "billion laughs", would otherwise expand to gigabytes).
A profile path must resolve, symbolic links followed, inside the scenario's
folder or the repository's ``agents/``.
"""

from __future__ import annotations

import difflib
import reprlib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from swarmopt.autonomy import check_rule
from swarmopt.errors import InputError
from swarmopt.knobs import set_knob
from swarmopt.plugins import check
from swarmopt.schema import MAX_AGENTS, MAX_FAULTS, AgentProfile, AgentSpec, Knobs, Link, Scenario

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS_DIR = REPO_ROOT / "agents"
SCENARIOS_DIR = REPO_ROOT / "scenarios"

MAX_FILE_BYTES = 1 << 20   # 1 MiB: the shipped files are about 1 KB
MAX_DEPTH = 32             # nesting of mappings and lists; a scenario needs 7
MAX_NODES = 100_000        # scalars, mappings and lists once aliases are expanded
MAX_MESSAGE = 290          # characters of a message: the CLI's line, "error: " included, stays <= 300
_MERGE_TAG = "tag:yaml.org,2002:merge"


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 60, 60


def clip(value: Any, limit: int = 60) -> str:
    """A ``repr`` of ``value`` of at most ``limit`` characters (``reprlib``
    abbreviates long strings and collections without building their full
    ``repr``), so that no user value can make an error message long or span
    lines."""
    try:
        text = _SHORT.repr(value)
    except ValueError:  # an int beyond Python's 4,300-digit str() limit
        text = f"<an integer of {value.bit_length():,} bits>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def flat(text: Any, limit: int = 120) -> str:
    """``str(text)`` on one line (control characters escaped as ``repr`` does),
    cut to ``limit`` characters: for paths and messages inside a message."""
    out = repr(str(text))[1:-1]
    return out if len(out) <= limit else out[:limit - 3] + "..."


_STATES_ALLOWED = {  # pydantic error types whose message already states what is allowed
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "literal_error", "string_pattern_mismatch",
    "union_tag_invalid", "union_tag_not_found", "too_long", "too_short", "missing", "value_error", "bool_parsing",
    "bool_type", "list_type", "dict_type", "model_type", "model_attributes_type", "string_type",
}
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
_KINDS = {int: "an integer", float: "a number", str: "text", bool: "true or false"}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field annotation can hold (through lists, dicts, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _field_at(model: type[BaseModel], loc: tuple) -> tuple[list[type[BaseModel]], FieldInfo | None]:
    """Walk ``loc`` (an error location) from ``model``: the models its last
    named part belongs to, and that part's field (None if it is not a field)."""
    models, owners, info = [model], [model], None
    for part in loc:
        if not isinstance(part, str):
            continue  # a list index
        owners = models
        found = [m for m in models if part in m.model_fields]
        if found:
            info = found[0].model_fields[part]
            models = _models_in(info.annotation)
        else:  # a discriminator tag narrows the models; a dict key leaves them
            info = None
            models = [m for m in models if "kind" in m.model_fields
                      and part in typing.get_args(m.model_fields["kind"].annotation)] or models
    return owners, info


def _number(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _allowed(model: type[BaseModel] | None, first: dict) -> str:
    """``; allowed: ...`` for an error whose message does not say what is allowed:
    the field's kind and bounds, or for an unknown field the close (else all)
    field names of its model."""
    if model is None or first["type"] in _STATES_ALLOWED:
        return ""
    owners, info = _field_at(model, tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        names = sorted({n for m in owners for n in m.model_fields})
        close = difflib.get_close_matches(str(first["loc"][-1]), names, n=3)
        return f"; allowed: {', '.join(close or names)}"
    if info is None:
        return ""
    kind = _KINDS.get(info.annotation)
    bounds = [f"{sign} {_number(getattr(m, attr))}" for m in info.metadata for attr, sign in _BOUNDS
              if getattr(m, attr, None) is not None]
    if typing.get_origin(info.annotation) is typing.Literal:
        kind = "one of " + ", ".join(map(repr, typing.get_args(info.annotation)))
    if kind is None:
        return ""
    return f"; allowed: {kind}" + (f" {' and '.join(bounds)}" if bounds else "")


def describe(err: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """One line of at most :data:`MAX_MESSAGE` characters for the first error of
    ``err``: ``source: field: message (got value); allowed: ... [and N more
    errors]``; ``model`` (the model validated) gives the allowed values when
    the message does not state them. User values are abbreviated; when the
    line is still too long the value goes first, then the end of the allowed
    values, then the end of the message."""
    first = err.errors()[0]
    loc = ".".join(flat(p, 40) for p in first["loc"] if not str(p).startswith("function-after"))
    ctx = first.get("ctx") or {}
    if first["type"] == "union_tag_invalid":  # its message embeds the user's tag in full
        msg = (f"{ctx['discriminator']} {clip(ctx['tag'], 30)} is not one of the expected tags: "
               f"{flat(ctx['expected_tags'], 200)}")
    else:
        msg = flat(first["msg"], 200)
    got = ""
    if "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        got = f" (got {clip(first['input'])})"
    more = len(err.errors()) - 1
    tail = f" [and {more} more error{'s' if more > 1 else ''}]" if more else ""
    allowed = flat(_allowed(model, first), 200)
    head = f"{source}: {loc or 'scenario'}: "
    room = MAX_MESSAGE - len(head) - len(tail)
    if len(msg) + len(got) + len(allowed) > room:  # the value goes first, then the end of the allowed values
        got = ""
        allowed = flat(allowed, max(40, room - len(msg)))
    if len(msg) + len(allowed) > room:
        msg = msg[:max(0, room - len(allowed) - 3)] + "..."
    return f"{head}{msg}{got}{allowed}{tail}"


class _Rejected(yaml.YAMLError):
    """A document the loader refuses although it is valid YAML."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader (libyaml's parser when PyYAML has it: ten times
    faster) that rejects a key given twice in one mapping (keys merged in with
    ``<<`` may be overridden, as YAML specifies) and bounds nesting while
    composing: libyaml stops at 1,000 levels by itself, the pure-Python
    composer recurses once per level and is stopped at :data:`MAX_DEPTH` by
    :meth:`compose_node` (deep nesting would otherwise end in a
    RecursionError). :func:`_check_expanded` then applies the real bounds."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Rejected(f"nested deeper than {MAX_DEPTH} levels; allowed: at most {MAX_DEPTH}",
                                self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    twice = key in seen
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if twice:
                    raise _Rejected(f"duplicate key {clip(key, 40)}; allowed: each key once", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded(root: yaml.Node) -> None:
    """Raise :class:`_Rejected` if the document, every alias expanded, has more
    than :data:`MAX_NODES` nodes or :data:`MAX_DEPTH` levels, or an alias
    inside its own anchor (a cycle). Aliases share composed nodes, so sizes are
    memoized per node: linear in the file, however large the expansion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_NODES:
                raise _Rejected(f"more than {MAX_NODES:,} values once aliases are expanded; "
                                f"allowed: at most {MAX_NODES:,}", node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise _Rejected(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded; "
                                f"allowed: at most {MAX_DEPTH}", node.start_mark)
        elif key not in size:
            if key in open_nodes:
                raise _Rejected("an alias refers to its own anchor (a cycle); allowed: no cycles", node.start_mark)
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _parse(text: str) -> Any:
    """Parse one YAML document with :class:`_BoundedLoader` and the expansion check."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _read_bytes(path: Path) -> bytes:
    try:
        regular = path.is_file()
        if regular:
            with path.open("rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{flat(path)}: cannot read ({flat(reason, 80)})") from None
    if not regular:
        raise InputError(f"{flat(path)}: file not found (or not a regular file)")
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"{flat(path)}: file larger than {MAX_FILE_BYTES:,} bytes; allowed: at most that")
    return raw


def _read_yaml(path: Path) -> dict[str, Any]:
    raw = _read_bytes(path)
    shown = flat(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{shown}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                         "allowed: UTF-8") from None
    try:
        data = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = flat(getattr(exc, "problem", None) or exc, 160)
        if problem == "exceeded maximum nesting depth":  # libyaml's own limit, 1,000 levels
            problem = f"nested deeper than 1,000 levels; allowed: at most {MAX_DEPTH}"
        elif not isinstance(exc, _Rejected):
            problem = f"not valid YAML ({problem})"
        raise InputError(f"{shown}:{where} {problem}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InputError(f"{shown}: not valid YAML ({flat(exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{shown}: expected a mapping of fields at the top level")
    return data


def load_profile(path: str | Path) -> AgentProfile:
    """Load one agent profile YAML file. Raises :class:`InputError`."""
    path = Path(path)
    try:
        return AgentProfile.model_validate(_read_yaml(path))
    except ValidationError as err:
        raise InputError(describe(err, flat(path), AgentProfile)) from None


def _resolve_profile(ref: str, base: Path, source: str) -> Path:
    """The profile file ``ref`` names: beside the scenario (``base``), else in
    :data:`AGENTS_DIR` (with or without ``.yaml``). A candidate that resolves
    outside both folders is never opened."""
    outside = False
    try:
        roots = (base.resolve(), AGENTS_DIR.resolve())
        for candidate in (base / ref, AGENTS_DIR / ref, AGENTS_DIR / f"{ref}.yaml"):
            real = candidate.resolve()
            if not any(real.is_relative_to(root) for root in roots):
                outside = True
            elif real.is_file():
                return real
    except (OSError, ValueError) as exc:  # too long a name, a NUL byte, a symlink loop
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{source}: agents: profile {clip(ref)} is not a usable path "
                         f"({flat(reason, 60)})") from None
    if outside:
        raise InputError(f"{source}: agents: profile {clip(ref)} is outside the scenario's folder and "
                         f"{flat(AGENTS_DIR, 80)}; allowed: profile files inside those folders")
    raise InputError(f"{source}: agents: profile {clip(ref)} not found (looked beside the scenario and "
                     f"in {flat(AGENTS_DIR, 80)})")


def _with_knobs(profile: AgentProfile, knobs: dict[str, Any], where: str) -> AgentProfile:
    """``profile`` with ``knobs`` (dotted path -> value) set over its own,
    checked like the profile's knobs. Raises :class:`InputError` naming the path."""
    k = profile.knobs
    for path, value in knobs.items():
        try:
            k = set_knob(k, path, value)
        except KeyError as err:
            raise InputError(f"{where}: {flat(err.args[0], 200)}") from None
        except ValidationError as err:
            raise InputError(describe(err, where, Knobs)) from None
    try:
        return AgentProfile.model_validate(profile.model_dump() | {"knobs": k.model_dump()})
    except ValidationError as err:
        raise InputError(f"{where}: {flat(err.errors()[0]['msg'], 200)}") from None


def _with_fields(profile: AgentProfile, fields: dict[str, Any], where: str) -> AgentProfile:
    """``profile`` with ``fields`` (dotted path -> value; ``tools.<name>.<field>``
    for a tool) set, validated as a profile. Raises :class:`InputError` naming the path."""
    data = profile.model_dump()
    tools = {t["name"]: t for t in data["tools"]}
    for path, value in fields.items():
        head, _, rest = path.partition(".")
        if head == "tools":
            name, _, field = rest.partition(".")
            if name not in tools:
                raise InputError(f"{where}: {flat(path, 80)}: no tool {clip(name)}; allowed: {sorted(tools)}")
            target, key = tools[name], field
        elif head in ("knobs", "downstream", "action_mix") or head not in data:
            raise InputError(f"{where}: {flat(path, 80)}: not a settable profile field; allowed: a scalar field of "
                             f"the profile or tools.<name>.<field> (knobs go under 'knobs')")
        else:
            target, key = data, path
        if key not in target or isinstance(target[key], (dict, list)):
            raise InputError(f"{where}: {flat(path, 80)}: not a settable profile field; allowed: "
                             f"{sorted(k for k, v in target.items() if not isinstance(v, (dict, list)))}")
        target[key] = value
    try:
        return AgentProfile.model_validate(data)
    except ValidationError as err:
        raise InputError(describe(err, where, AgentProfile)) from None


def _expand(profiles: list[tuple[AgentProfile, int]]) -> tuple[list[AgentProfile], dict[str, list[str]]]:
    """Turn populations into replicas ``<id>-<k>`` (each naming its ``population``); a link to a population sends
    each message to one of its replicas, uniformly, so the message rate per
    decision is preserved."""
    members = {p.id: ([p.id] if n == 1 else [f"{p.id}-{k}" for k in range(n)]) for p, n in profiles}
    out: list[AgentProfile] = []
    for profile, _ in profiles:
        links: list[Link] = []
        for link in profile.downstream:
            targets = members.get(link.to, [link.to])
            links.append(link if targets == [link.to] else link.model_copy(update={"replicas": targets}))
        population = profile.population or (profile.id if len(members[profile.id]) > 1 else None)
        for member in members[profile.id]:
            out.append(profile.model_copy(update={"id": member, "downstream": links, "population": population}))
    return out, members


def _expand_faults(faults: Any, members: dict[str, list[str]], source: str) -> Any:
    """One fault per replica for a fault aimed at a population; anything that
    is not a list of faults is passed on for the schema to report."""
    if not isinstance(faults, list):
        return faults
    targets = [members.get(f["target"], [f["target"]])
               if isinstance(f, dict) and isinstance(f.get("target"), str) else [None] for f in faults]
    total = sum(len(t) for t in targets)
    if total > MAX_FAULTS:
        raise InputError(f"{source}: faults: {total:,} once aimed at every replica; allowed: at most {MAX_FAULTS:,}")
    return [dict(f, target=t) if t is not None else f for f, ts in zip(faults, targets, strict=True) for t in ts]


def build_scenario(data: dict[str, Any], source: str = "<scenario>", base: Path | None = None) -> Scenario:
    """Validate a scenario mapping (as read from YAML), importing the plug-ins
    its optimizer names (:func:`swarmopt.plugins.check`). Raises :class:`InputError`."""
    base = base or Path.cwd()
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping of fields at the top level")
    data = dict(data)
    specs_raw = data.get("agents")
    if not isinstance(specs_raw, list) or not specs_raw:
        raise InputError(f"{source}: agents: a non-empty list of agent specs is required")
    if len(specs_raw) > MAX_AGENTS:
        raise InputError(f"{source}: agents: {len(specs_raw):,} specs; allowed: at most {MAX_AGENTS:,}")
    specs: list[AgentSpec] = []
    for i, raw in enumerate(specs_raw):
        try:
            specs.append(AgentSpec.model_validate({"profile": raw} if isinstance(raw, str) else raw))
        except ValidationError as err:
            raise InputError(describe(err, f"{source}: agents.{i}", AgentSpec)) from None
    total = sum(spec.count for spec in specs)
    if total > MAX_AGENTS:
        raise InputError(f"{source}: agents: {total:,} agents with replicas; allowed: at most {MAX_AGENTS:,}")
    files: dict[Path, AgentProfile] = {}  # a profile used many times is read once
    loaded: list[tuple[AgentProfile, int]] = []
    for i, spec in enumerate(specs):
        profile = spec.profile
        if isinstance(profile, str):
            path = _resolve_profile(profile, base, source)
            profile = files[path] if path in files else files.setdefault(path, load_profile(path))
        if spec.set:
            profile = _with_fields(profile, spec.set, f"{source}: agents.{i}.set")
        if spec.knobs:
            profile = _with_knobs(profile, spec.knobs, f"{source}: agents.{i}.knobs")
        loaded.append((profile, spec.count))
    agents, members = _expand(loaded)
    # profiles are validated models already: the scenario takes them as they are
    # (dumping and re-validating would copy every population's replica list per agent)
    data["agents"] = agents
    data["faults"] = _expand_faults(data.get("faults") or [], members, source)
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as err:
        raise InputError(describe(err, source, Scenario)) from None
    check(sc.optimizer, None, source)
    check_rule(sc.orchestrator.policy, source)
    return sc


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario YAML file. Raises :class:`InputError`."""
    path = Path(path)
    return build_scenario(_read_yaml(path), flat(path), path.parent)


def list_scenarios(directory: Path = SCENARIOS_DIR) -> list[tuple[Path, str, str]]:
    """(path, name, description) of every scenario YAML in ``directory``, sorted."""
    rows = []
    for path in sorted(directory.glob("*.yaml")):
        data = _read_yaml(path)
        rows.append((path, str(data.get("name", path.stem)), str(data.get("description", "")).strip()))
    return rows
