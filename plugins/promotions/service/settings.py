"""The promotions plugin's settings, read from ``SHOPGRAPH_PROMOTIONS_<FIELD>``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from plugins.promotions import PLUGIN_INFO


class PromotionsSettings(BaseModel):
    """Every knob an operator may tune (docs/plugins/promotions.md, "Settings")."""

    # --- coupons ---
    # Codes a cart may hold at once.
    max_codes_per_cart: int = Field(default=5, ge=1, le=20)
    # Length of generated codes (batches, claims, compensation), from an alphabet without
    # look-alike characters.
    code_length: int = Field(default=10, ge=6, le=24)
    # Days a compensation (complaint, late delivery, price protection) coupon stays valid.
    compensation_valid_days: int = Field(default=30, ge=1, le=365)
    # The COUPON promotion compensation and protection coupons are codes of (its id); None:
    # the plugin keeps one of its own, created on first use.
    compensation_promotion_id: int | None = None

    # --- referral ---
    # What each side gets after the new customer's first paid order (minor units).
    referral_inviter_amount: int = Field(default=2000, ge=0)
    referral_invitee_amount: int = Field(default=2000, ge=0)
    # A new customer may accept an invite within this many days of signing up.
    referral_accept_days: int = Field(default=30, ge=1, le=365)

    # --- jobs ---
    # Group-buy expiry and success, and campaign budgets: how often each job runs.
    group_job_interval_minutes: int = Field(default=1, ge=1)
    budget_job_interval_minutes: int = Field(default=5, ge=1)

    # --- report ---
    # The period before a promotion a report compares its average order value with (days).
    report_baseline_days: int = Field(default=28, ge=1, le=365)


def promotions_settings(plugins: Any) -> PromotionsSettings:
    """The promotions plugin's validated settings, as the app loaded them (``plugins``: the
    request's plugin runtime)."""
    config: PromotionsSettings = plugins.config_for(PLUGIN_INFO.name)
    return config
