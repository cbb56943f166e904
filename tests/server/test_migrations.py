"""Migrations: up and down on both backends, and no drift between the models and the history."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from server import migrate
from server.config import Settings
from server.db import create_engine
from server.migrate import include_object
from tests.support.plugins import with_example


async def _diff(url: str) -> list[Any]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(
                    c, opts={"include_object": include_object, "compare_type": True}
                ),
                SQLModel.metadata,
            )
        )
    await engine.dispose()
    return diff


async def test_models_match_migrations(database_url: str) -> None:
    # The test database was built by `upgrade heads`: the models may not describe anything else.
    assert await _diff(database_url) == []


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    plugins = with_example(Settings(database_url=database_url))
    migrate.downgrade(database_url, "base", plugins)
    assert migrate.current(database_url) == set()
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.current(database_url) == set(migrate.heads(plugins))


def test_order_fees_are_split_from_discounts_on_the_way_up_and_joined_on_the_way_down(
    database_url: str,
) -> None:
    """0004 gives fees their own column: an order placed before it kept its fees as a
    negative part of its one discount; they are split by the sign of its adjustments."""
    plugins = with_example(Settings(database_url=database_url))
    migrate.downgrade(database_url, "0003_core", plugins)
    adjustments = [
        {"source": "promo", "rule": "spend", "label": "满减", "amount": -1000},
        {"source": "shop", "rule": "handling", "label": "包装费", "amount": 500},
    ]

    async def place_old_order() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    'INSERT INTO "order" (number, email, status, currency, subtotal_amount, '
                    "discount_amount, shipping_amount, total_amount, adjustments, "
                    "shipping_address, placed_at) VALUES ('SG-OLD-1', 'a@example.cn', "
                    "'PENDING_PAYMENT', 'CNY', 10000, 500, 0, 9500, :adj, '{}', :at)"
                ),
                {"adj": json.dumps(adjustments), "at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            await conn.execute(
                text(
                    'INSERT INTO "order" (number, email, status, currency, subtotal_amount, '
                    "discount_amount, shipping_amount, total_amount, adjustments, "
                    "shipping_address, placed_at) VALUES ('SG-OLD-2', 'b@example.cn', "
                    "'PENDING_PAYMENT', 'CNY', 10000, 0, 0, 10000, '[]', '{}', :at)"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await engine.dispose()

    async def amounts(*columns: str) -> list[tuple[Any, ...]]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(f'SELECT number, {", ".join(columns)} FROM "order" ORDER BY number')
            )
            found = [tuple(row) for row in rows]
        await engine.dispose()
        return found

    migrate.run_async(place_old_order)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(lambda: amounts("discount_amount", "fee_amount")) == [
        ("SG-OLD-1", 1000, 500),
        ("SG-OLD-2", 0, 0),
    ]
    migrate.downgrade(database_url, "0003_core", plugins)
    assert migrate.run_async(lambda: amounts("discount_amount")) == [
        ("SG-OLD-1", 500),
        ("SG-OLD-2", 0),
    ]
    migrate.upgrade(database_url, plugins=plugins)


# The revision 0006 follows: forgiving search is tested up and down from it.
BEFORE_FORGIVING_SEARCH = "0005_core"


def test_forgiving_search_is_backfilled_on_the_way_up_and_removed_on_the_way_down(
    database_url: str,
) -> None:
    """0006 indexes the pinyin of every product's title and collects the words typos are
    corrected to; products written before it are found by pinyin right after the upgrade."""
    plugins = with_example(Settings(database_url=database_url))
    migrate.downgrade(database_url, BEFORE_FORGIVING_SEARCH, plugins)
    sqlite = database_url.startswith("sqlite")

    async def add_old_product() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO product (sku, name, description, brand, tags, attributes, "
                    "price_amount, currency, is_active, search_title, search_body, created_at) "
                    "VALUES ('OLD-1', '蓝牙耳机 Pro', '', '漫步者', '[]', '{}', 19900, 'CNY', "
                    ":active, '蓝 牙 耳 机 pro 漫 步 者 old-1', '', :at)"
                ),
                {"active": True, "at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await engine.dispose()

    async def found(term: str) -> list[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            if sqlite:
                stmt = (
                    "SELECT p.sku FROM product p JOIN product_fts ON product_fts.rowid = p.id "
                    "WHERE product_fts MATCH :q"
                )
                rows = await conn.execute(text(stmt), {"q": f'"{term}"'})
            else:
                stmt = (
                    "SELECT sku FROM product WHERE search_vector @@ phraseto_tsquery('simple', :q)"
                )
                rows = await conn.execute(text(stmt), {"q": term})
            skus = [row[0] for row in rows]
        await engine.dispose()
        return skus

    async def words() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            got = {row[0] for row in await conn.execute(text("SELECT word FROM search_word"))}
        await engine.dispose()
        return got

    migrate.run_async(add_old_product)
    assert migrate.run_async(lambda: found("erji")) == []
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(lambda: found("erji")) == ["OLD-1"]
    assert migrate.run_async(lambda: found("lyej")) == ["OLD-1"]
    assert migrate.run_async(lambda: found("耳 机")) == ["OLD-1"]
    assert {"erji", "lanya", "manbu", "old"} <= migrate.run_async(words)

    migrate.downgrade(database_url, BEFORE_FORGIVING_SEARCH, plugins)
    # The index is back to title and body: the text is still found, the pinyin no more.
    assert migrate.run_async(lambda: found("耳 机")) == ["OLD-1"]
    assert migrate.run_async(lambda: found("erji")) == []
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(lambda: found("erji")) == ["OLD-1"]


def test_search_keys_are_filled_in_on_the_way_up_and_dropped_on_the_way_down(
    database_url: str,
) -> None:
    """0007 groups searches by their normalised text: searches recorded before it get theirs."""
    plugins = with_example(Settings(database_url=database_url))
    migrate.downgrade(database_url, "0006_core", plugins)

    async def record_old_events() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            for kind, query in [("SEARCH", "  Sony   耳机 "), ("SEARCH", "   "), ("VIEW", None)]:
                await conn.execute(
                    text(
                        "INSERT INTO customer_event (session_id, kind, query, data, occurred_at)"
                        " VALUES ('web-1', :kind, :query, '{}', :at)"
                    ),
                    {"kind": kind, "query": query, "at": datetime(2026, 1, 1, tzinfo=UTC)},
                )
        await engine.dispose()

    async def columns() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            found = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("customer_event")}
            )
        await engine.dispose()
        return found

    async def keys() -> list[tuple[Any, ...]]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT kind, search_key, search_id FROM customer_event ORDER BY id")
            )
            found = [tuple(row) for row in rows]
        await engine.dispose()
        return found

    migrate.run_async(record_old_events)
    assert not {"search_key", "search_id"} & migrate.run_async(columns)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(keys) == [
        ("SEARCH", "sony 耳机", None),
        ("SEARCH", None, None),
        ("VIEW", None, None),
    ]
    migrate.downgrade(database_url, "0006_core", plugins)
    assert not {"search_key", "search_id"} & migrate.run_async(columns)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(keys)[0] == ("SEARCH", "sony 耳机", None)


# The revision 0009 follows (other revisions may come in between): experiments are tested up and
# down from it.
BEFORE_EXPERIMENTS = "0008_core"


def test_experiments_tables_come_with_0009_and_go_on_the_way_down(database_url: str) -> None:
    """0009 adds experiments and their exposures, one exposure per experiment and visitor."""
    plugins = with_example(Settings(database_url=database_url))
    migrate.downgrade(database_url, BEFORE_EXPERIMENTS, plugins)

    async def tables() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return found & {"experiment", "experiment_exposure"}

    async def expose_twice() -> list[tuple[Any, ...]]:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO experiment (key, name, hypothesis, variants, primary_metric, "
                    "status, min_sample_size, created_at) VALUES ('old-test', '旧实验', '', "
                    "'[]', 'CONVERSION', 'RUNNING', 1000, :at)"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            insert = text(
                "INSERT INTO experiment_exposure (experiment_id, visitor, variant, exposed_at) "
                "SELECT id, 'session:web-1', 'control', :at FROM experiment"
            )
            await conn.execute(insert, {"at": datetime(2026, 1, 2, tzinfo=UTC)})
        refused = False
        try:
            async with engine.begin() as conn:
                await conn.execute(insert, {"at": datetime(2026, 1, 3, tzinfo=UTC)})
        except IntegrityError:
            refused = True
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT visitor, variant FROM experiment_exposure"))
            found = [tuple(row) for row in rows]
        await engine.dispose()
        assert refused, "a second exposure of one visitor must be refused"
        return found

    assert migrate.run_async(tables) == set()
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(tables) == {"experiment", "experiment_exposure"}
    assert migrate.run_async(expose_twice) == [("session:web-1", "control")]
    migrate.downgrade(database_url, BEFORE_EXPERIMENTS, plugins)
    assert migrate.run_async(tables) == set()
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(tables) == {"experiment", "experiment_exposure"}


# The revision 0008 follows: the customer insights' tables are tested up and down from it.
BEFORE_CUSTOMER_RFM = "0007_core"
RFM_TABLES = {"customer_rfm", "customer_segment_change", "insight_run"}


def test_customer_rfm_tables_come_and_go_with_their_revision(database_url: str) -> None:
    """0008 adds the RFM tables empty (the insights job fills them); going down drops them
    and leaves the customers and orders they were computed from."""
    plugins = with_example(Settings(database_url=database_url))

    async def tables() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return names

    async def add_buyer() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO customer (email, first_name, last_name, membership_tier, "
                    "tags, interests, is_active, created_at) VALUES ('rfm@example.cn', '', '', "
                    "'STANDARD', '[]', '[]', :active, :at)"
                ),
                {"active": True, "at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
            await conn.execute(
                text(
                    "INSERT INTO customer_rfm (customer_id, recency_days, frequency, monetary, "
                    "last_purchase_at, r_score, f_score, m_score, segment, computed_at) "
                    "SELECT id, 3, 2, 5000000000, :at, 5, 4, 5, 'IMPORTANT_VALUE', :at "
                    "FROM customer WHERE email = 'rfm@example.cn'"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await engine.dispose()

    async def monetary() -> list[int]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            found = [
                row[0] for row in await conn.execute(text("SELECT monetary FROM customer_rfm"))
            ]
        await engine.dispose()
        return found

    assert migrate.run_async(tables) >= RFM_TABLES
    migrate.downgrade(database_url, BEFORE_CUSTOMER_RFM, plugins)
    assert not RFM_TABLES & migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(tables) >= RFM_TABLES
    # A customer's total spend may pass what 32 bits hold.
    migrate.run_async(add_buyer)
    assert migrate.run_async(monetary) == [5_000_000_000]
    migrate.downgrade(database_url, BEFORE_CUSTOMER_RFM, plugins)
    assert "customer" in migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)


# The revision 0011 follows: the audiences' tables are tested up and down from it. (Its parent
# is 0009 until the revision 0010 joins the history between them.)
BEFORE_AUDIENCES = "0009_core"
AUDIENCE_TABLES = {"audience", "audience_member", "audience_change"}


def test_audience_tables_come_with_0011_and_go_on_the_way_down(database_url: str) -> None:
    """0011 adds audiences, their stored memberships (one per audience and customer) and the
    joins and leaves; deleting an audience deletes its memberships; going down drops the three
    tables and leaves the customers."""
    plugins = with_example(Settings(database_url=database_url))

    async def tables() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return found

    async def use_them() -> tuple[bool, list[tuple[Any, ...]]]:
        engine = create_engine(database_url)
        at = datetime(2026, 1, 1, tzinfo=UTC)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO customer (email, first_name, last_name, membership_tier, "
                    "tags, interests, is_active, created_at) VALUES ('aud@example.cn', '', '', "
                    "'STANDARD', '[\"vip\"]', '[]', :active, :at)"
                ),
                {"active": True, "at": at},
            )
            for key in ("vip", "gone"):
                await conn.execute(
                    text(
                        "INSERT INTO audience (key, name, description, rule, created_at, "
                        "updated_at) VALUES (:key, 'VIP', '', :rule, :at, :at)"
                    ),
                    {"key": key, "rule": json.dumps({"tags": {"tags": ["vip"]}}), "at": at},
                )
            member = text(
                "INSERT INTO audience_member (audience_id, customer_id, since) "
                "SELECT a.id, c.id, :at FROM audience a, customer c WHERE c.email = 'aud@example.cn'"
            )
            await conn.execute(member, {"at": at})
            await conn.execute(
                text(
                    "INSERT INTO audience_change (audience_id, customer_id, kind, at) "
                    "SELECT audience_id, customer_id, 'JOINED', since FROM audience_member"
                )
            )
        refused = False
        try:
            async with engine.begin() as conn:
                await conn.execute(member, {"at": at})
        except IntegrityError:
            refused = True
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM audience WHERE key = 'gone'"))
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT a.key, (SELECT count(*) FROM audience_change h "
                    "WHERE h.audience_id = a.id) FROM audience_member m "
                    "JOIN audience a ON a.id = m.audience_id"
                )
            )
            found = [tuple(row) for row in rows]
        await engine.dispose()
        return refused, found

    assert migrate.run_async(tables) >= AUDIENCE_TABLES
    migrate.downgrade(database_url, BEFORE_AUDIENCES, plugins)
    assert not AUDIENCE_TABLES & migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(tables) >= AUDIENCE_TABLES
    refused, members = migrate.run_async(use_them)
    assert refused, "a customer is once in an audience"
    assert members == [("vip", 1)]  # "gone" took its membership and history with it
    migrate.downgrade(database_url, BEFORE_AUDIENCES, plugins)
    assert not AUDIENCE_TABLES & migrate.run_async(tables)
    assert "customer" in migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)
