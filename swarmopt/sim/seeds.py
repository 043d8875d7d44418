"""Random streams of a run: one ``SeedSequence`` per agent and one for the optimizer,
and per agent again for each replica stream of a reseeded fork."""

from __future__ import annotations

import numpy as np


def agent_seeds(seed: int, n_agents: int) -> tuple[list[np.random.SeedSequence], np.random.SeedSequence]:
    """One independent ``SeedSequence`` per agent (by scenario order) and one for
    the optimizer, all spawned from ``SeedSequence(seed)``."""
    children = np.random.SeedSequence(seed).spawn(n_agents + 1)
    return children[:n_agents], children[n_agents]


def replica_seeds(seed: int, n_agents: int, stream: int) -> list[np.random.SeedSequence]:
    """One ``SeedSequence`` per agent (by scenario order) for replica stream
    ``stream`` of run ``seed``: the children of ``SeedSequence(seed)``'s child
    ``n_agents + stream``, which :func:`agent_seeds` never spawns (it takes
    children 0 to ``n_agents``), so every stream is independent of the run's own
    and of the others. Raises ValueError for ``stream`` < 1."""
    if stream < 1:
        raise ValueError(f"stream must be >= 1 (0 is the run's own streams), got {stream}")
    return np.random.SeedSequence(seed, spawn_key=(n_agents + stream,)).spawn(n_agents)
