"""Package layout: lint-clean, and the import boundaries that keep actors light."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_ruff_finds_nothing():
    p = subprocess.run([sys.executable, "-m", "ruff", "check", "swarmopt", "tests", "examples"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def imported_by(module: str) -> set[str]:
    """Top modules loaded by importing ``module`` in a fresh interpreter."""
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return set(out.stdout.split())


def test_orchestrator_and_optimizer_factory_stay_light():
    orch = imported_by("swarmopt.orchestrator")
    assert "scipy" not in orch and "swarmopt.optimizer.core" not in orch
    factory = imported_by("swarmopt.runtime.components")
    assert "psutil" not in factory and "swarmopt.runtime.group" not in factory
