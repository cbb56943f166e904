"""Staff administration of promotions and campaigns over HTTP, on SQLite and PostgreSQL:
creating with every check a typed error that writes nothing, status moves, updates that keep
the counters, the lists (filters, sort, keyset pages, statements that do not grow with the
page), who sees a promotion, and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

from plugins.promotions.models import Campaign, CustomerUse, Promotion
from server.models import AuditLogEntry, utcnow
from tests.plugins.promotions.admin_support import (
    READ_ONLY_ROLES,
    Seeded,
    as_,
    database,
    pk_of,
    seed,
)
from tests.support.graphql import GraphQLClient
from tests.support.module_shop import ModuleShop, module_shop
from tests.support.orders import gid
from tests.support.statements import counting

FIELDS = """id name label kind promotionClass trigger status productIds categoryIds variantIds
  membershipTier combinableWith priority totalLimit perCustomerLimit unitLimit usedCount
  unitsSold remaining remainingUnits rules onReturn campaign { id name }"""
RESULT = f"""__typename ... on PromotionSuccess {{ promotion {{ {FIELDS} }} }}
  ... on Error {{ code message field }}"""
CREATE = f"""mutation($input: CreatePromotionInput!) {{ createPromotion(input: $input) {{
  {RESULT} }} }}"""
UPDATE = f"""mutation($input: UpdatePromotionInput!) {{ updatePromotion(input: $input) {{
  {RESULT} }} }}"""
MOVE = """mutation($id: ID!) {
  pause: pausePromotion(input: {id: $id}) { __typename ... on PromotionSuccess {
    promotion { status } } ... on Error { code field } } }"""
NODE = "query($id: ID!) { node(id: $id) { __typename ... on Promotion { id name usedCount } } }"
CAMPAIGN = """__typename ... on CampaignSuccess { campaign { id name budget { amount currency }
  budgetUses spent { amount } usedCount status exhaustedAt } } ... on Error { code field }"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleShop]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOPGRAPH_ROLE_PERMISSIONS", READ_ONLY_ROLES)
        with module_shop(request, tmp_path_factory, seed) as built:
            yield built


@pytest.fixture
async def gql(shop: ModuleShop) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=60) as http:
        yield GraphQLClient(http)


def spend_save(seeded: Seeded, **extra: Any) -> dict[str, Any]:
    """满300减40 over the first product (amounts in minor units)."""
    return {
        "name": "满300减40",
        "kind": "SPEND_SAVE",
        "rules": {"tiers": [{"threshold": 30000, "amount_off": 4000}]},
        "productIds": [gid("Product", seeded.product_ids[0])],
        **extra,
    }


async def create(gql: GraphQLClient, promotion: dict[str, Any]) -> dict[str, Any]:
    data = await gql(CREATE, {"input": {"promotion": promotion}})
    result: dict[str, Any] = data["createPromotion"]
    return result


