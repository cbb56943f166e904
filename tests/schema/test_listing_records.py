"""A product listing reads rows as records: what it shows equals what the product's own query
(an ORM entity) shows, and the price hooks receive the page's records, with every column the
entity has, priced in one batch without loading the entities. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import Product
from server.models.records import is_record
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
    from_listing = list(ten_off.received)
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
    # Its hook was given the listing's records: every column of the entity, the same values.
    assert len(from_listing) == 4
    entities = {
        p.id: p
        for p in await session.scalars(select(Product).execution_options(populate_existing=True))
    }
    for listed_product in from_listing:
        assert is_record(listed_product)
        entity = entities[listed_product.id]
        for column in Product.__table__.columns:  # type: ignore[attr-defined]  # SQLModel sets __table__ on table models
            assert getattr(listed_product, column.key) == getattr(entity, column.key), column.key


async def test_adjusted_listing_prices_cost_the_page_statement_only(
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
    # The page alone: its records are priced as they are (no entity is loaded for the hook).
    assert counts[0] == counts[1] == 1
