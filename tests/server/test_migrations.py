"""Migrations: up and down on both backends, and no drift between the models and the history."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
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


async def _run_sql(database_url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        for sql, params in statements:
            await conn.execute(text(sql), params)
    await engine.dispose()


async def _rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        found = [tuple(row) for row in await conn.execute(text(sql))]
    await engine.dispose()
    return found


_AT = datetime(2026, 1, 1, tzinfo=UTC)
# A shop as 0004 left it: a product with stock in one warehouse, in a cart and in an order
# that shipped (a shipment line refers to the order line).
_BEFORE_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "INSERT INTO product (id, sku, name, description, tags, attributes, price_amount, "
        "cost_amount, currency, is_active, search_title, search_body, created_at) VALUES "
        "(7, 'TEE-1', 'T恤', '', '[]', '{}', 19900, 8000, 'CNY', :true, 't', '', :at)",
        {},
    ),
    (
        "INSERT INTO warehouse (id, code, name, kind, region, province, city, is_active) "
        "VALUES (3, 'WH-A', '华东仓', 'REGIONAL', '华东', '上海', '上海', :true)",
        {},
    ),
    (
        "INSERT INTO stock_level (id, warehouse_id, product_id, on_hand, reserved, "
        "safety_stock) VALUES (5, 3, 7, 10, 2, 1)",
        {},
    ),
    (
        "INSERT INTO cart (id, token, currency, status, created_at) "
        "VALUES (4, 'cart-1', 'CNY', 'ACTIVE', :at)",
        {},
    ),
    ("INSERT INTO cart_line (id, cart_id, product_id, quantity) VALUES (6, 4, 7, 2)", {}),
    (
        'INSERT INTO "order" (id, number, email, status, currency, subtotal_amount, '
        "discount_amount, shipping_amount, total_amount, adjustments, shipping_address, "
        "placed_at) VALUES (8, 'SG-OLD-1', 'a@example.cn', 'SHIPPED', 'CNY', 19900, 0, 0, "
        "19900, '[]', '{}', :at)",
        {},
    ),
    (
        "INSERT INTO order_line (id, order_id, product_id, warehouse_id, sku, product_name, "
        "quantity, base_unit_price_amount, unit_price_amount, line_total_amount, adjustments) "
        "VALUES (9, 8, 7, 3, 'TEE-1', 'T恤', 1, 19900, 19900, 19900, '[]')",
        {},
    ),
    (
        "INSERT INTO shipment (id, order_id, warehouse_id, carrier, tracking_number, status, "
        "created_at) VALUES (2, 8, 3, '顺丰速运', 'SF1', 'IN_TRANSIT', :at)",
        {},
    ),
    (
        "INSERT INTO shipment_line (id, shipment_id, order_line_id, quantity) VALUES (1, 2, 9, 1)",
        {},
    ),
)


def test_variants_migration_keeps_stock_carts_and_orders_both_ways(database_url: str) -> None:
    """0005 turns each product into one default variant (its id, SKU, price and cost) that
    its stock, cart lines and order lines refer to; down again, the rows of one product's
    variants are merged (stock and cart quantities added up) and order lines all kept."""
    plugins = with_example(Settings(database_url=database_url))
    migrate.downgrade(database_url, "0004_core", plugins)
    flags = {"true": True, "at": _AT}
    migrate.run_async(
        lambda: _run_sql(database_url, *((sql, {**flags, **p}) for sql, p in _BEFORE_VARIANTS))
    )
    migrate.upgrade(database_url, plugins=plugins)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return migrate.run_async(lambda: _rows(database_url, sql))

    assert rows(
        "SELECT id, product_id, sku, option_key, price_amount, cost_amount, barcode, "
        "is_active FROM product_variant"
    ) == [(7, 7, "TEE-1", "", 19900, 8000, None, True)]
    assert rows("SELECT id, variant_id, on_hand, reserved FROM stock_level") == [(5, 7, 10, 2)]
    assert rows("SELECT id, variant_id, quantity FROM cart_line") == [(6, 7, 2)]
    assert rows("SELECT id, variant_id, sku FROM order_line") == [(9, 7, "TEE-1")]
    assert rows("SELECT id, order_line_id FROM shipment_line") == [(1, 9)]

    # A second variant of the product: its own stock, cart line and order line.
    migrate.run_async(
        lambda: _run_sql(
            database_url,
            (
                "INSERT INTO product_variant (product_id, sku, options, option_key, "
                "price_amount, cost_amount, position, is_active, created_at) VALUES (7, "
                "'TEE-1-M', '{\"尺码\": \"M\"}', 'm', 20900, 8500, 1, :true, :at)",
                flags,
            ),
            (
                "INSERT INTO stock_level (warehouse_id, product_id, variant_id, on_hand, "
                "reserved, safety_stock) SELECT 3, 7, id, 4, 1, 0 FROM product_variant "
                "WHERE sku = 'TEE-1-M'",
                {},
            ),
            (
                "INSERT INTO cart_line (cart_id, product_id, variant_id, quantity) "
                "SELECT 4, 7, id, 3 FROM product_variant WHERE sku = 'TEE-1-M'",
                {},
            ),
            (
                "INSERT INTO order_line (order_id, product_id, variant_id, warehouse_id, sku, "
                "product_name, quantity, base_unit_price_amount, unit_price_amount, "
                "line_total_amount, adjustments, options) SELECT 8, 7, id, 3, 'TEE-1-M', "
                "'T恤 M', 1, 20900, 20900, 20900, '[]', '{}' FROM product_variant "
                "WHERE sku = 'TEE-1-M'",
                {},
            ),
        )
    )
    migrate.downgrade(database_url, "0004_core", plugins)
    assert rows("SELECT warehouse_id, product_id, on_hand, reserved FROM stock_level") == [
        (3, 7, 14, 3)
    ]
    assert rows("SELECT cart_id, product_id, quantity FROM cart_line") == [(4, 7, 5)]
    lines = rows("SELECT id, product_id, sku FROM order_line ORDER BY sku")
    assert [(line[1], line[2]) for line in lines] == [(7, "TEE-1"), (7, "TEE-1-M")]
    assert lines[0][0] == 9
    assert rows("SELECT id, order_line_id FROM shipment_line") == [(1, 9)]
    migrate.upgrade(database_url, plugins=plugins)
    assert rows("SELECT variant_id, on_hand FROM stock_level") == [(7, 14)]


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


# The revision 0010 follows: the lifetime value tables are tested up and down from it.
BEFORE_CUSTOMER_VALUE = "0009_core"
VALUE_TABLES = {"customer_value", "clv_model_fit"}


def test_customer_value_tables_come_and_go_with_their_revision(database_url: str) -> None:
    """0010 adds the lifetime value tables empty (the insights job fills them); a value may
    pass 32 bits and figures may be null; going down drops them and leaves the customers."""
    plugins = with_example(Settings(database_url=database_url))

    async def tables() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return names

    async def add_values() -> list[tuple[Any, ...]]:
        engine = create_engine(database_url)
        at = datetime(2026, 1, 1, tzinfo=UTC)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO customer (email, first_name, last_name, membership_tier, "
                    "tags, interests, is_active, created_at) VALUES ('clv@example.cn', '', '', "
                    "'STANDARD', '[]', '[]', :active, :at)"
                ),
                {"active": True, "at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO customer_value (customer_id, p_alive, expected_purchases, "
                    "horizon_days, expected_spend, margin_rate, clv_amount, churn_probability, "
                    "churn_reasons, reason, computed_at) "
                    "SELECT id, 0.9, NULL, 365, NULL, 0.3, 7000000000, NULL, '[]', NULL, :at "
                    "FROM customer WHERE email = 'clv@example.cn'"
                ),
                {"at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO clv_model_fit (fitted_at, calibration_end, unit, customers, "
                    "repeat_customers, converged, reason, horizon_days, annual_discount_rate, "
                    "default_margin_rate) VALUES (:at, :day, 'day', 3, 0, :no, 'too little', "
                    "365, 0.1, 0.3)"
                ),
                {"at": at, "day": at.date(), "no": False},
            )
        async with engine.connect() as conn:
            found = [
                tuple(row)
                for row in await conn.execute(
                    text("SELECT clv_amount, p_alive, r FROM customer_value, clv_model_fit")
                )
            ]
        await engine.dispose()
        return found

    assert migrate.run_async(tables) >= VALUE_TABLES
    migrate.downgrade(database_url, BEFORE_CUSTOMER_VALUE, plugins)
    assert not VALUE_TABLES & migrate.run_async(tables)
    assert "customer_rfm" in migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(tables) >= VALUE_TABLES
    assert migrate.run_async(add_values) == [(7_000_000_000, 0.9, None)]
    migrate.downgrade(database_url, BEFORE_CUSTOMER_VALUE, plugins)
    assert "customer" in migrate.run_async(tables)
    assert not VALUE_TABLES & migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)


# The revision 0011 follows: the audiences' tables are tested up and down from it.
BEFORE_AUDIENCES = "0010_core"
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


# The revision 0014 follows 0011: the surveys' table and the opt-out are tested up and down.
BEFORE_SURVEYS = "0014_core-1"


def test_survey_tables_come_with_0014_and_go_on_the_way_down(database_url: str) -> None:
    """0014 adds the surveys (one per trigger and subject) and the customers' opt-out, false
    for the customers already there; going down drops both and leaves the customers."""
    plugins = with_example(Settings(database_url=database_url))

    async def shape() -> tuple[set[str], set[str]]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            found = await conn.run_sync(
                lambda c: (
                    set(inspect(c).get_table_names()),
                    {column["name"] for column in inspect(c).get_columns("customer")},
                )
            )
        await engine.dispose()
        return found

    async def a_customer() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO customer (email, first_name, last_name, membership_tier, "
                    "tags, interests, is_active, created_at) VALUES ('nps@example.cn', '', '', "
                    "'STANDARD', '[]', '[]', :active, :at)"
                ),
                {"active": True, "at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await engine.dispose()

    async def use_them() -> tuple[bool, bool, int]:
        engine = create_engine(database_url)
        at = datetime(2026, 1, 1, tzinfo=UTC)
        survey = text(
            "INSERT INTO survey (customer_id, kind, trigger, subject_key, state, sent_at, "
            "expires_at) SELECT id, 'NPS', 'PERIODIC', 'nps:1', 'SENT', :at, :at FROM customer "
            "WHERE email = 'nps@example.cn'"
        )
        async with engine.begin() as conn:
            opted_out = (
                await conn.execute(
                    text("SELECT surveys_opt_out FROM customer WHERE email = 'nps@example.cn'")
                )
            ).scalar_one()
            await conn.execute(survey, {"at": at})
        refused = False
        try:
            async with engine.begin() as conn:
                await conn.execute(survey, {"at": at})
        except IntegrityError:
            refused = True
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM survey"))).scalar_one()
        await engine.dispose()
        return bool(opted_out), refused, int(count)

    tables, columns = migrate.run_async(shape)
    assert "survey" in tables and "surveys_opt_out" in columns
    migrate.downgrade(database_url, BEFORE_SURVEYS, plugins)
    tables, columns = migrate.run_async(shape)
    assert "survey" not in tables and "surveys_opt_out" not in columns
    migrate.run_async(a_customer)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(use_them) == (False, True, 1)  # one survey per trigger and subject
    migrate.downgrade(database_url, BEFORE_SURVEYS, plugins)
    tables, columns = migrate.run_async(shape)
    assert "survey" not in tables and "surveys_opt_out" not in columns
    assert "customer" in tables


# The revision 0012 follows: the channels' columns and the marketing costs are tested up and down.
BEFORE_CHANNELS = "0011_core"
SOURCE_COLUMNS = {"channel", "utm_source", "utm_medium", "utm_campaign"}


def test_channel_columns_and_costs_come_with_0012_and_go_on_the_way_down(
    database_url: str,
) -> None:
    """0012 gives events and orders their channel and UTM tags (and orders a guest's session),
    indexes the events that carry a channel, and adds marketing costs, one per day, channel
    and campaign; going down drops them all and keeps the events and orders."""
    plugins = with_example(Settings(database_url=database_url))

    async def shape() -> tuple[set[str], set[str], set[str], set[str]]:
        engine = create_engine(database_url)

        def read(c: Any) -> tuple[set[str], set[str], set[str], set[str]]:
            found = inspect(c)
            events = {col["name"] for col in found.get_columns("customer_event")}
            orders = {col["name"] for col in found.get_columns("order")}
            indexes = {ix["name"] for ix in found.get_indexes("customer_event")}
            return set(found.get_table_names()), events, orders, indexes

        async with engine.connect() as conn:
            result = await conn.run_sync(read)
        await engine.dispose()
        return result

    async def use_them() -> tuple[bool, list[tuple[Any, ...]]]:
        engine = create_engine(database_url)
        at = datetime(2026, 11, 11, tzinfo=UTC)
        cost = text(
            "INSERT INTO marketing_cost (day, channel, campaign, amount, currency, updated_at) "
            "VALUES ('2026-11-11', 'PAID', 'double11', 120050, 'CNY', :at)"
        )
        async with engine.begin() as conn:
            await conn.execute(cost, {"at": at})
            await conn.execute(
                text(
                    "INSERT INTO customer_event (kind, session_id, data, channel, utm_source, "
                    "occurred_at) VALUES ('VIEW', 's-1', '{}', 'LIVE_STREAM', 'douyin', :at)"
                ),
                {"at": at},
            )
        refused = False
        try:
            async with engine.begin() as conn:
                await conn.execute(cost, {"at": at})
        except IntegrityError:
            refused = True
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT channel, utm_source FROM customer_event WHERE session_id = 's-1'")
            )
            found = [tuple(row) for row in rows]
        await engine.dispose()
        return refused, found

    tables, events, orders, indexes = migrate.run_async(shape)
    assert "marketing_cost" in tables
    assert events >= SOURCE_COLUMNS and SOURCE_COLUMNS | {"session_id"} <= orders
    assert {"ix_customer_event_customer_channel", "ix_customer_event_session_channel"} <= indexes
    migrate.downgrade(database_url, BEFORE_CHANNELS, plugins)
    tables, events, orders, indexes = migrate.run_async(shape)
    assert "marketing_cost" not in tables and {"customer_event", "order"} <= tables
    assert not SOURCE_COLUMNS & events and not (SOURCE_COLUMNS | {"session_id"}) & orders
    assert not {i for i in indexes if "channel" in i}
    migrate.upgrade(database_url, plugins=plugins)
    refused, found = migrate.run_async(use_them)
    assert refused, "a day, channel and campaign has one cost"
    assert found == [("LIVE_STREAM", "douyin")]
    migrate.downgrade(database_url, BEFORE_CHANNELS, plugins)
    assert "marketing_cost" not in migrate.run_async(shape)[0]
    migrate.upgrade(database_url, plugins=plugins)


KPI_TABLES = {"kpi_aggregate", "kpi_customer_first", "kpi_visitor", "kpi_watermark"}
BEFORE_KPIS = "0013_core-1"


def test_kpi_tables_come_with_0013_and_go_on_the_way_down(database_url: str) -> None:
    """0013 adds the KPI aggregates, the first purchase days, the visitors' ids and the
    watermark, and payment.updated_at; a session id has one visitor id; going down drops the
    four tables and the column and leaves the payments."""
    plugins = with_example(Settings(database_url=database_url))

    async def tables() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return found

    async def payment_columns() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as conn:
            found = await conn.run_sync(
                lambda c: {column["name"] for column in inspect(c).get_columns("payment")}
            )
        await engine.dispose()
        return found

    async def use_them() -> tuple[bool, int]:
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO kpi_visitor (session_id) VALUES ('web-1')"))
            await conn.execute(
                text(
                    'INSERT INTO kpi_aggregate (period, start, "end", computed_at, '
                    + ", ".join(KPI_COUNTERS + KPI_SETS)
                    + ") VALUES ('DAY', '2026-03-02', '2026-03-03', :at, "
                    + ", ".join(["0"] * len(KPI_COUNTERS) + [":empty"] * len(KPI_SETS))
                    + ")"
                ),
                {"at": datetime(2026, 3, 2, tzinfo=UTC), "empty": b""},
            )
        refused = False
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO kpi_visitor (session_id) VALUES ('web-1')"))
        except IntegrityError:
            refused = True
        async with engine.connect() as conn:
            rows = int(await conn.scalar(text("SELECT count(*) FROM kpi_aggregate")) or 0)
        await engine.dispose()
        return refused, rows

    assert migrate.run_async(tables) >= KPI_TABLES
    assert "updated_at" in migrate.run_async(payment_columns)
    migrate.downgrade(database_url, BEFORE_KPIS, plugins)
    assert not KPI_TABLES & migrate.run_async(tables)
    assert "updated_at" not in migrate.run_async(payment_columns)
    assert "payment" in migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(tables) >= KPI_TABLES
    assert migrate.run_async(use_them) == (True, 1)
    migrate.downgrade(database_url, BEFORE_KPIS, plugins)
    assert not KPI_TABLES & migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)


KPI_COUNTERS = [
    "placed_orders",
    "paid_orders",
    "purchases",
    "gmv",
    "refunded_orders",
    "returned_orders",
    "new_customers",
    "paying_customers",
    "visits",
    "bounced_visits",
    "searches",
    "zero_result_searches",
    "payment_attempts",
    "payment_successes",
    "visitors",
    "viewers",
    "view_cart",
    "view_cart_order",
    "view_cart_order_paid",
    "carters",
    "cart_order",
    "payers",
]
KPI_SETS = [
    "customers_set",
    "new_customers_set",
    "visitors_set",
    "viewers_set",
    "carters_set",
    "orderers_set",
    "payers_set",
]


# The revision before 0015 (relative, so it holds wherever 0015 sits in the chain): the alerts'
# tables are tested up and down from it.
BEFORE_ALERTS = "0015_core-1"
ALERT_TABLES = {"alert_rule", "alert"}


def test_alert_tables_come_with_0015_and_go_on_the_way_down(database_url: str) -> None:
    """0015 adds alert rules and alerts; an alert's key is raised once (a second row with it is
    refused); deleting a rule keeps its alerts without it; going down drops both tables and
    leaves the catalogue."""
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
                    "INSERT INTO alert_rule (name, kpi_key, granularity, condition, threshold, "
                    "enabled, created_by, created_at, updated_at) VALUES ('GMV 跌 30%', 'gmv', "
                    "'DAY', 'FALLS_BY', 0.3, :yes, 'staff:1', :at, :at)"
                ),
                {"yes": True, "at": at},
            )
        alert = text(
            "INSERT INTO alert (key, kind, rule_id, kpi_key, bucket_start, bucket_end, value, "
            "direction, bad_news, message, state, created_at) SELECT 'rule:1:2026-01-01', "
            "'THRESHOLD', id, 'gmv', :day, :next, 12.5, 'DOWN', :yes, 'GMV 跌了', 'OPEN', :at "
            "FROM alert_rule"
        )
        params = {"day": date(2026, 1, 1), "next": date(2026, 1, 2), "yes": True, "at": at}
        async with engine.begin() as conn:
            await conn.execute(alert, params)
        refused = False
        try:
            async with engine.begin() as conn:
                await conn.execute(alert, params)
        except IntegrityError:
            refused = True
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM alert_rule"))
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT key, rule_id, value FROM alert"))
            found = [tuple(row) for row in rows]
        await engine.dispose()
        return refused, found

    assert migrate.run_async(tables) >= ALERT_TABLES
    migrate.downgrade(database_url, BEFORE_ALERTS, plugins)
    assert not ALERT_TABLES & migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)
    assert migrate.run_async(tables) >= ALERT_TABLES
    refused, alerts = migrate.run_async(use_them)
    assert refused, "an alert's key is raised once"
    assert alerts == [("rule:1:2026-01-01", None, 12.5)]  # the rule went, its alert stayed
    migrate.downgrade(database_url, BEFORE_ALERTS, plugins)
    assert not ALERT_TABLES & migrate.run_async(tables)
    assert "product" in migrate.run_async(tables)
    migrate.upgrade(database_url, plugins=plugins)
