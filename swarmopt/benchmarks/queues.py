"""One FCFS queue in three implementations, for the benchmark's references.

The queue: Poisson arrivals of rate ``lam`` (1/s) over ``[0, duration_s)``,
FCFS over ``c`` identical workers, i.i.d. service times with mean
``rho c / lam`` (so the utilization is ``rho``), lognormal with log-sd
``sigma`` or exponential. Each implementation returns the tasks' arrival times
and queueing waits (s), in arrival order:

* :func:`engine_queue`: swarmopt's engine, an :class:`~swarmopt.sim.agent.AgentSim`
  with one agent that is this queue (no tools, no retries, no escalation: the
  profile of :func:`swarmopt.validation.queue_scenario`, here with 60 s windows)
  stepped by :func:`swarmopt.validation.simulate_tasks` over spans of whole
  windows holding about 12,000 tasks, as ticks spanning many windows run it.
  It does all of its per-task work (every draw of its fixed layout, one block
  of draws per window, the attempt model, outcome, cost and coordination
  columns, the per-task table of every window), as in a run; only the
  optimizer and the metric rows are left out. As in a run, a window's table
  goes once the window is closed (here after its arrival and start rows are
  copied out): keeping every table would measure the operating system's page
  faults on some 230 bytes per task that a run never holds.
* :func:`plain_queue`: numpy draws, then a ``heapq`` of the workers' free times
  in a Python loop over the tasks.
* :func:`simpy_queue`: SimPy 4, a source process and one process per task on a
  ``simpy.Resource`` of capacity ``c`` (FIFO requests), on the same draws as
  :func:`plain_queue` (same seed), so the two must agree task by task.

:func:`mean_wait` gives a mean wait and its batch-means standard error
(waits of queued tasks are autocorrelated), :func:`agreement` the z-score of
two independent estimates.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from swarmopt.schema import TIERS, Scenario
from swarmopt.validation import queue_scenario, simulate_tasks

Service = Literal["lognormal", "exponential"]
RHO = 0.7
SIGMA = 0.5           # log-sd of the lognormal service: P(S > the engine's 120 s timeout) < 1e-20 here
WINDOW_S = 60.0       # the engine's metric window, as in the shipped scenarios
WARMUP = 0.1          # share of the horizon dropped before estimating the mean wait (the queue starts empty)
BATCHES = 20


@dataclass(frozen=True)
class Queue:
    """An M/G/c queue: ``lam`` arrivals per s, ``c`` workers, utilization ``rho``."""

    lam: float
    c: int
    rho: float = RHO

    @property
    def mean_service_s(self) -> float:
        """E[S] = rho c / lam (s)."""
        return self.rho * self.c / self.lam


def engine_scenario(q: Queue, service: Service, duration_s: float, seed: int) -> Scenario:
    """The single-agent scenario that is queue ``q`` in the engine
    (:func:`~swarmopt.validation.queue_scenario`; for lognormal service the
    tier's median is ``E[S] exp(-sigma^2 / 2)`` so that its mean is E[S])."""
    sc = queue_scenario(q.c, q.rho, "exponential", q.mean_service_s, duration_s, seed, window_s=WINDOW_S)
    if service == "exponential":
        return sc
    tier = sc.models["standard"].model_copy(update={
        "latency_ms_median": 1000.0 * q.mean_service_s * math.exp(-SIGMA ** 2 / 2), "latency_sigma": SIGMA})
    agent = sc.agents[0].model_copy(update={"latency_distribution": "lognormal"})
    return sc.model_copy(update={"agents": [agent], "models": {t: tier for t in TIERS}})


def engine_queue(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(arrival, wait) of every task of :func:`engine_scenario`'s agent."""
    tasks = simulate_tasks(sc, ("arrival", "start"))
    return tasks["arrival"], tasks["start"] - tasks["arrival"]


def draws(q: Queue, service: Service, duration_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (Poisson count, sorted uniforms) and service times (s) of
    the plain and SimPy queues, from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0.0, duration_s, rng.poisson(q.lam * duration_s)))
    mean = q.mean_service_s
    if service == "exponential":
        return arrival, rng.exponential(mean, arrival.size)
    return arrival, rng.lognormal(math.log(mean) - SIGMA ** 2 / 2, SIGMA, arrival.size)


def plain_queue(q: Queue, service: Service, duration_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(arrival, wait): :func:`draws`, then each task in arrival order takes the
    worker that frees up first (a heap of free times)."""
    arrival, serv = draws(q, service, duration_s, seed)
    free = [0.0] * q.c
    waits = [0.0] * arrival.size
    heapreplace = heapq.heapreplace
    for i, (a, s) in enumerate(zip(arrival.tolist(), serv.tolist(), strict=True)):
        start = a if a > free[0] else free[0]
        waits[i] = start - a
        heapreplace(free, start + s)
    return arrival, np.asarray(waits)


def simpy_queue(q: Queue, service: Service, duration_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(arrival, wait) of the same tasks as :func:`plain_queue` in SimPy."""
    import simpy

    arrival, serv = draws(q, service, duration_s, seed)
    env = simpy.Environment()
    workers = simpy.Resource(env, capacity=q.c)
    waits = [0.0] * arrival.size

    def task(i: int, a: float, s: float):
        with workers.request() as req:
            yield req
            waits[i] = env.now - a
            yield env.timeout(s)

    def source():
        for i, (a, s) in enumerate(zip(arrival.tolist(), serv.tolist(), strict=True)):
            yield env.timeout(a - env.now)
            env.process(task(i, a, s))

    env.process(source())
    env.run()
    return arrival, np.asarray(waits)


def mean_wait(arrival: np.ndarray, wait: np.ndarray, duration_s: float) -> tuple[float, float]:
    """Mean wait (s) of the tasks arriving after the warm-up (the first
    ``WARMUP`` of the horizon) and its standard error by the method of batch
    means (``BATCHES`` consecutive batches; Law & Kelton, *Simulation Modeling
    and Analysis*, sec. 9.5.3), which allows for the autocorrelation of waits."""
    w = wait[arrival >= WARMUP * duration_s]
    batches = np.array([b.mean() for b in np.array_split(w, BATCHES)])
    return float(w.mean()), float(batches.std(ddof=1) / math.sqrt(BATCHES))


def agreement(a: tuple[float, float], b: tuple[float, float]) -> float:
    """|z| of the difference of two independent estimates (mean, s.e.);
    ``b`` may be exact (s.e. 0)."""
    return abs(a[0] - b[0]) / math.hypot(a[1], b[1])
