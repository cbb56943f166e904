"""Personal data: a customer's export of everything, and erasure of their account."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import (
    Address,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OutboxEvent,
    RefreshToken,
)
from tests.support.accounts import DEFAULT_PASSWORD, make_customer, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient

ERASE = """
mutation($input: EraseMyAccountInput!) {
  eraseMyAccount(input: $input) {
    __typename
    ... on Error { code field }
  }
}
"""

SHIPPING = {
    "recipient_name": "张伟",
    "phone": "13812345678",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "street": "文三路 100 号",
    "postal_code": "310000",
}


async def _customer_with_history(session: AsyncSession) -> tuple[Customer, Order]:
    customer = await make_customer(
        session, email="zhang.wei@example.cn", first_name="伟", last_name="张", phone="13812345678"
    )
    product = await make_product(session, name="西湖龙井")
    session.add(Address(customer_id=customer.id, **{k: v for k, v in SHIPPING.items()}))
    order = Order(
        number="SG-PRIV-1",
        customer_id=customer.id,
        email=customer.email,
        total_amount=19900,
        subtotal_amount=19900,
        shipping_address=dict(SHIPPING),
    )
    session.add(order)
    session.add(
        CustomerEvent(
            customer_id=customer.id,
            kind=CustomerEventKind.SEARCH,
            query="张伟 的礼物",
            session_id="s-1",
        )
    )
    session.add(
        CustomerEvent(customer_id=customer.id, kind=CustomerEventKind.VIEW, product_id=product.id)
    )
    await session.commit()
    return customer, order


async def test_export_contains_profile_addresses_orders_and_events_of_the_customer_only(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer, order = await _customer_with_history(session)
    other = await make_customer(session, email="other@example.cn")
    session.add(CustomerEvent(customer_id=other.id, kind=CustomerEventKind.SEARCH, query="别人"))
    await session.commit()
    data = (await gql.as_(token_for(settings, customer))("{ exportMyData }"))["exportMyData"]
    assert data["profile"]["email"] == "zhang.wei@example.cn"
    assert data["profile"]["phone"] == "13812345678"
    assert "password_hash" not in data["profile"]
    assert [a["street"] for a in data["addresses"]] == ["文三路 100 号"]
    assert [o["number"] for o in data["orders"]] == ["SG-PRIV-1"]
    assert data["orders"][0]["shipping_address"]["recipient_name"] == "张伟"
    assert {"lines", "statusHistory", "payments", "shipments"} <= set(data["orders"][0])
    assert sorted(e["kind"] for e in data["events"]) == ["SEARCH", "VIEW"]
    assert "别人" not in str(data)
    refused = await gql.execute("{ exportMyData }")
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_erase_anonymises_orders_deletes_addresses_and_disables_login(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer, order = await _customer_with_history(session)
    customer_id, order_id = customer.id, order.id
    login = """mutation($input: LoginInput!) { login(input: $input) {
      __typename ... on LoginSuccess { accessToken refreshToken } } }"""
    credentials = {"input": {"email": "zhang.wei@example.cn", "password": DEFAULT_PASSWORD}}
    signed_in = (await gql(login, credentials))["login"]
    client = gql.as_(signed_in["accessToken"])

    wrong = (await client(ERASE, {"input": {"password": "not-my-password"}}))["eraseMyAccount"]
    assert wrong == {
        "__typename": "AuthenticationError",
        "code": wrong["code"],
        "field": "password",
    }
    await session.refresh(customer)
    assert customer.is_active and customer.email == "zhang.wei@example.cn"

    done = (await client(ERASE, {"input": {"password": DEFAULT_PASSWORD}}))["eraseMyAccount"]
    assert done["__typename"] == "EraseMyAccountSuccess"

    await session.rollback()  # a fresh snapshot: the server committed meanwhile
    erased = await session.get(Customer, customer_id)
    assert erased is not None and not erased.is_active
    assert "zhang" not in erased.email and erased.password_hash is None
    assert (erased.first_name, erased.last_name, erased.phone) == ("", "", None)
    kept = await session.get(Order, order_id)
    assert kept is not None and kept.total_amount == 19900 and kept.customer_id == customer_id
    assert kept.email == erased.email
    assert kept.shipping_address["province"] == "浙江省"
    for field in ("recipient_name", "phone", "street", "district", "postal_code"):
        assert kept.shipping_address[field] == "[erased]", field
    assert (await session.execute(select(Address))).first() is None
    events = (await session.execute(select(CustomerEvent))).scalars().all()
    assert len(events) == 2
    assert all(e.customer_id is None and e.session_id is None and e.query is None for e in events)
    assert (await session.execute(select(RefreshToken))).first() is None
    names = (await session.execute(select(OutboxEvent.name))).scalars().all()
    assert "customer_erased" in names

    # Every token stops working, and the account cannot sign in again.
    assert (await client.post("{ me { email } }")).status_code == 401
    assert (await gql(login, credentials))["login"]["__typename"] == "AuthenticationError"
    refresh = """mutation($t: String!) { refreshToken(input: {refreshToken: $t}) { __typename } }"""
    assert (await gql(refresh, {"t": signed_in["refreshToken"]}))["refreshToken"][
        "__typename"
    ] == "AuthenticationError"
