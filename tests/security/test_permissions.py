"""Staff roles → permissions: what each role may do, plugin permissions, settings extensions."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import StaffRole
from server.permissions import CORE_PERMISSIONS, RoleMap, UnknownPermission
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient

UPDATE_PRODUCT = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) {
    __typename
    ... on UpdateProductSuccess { product { name } }
    ... on Error { code message }
  }
}
"""

PRODUCT_COST = """
query($id: ID!) { node(id: $id) { ... on Product { name costPrice { amount } margin { amount { amount } } } } }
"""


def product_gid(pk: int | None) -> str:
    from strawberry import relay

    return str(relay.GlobalID("Product", str(pk)))


async def test_support_staff_cannot_change_products_but_catalog_staff_can(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, name="龙井茶 Longjing tea")
    variables = {"input": {"id": product_gid(product.id), "name": "明前龙井"}}
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    refused = await support.execute(UPDATE_PRODUCT, variables)
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "catalog.manage" in refused["errors"][0]["message"]
    await session.refresh(product)
    assert product.name == "龙井茶 Longjing tea"

    catalog = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.CATALOG)))
    done = (await catalog(UPDATE_PRODUCT, variables))["updateProduct"]
    assert done == {"__typename": "UpdateProductSuccess", "product": {"name": "明前龙井"}}


async def test_cost_price_and_margin_need_pricing_or_catalog_permission(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, price="99.00", cost="60.00")
    variables = {"id": product_gid(product.id)}
    for role in (StaffRole.CATALOG, StaffRole.ADMIN):
        staff = gql.as_(token_for(settings, await make_staff(session, role=role)))
        node = (await staff(PRODUCT_COST, variables))["node"]
        assert node["costPrice"] == {"amount": "60.00"}, role
        assert node["margin"]["amount"]["amount"] == "39.00", role
    customer = gql.as_(token_for(settings, await make_customer(session)))
    for who in (
        gql,
        customer,
        gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT))),
    ):
        body = await who.execute(PRODUCT_COST, variables)
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes == {"FORBIDDEN"}
        assert {tuple(e["path"][1:]) for e in body["errors"]} == {("costPrice",), ("margin",)}


async def test_customer_pii_needs_customers_read(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    customer = await make_customer(session, email="pii@shop.cn", phone="13900001111")
    from strawberry import relay

    query = "query($id: ID!) { node(id: $id) { ... on Customer { email phone } } }"
    variables = {"id": str(relay.GlobalID("Customer", str(customer.id)))}
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    assert (await support(query, variables))["node"] == {
        "email": "pii@shop.cn",
        "phone": "13900001111",
    }
    for role in (StaffRole.CATALOG, StaffRole.LOGISTICS):
        staff = gql.as_(token_for(settings, await make_staff(session, role=role)))
        assert (await staff(query, variables))["node"] is None, role
        listing = await staff.execute("{ customers(first: 5) { totalCount } }")
        assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN", role


async def test_viewer_permissions_follow_the_role(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    query = "{ viewerPermissions }"
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    admin_perms = set((await admin(query))["viewerPermissions"])
    assert set(CORE_PERMISSIONS) <= admin_perms
    logistics = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.LOGISTICS)))
    held = set((await logistics(query))["viewerPermissions"])
    assert {"shipments.manage", "stock.manage"} <= held
    assert not held & {"catalog.manage", "pricing.manage", "customers.read", "audit.read"}
    assert (await gql(query))["viewerPermissions"] == []
    roles = (await admin("{ roles { name permissions } }"))["roles"]
    assert {r["name"] for r in roles} == {r.value for r in StaffRole}
    refused = await logistics.execute("{ roles { name } }")
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_plugin_permissions_go_to_admin_and_settings_extend_roles() -> None:
    settings = Settings(role_permissions={"support": ["complaints.manage", "catalog.manage"]})
    roles = RoleMap.build(settings, ["complaints.manage"])
    assert "complaints.manage" in roles.for_role("ADMIN")
    assert {"complaints.manage", "catalog.manage"} <= roles.for_role("SUPPORT")
    assert "complaints.manage" not in roles.for_role("CATALOG")
    assert roles.for_role("NOBODY") == frozenset()
    with pytest.raises(UnknownPermission, match="complaints.manage"):
        RoleMap.build(Settings(role_permissions={"SUPPORT": ["complaints.manage"]}), [])
    with pytest.raises(UnknownPermission, match="role"):
        RoleMap.build(Settings(role_permissions={"BOSS": ["catalog.read"]}), [])


async def test_permissions_query_lists_core_and_plugin_permissions(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, plugins: object
) -> None:
    admin = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ADMIN)))
    listed = (await admin("{ permissions { name source } }"))["permissions"]
    names = {p["name"]: p["source"] for p in listed}
    assert {n: "core" for n in CORE_PERMISSIONS}.items() <= names.items()
    for name, plugin in plugins.permissions.items():  # type: ignore[attr-defined]
        assert names[name] == plugin
    assert (await gql.execute("{ permissions { name } }"))["errors"][0]["extensions"][
        "code"
    ] == "FORBIDDEN"
