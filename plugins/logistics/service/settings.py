"""The logistics plugin's settings, read from ``SHOPGRAPH_LOGISTICS_<FIELD>``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from plugins.logistics import PLUGIN_INFO


class ShipPolicy(StrEnum):
    COMPLETE = "COMPLETE"  # wait until every unit can leave, in the fewest parcels
    AVAILABLE = "AVAILABLE"  # ship what is in stock now, the rest when it comes


class LogisticsSettings(BaseModel):
    """Every knob an operator may tune (docs/plugins/logistics.md, "Settings")."""

    # --- promises and quotes ---
    # The shop's time zone: promise dates, cut-offs and the public calendar are read in it.
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    # A variant without a weight weighs this much (grams) for the rate tables.
    default_weight_grams: int = Field(default=500, ge=1)
    # Without a zone row, the zone is 1 in the same city, 2 in the same province, then one
    # more per distance band passed (km).
    zone_bands_km: list[int] = Field(default_factory=lambda: [500, 1000, 2000])
    # How far ahead a promise may reach (days): a cart that cannot ship within it is not quoted.
    horizon_days: int = Field(default=30, ge=1, le=365)

    # --- allocation and dispatch ---
    ship_policy: ShipPolicy = ShipPolicy.COMPLETE
    dispatch_job_interval_minutes: int = Field(default=1, ge=1)

    # --- tracking and delays ---
    # A webhook delivery's timestamp may be this old (or early): older ones are replays.
    webhook_tolerance_seconds: int = Field(default=300, ge=10, le=3600)
    # A shipment whose probability of arriving after its promise passes this is AT_RISK.
    late_risk_threshold: float = Field(default=0.5, gt=0, lt=1)
    delay_job_interval_minutes: int = Field(default=15, ge=1)
    # 超时赔付: compensate late deliveries through the ``shipment_delay_compensation`` hook.
    auto_compensation: bool = True
    compensation_amount: int = Field(default=1000, ge=0)

    # --- returns ---
    # Days after delivery a customer may ask for a return, exchange or repair (七天无理由).
    return_window_days: int = Field(default=7, ge=0, le=365)
    repair_window_days: int = Field(default=365, ge=0, le=3650)

    # --- replenishment ---
    # Days of sales history the demand deviation is measured over.
    replenishment_history_days: int = Field(default=90, ge=14, le=730)
    stockout_job_interval_minutes: int = Field(default=60, ge=1)
    # A product's policy at a warehouse without its own row (setReplenishmentPolicy): the
    # supplier's lead time (mean and standard deviation, days), the service level aimed at
    # (the chance of not running out within a lead time), the review period (days) and the
    # smallest order (units).
    lead_time_days: float = Field(default=7.0, gt=0, le=365)
    lead_time_sd_days: float = Field(default=2.0, ge=0, le=365)
    service_level: float = Field(default=0.95, ge=0.5, le=0.999)
    review_days: int = Field(default=7, ge=0, le=365)
    min_order_quantity: int = Field(default=1, ge=1)


def logistics_settings(plugins: Any) -> LogisticsSettings:
    """The logistics plugin's validated settings, as the app loaded them (``plugins``: the
    request's plugin runtime)."""
    config: LogisticsSettings = plugins.config_for(PLUGIN_INFO.name)
    return config
