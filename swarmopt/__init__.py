"""swarmopt: simulate an autonomous multi-agent system on Ray and optimize it while it runs.

The pure core (``swarmopt.sim``, ``swarmopt.optimizer``, ``swarmopt.orchestrator``)
imports no Ray; ``swarmopt.runtime`` drives it locally or as Ray actors.
"""

from importlib import import_module

__all__ = ["run_scenario", "load_scenario", "RunResult", "InputError", "Simulation", "loadtest"]
__version__ = "0.1.0"

_EXPORTS = {"run_scenario": "swarmopt.api", "load_scenario": "swarmopt.loader", "RunResult": "swarmopt.results",
            "InputError": "swarmopt.loader", "Simulation": "swarmopt.simulation", "loadtest": "swarmopt.loadtest"}


def __getattr__(name: str):
    # lazy (PEP 562): a Ray worker hosting agents imports swarmopt without pandas, scipy.stats or the optimizer
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'swarmopt' has no attribute {name!r}")