async def test_staff_create_a_promotion_and_only_staff_who_may_read_it_see_it(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    made = await create(
        manager,
        spend_save(
            seeded,
            combinableWith=["PRODUCT", "SHIPPING"],
            totalLimit=50,
            categoryIds=[gid("Category", seeded.category_id)],
        ),
    )
    assert made["__typename"] == "PromotionSuccess", made
    promotion = made["promotion"]
    assert promotion["label"] == "满300减40"  # the name, when no label is given
    assert (promotion["kind"], promotion["promotionClass"], promotion["trigger"]) == (
        "SPEND_SAVE",
        "ORDER",
        "AUTOMATIC",
    )
    assert promotion["status"] == "ACTIVE"
    assert promotion["rules"] == {"tiers": [{"threshold": 30000, "amount_off": 4000}]}
    assert promotion["productIds"] == [gid("Product", seeded.product_ids[0])]
    assert promotion["categoryIds"] == [gid("Category", seeded.category_id)]
    assert promotion["combinableWith"] == ["PRODUCT", "SHIPPING"]
    assert (promotion["usedCount"], promotion["remaining"], promotion["remainingUnits"]) == (
        0,
        50,
        None,
    )
    assert promotion["onReturn"] == "CLAW_BACK"

    node = {"id": promotion["id"]}
    assert (await manager(NODE, node))["node"]["name"] == "满300减40"
    assert (await as_(gql, shop, seeded.reader)(NODE, node))["node"]["name"] == "满300减40"
    # Staff without promotions.read and customers are answered as for a missing id.
    assert (await as_(gql, shop, seeded.outsider)(NODE, node))["node"] is None
    assert (await as_(gql, shop, seeded.customer)(NODE, node))["node"] is None
    assert (await gql(NODE, node))["node"] is None

    # Reading is not managing: the read-only staff and customers cannot create.
    for who in (seeded.reader, seeded.customer):
        body = await as_(gql, shop, who).execute(
            CREATE, {"input": {"promotion": spend_save(seeded)}}
        )
        assert body["data"] is None and body["errors"]

    async with database(shop) as session:
        audited = list(
            await session.scalars(
                select(AuditLogEntry).where(
                    col(AuditLogEntry.mutation) == "createPromotion",
                    col(AuditLogEntry.staff_id) == seeded.manager.id,
                )
            )
        )
    assert [a.result for a in audited][:1] == ["PromotionSuccess"]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"rules": {"tiers": []}}, "VALIDATION_FAILED", "rules"),
        ({"rules": "30000"}, "VALIDATION_FAILED", "rules"),
        ({"kind": "MEMBER_DEAL", "rules": {"percent_off_bp": 1000}}, "VALIDATION_FAILED",
         "membershipTier"),
        ({"membershipTier": "GOLD", "tag": "vip"}, "VALIDATION_FAILED", "membershipTier"),
        ({"kind": "COUPON", "rules": {"amount_off": 500}}, "VALIDATION_FAILED", "trigger"),
        ({"combinableWith": ["ORDER"]}, "VALIDATION_FAILED", "combinableWith"),
        ({"endsAt": "2026-01-01T00:00:00Z", "startsAt": "2026-02-01T00:00:00Z"},
         "VALIDATION_FAILED", "endsAt"),
        ({"totalLimit": 0}, "VALIDATION_FAILED", "totalLimit"),
        ({"productIds": ["UHJvZHVjdDo5ODc2NTQ="]}, "NOT_FOUND", "productIds"),
        ({"productIds": ["not-an-id"]}, "NOT_FOUND", "productIds"),
        ({"campaignId": "Q2FtcGFpZ246OTg3NjU0"}, "NOT_FOUND", "campaignId"),
        ({"kind": "SPEND_GIFT", "rules": {"tiers": [{"threshold": 100, "variant_id": 987654}]}},
         "NOT_FOUND", "variantIds"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_typed_error_and_writes_nothing(
    shop: ModuleShop, gql: GraphQLClient, change: dict[str, Any], code: str, field: str
) -> None:
    seeded: Seeded = shop.seeded
    async with database(shop) as session:
        before = await session.scalar(select(func.count()).select_from(Promotion))
    result = await create(as_(gql, shop, seeded.manager), {**spend_save(seeded), **change})
    assert (result["code"], result["field"]) == (code, field), result
    async with database(shop) as session:
        assert await session.scalar(select(func.count()).select_from(Promotion)) == before


async def test_status_moves_and_ended_is_final(shop: ModuleShop, gql: GraphQLClient) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    pid = (await create(manager, spend_save(seeded)))["promotion"]["id"]

    async def move(name: str) -> dict[str, Any]:
        query = MOVE.replace("pausePromotion", name)
        answer: dict[str, Any] = (await manager(query, {"id": pid}))["pause"]
        return answer

    assert (await move("pausePromotion"))["promotion"]["status"] == "PAUSED"
    assert (await move("pausePromotion"))["code"] == "INVALID_TRANSITION"
    assert (await move("resumePromotion"))["promotion"]["status"] == "ACTIVE"
    assert (await move("endPromotion"))["promotion"]["status"] == "ENDED"
    for again in ("resumePromotion", "pausePromotion", "endPromotion"):
        assert (await move(again))["code"] == "INVALID_TRANSITION"
    refused = (await manager(UPDATE, {"input": {"id": pid, "promotion": spend_save(seeded)}}))[
        "updatePromotion"
    ]
    assert refused["code"] == "INVALID_TRANSITION"
    missing = MOVE.replace("pausePromotion", "pausePromotion")
    gone = (await manager(missing, {"id": gid("Promotion", 987654)}))["pause"]
    assert (gone["__typename"], gone["field"]) == ("NotFoundError", "id")


async def test_an_update_never_sets_a_limit_below_what_was_used(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    made = (await create(manager, spend_save(seeded, totalLimit=10, unitLimit=10)))["promotion"]
    pk = pk_of(made["id"])
    async with database(shop) as session:
        await session.execute(
            update(Promotion).where(col(Promotion.id) == pk).values(used_count=3, units_sold=5)
        )
        session.add(CustomerUse(promotion_id=pk, customer_id=seeded.customer.id or 0, uses=2))
        await session.commit()

    async def change(**extra: Any) -> dict[str, Any]:
        body = {"input": {"id": made["id"], "promotion": spend_save(seeded, **extra)}}
        result: dict[str, Any] = (await manager(UPDATE, body))["updatePromotion"]
        return result

    assert (await change(totalLimit=2))["field"] == "totalLimit"
    assert (await change(unitLimit=4))["field"] == "unitLimit"
    assert (await change(perCustomerLimit=1))["field"] == "perCustomerLimit"
    used_kind = await change(kind="FREE_SHIPPING", rules={"min_spend": 0})
    assert (used_kind["code"], used_kind["field"]) == ("VALIDATION_FAILED", "kind")

    kept = await change(totalLimit=3, unitLimit=5, perCustomerLimit=2, name="满300减50",
                        rules={"tiers": [{"threshold": 30000, "amount_off": 5000}]})  # fmt: skip
    assert kept["__typename"] == "PromotionSuccess", kept
    promotion = kept["promotion"]
    assert (promotion["name"], promotion["remaining"], promotion["remainingUnits"]) == (
        "满300减50",
        0,
        0,
    )
    assert (promotion["usedCount"], promotion["unitsSold"]) == (3, 5)  # counters untouched


LIST = """query($filter: PromotionFilter, $sort: PromotionSort, $first: Int, $after: String) {
  promotions(filter: $filter, sort: $sort, first: $first, after: $after) {
    edges { node { name priority status campaign { name } } }
    pageInfo { hasNextPage endCursor } } }"""


async def test_the_list_filters_sorts_and_pages_in_a_fixed_number_of_statements(
    shop: ModuleShop, gql: GraphQLClient
) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    campaign = (
        await manager(
            f'mutation {{ createCampaign(input: {{campaign: {{name: "双11"}}}}) {{ {CAMPAIGN} }} }}'
        )
    )["createCampaign"]["campaign"]
    now = utcnow()
    for priority in (3, 1, 2, 5, 4):
        made = await create(
            manager, spend_save(seeded, name=f"P{priority}", priority=priority,
                                campaignId=campaign["id"])
        )  # fmt: skip
        assert made["__typename"] == "PromotionSuccess"
    later = spend_save(seeded, name="P9", priority=9, campaignId=campaign["id"],
                       startsAt=(now + timedelta(days=3)).isoformat())  # fmt: skip
    await create(manager, later)
    paused = await create(manager, spend_save(seeded, name="P0", campaignId=campaign["id"]))
    await manager(MOVE, {"id": paused["promotion"]["id"]})

    flt = {"campaignId": campaign["id"]}
    by_priority = {"field": "PRIORITY", "direction": "DESC"}
    names: list[str] = []
    after = None
    while True:
        page = (await manager(LIST, {"filter": flt, "sort": by_priority, "first": 3,
                                     "after": after}))["promotions"]  # fmt: skip
        names += [e["node"]["name"] for e in page["edges"]]
        assert all(e["node"]["campaign"]["name"] == "双11" for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert names == ["P9", "P5", "P4", "P3", "P2", "P1", "P0"]

    running = {**flt, "runningAt": now.isoformat()}
    page = (await manager(LIST, {"filter": running, "sort": by_priority}))["promotions"]
    assert [e["node"]["name"] for e in page["edges"]] == ["P5", "P4", "P3", "P2", "P1"]
    page = (await manager(LIST, {"filter": {**flt, "status": "PAUSED"}}))["promotions"]
    assert [e["node"]["name"] for e in page["edges"]] == ["P0"]
    # A filter id that names no campaign finds nothing.
    nothing = {"campaignId": "bm90aGluZw=="}
    assert (await manager(LIST, {"filter": nothing}))["promotions"]["edges"] == []

    # Campaigns are loaded in one batch: a longer page runs no more statements.
    sizes = []
    for first in (1, 6):
        with counting(shop.app) as statements:
            await manager(LIST, {"filter": flt, "first": first})
        sizes.append(len(statements))
    assert sizes[0] == sizes[1]


async def test_campaign_budgets_window_and_status(shop: ModuleShop, gql: GraphQLClient) -> None:
    seeded: Seeded = shop.seeded
    manager = as_(gql, shop, seeded.manager)
    create_campaign = f"""mutation($input: CreateCampaignInput!) {{
      createCampaign(input: $input) {{ {CAMPAIGN} }} }}"""
    update_campaign = f"""mutation($input: UpdateCampaignInput!) {{
      updateCampaign(input: $input) {{ {CAMPAIGN} }} }}"""
    made = (
        await manager(
            create_campaign,
            {"input": {"campaign": {"name": "618", "budgetAmount": "1000.50", "budgetUses": 20}}},
        )
    )["createCampaign"]
    campaign = made["campaign"]
    assert campaign["budget"] == {"amount": "1000.50", "currency": "CNY"}
    assert (campaign["budgetUses"], campaign["spent"]["amount"], campaign["status"]) == (
        20,
        "0.00",
        "ACTIVE",
    )
    bad = (
        await manager(
            create_campaign, {"input": {"campaign": {"name": "x", "budgetAmount": "1.001"}}}
        )
    )["createCampaign"]
    assert (bad["code"], bad["field"]) == ("VALIDATION_FAILED", "budgetAmount")

    pk = pk_of(campaign["id"])
    async with database(shop) as session:
        await session.execute(
            update(Campaign).where(col(Campaign.id) == pk).values(spent_amount=60000)
        )
        await session.commit()
    # Lowered to what was spent: stopped at once; raised above it: running again.
    lowered = {"name": "618", "budgetAmount": "600.00"}
    done = await manager(update_campaign, {"input": {"id": campaign["id"], "campaign": lowered}})
    assert done["updateCampaign"]["campaign"]["exhaustedAt"] is not None
    raised = {"name": "618", "budgetAmount": "600.01"}
    done = await manager(update_campaign, {"input": {"id": campaign["id"], "campaign": raised}})
    assert done["updateCampaign"]["campaign"]["exhaustedAt"] is None

    move = """mutation($id: ID!) { m: %s(input: {id: $id}) { __typename
      ... on CampaignSuccess { campaign { status } } ... on Error { code } } }"""
    answer = await manager(move % "pauseCampaign", {"id": campaign["id"]})
    assert answer["m"]["campaign"]["status"] == "PAUSED"
    answer = await manager(move % "endCampaign", {"id": campaign["id"]})
    assert answer["m"]["campaign"]["status"] == "ENDED"
    answer = await manager(move % "pauseCampaign", {"id": campaign["id"]})
    assert answer["m"]["code"] == "INVALID_TRANSITION"

    listed = await as_(gql, shop, seeded.reader)(
        "{ campaigns(first: 100, status: ENDED) { edges { node { name } } } }"
    )
    assert [e["node"]["name"] for e in listed["campaigns"]["edges"]] == ["618"]
