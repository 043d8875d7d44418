"""swarmopt: simulate an autonomous multi-agent system on Ray and optimize it while it runs.

The pure core (``swarmopt.sim``, ``swarmopt.optimizer``, ``swarmopt.orchestrator``)
imports no Ray; ``swarmopt.runtime`` drives it locally or as Ray actors.
"""

from swarmopt.api import run_scenario
from swarmopt.loader import InputError, load_scenario
from swarmopt.results import RunResult

__all__ = ["run_scenario", "load_scenario", "RunResult", "InputError"]
__version__ = "0.1.0"
