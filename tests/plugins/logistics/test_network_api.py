"""The carrier network's admin API over HTTP: carriers and their secrets, service levels,
transit times, zones, rates, sites and pickup points; typed errors that change nothing;
logistics.read reads and logistics.manage writes; staff changes audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.logistics.models import Carrier, PickupPoint, Rate, Site, TransitTime, Zone
from server.config import Settings
from server.models import AuditLogEntry, StaffRole
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import gid, make_warehouse


@pytest.fixture
def settings(database_url: str) -> Settings:
    # An analyst who may read the network (and only read it).
    return Settings(
        database_url=database_url,
        env="test",
        cost_bucket_size=1_000_000,
        run_jobs=False,
        role_permissions={"ANALYST": ["logistics.read"]},
    )


ERR = "... on Error { __typename code message field }"
CARRIER = """id code name kind worksWeekends nonWorkingDays trackingPrefix active
webhookSecretHint services { id code level cutoffMinutes withinHours active }"""
CREATE_CARRIER = f"""mutation($input: CreateCarrierInput!) {{ createCarrier(input: $input) {{
  __typename ... on CarrierSecretSuccess {{ webhookSecret carrier {{ {CARRIER} }} }} {ERR} }} }}"""
UPDATE_CARRIER = f"""mutation($input: UpdateCarrierInput!) {{ updateCarrier(input: $input) {{
  __typename ... on CarrierSuccess {{ carrier {{ {CARRIER} }} }} {ERR} }} }}"""
ROTATE = f"""mutation($input: RotateCarrierSecretInput!) {{ rotateCarrierSecret(input: $input) {{
  __typename ... on CarrierSecretSuccess {{ webhookSecret carrier {{ webhookSecretHint }} }} {ERR}
}} }}"""
CREATE_SERVICE = f"""mutation($input: CreateCarrierServiceInput!) {{
  createCarrierService(input: $input) {{
  __typename ... on CarrierServiceSuccess {{ service {{ id code level withinHours }} }} {ERR}
}} }}"""
UPDATE_SERVICE = f"""mutation($input: UpdateCarrierServiceInput!) {{
  updateCarrierService(input: $input) {{
  __typename ... on CarrierServiceSuccess {{ service {{ id label cutoffMinutes active }} }} {ERR}
}} }}"""
SET_TRANSIT = f"""mutation($input: SetTransitTimesInput!) {{ setTransitTimes(input: $input) {{
  __typename ... on SetTransitTimesSuccess {{ times {{ fromRegion toRegion minDays maxDays }} }}
  {ERR} }} }}"""
SET_ZONES = f"""mutation($input: SetZonesInput!) {{ setZones(input: $input) {{
  __typename ... on SetZonesSuccess {{ zones {{ fromRegion toRegion zone }} }} {ERR} }} }}"""
SET_RATES = f"""mutation($input: SetRatesInput!) {{ setRates(input: $input) {{
  __typename ... on SetRatesSuccess {{ rates {{ zone firstGrams firstAmount {{ amount }}
  extraAmount {{ amount }} freeOver {{ amount }} }} }} {ERR} }} }}"""
UPSERT_SITE = f"""mutation($input: UpsertSiteInput!) {{ upsertSite(input: $input) {{
  __typename ... on SiteSuccess {{ site {{ province city latitude longitude sameDayRadiusKm
  carrierIds warehouse {{ code }} }} }} {ERR} }} }}"""
CREATE_POINT = f"""mutation($input: CreatePickupPointInput!) {{
  createPickupPoint(input: $input) {{ __typename
  ... on PickupPointSuccess {{ pickupPoint {{ id code kind city latitude hours readyHours
  warehouse {{ code }} }} }} {ERR} }} }}"""
UPDATE_POINT = f"""mutation($input: UpdatePickupPointInput!) {{
  updatePickupPoint(input: $input) {{ __typename
  ... on PickupPointSuccess {{ pickupPoint {{ name hours active }} }} {ERR} }} }}"""
READ = """query($sid: ID!) {
  carriers(includeInactive: true) { code webhookSecretHint services { code } }
  logisticsSites { city warehouse { code } }
  transitTimes(serviceId: $sid) { nodes { fromRegion toRegion minDays maxDays } }
  rates(serviceId: $sid) { nodes { zone firstAmount { amount } } }
  zones { fromRegion toRegion zone }
}"""


async def _count(session: AsyncSession, model: Any) -> int:
    await session.commit()
    found = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    await session.commit()
    return found


async def test_staff_keep_the_carrier_network(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin = gql.as_(token_for(settings, await make_staff(session)))
    warehouse = await make_warehouse(session, code="HZ-1")

    made = (
        await admin(
            CREATE_CARRIER,
            {
                "input": {
                    "code": "SF",
                    "name": "顺丰速运",
                    "worksWeekends": False,
                    "nonWorkingDays": ["2026-02-17", "2026-02-16", "2026-02-17"],
                    "trackingPrefix": "SF",
                }
            },
        )
    )["createCarrier"]
    assert made["__typename"] == "CarrierSecretSuccess"
    secret = made["webhookSecret"]
    assert len(secret) >= 40
    carrier = made["carrier"]
    # The secret is shown once; afterwards only its last four characters.
    assert carrier["webhookSecretHint"] == f"••••{secret[-4:]}"
    assert carrier["nonWorkingDays"] == ["2026-02-16", "2026-02-17"]
    assert (carrier["kind"], carrier["worksWeekends"]) == ("THIRD_PARTY", False)
    rotated = (await admin(ROTATE, {"input": {"id": carrier["id"]}}))["rotateCarrierSecret"]
    assert rotated["webhookSecret"] != secret
    await session.commit()
    stored = await session.scalar(select(Carrier.webhook_secret))
    await session.commit()
    assert stored == rotated["webhookSecret"]

    duplicate = (await admin(CREATE_CARRIER, {"input": {"code": "SF", "name": "又一个"}}))[
        "createCarrier"
    ]
    assert (duplicate["__typename"], duplicate["field"]) == ("ConflictError", "code")
    updated = (
        await admin(
            UPDATE_CARRIER, {"input": {"id": carrier["id"], "kind": "ALLIANCE", "name": "顺丰"}}
        )
    )["updateCarrier"]["carrier"]
    assert (updated["name"], updated["kind"], updated["trackingPrefix"]) == (
        "顺丰",
        "ALLIANCE",
        "SF",
    )

    # Service levels: SAME_DAY needs its hours.
    no_hours = (
        await admin(
            CREATE_SERVICE,
            {
                "input": {
                    "carrierId": carrier["id"],
                    "code": "SF-NOW",
                    "label": "即时达",
                    "level": "SAME_DAY",
                }
            },
        )
    )["createCarrierService"]
    assert (no_hours["__typename"], no_hours["field"]) == ("ValidationError", "withinHours")
    service = (
        await admin(
            CREATE_SERVICE,
            {
                "input": {
                    "carrierId": carrier["id"],
                    "code": "SF-STD",
                    "label": "标快",
                    "cutoffMinutes": 1020,
                }
            },
        )
    )["createCarrierService"]["service"]
    changed = (await admin(UPDATE_SERVICE, {"input": {"id": service["id"], "cutoffMinutes": 960}}))[
        "updateCarrierService"
    ]["service"]
    assert (changed["label"], changed["cutoffMinutes"], changed["active"]) == ("标快", 960, True)

    # Tables: upserts by key, names as the city table spells them.
    times = (
        await admin(
            SET_TRANSIT,
            {
                "input": {
                    "serviceId": service["id"],
                    "times": [
                        {"fromRegion": "浙江", "toRegion": "*", "minDays": 2, "maxDays": 4},
                        {"fromRegion": "浙江省", "toRegion": "上海", "minDays": 1, "maxDays": 2},
                    ],
                }
            },
        )
    )["setTransitTimes"]["times"]
    assert times[1] == {"fromRegion": "浙江省", "toRegion": "上海市", "minDays": 1, "maxDays": 2}
    again = (
        await admin(
            SET_TRANSIT,
            {
                "input": {
                    "serviceId": service["id"],
                    "times": [
                        {"fromRegion": "浙江", "toRegion": "上海", "minDays": 1, "maxDays": 1}
                    ],
                }
            },
        )
    )["setTransitTimes"]
    assert again["__typename"] == "SetTransitTimesSuccess"
    assert await _count(session, TransitTime) == 2
    zones = (
        await admin(
            SET_ZONES,
            {"input": {"zones": [{"fromRegion": "浙江", "toRegion": "广东", "zone": 3}]}},
        )
    )["setZones"]["zones"]
    assert zones == [{"fromRegion": "浙江省", "toRegion": "广东省", "zone": 3}]
    rates = (
        await admin(
            SET_RATES,
            {
                "input": {
                    "serviceId": service["id"],
                    "rates": [
                        {"zone": 1, "firstAmount": "12", "extraAmount": "2.50", "freeOver": "99"},
                        {"zone": 3, "firstGrams": 500, "firstAmount": "18.8"},
                    ],
                }
            },
        )
    )["setRates"]["rates"]
    assert [(r["zone"], r["firstAmount"]["amount"], r["extraAmount"]["amount"]) for r in rates] == [
        (1, "12.00", "2.50"),
        (3, "18.80", "0.00"),
    ]
    assert rates[0]["freeOver"] == {"amount": "99.00"}
    await session.commit()
    assert await session.scalar(select(Rate.extra_amount).where(Rate.zone == 1)) == 250
    await session.commit()

    # A site: coordinates from the city table unless given; carriers by id.
    site = (
        await admin(
            UPSERT_SITE,
            {
                "input": {
                    "warehouseId": gid("Warehouse", warehouse.id),
                    "province": "浙江",
                    "city": "杭州",
                    "sameDayRadiusKm": 15,
                    "carrierIds": [carrier["id"]],
                }
            },
        )
    )["upsertSite"]["site"]
    assert (site["province"], site["city"], site["warehouse"]) == (
        "浙江省",
        "杭州市",
        {"code": "HZ-1"},
    )
    assert (site["latitude"], site["longitude"]) == (30.2469, 120.2098)
    assert site["carrierIds"] == [carrier["id"]]
    moved = (
        await admin(
            UPSERT_SITE,
            {
                "input": {
                    "warehouseId": gid("Warehouse", warehouse.id),
                    "province": "浙江",
                    "city": "杭州",
                    "latitude": 30.3,
                    "longitude": 120.1,
                }
            },
        )
    )["upsertSite"]["site"]
    assert (moved["latitude"], moved["longitude"], moved["carrierIds"]) == (30.3, 120.1, [])
    assert await _count(session, Site) == 1

    # A pickup point; hours sorted and kept.
    point = (
        await admin(
            CREATE_POINT,
            {
                "input": {
                    "code": "HZ-LOCKER-1",
                    "name": "文三路丰巢柜",
                    "kind": "LOCKER",
                    "warehouseId": gid("Warehouse", warehouse.id),
                    "province": "浙江",
                    "city": "杭州",
                    "hours": {"sat": [["13:00", "18:00"], ["08:00", "12:00"]], "mon": []},
                }
            },
        )
    )["createPickupPoint"]["pickupPoint"]
    assert point["hours"] == {"sat": [["08:00", "12:00"], ["13:00", "18:00"]]}
    assert (point["kind"], point["warehouse"]) == ("LOCKER", {"code": "HZ-1"})
    closed = (
        await admin(
            UPDATE_POINT,
            {"input": {"id": point["id"], "active": False, "hours": {"sun": [["00:00", "24:00"]]}}},
        )
    )["updatePickupPoint"]["pickupPoint"]
    assert closed == {
        "name": "文三路丰巢柜",
        "hours": {"sun": [["00:00", "24:00"]]},
        "active": False,
    }

    # Reading it all back.
    data = await admin(READ, {"sid": service["id"]})
    assert data["carriers"] == [
        {
            "code": "SF",
            "webhookSecretHint": f"••••{rotated['webhookSecret'][-4:]}",
            "services": [{"code": "SF-STD"}],
        }
    ]
    assert data["logisticsSites"] == [{"city": "杭州市", "warehouse": {"code": "HZ-1"}}]
    assert data["transitTimes"]["nodes"] == [
        {"fromRegion": "浙江省", "toRegion": "*", "minDays": 2, "maxDays": 4},
        {"fromRegion": "浙江省", "toRegion": "上海市", "minDays": 1, "maxDays": 1},
    ]
    assert [r["zone"] for r in data["rates"]["nodes"]] == [1, 3]
    assert data["zones"] == [{"fromRegion": "浙江省", "toRegion": "广东省", "zone": 3}]

    # Every change is in the audit log.
    await session.commit()
    audited = set(await session.scalars(select(AuditLogEntry.mutation)))
    await session.commit()
    assert {
        "createCarrier",
        "rotateCarrierSecret",
        "updateCarrier",
        "createCarrierService",
        "setTransitTimes",
        "setRates",
        "upsertSite",
        "createPickupPoint",
    } <= audited


BAD_HOURS = [
    ({"mon": [["09:00", "12:00"], ["11:00", "18:00"]]}, "hours.mon"),  # overlapping
    ({"tue": [["18:00", "09:00"]]}, "hours.tue"),  # closes before it opens
    ({"wed": [["9:00", "18:00"]]}, "hours.wed"),  # not HH:MM
    ({"holiday": [["09:00", "18:00"]]}, "hours"),  # not a day
    ({"thu": [["09:00"]]}, "hours.thu"),  # no closing time
    ({"fri": [["09:00", "24:01"]]}, "hours.fri"),
]


async def test_bad_hours_are_refused(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin = gql.as_(token_for(settings, await make_staff(session)))
    warehouse = await make_warehouse(session)
    for hours, field in BAD_HOURS:
        refused = (
            await admin(
                CREATE_POINT,
                {
                    "input": {
                        "code": "P1",
                        "name": "门店",
                        "warehouseId": gid("Warehouse", warehouse.id),
                        "province": "浙江",
                        "city": "杭州",
                        "hours": hours,
                    }
                },
            )
        )["createPickupPoint"]
        assert (refused["__typename"], refused["field"]) == ("ValidationError", field), hours
    assert await _count(session, PickupPoint) == 0


async def test_bad_input_changes_nothing_and_readers_cannot_write(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin = gql.as_(token_for(settings, await make_staff(session)))
    analyst = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.ANALYST)))
    buyer = gql.as_(token_for(settings, await make_customer(session)))
    warehouse = await make_warehouse(session)
    carrier = (await admin(CREATE_CARRIER, {"input": {"code": "ZTO", "name": "中通"}}))[
        "createCarrier"
    ]["carrier"]
    service = (
        await admin(
            CREATE_SERVICE,
            {"input": {"carrierId": carrier["id"], "code": "ZTO-STD", "label": "标准"}},
        )
    )["createCarrierService"]["service"]

    async def refused(document: str, name: str, input: dict[str, Any]) -> tuple[str, str]:
        answer = (await admin(document, {"input": input}))[name]
        return answer["__typename"], answer["field"]

    # One bad row spoils the batch: nothing of it is written.
    assert await refused(
        SET_TRANSIT,
        "setTransitTimes",
        {
            "serviceId": service["id"],
            "times": [
                {"fromRegion": "浙江", "toRegion": "上海", "minDays": 1, "maxDays": 2},
                {"fromRegion": "浙江", "toRegion": "上海", "minDays": 3, "maxDays": 2},
            ],
        },
    ) == ("ValidationError", "times.1.maxDays")
    assert await refused(
        SET_TRANSIT,
        "setTransitTimes",
        {
            "serviceId": service["id"],
            "times": [{"fromRegion": "火星", "toRegion": "*", "minDays": 1, "maxDays": 2}],
        },
    ) == ("ValidationError", "times.0.fromRegion")
    assert await refused(
        SET_ZONES, "setZones", {"zones": [{"fromRegion": "浙江", "toRegion": "*", "zone": 0}]}
    ) == ("ValidationError", "zones.0.zone")
    assert await refused(
        SET_RATES,
        "setRates",
        {"serviceId": service["id"], "rates": [{"zone": 1, "firstAmount": "12.345"}]},
    ) == ("ValidationError", "rates.0.firstAmount")
    assert await refused(
        SET_RATES,
        "setRates",
        {
            "serviceId": gid("LogisticsCarrierService", 9999),
            "rates": [{"zone": 1, "firstAmount": "1"}],
        },
    ) == ("NotFoundError", "serviceId")
    assert await refused(
        UPSERT_SITE,
        "upsertSite",
        {"warehouseId": gid("Warehouse", warehouse.id), "province": "浙江", "city": "不存在"},
    ) == ("ValidationError", "city")
    assert await refused(
        UPSERT_SITE,
        "upsertSite",
        {"warehouseId": gid("Warehouse", 99999), "province": "浙江", "city": "杭州"},
    ) == ("NotFoundError", "warehouseId")
    assert await refused(
        UPSERT_SITE,
        "upsertSite",
        {
            "warehouseId": gid("Warehouse", warehouse.id),
            "province": "浙江",
            "city": "杭州",
            "carrierIds": [gid("LogisticsCarrier", 9999)],
        },
    ) == ("NotFoundError", "carrierIds")
    assert await refused(CREATE_CARRIER, "createCarrier", {"code": "bad code!", "name": "x"}) == (
        "ValidationError",
        "code",
    )
    for model in (TransitTime, Zone, Rate, Site):
        assert await _count(session, model) == 0

    # logistics.read reads; only logistics.manage writes; customers see nothing.
    read = await analyst.execute(READ, {"sid": service["id"]})
    assert "errors" not in read and [c["code"] for c in read["data"]["carriers"]] == ["ZTO"]
    denied = await analyst.execute(CREATE_CARRIER, {"input": {"code": "YTO", "name": "圆通"}})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    hidden = await buyer.execute(READ, {"sid": service["id"]})
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await _count(session, Carrier) == 1
