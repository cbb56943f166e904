"""Customers over HTTP: profiles, addresses, visibility, and the staff's administration."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.config import Settings
from server.models import Address, Customer, MembershipTier
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) {
    __typename
    ... on UpdateProfileSuccess {
      customer { firstName lastName phone gender ageBand region city cityTier occupation interests }
    }
    ... on Error { code field }
  }
}
"""

ADD_ADDRESS = """
mutation($input: AddAddressInput!) {
  addAddress(input: $input) {
    __typename
    ... on AddAddressSuccess {
      address { id isDefault province city district street postalCode recipientName }
      customer { addresses { id isDefault } }
    }
    ... on Error { code field }
  }
}
"""

ADDRESS_OPS = """
mutation($id: ID!, $update: UpdateAddressInput!) {
  setDefaultAddress(input: {id: $id}) {
    __typename ... on SetDefaultAddressSuccess { customer { addresses { id isDefault } } }
    ... on Error { code }
  }
  updateAddress(input: $update) {
    __typename ... on UpdateAddressSuccess { address { id street phone } }
    ... on Error { code field }
  }
}
"""

REMOVE_ADDRESS = """
mutation($id: ID!) {
  removeAddress(input: {id: $id}) {
    __typename
    ... on RemoveAddressSuccess { removedAddressId customer { addresses { id isDefault } } }
    ... on Error { code }
  }
}
"""

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename
    ... on Customer { email phone addresses { street } }
    ... on Address { street }
  }
}
"""


def address(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "recipientName": "张伟",
        "phone": "13912345678",
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "street": "文三路 90 号",
        "postalCode": "310012",
    }
    data.update(overrides)
    return data


async def test_update_profile_changes_only_given_fields(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session, phone="13700000000", region="华东", city="上海")
    me = gql.as_(token_for(settings, customer))
    result = (
        await me(
            UPDATE_PROFILE,
            {
                "input": {
                    "gender": "FEMALE",
                    "ageBand": "25-34",
                    "cityTier": 1,
                    "occupation": "白领",
                    "interests": ["美妆", " 美妆 ", "母婴", ""],
                    "phone": None,
                }
            },
        )
    )["updateProfile"]
    assert result["__typename"] == "UpdateProfileSuccess"
    assert result["customer"] == {
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "phone": None,
        "gender": "FEMALE",
        "ageBand": "25-34",
        "region": "华东",
        "city": "上海",
        "cityTier": 1,
        "occupation": "白领",
        "interests": ["美妆", "母婴"],
    }
    bad = (await me(UPDATE_PROFILE, {"input": {"ageBand": "old", "occupation": "x"}}))[
        "updateProfile"
    ]
    assert bad == {"__typename": "ValidationError", "code": "VALIDATION_FAILED", "field": "ageBand"}
    await session.refresh(customer)
    # Nothing of the refused input was written, not even the valid part.
    assert (customer.age_band, customer.occupation) == ("25-34", "白领")


async def test_profile_mutations_need_a_customer(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    staff = await make_staff(session)
    for client in (gql, gql.as_(token_for(settings, staff))):
        body = await client.execute(UPDATE_PROFILE, {"input": {"occupation": "x"}})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_addresses_keep_exactly_one_default(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    me = gql.as_(token_for(settings, customer))

    first = (await me(ADD_ADDRESS, {"input": address()}))["addAddress"]
    assert first["address"]["isDefault"] is True  # the first address is the default
    second = (await me(ADD_ADDRESS, {"input": address(street="南京路 1 号")}))["addAddress"]
    assert second["address"]["isDefault"] is False
    third = (await me(ADD_ADDRESS, {"input": address(street="淮海路 2 号", isDefault=True)}))[
        "addAddress"
    ]
    a1, a2, a3 = first["address"]["id"], second["address"]["id"], third["address"]["id"]
    assert third["customer"]["addresses"] == [
        {"id": a3, "isDefault": True},
        {"id": a1, "isDefault": False},
        {"id": a2, "isDefault": False},
    ]

    data = await me(ADDRESS_OPS, {"id": a2, "update": {"id": a1, "street": "文一路 1 号"}})
    assert [a for a in data["setDefaultAddress"]["customer"]["addresses"] if a["isDefault"]] == [
        {"id": a2, "isDefault": True}
    ]
    assert data["updateAddress"]["address"] == {
        "id": a1,
        "street": "文一路 1 号",
        "phone": "13912345678",
    }

    # Removing the default promotes the newest remaining address.
    removed = (await me(REMOVE_ADDRESS, {"id": a2}))["removeAddress"]
    assert removed["removedAddressId"] == a2
    assert removed["customer"]["addresses"] == [
        {"id": a3, "isDefault": True},
        {"id": a1, "isDefault": False},
    ]
    rows = (await session.execute(select(Address))).scalars().all()
    assert sum(a.is_default for a in rows) == 1


async def test_concurrent_set_default_leaves_one_default(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    me = gql.as_(token_for(settings, customer))
    ids = []
    for i in range(6):
        added = (await me(ADD_ADDRESS, {"input": address(street=f"长安街 {i} 号")}))["addAddress"]
        ids.append(added["address"]["id"])
    query = "mutation($id: ID!) { setDefaultAddress(input: {id: $id}) { __typename } }"
    await asyncio.gather(*(me(query, {"id": i}) for i in ids * 2))
    rows = (await session.execute(select(Address))).scalars().all()
    assert len(rows) == 6
    assert sum(a.is_default for a in rows) == 1


async def test_bad_addresses_are_refused(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    me = gql.as_(token_for(settings, customer))
    for bad, field in (
        (address(postalCode="31001"), "postalCode"),
        (address(province=" "), "province"),
        (address(phone="phone"), "phone"),
    ):
        result = (await me(ADD_ADDRESS, {"input": bad}))["addAddress"]
        assert (result["__typename"], result["field"]) == ("ValidationError", field)
    assert (await session.execute(select(Address))).scalars().all() == []


async def test_customer_b_cannot_see_or_touch_customer_a(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    alice = await make_customer(session, email="alice@example.cn", phone="13600000001")
    bob = await make_customer(session, email="bob@example.cn")
    as_alice = gql.as_(token_for(settings, alice))
    as_bob = gql.as_(token_for(settings, bob))
    added = (await as_alice(ADD_ADDRESS, {"input": address()}))["addAddress"]
    alice_address = added["address"]["id"]
    alice_id = gid("Customer", alice.id)

    # Alice sees herself and her address.
    node = (await as_alice(NODE, {"id": alice_id}))["node"]
    assert node["email"] == "alice@example.cn"
    assert (await as_alice(NODE, {"id": alice_address}))["node"]["street"] == "文三路 90 号"

    # Bob (and anonymous) get exactly what a missing id gets.
    missing_customer = gid("Customer", 10_000)
    missing_address = gid("Address", 10_000)
    for client in (as_bob, gql):
        assert (await client(NODE, {"id": alice_id}))["node"] is None
        assert (await client(NODE, {"id": alice_address}))["node"] is None
        assert (await client(NODE, {"id": missing_customer}))["node"] is None

    # Bob's mutations on Alice's address answer like a missing address, and change nothing.
    for target in (alice_address, missing_address):
        data = await as_bob(ADDRESS_OPS, {"id": target, "update": {"id": target, "street": "x"}})
        assert data["setDefaultAddress"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
        assert data["updateAddress"]["__typename"] == "NotFoundError"
        assert (await as_bob(REMOVE_ADDRESS, {"id": target}))["removeAddress"] == {
            "__typename": "NotFoundError",
            "code": "NOT_FOUND",
        }
    row = (await session.execute(select(Address))).scalars().one()
    await session.refresh(row)
    assert (row.street, row.customer_id, row.is_default) == ("文三路 90 号", alice.id, True)

    # Staff see customers.
    staff = gql.as_(token_for(settings, await make_staff(session)))
    assert (await staff(NODE, {"id": alice_id}))["node"]["phone"] == "13600000001"


CUSTOMERS = """
query($filter: CustomerFilter, $sort: CustomerSort, $first: Int, $after: String) {
  customers(first: $first, after: $after, filter: $filter, sort: $sort) {
    totalCount
    edges { node { email membershipTier tags } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_staff_customer_list_filters_and_pages(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    await make_customer(
        session,
        email="a@example.cn",
        first_name="小红",
        last_name="李",
        region="华东",
        city="上海",
        tags=["高价值", "vip"],
        membership_tier=MembershipTier.GOLD,
    )
    await make_customer(session, email="b@example.cn", region="华南", city="广州", tags=["沉睡"])
    await make_customer(
        session, email="c@example.cn", first_name="Lei", last_name="Zhang", tags=["vip"]
    )
    await make_customer(session, email="d_100%@example.cn", region="华东", city="杭州")
    staff = gql.as_(token_for(settings, await make_staff(session)))

    async def emails(flt: dict[str, Any], sort: dict[str, Any] | None = None) -> list[str]:
        data = await staff(
            CUSTOMERS, {"filter": flt, "sort": sort or {"field": "EMAIL", "direction": "ASC"}}
        )
        page = data["customers"]
        assert page["totalCount"] == len(page["edges"])
        return [e["node"]["email"] for e in page["edges"]]

    assert await emails({}) == ["a@example.cn", "b@example.cn", "c@example.cn", "d_100%@example.cn"]
    assert await emails({"tag": "vip"}) == ["a@example.cn", "c@example.cn"]
    assert await emails({"tag": "高价值"}) == ["a@example.cn"]
    assert await emails({"tag": "vi"}) == []
    assert await emails({"membershipTier": "GOLD"}) == ["a@example.cn"]
    assert await emails({"region": "华东"}) == ["a@example.cn", "d_100%@example.cn"]
    assert await emails({"region": "华东", "city": "杭州"}) == ["d_100%@example.cn"]
    assert await emails({"search": "李小红"}) == ["a@example.cn"]
    assert await emails({"search": "lei zh"}) == ["c@example.cn"]
    assert await emails({"search": "B@EXAMPLE"}) == ["b@example.cn"]
    # LIKE wildcards in the search are literal characters.
    assert await emails({"search": "_100%"}) == ["d_100%@example.cn"]
    assert await emails({"search": "%"}) == ["d_100%@example.cn"]
    assert await emails({}, {"field": "EMAIL", "direction": "DESC"}) == [
        "d_100%@example.cn",
        "c@example.cn",
        "b@example.cn",
        "a@example.cn",
    ]

    # Keyset pages of 3 then 1, newest first by default.
    seen: list[str] = []
    after = None
    while True:
        page = (await staff(CUSTOMERS, {"first": 3, "after": after}))["customers"]
        seen += [e["node"]["email"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["d_100%@example.cn", "c@example.cn", "b@example.cn", "a@example.cn"]


async def test_staff_only_queries_and_mutations_are_refused_to_others(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    as_customer = gql.as_(token_for(settings, customer))
    tier = """mutation($id: ID!) { setMembershipTier(input: {customerId: $id, tier: PLATINUM}) {
        __typename } }"""
    for client in (gql, as_customer):
        for query, variables in (
            ("{ customers(first: 1) { totalCount } }", {}),
            ("{ customerEvents(first: 1) { totalCount } }", {}),
            ("{ stockLevels(first: 1) { totalCount } }", {}),
            (tier, {"id": gid("Customer", customer.id)}),
        ):
            body = await client.execute(query, variables)
            assert body["data"] is None, query
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await session.refresh(customer)
    assert customer.membership_tier is MembershipTier.STANDARD


TAGS = """
mutation($id: ID!, $add: [String!]!, $remove: [String!]!, $tier: MembershipTier!) {
  addCustomerTags(input: {customerId: $id, tags: $add}) {
    __typename ... on AddCustomerTagsSuccess { customer { tags } } ... on Error { code field }
  }
  removeCustomerTags(input: {customerId: $id, tags: $remove}) {
    __typename ... on RemoveCustomerTagsSuccess { customer { tags } } ... on Error { code field }
  }
  setMembershipTier(input: {customerId: $id, tier: $tier}) {
    __typename ... on SetMembershipTierSuccess { customer { membershipTier } }
    ... on Error { code }
  }
}
"""


async def test_staff_tags_and_tiers(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session, tags=["新客"])
    staff = gql.as_(token_for(settings, await make_staff(session)))
    cid = gid("Customer", customer.id)
    data = await staff(
        TAGS, {"id": cid, "add": ["高价值", "新客", " 复购 "], "remove": ["新客"], "tier": "GOLD"}
    )
    assert data["addCustomerTags"]["customer"]["tags"] == ["新客", "高价值", "复购"]
    assert data["removeCustomerTags"]["customer"]["tags"] == ["高价值", "复购"]
    assert data["setMembershipTier"]["customer"]["membershipTier"] == "GOLD"

    missing = gid("Customer", 99_999)
    data = await staff(TAGS, {"id": missing, "add": ["x"], "remove": ["x"], "tier": "SILVER"})
    assert data["addCustomerTags"]["__typename"] == "NotFoundError"
    assert data["setMembershipTier"]["__typename"] == "NotFoundError"
    data = await staff(TAGS, {"id": cid, "add": [" "], "remove": [], "tier": "GOLD"})
    assert data["addCustomerTags"] == {
        "__typename": "ValidationError",
        "code": "VALIDATION_FAILED",
        "field": "tags",
    }


async def test_concurrent_tag_additions_all_land(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session)
    staff = gql.as_(token_for(settings, await make_staff(session)))
    query = """mutation($id: ID!, $tag: String!) {
        addCustomerTags(input: {customerId: $id, tags: [$tag]}) { __typename } }"""
    tags = [f"tag{i}" for i in range(12)]
    await asyncio.gather(
        *(staff(query, {"id": gid("Customer", customer.id), "tag": t}) for t in tags)
    )
    row = (
        await session.execute(
            select(Customer)
            .where(Customer.id == customer.id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert sorted(row.tags) == sorted(tags)
