"""Column values read back as they were written, on both backends: JSON columns (decoded by
server.json_codec) and UTC datetimes (read from SQLite's text in one step)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server import models as m
from server.models.base import UTCDateTime


async def test_json_and_datetimes_round_trip(session: AsyncSession) -> None:
    created = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=8)))
    attributes = {"grams": 2**70, "origin": "云南", "ratio": 0.35, "notes": [None, True, {}]}
    product = m.Product(
        sku="RT-1",
        name="Round trip",
        price_amount=1990,
        tags=["绿茶", "organic"],
        attributes=attributes,
        created_at=created,
    )
    session.add(product)
    await session.commit()
    pid = product.id
    session.expunge_all()

    entity = await session.get(m.Product, pid)
    assert entity is not None
    row = (
        await session.execute(
            select(m.Product.tags, m.Product.attributes, m.Product.created_at).where(
                m.Product.id == pid
            )
        )
    ).one()
    for tags, attrs, at in ((entity.tags, entity.attributes, entity.created_at), tuple(row)):
        assert tags == ["绿茶", "organic"]
        assert attrs == attributes
        assert at == created and at.tzinfo is not None and at.utcoffset() == timedelta(0)
    assert entity.updated_at is None


@pytest.mark.parametrize(
    "stored",
    [
        "2026-03-04 05:06:07.891011",  # what SQLAlchemy writes
        "2026-03-04 05:06:07",
        "2026-03-04T05:06:07.5",
        "2026-03-04 05:06:07+02:00",  # an offset of its own
        "2026-03-04",  # a date alone
    ],
)
def test_sqlite_text_reads_as_sqlalchemys_parser_reads_it(stored: str) -> None:
    dialect = sqlite.dialect()
    column_type = UTCDateTime()
    fast = column_type.dialect_impl(dialect).result_processor(dialect, None)
    parse = DateTime(timezone=True).dialect_impl(dialect).result_processor(dialect, None)
    assert fast is not None and parse is not None
    expected = column_type.process_result_value(parse(stored), dialect)
    got = fast(stored)
    assert got == expected
    assert got is not None and got.tzinfo is UTC
    assert fast(None) is None
