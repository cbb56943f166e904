from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.heavy
def test_the_served_app_freezes_what_start_up_built(
    tmp_path: Path,
) -> None:
    # A fresh interpreter: freezing inside the test process would pin every later test's objects.
    code = (
        "import gc\n"
        "from server.app import asgi_app\n"
        "before = gc.get_freeze_count()\n"
        "app = asgi_app()\n"
        "print(before, gc.get_freeze_count())\n"
    )
    env = {**os.environ, "SHOPGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 's.db'}"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    before, after = out.stdout.split()
    assert int(before) == 0
    # The schema alone is tens of thousands of objects.
    assert int(after) > 10_000
