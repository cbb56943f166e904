"""The replenishment formulas against hand-computed values."""

from __future__ import annotations

import math

import pytest

from plugins.logistics.service.replenishment import (
    Policy,
    figures,
    horizon_days,
    safety_stock,
    split_shares,
    z_score,
)

Z95 = 1.6448536269514722  # Φ⁻¹(0.95)


def policy(**changes: float) -> Policy:
    base = {
        "lead_time_days": 4.0,
        "lead_time_sd_days": 1.0,
        "service_level": 0.95,
        "review_days": 3,
        "min_order_quantity": 24,
    }
    base.update(changes)
    return Policy(**base)  # type: ignore[arg-type]


def test_z_is_the_normal_quantile_of_the_service_level() -> None:
    assert z_score(0.95) == pytest.approx(Z95)
    assert z_score(0.5) == pytest.approx(0.0)
    assert z_score(0.99) == pytest.approx(2.3263478740)


def test_safety_stock_adds_demand_and_lead_time_variability() -> None:
    # z·√(L·σ_d² + d²·σ_L²) = 1.6449·√(4·9 + 100·1) = 1.6449·√136 = 19.1821
    assert safety_stock(Z95, 4, 1, 10, 3) == pytest.approx(19.18207, abs=1e-4)
    # A fixed lead time: z·σ_d·√L = 1.6449·3·2 = 9.8691
    assert safety_stock(Z95, 4, 0, 10, 3) == pytest.approx(9.86912, abs=1e-4)


def test_the_horizon_is_the_lead_time_and_review_period_rounded_up() -> None:
    assert horizon_days(policy()) == 7
    assert horizon_days(policy(lead_time_days=2.5)) == 6  # ⌈5.5⌉
    assert horizon_days(policy(lead_time_days=0.5, review_days=0)) == 1


def test_figures_below_the_reorder_point() -> None:
    # 70 units forecast over the 7 days: d = 10. SS = 19.1821 (above); ROP = 10·4 + SS = 59.1821.
    # Available 60 − 10 = 50 ≤ ROP: order ⌈10·7 + 19.1821 − 50⌉ = ⌈39.18⌉ = 40 (≥ MOQ 24).
    f = figures(policy(), horizon_units=70, demand_sd=3, baseline=8, on_hand=60, reserved=10)
    assert f.daily_demand == pytest.approx(10)
    assert f.safety_stock == pytest.approx(19.18207, abs=1e-4)
    assert f.reorder_point == pytest.approx(59.18207, abs=1e-4)
    assert f.below_reorder_point
    assert f.order_quantity == 40
    assert f.days_of_cover == pytest.approx(5.0)
    # Classes: regular d·R = 30; seasonal 70 − 8·7 = 14 above the history's level.
    assert f.regular == pytest.approx(30)
    assert f.seasonal == pytest.approx(14)


def test_the_minimum_order_and_above_the_reorder_point() -> None:
    f = figures(
        policy(min_order_quantity=50),
        horizon_units=70,
        demand_sd=3,
        baseline=8,
        on_hand=50,
        reserved=0,
    )
    assert f.order_quantity == 50  # 40 needed, 50 the minimum
    above = figures(policy(), horizon_units=70, demand_sd=3, baseline=12, on_hand=60, reserved=0)
    assert not above.below_reorder_point and above.order_quantity == 0
    assert above.seasonal == 0  # the forecast (70) is below the level (12·7 = 84)


def test_no_demand() -> None:
    # d = 0: only the demand deviation holds safety stock: 1.6449·2·√4 = 6.5794.
    f = figures(policy(), horizon_units=0, demand_sd=2, baseline=0, on_hand=3, reserved=0)
    assert f.daily_demand == 0 and f.days_of_cover is None
    assert f.reorder_point == pytest.approx(6.57941, abs=1e-4)
    # 3 ≤ 6.58: order ⌈0 + 6.58 − 3⌉ = 4, raised to the minimum 24.
    assert f.order_quantity == 24
    none = figures(policy(), horizon_units=0, demand_sd=0, baseline=0, on_hand=0, reserved=0)
    assert none.reorder_point == 0 and none.below_reorder_point and none.order_quantity == 24


def test_an_exact_need_is_not_rounded_up_past_itself() -> None:
    # d = 1, σ_d = 0, σ_L = 0: SS 0, ROP 4; available 1: order ⌈1·7 − 1⌉ = 6 exactly.
    f = figures(
        policy(lead_time_sd_days=0, min_order_quantity=1),
        horizon_units=7,
        demand_sd=0,
        baseline=1,
        on_hand=1,
        reserved=0,
    )
    assert f.order_quantity == 6 and math.isclose(f.reorder_point, 4)


def test_shares_follow_the_warehouses_sales_or_split_evenly() -> None:
    assert split_shares({1: 30, 2: 10}, [1, 2, 3]) == {1: 0.75, 2: 0.25}
    assert split_shares({}, [3, 1, 3]) == {1: 0.5, 3: 0.5}
    assert split_shares({1: 0.0}, [1, 2]) == {1: 0.5, 2: 0.5}
    assert split_shares({}, []) == {}
