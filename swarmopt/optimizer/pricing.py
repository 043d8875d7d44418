"""What a change does to an agent's cost per decision, known before it is tried (pure).

A decision's model cost is its tokens times its tier's prices per token
(:func:`swarmopt.sim.serve.serve`); its tokens do not depend on the tier, so
a change of the tier, or of the routing of actions to tiers, multiplies the
model cost per decision by a ratio the tier table gives, and the agent's cost
per decision by that ratio's share of it: the model cost's share of the
agent's recent spend. The optimizer's cost guardrail rolls back a change
whose cost per decision rose by more than ``guardrail_cost_rise``
(:func:`swarmopt.optimizer.measure.guardrails`), so a change that must do so
is not tried (:class:`swarmopt.optimizer.planning.Planner`): routing by
complexity from the fast tier sends the complex actions to the strong tier,
whose tokens cost 100 times as much with the default tiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from swarmopt.knobs import KnobChange, set_knob
from swarmopt.schema import ROUTED_TIERS, AgentProfile, Knobs, ModelTier

TIER_KNOBS = ("model_tier", "tier_routing")


def tier_price(tier: ModelTier, p: AgentProfile) -> float:
    """USD per million attempts of one of ``p``'s decisions on ``tier``: its
    prompt and output tokens times the tier's prices per million tokens."""
    return p.prompt_tokens * tier.input_usd_per_mtok + p.output_tokens * tier.output_usd_per_mtok


def model_price(k: Knobs, p: AgentProfile, models: Mapping[str, ModelTier]) -> float:
    """:func:`tier_price` of ``p``'s decisions under knobs ``k``, in the mean
    over its action mix: with ``tier_routing`` its simple actions on the fast
    tier, its complex ones on the strong tier and the rest on ``model_tier``
    (:data:`~swarmopt.schema.ROUTED_TIERS`, as :func:`swarmopt.sim.serve.serve`
    routes them); else every decision on ``model_tier``."""
    own = tier_price(models[k.model_tier], p)
    if not k.tier_routing:
        return own
    mix = p.action_mix
    return (mix.simple * tier_price(models[ROUTED_TIERS["simple"]], p)
            + mix.complex * tier_price(models[ROUTED_TIERS["complex"]], p) + (1.0 - mix.simple - mix.complex) * own)


def predicted_cost_rise(changes: Sequence[KnobChange], k: Knobs, p: AgentProfile,
                        models: Mapping[str, ModelTier], model_cost_usd: float, tool_cost_usd: float) -> float | None:
    """The relative rise of ``p``'s cost per decision that ``changes`` make
    from knobs ``k``: model share x (model price after / before - 1), the
    model share being ``model_cost_usd`` / (``model_cost_usd`` +
    ``tool_cost_usd``), the agent's recent spend (USD, over the same windows).
    Negative for a cheaper tier. None when no change touches a tier knob
    (:data:`TIER_KNOBS`), or the spend or the price before is not positive
    (nothing to scale, or an agent whose spend is not observed: NaN)."""
    if not any(c.knob in TIER_KNOBS for c in changes):
        return None
    spend = model_cost_usd + tool_cost_usd
    before = model_price(k, p, models)
    if not (spend > 0 and before > 0):
        return None
    after = k
    for c in changes:
        after = set_knob(after, c.knob, c.new)
    return model_cost_usd / spend * (model_price(after, p, models) / before - 1.0)
