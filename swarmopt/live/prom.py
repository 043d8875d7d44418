"""Prometheus metrics of a run, with OpenTelemetry GenAI semantic names.

:class:`PromExporter` observes the per-task samples of a run and is a
prometheus-client custom collector over them and a :class:`LiveState`.

OpenTelemetry GenAI client metrics (semantic conventions, "Semantic
conventions for generative AI metrics", status Development), one observation
per decision, i.e. per agent invocation (``gen_ai.operation.name`` =
``invoke_agent``), from the per-task samples the agents ship with each window:

* ``gen_ai.client.operation.duration`` (histogram, unit ``s``; Prometheus name
  ``gen_ai_client_operation_duration_seconds``): the decision's simulated
  response time, arrival to final answer, with the convention's bucket
  boundaries 0.01 s ... 81.92 s; ``error_type`` = ``tool_error_or_timeout`` when
  the decision had no valid attempt.
* ``gen_ai.client.token.usage`` (histogram, unit ``{token}``; Prometheus name
  ``gen_ai_client_token_usage``): the decision's input and output tokens
  (``gen_ai_token_type`` = ``input`` / ``output``), buckets 1 ... 4^13.

Both carry ``gen_ai_request_model`` (the model tier that served the decision:
``fast``, ``standard`` or ``strong``), ``gen_ai_provider_name`` = ``swarmopt``
(simulated) and ``gen_ai_agent_name``; attribute dots become underscores as in
the OpenTelemetry-to-Prometheus translation.

swarmopt's own, from the window rows and events (Prometheus naming: base units,
``_ratio`` for 0-1 fractions, ``_total`` for counters): per agent
``swarmopt_agent_health_score`` (0-1), ``swarmopt_agent_slo_met`` (1/0 per
SLO, last window), ``swarmopt_agent_autonomy_ratio``,
``swarmopt_agent_success_ratio``, ``swarmopt_agent_error_ratio``,
``swarmopt_agent_decisions_total``, ``swarmopt_agent_cost_usd_total``;
``swarmopt_system_score`` (0-1), ``swarmopt_optimizer_autonomy_ratio``,
``swarmopt_optimizer_changes_total`` (judged changes by ``decision`` and
``verdict``), ``swarmopt_bottlenecks_detected_total`` and
``swarmopt_simulated_time_seconds``. Values with no data (NaN) are left out.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterator

import numpy as np
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from swarmopt.live.state import LiveState
from swarmopt.metrics import TaskSample
from swarmopt.observe import Observer
from swarmopt.schema import TIERS

DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = tuple(float(4 ** i) for i in range(14))
PROVIDER = "swarmopt"
OPERATION = "invoke_agent"
GENAI_LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_agent_name"]


class _Histogram:
    """Bucket counts and sums per label tuple, filled in bulk with numpy."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = np.asarray(bounds)
        self.counts: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(bounds) + 1, np.int64))
        self.sums: dict[tuple, float] = defaultdict(float)

    def observe(self, labels: tuple, values: np.ndarray) -> None:
        # bucket i counts values <= bounds[i] (Prometheus "le"); the last one is +Inf
        idx = np.searchsorted(self.bounds, values, side="left")
        self.counts[labels] += np.bincount(idx, minlength=len(self.bounds) + 1)
        self.sums[labels] += float(values.sum())

    def family(self, name: str, doc: str, labels: list[str], unit: str = "") -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=labels, unit=unit)
        for key, counts in sorted(self.counts.items()):
            cum = np.cumsum(counts).tolist()
            finite = zip(self.bounds.tolist(), cum[:len(self.bounds)], strict=True)
            buckets = [(floatToGoString(b), c) for b, c in finite] + [("+Inf", cum[-1])]
            fam.add_metric(list(key), buckets, self.sums[key])
        return fam


