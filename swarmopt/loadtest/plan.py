"""From a spec to the list of runs: scenarios resolved, policies and oracle points applied.

Every run is a :class:`RunTask` holding the ready-to-run scenario. A scenario
pattern is a path or a glob, tried relative to the spec file's directory,
then to the current directory, then to the repository root; the first that
matches wins. Each task has an id, a hash of everything that decides its row
(scenario, seed, SLO, ground-truth settings), so ``--resume`` reuses a stored
row only when it would come out the same.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from swarmopt.loader import REPO_ROOT, InputError, describe, load_scenario
from swarmopt.loadtest.measures import faulted_agents
from swarmopt.loadtest.oracle import apply_point, grid_points, point_id
from swarmopt.loadtest.spec import LoadTestSpec
from swarmopt.schema import Scenario


@dataclass(frozen=True)
class RunTask:
    """One run: ``kind`` ``policy`` (``policy`` is the spec's policy name) or
    ``oracle`` (``policy`` is the grid point's id), the scenario's name and
    file, the seed, the scenario to run, and whether to compute ground truth."""

    kind: str
    policy: str
    scenario: str
    source: str
    seed: int
    config: Scenario
    truth: bool
    task_id: str

    @property
    def key(self) -> tuple[str, str, str, int]:
        """(kind, policy, scenario, seed): unique within a load test."""
        return self.kind, self.policy, self.scenario, self.seed


@dataclass(frozen=True)
class Plan:
    """The resolved load test: spec, scenarios (name -> (file, scenario)) and runs."""

    spec: LoadTestSpec
    label: str
    scenarios: dict[str, tuple[str, Scenario]]
    tasks: list[RunTask]
    quick: bool


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_scenarios(patterns: list[str], base: Path, label: str) -> list[Path]:
    """The scenario files of ``patterns`` (sorted per pattern, duplicates once).
    Raises :class:`InputError` for a pattern that matches nothing."""
    files: list[Path] = []
    for i, pat in enumerate(patterns):
        roots = [Path("/")] if Path(pat).is_absolute() else [base, Path.cwd(), REPO_ROOT]
        found: list[str] = []
        for root in roots:
            found = sorted(glob.glob(str(root / pat), recursive=True))
            if found:
                break
        if not found:
            raise InputError(f"{label}: scenarios.{i}: '{pat}' matches no file (looked beside the spec, in the "
                             f"current directory and in {REPO_ROOT})")
        for f in found:
            p = Path(f).resolve()
            if p.is_file() and p not in files:
                files.append(p)
    return files


def _duration(sc: Scenario, spec: LoadTestSpec, quick: bool) -> float:
    d = spec.duration_s or sc.duration_s
    if quick:
        d = min(d, spec.quick.duration_s)
        d = max(sc.window_s, math.floor(d / sc.window_s + 1e-9) * sc.window_s)
    return d


def _task_id(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_scopes(spec: LoadTestSpec, scenarios: dict[str, tuple[str, Scenario]], label: str) -> None:
    """Raise :class:`InputError` for an SLO objective scoped to a scenario the
    spec does not run or to an agent its scenarios (or that one) do not have."""
    for i, o in enumerate(spec.slo):
        if o.scenario is not None and o.scenario not in scenarios:
            raise InputError(f"{label}: slo.{i}.scenario: '{o.scenario}' is not a scenario of the spec; "
                             f"allowed: {sorted(scenarios)}")
        pool = [scenarios[o.scenario]] if o.scenario is not None else list(scenarios.values())
        agents = sorted({a.id for _, sc in pool for a in sc.agents})
        if o.agent is not None and o.agent not in agents:
            raise InputError(f"{label}: slo.{i}.agent: '{o.agent}' is not an agent of "
                             f"{o.scenario or 'any scenario of the spec'}; allowed: {agents}")


def make_plan(spec: LoadTestSpec, base: Path, label: str, quick: bool = False) -> Plan:
    """Resolve ``spec`` into runs (policy runs first, by seed, scenario and
    policy, so an interrupted load test has whole pairs; then oracle runs).
    Raises :class:`InputError` naming the spec file and field for a scenario
    that does not load, an override or an oracle point that does not validate,
    or an SLO objective scoped to a scenario or agent the spec does not run."""
    scenarios: dict[str, tuple[str, Scenario]] = {}
    for path in resolve_scenarios(spec.scenarios, base, label):
        try:
            sc = load_scenario(path)
        except InputError as err:
            raise InputError(f"{label}: scenarios: {err}") from None
        if sc.name in scenarios:
            raise InputError(f"{label}: scenarios: two files name their scenario '{sc.name}': "
                             f"{scenarios[sc.name][0]} and {path}")
        scenarios[sc.name] = (str(path), sc)
    _check_scopes(spec, scenarios, label)
    seeds = spec.seed_list(quick)
    settings = ([o.model_dump() for o in spec.slo], spec.ground_truth.model_dump(),
                spec.reversal_window_s)
    configs: dict[tuple[str, str], Scenario] = {}
    for i, p in enumerate(spec.policies):
        for name, (path, sc) in scenarios.items():
            data = sc.model_dump()
            data["duration_s"] = _duration(sc, spec, quick)
            data["optimizer"] = _merge(data["optimizer"], {"policy": p.policy} | p.optimizer)
            data["orchestrator"] = _merge(data["orchestrator"], p.orchestrator)
            try:
                configs[(p.name, name)] = Scenario.model_validate(data)
            except ValidationError as err:
                raise InputError(describe(err, f"{label}: policies.{i} ({p.name}) on {path}")) from None
    tasks = []
    for seed in seeds:
        for name, (path, _) in scenarios.items():
            for p in spec.policies:
                cfg = configs[(p.name, name)]
                truth = spec.ground_truth.enabled and p.policy != "monitor"
                tasks.append(RunTask("policy", p.name, name, path, seed, cfg, truth,
                                     _task_id("policy", seed, cfg.model_dump(), settings, truth)))
    if spec.oracle.enabled:
        grid = spec.quick.oracle_grid if quick else spec.oracle.grid
        for name, (path, sc) in scenarios.items():
            sc = Scenario.model_validate(sc.model_dump() | {"duration_s": _duration(sc, spec, quick)})
            for point in grid_points(grid):
                try:
                    cfg = apply_point(sc, point, faulted_agents(sc))
                except (KeyError, ValueError) as err:
                    msg = describe(err, "") if isinstance(err, ValidationError) else str(err).strip("'\"")
                    raise InputError(f"{label}: oracle.grid ({point_id(point)}) on {path}: {msg.lstrip(': ')}") \
                        from None
                for seed in spec.oracle_seeds(quick):
                    tasks.append(RunTask("oracle", point_id(point), name, path, seed, cfg, False,
                                         _task_id("oracle", seed, cfg.model_dump(), settings)))
    return Plan(spec, label, scenarios, tasks, quick)
