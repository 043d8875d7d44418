"""Message routes through the scenario's topology (reference/000's topology
optimizer: mesh, star, hierarchical, ring).

A message from sender S to receiver R follows S -> relays -> R, where the
relays depend on the sender's ``topology`` knob (:class:`~swarmopt.schema.Topology`):

* ``mesh``: none (direct, as without a topology);
* ``star``: the hub, unless S or R is the hub;
* ``hierarchical``: S's parent, then R's parent (an agent's parent is its
  entry in ``parents``, else the hub), leaving out S, R and repeats;
* ``ring``: the successors of S in the ring of agents (sorted ids) up to R.

A shape that needs a hub routes directly when the scenario has none. The
message reaches its first relay when a direct message would reach R; each
relay hands it on ``hop_latency_ms`` later (plus the ``extra_ms`` of every
``relay_delay`` fault on that relay active when the message was sent), and
handles a copy of it in its own inbox: the routing load that can saturate a
hub (:class:`~swarmopt.sim.inbox.Inbox`; the copy's resource is
:data:`RELAYED`, never a conflict). Everything is a function of the message,
so routes do not depend on ticks or on which agents are hosted together.
"""

from __future__ import annotations

import numpy as np

from swarmopt.schema import SHAPES, RelayDelayFault, Topology

RELAYED = -1  # the resource of a relayed copy: not a claim on any resource


class Routes:
    """The routes of one scenario over the sorted ``names`` agents share
    (agent ids and the storm sender); ``faults`` are the scenario's faults."""

    def __init__(self, topology: Topology, names: list[str], agents: list[str], faults: list) -> None:
        self.names = names
        rank = {s: i for i, s in enumerate(names)}
        self.hop_s = topology.hop_latency_ms / 1000.0
        self.hub = None if topology.hub is None else rank[topology.hub]
        self.parent = {rank[a]: rank[topology.parents.get(a, topology.hub)] for a in agents
                       if topology.parents.get(a, topology.hub) is not None}
        ring = sorted(rank[a] for a in agents)
        self.succ = {a: ring[(i + 1) % len(ring)] for i, a in enumerate(ring)}
        self.delays: dict[int, list[tuple[float, float, float]]] = {}
        for f in faults:
            if isinstance(f, RelayDelayFault):
                end = np.inf if f.duration_s is None else f.at_s + f.duration_s
                self.delays.setdefault(rank[f.target], []).append((f.at_s, end, f.extra_ms / 1000.0))
        self._paths: dict[tuple[int, int, int], tuple[int, ...]] = {}

    def relays(self, shape: int, s: int, r: int) -> tuple[int, ...]:
        """The relays (ranks) of a message from rank ``s`` to rank ``r`` under ``SHAPES[shape]``."""
        key = (shape, s, r)
        if key not in self._paths:
            self._paths[key] = self._relays(shape, s, r)
        return self._paths[key]

    def _relays(self, shape: int, s: int, r: int) -> tuple[int, ...]:
        name = SHAPES[shape]
        if name == "star":
            path: list[int] = [] if self.hub is None else [self.hub]
        elif name == "hierarchical":
            path = [p for p in (self.parent.get(s), self.parent.get(r)) if p is not None]
        elif name == "ring" and s in self.succ and r in self.succ:
            path, x = [], self.succ[s]
            while x != r:
                path.append(x)
                x = self.succ[x]
        else:
            path = []
        out: list[int] = []
        for x in path:
            if x not in (s, r) and (not out or out[-1] != x):
                out.append(x)
        return tuple(out)

    def route(self, shape: np.ndarray, sender: np.ndarray, receiver: np.ndarray, at: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Route messages (n,) with shape index, sender and receiver ranks and
        ``at`` (when a direct message would arrive, s). Returns (arrival at the
        receiver (n,), and per relayed copy: the message's index, the relay's
        rank, its arrival at the relay)."""
        n_names = len(self.names)
        key = (shape.astype(np.int64) * n_names + sender) * n_names + receiver
        uniq, inv = np.unique(key, return_inverse=True)
        final = at.copy()
        idx_out, rank_out, time_out = [], [], []
        for g, k in enumerate(uniq.tolist()):
            path = self.relays(k // (n_names * n_names), (k // n_names) % n_names, k % n_names)
            if not path:
                continue
            idx = np.flatnonzero(inv == g)
            sent, t = at[idx], at[idx]
            for relay in path:
                idx_out.append(idx)
                rank_out.append(np.full(idx.size, relay, dtype=np.int64))
                time_out.append(t)
                t = t + self.hop_s + self._extra(relay, sent)
            final[idx] = t
        if not idx_out:
            empty = np.zeros(0, dtype=np.int64)
            return final, empty, empty, np.zeros(0)
        return final, np.concatenate(idx_out), np.concatenate(rank_out), np.concatenate(time_out)

    def _extra(self, relay: int, sent: np.ndarray) -> np.ndarray | float:
        """The extra hop delay (s) of ``relay`` for messages sent at ``sent``."""
        out: np.ndarray | float = 0.0
        for start, end, extra in self.delays.get(relay, ()):
            out = out + np.where((sent >= start) & (sent < end), extra, 0.0)
        return out


__all__ = ["RELAYED", "Routes"]
