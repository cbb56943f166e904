"""Replenishment over HTTP, as staff use it: the ``replenishment`` query (its figures, its
filters, its statements flat with the page size), ``setReplenishmentPolicy`` (typed errors,
audited), the CSV export (the query's figures), and who may see any of it."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.service import replenishment
from plugins.logistics.service.replenishment import CSV_COLUMNS
from plugins.logistics.service.settings import LogisticsSettings
from server.db import create_engine, session_factory
from server.models import AuditLogEntry, Shipment, ShipmentStatus, StaffRole, utcnow
from server.services.forecasts import shop_day
from tests.plugins.logistics.repl_support import alternating_history, noon, order_at
from tests.support.accounts import make_staff
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid
from tests.support.statements import counting

ROWS = """
query($filter: ReplenishmentFilter, $first: Int) {
  replenishment(filter: $filter, first: $first) {
    nodes {
      product { id } warehouse { id code } onHand reserved available dailyDemand
      demandDeviation leadTimeDays leadTimeDeviationDays serviceLevel reviewDays
      minOrderQuantity hasPolicy safetyStock reorderPoint belowReorderPoint
      suggestedOrderQuantity daysOfCover inventoryClasses { class units }
    }
  }
}
"""
SET = """
mutation($input: SetReplenishmentPolicyInput!) {
  setReplenishmentPolicy(input: $input) {
    __typename
    ... on SetReplenishmentPolicySuccess { row { leadTimeDays hasPolicy reorderPoint } }
    ... on Error { code field }
  }
}
"""


async def seed(session: AsyncSession) -> dict[str, Any]:
    today = shop_day(utcnow())
    histories = [await alternating_history(session, today) for _ in range(3)]
    # One delivered shipment a day late against its order's promise, for the delivery report.
    yesterday = today - timedelta(days=1)
    order = await order_at(session, histories[0], noon(today - timedelta(days=4)), 1, None)
    order.promised_by = today - timedelta(days=2)
    await session.flush()
    session.add(
        Shipment(
            order_id=order.id or 0,
            warehouse_id=histories[0].w1.id or 0,
            carrier="顺丰速运",
            tracking_number="SF0001",
            status=ShipmentStatus.DELIVERED,
            shipped_at=noon(today - timedelta(days=3)),
            delivered_at=noon(yesterday),
        )
    )
    await session.commit()
    admin = await make_staff(session, role=StaffRole.ADMIN)
    other = await make_staff(session, role=StaffRole.LOGISTICS)  # no logistics.* permission
    return {
        "products": [h.product.id for h in histories],
        "w1": [h.w1.id for h in histories],
        "w2": [h.w2.id for h in histories],
        "admin": admin,
        "other": other,
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, seed) as built:
        yield built


@pytest.fixture
async def http(shop: ModuleShop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as client:
        yield client


def _token(shop: ModuleShop, who: str) -> str:
    from tests.support.accounts import token_for

    return token_for(shop.app.state.shopgraph.settings, shop.seeded[who])


async def test_rows_hold_the_services_figures(shop: ModuleShop, http: httpx.AsyncClient) -> None:
    admin = GraphQLClient(http, _token(shop, "admin"))
    pid = shop.seeded["products"][0]
    w1, w2 = shop.seeded["w1"][0], shop.seeded["w2"][0]
    data = await admin(ROWS, {"filter": {"productId": gid("Product", pid)}})
    nodes = data["replenishment"]["nodes"]
    assert [n["warehouse"]["id"] for n in nodes] == [gid("Warehouse", w1), gid("Warehouse", w2)]
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            rows = await replenishment.compute(session, LogisticsSettings(), [(pid, w1)])
    finally:
        await engine.dispose()
    f, p = rows[(pid, w1)].figures, rows[(pid, w1)].policy
    got = nodes[0]
    assert (got["onHand"], got["reserved"], got["available"]) == (30, 5, 25)
    assert got["dailyDemand"] == pytest.approx(f.daily_demand) and f.daily_demand > 0
    assert got["demandDeviation"] == pytest.approx(f.demand_sd)
    assert (got["leadTimeDays"], got["leadTimeDeviationDays"], got["reviewDays"]) == (7, 2, 7)
    assert got["hasPolicy"] is False and got["serviceLevel"] == 0.95
    assert got["safetyStock"] == pytest.approx(f.safety_stock)
    assert got["reorderPoint"] == pytest.approx(f.reorder_point)
    assert got["suggestedOrderQuantity"] == f.order_quantity
    assert got["belowReorderPoint"] is f.below_reorder_point
    assert got["daysOfCover"] == pytest.approx(25 / f.daily_demand)
    assert [c["class"] for c in got["inventoryClasses"]] == ["SAFETY", "REGULAR", "SEASONAL"]
    assert got["inventoryClasses"][1]["units"] == pytest.approx(7 * f.daily_demand)
    assert p.lead_time_days == 7

    # The filters: a warehouse; below the reorder point or not; an id of nothing finds nothing.
    only = await admin(ROWS, {"filter": {"warehouseId": gid("Warehouse", w2)}})
    assert [n["warehouse"]["id"] for n in only["replenishment"]["nodes"]] == [gid("Warehouse", w2)]
    below = await admin(ROWS, {"filter": {"belowReorderPoint": True}})
    above = await admin(ROWS, {"filter": {"belowReorderPoint": False}})
    assert all(n["belowReorderPoint"] for n in below["replenishment"]["nodes"])
    assert not any(n["belowReorderPoint"] for n in above["replenishment"]["nodes"])
    assert len(below["replenishment"]["nodes"]) + len(above["replenishment"]["nodes"]) == 6
    none = await admin(ROWS, {"filter": {"productId": gid("Warehouse", w1)}})
    assert none["replenishment"]["nodes"] == []


async def test_a_page_reads_in_a_fixed_number_of_statements(
    shop: ModuleShop, http: httpx.AsyncClient
) -> None:
    admin = GraphQLClient(http, _token(shop, "admin"))
    await admin(ROWS, {"first": 6})  # warm
    with counting(shop.app) as few:
        one = await admin(ROWS, {"first": 1})
    with counting(shop.app) as many:
        six = await admin(ROWS, {"first": 6})
    assert len(one["replenishment"]["nodes"]) == 1 and len(six["replenishment"]["nodes"]) == 6
    assert len(many) == len(few)


async def test_policies_are_set_by_managers_and_audited(
    shop: ModuleShop, http: httpx.AsyncClient
) -> None:
    admin = GraphQLClient(http, _token(shop, "admin"))
    pid, w1 = shop.seeded["products"][1], shop.seeded["w1"][1]
    good = {"productId": gid("Product", pid), "warehouseId": gid("Warehouse", w1)}
    bad = await admin(SET, {"input": {**good, "leadTimeDays": -1}})
    assert bad["setReplenishmentPolicy"] == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "leadTimeDays",
    }
    missing = await admin(
        SET, {"input": {**good, "warehouseId": gid("Warehouse", 999_999), "leadTimeDays": 3}}
    )
    assert missing["setReplenishmentPolicy"]["__typename"] == "NotFoundError"
    done = await admin(SET, {"input": {**good, "leadTimeDays": 3.5, "leadTimeDeviationDays": 0.5}})
    row = done["setReplenishmentPolicy"]["row"]
    assert done["setReplenishmentPolicy"]["__typename"] == "SetReplenishmentPolicySuccess"
    assert row["leadTimeDays"] == 3.5 and row["hasPolicy"] is True
    listed = await admin(ROWS, {"filter": {"productId": good["productId"]}})
    assert listed["replenishment"]["nodes"][0]["leadTimeDays"] == 3.5
    engine = create_engine(shop.database_url)
    try:
        async with session_factory(engine)() as session:
            audited = (
                await session.scalars(
                    select(AuditLogEntry).where(
                        AuditLogEntry.mutation == "setReplenishmentPolicy"  # type: ignore[arg-type]
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert [a.result.split(":")[0] for a in audited] == [
        "ValidationError",
        "NotFoundError",
        "SetReplenishmentPolicySuccess",
    ]

    other = GraphQLClient(http, _token(shop, "other"))
    denied = await other.execute(SET, {"input": {**good, "leadTimeDays": 9}})
    assert denied["data"] is None and denied["errors"]
    hidden = await other.execute(ROWS)
    assert hidden["data"] is None and hidden["errors"]


async def test_the_csv_export_holds_the_querys_figures(
    shop: ModuleShop, http: httpx.AsyncClient
) -> None:
    pid, w2 = shop.seeded["products"][2], shop.seeded["w2"][2]
    url = "/plugins/logistics/replenishment.csv"
    assert (await http.get(url)).status_code == 401
    other = {"Authorization": f"Bearer {_token(shop, 'other')}"}
    assert (await http.get(url, headers=other)).status_code == 403
    headers = {"Authorization": f"Bearer {_token(shop, 'admin')}"}
    wrong = await http.get(url, params={"belowReorderPoint": "maybe"}, headers=headers)
    assert wrong.status_code == 400

    response = await http.get(url, params={"productId": gid("Product", pid)}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.text)))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [r[3] for r in table[1:]] == [str(shop.seeded["w1"][2]), str(w2)]
    line = dict(zip(CSV_COLUMNS, table[2], strict=True))
    admin = GraphQLClient(http, _token(shop, "admin"))
    data = await admin(ROWS, {"filter": {"productId": gid("Product", pid)}})
    node = data["replenishment"]["nodes"][1]
    assert line["product_id"] == str(pid) and line["on_hand"] == "100"
    assert line["available"] == "100" and line["order_quantity"] == str(
        node["suggestedOrderQuantity"]
    )
    assert line["reorder_point"] == f"{node['reorderPoint']:.2f}"
    assert line["safety_stock"] == f"{node['safetyStock']:.2f}"
    assert line["days_of_cover"] == f"{node['daysOfCover']:.2f}"
    assert line["below_reorder_point"] == str(node["belowReorderPoint"]).lower()
    nothing = await http.get(url, params={"warehouseId": "bogus"}, headers=headers)
    assert nothing.status_code == 200 and nothing.text.splitlines() == [",".join(CSV_COLUMNS)]


REPORT = """
query($input: DeliveryReportInput) {
  logisticsDeliveryReport(input: $input) {
    __typename
    ... on DeliveryReport {
      lanes { carrier fromRegion toRegion delivered withPromise onTime onTimeRate
              averageTransitHours }
    }
    ... on Error { code field }
  }
}
"""


async def test_the_delivery_report(shop: ModuleShop, http: httpx.AsyncClient) -> None:
    admin = GraphQLClient(http, _token(shop, "admin"))
    data = await admin(REPORT)
    # The last 30 days: the one shipment, delivered a day after its promise, 48 hours on the road.
    assert data["logisticsDeliveryReport"]["lanes"] == [
        {
            "carrier": "顺丰速运",
            "fromRegion": "上海市",
            "toRegion": "",
            "delivered": 1,
            "withPromise": 1,
            "onTime": 0,
            "onTimeRate": 0.0,
            "averageTransitHours": 48.0,
        }
    ]
    bad = await admin(REPORT, {"input": {"from": "2026-03-02", "to": "2026-03-01"}})
    assert bad["logisticsDeliveryReport"] == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "from",
    }
    other = GraphQLClient(http, _token(shop, "other"))
    denied = await other.execute(REPORT)
    assert denied["data"] is None and denied["errors"]
