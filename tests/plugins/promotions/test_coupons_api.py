"""Coupon codes over HTTP, on SQLite and PostgreSQL: single codes (normalised, unique),
batches of unique codes, issuing to a tag or an audience (idempotent), claiming (one per
customer, typed refusals), the customers' own list with each code's status, disabling."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from plugins.promotions.models import CouponCode, Promotion, PromotionStatus
from plugins.promotions.service.coupons import ALPHABET
from server.models import Audience, AudienceMember, utcnow
from tests.plugins.promotions.admin_support import (
    Seeded,
    as_,
    code_promotion,
    database,
    seed,
)
from tests.support.accounts import make_customer
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid

CODE = """__typename ... on CouponCodeSuccess { couponCode { id code status maxUses usedCount
  issuedReason customerId label expiresAt amountOff { amount } promotion { id } } }
  ... on Error { code message field }"""
CREATE = f"""mutation($input: CreateCouponCodeInput!) {{ createCouponCode(input: $input) {{
  {CODE} }} }}"""
CLAIM = f"""mutation($id: ID!) {{ claimCoupon(input: {{promotionId: $id}}) {{ {CODE} }} }}"""
MINE = """{ myCoupons(first: 20) { edges { node { code status label } } } }"""


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


async def test_single_codes_are_normalised_unique_and_of_code_promotions(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    async with database(shop) as session:
        promotion = await code_promotion(session, "春季券")
        automatic = await code_promotion(session, "自动", trigger="AUTOMATIC")
    pid = gid("Promotion", promotion.id)

    async def make(**fields: Any) -> dict[str, Any]:
        answer: dict[str, Any] = (await manager(CREATE, {"input": {"promotionId": pid, **fields}}))[
            "createCouponCode"
        ]
        return answer

    made = await make(code=" spring-20 ", maxUses=100)
    assert made["__typename"] == "CouponCodeSuccess", made
    coupon = made["couponCode"]
    assert (coupon["code"], coupon["maxUses"], coupon["issuedReason"], coupon["status"]) == (
        "SPRING-20",
        100,
        "SHARED",
        "USABLE",
    )
    assert (coupon["label"], coupon["promotion"]["id"], coupon["customerId"]) == (
        "春季券",
        pid,
        None,
    )
    taken = await make(code="Spring-20")
    assert (taken["__typename"], taken["code"], taken["field"]) == (
        "CouponRefusal",
        "CODE_TAKEN",
        "code",
    )
    for bad in ("AB1", "SPRING 20", "优惠券码", "X" * 33):
        refused = await make(code=bad)
        assert (refused["code"], refused["field"]) == ("VALIDATION_FAILED", "code"), bad
    personal = await make(customerId=gid("Customer", seeded.customer.id))
    assert personal["couponCode"]["customerId"] == gid("Customer", seeded.customer.id)
    assert personal["couponCode"]["issuedReason"] == "PERSONAL"
    assert len(personal["couponCode"]["code"]) == 10
    assert set(personal["couponCode"]["code"]) <= set(ALPHABET)
    nobody = await make(customerId=gid("Customer", 987654))
    assert (nobody["__typename"], nobody["field"]) == ("NotFoundError", "customerId")
    wrong = (await manager(CREATE, {"input": {"promotionId": gid("Promotion", automatic.id)}}))[
        "createCouponCode"
    ]
    assert wrong["code"] == "NOT_A_CODE_PROMOTION"
    # Customers neither make codes nor list a promotion's codes.
    body = await as_(gql, shop, seeded.customer).execute(
        CREATE, {"input": {"promotionId": pid, "code": "MINE-1"}}
    )
    assert body["data"] is None and body["errors"]
    listed = await manager(
        "query($id: ID) { couponCodes(promotionId: $id, first: 10) { edges { node { code } } } }",
        {"id": pid},
    )
    assert sorted(e["node"]["code"] for e in listed["couponCodes"]["edges"]) == sorted(
        ["SPRING-20", personal["couponCode"]["code"]]
    )


async def test_a_batch_is_that_many_unique_codes_of_the_alphabet(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    async with database(shop) as session:
        promotion = await code_promotion(session, "批量券")
    generate = """mutation($input: GenerateCouponCodesInput!) { generateCouponCodes(input: $input) {
      __typename ... on GenerateCouponCodesSuccess { generated promotion { id } }
      ... on Error { code field } } }"""
    pid = gid("Promotion", promotion.id)
    done = (
        await manager(
            generate,
            {"input": {"promotionId": pid, "count": 1200, "maxUsesEach": 2, "prefix": "vip-"}},
        )
    )["generateCouponCodes"]
    assert (done["generated"], done["promotion"]["id"]) == (1200, pid)
    async with database(shop) as session:
        rows = list(
            await session.scalars(
                select(CouponCode).where(col(CouponCode.promotion_id) == promotion.id)
            )
        )
    assert len(rows) == len({r.code for r in rows}) == 1200
    assert all(r.code.startswith("VIP-") and len(r.code) == 14 for r in rows)
    assert all(set(r.code[4:]) <= set(ALPHABET) for r in rows)
    assert {(r.max_uses, r.issued_reason, r.customer_id) for r in rows} == {(2, "BATCH", None)}
    for bad, field in (
        ({"count": 10001}, "count"),
        ({"count": 0}, "count"),
        ({"count": 5, "prefix": "VIP 1"}, "prefix"),
        ({"count": 5, "maxUsesEach": 0}, "maxUsesEach"),
    ):
        refused = (await manager(generate, {"input": {"promotionId": pid, **bad}}))[
            "generateCouponCodes"
        ]
        assert refused["field"] == field, bad


async def test_issuing_to_a_tag_or_an_audience_gives_each_customer_one_code(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    now = utcnow()
    async with database(shop) as session:
        promotion = await code_promotion(session, "会员券")
        tagged = [await make_customer(session, tags=["vip-tag", "x"]) for _ in range(3)]
        await make_customer(session, tags=["vip-tag"], is_active=False)
        await make_customer(session, tags=["other"])
        audience = Audience(key="issue-test", name="测试人群", rule={})
        session.add(audience)
        await session.flush()
        for customer in tagged[:2]:
            session.add(AudienceMember(audience_id=audience.id, customer_id=customer.id, since=now))
        await session.commit()
    issue = """mutation($input: IssueCouponsInput!) { issueCoupons(input: $input) {
      __typename ... on IssueCouponsSuccess { matched issued already } ... on Error { code field }
    } }"""
    pid = gid("Promotion", promotion.id)

    async def run(**who: Any) -> dict[str, Any]:
        answer: dict[str, Any] = (await manager(issue, {"input": {"promotionId": pid, **who}}))[
            "issueCoupons"
        ]
        return answer

    assert await run(tag="vip-tag") == {
        "__typename": "IssueCouponsSuccess",
        "matched": 3,
        "issued": 3,
        "already": 0,
    }
    again = await run(tag="vip-tag")
    assert (again["issued"], again["already"]) == (0, 3)
    # The audience's two members hold a code from the tag already: the same ref, no second.
    members = await run(audienceId=gid("Audience", audience.id))
    assert (members["matched"], members["issued"], members["already"]) == (2, 0, 2)
    assert (await run(tag="vip-tag", audienceId=gid("Audience", audience.id)))["field"] == (
        "segment"
    )
    async with database(shop) as session:
        rows = list(
            await session.scalars(
                select(CouponCode).where(col(CouponCode.promotion_id) == promotion.id)
            )
        )
    assert sorted(r.customer_id or 0 for r in rows) == sorted(c.id or 0 for c in tagged)
    assert {(r.max_uses, r.issued_reason) for r in rows} == {(1, "TAG")}
    mine = await as_(gql, shop, tagged[0])(MINE)
    assert [e["node"]["status"] for e in mine["myCoupons"]["edges"]] == ["USABLE"]


async def test_claiming_gives_one_code_per_customer_until_the_limit(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    now = utcnow()
    async with database(shop) as session:
        claimable = await code_promotion(session, "领券中心", claimable=True, total_limit=2)
        plain = await code_promotion(session, "不可领")
        ended = await code_promotion(
            session, "已结束", claimable=True, status=PromotionStatus.ENDED
        )
        future = await code_promotion(
            session, "未开始", claimable=True, starts_at=now + timedelta(days=1)
        )
        over = await code_promotion(
            session, "已过期", claimable=True, ends_at=now - timedelta(days=1)
        )
        third = await make_customer(session)
    first, second = seeded.customer, seeded.other_customer
    pid = gid("Promotion", claimable.id)

    async def claim(who: Any, promotion_id: str = pid) -> dict[str, Any]:
        answer: dict[str, Any] = (await as_(gql, shop, who)(CLAIM, {"id": promotion_id}))[
            "claimCoupon"
        ]
        return answer

    got = await claim(first)
    assert got["__typename"] == "CouponCodeSuccess", got
    assert (got["couponCode"]["issuedReason"], got["couponCode"]["maxUses"]) == ("CLAIMED", 1)
    assert got["couponCode"]["promotion"] is None  # a customer does not see the promotion
    assert got["couponCode"]["customerId"] is None
    assert (await claim(first))["couponCode"]["code"] == got["couponCode"]["code"]
    assert (await claim(second))["__typename"] == "CouponCodeSuccess"
    full = await claim(third)
    assert (full["__typename"], full["code"]) == ("CouponRefusal", "LIMIT_REACHED")
    for promotion, code in (
        (plain, "NOT_CLAIMABLE"),
        (ended, "ENDED"),
        (future, "NOT_STARTED"),
        (over, "EXPIRED"),
    ):
        assert (await claim(first, gid("Promotion", promotion.id)))["code"] == code
    assert (await claim(first, "bm90aGluZw=="))["code"] == "NOT_CLAIMABLE"
    body = await gql.execute(CLAIM, {"id": pid})  # signed out
    assert body["data"] is None and body["errors"]

    mine = await as_(gql, shop, first)(MINE)
    codes = {e["node"]["code"]: e["node"] for e in mine["myCoupons"]["edges"]}
    assert codes[got["couponCode"]["code"]] == {
        "code": got["couponCode"]["code"],
        "status": "USABLE",
        "label": "领券中心",
    }


async def test_my_coupons_say_usable_used_expired_or_disabled(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    async with database(shop) as session:
        owner = await make_customer(session)
        promotion = await code_promotion(session, "状态券")
        now = utcnow()
        for code, fields in (
            ("STATE-USABLE", {}),
            ("STATE-USED", {"used_count": 1}),
            ("STATE-EXPIRED", {"expires_at": now - timedelta(minutes=1)}),
            ("STATE-DISABLED", {}),
        ):
            session.add(
                CouponCode(
                    promotion_id=promotion.id or 0,
                    code=code,
                    customer_id=owner.id,
                    max_uses=1,
                    issued_reason="PERSONAL",
                    **fields,
                )
            )
        await session.commit()
        disabled_id = await session.scalar(
            select(col(CouponCode.id)).where(col(CouponCode.code) == "STATE-DISABLED")
        )
    done = (
        await as_(gql, shop, seeded.manager)(
            f"""mutation($id: ID!) {{ disableCouponCode(input: {{id: $id}}) {{ {CODE} }} }}""",
            {"id": gid("CouponCode", disabled_id)},
        )
    )["disableCouponCode"]
    assert done["couponCode"]["status"] == "DISABLED"
    mine = await as_(gql, shop, owner)(MINE)
    assert {e["node"]["code"]: e["node"]["status"] for e in mine["myCoupons"]["edges"]} == {
        "STATE-USABLE": "USABLE",
        "STATE-USED": "USED",
        "STATE-EXPIRED": "EXPIRED",
        "STATE-DISABLED": "DISABLED",
    }
    # Ending the promotion expires its codes.
    async with database(shop) as session:
        await session.execute(
            update(Promotion)
            .where(col(Promotion.id) == promotion.id)
            .values(status=PromotionStatus.ENDED)
        )
        await session.commit()
    mine = await as_(gql, shop, owner)(MINE)
    states = {e["node"]["code"]: e["node"]["status"] for e in mine["myCoupons"]["edges"]}
    assert states["STATE-USABLE"] == "EXPIRED"
    # Nobody else sees them.
    other = await as_(gql, shop, seeded.other_customer)(MINE)
    assert not [e for e in other["myCoupons"]["edges"] if e["node"]["code"].startswith("STATE-")]
