"""Read scenario and agent-profile YAML into validated models.

A scenario file has the fields of :class:`swarmopt.schema.Scenario` except that
``agents`` is a list of :class:`swarmopt.schema.AgentSpec` (a profile path or an
inline profile, and a population ``count``). Every failure raises
:class:`InputError` with one line naming the file, the field and the allowed
values, which the CLI prints without a traceback (exit code 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from swarmopt.errors import InputError
from swarmopt.plugins import check
from swarmopt.schema import AgentProfile, AgentSpec, Link, Scenario

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENTS_DIR = REPO_ROOT / "agents"
SCENARIOS_DIR = REPO_ROOT / "scenarios"


def describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    msg = first["msg"]
    if "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    more = len(err.errors()) - 1
    tail = f" [and {more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{source}: {loc or 'scenario'}: {msg}{tail}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of fields at the top level")
    return data


def load_profile(path: str | Path) -> AgentProfile:
    """Load one agent profile YAML file. Raises :class:`InputError`."""
    path = Path(path)
    try:
        return AgentProfile.model_validate(_read_yaml(path))
    except ValidationError as err:
        raise InputError(describe(err, str(path))) from None


def _resolve_profile(ref: str, base: Path) -> Path:
    for candidate in (base / ref, AGENTS_DIR / ref, AGENTS_DIR / f"{ref}.yaml"):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{base}: agents: profile '{ref}' not found (looked beside the scenario and in {AGENTS_DIR})"
    )


def _expand(profiles: list[tuple[AgentProfile, int]]) -> tuple[list[AgentProfile], dict[str, list[str]]]:
    """Turn populations into replicas ``<id>-<k>``; a link to a population sends
    each message to one of its replicas, uniformly, so the message rate per
    decision is preserved."""
    members = {p.id: ([p.id] if n == 1 else [f"{p.id}-{k}" for k in range(n)]) for p, n in profiles}
    out: list[AgentProfile] = []
    for profile, _ in profiles:
        links: list[Link] = []
        for link in profile.downstream:
            targets = members.get(link.to, [link.to])
            links.append(link if targets == [link.to] else link.model_copy(update={"replicas": targets}))
        for member in members[profile.id]:
            out.append(profile.model_copy(update={"id": member, "downstream": links}))
    return out, members


def build_scenario(data: dict[str, Any], source: str = "<scenario>", base: Path | None = None) -> Scenario:
    """Validate a scenario mapping (as read from YAML), importing the plug-ins
    its optimizer names (:func:`swarmopt.plugins.check`). Raises :class:`InputError`."""
    base = base or Path.cwd()
    data = dict(data)
    specs_raw = data.get("agents")
    if not isinstance(specs_raw, list) or not specs_raw:
        raise InputError(f"{source}: agents: a non-empty list of agent specs is required")
    loaded: list[tuple[AgentProfile, int]] = []
    for i, raw in enumerate(specs_raw):
        if isinstance(raw, str):
            raw = {"profile": raw}
        try:
            spec = AgentSpec.model_validate(raw)
        except ValidationError as err:
            raise InputError(describe(err, f"{source}: agents.{i}")) from None
        profile = spec.profile
        if isinstance(profile, str):
            profile = load_profile(_resolve_profile(profile, base))
        loaded.append((profile, spec.count))
    agents, members = _expand(loaded)
    faults = []
    for f in data.get("faults") or []:
        targets = members.get(f.get("target"), [f.get("target")]) if isinstance(f, dict) else [None]
        faults += [dict(f, target=t) if t is not None else f for t in targets]
    data["agents"] = [a.model_dump() for a in agents]
    data["faults"] = faults
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as err:
        raise InputError(describe(err, source)) from None
    check(sc.optimizer, None, source)
    return sc


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario YAML file. Raises :class:`InputError`."""
    path = Path(path)
    return build_scenario(_read_yaml(path), str(path), path.parent)


def list_scenarios(directory: Path = SCENARIOS_DIR) -> list[tuple[Path, str, str]]:
    """(path, name, description) of every scenario YAML in ``directory``, sorted."""
    rows = []
    for path in sorted(directory.glob("*.yaml")):
        data = _read_yaml(path)
        rows.append((path, str(data.get("name", path.stem)), str(data.get("description", "")).strip()))
    return rows
