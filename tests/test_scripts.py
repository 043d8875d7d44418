"""The example scenario scripts run as a user runs them: ``python scenarios/NAME.py``."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = sorted((ROOT / "scenarios").glob("*.py"))


def run(script, *args) -> str:
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_every_script_is_covered():
    assert {s.name for s in SCRIPTS} == {"live_fault_and_forks.py", "what_if_knobs.py"}


def test_live_fault_and_forks():
    out = run(ROOT / "scenarios" / "live_fault_and_forks.py", "--seed", "1")
    assert re.search(r"load crossed 1.3x at \d+ min: fault injected", out)
    # the optimizer acting beats doing nothing after the fault, on the same draws (paired interval above 0)
    low = float(re.search(r"SLO attainment \(points\): [+-][\d.]+ \[([+-][\d.]+),", out).group(1))
    assert low > 0, out


@pytest.mark.parametrize("seed", ["1"])
def test_what_if_knobs(seed):
    out = run(ROOT / "scenarios" / "what_if_knobs.py", "--seed", seed)
    rows = [line.split() for line in out.splitlines()[2:]]
    assert len(rows) == 6
    attainment = [float(r[2]) for r in rows]
    assert attainment == sorted(attainment, reverse=True) and attainment[0] > attainment[-1] + 0.3