class PromExporter(Observer, Collector):
    """Observer of a run's per-task samples and prometheus-client collector
    of the metrics listed in the module docstring; gauges and counters come
    from ``state``. Register it on a ``CollectorRegistry``."""

    def __init__(self, state: LiveState) -> None:
        self.state = state
        self.duration = _Histogram(DURATION_BUCKETS_S)
        self.tokens = _Histogram(TOKEN_BUCKETS)
        self.lock = threading.Lock()

    def samples(self, samples: list[TaskSample]) -> None:
        with self.lock:
            for smp in samples:
                if not smp.n:
                    continue
                tiers = smp.tier if smp.tier.size == smp.n else np.full(smp.n, -1, np.int8)
                for ti in np.unique(tiers).tolist():
                    model = TIERS[ti] if 0 <= ti < len(TIERS) else ""
                    rows = tiers == ti
                    base = (OPERATION, PROVIDER, model, smp.agent)
                    seconds = smp.response_ms[rows].astype(np.float64) / 1000.0
                    ok = smp.ok[rows]
                    self.duration.observe(base + ("",), seconds[ok])
                    if (~ok).any():
                        self.duration.observe(base + ("tool_error_or_timeout",), seconds[~ok])
                    if smp.tokens_in.size == smp.n:
                        self.tokens.observe(base + ("input",), smp.tokens_in[rows].astype(np.float64))
                        self.tokens.observe(base + ("output",), smp.tokens_out[rows].astype(np.float64))

    def collect(self) -> Iterator[Metric]:
        """The metric families now (called by the registry on every scrape)."""
        with self.lock:
            yield self.duration.family("gen_ai_client_operation_duration_seconds",
                                       "GenAI operation duration: simulated response time of each agent decision "
                                       "(invoke_agent), arrival to final answer", GENAI_LABELS + ["error_type"],
                                       unit="seconds")
            yield self.tokens.family("gen_ai_client_token_usage",
                                     "Number of input and output tokens used per agent decision",
                                     GENAI_LABELS + ["gen_ai_token_type"])
        yield from self._state_families()

    def _state_families(self) -> Iterator[Metric]:
        s = self.state.snapshot()
        agent = ["agent"]
        fams = {
            "health": GaugeMetricFamily("swarmopt_agent_health_score", "Health score (0-1) of the agent's last "
                                        "window: mean of min(1, SLO / mean response time), success rate and "
                                        "coordination score", labels=agent),
            "slo": GaugeMetricFamily("swarmopt_agent_slo_met", "1 if the agent's last window met the SLO, else 0",
                                     labels=["agent", "slo"]),
            "autonomy": GaugeMetricFamily("swarmopt_agent_autonomy_ratio", "Agent autonomy set by the Orchestrator "
                                          "(share of decisions taken without review)", labels=agent),
            "success": GaugeMetricFamily("swarmopt_agent_success_ratio", "Success rate of the last window",
                                         labels=agent),
            "error": GaugeMetricFamily("swarmopt_agent_error_ratio", "Error rate of the last window", labels=agent),
            "decisions": CounterMetricFamily("swarmopt_agent_decisions", "Decisions served (closed windows)",
                                             labels=agent),
            "cost": CounterMetricFamily("swarmopt_agent_cost_usd", "Cost of the decisions served, USD", labels=agent),
        }
        for a in s["agents"]:
            last = a["last"] or {}
            for key, value in (("health", a["health"]), ("autonomy", a["autonomy"]),
                               ("success", last.get("success_rate")), ("error", last.get("error_rate")),
                               ("decisions", a["totals"]["decisions"]), ("cost", a["totals"]["cost_usd"])):
                if value is not None:
                    fams[key].add_metric([a["id"]], value)
            for slo, ok in a["slo"].items():
                if ok is not None:
                    fams["slo"].add_metric([a["id"], slo], float(ok))
        yield from fams.values()
        if s["system_score"] is not None:
            yield GaugeMetricFamily("swarmopt_system_score", "Decision-weighted health score (0-1) of the agents' "
                                    "last windows", value=s["system_score"])
        yield GaugeMetricFamily("swarmopt_optimizer_autonomy_ratio", "The Performance Optimizer's autonomy",
                                value=s["optimizer"]["autonomy"])
        changes = CounterMetricFamily("swarmopt_optimizer_changes", "Optimizer changes judged, by decision "
                                      "(keep, rollback, revert) and the canary judge's verdict",
                                      labels=["decision", "verdict"])
        for j in s["optimizer"]["judged"]:
            changes.add_metric([j["decision"], j["verdict"]], j["changes"])
        yield changes
        found = CounterMetricFamily("swarmopt_bottlenecks_detected", "Bottlenecks detected by the optimizer",
                                    labels=["agent", "type", "severity"])
        with self.state.lock:
            for (agent_id, type_, severity), n in sorted(self.state.bottlenecks.items()):
                found.add_metric([agent_id, type_, severity], n)
        yield found
        yield GaugeMetricFamily("swarmopt_simulated_time_seconds", "Simulated time the run has reached",
                                value=s["now_s"])
