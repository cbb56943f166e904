"""A/B experiments through the API, on SQLite and PostgreSQL: defining, starting and stopping
them (typed errors that change nothing), who may, shoppers' sticky variants and their one
exposure under concurrency, and results on a shop whose counts are known."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from server.config import Settings
from server.models import (
    Customer,
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    Order,
    OrderStatus,
    StaffRole,
    StaffUser,
)
from server.permissions import INSIGHTS_READ, RoleMap
from server.services import apikeys, experiment_stats
from server.services.experiments import Variant, assign
from tests.support.accounts import make_customer, token_for
from tests.support.graphql import GraphQLClient

EXPERIMENT_FIELDS = """id key name hypothesis primaryMetric status minSampleSize startedAt
  stoppedAt variants { key weight isControl }"""

CREATE = f"""mutation($input: CreateExperimentInput!) {{ createExperiment(input: $input) {{
  __typename
  ... on CreateExperimentSuccess {{ experiment {{ {EXPERIMENT_FIELDS} }} }}
  ... on Error {{ code message field }} }} }}"""

MOVE = """mutation($key: String!) {
  start: startExperiment(input: {key: $key}) {
    __typename ... on StartExperimentSuccess { experiment { status startedAt } }
    ... on InvalidTransition { current target } ... on Error { code field } } }"""
STOP = """mutation($key: String!) {
  stop: stopExperiment(input: {key: $key}) {
    __typename ... on StopExperimentSuccess { experiment { status stoppedAt } }
    ... on InvalidTransition { current target } ... on Error { code field } } }"""

LIST = """query($status: ExperimentStatus) {
  experiments(first: 20, filter: {status: $status}) { totalCount nodes { key status } }
}"""
ONE = f"""query($key: String!) {{ experiment(key: $key) {{ {EXPERIMENT_FIELDS} }} }}"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Experiment { key } } }"
VARIANT = """query($key: String!, $sid: String) { experimentVariant(key: $key, sessionId: $sid) }"""

RESULTS = """query($key: String!) { experiment(key: $key) { results {
  primaryMetric outcome conclusive winner reason alpha minSampleSize currency
  variants { variant isControl weight visitors converters orders gmv
    conversionRate { estimate low high }
    gmvPerVisitor { estimate low high }
    aov { estimate low high }
    conversionVsControl { difference { estimate low high } relativeLift { estimate low high }
                          statistic pValue }
    gmvPerVisitorVsControl { difference { estimate } statistic pValue }
    aovVsControl { difference { estimate } pValue }
    decision { pValue threshold informationFraction significant } } } } }"""


def definition(key: str, **overrides: Any) -> dict[str, Any]:
    return {
        "key": key,
        "name": "结算按钮颜色",
        "hypothesis": "An orange checkout button converts more visitors than a grey one.",
        "variants": [{"key": "control", "weight": 50}, {"key": "treatment", "weight": 50}],
        **overrides,
    }


async def staff_client(
    gql: GraphQLClient, session: AsyncSession, settings: Settings, role: StaffRole
) -> GraphQLClient:
    """A client signed in as a new staff user with ``role`` (who never signs in with a
    password: none is hashed, which takes a good part of a second)."""
    staff = StaffUser(
        email=f"{role.value.lower()}-{uuid.uuid4().hex[:8]}@example.cn",
        password_hash="!",
        name="运营小李",
        role=role,
    )
    session.add(staff)
    await session.commit()
    return gql.as_(token_for(settings, staff))


async def experiments_in_db(session: AsyncSession) -> int:
    await session.commit()
    found = int(await session.scalar(select(func.count()).select_from(Experiment)) or 0)
    await session.commit()
    return found


