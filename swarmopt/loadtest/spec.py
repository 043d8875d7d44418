"""The load-test spec: which policies, scenarios and seeds, the SLO, the baseline, ground truth, the oracle.

A spec is a YAML file (or a mapping, or a :class:`LoadTestSpec`) validated by
pydantic; every mistake raises :class:`swarmopt.loader.InputError` with one
line naming the spec file, the field and the allowed values (CLI exit code 2).
Example (``scenarios/loadtests/policies.yaml``)::

    name: policies
    policies:
      - {name: monitor, policy: monitor}
      - {name: rules-2min, policy: rules, optimizer: {cycle_s: 120}}
      - {name: rules-fixed-autonomy, policy: rules, orchestrator: {policy: fixed}}
    scenarios: [scenarios/*.yaml]
    seeds: {count: 5}
    oracle: {grid: {max_concurrency: [x1, x2, x4]}}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from swarmopt.loader import InputError, describe
from swarmopt.policies import POLICIES

NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicySpec(_Strict):
    """One contestant: a ``name`` (used in tables and ``--fail-if``), a built-in
    policy name or an import path ``pkg.module:Class`` (passed to the scenario's
    ``optimizer.policy`` as is; default: the name, when it is a built-in),
    ``optimizer`` overrides merged into every scenario's ``optimizer`` section
    (nested mappings merge key by key), and ``orchestrator`` overrides merged
    into its ``orchestrator`` section, e.g. ``{policy: fixed}`` to judge the
    Orchestrator's autonomy rule (:mod:`swarmopt.autonomy`) like a policy."""

    name: str = Field(pattern=NAME)
    policy: str
    optimizer: dict[str, Any] = Field(default_factory=dict)
    orchestrator: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "policy" not in data:
            if data.get("name") not in POLICIES:
                raise ValueError(f"policy: required, as '{data.get('name')}' is not a built-in policy; allowed: "
                                 f"{sorted(POLICIES)} or an import path 'pkg.module:Class'")
            return data | {"policy": data["name"]}
        return data

    @field_validator("policy")
    @classmethod
    def _known(cls, v: str) -> str:
        if ":" not in v and v not in POLICIES:
            raise ValueError(f"unknown policy '{v}'; allowed: {sorted(POLICIES)} or an import path 'pkg.module:Class'")
        return v


class Objective(_Strict):
    """One per-window objective of the SLO: ``metric op value`` (a column of
    the metrics table, e.g. ``response_time_ms_mean < 2000``), for every
    agent of every scenario, or only for the windows of ``agent`` and only in
    the runs of the scenario named ``scenario`` (its ``name``: e.g. the cost
    cap a scenario's cure is measured against, which other scenarios and
    agents do not have)."""

    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    op: Literal["<", "<=", ">", ">="]
    value: float
    agent: str | None = None
    scenario: str | None = None


def slo_of(slo: Sequence[Objective], scenario: str) -> list[Objective]:
    """The objectives of ``slo`` that apply to the runs of the scenario named ``scenario``."""
    return [o for o in slo if o.scenario in (None, scenario)]


DEFAULT_SLO = (Objective(metric="response_time_ms_mean", op="<", value=2000.0),
               Objective(metric="success_rate", op=">=", value=0.70),
               Objective(metric="coordination_score", op=">=", value=0.60))


class SeedCount(_Strict):
    """``count`` seeds ``start, start + 1, ...``."""

    count: int = Field(ge=1, le=10_000)
    start: int = Field(default=1, ge=0)


def _seeds_shape(v: Any) -> str:
    return "count" if isinstance(v, (dict, SeedCount)) else "list"


Seeds = Annotated[Union[Annotated[list[int], Tag("list")], Annotated[SeedCount, Tag("count")]],
                  Discriminator(_seeds_shape)]


class GroundTruth(_Strict):
    """Ground truth of every judged change (see :mod:`swarmopt.loadtest.truth`).
    A change *helped* when keeping it raised the agent's SLO attainment by more
    than ``helped_slo_points`` percentage points, or, with attainment within
    +-``helped_slo_points``, improved its target metric by more than
    ``helped_target_pct`` percent; it *hurt* in the mirror cases; else it had
    no effect. ``replicas``: pairs of arms per change, the first from the
    decision's state as the run made it, the others from reseeded forks of it
    (:mod:`swarmopt.loadtest.truth`); the effects are their means, and the
    ground truth takes ``replicas`` times as long. ``true``/``false`` stand
    for the defaults, on or off."""

    enabled: bool = True
    helped_slo_points: float = Field(default=2.0, ge=0, le=100)
    helped_target_pct: float = Field(default=2.0, ge=0)
    replicas: int = Field(default=1, ge=1, le=50)


