"""SLO attainment of the scenario library's faulted agents, per policy and seed.

Each library scenario breaches the load test's SLO on one agent after its fault
onset; ``scenarios/loadtests/library_cures.yaml`` names that agent, a static knob
configuration of it that cures the breach and, where the SLO includes cost, the
cost limit. This script runs every scenario on the local runtime under the
``monitor``, ``rules`` and ``thompson`` policies and under ``cure`` (a static
configuration: monitor, the cure's knobs set on the faulted agent from the
start and every agent's autonomy fixed, ``orchestrator.policy: fixed``) and
prints the mean attainment over the seeds as a Markdown table.

Attainment = share of the faulted agent's windows that start at or after the
first fault and meet every SLO condition (:data:`SLO`, plus
``cost_per_decision_usd`` at most the entry's ``cost_max_usd`` and
``cost_usd_per_hour`` at most its ``cost_max_usd_per_hour`` when given: a
budget).

With ``--cure-after S`` the ``cure`` column applies the cure's knobs S seconds
after the first fault instead of from the start: the attainment a reactive
policy would reach had it found the whole cure then (a bound for one that must
first see the fault and then find the cure one change at a time).

usage, from the repository root::

    PYTHONPATH=$PWD python scenarios/library/measure.py [--seeds 1 2 3] [--policies monitor cure]
        [--cure-after 600] [name ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from swarmopt.api import run_scenario
from swarmopt.knobs import set_knob
from swarmopt.loader import load_scenario
from swarmopt.schema import Scenario
from swarmopt.simulation import Simulation

LIBRARY = Path(__file__).resolve().parent
CURES = LIBRARY.parent / "loadtests" / "library_cures.yaml"
POLICIES = ("monitor", "rules", "thompson", "cure")
# the load test's per agent-window SLO: (metric, "<" or ">=", bound)
SLO = (("response_time_ms_mean", "<", 2000.0), ("success_rate", ">=", 0.70), ("coordination_score", ">=", 0.60))


def load_cures(path: Path = CURES) -> dict[str, dict[str, Any]]:
    """``{scenario name: {agent, knobs: {dotted knob path: value}, [cost_max_usd], [cost_max_usd_per_hour]}}``
    from ``library_cures.yaml``."""
    return yaml.safe_load(path.read_text())


def scenario_paths(directory: Path = LIBRARY) -> dict[str, Path]:
    """Scenario name -> path of every library scenario (every YAML file in it)."""
    paths = sorted(directory.glob("*.yaml"))
    return {load_scenario(p).name: p for p in paths}


def with_knobs(sc: Scenario, agent: str, knobs: dict[str, Any]) -> Scenario:
    """A copy of ``sc`` in which ``agent`` starts with ``knobs`` ({dotted knob path: value}, as
    :func:`swarmopt.knobs.set_knob` takes them) set over its profile's knobs. Raises KeyError for an
    unknown agent or knob and pydantic.ValidationError for a value out of bounds."""
    if agent not in {a.id for a in sc.agents}:
        raise KeyError(f"unknown agent '{agent}'; allowed: {sorted(a.id for a in sc.agents)}")
    agents = []
    for a in sc.agents:
        if a.id == agent:
            k = a.knobs
            for path, value in knobs.items():
                k = set_knob(k, path, value)
            a = a.model_copy(update={"knobs": k})
        agents.append(a.model_dump())
    return Scenario.model_validate(sc.model_dump() | {"agents": agents})


def with_policy(sc: Scenario, policy: str) -> Scenario:
    """A copy of ``sc`` run by the optimizer ``policy`` (rules, monitor, thompson)."""
    return Scenario.model_validate(sc.model_dump() | {"optimizer": sc.optimizer.model_dump() | {"policy": policy}})


def onset_s(sc: Scenario) -> float:
    """Start (s) of the scenario's first fault."""
    return min(f.at_s for f in sc.faults)


