"""The pricing plugin's settings, read from ``SHOPGRAPH_PRICING_<FIELD>``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from plugins.pricing import PLUGIN_INFO
from plugins.pricing.models import ClaimMethod


class PricingSettings(BaseModel):
    """Every knob an operator may tune (docs/plugins/pricing.md, "Settings")."""

    # --- guardrails ---
    # The shop-wide minimum gross margin over cost, in basis points (a limit row may set its
    # own): the final price is at least cost / (1 - margin). 0 turns it off.
    min_margin_bp: int = Field(default=0, ge=0, lt=10000)

    # --- dynamic pricing ---
    # Price points: the endings a suggested price is rounded to, in minor units modulo 100
    # for ".99" and modulo 1000 for "9.00" ("x9.00" = 900 of 1000): [99] gives 12.99, 18.99;
    # [900] over 1000 gives 19.00, 29.00. An empty list rounds to whole minor units.
    price_point_endings: list[int] = Field(default_factory=lambda: [99, 900])
    # Most a suggestion may move a price from today's, in basis points.
    max_change_per_day_bp: int = Field(default=1000, ge=0, le=10000)
    # Hysteresis: no suggestion for a move smaller than this share (basis points)…
    hysteresis_bp: int = Field(default=200, ge=0, le=10000)
    # …or for an expected gain in profit per day smaller than this share of today's profit.
    min_profit_gain_bp: int = Field(default=100, ge=0, le=10000)
    # The horizon a suggestion plans over (days) and the stock cover it aims for.
    horizon_days: int = Field(default=28, ge=1, le=365)
    # Holding cost of unsold stock per day, as a share of its cost (basis points).
    holding_cost_bp_per_day: int = Field(default=5, ge=0, le=1000)
    # Most above the cheapest competitor a suggestion may go (basis points); None: no cap.
    max_competitor_premium_bp: int | None = Field(default=1000, ge=0)
    suggest_interval_minutes: int = Field(default=24 * 60, ge=5)

    # --- elasticity ---
    # Below these, an estimate says "insufficient" instead of guessing.
    elasticity_min_days: int = Field(default=56, ge=7)
    elasticity_min_price_levels: int = Field(default=3, ge=2)
    elasticity_history_days: int = Field(default=365, ge=28, le=3 * 365)

    # --- price protection (价格保护) ---
    protection_days: int = Field(default=7, ge=0, le=365)
    protection_method: ClaimMethod = ClaimMethod.REFUND
    # Credit automatically when a price drops, instead of waiting for the customer's claim.
    protection_automatic: bool = False

    # --- competitors ---
    # An alert when a competitor is cheaper than our price by more than this (basis points).
    undercut_alert_bp: int = Field(default=500, ge=0, le=10000)
    # An alert when a competitor's price is this many robust standard deviations (MAD-based
    # z-score) from its median of the last ``abnormal_window_days``.
    abnormal_move_z: float = Field(default=3.5, gt=0)
    abnormal_window_days: int = Field(default=30, ge=7, le=365)
    abnormal_min_observations: int = Field(default=5, ge=3)
    # The shared secret of the competitor-price webhook (HMAC-SHA256 of the body); the route
    # refuses every call while it is empty.
    webhook_secret: str = Field(default="", max_length=200)

    # Jobs: the scheduled prices' boundaries (history) and automatic price protection.
    history_interval_minutes: int = Field(default=5, ge=1)

    @field_validator("price_point_endings", mode="before")
    @classmethod
    def _endings(cls, value: Any) -> Any:
        """The environment gives text: ``SHOPGRAPH_PRICING_PRICE_POINT_ENDINGS=99,900``."""
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value


def pricing_settings(plugins: Any) -> PricingSettings:
    """The pricing plugin's validated settings, as the app loaded them (``plugins``: the
    request's plugin runtime)."""
    config: PricingSettings = plugins.config_for(PLUGIN_INFO.name)
    return config