async def exposures_of(session: AsyncSession, key: str) -> list[tuple[str, str, int | None]]:
    await session.commit()
    rows = await session.execute(
        select(
            col(ExperimentExposure.visitor),
            col(ExperimentExposure.variant),
            col(ExperimentExposure.customer_id),
        )
        .join(Experiment, col(Experiment.id) == col(ExperimentExposure.experiment_id))
        .where(col(Experiment.key) == key)
        .order_by(col(ExperimentExposure.visitor))
    )
    found = [(r.visitor, r.variant, r.customer_id) for r in rows]
    await session.commit()
    return found


# ---- defining, starting, stopping --------------------------------------------------------------


async def test_an_experiment_is_defined_started_and_stopped_and_bad_input_changes_nothing(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await staff_client(gql, session, settings, StaffRole.ADMIN)
    made = (
        await admin(
            CREATE,
            {
                "input": definition(
                    " Checkout-Button ",
                    variants=[
                        {"key": "grey", "weight": 2},
                        {"key": "orange", "weight": 1},
                        {"key": "green", "weight": 1},
                    ],
                    primaryMetric="GMV_PER_VISITOR",
                )
            },
        )
    )["createExperiment"]
    assert made["__typename"] == "CreateExperimentSuccess", made
    experiment = made["experiment"]
    assert experiment["key"] == "checkout-button"
    assert experiment["status"] == "DRAFT" and experiment["startedAt"] is None
    assert experiment["primaryMetric"] == "GMV_PER_VISITOR"
    assert experiment["minSampleSize"] == settings.experiment_min_sample_size == 1000
    assert experiment["variants"] == [
        {"key": "grey", "weight": 2, "isControl": True},
        {"key": "orange", "weight": 1, "isControl": False},
        {"key": "green", "weight": 1, "isControl": False},
    ]
    key = {"key": "checkout-button"}
    assert (await admin(ONE, key))["experiment"] == experiment
    assert (await admin(NODE, {"id": experiment["id"]}))["node"]["key"] == "checkout-button"
    # A draft shows no variant and records nothing; stopping it is not a move it can make.
    assert (await gql(VARIANT, {**key, "sid": "web-1"}))["experimentVariant"] is None
    assert (await admin(STOP, key))["stop"] == {
        "__typename": "InvalidTransition",
        "current": "DRAFT",
        "target": "STOPPED",
        "code": "INVALID_TRANSITION",
        "field": "status",
    }

    started = (await admin(MOVE, key))["start"]
    assert started["__typename"] == "StartExperimentSuccess"
    assert started["experiment"]["status"] == "RUNNING" and started["experiment"]["startedAt"]
    again = (await admin(MOVE, key))["start"]
    assert (again["__typename"], again["current"], again["target"]) == (
        "InvalidTransition",
        "RUNNING",
        "RUNNING",
    )
    variant = (await gql(VARIANT, {**key, "sid": "web-1"}))["experimentVariant"]
    assert variant in {"grey", "orange", "green"}
    listed = await admin(LIST, {"status": "RUNNING"})
    assert listed["experiments"]["nodes"] == [{"key": "checkout-button", "status": "RUNNING"}]

    stopped = (await admin(STOP, key))["stop"]
    assert stopped["experiment"]["status"] == "STOPPED" and stopped["experiment"]["stoppedAt"]
    # STOPPED is final: neither started again nor stopped twice; no more variants.
    assert (await admin(MOVE, key))["start"]["current"] == "STOPPED"
    assert (await admin(STOP, key))["stop"]["__typename"] == "InvalidTransition"
    assert (await gql(VARIANT, {**key, "sid": "web-2"}))["experimentVariant"] is None
    assert await exposures_of(session, "checkout-button") == [("session:web-1", variant, None)]

    unknown = {"key": "no-such-test"}
    assert (await admin(MOVE, unknown))["start"] == {
        "__typename": "NotFoundError",
        "code": "NOT_FOUND",
        "field": "key",
    }
    assert (await admin(STOP, unknown))["stop"]["__typename"] == "NotFoundError"
    assert (await admin(ONE, unknown))["experiment"] is None
    assert (await gql(VARIANT, {**unknown, "sid": "web-1"}))["experimentVariant"] is None
    assert (await admin(LIST, {"status": None}))["experiments"]["totalCount"] == 1

    # Bad definitions are typed errors that write nothing.
    ok = (await admin(CREATE, {"input": definition("free-shipping")}))["createExperiment"]
    assert ok["__typename"] == "CreateExperimentSuccess"
    one = [{"key": "control", "weight": 1}]
    six = [{"key": f"v{i}", "weight": 1} for i in range(6)]
    cases: list[tuple[dict[str, Any], str, str]] = [
        (definition("free-shipping"), "ConflictError", "key"),
        (definition("FREE-SHIPPING "), "ConflictError", "key"),
        (definition("free shipping!"), "ValidationError", "key"),
        (definition("-free"), "ValidationError", "key"),
        (definition("x" * 65), "ValidationError", "key"),
        (definition("ok-1", name="  "), "ValidationError", "name"),
        (definition("ok-2", variants=one), "ValidationError", "variants"),
        (definition("ok-3", variants=six), "ValidationError", "variants"),
        (
            definition("ok-4", variants=[{"key": "a", "weight": 50}, {"key": "a", "weight": 50}]),
            "ValidationError",
            "variants",
        ),
        (
            definition("ok-5", variants=[{"key": "a", "weight": 0}, {"key": "b", "weight": 50}]),
            "ValidationError",
            "variants",
        ),
        (
            definition("ok-6", variants=[{"key": "a", "weight": -5}, {"key": "b", "weight": 5}]),
            "ValidationError",
            "variants",
        ),
        (
            definition(
                "ok-7", variants=[{"key": "a", "weight": 10_001}, {"key": "b", "weight": 5}]
            ),
            "ValidationError",
            "variants",
        ),
        (
            definition(
                "ok-8", variants=[{"key": "Big Red", "weight": 1}, {"key": "b", "weight": 1}]
            ),
            "ValidationError",
            "variants",
        ),
        (definition("ok-9", minSampleSize=10), "ValidationError", "minSampleSize"),
    ]
    for given, typename, field in cases:
        answer = (await admin(CREATE, {"input": given}))["createExperiment"]
        assert (answer["__typename"], answer["field"]) == (typename, field), (given, answer)
        assert answer["message"]
    assert await experiments_in_db(session) == 2
    # A weight that is no whole number is refused by GraphQL itself, before anything runs.
    body = await admin.execute(
        CREATE,
        {
            "input": definition(
                "ok-11", variants=[{"key": "a", "weight": 0.5}, {"key": "b", "weight": 1}]
            )
        },
    )
    assert body["errors"] and body.get("data") is None
    assert await experiments_in_db(session) == 2

    # Concurrent requests: one key is taken once, and one start of a draft wins.
    creates = await asyncio.gather(
        *(admin(CREATE, {"input": definition("race-key")}) for _ in range(6))
    )
    kinds = sorted(c["createExperiment"]["__typename"] for c in creates)
    assert kinds == ["ConflictError"] * 5 + ["CreateExperimentSuccess"]
    starts = await asyncio.gather(*(admin(MOVE, {"key": "race-key"}) for _ in range(6)))
    kinds = sorted(s["start"]["__typename"] for s in starts)
    assert kinds == ["InvalidTransition"] * 5 + ["StartExperimentSuccess"]
    assert await experiments_in_db(session) == 3


async def test_insights_permissions_and_shoppers_sticky_variants_exposed_once(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    admin = await staff_client(gql, session, settings, StaffRole.ADMIN)
    made = (await admin(CREATE, {"input": definition("banner-copy")}))["createExperiment"]
    experiment_id = made["experiment"]["id"]
    analyst = await staff_client(gql, session, settings, StaffRole.ANALYST)
    support = await staff_client(gql, session, settings, StaffRole.SUPPORT)
    customer = gql.as_(token_for(settings, await make_customer(session, password=None)))
    created = await apikeys.create_api_key(
        session, RoleMap.build(settings), name="报表", scopes=[INSIGHTS_READ], created_by="test"
    )
    await session.commit()
    reader_key = gql.as_(created.secret)

    # Readers: the ANALYST role and an API key with insights.read see experiments, manage none.
    for reader in (analyst, reader_key):
        assert (await reader(LIST, {"status": None}))["experiments"]["totalCount"] == 1
        assert (await reader(ONE, {"key": "banner-copy"}))["experiment"]["key"] == "banner-copy"
        assert (await reader(NODE, {"id": experiment_id}))["node"] is not None
        refused = await reader.execute(MOVE, {"key": "banner-copy"})
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        refused = await reader.execute(CREATE, {"input": definition("another")})
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Everyone else sees nothing, and a node answers like a missing one.
    for stranger in (support, customer, gql):
        body = await stranger.execute(LIST, {"status": None})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        body = await stranger.execute(ONE, {"key": "banner-copy"})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert (await stranger(NODE, {"id": experiment_id}))["node"] is None
        assert (await stranger.execute(MOVE, {"key": "banner-copy"}))["errors"]
    assert await experiments_in_db(session) == 1
    await session.commit()
    status = await session.scalar(select(Experiment.status).where(Experiment.key == "banner-copy"))
    await session.commit()  # no read transaction left open to block the server's writes
    assert status is ExperimentStatus.DRAFT

    # ---- shoppers, whoever they are, get a variant that sticks, and are exposed once
    await admin(CREATE, {"input": definition("hero-image")})
    await admin(MOVE, {"key": "hero-image"})
    variants = [Variant("control", 50), Variant("treatment", 50)]
    buyer = await make_customer(session, password=None)
    shopper = gql.as_(token_for(settings, buyer))
    me = f"customer:{buyer.id}"

    # A signed-in customer is followed by the account, whatever session id the app sends.
    seen = {
        (await shopper(VARIANT, {"key": "hero-image", "sid": sid}))["experimentVariant"]
        for sid in (None, "web-a", "app-b", "web-a")
    }
    assert seen == {assign("hero-image", variants, me)}
    # An anonymous visitor by the session id, the same on every visit.
    sessions = [f"web-{i}" for i in range(6)]
    for sid in sessions + sessions:
        answer = (await gql(VARIANT, {"key": " hero-image", "sid": sid}))["experimentVariant"]
        assert answer == assign("hero-image", variants, f"session:{sid}")
    exposed = await exposures_of(session, "hero-image")
    assert exposed == sorted(
        [(me, assign("hero-image", variants, me), buyer.id)]
        + [(f"session:{s}", assign("hero-image", variants, f"session:{s}"), None) for s in sessions]
    )

    # 20 first visits of one new visitor at once: one variant, one exposure.
    answers = await asyncio.gather(
        *(gql(VARIANT, {"key": "hero-image", "sid": "tab-storm"}) for _ in range(20))
    )
    assert {a["experimentVariant"] for a in answers} == {
        assign("hero-image", variants, "session:tab-storm")
    }
    storm = [e for e in await exposures_of(session, "hero-image") if e[0] == "session:tab-storm"]
    assert len(storm) == 1

    # An anonymous visitor without a usable session id is told what to fix; nothing is written.
    for sid in (None, "   ", "x" * 65):
        body = await gql.execute(VARIANT, {"key": "hero-image", "sid": sid})
        assert body["errors"][0]["extensions"]["code"] in {"BAD_USER_INPUT", "STRING_TOO_LONG"}
    assert len(await exposures_of(session, "hero-image")) == len(sessions) + 2


# ---- results -----------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


async def _known_shop(session: AsyncSession) -> dict[str, Any]:
    """A stopped experiment whose every count is known: 40 customers and 5 anonymous sessions
    per arm, converters placing paid orders after their exposure, and orders that must not
    count (before the exposure, unpaid, cancelled, after the stop, of a visitor never
    exposed)."""
    started, stopped = T0, T0 + timedelta(days=14)
    experiment = Experiment(
        key="buy-box",
        name="购买按钮",
        variants=[{"key": "control", "weight": 1}, {"key": "treatment", "weight": 1}],
        primary_metric=ExperimentMetric.CONVERSION,
        status=ExperimentStatus.STOPPED,
        min_sample_size=40,
        started_at=started,
        stopped_at=stopped,
    )
    customers = [
        Customer(email=f"buyer{i}@example.cn", first_name="顾客", last_name=str(i))
        for i in range(90)
    ]
    session.add(experiment)
    session.add_all(customers)
    await session.flush()
    assert experiment.id is not None
    exposed_at = started + timedelta(hours=1)
    arms = {"control": customers[:40], "treatment": customers[40:80]}
    for variant, people in arms.items():
        for c in people:
            session.add(
                ExperimentExposure(
                    experiment_id=experiment.id,
                    visitor=f"customer:{c.id}",
                    customer_id=c.id,
                    variant=variant,
                    exposed_at=exposed_at,
                )
            )
        for s in range(5):
            session.add(
                ExperimentExposure(
                    experiment_id=experiment.id,
                    visitor=f"session:{variant}-{s}",
                    variant=variant,
                    exposed_at=exposed_at,
                )
            )
    serial = iter(range(1, 1000))

    def order(customer: Customer, total: int, **fields: Any) -> None:
        values: dict[str, Any] = {
            "status": OrderStatus.PAID,
            "placed_at": exposed_at + timedelta(days=2),
            "paid_at": exposed_at + timedelta(days=2, minutes=5),
            **fields,
        }
        session.add(
            Order(
                number=f"SG-EXP-{next(serial)}",
                customer_id=customer.id,
                email=customer.email,
                subtotal_amount=total,
                total_amount=total,
                **values,
            )
        )

    # Counted: control 3 converters, one of them twice (4 orders); treatment 18 converters.
    control, treatment = arms["control"], arms["treatment"]
    order(control[0], 10_000)
    order(control[0], 30_000, status=OrderStatus.DELIVERED)
    order(control[1], 20_000, status=OrderStatus.COMPLETED)
    order(control[2], 12_000)
    for i, c in enumerate(treatment[:18]):
        order(c, 10_000 + 1_000 * i)
    # Not counted: placed before the exposure, never paid, cancelled (refunded), after the
    # stop, by a customer never exposed.
    order(control[3], 50_000, placed_at=exposed_at - timedelta(minutes=1))
    order(control[4], 50_000, status=OrderStatus.PENDING_PAYMENT, paid_at=None)
    order(treatment[30], 50_000, status=OrderStatus.CANCELLED)
    order(treatment[31], 50_000, placed_at=stopped + timedelta(hours=1))
    order(customers[85], 50_000)
    await session.commit()
    return {
        "control": {"visitors": 45, "converters": 3, "orders": 4, "gmv": 72_000},
        "treatment": {
            "visitors": 45,
            "converters": 18,
            "orders": 18,
            "gmv": sum(10_000 + 1_000 * i for i in range(18)),
            "amounts": [10_000 + 1_000 * i for i in range(18)],
        },
    }


async def test_results_of_a_shop_with_known_counts_and_when_they_are_not_conclusive(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
) -> None:
    known = await _known_shop(session)
    reader = await staff_client(gql, session, settings, StaffRole.ANALYST)
    results = (await reader(RESULTS, {"key": "buy-box"}))["experiment"]["results"]
    control, treatment = results["variants"]
    for got, variant in ((control, "control"), (treatment, "treatment")):
        want = known[variant]
        assert got["variant"] == variant
        assert (got["visitors"], got["converters"], got["orders"]) == (
            want["visitors"],
            want["converters"],
            want["orders"],
        )
        # Money in yuan (CNY has 2 decimals).
        assert got["gmv"] == want["gmv"] / 100
        low, high = proportion_confint(want["converters"], want["visitors"], method="wilson")
        assert got["conversionRate"] == {
            "estimate": want["converters"] / want["visitors"],
            "low": float(low),
            "high": float(high),
        }
        assert got["gmvPerVisitor"]["estimate"] == (want["gmv"] / 100) / want["visitors"]
        assert got["aov"]["estimate"] == (want["gmv"] / 100) / want["orders"]
    assert control["isControl"] and control["decision"] is None
    assert control["conversionVsControl"] is None

    z, p = proportions_ztest([18, 3], [45, 45])
    compared = treatment["conversionVsControl"]
    assert math.isclose(compared["statistic"], float(z)) and math.isclose(compared["pValue"], p)
    assert math.isclose(compared["difference"]["estimate"], 18 / 45 - 3 / 45)
    assert math.isclose(compared["relativeLift"]["estimate"], 18 / 3 - 1)
    # GMV per visitor, by hand: the treatment's visitors spend the amounts above, the rest 0.
    spend = [a / 100 for a in known["treatment"]["amounts"]] + [0.0] * 27
    mean = sum(spend) / 45
    sd = math.sqrt(sum((v - mean) ** 2 for v in spend) / 44)
    gmv = treatment["gmvPerVisitor"]
    assert math.isclose(gmv["estimate"], mean)
    # A t interval: mean ± t(0.975, 44) · sd / √45, t(0.975, 44) = 2.0154 (to 4 decimals).
    assert math.isclose(gmv["high"] - mean, 2.0154 * sd / math.sqrt(45), rel_tol=1e-4)

    # Every arm has its 40 visitors and the difference is beyond the corrected boundary.
    decision = treatment["decision"]
    assert decision["significant"] and decision["pValue"] == compared["pValue"]
    assert math.isclose(decision["informationFraction"], 45 / 40)
    assert math.isclose(decision["threshold"], experiment_stats.corrected_alpha(45 / 40))
    assert decision["threshold"] < results["alpha"] == 0.05
    assert results["outcome"] == "CONCLUSIVE" and results["conclusive"] is True
    assert results["winner"] == "treatment"
    assert "treatment" in results["reason"] and "conclusive" in results["reason"]

    experiment = (
        await session.execute(select(Experiment).where(col(Experiment.key) == "buy-box"))
    ).scalar_one()

    # Every arm needs 60 visitors: nothing is conclusive, and the reason says why.
    experiment.min_sample_size = 60
    await session.commit()
    results = (await reader(RESULTS, {"key": "buy-box"}))["experiment"]["results"]
    assert (results["outcome"], results["conclusive"], results["winner"]) == (
        "COLLECTING",
        False,
        None,
    )
    assert "60" in results["reason"] and "'control' has 45" in results["reason"]
    assert results["variants"][1]["decision"]["significant"] is False

    # On AOV the arms hardly differ (180.00 against 185.00 yuan an order): no verdict.
    experiment.min_sample_size = 40
    experiment.primary_metric = ExperimentMetric.AOV
    await session.commit()
    results = (await reader(RESULTS, {"key": "buy-box"}))["experiment"]["results"]
    treatment = results["variants"][1]
    assert results["outcome"] == "NO_SIGNIFICANT_DIFFERENCE" and not results["conclusive"]
    assert treatment["decision"]["pValue"] == treatment["aovVsControl"]["pValue"]
    assert treatment["decision"]["pValue"] > treatment["decision"]["threshold"]
    assert "p = " in results["reason"]

    # A draft has no results yet.
    draft = Experiment(
        key="draft-one", name="草稿", variants=experiment.variants, min_sample_size=40
    )
    session.add(draft)
    await session.commit()
    results = (await reader(RESULTS, {"key": "draft-one"}))["experiment"]["results"]
    assert results["outcome"] == "NOT_STARTED"
    assert [v["visitors"] for v in results["variants"]] == [0, 0]
    assert results["variants"][0]["conversionRate"] is None
