"""A scenario built in code: a fault injected when the live load crosses a level, then two futures compared.

The load ramps up 60% over the first hour. The script steps the run window by
window and, as soon as the Market Hunter serves 30% more decisions per window
than in its first ten minutes, makes its data source 4x slower and error-prone
(``Simulation.inject``). It then forks the run: in one future the Performance
Optimizer goes on acting; in the other its planning is frozen (changes already
in flight are still judged). Both futures see the same arrivals and service
draws (common random numbers), so their per-window differences are paired:
the script reports the mean difference in the Market Hunter's SLO attainment
and response time with a 95% paired bootstrap interval and a Wilcoxon
signed-rank test.

    python scenarios/live_fault_and_forks.py [--seed N]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

import swarmopt
from swarmopt.loader import AGENTS_DIR, build_scenario

AGENT = "market-hunter"
PROFILES = ["strategic_orchestrator", "market_hunter", "narrative_architect", "market_analyzer", "execution_agent"]
LOAD_LEVEL = 1.3  # inject once the agent's load is 30% above its start
SLO = "response_time_ms_mean < 2000 and success_rate >= 0.70 and coordination_score >= 0.60"


def scenario(seed: int):
    """The scripted scenario: five agents, a one-hour ramp to 1.6x load, no fault yet."""
    return build_scenario({
        "name": "scripted_ramp_fault", "duration_s": 7200, "tick_s": 60, "window_s": 60, "seed": seed,
        "agents": PROFILES, "load": {"kind": "ramp", "start_s": 0, "end_s": 3600, "ramp_to": 1.6},
        "optimizer": {"policy": "rules"},
    }, source="live_fault_and_forks.py", base=AGENTS_DIR)


def step_until_load_crosses(sim: swarmopt.Simulation) -> float:
    """Step window by window until the agent's decisions per window exceed
    ``LOAD_LEVEL`` x their mean over the first ten windows; returns the time."""
    while not sim.done:
        sim.step()
        m = sim.metrics
        rows = m[m["agent"] == AGENT]
        if len(rows) > 10 and rows["decision_count"].iloc[-1] > LOAD_LEVEL * rows["decision_count"].iloc[:10].mean():
            return sim.now
    raise RuntimeError("the load never crossed the level")


def paired(diff: np.ndarray) -> tuple[float, float, float, float]:
    """Mean of paired differences, its 95% bootstrap interval and the Wilcoxon p."""
    ci = stats.bootstrap((diff,), np.mean, confidence_level=0.95, random_state=0).confidence_interval
    p = stats.wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
    return float(diff.mean()), float(ci.low), float(ci.high), float(p)


def main(seed: int) -> None:
    with swarmopt.Simulation(scenario(seed), runtime="local") as acting:
        t = step_until_load_crosses(acting)
        acting.inject({"kind": "latency", "target": AGENT, "tool": "data_source", "factor": 4.0})
        acting.inject({"kind": "error_spike", "target": AGENT, "tool": "data_source", "error_rate": 0.45})
        print(f"load crossed {LOAD_LEVEL}x at {t / 60:.0f} min: fault injected on {AGENT}'s data_source")
        frozen = acting.fork()
        frozen.freeze_planning()
        acting.run()
        frozen.run()
        after = [m[(m["agent"] == AGENT) & (m["t_start_s"] >= t)].reset_index(drop=True)
                 for m in (acting.metrics, frozen.metrics)]
        assert (after[0]["arrival_rate_per_s"] == after[1]["arrival_rate_per_s"]).all()  # common random numbers
        met = [a.eval(SLO).astype(float).to_numpy() for a in after]
        rt = [a["response_time_ms_mean"].to_numpy() for a in after]
        print(f"{len(met[0])} windows after the fault; SLO attainment: optimizer acting {met[0].mean():.0%}, "
              f"planning frozen {met[1].mean():.0%}")
        for name, (a, b) in (("SLO attainment (points)", (100 * met[0], 100 * met[1])),
                             ("response time (ms)", rt)):
            mean, lo, hi, p = paired(a - b)
            print(f"  acting - frozen, {name}: {mean:+.1f} [{lo:+.1f}, {hi:+.1f}] (Wilcoxon p = {p:.3g})")
        kept = acting.events.query("event == 'optimization.kept'")
        print("changes kept by the optimizer:", ", ".join(kept["kind"]) or "none")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    main(parser.parse_args().seed)
