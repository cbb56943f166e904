"""The recommendation plugin's settings, read from ``SHOPGRAPH_RECOMMENDATION_<FIELD>``."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, field_validator


class BlendWeights(BaseModel):
    """How much each component's (normalised) score counts in the hybrid's blend."""

    # Tuned by `shopgraph recommend evaluate --tune` on the demo shop (seed 7): the best
    # recall@10 of its grid on held-out last-but-one orders (docs/plugins/recommendation.md,
    # "The hybrid").
    repeat: float = Field(default=1.0, ge=0)
    bought_with: float = Field(default=0.5, ge=0)
    similar: float = Field(default=2.0, ge=0)
    popular: float = Field(default=0.1, ge=0)
    new: float = Field(default=0.05, ge=0)


class RecommendationSettings(BaseModel):
    """Every knob an operator may tune; the defaults are what ``recommend evaluate`` chose on
    the demo shop (docs/plugins/recommendation.md)."""

    weights: BlendWeights = Field(default_factory=BlendWeights)
    # Named alternative blends, served to the visitors an experiment assigns to them: the core
    # experiment ``experiment_key`` with variants named after these (``default`` = weights).
    blends: dict[str, BlendWeights] = Field(default_factory=dict)
    experiment_key: str = Field(default="recommendation-blend", max_length=64)
    # Implicit feedback: what each behaviour counts for, and how fast it fades.
    view_weight: float = Field(default=1.0, ge=0)
    favorite_weight: float = Field(default=3.0, ge=0)
    cart_weight: float = Field(default=4.0, ge=0)
    purchase_weight: float = Field(default=6.0, ge=0)
    half_life_days: float = Field(default=30.0, gt=0)
    popularity_half_life_days: float = Field(default=7.0, gt=0)
    neighbours: int = Field(default=30, ge=1, le=200)
    # Association rules: pairs bought together in at least this many orders.
    min_pair_orders: int = Field(default=2, ge=1)
    # A product is consumable (comes back on its cycle) when this share of buyers re-bought it.
    consumable_repeat_share: float = Field(default=0.15, ge=0, le=1)
    # A durable product a customer bought is not recommended to them for this many days.
    durable_quiet_days: int = Field(default=365, ge=0)
    # The session profile: a visitor's behaviour of the last this many minutes.
    session_minutes: int = Field(default=30, ge=1, le=1440)
    # Diversity: at most this share of one answer from one category, unless nothing else fits.
    max_category_share: float = Field(default=0.5, gt=0, le=1)
    # A new product (for the NEW component): created within this many days.
    new_days: int = Field(default=30, ge=1)
    rebuild_interval_minutes: int = Field(default=360, ge=5)

    @field_validator("weights", "blends", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        """The environment gives text: ``SHOPGRAPH_RECOMMENDATION_WEIGHTS='{"repeat": 1.2}'``,
        ``SHOPGRAPH_RECOMMENDATION_BLENDS='{"fresh": {"new": 0.5}}'``."""
        return json.loads(value) if isinstance(value, str) else value
