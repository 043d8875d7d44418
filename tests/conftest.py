"""Shared fixtures: the repository's scenario, small scenarios, and one Ray per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from swarmopt.loader import load_scenario
from swarmopt.schema import Scenario

ROOT = Path(__file__).resolve().parent.parent
MH_SCENARIO = ROOT / "scenarios" / "market_hunter_degradation.yaml"
EXAMPLES = ROOT / "examples"


# a healthy agent's window summary: no detection rule breaches it (tests add the one figure they probe)
HEALTHY_SNAPSHOT = {"decision_count": 100.0, "success_rate": 0.9, "response_time_ms_mean": 900.0,
                    "coordination_score": 0.9, "error_rate": 0.0, "cost_per_decision_usd": 0.001, "cpu_percent": 10.0,
                    "memory_percent": 10.0}


def swarmopt_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m swarmopt ARGS`` (stderr is not a terminal: no progress bar, plain narrative)."""
    return subprocess.run([sys.executable, "-m", "swarmopt", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.fixture(scope="session")
def mh_scenario() -> Scenario:
    return load_scenario(MH_SCENARIO)


def assert_same(a: pd.DataFrame, b: pd.DataFrame, **kw) -> None:
    """``a`` and ``b`` equal to the last bit: the same scenario and seed give identical tables on both runtimes, at
    any tick, after a fork or a restart (``pd.testing.assert_frame_equal`` alone allows a relative 1e-5)."""
    pd.testing.assert_frame_equal(a, b, check_exact=True, **kw)


def short(sc: Scenario, duration_s: float, **update) -> Scenario:
    """A copy of ``sc`` with another duration (and fields), re-validated."""
    return Scenario.model_validate(sc.model_dump() | {"duration_s": duration_s} | update)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``pytest -n 2``; pyproject sets ``--dist loadgroup``) every test of the session Ray
    goes to one worker, so one Ray serves them all as without xdist, and the other tests go out module by module,
    so a module's fixtures (the A/A trials) are built once."""
    for item in items:
        ray = "ray_session" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("ray" if ray else item.module.__name__))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (2 CPUs, dashboard off). Its
    workers also import from ``examples/`` (the plug-in tests' modules): Ray
    starts them with the environment of ``ray.init``, as ``PYTHONPATH=examples
    swarmopt run ...`` would."""
    ray = pytest.importorskip("ray")
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXAMPLES), before) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    yield ray
    ray.shutdown()
