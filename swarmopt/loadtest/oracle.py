"""The oracle: the best static configuration of the faulted agents, found by grid search.

Each point of the spec's ``oracle.grid`` (every combination of the knob values)
is a scenario in which the faulted agents run with those knobs from t = 0 and
the optimizer only monitors (policy ``monitor``). The points run as ordinary
load-test runs (one Ray task each, stored and resumed like the others). The
best point of a scenario is the one with the highest mean ``objective`` over
its seeds; it is the oracle each policy is measured against:

* ``pct_of_oracle`` = 100 x policy attainment / oracle attainment;
* ``gap_closed`` = (policy - baseline) / (oracle - baseline), the share of the
  baseline-to-oracle gap the policy closes (NaN when the oracle is no better
  than the baseline: there is no gap), with its 95% bootstrap interval
  ``gap_closed_low`` and ``gap_closed_high`` over the seeds the policy and the
  baseline both ran (pairs: common random numbers), the oracle's level held
  fixed (:func:`gap_interval`).

Attainments are means over seeds per scenario; over all scenarios, the mean of
the per-scenario means.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from swarmopt.knobs import get_knob, set_knob
from swarmopt.loadtest.compare import bootstrap_interval
from swarmopt.schema import Scenario


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in grid order."""
    knobs = list(grid)
    return [dict(zip(knobs, values, strict=False)) for values in itertools.product(*(grid[k] for k in knobs))]


def point_id(point: dict[str, Any]) -> str:
    """A point's name in the tables, e.g. ``max_concurrency=x2,max_retries=1``."""
    return ",".join(f"{k}={v}" for k, v in point.items())


def _resolve(value: Any, current: Any, knob: str) -> Any:
    if isinstance(value, str) and value.startswith("x"):
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            raise ValueError(f"{knob}: a factor '{value}' needs a numeric knob")
        x = current * float(value[1:])
        return max(1, round(x)) if isinstance(current, int) else x
    return value


_PER_TOOL = ("cache_ttl_s.", "max_cache_size.", "max_tool_calls_per_minute.")


def apply_point(sc: Scenario, point: dict[str, Any], agents: Sequence[str]) -> Scenario:
    """``sc`` with the knobs of ``point`` set on ``agents`` (a factor ``"xF"``
    scales the agent's own value; a per-tool knob, ``cache_ttl_s.<tool>``,
    ``max_cache_size.<tool>`` or ``max_tool_calls_per_minute.<tool>``, only on
    agents with that tool) and the optimizer monitoring only. Raises KeyError
    for an unknown knob and pydantic.ValidationError for a value out of bounds."""
    profiles = []
    for a in sc.agents:
        knobs = a.knobs
        if a.id in agents:
            tools = {t.name for t in a.tools}
            for knob, value in point.items():
                if knob.startswith(_PER_TOOL) and knob.split(".", 1)[1] not in tools:
                    continue
                knobs = set_knob(knobs, knob, _resolve(value, get_knob(knobs, knob), knob))
        profiles.append(a.model_copy(update={"knobs": knobs}).model_dump())
    return Scenario.model_validate(sc.model_dump() | {"agents": profiles,
                                                      "optimizer": sc.optimizer.model_dump() | {"policy": "monitor"}})


def best_points(runs: pd.DataFrame, objective: str) -> pd.DataFrame:
    """Per scenario, the oracle point with the highest mean ``objective`` over
    its seeds (oracle runs with status ``ok``): columns scenario, config,
    objective, oracle (that mean), seeds, points (how many were tried)."""
    cols = ["scenario", "config", "objective", "oracle", "seeds", "points"]
    ok = runs[(runs["kind"] == "oracle") & (runs["status"] == "ok")] if len(runs) else runs
    if ok.empty:
        return pd.DataFrame(columns=cols)
    means = ok.groupby(["scenario", "policy"])[objective].agg(["mean", "count"]).reset_index()
    out = []
    for scenario, g in means.groupby("scenario"):
        best = g.sort_values(["mean", "policy"], ascending=[False, True]).iloc[0]
        out.append({"scenario": scenario, "config": best["policy"], "objective": objective, "oracle": best["mean"],
                    "seeds": int(best["count"]), "points": len(g)})
    return pd.DataFrame(out, columns=cols)


def _gap(policy, baseline, oracle):
    """(policy - baseline) / (oracle - baseline), of floats or arrays of means."""
    return (policy - baseline) / (oracle - baseline)


