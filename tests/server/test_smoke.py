from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Product
from tests.support.graphql import GraphQLClient


async def test_products_over_http(gql: GraphQLClient, session: AsyncSession) -> None:
    session.add(Product(sku="A-1", name="蓝牙耳机", price_amount=19900))
    await session.commit()
    data = await gql(
        "{ products(first: 5) { edges { node { sku name price { amount currency } } } } }"
    )
    assert data["products"]["edges"] == [
        {
            "node": {
                "sku": "A-1",
                "name": "蓝牙耳机",
                "price": {"amount": "199.00", "currency": "CNY"},
            }
        }
    ]
