"""Audiences' rules on a shop counted by hand (tests/support/audiences.py): each condition kind,
all/any/not, strict validation naming the bad node, the stored memberships' diff (who joined,
who left) under concurrent recomputations, erasure, and the plugin API's in_audience and
audience_members — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import hash_password
from server.cli import main as cli
from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.jobs import JobRunner
from server.models import (
    Audience,
    AudienceChange,
    AudienceChangeKind,
    AudienceMember,
    AuditLogEntry,
)
from server.plugin import audience_members, in_audience
from server.plugins import load_plugins
from server.services import audiences as service
from server.services.audience_rules import parse_rule
from server.services.customers import add_tags, remove_tags
from server.services.errors import Conflict, InvalidRule, ValidationFailed
from server.services.privacy import erase_customer
from tests.support.accounts import DEFAULT_PASSWORD
from tests.support.audiences import AS_OF, AudienceShop, audience_shop


def vip() -> dict[str, Any]:
    return {"tags": {"match": "ANY", "tags": ["vip"]}}


def cases(shop: AudienceShop) -> list[tuple[str, dict[str, Any], str]]:
    """(what, rule, the customers it holds for as of AS_OF) — see the table of the shop."""
    digital, earphones = shop.digital.id, shop.earphones.id
    return [
        # tags (f's "VIP" is another tag; the erased customer is never a member)
        ("tags any vip", vip(), "ab"),
        ("tags all", {"tags": {"match": "ALL", "tags": ["vip", "学生"]}}, "a"),
        ("tags any of two", {"tags": {"tags": ["学生", "VIP"]}}, "adf"),
        # RFM segment, scores and figures (c has no RFM row: no RFM condition holds for c)
        ("segment", {"segment": {"in": ["IMPORTANT_VALUE", "IMPORTANT_DEVELOP"]}}, "ab"),
        ("segment win-back", {"segment": {"in": ["GENERAL_WIN_BACK"]}}, "df"),
        ("R ≥ 4", {"rfm": {"measure": "R_SCORE", "op": "AT_LEAST", "value": 4}}, "ab"),
        ("M ≤ 2", {"rfm": {"measure": "M_SCORE", "op": "AT_MOST", "value": 2}}, "df"),
        (
            "F between 2 and 4",
            {"rfm": {"measure": "F_SCORE", "op": "BETWEEN", "value": 2, "to": 4}},
            "bdf",
        ),
        (
            "monetary between ¥800 and ¥1500",
            {"rfm": {"measure": "MONETARY", "op": "BETWEEN", "value": "800", "to": "1500.00"}},
            "ad",
        ),
        (
            "recency ≤ 10 days",
            {"rfm": {"measure": "RECENCY_DAYS", "op": "AT_MOST", "value": 10}},
            "abf",
        ),
        ("frequency ≥ 2", {"rfm": {"measure": "FREQUENCY", "op": "AT_LEAST", "value": 2}}, "a"),
        # membership tier, region (profile), province and city (default address)
        ("tier gold", {"tier": {"in": ["GOLD"]}}, "ad"),
        ("tier silver or platinum", {"tier": {"in": ["SILVER", "PLATINUM"]}}, "bf"),
        ("region 华东", {"region": {"in": ["华东"]}}, "ad"),
        ("province 浙江省 (b's is not its default)", {"province": {"in": ["浙江省"]}}, "a"),
        ("city", {"city": {"in": ["深圳市", "北京市"]}}, "bf"),
        # registration: BEFORE is <, AFTER is ≥ (c registered at exactly 2026-06-01 00:00 UTC)
        (
            "registered before 2026",
            {"registered": {"op": "BEFORE", "at": "2026-01-01T00:00:00+00:00"}},
            "ad",
        ),
        (
            "registered from June",
            {"registered": {"op": "AFTER", "at": "2026-06-01T08:00:00+08:00"}},
            "cf",
        ),
        # purchases: paid, not cancelled, in CNY, in the last N days
        ("an order in 30 days", {"orders": {"days": 30, "op": "AT_LEAST", "value": 1}}, "abf"),
        ("two orders in 30 days", {"orders": {"days": 30, "op": "AT_LEAST", "value": 2}}, "a"),
        (
            "no order in 30 days (count)",
            {"orders": {"days": 30, "op": "AT_MOST", "value": 0}},
            "cd",
        ),
        (
            "exactly one in a year",
            {"orders": {"days": 365, "op": "BETWEEN", "value": 1, "to": 1}},
            "bdf",
        ),
        (
            "spend ≥ ¥500 in 30 days",
            {"spend": {"days": 30, "op": "AT_LEAST", "value": "500.00"}},
            "ab",
        ),
        (
            "spend ≤ ¥1000 in 120 days",
            {"spend": {"days": 120, "op": "BETWEEN", "value": "0", "to": "1000"}},
            "acdf",
        ),
        ("no order in 30 days", {"noOrder": {"days": 30}}, "cd"),
        ("no order in a year", {"noOrder": {"days": 365}}, "c"),
        # behaviour: a category covers the categories below it
        (
            "viewed 数码 3 times in 7 days",
            {"behaviour": {"event": "VIEW", "categoryId": digital, "atLeast": 3, "days": 7}},
            "a",
        ),
        (
            "viewed 数码 in 60 days",
            {"behaviour": {"event": "VIEW", "categoryId": digital, "days": 60}},
            "ad",
        ),
        (
            "viewed 服装 5 times",
            {
                "behaviour": {
                    "event": "VIEW",
                    "categoryId": shop.clothes.id,
                    "atLeast": 5,
                    "days": 7,
                }
            },
            "c",
        ),
        (
            "viewed 服装 6 times",
            {
                "behaviour": {
                    "event": "VIEW",
                    "categoryId": shop.clothes.id,
                    "atLeast": 6,
                    "days": 7,
                }
            },
            "",
        ),
        (
            "put the phone in a cart",
            {"behaviour": {"event": "ADD_TO_CART", "productId": shop.phone.id, "days": 30}},
            "b",
        ),
        ("searched twice", {"behaviour": {"event": "SEARCH", "atLeast": 2, "days": 30}}, "b"),
        ("searched three times", {"behaviour": {"event": "SEARCH", "atLeast": 3, "days": 30}}, ""),
        (
            "bought from 耳机 in a year",
            {
                "behaviour": {
                    "event": "PURCHASE",
                    "categoryId": shop.earphones_category.id,
                    "days": 365,
                }
            },
            "d",
        ),
        (
            "favourited the earphones",
            {"behaviour": {"event": "FAVORITE", "productId": earphones, "days": 7}},
            "a",
        ),
        # all / any / not
        (
            "vip with an order in 30 days",
            {"all": [vip(), {"orders": {"days": 30, "op": "AT_LEAST", "value": 1}}]},
            "ab",
        ),
        (
            "华北 or silver",
            {"any": [{"region": {"in": ["华北"]}}, {"tier": {"in": ["SILVER"]}}]},
            "bf",
        ),
        (
            "not R ≥ 4 (c has no scores)",
            {"not": {"rfm": {"measure": "R_SCORE", "op": "AT_LEAST", "value": 4}}},
            "cdf",
        ),
        ("not 华东 (c has no region)", {"not": {"region": {"in": ["华东"]}}}, "bcf"),
        (
            "gold who bought in 30 days",
            {"all": [{"tier": {"in": ["GOLD"]}}, {"not": {"noOrder": {"days": 30}}}]},
            "a",
        ),
        (
            "lapsed gold in 华东, or searchers",
            {
                "any": [
                    {
                        "all": [
                            {"tier": {"in": ["GOLD"]}},
                            {"region": {"in": ["华东"]}},
                            {"not": {"orders": {"days": 30, "op": "AT_LEAST", "value": 1}}},
                        ]
                    },
                    {"behaviour": {"event": "SEARCH", "atLeast": 2, "days": 30}},
                ]
            },
            "bd",
        ),
        # lifetime value: c has no row (no purchase), d's figures are null (the models could
        # not be fitted): no comparison holds for them, and its `not` does
        ("CLV ≥ ¥2400 (inclusive)", clv("AT_LEAST", "2400"), "ab"),
        ("CLV ≤ 0 (f's is negative)", clv("AT_MOST", "0"), "f"),
        ("CLV ≤ -¥12.34", clv("AT_MOST", "-12.34"), "f"),
        ("CLV ≤ -¥12.35", clv("AT_MOST", "-12.35"), ""),
        ("CLV between ¥2400.01 and ¥8000.50", clv("BETWEEN", "2400.01", "8000.50"), "b"),
        ("not CLV ≥ ¥2400", {"not": clv("AT_LEAST", "2400")}, "cdf"),
        ("not CLV ≤ 0", {"not": clv("AT_MOST", "0")}, "abcd"),
        (
            "CLV ≥ ¥1000 and P(alive) ≥ 0.9",
            clv("AT_LEAST", "1000", alive={"op": "AT_LEAST", "value": 0.9}),
            "a",
        ),
        (
            "CLV ≥ 0 and P(alive) between 0.5 and 0.6 (inclusive)",
            clv("AT_LEAST", "0", alive={"op": "BETWEEN", "value": "0.5", "to": 0.6}),
            "b",
        ),
        (
            "P(alive) ≤ 0.5 (d's is null)",
            clv("AT_MOST", "100000", alive={"op": "AT_MOST", "value": 0.5}),
            "f",
        ),
        (
            "not (CLV ≥ ¥1000 and P(alive) ≥ 0.9)",
            {"not": clv("AT_LEAST", "1000", alive={"op": "AT_LEAST", "value": 0.9})},
            "bcdf",
        ),
        ("a value known: ≥ 0 or ≤ 0", KNOWN_VALUE, "abf"),
        ("no value known", {"not": KNOWN_VALUE}, "cd"),
        # churn risk: d has no probability (its PURCHASE_OVERDUE is listed all the same)
        ("churn ≥ 0.5", churn("AT_LEAST", 0.5), "bf"),
        ("not churn ≥ 0.5", {"not": churn("AT_LEAST", 0.5)}, "acd"),
        ("churn ≤ 0.05 (inclusive)", churn("AT_MOST", 0.05), "a"),
        ("churn between 0.05 and 0.76", churn("BETWEEN", 0.05, 0.76), "ab"),
        ("not churn between 0 and 1", {"not": churn("BETWEEN", 0, 1)}, "cd"),
        ("overdue", churn("AT_LEAST", 0, reason="PURCHASE_OVERDUE"), "f"),
        ("not overdue", {"not": churn("AT_LEAST", 0, reason="PURCHASE_OVERDUE")}, "abcd"),
        ("browsing dropped", churn("BETWEEN", 0, 1, reason="BROWSING_DROPPED"), "b"),
        ("dropout listed, risk ≤ 0.8", churn("AT_MOST", "0.8", reason="DROPOUT_MODEL"), "ab"),
        (
            "valuable and at risk",
            {"all": [clv("AT_LEAST", "5000"), churn("AT_LEAST", 0.5)]},
            "b",
        ),
    ]


def clv(op: str, value: str, to: str | None = None, *, alive: Any = None) -> dict[str, Any]:
    params: dict[str, Any] = {"op": op, "value": value, "to": to, "probabilityAlive": alive}
    return {"clv": {k: v for k, v in params.items() if v is not None}}


def churn(op: str, value: Any, to: Any = None, *, reason: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"op": op, "value": value, "to": to, "hasReason": reason}
    return {"churnRisk": {k: v for k, v in params.items() if v is not None}}


# Every known value is ≥ 0 or ≤ 0: the customers who have one.
KNOWN_VALUE = {"any": [clv("AT_LEAST", "0"), clv("AT_MOST", "0")]}


def test_value_conditions_keep_their_normal_form() -> None:
    rule = {
        "all": [
            clv("BETWEEN", "-5", "1e3", alive={"op": "AT_LEAST", "value": "0.25"}),
            churn("AT_MOST", 1, reason="NO_INTERACTION"),
        ]
    }
    assert parse_rule(rule, currency="CNY").data == {
        "all": [
            {
                "clv": {
                    "op": "BETWEEN",
                    "value": "-5.00",
                    "to": "1000.00",
                    "probabilityAlive": {"op": "AT_LEAST", "value": 0.25},
                }
            },
            {"churnRisk": {"op": "AT_MOST", "value": 1.0, "hasReason": "NO_INTERACTION"}},
        ]
    }


async def test_each_condition_and_combination_holds_for_the_customers_counted_by_hand(
    session: AsyncSession,
) -> None:
    shop = await audience_shop(session)
    for what, rule, expected in cases(shop):
        found = await service.preview(session, rule, currency="CNY", first=100, as_of=AS_OF)
        ids = [c.id or 0 for c in found.members]
        assert (shop.names(ids), found.count) == (expected, len(expected)), what
        assert ids == sorted(ids), what  # in id order
    # Counts of many rules are one statement, in the rules' order.
    rules = [parse_rule(rule, currency="CNY") for _, rule, _ in cases(shop)[:3]]
    ctx = service.context(session, "CNY", AS_OF)
    assert await service.count_members(session, rules, ctx) == [2, 1, 3]


async def test_a_bad_rule_is_refused_naming_its_node_and_nothing_is_written(
    session: AsyncSession,
) -> None:
    shop = await audience_shop(session)
    leaf = vip()
    deep: dict[str, Any] = leaf
    for _ in range(5):  # a condition under five levels of not: six deep
        deep = {"not": deep}
    bad: list[tuple[Any, str, str]] = [
        ({"ltv": {"band": "HIGH"}}, "UNKNOWN_KIND", "ltv"),
        (
            {"all": [leaf, {"orders": {"days": 30, "op": "MORE_THAN", "value": 1}}]},
            "BAD_OPERATOR",
            "all[1].orders.op",
        ),
        ({"registered": {"op": "SINCE", "at": "2026-01-01"}}, "BAD_OPERATOR", "registered.op"),
        ({"noOrder": {"days": 0}}, "OUT_OF_RANGE", "noOrder.days"),
        ({"orders": {"days": 3651, "op": "AT_LEAST", "value": 1}}, "OUT_OF_RANGE", "orders.days"),
        (
            {"rfm": {"measure": "R_SCORE", "op": "AT_LEAST", "value": 6}},
            "OUT_OF_RANGE",
            "rfm.value",
        ),
        (
            {"orders": {"days": 9, "op": "BETWEEN", "value": 3, "to": 2}},
            "OUT_OF_RANGE",
            "orders.to",
        ),
        (
            {"any": [leaf, {"not": {"spend": {"days": 9, "op": "AT_LEAST", "value": "1.005"}}}]},
            "BAD_VALUE",
            "any[1].not.spend.value",
        ),
        ({"segment": {"in": ["IMPORTANT_VALUE", "VIP"]}}, "BAD_VALUE", "segment.in[1]"),
        (
            {"behaviour": {"event": "SEARCH", "productId": shop.phone.id, "days": 9}},
            "BAD_VALUE",
            "behaviour.productId",
        ),
        (
            {"behaviour": {"event": "VIEW", "categoryId": 999_999, "days": 9}},
            "UNKNOWN_CATEGORY",
            "behaviour.categoryId",
        ),
        (
            {"behaviour": {"event": "VIEW", "categoryId": "3", "days": 9}},
            "UNKNOWN_CATEGORY",
            "behaviour.categoryId",
        ),
        (
            {"all": [leaf, {"behaviour": {"event": "VIEW", "productId": 999_999, "days": 9}}]},
            "UNKNOWN_PRODUCT",
            "all[1].behaviour.productId",
        ),
        ({"tags": {"tags": ["vip"], "since": 3}}, "MALFORMED", "tags.since"),
        ({"orders": {"days": 9, "op": "AT_LEAST", "value": 1, "to": 4}}, "MALFORMED", "orders.to"),
        ({"all": []}, "MALFORMED", "all"),
        ({"tier": {"in": ["GOLD"]}, "region": {"in": ["华东"]}}, "MALFORMED", ""),
        ([vip()], "MALFORMED", ""),
        # lifetime value and churn risk
        ({"clv": {"op": "ABOVE", "value": "1"}}, "BAD_OPERATOR", "clv.op"),
        (clv("AT_LEAST", "1.005"), "BAD_VALUE", "clv.value"),
        (clv("AT_MOST", "-10000000000000.01"), "OUT_OF_RANGE", "clv.value"),
        (clv("BETWEEN", "100", "-100"), "OUT_OF_RANGE", "clv.to"),
        ({"clv": {"op": "AT_LEAST", "value": "1", "to": "2"}}, "MALFORMED", "clv.to"),
        ({"clv": {"op": "AT_LEAST", "value": "1", "band": "HIGH"}}, "MALFORMED", "clv.band"),
        (
            {"all": [leaf, clv("AT_LEAST", "0", alive={"op": "AT_LEAST", "value": 1.5})]},
            "OUT_OF_RANGE",
            "all[1].clv.probabilityAlive.value",
        ),
        (clv("AT_LEAST", "0", alive=0.5), "MALFORMED", "clv.probabilityAlive"),
        (clv("AT_LEAST", "0", alive={"value": 0.5}), "MALFORMED", "clv.probabilityAlive.op"),
        (
            clv("AT_LEAST", "0", alive={"op": "AT_LEAST", "value": 0.5, "days": 9}),
            "MALFORMED",
            "clv.probabilityAlive.days",
        ),
        (
            clv("AT_LEAST", "0", alive={"op": "BETWEEN", "value": 0.5, "to": 0.4}),
            "OUT_OF_RANGE",
            "clv.probabilityAlive.to",
        ),
        ({"not": churn("AT_LEAST", -0.1)}, "OUT_OF_RANGE", "not.churnRisk.value"),
        (churn("AT_LEAST", "high"), "BAD_VALUE", "churnRisk.value"),
        (churn("AT_LEAST", True), "BAD_VALUE", "churnRisk.value"),
        (churn("AT_LEAST", float("nan")), "BAD_VALUE", "churnRisk.value"),
        (churn("BETWEEN", 0.8, 0.2), "OUT_OF_RANGE", "churnRisk.to"),
        (churn("AT_LEAST", 0.5, reason="SLEEPY"), "BAD_VALUE", "churnRisk.hasReason"),
        ({"all": [deep]}, "TOO_DEEP", "all[0].not.not.not.not"),
        ({"any": [vip() for _ in range(51)]}, "OUT_OF_RANGE", "any"),
        (
            {"all": [{"any": [vip() for _ in range(40)]}, {"any": [vip() for _ in range(11)]}]},
            "TOO_MANY_CONDITIONS",
            "all[1].any[10].tags",
        ),
    ]
    for rule, code, path in bad:
        with pytest.raises(InvalidRule) as refused:
            await service.create_audience(
                session, key="bad-rule", name="坏规则", rule=rule, currency="CNY"
            )
        assert (refused.value.code, refused.value.path) == (code, path), rule
        assert refused.value.field == ("rule." + path if path else "rule")
        await session.rollback()
    # At the limits the same rule is accepted: five levels, fifty conditions.
    deepest: dict[str, Any] = vip()
    for _ in range(4):
        deepest = {"not": deepest}
    fifty = {"all": [{"any": [vip() for _ in range(40)]}, {"any": [vip() for _ in range(10)]}]}
    for i, rule in enumerate([deepest, fifty]):
        await service.create_audience(
            session, key=f"limit-{i}", name="极限", rule=rule, currency="CNY"
        )
    await session.commit()
    assert await session.scalar(select(func.count()).select_from(Audience)) == 2


async def test_keys_names_and_conflicts(session: AsyncSession) -> None:
    await audience_shop(session)
    made = await service.create_audience(
        session, key=" Lapsed-VIP ", name=" 流失大客户 ", rule=vip(), currency="CNY"
    )
    await session.commit()
    assert (made.key, made.name, made.rule) == (
        "lapsed-vip",
        "流失大客户",
        {"tags": {"match": "ANY", "tags": ["vip"]}},
    )
    for key, name, error in [
        ("lapsed-vip", "again", Conflict),
        ("lapsed vip", "space", ValidationFailed),
        ("-vip", "hyphen first", ValidationFailed),
        ("ok", " ", ValidationFailed),
    ]:
        with pytest.raises(error):
            await service.create_audience(session, key=key, name=name, rule=vip(), currency="CNY")
        await session.rollback()
    assert await session.scalar(select(func.count()).select_from(Audience)) == 1


async def _members(session: AsyncSession, audience_id: int) -> dict[int, Any]:
    await session.commit()
    rows = await session.execute(
        select(col(AudienceMember.customer_id), col(AudienceMember.since)).where(
            col(AudienceMember.audience_id) == audience_id
        )
    )
    return {customer_id: since for customer_id, since in rows}


async def _changes(session: AsyncSession, audience_id: int) -> list[tuple[int, AudienceChangeKind]]:
    await session.commit()
    rows = await session.execute(
        select(col(AudienceChange.customer_id), col(AudienceChange.kind))
        .where(col(AudienceChange.audience_id) == audience_id)
        .order_by(col(AudienceChange.id))
    )
    return [(customer_id, kind) for customer_id, kind in rows]


async def _rebuild(session: AsyncSession, moment: Any = AS_OF) -> service.AudiencesRebuild:
    await session.commit()
    await mark_write(session)
    done = await service.rebuild(session, currency="CNY", as_of=moment)
    await session.commit()
    return done


async def test_the_recomputation_stores_who_joined_and_who_left(session: AsyncSession) -> None:
    shop = await audience_shop(session)
    a, b, c = (shop.customers[n].id or 0 for n in "abc")
    audience = await service.create_audience(
        session, key="vip", name="VIP", rule=vip(), currency="CNY"
    )
    await session.commit()
    assert audience.id is not None
    # Saving computed the memberships at once: a and b joined.
    first = await _members(session, audience.id)
    assert set(first) == {a, b}
    J, L = AudienceChangeKind.JOINED, AudienceChangeKind.LEFT
    assert await _changes(session, audience.id) == [(a, J), (b, J)]
    assert await in_audience(session, "vip", a) and not await in_audience(session, "vip", c)

    # c gets the tag, b loses it: the step inserts c, deletes b, and records both moves.
    for change, who in ((add_tags, c), (remove_tags, b)):
        await mark_write(session)
        await change(session, who, ["vip"])
        await session.commit()
    assert await in_audience(session, "vip", b)  # stored: not until the recomputation
    done = await _rebuild(session)
    assert (done.audiences, done.members, done.joined, done.left) == (1, 2, 1, 1)
    assert "1 audiences, 2 memberships, 1 joined, 1 left" in done.summary()
    after = await _members(session, audience.id)
    assert set(after) == {a, c}
    assert after[a] == first[a] and after[c] == AS_OF  # a stays a member since it joined
    assert await _changes(session, audience.id) == [(a, J), (b, J), (c, J), (b, L)]
    assert await in_audience(session, "vip", c) and not await in_audience(session, "vip", b)

    # Nothing changed: nothing written.
    again = await _rebuild(session)
    assert (again.members, again.joined, again.left) == (2, 0, 0)
    assert len(await _changes(session, audience.id)) == 4

    # A new rule is computed when it is saved.
    await mark_write(session)
    await service.update_audience(session, "vip", rule={"tier": {"in": ["SILVER"]}}, currency="CNY")
    await session.commit()
    assert set(await _members(session, audience.id)) == {b}
    assert (await _changes(session, audience.id))[4:] == [(b, J), (a, L), (c, L)]


async def test_two_recomputations_at_once_record_each_move_once(
    session: AsyncSession, database_url: str
) -> None:
    shop = await audience_shop(session)
    audience = await service.create_audience(
        session, key="vip", name="VIP", rule=vip(), currency="CNY"
    )
    await session.commit()
    await mark_write(session)
    await add_tags(session, shop.customers["d"].id or 0, ["vip"])
    await session.commit()
    engines = [create_engine(database_url), create_engine(database_url)]
    try:

        async def run(engine: Any) -> service.AudiencesRebuild:
            async with session_factory(engine)() as s:
                await mark_write(s)
                done = await service.rebuild(s, currency="CNY", as_of=AS_OF)
                await s.commit()
                return done

        both = await asyncio.gather(*(run(e) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    # One of them found d; the other, after it, found nothing to do.
    assert sorted(done.joined for done in both) == [0, 1]
    d = shop.customers["d"].id or 0
    assert (await _changes(session, audience.id or 0)).count((d, AudienceChangeKind.JOINED)) == 1


async def test_erasing_an_account_forgets_its_memberships(session: AsyncSession) -> None:
    shop = await audience_shop(session)
    a = shop.customers["a"]
    a.password_hash = hash_password(DEFAULT_PASSWORD)  # erasing asks for the password
    audience = await service.create_audience(
        session, key="vip", name="VIP", rule=vip(), currency="CNY"
    )
    await session.commit()
    await mark_write(session)
    await erase_customer(session, Settings(), a.id or 0, DEFAULT_PASSWORD)
    await session.commit()
    b = shop.customers["b"].id or 0
    assert set(await _members(session, audience.id or 0)) == {b}
    assert [who for who, _ in await _changes(session, audience.id or 0)] == [b]
    # The recomputation leaves the erased account out: it does not come back.
    assert (await _rebuild(session)).joined == 0


async def test_plugins_check_membership_and_read_members_in_batches(
    session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    shop = await audience_shop(session)
    await service.create_audience(
        session,
        key="buyers",
        name="买家",
        rule={"not": {"noOrder": {"days": 3650}}},
        currency="CNY",
    )
    await session.commit()
    # Bought in the last ten years (now): a, b, d, f.
    expected = sorted(shop.ids("abdf"))
    assert [i async for i in audience_members(session, "buyers", batch=1)] == expected
    assert [i async for i in audience_members(session, " Buyers ", batch=3)] == expected
    assert [i async for i in audience_members(session, "buyers", batch=4)] == expected
    assert [await in_audience(session, "buyers", i) for i in expected] == [True] * 4
    assert not await in_audience(session, "buyers", shop.customers["c"].id or 0)
    assert not await in_audience(session, "buyers", 2**40)  # no row has such an id
    assert not await in_audience(session, "buyers", -1)

    # An audience that does not exist: nobody is in it, and it is logged once per key (a key
    # of this run's own: the process remembers the keys it reported).
    missing_key = f"no-such-audience-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.WARNING, logger="shopgraph.audiences"):
        assert not await in_audience(session, missing_key, expected[0])
        assert not await in_audience(session, missing_key, expected[1])
        assert [i async for i in audience_members(session, missing_key)] == []
    reported = [r for r in caplog.records if missing_key in r.getMessage()]
    assert len(reported) == 1


async def test_deleting_an_audience_deletes_its_memberships(session: AsyncSession) -> None:
    await audience_shop(session)
    audience = await service.create_audience(
        session, key="vip", name="VIP", rule=vip(), currency="CNY"
    )
    await session.commit()
    await mark_write(session)
    await service.delete_audience(session, "vip")
    await session.commit()
    for model in (Audience, AudienceMember, AudienceChange):
        assert await session.scalar(select(func.count()).select_from(model)) == 0, model
    assert audience.id is not None
    assert not await in_audience(session, "vip", 1)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_the_job_recomputes_and_the_command_line_exports_with_an_audit_row(
    session: AsyncSession, database_url: str, tmp_path: Path
) -> None:
    shop = await audience_shop(session)
    rule = {"any": [vip(), {"region": {"in": ["华北"]}}]}
    audience = await service.create_audience(
        session, key="reach", name="触达", rule=rule, currency="CNY"
    )
    await session.commit()
    await mark_write(session)
    await add_tags(session, shop.customers["c"].id or 0, ["vip"])
    await session.commit()

    # The periodic job core.insights runs the step: c joins.
    settings = Settings(database_url=database_url, plugins="", plugin_entry_points=False)
    engine = create_engine(database_url)
    try:
        ran = await JobRunner(session_factory(engine), settings, load_plugins(settings)).run_once(
            only="core.insights"
        )
    finally:
        await engine.dispose()
    assert ran.ran == ["core.insights"] and not ran.failed
    assert shop.names(list(await _members(session, audience.id or 0))) == "abcf"

    # The command line writes the members (the rule evaluated now) and audits the export.
    exports = tmp_path / "exports"
    exports.mkdir()
    output = exports / "reach.csv"
    env = {"SHOPGRAPH_DATABASE_URL": database_url}
    result = CliRunner().invoke(
        cli, ["insights", "export-audience", " Reach ", "--output", str(output)], env=env
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"audience 'reach': 4 members written to {output}"
    assert result.stderr.splitlines() == ["export-audience: 4 members (4/4)"]
    rows = read_csv(output)
    people = [shop.customers[n] for n in "abcf"]
    assert rows == [
        ["customer_id", "email", "name", "region"],
        *(
            [str(c.id), c.email, f"王小{n}", c.region or ""]
            for n, c in zip("abcf", people, strict=True)
        ),
    ]
    await session.commit()
    entries = (await session.execute(select(AuditLogEntry))).scalars().all()
    assert [(e.mutation, e.input, e.result) for e in entries] == [
        (
            "exportAudience",
            {"key": "reach", "output": "reach.csv", "rows": 4},
            "ExportAudienceSuccess",
        )
    ]
    assert entries[0].actor.startswith("cli:") and entries[0].staff_id is None

    # An unknown audience: an error, no file, no audit row.
    missing = exports / "missing.csv"
    refused = CliRunner().invoke(
        cli, ["insights", "export-audience", "nobody", "--output", str(missing)], env=env
    )
    assert refused.exit_code == 1 and "Audience nobody was not found" in refused.stderr
    assert files_in(exports) == ["reach.csv"]  # no partial file left either
    await session.commit()
    assert await session.scalar(select(func.count()).select_from(AuditLogEntry)) == 1