def _share(policy: float, baseline: float, oracle: float) -> tuple[float, float]:
    pct = 100.0 * policy / oracle if oracle and not math.isnan(oracle) else math.nan
    return pct, _gap(policy, baseline, oracle) if oracle - baseline > 1e-12 else math.nan


def gap_interval(policy: np.ndarray, baseline: np.ndarray, oracle: float, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of ``gap_closed`` from the paired per-seed values of a policy and the
    baseline, arrays (seeds,) of one scenario (or (scenario, seed) pairs), the oracle's mean ``oracle``
    held fixed: ``scipy.stats.bootstrap(paired=True)`` through
    :func:`~swarmopt.loadtest.compare.bootstrap_interval`. NaN with fewer than 2 pairs or no gap."""
    p, b = np.asarray(policy, float), np.asarray(baseline, float)
    if len(p) < 2 or not oracle - b.mean() > 1e-12:
        return math.nan, math.nan

    def gap(x, y, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):  # a resample whose baseline reaches the oracle
            return _gap(np.mean(x, axis=axis), np.mean(y, axis=axis), oracle)

    return bootstrap_interval(p, b, gap, True, seed)


def _paired(wide: pd.DataFrame, policy: str, baseline: str, scenarios: Sequence[str]
            ) -> tuple[np.ndarray, np.ndarray]:
    """(policy values, baseline values) on the (scenario, seed) pairs of ``scenarios`` both ran, from ``wide``
    (index (scenario, seed), a column per policy)."""
    rows = wide[wide.index.get_level_values("scenario").isin(list(scenarios))]
    pairs = rows[list(dict.fromkeys((policy, baseline)))].dropna()  # the baseline against itself: one column
    return pairs[policy].to_numpy(), pairs[baseline].to_numpy()


def oracle_table(runs: pd.DataFrame, best: pd.DataFrame, baseline: str, objective: str) -> pd.DataFrame:
    """Per policy and scenario (and ``all``): the policy's, the baseline's and
    the oracle's mean ``objective``, ``pct_of_oracle``, ``gap_closed`` and its
    95% interval (:func:`gap_interval`; for ``all`` over the (scenario, seed)
    pairs, the oracle's level the mean of the scenarios')."""
    cols = ["policy", "scenario", "objective", "policy_value", "baseline_value", "oracle_value", "oracle_config",
            "pct_of_oracle", "gap_closed", "gap_closed_low", "gap_closed_high"]
    ok = runs[(runs["kind"] == "policy") & (runs["status"] == "ok")] if len(runs) else runs
    if ok.empty or best.empty:
        return pd.DataFrame(columns=cols)
    means = ok.groupby(["policy", "scenario"])[objective].mean()
    wide = ok.pivot_table(index=["scenario", "seed"], columns="policy", values=objective, aggfunc="mean")
    oracle = best.set_index("scenario")
    scenarios = [s for s in oracle.index if (baseline, s) in means.index]
    out = []
    for policy in sorted(set(ok["policy"])):
        mine = [s for s in scenarios if (policy, s) in means.index]
        for s in mine:
            p, b, o = means[(policy, s)], means[(baseline, s)], oracle.loc[s, "oracle"]
            xp, xb = _paired(wide, policy, baseline, [s])
            out.append({"policy": policy, "scenario": s, "objective": objective, "policy_value": p,
                        "baseline_value": b, "oracle_value": o, "oracle_config": oracle.loc[s, "config"]}
                       | dict(zip(("pct_of_oracle", "gap_closed"), _share(p, b, o), strict=False))
                       | dict(zip(("gap_closed_low", "gap_closed_high"), gap_interval(xp, xb, o), strict=False)))
        if mine:
            p = float(means[[(policy, s) for s in mine]].mean())
            b = float(means[[(baseline, s) for s in mine]].mean())
            o = float(oracle.loc[mine, "oracle"].mean())
            xp, xb = _paired(wide, policy, baseline, mine)
            out.append({"policy": policy, "scenario": "all", "objective": objective, "policy_value": p,
                        "baseline_value": b, "oracle_value": o, "oracle_config": ""}
                       | dict(zip(("pct_of_oracle", "gap_closed"), _share(p, b, o), strict=False))
                       | dict(zip(("gap_closed_low", "gap_closed_high"), gap_interval(xp, xb, o), strict=False)))
    return pd.DataFrame(out, columns=cols)
