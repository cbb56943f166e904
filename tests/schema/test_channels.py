"""Channels over HTTP, on SQLite and PostgreSQL: a client reports where a visitor came from
(``recordEvent``), checkout takes a channel or falls back on the visitor's latest touch
within the lookback, who sees an order's channel and tags; and staff import marketing costs
(rows or CSV, all or nothing, re-imports replacing, concurrent imports)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import migrate
from server.cli import main
from server.config import Settings
from server.db import create_engine, session_factory
from server.models import (
    AuditLogEntry,
    Cart,
    CartStatus,
    CustomerEvent,
    CustomerEventKind,
    MarketingCost,
    Order,
    SalesChannel,
    StaffRole,
)
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import cart_with, count, gid, make_product, place

RECORD = """mutation($input: RecordEventInput!) { recordEvent(input: $input) {
  __typename
  ... on RecordEventSuccess { event { id channel utmSource utmMedium utmCampaign } }
  ... on Error { code field message } } }"""
ORDER = """query($id: ID!) { order(id: $id) {
  number channel utmSource utmMedium utmCampaign } }"""
IMPORT = """mutation($input: ImportMarketingCostsInput!) { importMarketingCosts(input: $input) {
  __typename
  ... on ImportMarketingCostsSuccess { rows replaced total { amount currency } firstDay lastDay }
  ... on InvalidImportRow { code field row column message }
  ... on Error { code field message } } }"""


async def record(client: GraphQLClient, **values: Any) -> dict[str, Any]:
    return dict((await client(RECORD, {"input": values}))["recordEvent"])


async def _costs(session: AsyncSession) -> list[tuple[Any, ...]]:
    await session.commit()  # a fresh snapshot
    rows = await session.execute(
        select(
            MarketingCost.day,
            MarketingCost.channel,
            MarketingCost.campaign,
            MarketingCost.amount,
            MarketingCost.currency,
        ).order_by(MarketingCost.day, MarketingCost.channel, MarketingCost.campaign)
    )
    return [tuple(r) for r in rows]


# --- touches and orders -------------------------------------------------------------------------


async def test_an_order_without_a_channel_takes_the_latest_touch(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price=5000)
    customer = await make_customer(session)
    shopper = gql.as_(token_for(settings, customer))
    staff = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    item = gid("Product", product.id)

    first = await record(
        shopper, kind="VIEW", productId=item, channel="paid", utmSource=" baidu ", utmMedium="cpc"
    )
    assert first["event"] | {"id": None} == {
        "id": None,
        "channel": "PAID",
        "utmSource": "baidu",
        "utmMedium": "cpc",
        "utmCampaign": None,
    }
    latest = await record(
        shopper,
        kind="VIEW",
        productId=item,
        channel=" Live_Stream ",
        utmSource="douyin",
        utmCampaign="double11-2026",
    )
    assert latest["event"]["channel"] == "LIVE_STREAM"
    # Later events without a channel are no touches: the live stream stays the latest.
    await record(shopper, kind="ADD_TO_CART", productId=item)
    placed = await place(shopper, await cart_with(shopper, [(product, 1)]))
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    order_id = placed["order"]["id"]

    seen = (await staff(ORDER, {"id": order_id}))["order"]
    assert (seen["channel"], seen["utmSource"], seen["utmMedium"], seen["utmCampaign"]) == (
        "LIVE_STREAM",
        "douyin",
        None,
        "double11-2026",
    )
    # The customer sees where their own order came from, not the shop's tags.
    own = (await shopper(ORDER, {"id": order_id}))["order"]
    assert (own["channel"], own["utmSource"], own["utmCampaign"]) == ("LIVE_STREAM", None, None)

    # What checkout is told wins over the touches; a UTM tag alone is "told" too.
    told = await place(shopper, await cart_with(shopper, [(product, 1)]), channel="mini_program")
    assert (await staff(ORDER, {"id": told["order"]["id"]}))["order"]["channel"] == "MINI_PROGRAM"
    tagged = await place(shopper, await cart_with(shopper, [(product, 1)]), utmCampaign="vip")
    found = (await staff(ORDER, {"id": tagged["order"]["id"]}))["order"]
    assert (found["channel"], found["utmCampaign"]) == (None, "vip")


async def test_touches_older_than_the_lookback_do_not_count(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price=5000)
    staff = gql.as_(token_for(settings, await make_staff(session)))
    now = datetime.now(UTC)
    old, recent = await make_customer(session), await make_customer(session)
    # Thirty days is the lookback (attribution_lookback_days).
    session.add_all(
        [
            CustomerEvent(
                kind=CustomerEventKind.VIEW,
                customer_id=old.id,
                channel=SalesChannel.PAID,
                occurred_at=now - timedelta(days=30, minutes=5),
            ),
            CustomerEvent(
                kind=CustomerEventKind.VIEW,
                customer_id=recent.id,
                channel=SalesChannel.ORGANIC,
                occurred_at=now - timedelta(days=29, hours=23),
            ),
            # Another customer's recent touch is not theirs.
            CustomerEvent(
                kind=CustomerEventKind.VIEW,
                customer_id=(await make_customer(session)).id,
                channel=SalesChannel.WEB,
                occurred_at=now - timedelta(minutes=1),
            ),
        ]
    )
    await session.commit()
    channels = []
    for customer in (old, recent):
        shopper = gql.as_(token_for(settings, customer))
        placed = await place(shopper, await cart_with(shopper, [(product, 1)]))
        channels.append((await staff(ORDER, {"id": placed["order"]["id"]}))["order"]["channel"])
    assert channels == [None, "ORGANIC"]


async def test_a_guests_order_takes_its_sessions_touch(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price=5000)
    staff = gql.as_(token_for(settings, await make_staff(session)))
    item = gid("Product", product.id)
    await record(gql, kind="VIEW", productId=item, sessionId="guest-1", channel="ORGANIC")
    await record(gql, kind="VIEW", productId=item, sessionId="guest-2", channel="PAID")
    placed = await place(gql, await cart_with(gql, [(product, 1)]), sessionId=" guest-1 ")
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    found = (await staff(ORDER, {"id": placed["order"]["id"]}))["order"]
    assert found["channel"] == "ORGANIC"
    number = found["number"]
    stored = await session.scalar(select(Order.session_id).where(Order.number == number))
    assert stored == "guest-1"  # attribution finds the guest's touches by it
    # Without its session a guest's order knows nothing of its touches.
    unknown = await place(gql, await cart_with(gql, [(product, 1)]))
    assert (await staff(ORDER, {"id": unknown["order"]["id"]}))["order"]["channel"] is None


async def test_unknown_channels_and_long_tags_are_refused_and_nothing_is_written(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price=5000)
    shopper = gql.as_(token_for(settings, await make_customer(session)))
    item = gid("Product", product.id)
    before = await count(session, CustomerEvent)
    for values, field in (
        ({"channel": "TV"}, "channel"),
        ({"channel": "PAID", "utmSource": "x" * 101}, "utmSource"),
        ({"utmMedium": "m" * 101}, "utmMedium"),
        ({"utmCampaign": "c" * 101}, "utmCampaign"),
    ):
        answer = await record(shopper, kind="VIEW", productId=item, **values)
        assert (answer["__typename"], answer["field"]) == ("ValidationError", field), answer
    assert (
        "use one of APP, WEB, MINI_PROGRAM"
        in (await record(shopper, kind="VIEW", productId=item, channel="TV"))["message"]
    )
    assert await count(session, CustomerEvent) == before
    # A hundred characters, once trimmed, are fine.
    fits = await record(shopper, kind="VIEW", productId=item, utmSource=f"  {'s' * 100}  ")
    assert fits["event"]["utmSource"] == "s" * 100

    token = await cart_with(shopper, [(product, 1)])
    refused = await place(shopper, token, channel="billboard")
    assert (refused["__typename"], refused["field"]) == ("ValidationError", "channel")
    assert await count(session, Order) == 0
    cart = await session.scalar(select(Cart.status).where(Cart.token == token))
    assert cart is CartStatus.ACTIVE  # the checkout did not happen at all
    assert (await place(shopper, token, channel="web"))["__typename"] == "PlaceOrderSuccess"


# --- marketing costs ----------------------------------------------------------------------------

GOOD_CSV = (
    "\ufeffDay, Channel ,amount,campaign\r\n"
    "2026-11-01,PAID,1200.50,double11-2026\r\n"
    "\r\n"
    "2026-11-01,live_stream,300,\r\n"
    '2026-11-02,COMMUNITY_GROUP,"80.00",member-weekly\r\n'
)


@pytest.fixture
async def admin(gql: GraphQLClient, session: AsyncSession, settings: Settings) -> GraphQLClient:
    return gql.as_(token_for(settings, await make_staff(session)))


async def test_a_csv_file_is_imported(admin: GraphQLClient, session: AsyncSession) -> None:
    answer = (await admin(IMPORT, {"input": {"csv": GOOD_CSV}}))["importMarketingCosts"]
    assert answer == {
        "__typename": "ImportMarketingCostsSuccess",
        "rows": 3,
        "replaced": 0,
        "total": {"amount": "1580.50", "currency": "CNY"},
        "firstDay": "2026-11-01",
        "lastDay": "2026-11-02",
    }
    assert await _costs(session) == [
        (date(2026, 11, 1), SalesChannel.LIVE_STREAM, "", 30000, "CNY"),
        (date(2026, 11, 1), SalesChannel.PAID, "double11-2026", 120050, "CNY"),
        (date(2026, 11, 2), SalesChannel.COMMUNITY_GROUP, "member-weekly", 8000, "CNY"),
    ]
    # Audited like every staff mutation.
    audited = await session.scalar(
        select(func.count())
        .select_from(AuditLogEntry)
        .where(AuditLogEntry.mutation == "importMarketingCosts")
    )
    assert audited == 1


async def test_reimporting_a_day_channel_and_campaign_replaces_its_amount(
    admin: GraphQLClient, session: AsyncSession
) -> None:
    await admin(IMPORT, {"input": {"csv": GOOD_CSV}})
    again = (
        await admin(
            IMPORT,
            {
                "input": {
                    "rows": [
                        {"day": "2026-11-01", "channel": "PAID", "campaign": "double11-2026",
                         "amount": "999.99"},
                        {"day": "2026-11-01", "channel": "PAID", "amount": "5"},
                    ]
                }
            },
        )
    )["importMarketingCosts"]  # fmt: skip
    assert (again["rows"], again["replaced"], again["total"]["amount"]) == (2, 1, "1004.99")
    assert await _costs(session) == [
        (date(2026, 11, 1), SalesChannel.LIVE_STREAM, "", 30000, "CNY"),
        (date(2026, 11, 1), SalesChannel.PAID, "", 500, "CNY"),
        (date(2026, 11, 1), SalesChannel.PAID, "double11-2026", 99999, "CNY"),
        (date(2026, 11, 2), SalesChannel.COMMUNITY_GROUP, "member-weekly", 8000, "CNY"),
    ]


@pytest.mark.parametrize(
    ("text", "row", "column", "words"),
    [
        ("2026-11-03,PAID,x,10\n2026-11-04,PAID,x,12.345\n", 2, "amount", "more decimals"),
        ("2026-11-03,PAID,x,10\n2026-11-04,TV,x,1\n", 2, "channel", "unknown channel"),
        ("2026-11-03,PAID,x,10\n2026-11-31,PAID,x,1\n", 2, "day", "not a day"),
        ("2026-11-03,,x,10\n", 1, "channel", "needs its channel"),
        ("2026-11-03,PAID,x,-1\n", 1, "amount", "negative"),
        ("2026-11-03,PAID,x,ten\n", 1, "amount", "not a decimal"),
        ("2026-11-03,PAID,x,10\n2026-11-03,paid,x ,20\n", 2, "campaign", "as row 2"),
        ("2026-11-03,PAID,x,10\n2026-11-04,PAID,x\n", 2, "row", "3 cells"),
        (f"2026-11-03,PAID,{'c' * 101},10\n", 1, "campaign", "at most 100"),
        ("1999-12-31,PAID,x,10\n", 1, "day", "out of range"),
    ],
)
async def test_a_bad_row_names_its_number_and_nothing_is_written(
    admin: GraphQLClient, session: AsyncSession, text: str, row: int, column: str, words: str
) -> None:
    await admin(IMPORT, {"input": {"csv": GOOD_CSV}})
    before = await _costs(session)
    csv = "day,channel,campaign,amount\n2026-11-01,PAID,double11-2026,1\n" + text
    answer = (await admin(IMPORT, {"input": {"csv": csv}}))["importMarketingCosts"]
    assert answer["__typename"] == "InvalidImportRow", answer
    # The file's first row (replacing a stored amount) comes before the bad one.
    assert (answer["row"], answer["column"], answer["field"]) == (row + 1, column, "csv")
    assert answer["code"] == "INVALID_IMPORT_ROW" and words in answer["message"]
    assert await _costs(session) == before


async def test_rows_name_their_index_in_the_input(
    admin: GraphQLClient, session: AsyncSession
) -> None:
    rows = [
        {"day": "2026-11-01", "channel": "PAID", "amount": "1"},
        {"day": "2026-11-02", "channel": "radio", "amount": "1"},
    ]
    answer = (await admin(IMPORT, {"input": {"rows": rows}}))["importMarketingCosts"]
    assert (answer["row"], answer["column"], answer["field"]) == (2, "channel", "rows.1.channel")
    assert await _costs(session) == []


@pytest.mark.parametrize(
    ("given", "field", "words"),
    [
        ({"csv": GOOD_CSV, "rows": []}, "rows", "not both"),
        ({}, "rows", "neither"),
        ({"rows": []}, "rows", "no rows"),
        ({"csv": "day,channel,amount\n2026-11-01,PAID,1\n"}, "csv", "the header must name"),
        ({"csv": "  \n"}, "csv", "is empty"),
        ({"csv": "day,channel,campaign,amount\n\n"}, "csv", "no rows"),
    ],
)
async def test_an_import_needs_exactly_one_good_source(
    admin: GraphQLClient, session: AsyncSession, given: dict[str, Any], field: str, words: str
) -> None:
    answer = (await admin(IMPORT, {"input": given}))["importMarketingCosts"]
    assert (answer["__typename"], answer["field"]) == ("ValidationError", field), answer
    assert words in answer["message"]
    assert await _costs(session) == []


async def test_imports_are_bounded(admin: GraphQLClient, session: AsyncSession) -> None:
    # 10,000 rows are one import (and one request); 10,001 are refused before anything runs.
    start = date(2000, 1, 1)
    rows = [
        {"day": (start + timedelta(days=i)).isoformat(), "channel": "PAID", "amount": "1"}
        for i in range(10_000)
    ]
    answer = (await admin(IMPORT, {"input": {"rows": rows}}))["importMarketingCosts"]
    assert (answer["rows"], answer["total"]["amount"]) == (10_000, "10000.00")
    extra = {"day": "2099-01-01", "channel": "PAID", "amount": "1"}
    body = await admin.execute(IMPORT, {"input": {"rows": [*rows, extra]}})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["LIST_TOO_LONG"]
    assert body["errors"][0]["extensions"]["maxItems"] == 10_000
    assert len(await _costs(session)) == 10_000


# --- the command ------------------------------------------------------------------------------


def test_the_command_imports_a_file_with_progress_and_is_audited(
    database_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"SHOPGRAPH_DATABASE_URL": database_url, "SHOPGRAPH_PLUGINS": ""}
    good = tmp_path / "costs.csv"
    good.write_text(GOOD_CSV, encoding="utf-8")
    result = runner.invoke(main, ["insights", "import-costs", str(good)], env=env)
    assert result.exit_code == 0, result.output
    assert "3 marketing cost rows imported (0 replaced), 2026-11-01 to 2026-11-02" in result.stdout
    assert result.stderr.splitlines() == [
        "import-costs: 3 rows checked (1/2)",
        "import-costs: 3 rows written (2/2)",
    ]
    again = runner.invoke(main, ["insights", "import-costs", str(good)], env=env)
    assert "(3 replaced)" in again.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("day,channel,campaign,amount\n2026-11-05,PAID,,1\n2026-11-06,TV,,1\n")
    refused = runner.invoke(main, ["insights", "import-costs", str(bad)], env=env)
    assert refused.exit_code == 1
    assert "row 2, channel: unknown channel 'TV'" in refused.output
    # Over 1 MiB: refused before it is read.
    big = tmp_path / "big.csv"
    big.write_bytes(b"day,channel,campaign,amount\n" + b"#" * 1_048_576)
    too_big = runner.invoke(main, ["insights", "import-costs", str(big)], env=env)
    assert too_big.exit_code == 1 and "over 1,048,576 bytes" in too_big.output

    async def stored() -> tuple[int, list[tuple[str, str]]]:
        engine = create_engine(database_url)
        async with session_factory(engine)() as session:
            costs = await session.scalar(select(func.count()).select_from(MarketingCost))
            audit = await session.execute(
                select(AuditLogEntry.actor, AuditLogEntry.result).where(
                    AuditLogEntry.mutation == "importMarketingCosts"
                )
            )
            found = (int(costs or 0), [tuple(r) for r in audit])
        await engine.dispose()
        return found

    costs, audited = migrate.run_async(stored)
    assert costs == 3  # the bad file wrote nothing
    assert len(audited) == 2 and all(actor.startswith("cli:") for actor, _ in audited)
    assert {result for _, result in audited} == {"ImportMarketingCostsSuccess"}


async def test_concurrent_imports_of_the_same_days_never_collide(
    admin: GraphQLClient, session: AsyncSession
) -> None:
    days = [(date(2026, 11, 1) + timedelta(days=i)).isoformat() for i in range(30)]

    async def run(amount: int) -> dict[str, Any]:
        rows = [{"day": d, "channel": "PAID", "amount": str(amount)} for d in days]
        return dict((await admin(IMPORT, {"input": {"rows": rows}}))["importMarketingCosts"])

    answers = await asyncio.gather(*(run(amount) for amount in range(1, 9)))
    assert {a["__typename"] for a in answers} == {"ImportMarketingCostsSuccess"}
    stored = await _costs(session)
    assert len(stored) == 30  # one row per day, channel and campaign
    # Every day holds the amount of one import, whichever committed last.
    assert len({amount for *_, amount, _ in stored}) == 1


async def test_only_staff_who_manage_insights_import(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    rows = [{"day": "2026-11-01", "channel": "PAID", "amount": "1"}]
    customer = gql.as_(token_for(settings, await make_customer(session)))
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    for client in (gql, customer, analyst):
        body = await client.execute(IMPORT, {"input": {"rows": rows}})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    assert await _costs(session) == []
