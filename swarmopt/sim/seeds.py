"""Random streams of a run: one ``SeedSequence`` per agent and one for the optimizer."""

from __future__ import annotations

import numpy as np


def agent_seeds(seed: int, n_agents: int) -> tuple[list[np.random.SeedSequence], np.random.SeedSequence]:
    """One independent ``SeedSequence`` per agent (by scenario order) and one for
    the optimizer, all spawned from ``SeedSequence(seed)``."""
    children = np.random.SeedSequence(seed).spawn(n_agents + 1)
    return children[:n_agents], children[n_agents]
