"""Rules and limits over HTTP: the quantity break through a cart and an order, the staff's
mutations (history, events, typed errors that change nothing, permissions), the response cache
with personal prices, the statements of a storefront page, and the plugin switched off."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import print_schema
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from plugins.pricing import PRICES_CHANGED
from plugins.pricing.models import PriceHistory, PriceSource, PricingLimit, PricingRule, RuleKind
from schema.core import build_schema
from server.config import Settings
from server.graphql.structure import graphql_structure
from server.models import (
    Audience,
    AuditLogEntry,
    Category,
    MembershipTier,
    OutboxEvent,
    StaffRole,
)
from server.plugins import load_plugins
from tests.plugins.pricing.rules_support import rule
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import cart_with, gid, make_product, place
from tests.support.statements import counting

BREAKDOWN = """unitPrice { amount } adjustments { source rule label amount { amount } }
  guardrail { rule label amount { amount } } notApplied { rule reason amount { amount } }"""
PRODUCT = f"""query($id: ID!, $q: Int!) {{ node(id: $id) {{ ... on Product {{
  price {{ amount }} priceBreakdown(quantity: $q) {{ {BREAKDOWN} }} }} }} }}"""
CART = f"""query($t: String!) {{ cart(token: $t) {{ lines {{ id quantity unitPrice {{ amount }}
  priceBreakdown {{ {BREAKDOWN} }} }} }} }}"""
UPDATE_LINE = """mutation($input: CartUpdateLineInput!) { cartUpdateLine(input: $input) {
  __typename ... on CartUpdateLineSuccess { cart { lines { unitPrice { amount } } } } } }"""
RESULT = "__typename ... on Error { code field message }"
CREATE = f"""mutation($input: CreatePricingRuleInput!) {{ createPricingRule(input: $input) {{
  {RESULT} ... on PricingRuleSuccess {{ rule {{ id name kind amount {{ amount }} percentOffBp
  membershipTier product {{ name }} createdBy }} }} }} }}"""
UPDATE = f"""mutation($input: UpdatePricingRuleInput!) {{ updatePricingRule(input: $input) {{
  {RESULT} ... on PricingRuleSuccess {{ rule {{ id amount {{ amount }} }} }} }} }}"""
DELETE = f"""mutation($input: DeletePricingRuleInput!) {{ deletePricingRule(input: $input) {{
  {RESULT} ... on DeletePricingRuleSuccess {{ deletedId }} }} }}"""
SET_LIMIT = f"""mutation($input: SetPricingLimitInput!) {{ setPricingLimit(input: $input) {{
  {RESULT} ... on SetPricingLimitSuccess {{ limit {{ id floor {{ amount }} minMarginBp }} }} }} }}"""
REMOVE_LIMIT = f"""mutation($input: RemovePricingLimitInput!) {{ removePricingLimit(input: $input)
  {{ {RESULT} ... on RemovePricingLimitSuccess {{ removedId }} }} }}"""
RULES = """query($f: PricingRuleFilter) { pricingRules(first: 10, filter: $f) {
  edges { node { id name kind } } } }"""
LIMITS = "{ pricingLimits(first: 10) { edges { node { id floor { amount } } } } }"


async def count(session: AsyncSession, model: Any) -> int:
    await session.rollback()  # see what the server committed since
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _a_quantity_break_follows_the_cart_and_the_order(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session, price=10000, stock=20)
    bulk = await rule(
        session,
        kind=RuleKind.QUANTITY,
        product_id=product.id,
        min_quantity=3,
        percent_off_bp=1000,
        name="满 3 件九折",
    )
    token = await cart_with(gql, [(product, 1)])
    line = (await gql(CART, {"t": token}))["cart"]["lines"][0]
    assert line["unitPrice"]["amount"] == "100.00"
    assert line["priceBreakdown"]["notApplied"] == [
        {
            "rule": f"rule-{bulk.id}",
            "reason": "quantity break from 3 units not reached (1)",
            "amount": {"amount": "-10.00"},
        }
    ]
    for quantity, expected in ((3, "90.00"), (2, "100.00"), (4, "90.00")):
        data = await gql(
            UPDATE_LINE, {"input": {"cartToken": token, "lineId": line["id"], "quantity": quantity}}
        )
        lines = data["cartUpdateLine"]["cart"]["lines"]
        assert lines == [{"unitPrice": {"amount": expected}}]
    result = await place(gql, token)
    assert result["__typename"] == "PlaceOrderSuccess", result
    assert result["order"]["lines"][0]["unitPrice"]["amount"] == "90.00"
    assert result["order"]["subtotal"]["amount"] == "360.00"
    # A listing's breakdown for 5 units, anonymous.
    data = await gql(PRODUCT, {"id": gid("Product", product.id), "q": 5})
    assert data["node"]["priceBreakdown"]["unitPrice"]["amount"] == "90.00"
    assert data["node"]["price"]["amount"] == "100.00"


async def test_staff_manage_rules_and_limits(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price=10000)
    other = await make_product(session, price=5000)
    staff = await make_staff(session, role=StaffRole.CATALOG)
    admin = gql.as_(token_for(settings, staff))
    staff_id, product_id, other_id = staff.id, product.id, other.id
    pid = gid("Product", product_id)
    # Typed errors, each changing nothing.
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "x", "amount": "80.00"}, "VALIDATION_FAILED", "productId"),
        (
            {
                "name": "x",
                "productId": pid,
                "categoryId": gid("Category", product.category_id),
                "amount": "80.00",
            },
            "VALIDATION_FAILED",
            "productId",
        ),
        ({"name": "x", "productId": pid}, "VALIDATION_FAILED", "amount"),
        (
            {"name": "x", "productId": pid, "amount": "80", "percentOffBp": 10},
            "VALIDATION_FAILED",
            "amount",
        ),
        ({"name": "x", "productId": pid, "amount": "0"}, "VALIDATION_FAILED", "amount"),
        ({"name": "x", "productId": pid, "amount": "-1"}, "VALIDATION_FAILED", "amount"),
        ({"name": "x", "productId": pid, "amount": "1.001"}, "VALIDATION_FAILED", "amount"),
        (
            {"name": "x", "productId": pid, "percentOffBp": 10000},
            "VALIDATION_FAILED",
            "percentOffBp",
        ),
        ({"name": "x", "productId": pid, "percentOffBp": 0}, "VALIDATION_FAILED", "percentOffBp"),
        (
            {
                "name": "x",
                "productId": pid,
                "amount": "80",
                "startsAt": "2026-02-01T00:00:00Z",
                "endsAt": "2026-01-01T00:00:00Z",
            },
            "VALIDATION_FAILED",
            "endsAt",
        ),
        (
            {"name": "x", "productId": pid, "amount": "80", "membershipTier": "GOLD", "tag": "vip"},
            "VALIDATION_FAILED",
            "membershipTier",
        ),
        (
            {"name": "x", "productId": gid("Product", 987654), "amount": "80"},
            "NOT_FOUND",
            "productId",
        ),
        (
            {"name": "x", "categoryId": gid("Category", 987654), "amount": "80"},
            "NOT_FOUND",
            "categoryId",
        ),
        (
            {"name": "x", "productId": pid, "audienceId": gid("Audience", 987654), "amount": "80"},
            "NOT_FOUND",
            "audienceId",
        ),
        ({"name": "", "productId": pid, "amount": "80"}, "VALIDATION_FAILED", "name"),
        ({"name": "x" * 121, "productId": pid, "amount": "80"}, "VALIDATION_FAILED", "name"),
        (
            {"name": "x", "kind": "QUANTITY", "productId": pid, "amount": "80"},
            "VALIDATION_FAILED",
            "minQuantity",
        ),
    ]
    for spec, code, field in bad:
        answer = (await admin(CREATE, {"input": {"rule": spec}}))["createPricingRule"]
        assert (answer["code"], answer["field"]) == (code, field), (spec, answer)
    bad_limits: list[tuple[dict[str, Any], str]] = [
        ({"floor": "10"}, "productId"),
        ({"productId": pid}, "floor"),
        ({"productId": pid, "floor": "90", "ceiling": "80"}, "floor"),
        ({"productId": pid, "map": "90", "ceiling": "80"}, "map"),
        ({"productId": pid, "floor": "0"}, "floor"),
        ({"productId": pid, "minMarginBp": 10000}, "minMarginBp"),
    ]
    for spec, field in bad_limits:
        answer = (await admin(SET_LIMIT, {"input": spec}))["setPricingLimit"]
        assert (answer["code"], answer["field"]) == ("VALIDATION_FAILED", field), (spec, answer)
    assert await count(session, PricingRule) == await count(session, PricingLimit) == 0
    assert await count(session, PriceHistory) == 0

    # Create: the public price moves, the history records who and why, the event is out.
    created = (
        await admin(
            CREATE, {"input": {"rule": {"name": "会员日", "productId": pid, "amount": "80"}}}
        )
    )["createPricingRule"]
    assert created["__typename"] == "PricingRuleSuccess"
    assert created["rule"]["amount"] == {"amount": "80.00"}
    assert created["rule"]["createdBy"] == f"staff:{staff_id}"
    rid = created["rule"]["id"]
    data = await gql(PRODUCT, {"id": pid, "q": 1})
    assert data["node"]["price"]["amount"] == "80.00"
    await session.rollback()
    rows = list(await session.scalars(select(PriceHistory).order_by(PriceHistory.id)))
    assert [(r.product_id, r.amount, r.previous_amount, r.source, r.actor) for r in rows] == [
        (product_id, 8000, None, PriceSource.RULE, f"staff:{staff_id}")
    ]
    assert "会员日" in rows[0].reason
    events = await session.scalars(select(OutboxEvent).where(OutboxEvent.name == PRICES_CHANGED))
    assert any(e.payload["product_ids"] == [product_id] for e in events)
    audited = await session.scalars(
        select(AuditLogEntry.mutation).where(AuditLogEntry.mutation == "createPricingRule")
    )
    assert len(list(audited)) >= 1

    # Update, list, a floor above the rule's price, remove it, delete the rule.
    updated = (
        await admin(
            UPDATE,
            {
                "input": {
                    "id": rid,
                    "rule": {"name": "会员日", "productId": pid, "percentOffBp": 3000},
                }
            },
        )
    )["updatePricingRule"]
    assert updated["rule"]["amount"] is None
    assert (await gql(PRODUCT, {"id": pid, "q": 1}))["node"]["price"]["amount"] == "70.00"
    listed = (await admin(RULES, {"f": {"productId": pid}}))["pricingRules"]["edges"]
    assert [e["node"]["id"] for e in listed] == [rid]
    assert (await admin(RULES, {"f": {"kind": "QUANTITY"}}))["pricingRules"]["edges"] == []
    limit = (await admin(SET_LIMIT, {"input": {"productId": pid, "floor": "75"}}))[
        "setPricingLimit"
    ]
    data = await gql(PRODUCT, {"id": pid, "q": 1})
    assert data["node"]["price"]["amount"] == "75.00"
    assert data["node"]["priceBreakdown"]["guardrail"] == {
        "rule": "floor",
        "label": "最低价 / floor price 75.00",
        "amount": {"amount": "5.00"},
    }
    # Setting it again replaces the target's one row.
    await admin(SET_LIMIT, {"input": {"productId": pid, "floor": "72"}})
    assert await count(session, PricingLimit) == 1
    assert len((await admin(LIMITS))["pricingLimits"]["edges"]) == 1
    removed = (await admin(REMOVE_LIMIT, {"input": {"id": limit["limit"]["id"]}}))[
        "removePricingLimit"
    ]
    assert removed == {"__typename": "RemovePricingLimitSuccess", "removedId": limit["limit"]["id"]}
    deleted = (await admin(DELETE, {"input": {"id": rid}}))["deletePricingRule"]
    assert deleted["deletedId"] == rid
    again = (await admin(DELETE, {"input": {"id": rid}}))["deletePricingRule"]
    assert again["code"] == "NOT_FOUND"
    assert (await gql(PRODUCT, {"id": pid, "q": 1}))["node"]["price"]["amount"] == "100.00"
    await session.rollback()
    amounts = [
        r.amount
        for r in await session.scalars(
            select(PriceHistory)
            .where(PriceHistory.product_id == product_id)
            .order_by(PriceHistory.id)
        )
    ]
    assert amounts == [8000, 7000, 10000]
    # The other product never moved.
    assert (
        await session.scalar(select(func.count()).where(PriceHistory.product_id == other_id)) == 0
    )


async def _customers_and_other_staff_cannot_read_or_change_rules(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price=10000)
    row = await rule(session, product_id=product.id, membership_tier="GOLD", amount=8000)
    rules_before = await count(session, PricingRule)
    customer = await make_customer(session, membership_tier=MembershipTier.GOLD)
    support = await make_staff(session, role=StaffRole.SUPPORT)
    for client in (
        gql,
        gql.as_(token_for(settings, customer)),
        gql.as_(token_for(settings, support)),
    ):
        for document, variables in (
            (RULES, {}),
            (LIMITS, {}),
            (DELETE, {"input": {"id": gid("PricingRule", row.id)}}),
        ):
            response = await client.execute(document, variables)
            assert response.get("errors"), response
            assert not response.get("data")
        node = await client(
            "query($id: ID!) { node(id: $id) { id } }", {"id": gid("PricingRule", row.id)}
        )
        assert node["node"] is None
    assert await count(session, PricingRule) == rules_before
    # The gold customer sees their price and its breakdown, nothing of cost or limits.
    data = await gql.as_(token_for(settings, customer))(
        PRODUCT, {"id": gid("Product", product.id), "q": 1}
    )
    assert data["node"]["price"]["amount"] == "80.00"


LISTING = "query { products(first: 5) { edges { node { name price { amount } } } } }"


async def test_personal_prices_never_cross_the_response_cache(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Starlette
) -> None:
    product = await make_product(session, price=10000, name="金卡专享")
    await rule(session, product_id=product.id, membership_tier="GOLD", amount=8000)
    gold = gql.as_(
        token_for(settings, await make_customer(session, membership_tier=MembershipTier.GOLD))
    )
    from tests.server.test_response_cache import ready

    await ready(app)

    async def ask(client: GraphQLClient) -> tuple[str, str]:
        response = await client.post(LISTING)
        price = response.json()["data"]["products"]["edges"][0]["node"]["price"]["amount"]
        return response.headers["x-cache"], price

    assert await ask(gql) == ("MISS", "100.00")
    assert await ask(gql) == ("HIT", "100.00")
    assert await ask(gold) == ("BYPASS", "80.00")  # a signed-in viewer never reads the cache
    assert await ask(gold) == ("BYPASS", "80.00")
    assert await ask(gql) == ("HIT", "100.00")  # nor writes it
    # A rule for everyone, changed by staff, drops the anonymous answer.
    staff = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    created = await staff(
        CREATE,
        {
            "input": {
                "rule": {"name": "全场", "productId": gid("Product", product.id), "amount": "90"}
            }
        },
    )
    assert created["createPricingRule"]["__typename"] == "PricingRuleSuccess"
    assert await ask(gql) == ("MISS", "90.00")
    assert await ask(gold) == ("BYPASS", "80.00")


PAGE = """query($first: Int!) { products(first: $first) { edges { node {
  name price { amount } priceBreakdown(quantity: 2) { unitPrice { amount }
  notApplied { reason } guardrail { rule } } } } } }"""


async def _a_storefront_page_runs_a_fixed_number_of_statements(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Starlette
) -> None:
    category = Category(name="音频", slug="audio-pricing")
    session.add(category)
    audience = Audience(key="pricing-page", name="page")
    session.add(audience)
    await session.flush()
    for n in range(20):
        product = await make_product(session, price=10000 + n * 100, category=category)
        await rule(session, product_id=product.id, amount=9500 + n * 100)
        await rule(session, product_id=product.id, segment="IMPORTANT_VALUE", amount=9000)
        await rule(
            session,
            kind=RuleKind.QUANTITY,
            product_id=product.id,
            min_quantity=3,
            percent_off_bp=500,
        )
        session.add(PricingLimit(product_id=product.id, floor_amount=9200))
    await rule(session, category_id=category.id, audience_id=audience.id, percent_off_bp=300)
    await rule(session, category_id=category.id, membership_tier="GOLD", percent_off_bp=800)
    await session.commit()
    customer = await make_customer(session, membership_tier=MembershipTier.GOLD)
    signed_in = gql.as_(token_for(settings, customer))
    counts = []
    for first in (5, 20):
        with counting(app) as statements:
            data = await signed_in(PAGE, {"first": first})
        assert len(data["products"]["edges"]) == first
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
    # The gold member pays 8% off the list price, floored at 92.00.
    prices = {e["node"]["name"]: e["node"]["price"]["amount"] for e in data["products"]["edges"]}
    assert len(set(prices.values())) > 1


async def test_carts_permissions_and_a_page_s_statements(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, app: Starlette
) -> None:
    # One live server for these (each arranges products of its own).
    await _a_quantity_break_follows_the_cart_and_the_order(gql, session)
    await _customers_and_other_staff_cannot_read_or_change_rules(gql, session, settings)
    await _a_storefront_page_runs_a_fixed_number_of_statements(gql, session, settings, app)


def test_the_plugin_switched_off_leaves_nothing_in_the_schema(settings: Settings) -> None:
    off = settings.model_copy(update={"disabled_plugins": "pricing"})
    sdl = print_schema(graphql_structure(build_schema(load_plugins(off), off)))
    for name in (
        "PricingRule",
        "PricingLimit",
        "pricingRules",
        "createPricingRule",
        "setPricingLimit",
        "PricingRuleKind",
    ):
        assert name not in sdl
    on = print_schema(graphql_structure(build_schema(load_plugins(settings), settings)))
    assert "createPricingRule" in on


pytestmark = pytest.mark.filterwarnings("ignore")
