"""The ``kpis`` hook: every enabled plugin's KPIs under unique, namespaced keys."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.plugin import Kpi, KpiBucket, KpiUnit
from server.plugins import PluginError, load_plugins
from server.services.kpi_registry import registered_kpis
from tests.plugins.fakes import FakePlugin


async def _days(session: AsyncSession, buckets: Sequence[KpiBucket]) -> list[float | None]:
    return [float((b.end - b.start).days) for b in buckets]


def _kpi(key: str) -> Kpi:
    return Kpi(key, key.title(), KpiUnit.COUNT, _days)


def test_hook_kpis() -> None:
    plugin = FakePlugin(
        "couriers", kpis=lambda: [_kpi("couriers.on_time_rate"), _kpi("couriers.transit")]
    )
    runtime = load_plugins(Settings(plugins=""), extra=[plugin])
    kpis = registered_kpis(runtime)
    ours = [k for k in kpis if k.startswith("couriers.")]
    assert ours == ["couriers.on_time_rate", "couriers.transit"]
    assert kpis["couriers.transit"].unit is KpiUnit.COUNT


def test_disabled_plugin_offers_no_kpis() -> None:
    plugin = FakePlugin("couriers", kpis=lambda: [_kpi("couriers.on_time_rate")])
    runtime = load_plugins(Settings(plugins="", disabled_plugins="couriers"), extra=[plugin])
    assert "couriers.on_time_rate" not in registered_kpis(runtime)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("complaints.rate", "must start with 'couriers.'"),
        ("couriers.On Time", "lower_snake_case"),
        ("gmv", "must start with 'couriers.'"),
    ],
)
def test_a_plugin_keeps_to_its_own_namespace(key: str, message: str) -> None:
    runtime = load_plugins(
        Settings(plugins=""), extra=[FakePlugin("couriers", kpis=lambda: [_kpi(key)])]
    )
    with pytest.raises(PluginError, match=message):
        registered_kpis(runtime)


def test_one_key_twice_is_refused() -> None:
    twice = FakePlugin("couriers", kpis=lambda: [_kpi("couriers.rate"), _kpi("couriers.rate")])
    runtime = load_plugins(Settings(plugins=""), extra=[twice])
    with pytest.raises(PluginError, match="'couriers.rate' is offered twice"):
        registered_kpis(runtime)
