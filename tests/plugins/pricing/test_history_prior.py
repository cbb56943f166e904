"""The prior price (EU Omnibus: the lowest price of the 30 days before a reduction) on
hand-made histories, and ``Product.priorPrice`` over HTTP: batched for a page, public, with
the staff's ``priceHistory`` behind its permissions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.pricing.models import PriceHistory, PriceSource
from plugins.pricing.service.history import prior_from
from server.models import Category, Product, StaffRole, utcnow
from server.services import variants
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid
from tests.support.statements import counting

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=utcnow().tzinfo)


def _history(*changes: tuple[int, int]) -> list[PriceHistory]:
    """Rows of (days before NOW, amount), oldest first."""
    rows: list[PriceHistory] = []
    previous: int | None = None
    for days, amount in changes:
        rows.append(
            PriceHistory(
                product_id=1,
                amount=amount,
                previous_amount=previous,
                currency="CNY",
                source=PriceSource.CATALOGUE,
                effective_at=NOW - timedelta(days=days),
            )
        )
        previous = amount
    return rows


def _prior(*changes: tuple[int, int]) -> int | None:
    found = prior_from(_history(*changes), NOW)
    return found.amount if found is not None else None


def test_a_reduction_after_a_stable_price_shows_that_price() -> None:
    assert _prior((100, 10000), (5, 8000)) == 10000
    found = prior_from(_history((100, 10000), (5, 8000)), NOW)
    assert found is not None and found.reduced_at == NOW - timedelta(days=5)


def test_two_reductions_show_the_lowest_of_the_30_days_before_the_latest() -> None:
    # 10000 until day 20, 8000 until day 5, then 6000: the 30 days before day 5 saw 10000
    # (days 35–20) and 8000 (days 20–5): the lowest is 8000.
    assert _prior((100, 10000), (20, 8000), (5, 6000)) == 8000
    # Both reductions long enough apart: the window before the latest saw only 8000.
    assert _prior((200, 10000), (100, 8000), (5, 6000)) == 8000


def test_a_price_back_up_has_no_prior_price() -> None:
    assert _prior((100, 10000), (20, 8000), (5, 9000)) is None
    assert _prior((100, 10000)) is None  # never changed


def test_a_history_shorter_than_30_days_before_the_reduction_has_none() -> None:
    # The first row is 29 days before the reduction: the window is not covered.
    assert _prior((34, 10000), (5, 8000)) is None
    # Exactly 30 days before it: covered.
    assert _prior((35, 10000), (5, 8000)) == 10000


def test_a_lower_price_31_days_before_the_reduction_does_not_count() -> None:
    # 5000 until 31 days before the reduction (day 36 → 5), then 10000, then 8000: the window
    # [day 35, day 5) saw only 10000.
    assert _prior((120, 5000), (36, 10000), (5, 8000)) == 10000
    # The same 5000 until 29 days before it is inside the window: lower than today's price,
    # so no "was" price may be shown.
    assert _prior((120, 5000), (34, 10000), (5, 8000)) is None


def test_rows_of_the_future_are_not_the_current_price() -> None:
    rows = _history((100, 10000), (5, 8000)) + _history((-3, 7000))
    rows[-1].previous_amount = 8000
    found = prior_from(rows, NOW)
    assert found is not None and found.amount == 10000


# --- over HTTP -------------------------------------------------------------------------------

PAGE = """query($first: Int!) { products(first: $first) { nodes { name priorPrice { amount }
  price { amount } } } }"""
HISTORY = """query($id: ID!, $first: Int) { priceHistory(productId: $id, first: $first) {
  totalCount nodes { amount { amount } previous { amount } source who why effectiveAt } } }"""


async def seed(session: AsyncSession) -> dict[str, Any]:
    category = Category(name="厨具", slug="kitchen")
    session.add(category)
    await session.flush()
    now = utcnow()
    ids: dict[str, int] = {}
    # name, catalogue price now, history (days ago, amount)
    shaped = [
        ("reduced", 8000, [(100, 10000), (5, 8000)]),
        ("twice", 6000, [(100, 10000), (20, 8000), (5, 6000)]),
        ("back-up", 9000, [(100, 10000), (20, 8000), (5, 9000)]),
        ("short", 8000, [(20, 10000), (5, 8000)]),
        ("plain", 5000, []),
        ("also-plain", 5000, [(60, 5000)]),
    ]
    for name, price, changes in shaped:
        product = Product(sku=name, name=name, price_amount=price, category_id=category.id)
        session.add(product)
        await session.flush()
        assert product.id is not None
        session.add(variants.default_variant(product))
        previous: int | None = None
        for days, amount in changes:
            session.add(
                PriceHistory(
                    product_id=product.id,
                    amount=amount,
                    previous_amount=previous,
                    source=PriceSource.CATALOGUE,
                    effective_at=now - timedelta(days=days),
                    actor="staff:1",
                    reason="hand-made",
                )
            )
            previous = amount
        ids[name] = product.id
    staff = await make_staff(session, role=StaffRole.CATALOG)
    support = await make_staff(session, role=StaffRole.SUPPORT)
    customer = await make_customer(session)
    await session.commit()
    return {"products": ids, "staff": staff, "support": support, "customer": customer}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with module_shop(request, tmp_path_factory, seed) as built:
        yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


def as_(gql: GraphQLClient, shop: ModuleShop, who: str) -> GraphQLClient:
    return gql.as_(token_for(shop.app.state.shopgraph.settings, shop.seeded[who]))


async def test_prior_prices_of_a_page_in_one_statement(
    gql: GraphQLClient, shop: ModuleShop
) -> None:
    data = await gql(PAGE, {"first": 20})
    prior = {p["name"]: (p["priorPrice"] or {}).get("amount") for p in data["products"]["nodes"]}
    assert prior == {
        "reduced": "100.00",
        "twice": "80.00",
        "back-up": None,
        "short": None,
        "plain": None,
        "also-plain": None,
    }
    # Anonymous shoppers see it; the page's statements do not grow with its length.
    small: list[str]
    with counting(shop.app) as small:
        await gql(PAGE, {"first": 2})
    with counting(shop.app) as large:
        await gql(PAGE, {"first": 6})
    history_reads = [s for s in large if "pricing_price_history" in s]
    assert len(history_reads) == 1
    assert len(large) == len(small)


async def test_price_history_for_pricing_staff_only(gql: GraphQLClient, shop: ModuleShop) -> None:
    product = gid("Product", shop.seeded["products"]["twice"])
    staff = as_(gql, shop, "staff")
    data = await staff(HISTORY, {"id": product, "first": 2})
    history = data["priceHistory"]
    assert history["totalCount"] == 3
    assert [
        (n["amount"]["amount"], (n["previous"] or {}).get("amount")) for n in history["nodes"]
    ] == [
        ("60.00", "80.00"),
        ("80.00", "100.00"),
    ]
    assert {(n["source"], n["who"], n["why"]) for n in history["nodes"]} == {
        ("CATALOGUE", "staff:1", "hand-made")
    }
    for who in ("support", "customer"):
        body = await as_(gql, shop, who).execute(HISTORY, {"id": product})
        assert body["data"] is None and body["errors"], who
    body = await gql.execute(HISTORY, {"id": product})
    assert body["data"] is None and body["errors"]
