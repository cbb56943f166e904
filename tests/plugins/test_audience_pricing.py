"""A plugin written against the plugin API alone prices an audience's members: a 5% discount for
the customers in the audience "vip" (in_audience, from the stored memberships), nobody else —
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.db import mark_write
from server.plugin import Adjustment, PluginInfo, PriceItem, hookimpl, in_audience
from server.plugins import PluginRuntime
from server.services import audiences
from server.services.customers import remove_tags
from tests.support.accounts import token_for
from tests.support.audiences import AS_OF, audience_shop
from tests.support.graphql import GraphQLClient
from tests.support.orders import gid, only_plugins


class AudiencePricing:
    PLUGIN_INFO = PluginInfo(name="audience-pricing", version="1.0")

    @hookimpl
    async def price_adjustments(
        self, session: AsyncSession, items: Mapping[int, PriceItem], customer: Any
    ) -> dict[int, list[Adjustment]] | None:
        if customer is None or not await in_audience(session, "vip", customer.id):
            return None
        return {
            key: [Adjustment("vip-price", "VIP 95 折", -(item.base // 20))]
            for key, item in items.items()
        }


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings, AudiencePricing())


PRICE = """query($id: ID!) { product(id: $id) {
  price { amount }
  priceBreakdown { adjustments { source rule label amount { amount } } } } }"""


async def test_members_of_the_audience_get_the_plugins_price(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    shop = await audience_shop(session)
    await audiences.create_audience(
        session, key="vip", name="VIP", rule={"tags": {"tags": ["vip"]}}, currency="CNY"
    )
    await session.commit()
    earphones = {"id": gid("Product", shop.earphones.id)}  # ¥199.00

    async def price_for(name: str | None) -> dict[str, Any]:
        client = gql if name is None else gql.as_(token_for(settings, shop.customers[name]))
        return dict((await client(PRICE, earphones))["product"])

    member = await price_for("a")
    assert member["price"] == {"amount": "189.05"}  # 19900 - 19900 // 20 = 18905
    assert member["priceBreakdown"]["adjustments"] == [
        {
            "source": "audience-pricing",
            "rule": "vip-price",
            "label": "VIP 95 折",
            "amount": {"amount": "-9.95"},
        }
    ]
    for other in ("c", "f", None):  # no tag, another tag ("VIP"), anonymous
        assert (await price_for(other))["price"] == {"amount": "199.00"}, other

    # a loses the tag: the price follows the stored membership, after the recomputation.
    await mark_write(session)
    await remove_tags(session, shop.customers["a"].id or 0, ["vip"])
    await session.commit()
    assert (await price_for("a"))["price"] == {"amount": "189.05"}
    await mark_write(session)
    await audiences.rebuild(session, currency="CNY", as_of=AS_OF)
    await session.commit()
    assert (await price_for("a"))["price"] == {"amount": "199.00"}
    assert (await price_for("b"))["price"] == {"amount": "189.05"}