class Oracle(_Strict):
    """The best static configuration: every point of ``grid`` (knob path ->
    values) applied from t = 0 to the faulted agents, with no optimizer
    (policy ``monitor``), over ``seeds`` (default: the spec's). A value
    ``"xF"`` multiplies the agent's own setting by F (``max_concurrency: [x1,
    x2]``); ``cache_ttl_s.<tool>`` applies to the faulted agents that have that
    tool. The best point of a scenario maximizes the mean of ``objective``
    over the seeds. ``false`` turns the oracle off."""

    enabled: bool = True
    grid: dict[str, list[Any]] = Field(default_factory=lambda: {"max_concurrency": ["x1", "x2", "x4"],
                                                                "max_retries": [1, 2]})
    seeds: Seeds | None = None
    objective: Literal["slo_attainment", "slo_attainment_faulted"] = "slo_attainment"

    @field_validator("grid")
    @classmethod
    def _nonempty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for knob, values in v.items():
            if not values:
                raise ValueError(f"grid.{knob}: needs at least one value")
            for x in values:
                if isinstance(x, str) and x.startswith("x") and not re.fullmatch(r"x\d+(\.\d+)?", x):
                    raise ValueError(f"grid.{knob}: '{x}' is not a factor like 'x2'")
        return v


class Quick(_Strict):
    """What ``--quick`` keeps: the first ``seeds`` seeds, at most ``duration_s``
    simulated seconds per run, and the oracle grid ``oracle_grid``."""

    seeds: int = Field(default=1, ge=1)
    duration_s: float = Field(default=3600.0, gt=0)
    oracle_grid: dict[str, list[Any]] = Field(default_factory=lambda: {"max_concurrency": ["x1", "x2"]})


class LoadTestSpec(_Strict):
    """A load test: ``policies`` x ``scenarios`` (paths or globs) x ``seeds``.

    ``duration_s`` overrides every scenario's duration. ``slo``: per-window
    objectives an agent-window must all meet (defaults: mean response time <
    2000 ms, success rate >= 0.70, coordination score >= 0.60; the source
    design's thresholds), each for every agent or scoped to one agent and one
    scenario (:class:`Objective`). ``baseline``: the policy every other is compared
    with (default ``monitor``). ``reversal_window_s``: a knob moved back
    within this many seconds of its previous move counts as a reversal.
    """

    name: str = Field(default="loadtest", pattern=NAME)
    description: str = ""
    policies: list[PolicySpec] = Field(min_length=1)
    scenarios: list[str] = Field(min_length=1)
    seeds: Seeds = SeedCount(count=5)
    duration_s: float | None = Field(default=None, gt=0)
    slo: list[Objective] = Field(default_factory=lambda: list(DEFAULT_SLO), min_length=1)
    baseline: str = "monitor"
    ground_truth: GroundTruth = GroundTruth()
    oracle: Oracle = Oracle()
    reversal_window_s: float = Field(default=3600.0, ge=0)
    quick: Quick = Quick()

    @field_validator("ground_truth", "oracle", mode="before")
    @classmethod
    def _switch(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int] | SeedCount) -> list[int] | SeedCount:
        if isinstance(v, list) and (not v or len(set(v)) != len(v) or min(v) < 0):
            raise ValueError("need distinct non-negative seeds")
        return v

    @model_validator(mode="after")
    def _names(self) -> "LoadTestSpec":
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError(f"policies: names must be unique, got {names}")
        keys = [expr_name(n) for n in names]
        if len(set(keys)) != len(keys):
            raise ValueError(f"policies: names must stay distinct with '-' read as '_', got {names}")
        if self.baseline not in names:
            raise ValueError(f"baseline: '{self.baseline}' is not a policy of the spec; allowed: {names}")
        return self

    def seed_list(self, quick: bool = False) -> list[int]:
        """The seeds of the policy runs (the first ``quick.seeds`` with ``quick``)."""
        seeds = _seeds(self.seeds)
        return seeds[: self.quick.seeds] if quick else seeds

    def oracle_seeds(self, quick: bool = False) -> list[int]:
        """The seeds of the oracle runs (default: the policy runs' seeds)."""
        if self.oracle.seeds is None:
            return self.seed_list(quick)
        seeds = _seeds(self.oracle.seeds)
        return seeds[: self.quick.seeds] if quick else seeds


def _seeds(v: list[int] | SeedCount) -> list[int]:
    return list(v) if isinstance(v, list) else list(range(v.start, v.start + v.count))


def expr_name(policy_name: str) -> str:
    """How a policy is named in a ``--fail-if`` expression: '-' read as '_'."""
    return policy_name.replace("-", "_")


def read_spec(source: str | Path | dict | LoadTestSpec) -> tuple[LoadTestSpec, Path, str]:
    """Parse a spec from a YAML path, a mapping or a model. Returns (spec, base
    directory its relative paths start from, a label for messages). Raises
    :class:`InputError` naming the file and the field."""
    if isinstance(source, LoadTestSpec):
        return source, Path.cwd(), "<spec>"
    if isinstance(source, dict):
        data, base, label = source, Path.cwd(), "<spec>"
    else:
        path = Path(source)
        label, base = str(path), path.parent
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise InputError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a mapping of fields at the top level")
    try:
        return LoadTestSpec.model_validate(data), base, label
    except ValidationError as err:
        raise InputError(describe(err, label).replace(": scenario:", ": spec:")) from None
