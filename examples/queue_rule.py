"""A queue-saturation detection rule and the remedy that answers it (a plug-in example).

``queue_rule`` raises a ``queue_saturation`` bottleneck when, over an agent's
recent windows, decisions spend more than ``LEVEL`` of their response time
waiting for a worker; ``more_workers`` answers it with half as many workers
again. Reference them from a scenario as ``optimizer: {rules:
["queue_rule:queue_rule"], remedies: ["queue_rule:more_workers"]}`` with this
directory on PYTHONPATH, or pass ``rules=[queue_rule],
remedies=[more_workers]`` to ``swarmopt.run_scenario``.
"""

from __future__ import annotations

import math

from swarmopt.plugins import Bottleneck, KnobChange, remedy
from swarmopt.schema import KNOB_BOUNDS

LEVEL = 0.15  # share of the response time spent in the queue


def queue_rule(agent_id, rows, thresholds) -> list[Bottleneck]:
    """A ``queue_saturation`` bottleneck when the decision-weighted mean queue
    wait of ``rows`` exceeds ``LEVEL`` x their mean response time (and the rows
    hold at least the minimum traffic)."""
    busy = [r for r in rows if r["decision_count"] > 0]
    n = sum(r["decision_count"] for r in busy)
    if n < max(thresholds.min_decisions, 1):
        return []
    wait = sum(r["queue_wait_ms_mean"] * r["decision_count"] for r in busy) / n
    response = sum(r["response_time_ms_mean"] * r["decision_count"] for r in busy) / n
    limit = LEVEL * response
    if not wait > limit:
        return []
    return [Bottleneck(type="queue_saturation", severity="high", affected_component=agent_id,
                       metric="queue_wait_ms_mean", value=wait, threshold=limit,
                       impact=round((wait - limit) / limit * 100, 1),
                       description=f"{agent_id} waits {wait / response:.0%} of its response time for a worker "
                                   f"(limit {LEVEL:.0%})",
                       suggested_fix="Add workers")]


@remedy(risk=0.4, implementation_time_s=120, answers=["queue_saturation"])
def more_workers(snapshot, knobs, profile) -> list[KnobChange] | None:
    """Add half as many workers again."""
    new = min(math.ceil(knobs.max_concurrency * 1.5), int(KNOB_BOUNDS["max_concurrency"][1]))
    if new <= knobs.max_concurrency:
        return None
    return [KnobChange(profile.id, "max_concurrency", knobs.max_concurrency, new)]
