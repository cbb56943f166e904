"""No customer reaches another customer's objects: every Node type of the built schema is
classified; for those holding customer data, customer B gets exactly what a nonexistent id
gets — through ``node``, through the type's own query, and through mutations on them."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from plugins.logistics.models import ReturnRequest
from plugins.pricing.models import (
    Competitor,
    CompetitorPrice,
    PriceAlert,
    PricingLimit,
    PricingRule,
)
from plugins.promotions.models import Campaign, Promotion
from plugins.recommendation.models import MerchandisingKind, RecommendationMerchandising
from schema.core import build_schema
from server.config import Settings
from server.graphql.structure import graphql_structure
from server.models import (
    Address,
    Alert,
    AlertCondition,
    AlertDirection,
    AlertKind,
    AlertRule,
    ApiKey,
    Audience,
    AuditLogEntry,
    CustomerEvent,
    CustomerEventKind,
    Experiment,
    Granularity,
    Order,
    OrderLine,
    OutboxDelivery,
    OutboxEvent,
    Shipment,
    StaffRole,
    StockLevel,
    Survey,
    SurveyKind,
    SurveyTrigger,
    SynonymGroup,
    utcnow,
)
from server.plugins import load_plugins
from server.services import variants
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.catalog import make_product, make_warehouse
from tests.support.graphql import GraphQLClient

# Anyone may see these.
PUBLIC = {"Product", "ProductVariant", "Category", "Warehouse"}
# Shop-internal: no customer sees any of them.
STAFF_ONLY = {
    "StaffUser",
    "ApiKey",
    "AuditLogEntry",
    "StockLevel",
    "OutboxDelivery",
    "SynonymGroup",
    "Experiment",
    "Audience",
    "AlertRule",
    "Alert",
    # the recommendation plugin's pins and exclusions
    "MerchandisingRule",
    # the pricing plugin's competitor monitoring
    "Competitor",
    "PriceAlert",
    # the pricing plugin's dynamic-pricing suggestions
    "PriceSuggestion",
    # the pricing plugin's rules and limits
    "PricingRule",
    "PricingLimit",
    # the promotions plugin's promotions and campaigns
    "Promotion",
    "Campaign",
}
# A customer's own: the owner sees them, other customers do not.
CUSTOMER_DATA = {
    "Customer",
    "Address",
    "CustomerEvent",
    "Order",
    "OrderLine",
    "Shipment",
    "Survey",
    # the logistics plugin's returns, exchanges and repairs
    "ReturnRequest",
}

# The type's own single-object query, where it has one.
OWN_QUERY = {
    "Order": "query($id: ID!) { order(id: $id) { id } }",
    "Shipment": "query($id: ID!) { shipment(id: $id) { id } }",
}

_numbers = itertools.count(1)
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
MISSING_ID = 987654


async def body(client: GraphQLClient, document: str, variables: dict[str, Any]) -> Any:
    """The response without ``extensions`` (the query-cost bucket changes between calls)."""
    response = await client.execute(document, variables)
    response.pop("extensions", None)
    return response


def gid(type_name: str, pk: int | None) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


def node_types(settings: Settings) -> set[str]:
    schema = graphql_structure(build_schema(load_plugins(settings), settings))
    return {
        name
        for name, tp in schema.type_map.items()
        if any(i.name == "Node" for i in getattr(tp, "interfaces", ()))
    }


def test_every_node_type_is_classified(settings: Settings) -> None:
    # A new Node type fails here until it is added to one list and, if it holds customer
    # data, given a factory below.
    assert node_types(settings) == PUBLIC | STAFF_ONLY | CUSTOMER_DATA
    assert set(FACTORIES) == CUSTOMER_DATA | STAFF_ONLY


async def _order(session: AsyncSession, customer_id: int) -> Order:
    order = Order(
        number=f"SG-IDOR-{next(_numbers)}",
        customer_id=customer_id,
        email=f"c{customer_id}@example.cn",
        shipping_address={"recipient_name": "王芳", "city": "上海市"},
    )
    session.add(order)
    await session.flush()
    return order


async def _return_request(session: AsyncSession, customer_id: int) -> ReturnRequest:
    order = await _order(session, customer_id)
    return await _add(
        session,
        ReturnRequest(
            number=f"RMA-IDOR-{next(_numbers)}", order_id=order.id, customer_id=customer_id
        ),
    )


async def _order_line(session: AsyncSession, customer_id: int) -> OrderLine:
    order = await _order(session, customer_id)
    product = await make_product(session, commit=False)
    [variant] = await variants.variants_of(session, product.id)  # type: ignore[arg-type]  # a stored row has its id
    line = OrderLine(
        order_id=order.id,
        product_id=product.id,
        variant_id=variant.id,
        sku=product.sku,
        product_name=product.name,
        quantity=1,
        base_unit_price_amount=100,
        unit_price_amount=100,
        line_total_amount=100,
    )
    session.add(line)
    return line


async def _shipment(session: AsyncSession, customer_id: int) -> Shipment:
    order = await _order(session, customer_id)
    warehouse = await make_warehouse(session, "SH-IDOR", name="上海仓", commit=False)
    shipment = Shipment(
        order_id=order.id, warehouse_id=warehouse.id, carrier="SF", tracking_number="SF1"
    )
    session.add(shipment)
    return shipment


async def _stock_level(session: AsyncSession, customer_id: int) -> StockLevel:
    product = await make_product(session, commit=False)
    warehouse = await make_warehouse(session, "BJ-IDOR", name="北京仓", commit=False)
    [variant] = await variants.variants_of(session, product.id)  # type: ignore[arg-type]  # a stored row has its id
    level = StockLevel(
        warehouse_id=warehouse.id, product_id=product.id, variant_id=variant.id, on_hand=5
    )
    session.add(level)
    return level


async def _outbox_delivery(session: AsyncSession, customer_id: int) -> OutboxDelivery:
    event = OutboxEvent(name="order_placed", payload={"customer_id": customer_id})
    session.add(event)
    await session.flush()
    delivery = OutboxDelivery(event_id=event.id, plugin="idor-test")
    session.add(delivery)
    return delivery


async def _merchandising_rule(session: AsyncSession, customer_id: int) -> Any:
    product = await make_product(session, commit=False)
    return await _add(
        session,
        RecommendationMerchandising(
            product_id=product.id, kind=MerchandisingKind.PIN, position=1, note="首页推荐"
        ),
    )


async def _competitor(session: AsyncSession, customer_id: int) -> Any:
    return await _add(session, Competitor(name=f"竞品-{customer_id}-{next(_numbers)}"))


async def _price_alert(session: AsyncSession, customer_id: int) -> Any:
    competitor = await _competitor(session, customer_id)
    product = await make_product(session, commit=False)
    variant = (await variants.variants_of(session, product.id or 0))[0]
    await session.flush()
    seen = await _add(
        session,
        CompetitorPrice(
            competitor_id=competitor.id,
            product_id=product.id,
            variant_id=variant.id,
            amount=100,
            observed_at=utcnow(),
        ),
    )
    await session.flush()
    return await _add(
        session,
        PriceAlert(
            competitor_id=competitor.id,
            product_id=product.id,
            variant_id=variant.id,
            observation_id=seen.id,
            our_amount=19900,
            their_amount=100,
        ),
    )


async def _price_suggestion(session: AsyncSession, customer_id: int) -> Any:
    from plugins.pricing.models import PriceSuggestion

    product = await make_product(session, commit=False)
    return await _add(
        session, PriceSuggestion(product_id=product.id, current_amount=1000, suggested_amount=1099)
    )


async def _pricing_rule(session: AsyncSession, customer_id: int) -> Any:
    product = await make_product(session, commit=False)
    return await _add(session, PricingRule(name="金卡价", product_id=product.id, amount=100))


async def _pricing_limit(session: AsyncSession, customer_id: int) -> Any:
    product = await make_product(session, commit=False)
    return await _add(session, PricingLimit(product_id=product.id, floor_amount=100))


async def _staff_user(session: AsyncSession, customer_id: int) -> Any:
    return await make_staff(session, role=StaffRole.SUPPORT)


Factory = Callable[[AsyncSession, int], Awaitable[Any]]
FACTORIES: dict[str, Factory] = {
    "Customer": lambda s, cid: _customer_row(s, cid),
    "Address": lambda s, cid: _add(
        s,
        Address(
            customer_id=cid,
            recipient_name="王芳",
            phone="13700000000",
            province="上海市",
            city="上海市",
            street="南京西路 1 号",
        ),
    ),
    "CustomerEvent": lambda s, cid: _add(
        s, CustomerEvent(customer_id=cid, kind=CustomerEventKind.SEARCH, query="私密")
    ),
    "Order": _order,
    "OrderLine": _order_line,
    "Shipment": _shipment,
    "ReturnRequest": _return_request,
    "Survey": lambda s, cid: _add(
        s,
        Survey(
            customer_id=cid,
            kind=SurveyKind.NPS,
            trigger=SurveyTrigger.PERIODIC,
            subject_key=f"idor:{cid}:{next(_numbers)}",
            sent_at=utcnow(),
            expires_at=utcnow() + timedelta(days=14),
        ),
    ),
    "StaffUser": _staff_user,
    "ApiKey": lambda s, cid: _add(
        s, ApiKey(name="k", prefix=f"p{cid}", key_hash="0" * 64, scopes=[], created_by="cli")
    ),
    "AuditLogEntry": lambda s, cid: _add(
        s, AuditLogEntry(actor="staff:1", mutation="m", input={}, result="OK")
    ),
    "StockLevel": _stock_level,
    "MerchandisingRule": _merchandising_rule,
    "Competitor": _competitor,
    "PriceAlert": _price_alert,
    "PriceSuggestion": _price_suggestion,
    "PricingRule": _pricing_rule,
    "PricingLimit": _pricing_limit,
    "Promotion": lambda s, cid: _add(
        s, Promotion(name="满300减40", rules={"tiers": [{"threshold": 30000, "amount_off": 4000}]})
    ),
    "Campaign": lambda s, cid: _add(s, Campaign(name="双11", budget_amount=100000)),
    "OutboxDelivery": _outbox_delivery,
    "SynonymGroup": lambda s, cid: _add(s, SynonymGroup()),
    "Audience": lambda s, cid: _add(
        s, Audience(key=f"idor-{cid}", name="老客", rule={"all": [{"noOrder": {"days": 30}}]})
    ),
    "Experiment": lambda s, cid: _add(
        s, Experiment(key=f"idor-{cid}", name="按钮颜色", variants=[{"key": "a", "weight": 1}])
    ),
    "AlertRule": lambda s, cid: _add(
        s,
        AlertRule(
            name="GMV 跌三成",
            kpi_key="gmv",
            granularity=Granularity.DAY,
            condition=AlertCondition.FALLS_BY,
            threshold=0.3,
            created_by="staff:1",
        ),
    ),
    "Alert": lambda s, cid: _add(
        s,
        Alert(
            key=f"anomaly:gmv:idor-{cid}",
            kind=AlertKind.ANOMALY,
            kpi_key="gmv",
            bucket_start=date(2026, 3, 10),
            bucket_end=date(2026, 3, 11),
            direction=AlertDirection.DOWN,
            message="GMV drop",
        ),
    ),
}


async def _add(session: AsyncSession, row: Any) -> Any:
    session.add(row)
    return row


async def _customer_row(session: AsyncSession, customer_id: int) -> Any:
    from server.models import Customer

    return await session.get(Customer, customer_id)


async def _arrange(session: AsyncSession, type_name: str, owner_id: int) -> int:
    row = await FACTORIES[type_name](session, owner_id)
    await session.commit()
    return int(row.id)


async def test_customer_data_of_a_is_invisible_to_b_like_a_missing_object(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    alice = await make_customer(session, email="alice@example.cn")
    bob = await make_customer(session, email="bob@example.cn")
    admin = await make_staff(session, role=StaffRole.ADMIN)
    alice_id, bob_id = alice.id, bob.id
    as_alice = gql.as_(token_for(settings, alice))
    as_bob = gql.as_(token_for(settings, bob))
    as_admin = gql.as_(token_for(settings, admin))
    assert bob_id != alice_id

    for type_name in sorted(CUSTOMER_DATA):
        pk = await _arrange(session, type_name, alice_id)
        mine, missing = gid(type_name, pk), gid(type_name, MISSING_ID)
        # It exists: the owner (and staff) see it.
        assert (await as_alice(NODE, {"id": mine}))["node"] is not None, type_name
        assert (await as_admin(NODE, {"id": mine}))["node"] is not None, type_name
        # Bob gets what a nonexistent id gets, byte for byte.
        assert await body(as_bob, NODE, {"id": mine}) == await body(
            as_bob, NODE, {"id": missing}
        ), type_name
        assert (await as_bob(NODE, {"id": mine}))["node"] is None, type_name
        own = OWN_QUERY.get(type_name)
        if own is not None:
            assert (await as_alice(own, {"id": mine})) != (await as_bob(own, {"id": mine}))
            assert await body(as_bob, own, {"id": mine}) == await body(
                as_bob, own, {"id": missing}
            ), type_name


async def test_shop_internal_objects_are_invisible_to_customers(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    customer_id = customer.id
    as_customer = gql.as_(token_for(settings, customer))
    for type_name in sorted(STAFF_ONLY):
        pk = await _arrange(session, type_name, customer_id)
        existing, missing = gid(type_name, pk), gid(type_name, MISSING_ID)
        for client in (gql, as_customer):
            assert await body(client, NODE, {"id": existing}) == await body(
                client, NODE, {"id": missing}
            ), type_name
            assert (await client(NODE, {"id": existing}))["node"] is None, type_name


MUTATIONS: dict[str, list[tuple[str, Callable[[str], dict[str, Any]]]]] = {
    "Address": [
        (
            "mutation($input: UpdateAddressInput!) { updateAddress(input: $input) "
            "{ __typename ... on Error { code field } } }",
            lambda i: {"input": {"id": i, "street": "被改了"}},
        ),
        (
            "mutation($input: AddressIdInput!) { setDefaultAddress(input: $input) "
            "{ __typename ... on Error { code field } } }",
            lambda i: {"input": {"id": i}},
        ),
        (
            "mutation($input: AddressIdInput!) { removeAddress(input: $input) "
            "{ __typename ... on Error { code field } } }",
            lambda i: {"input": {"id": i}},
        ),
    ],
    "Survey": [
        (
            "mutation($input: AnswerSurveyInput!) { answerSurvey(input: $input) "
            "{ __typename ... on Error { code field } } }",
            lambda i: {"input": {"surveyId": i, "score": 0, "comment": "被改了"}},
        ),
    ],
    "Order": [
        (
            "mutation($input: CancelOrderInput!) { cancelOrder(input: $input) "
            "{ __typename ... on Error { code field } } }",
            lambda i: {"input": {"orderId": i}},
        ),
        (
            "mutation($input: ConfirmReceiptInput!) { confirmReceipt(input: $input) "
            "{ __typename ... on Error { code field } } }",
            lambda i: {"input": {"orderId": i}},
        ),
        (
            "mutation($input: PayOrderInput!) { payOrder(input: $input) "
            "{ __typename ... on Error { code field } } }",
            lambda i: {
                "input": {
                    "orderId": i,
                    "gateway": "test",
                    "token": "tok_visa",
                    "amount": {"amount": "1.00", "currency": "CNY"},
                }
            },
        ),
    ],
}


async def test_mutations_on_another_customers_objects_fail_like_missing_ones(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    alice = await make_customer(session, email="a2@example.cn")
    bob = await make_customer(session, email="b2@example.cn")
    alice_id = alice.id
    as_bob = gql.as_(token_for(settings, bob))
    arranged: dict[str, int] = {}
    for type_name, calls in MUTATIONS.items():
        pk = arranged[type_name] = await _arrange(session, type_name, alice_id)
        mine, missing = gid(type_name, pk), gid(type_name, MISSING_ID)
        for document, variables in calls:
            theirs = await body(as_bob, document, variables(mine))
            nothing = await body(as_bob, document, variables(missing))
            assert theirs == nothing, (type_name, document, theirs)
            assert "errors" not in theirs, theirs
    # Nothing of Alice's changed.
    await session.rollback()
    address = await session.get(Address, arranged["Address"])
    assert address is not None and address.street == "南京西路 1 号" and not address.is_default
    order = await session.get(Order, arranged["Order"])
    assert order is not None and order.status.value == "PENDING_PAYMENT"
    survey = await session.get(Survey, arranged["Survey"])
    assert survey is not None and survey.score is None and survey.comment is None