def meets_slo(metrics: pd.DataFrame, cost_max_usd: float | None = None,
              cost_max_usd_per_hour: float | None = None) -> pd.Series:
    """Per metrics row: whether the window meets every :data:`SLO` condition (a NaN metric fails),
    and the cost limits when given (per decision, and spend per hour: a budget)."""
    ok = pd.Series(True, index=metrics.index)
    for metric, op, bound in SLO:
        ok &= metrics[metric] < bound if op == "<" else metrics[metric] >= bound
    if cost_max_usd is not None:
        ok &= metrics["cost_per_decision_usd"] <= cost_max_usd
    if cost_max_usd_per_hour is not None:
        ok &= metrics["cost_usd_per_hour"] <= cost_max_usd_per_hour
    return ok


def attainment(metrics: pd.DataFrame, agent: str, from_s: float, cost_max_usd: float | None = None,
               cost_max_usd_per_hour: float | None = None) -> float:
    """Share of ``agent``'s windows starting at or after ``from_s`` that meet the SLO (:func:`meets_slo`)."""
    rows = metrics[(metrics["agent"] == agent) & (metrics["t_start_s"] >= from_s)]
    return float(meets_slo(rows, cost_max_usd, cost_max_usd_per_hour).mean())


def static(sc: Scenario) -> Scenario:
    """A copy of ``sc`` in which the Orchestrator never changes autonomy (``orchestrator.policy: fixed``)."""
    orchestrator = sc.orchestrator.model_dump() | {"policy": "fixed"}
    return Scenario.model_validate(sc.model_dump() | {"orchestrator": orchestrator})


def run_case(sc: Scenario, cure: dict[str, Any], policy: str, seed: int, cure_after_s: float | None = None
             ) -> float:
    """Attainment of the faulted agent after onset in one run of ``sc`` under ``policy`` (or ``cure``:
    monitor with the cure's knobs and fixed autonomy, from the start or ``cure_after_s`` seconds after
    the onset), local runtime."""
    monitored = static(with_policy(sc, "monitor"))
    if policy == "cure" and cure_after_s is not None:
        sim = Simulation(monitored, seed=seed, runtime="local")
        sim.run(until=onset_s(sc) + cure_after_s)
        for path, value in cure["knobs"].items():
            sim.set_knob(cure["agent"], path, value)
        sim.run()
        res = sim.result()
    else:
        run = with_knobs(monitored, cure["agent"], cure["knobs"]) if policy == "cure" else with_policy(sc, policy)
        res = run_scenario(run, seed=seed, runtime="local")
    return attainment(res.metrics, cure["agent"], onset_s(sc), cure.get("cost_max_usd"),
                      cure.get("cost_max_usd_per_hour"))


def table(names: list[str], policies: list[str], seeds: list[int], cure_after_s: float | None = None
          ) -> pd.DataFrame:
    """Mean attainment over ``seeds``: one row per scenario, one column per policy (the cure's applied
    ``cure_after_s`` after the onset when given)."""
    cures, paths = load_cures(), scenario_paths()
    rows = []
    for name in names or sorted(paths):
        sc = load_scenario(paths[name])
        row = {"scenario": name, "agent": cures[name]["agent"]}
        for policy in policies:
            row[policy] = sum(run_case(sc, cures[name], policy, s, cure_after_s) for s in seeds) / len(seeds)
        rows.append(row)
    return pd.DataFrame(rows).set_index("scenario")


def markdown(df: pd.DataFrame) -> str:
    """``df`` as a Markdown table, floats with two decimals."""
    def cell(v) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cols = [df.index.name or "", *df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows = zip(df.index, df.itertuples(index=False), strict=True)
    lines += ["| " + " | ".join(cell(v) for v in (i, *r)) + " |" for i, r in rows]
    return "\n".join(lines)


def main() -> None:
    """Command line: print the attainment table (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--cure-after", type=float, default=None, metavar="S",
                        help="apply the cure S seconds after the first fault (default: from the start)")
    args = parser.parse_args()
    print(markdown(table(args.names, args.policies, args.seeds, args.cure_after)))


if __name__ == "__main__":
    main()
