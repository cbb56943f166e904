"""A product listing reads rows as records: what it shows equals what the product's own query
(an ORM entity) shows, and plugin hooks still receive entities. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import Product
from server.plugin import Adjustment, PluginInfo, PriceItem, hookimpl
from server.plugins import PluginRuntime
from tests.support.catalog import make_category, make_product
from tests.support.graphql import GraphQLClient
from tests.support.orders import only_plugins
from tests.support.statements import counting

FIELDS = """
  id sku name description brand tags attributes isActive createdAt updatedAt
  price { amount currency } basePrice { amount currency }
  category { id name slug description parent { name } }
"""


class TenPercentOff:
    PLUGIN_INFO = PluginInfo(name="ten-off", version="1.0")

    def __init__(self) -> None:
        self.received: list[Any] = []

    @hookimpl
    def price_adjustments(self, items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
        self.received.extend(item.product for item in items.values())
        return {pid: [Adjustment("ten", "九折", -(item.base // 10))] for pid, item in items.items()}


@pytest.fixture
def ten_off() -> TenPercentOff:
    return TenPercentOff()


@pytest.fixture
def plugins(settings: Settings, ten_off: TenPercentOff) -> PluginRuntime:
    return only_plugins(settings, ten_off)


async def _catalogue(session: AsyncSession, n: int) -> list[Product]:
    audio = await make_category(session, "影音", slug="audio")
    earphones = await make_category(session, "耳机", slug="earphones", parent=audio)
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    products = []
    for i in range(n):
        products.append(
            await make_product(
                session,
                f"耳机 {i}",
                price=f"{100 + i}.90",
                brand="声学" if i % 2 else None,
                category=None if i == 1 else earphones,
                description=f"第 {i} 款",
                tags=["降噪", f"t{i}"],
                attributes={"颜色": "黑", "n": i, "nested": {"ok": True}},
                created_at=start + timedelta(hours=i),
            )
        )
    return products


async def test_a_listed_product_reads_as_the_product_itself(
    gql: GraphQLClient, session: AsyncSession, ten_off: TenPercentOff
) -> None:
    await _catalogue(session, 4)
    listed = await gql(f"{{ products(first: 10) {{ edges {{ node {{ {FIELDS} }} }} }} }}")
    nodes = [e["node"] for e in listed["products"]["edges"]]
    assert len(nodes) == 4
    for node in nodes:
        own = await gql(
            f"query($id: ID!) {{ node(id: $id) {{ ... on Product {{ {FIELDS} }} }} }}",
            {"id": node["id"]},
        )
        assert own["node"] == node
    newest = nodes[0]
    assert newest["name"] == "耳机 3"
    assert newest["tags"] == ["降噪", "t3"]
    assert newest["attributes"] == {"颜色": "黑", "n": 3, "nested": {"ok": True}}
    assert newest["category"]["parent"] == {"name": "影音"}
    # The plugin's adjustment applies to listed products too: 103.90 less 10.39.
    assert newest["basePrice"]["amount"] == "103.90"
    assert newest["price"]["amount"] == "93.51"
    # and its hook was given entities, not the listing's records.
    assert ten_off.received
    assert all(isinstance(p, Product) for p in ten_off.received)


async def test_adjusted_listing_prices_load_the_entities_in_one_statement(
    gql: GraphQLClient, session: AsyncSession, app: Any
) -> None:
    await _catalogue(session, 6)
    query = "query($n: Int!) { products(first: $n) { edges { node { sku price { amount } } } } }"
    counts = []
    for n in (2, 6):
        with counting(app) as statements:
            data = await gql(query, {"n": n})
        assert len(data["products"]["edges"]) == n
        counts.append(len(statements))
    # The page, then the page's entities for the hook: as many statements for 2 as for 6.
    assert counts[0] == counts[1]
