"""The plugin framework: discovery, enabling, metadata checks, settings, schema assembly, the
order-flow hooks, jobs and lifecycle hooks. Tests named ``test_hook_<name>`` are the hook's
own test (tests/server/test_hookspecs.py checks that every hook has one)."""

from __future__ import annotations

import importlib.metadata
import io
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import strawberry
from click.testing import CliRunner
from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from schema.core import build_schema
from server import migrate
from server.app import create_app
from server.cli import main as cli
from server.config import Settings
from server.db import create_engine, session_factory
from server.graphql.assembly import SchemaAssemblyError
from server.jobs import JobRunner
from server.models import CustomerEvent, JobLease
from server.plugin import (
    Adjustment,
    CheckoutProblem,
    Job,
    JobContext,
    PriceItem,
    ShippingQuote,
    hookspec,
)
from server.plugins import (
    PluginError,
    PluginFailed,
    PluginRuntime,
    builtin_plugin_names,
    load_plugins,
)
from server.progress import Progress
from tests.plugins.fakes import ADDRESS, FakePlugin, cart_of, gid, place_order
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient
from tests.support.plugins import (
    example_plugin,
    installed,
    pip_install,
    run_module,
    shopgraph,
    with_example,
)
from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]


def only(*plugins: Any, **settings: Any) -> PluginRuntime:
    """Exactly these plugins (the installed ones are left out)."""
    return load_plugins(Settings(plugins="", **settings), extra=plugins)


def sdl(runtime: PluginRuntime) -> str:
    return build_schema(runtime).as_str()


# --- discovery and enabling ----------------------------------------------------------------


def test_installed_example_plugin_is_discovered_through_its_entry_point() -> None:
    runtime = load_plugins(installed(Settings(), "loyalty"))
    record = runtime.record("loyalty")
    assert record is not None and record.enabled
    assert record.source == "entry point"
    assert record.version == importlib.metadata.version("shopgraph-loyalty") == "1.0.0"
    assert {"order_placed", "order_adjustments", "graphql_type_extensions"} <= set(record.hooks)
    assert "loyaltyPoints: Int!" in sdl(runtime)


def test_unset_plugins_means_all_installed_and_empty_means_none() -> None:
    assert load_plugins(Settings(plugins=None, plugin_entry_points=True)).is_enabled("loyalty")
    nothing = load_plugins(Settings(plugins="", plugin_entry_points=True))
    assert nothing.enabled == []
    assert nothing.record("loyalty") is not None  # still listed, as disabled
    assert "loyalty" not in sdl(nothing).lower()


def test_disabled_plugin_contributes_nothing_and_its_hooks_are_not_called() -> None:
    runtime = load_plugins(installed(Settings(disabled_plugins="loyalty"), "loyalty"))
    record = runtime.record("loyalty")
    assert record is not None and not record.enabled and record.module is None
    schema = sdl(runtime)
    assert "loyaltyPoints" not in schema and "redeemPoints" not in schema
    assert "loyalty" not in runtime.implementers("order_adjustments")
    assert "loyalty" not in runtime.implementers("order_placed")


def test_plugins_can_be_disabled_in_the_config_file(tmp_path: Any) -> None:
    config = tmp_path / "shopgraph.env"
    config.write_text("SHOPGRAPH_DISABLED_PLUGINS=loyalty\n")
    chosen = Settings(_env_file=str(config), plugin_entry_points=True, plugins="loyalty")  # type: ignore[call-arg]
    runtime = load_plugins(chosen)
    assert runtime.record("loyalty") is not None and not runtime.is_enabled("loyalty")


async def test_schemas_with_different_plugin_sets_coexist_in_one_process() -> None:
    with_loyalty = build_schema(load_plugins(installed(Settings(), "loyalty")))
    without = build_schema(load_plugins(Settings(plugins="")))
    again = build_schema(load_plugins(installed(Settings(), "loyalty")))
    query = '{ __type(name: "Customer") { fields { name } } }'

    async def customer_fields(schema: strawberry.Schema) -> set[str]:
        result = await schema.execute(query)
        assert result.errors is None, result.errors
        return {f["name"] for f in result.data["__type"]["fields"]}  # type: ignore[index]

    assert "loyaltyPoints" in await customer_fields(with_loyalty)
    assert "loyaltyPoints" not in await customer_fields(without)
    assert await customer_fields(again) == await customer_fields(with_loyalty)
    # The core class itself was left as it was.
    from schema.customers import Customer

    names = {f.python_name for f in Customer.__strawberry_definition__.fields}
    assert "loyalty_points" not in names


def test_entry_point_that_fails_to_import_is_a_clear_error_unless_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = importlib.metadata.EntryPoint(
        name="broken", value="shopgraph_no_such_module_xyz", group="shopgraph.plugins"
    )
    monkeypatch.setattr("server.plugins.entry_points", lambda group: [broken])
    with pytest.raises(PluginError, match=r"plugin 'broken'.*failed to import"):
        load_plugins(Settings(plugin_entry_points=True))
    runtime = load_plugins(Settings(plugin_entry_points=True, disabled_plugins="broken"))
    assert runtime.record("broken") is not None and not runtime.is_enabled("broken")


def test_plugins_list_command_shows_every_plugin() -> None:
    discover = {"SHOPGRAPH_PLUGIN_ENTRY_POINTS": "true", "SHOPGRAPH_PLUGINS": "loyalty"}
    result = CliRunner().invoke(cli, ["plugins", "list"], env=discover)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("loyalty "))
    assert "1.0.0" in row and "yes" in row and "entry point" in row and "order_placed" in row
    disabled = CliRunner().invoke(
        cli, ["plugins", "list"], env={**discover, "SHOPGRAPH_DISABLED_PLUGINS": "loyalty"}
    )
    row = next(line for line in disabled.output.splitlines() if line.startswith("loyalty "))
    assert " no " in row


# --- metadata and start-up checks ----------------------------------------------------------


def test_unsupported_core_version_is_a_start_up_error() -> None:
    with pytest.raises(PluginError, match=r"plugin 'future' supports shopgraph >=2\.0"):
        only(FakePlugin("future", core_version=">=2.0"))
    with pytest.raises(PluginError, match="invalid core_version"):
        only(FakePlugin("garbled", core_version="not a version"))


def test_required_plugin_must_be_enabled() -> None:
    needy = FakePlugin("needy", requires=["loyalty"])
    with pytest.raises(PluginError, match="requires plugin 'loyalty', which is disabled"):
        only(needy, plugin_entry_points=True)
    with pytest.raises(PluginError, match="requires plugin 'ghost', which is not installed"):
        only(FakePlugin("needy", requires=["ghost"]))
    assert load_plugins(installed(Settings(), "loyalty"), extra=[needy]).is_enabled("needy")


def test_hookimpl_without_spec_is_rejected() -> None:
    typo = FakePlugin("typo", order_plaecd=lambda event: None)
    with pytest.raises(PluginError, match="typo"):
        only(typo)


def test_hookimpl_with_unknown_or_keyword_only_arguments_is_rejected() -> None:
    with pytest.raises(PluginError, match="'odd'"):
        only(FakePlugin("odd", order_placed=lambda event, surprise: None))

    def kwonly(*, event: Any) -> None:
        return None

    with pytest.raises(PluginError, match="keyword-only"):
        only(FakePlugin("kw", order_placed=kwonly))


def test_two_plugins_with_one_name_are_rejected() -> None:
    with pytest.raises(PluginError, match="two plugins are named 'twin'"):
        only(FakePlugin("twin"), FakePlugin("twin"))


def test_hooks_are_called_with_keywords_only() -> None:
    runtime = only(FakePlugin("p", permissions=lambda: ["p.x"]))
    with pytest.raises(TypeError):
        runtime.pm.hook.permissions("positional")


async def test_runtime_call_names_the_failing_plugin() -> None:
    def boom(cart: Any) -> None:
        raise ValueError("bad cart")

    runtime = only(
        FakePlugin("fine", validate_checkout=lambda cart: []),
        FakePlugin("bad", validate_checkout=boom),
    )
    with pytest.raises(PluginFailed) as info:
        await runtime.call("validate_checkout", session=None, cart=None, customer=None, inputs={})
    assert info.value.plugin == "bad" and info.value.hook == "validate_checkout"
    assert "bad cart" in str(info.value)


class _Specs:
    @hookspec(firstresult=True)
    def pick_carrier(self, region: str) -> str | None:
        """The one carrier for a region."""


async def test_firstresult_hooks_stop_at_the_first_answer() -> None:
    calls: list[str] = []

    def first(region: str) -> str:
        calls.append("first")
        return "顺丰速运"

    def second(region: str) -> str:
        calls.append("second")
        return "京东物流"

    runtime = only(
        FakePlugin("a", hookspecs=_Specs, pick_carrier=second),
        FakePlugin("b", pick_carrier=first),
    )
    results = await runtime.call("pick_carrier", region="华东")
    assert results == [("b", "顺丰速运")]  # last registered is called first
    assert calls == ["first"]


# --- schema hooks --------------------------------------------------------------------------


@strawberry.type
class Badge:
    label: str


@strawberry.type
class BadgeQueries:
    @strawberry.field
    def badge_of_the_day(self) -> Badge:
        return Badge(label="今日推荐")


@strawberry.type
class BadgeMutations:
    @strawberry.mutation
    def award_badge(self, label: str) -> Badge:
        return Badge(label=label)


@strawberry.type
class Tick:
    n: int


@strawberry.type
class BadgeSubscriptions:
    @strawberry.subscription
    async def ticks(self, upto: int) -> AsyncIterator[Tick]:
        for n in range(upto):
            yield Tick(n=n)


@strawberry.type
class Orphan:
    """Reached by no field: only graphql_types brings it in."""

    note: str


@strawberry.type
class ProductBadge:
    @strawberry.field
    def badge(self, root: Any) -> str:
        return f"{root.name}·{root.sku}"


@strawberry.type
class ProductBadgeClash:
    @strawberry.field
    def badge(self) -> str:
        return "again"


@strawberry.type
class ProductNameClash:
    @strawberry.field
    def name(self) -> str:
        return "taken"


@strawberry.type
class OrderShipmentsClash:
    @strawberry.field
    def shipments(self) -> str:
        return "taken"


BADGES = FakePlugin(
    "badges",
    graphql_queries=lambda: [BadgeQueries],
    graphql_mutations=lambda: [BadgeMutations],
    graphql_subscriptions=lambda: [BadgeSubscriptions],
    graphql_types=lambda: [Orphan],
    graphql_type_extensions=lambda: {"Product": [ProductBadge]},
)


async def test_hook_graphql_queries() -> None:
    schema = build_schema(only(BADGES))
    assert (await schema.execute("{ badgeOfTheDay { label } }")).data == {
        "badgeOfTheDay": {"label": "今日推荐"}
    }
    assert "badgeOfTheDay" not in sdl(only())
    clash = FakePlugin("copycat", graphql_queries=lambda: [BadgeQueries])
    with pytest.raises(SchemaAssemblyError, match="Query.badgeOfTheDay is defined by plugin"):
        build_schema(only(BADGES, clash))
    core_clash = FakePlugin("thief", graphql_queries=lambda: [_products_again()])
    with pytest.raises(
        SchemaAssemblyError, match="Query.products is defined by the core and by plugin 'thief'"
    ):
        build_schema(only(core_clash))


def _products_again() -> type:
    @strawberry.type
    class Products:
        @strawberry.field
        def products(self) -> int:
            return 0

    return Products


async def test_hook_graphql_mutations() -> None:
    schema = build_schema(only(BADGES))
    result = await schema.execute('mutation { awardBadge(label: "金牌") { label } }')
    assert result.data == {"awardBadge": {"label": "金牌"}}
    clash = FakePlugin("copycat", graphql_mutations=lambda: [BadgeMutations])
    with pytest.raises(
        SchemaAssemblyError,
        match="Mutation.awardBadge is defined by plugin 'badges' and by plugin 'copycat'",
    ):
        build_schema(only(BADGES, clash))


async def test_hook_graphql_subscriptions() -> None:
    schema = build_schema(only(BADGES))
    assert "ticks(upto: Int!): Tick!" in schema.as_str()
    stream = await schema.subscribe("subscription { ticks(upto: 3) { n } }")
    seen = [item.data["ticks"]["n"] async for item in stream]  # type: ignore[union-attr]
    assert seen == [0, 1, 2]
    # Without the plugin its field is gone; the core's own subscriptions stay.
    without = sdl(only())
    assert "ticks" not in without
    assert "orderUpdated(id: ID!): Order" in without


def test_hook_graphql_types() -> None:
    assert "type Orphan" in sdl(only(BADGES))
    assert "type Orphan" not in sdl(only())
    clash = FakePlugin("copycat", graphql_types=lambda: [Orphan])
    with pytest.raises(
        SchemaAssemblyError,
        match="type Orphan is defined by plugin 'badges' and by plugin 'copycat'",
    ):
        build_schema(only(BADGES, clash))


def test_hook_graphql_type_extensions() -> None:
    assert "badge: String!" in sdl(only(BADGES))
    clash = FakePlugin("copycat", graphql_type_extensions=lambda: {"Product": [ProductBadgeClash]})
    with pytest.raises(
        SchemaAssemblyError,
        match=r"Product.badge is defined by plugin 'badges' and by plugin 'copycat'",
    ):
        build_schema(only(BADGES, clash))
    core = FakePlugin("rename", graphql_type_extensions=lambda: {"Product": [ProductNameClash]})
    with pytest.raises(
        SchemaAssemblyError, match="Product.name is defined by the core and by plugin 'rename'"
    ):
        build_schema(only(core))
    # A field a core domain adds to another's type (Order.shipments) is the core's too.
    added = FakePlugin("parcels", graphql_type_extensions=lambda: {"Order": [OrderShipmentsClash]})
    with pytest.raises(
        SchemaAssemblyError, match="Order.shipments is defined by the core and by plugin 'parcels'"
    ):
        build_schema(only(added))
    unknown = FakePlugin("lost", graphql_type_extensions=lambda: {"Nope": [ProductBadge]})
    with pytest.raises(SchemaAssemblyError, match="plugin 'lost' extends type 'Nope'"):
        build_schema(only(unknown))


class TestOverHttp:
    """Extension fields resolve against the core object, over HTTP, on both backends."""

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return load_plugins(settings.model_copy(update={"plugins": ""}), extra=[BADGES])

    async def test_extension_field_resolves_with_the_core_object(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        await make_product(session, "智能手表", sku="WATCH-1")
        data = await gql("{ products(first: 5) { edges { node { sku badge } } } }")
        assert data["products"]["edges"] == [
            {"node": {"sku": "WATCH-1", "badge": "智能手表·WATCH-1"}}
        ]


# --- data hooks ----------------------------------------------------------------------------


def test_hook_models() -> None:
    migrate.import_all_models(with_example(Settings()))
    tables = SQLModel.metadata.tables
    assert {"loyalty_account", "loyalty_transaction", "loyalty_redemption"} <= set(tables)


async def test_hook_migration_locations(database_url: str, session: AsyncSession) -> None:
    plugins = with_example(Settings(database_url=database_url))
    [data] = [d for d in plugins.data() if d.name == "loyalty"]
    locations = data.migration_locations
    assert any(loc.endswith("shopgraph_loyalty/migrations/versions") for loc in locations)
    # The test database was built by `upgrade heads` with the plugin installed.
    assert "0001_loyalty" in migrate.current(database_url)
    count = await session.scalar(select(func.count()).select_from(text("loyalty_account")))
    assert count == 0
    await session.rollback()  # release the table before the branch drops it
    # Its branch goes down and up on its own, leaving the core alone.
    migrate.downgrade(database_url, "loyalty@base", plugins)
    assert "0001_loyalty" not in migrate.current(database_url)
    migrate.upgrade(database_url, plugins=plugins)
    assert set(migrate.heads(plugins)) == migrate.current(database_url)


# --- order-flow hooks ----------------------------------------------------------------------


def member_price(
    items: Mapping[int, PriceItem], customer: Any
) -> dict[int, list[Adjustment]] | None:
    if customer is None:
        return None
    answer: dict[int, list[Adjustment]] = {}
    for product_id, item in items.items():
        adjustments = [Adjustment(rule="member", label="会员价", amount=-item.base // 10)]
        if item.quantity >= 3:
            adjustments.append(Adjustment(rule="bulk", label="多件优惠", amount=-100))
        answer[product_id] = adjustments
    return answer


def exploding_price(items: Mapping[int, PriceItem]) -> dict[int, list[Adjustment]]:
    raise RuntimeError("pricing service unreachable")


class TestPriceAdjustments:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return load_plugins(
            settings.model_copy(update={"plugins": ""}),
            extra=[FakePlugin("tiers", price_adjustments=member_price)],
        )

    async def test_hook_price_adjustments(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        product = await make_product(session, "蓝牙耳机", price="199.00")
        customer = await make_customer(session)
        query = "query($id: ID!) { node(id: $id) { ... on Product { basePrice { amount } price { amount } } } }"
        ids = {"id": gid("Product", product.id)}
        anonymous = await gql(query, ids)
        assert anonymous["node"] == {
            "basePrice": {"amount": "199.00"},
            "price": {"amount": "199.00"},
        }
        member = await gql.as_(token_for(settings, customer))(query, ids)
        assert member["node"]["price"] == {"amount": "179.10"}


class TestFailingOrderFlowHook:
    @pytest.fixture(params=["test", "production"])
    def settings(self, request: pytest.FixtureRequest, database_url: str) -> Settings:
        return Settings(
            database_url=database_url, env=request.param, plugins="", secret_key="k" * 40
        )

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return load_plugins(
            settings, extra=[FakePlugin("flaky", price_adjustments=exploding_price)]
        )

    async def test_error_names_the_plugin_even_when_masked(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        await make_product(session, "保温杯")
        body = await gql.execute("{ products(first: 1) { edges { node { price { amount } } } } }")
        [error] = body["errors"]
        assert error["extensions"]["plugin"] == "flaky"
        assert error["extensions"]["code"] == "PLUGIN_FAILED"
        assert error["extensions"]["hook"] == "price_adjustments"
        assert "flaky" in error["message"]
        if settings.env == "production":
            assert "unreachable" not in error["message"]  # why it failed stays in the logs


# Checkout-level hooks: they run inside placeOrder's transaction.


def rounding_discount(cart: Any) -> list[Adjustment]:
    return [Adjustment(rule="round", label="抹零", amount=-(cart.subtotal % 1000))]


def two_carriers(cart: Any, address: Any) -> list[ShippingQuote]:
    return [
        ShippingQuote(code="sf", carrier="顺丰速运", label="次日达", amount=1200, promised_days=1),
        ShippingQuote(code="zto", carrier="中通快递", label="经济", amount=600, promised_days=3),
    ]


def limit_three(cart: Any) -> list[CheckoutProblem]:
    if sum(line.quantity for line in cart.lines) > 3:
        return [CheckoutProblem(code="TOO_MANY", message="每单最多 3 件")]
    return []


def boom_order(cart: Any) -> None:
    raise RuntimeError("promotion engine down")


class TestCheckoutHooks:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return load_plugins(
            settings.model_copy(update={"plugins": ""}),
            extra=[
                FakePlugin("promo", order_adjustments=rounding_discount),
                FakePlugin("ship", shipping_quotes=two_carriers),
                FakePlugin("limits", validate_checkout=limit_three),
            ],
        )

    async def test_hook_order_adjustments(self, gql: GraphQLClient, session: AsyncSession) -> None:
        product = await make_product(session, "坚果礼盒", price="123.45", stock={"SH": 10})
        body = await place_order(gql, await cart_of(gql, [(product, 2)]))
        assert body["data"]["placeOrder"]["__typename"] == "PlaceOrderSuccess", body
        order = body["data"]["placeOrder"]["order"]
        # 246.90 subtotal, 6.90 rounded off, cheapest shipping (6.00) added.
        assert order["adjustments"] == [
            {"source": "promo", "rule": "round", "label": "抹零", "amount": {"amount": "-6.90"}}
        ]
        assert order["total"] == {"amount": "246.00"}

    async def test_hook_shipping_quotes(self, gql: GraphQLClient, session: AsyncSession) -> None:
        product = await make_product(session, "电饭煲", price="300.00", stock={"SH": 10})
        token = await cart_of(gql, [(product, 1)])
        data = await gql(
            "query($t: String!) { cart(token: $t) { shippingQuotes { code carrier price { amount } promisedDays } } }",
            {"t": token},
        )
        quotes = data["cart"]["shippingQuotes"]
        assert {
            (q["code"], q["carrier"], q["price"]["amount"], q["promisedDays"]) for q in quotes
        } == {
            ("sf", "顺丰速运", "12.00", 1),
            ("zto", "中通快递", "6.00", 3),
        }

    async def test_hook_validate_checkout(self, gql: GraphQLClient, session: AsyncSession) -> None:
        product = await make_product(session, "矿泉水", price="2.00", stock={"SH": 100})
        body = await place_order(gql, await cart_of(gql, [(product, 4)]))
        result = body["data"]["placeOrder"]
        assert result["__typename"] != "PlaceOrderSuccess"
        assert "3" in result["message"] or result["code"] == "TOO_MANY"
        assert await session.scalar(select(func.count()).select_from(text('"order"'))) == 0


@strawberry.input
class CouponCode:
    coupon_code: str | None = None


def only_with_coupon(inputs: Mapping[str, Any]) -> list[CheckoutProblem]:
    code = inputs["coupons"].coupon_code
    if code == "WELCOME":
        return []
    return [CheckoutProblem(code="BAD_COUPON", message=f"券码无效: {code}", field="couponCode")]


CHECKOUT_WITH_PROBLEMS = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on CheckoutProblems { problems { code message plugin } }
  }
}
"""


class TestPluginInputOnCheckout:
    """A plugin's field on ``PlaceOrderInput`` reaches its checkout hooks as ``inputs``."""

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        coupons = FakePlugin(
            "coupons",
            graphql_type_extensions=lambda: {"PlaceOrderInput": [CouponCode]},
            validate_checkout=only_with_coupon,
        )
        return load_plugins(settings.model_copy(update={"plugins": ""}), extra=[coupons])

    async def test_the_shoppers_value_is_given_to_the_plugin(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        product = await make_product(session, "挂耳咖啡", price="29.00", stock={"SH": 9})
        order = {"idempotencyKey": "coupon-1", "shippingAddress": ADDRESS, "email": "c@example.cn"}
        refused = await gql.execute(
            CHECKOUT_WITH_PROBLEMS,
            {
                "input": {
                    **order,
                    "cartToken": await cart_of(gql, [(product, 1)]),
                    "couponCode": "X",
                }
            },
        )
        [problem] = refused["data"]["placeOrder"]["problems"]
        assert (problem["code"], problem["plugin"], problem["message"]) == (
            "BAD_COUPON",
            "coupons",
            "券码无效: X",
        )
        token = await cart_of(gql, [(product, 1)])
        placed = await gql.execute(
            CHECKOUT_WITH_PROBLEMS,
            {
                "input": {
                    **order,
                    "idempotencyKey": "coupon-2",
                    "cartToken": token,
                    "couponCode": "WELCOME",
                }
            },
        )
        assert placed["data"]["placeOrder"]["__typename"] == "PlaceOrderSuccess", placed


class TestFailingCheckoutHook:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return load_plugins(
            settings.model_copy(update={"plugins": ""}),
            extra=[FakePlugin("broken_promo", order_adjustments=boom_order)],
        )

    async def test_place_order_fails_naming_the_plugin_and_writes_nothing(
        self, gql: GraphQLClient, session: AsyncSession
    ) -> None:
        product = await make_product(session, "洗衣液", price="39.90", stock={"SH": 5})
        token = await cart_of(gql, [(product, 1)])
        before_events = await session.scalar(select(func.count()).select_from(text("outbox_event")))
        body = await place_order(gql, token)
        [error] = body["errors"]
        assert error["extensions"]["plugin"] == "broken_promo"
        assert "broken_promo" in error["message"]
        for table in ('"order"', "order_line", "payment"):
            assert await session.scalar(select(func.count()).select_from(text(table))) == 0
        reserved = await session.scalar(text("SELECT SUM(reserved) FROM stock_level"))
        assert reserved == 0
        after_events = await session.scalar(select(func.count()).select_from(text("outbox_event")))
        assert after_events == before_events


# --- the rest ------------------------------------------------------------------------------


class TestAdminPluginsQuery:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return load_plugins(
            installed(settings, "loyalty").model_copy(update={"disabled_plugins": "loyalty"}),
            extra=[
                FakePlugin(
                    "complaints_x", version="2.1.0", permissions=lambda: ["complaints_x.manage"]
                )
            ],
        )

    async def test_hook_permissions(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        staff = await make_staff(session)
        data = await gql.as_(token_for(settings, staff))(
            "{ plugins { name version enabled source hooks permissions } }"
        )
        by_name = {p["name"]: p for p in data["plugins"]}
        assert by_name["complaints_x"] == {
            "name": "complaints_x",
            "version": "2.1.0",
            "enabled": True,
            "source": "explicit",
            "hooks": ["permissions"],
            "permissions": ["complaints_x.manage"],
        }
        assert by_name["loyalty"]["enabled"] is False
        assert by_name["loyalty"]["source"] == "entry point"
        denied = await gql.execute("{ plugins { name } }")
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    def test_two_plugins_cannot_declare_one_permission(self) -> None:
        with pytest.raises(PluginError, match="'x.manage' is declared by plugin"):
            only(
                FakePlugin("a", permissions=lambda: ["x.manage"]),
                FakePlugin("b", permissions=lambda: ["x.manage"]),
            )


class Budget(BaseModel):
    limit: int = 100
    label: str = "默认"
    enabled: bool = False


def test_hook_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen: list[Any] = []
    plugin = FakePlugin(
        "budget_guard",
        settings=lambda: Budget,
        validate_checkout=lambda config: seen.append(config) or [],
    )
    assert only(plugin).config_for("budget_guard") == Budget()
    monkeypatch.setenv("SHOPGRAPH_BUDGET_GUARD_LIMIT", "250")
    config_file = tmp_path / "shop.env"
    config_file.write_text("SHOPGRAPH_BUDGET_GUARD_LABEL=大促\nSHOPGRAPH_BUDGET_GUARD_LIMIT=1\n")
    monkeypatch.setenv("SHOPGRAPH_CONFIG", str(config_file))
    runtime = only(plugin)
    # The environment wins over the config file.
    assert runtime.config_for("budget_guard") == Budget(limit=250, label="大促")
    import asyncio

    asyncio.run(
        runtime.call("validate_checkout", session=None, cart=None, customer=None, inputs={})
    )
    assert seen == [Budget(limit=250, label="大促")]
    monkeypatch.setenv("SHOPGRAPH_BUDGET_GUARD_LIMIT", "lots")
    with pytest.raises(
        PluginError, match=r"plugin 'budget_guard': invalid settings \(SHOPGRAPH_BUDGET_GUARD_\*\)"
    ):
        only(plugin)


async def test_hook_jobs(database_url: str) -> None:
    runs: list[int] = []

    async def count_events(ctx: JobContext) -> None:
        async with ctx.sessions() as s:
            runs.append(await s.scalar(select(func.count()).select_from(CustomerEvent)) or 0)

    async def failing(ctx: JobContext) -> None:
        raise RuntimeError("model rebuild failed")

    plugin = FakePlugin(
        "analytics",
        jobs=lambda: [Job("count", 3600, count_events), Job("rebuild", 3600, failing)],
    )
    settings = Settings(database_url=database_url, plugins="")
    runtime = load_plugins(settings, extra=[plugin])
    engine = create_engine(database_url)
    try:
        runner = JobRunner(session_factory(engine), settings, runtime)
        shown = io.StringIO()
        with Progress("jobs", runner.steps(), stream=shown) as progress:
            first = await runner.run_once(progress=progress)
        # The core's own jobs (alerts, the insights, the KPI aggregates, the surveys) run next
        # to the plugin's.
        assert shown.getvalue().splitlines() == [
            "jobs: outbox (1/7)",
            "jobs: analytics.count ran (2/7)",
            "jobs: analytics.rebuild failed (3/7)",
            "jobs: core.alerts ran (4/7)",
            "jobs: core.insights ran (5/7)",
            "jobs: core.kpis ran (6/7)",
            "jobs: core.surveys ran (7/7)",
        ]
        assert first.ran == [
            "analytics.count",
            "core.alerts",
            "core.insights",
            "core.kpis",
            "core.surveys",
        ]
        assert "model rebuild failed" in first.failed["analytics.rebuild"]
        # Another process, within the interval: nothing is due.
        second = await JobRunner(session_factory(engine), settings, runtime).run_once()
        assert second.ran == []
        assert set(second.skipped) == {
            "analytics.count",
            "analytics.rebuild",
            "core.alerts",
            "core.insights",
            "core.kpis",
            "core.surveys",
        }
        assert runs == [0]
        async with session_factory(engine)() as s:
            lease = await s.get(JobLease, "analytics.rebuild")
            assert lease is not None and lease.holder is None
            assert "model rebuild failed" in (lease.last_error or "")
            # A job held by a live runner is not run twice, even when forced.
            await s.execute(
                JobLease.__table__.update()  # type: ignore[attr-defined]
                .where(JobLease.name == "analytics.count")
                .values(holder="other", locked_until=lease.last_started_at + timedelta(days=1))
            )
            await s.commit()
        forced = await JobRunner(session_factory(engine), settings, runtime).run_once(force=True)
        assert "analytics.count" in forced.skipped and "analytics.rebuild" in forced.failed
        assert runs == [0]
    finally:
        await engine.dispose()
    result = CliRunner().invoke(
        cli,
        ["jobs", "run", "--only", "outbox"],
        env={"SHOPGRAPH_DATABASE_URL": database_url, "SHOPGRAPH_PLUGINS": ""},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("outbox: ")
    assert result.stderr.splitlines() == ["jobs: outbox (1/1)"]


def test_hook_startup(database_url: str) -> None:
    calls: list[tuple[str, Any]] = []
    plugin = FakePlugin(
        "lifecycle",
        startup=lambda app, config: calls.append(("startup", app)),
        shutdown=lambda app: calls.append(("shutdown", app)),
    )
    settings = Settings(database_url=database_url, env="test", plugins="")
    app = create_app(settings, load_plugins(settings, extra=[plugin]))
    server = LiveServer(app).start()
    assert calls == [("startup", app)]
    server.stop()
    assert calls == [("startup", app), ("shutdown", app)]


def test_hook_shutdown(database_url: str) -> None:
    stopped: list[str] = []

    async def shutdown(app: Any) -> None:
        stopped.append(type(app).__name__)

    settings = Settings(database_url=database_url, env="test", plugins="")
    app = create_app(settings, load_plugins(settings, extra=[FakePlugin("bye", shutdown=shutdown)]))
    server = LiveServer(app).start()
    assert stopped == []
    server.stop()
    assert stopped == ["Starlette"]


@pytest.mark.heavy
def test_plugin_new_scaffolds_a_plugin_whose_test_passes_installed_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["plugin", "new", "gift_wrap"])
    assert result.exit_code == 0, result.output
    # The hint installs the folder (a bare name would be looked up on the package index).
    assert result.output.splitlines()[1] == (
        "next: pip install -e ./shopgraph-gift-wrap && shopgraph db upgrade"
    )
    root = tmp_path / "shopgraph-gift-wrap"
    assert (
        root / "shopgraph_gift_wrap" / "migrations" / "versions" / "0001_gift_wrap_initial.py"
    ).exists()
    again = CliRunner().invoke(cli, ["plugin", "new", "gift_wrap", "--directory", str(tmp_path)])
    assert again.exit_code != 0 and "already exists" in again.output
    assert CliRunner().invoke(cli, ["plugin", "new", "Bad-Name"]).exit_code != 0

    def own_tests(site: Path | None) -> None:
        # `pytest` in the plugin's folder, as its author runs it.
        tests = run_module("pytest", ["-q", "-p", "no:cacheprovider"], site=site, cwd=root)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert "2 passed" in tests.stdout

    own_tests(site=None)  # before it is installed …
    site = tmp_path / "site"
    pip_install(root, site)  # … and once pip installed it (a separate target: this venv stays)
    own_tests(site=site)
    discover = {"SHOPGRAPH_PLUGIN_ENTRY_POINTS": "true"}
    listed = shopgraph(["plugins", "list"], site=site, env=discover)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("gift_wrap "))
    assert "entry point" in row and "graphql_queries" in row and "migration_locations" in row
    # Installed as a copy, it cannot have revisions written into it: that takes its sources.
    copy = shopgraph(["plugin", "migration", "gift_wrap", "-m", "x"], site=site, env=discover)
    assert copy.returncode == 1 and "Traceback" not in copy.stderr
    assert copy.stderr.strip() == (
        "Error: plugin 'gift_wrap' runs from the copy pip installed (shopgraph-gift-wrap), not "
        "from its sources: install it editable (pip install -e <its folder>) to write its "
        "migrations"
    )


def test_a_plugin_passed_explicitly_is_one_with_its_own_entry_point() -> None:
    # A plugin's tests pass its module while the package is installed: one plugin, enabled.
    module = example_plugin()
    runtime = load_plugins(Settings(plugins="", plugin_entry_points=True), extra=[module])
    found = [(r.name, r.source, r.enabled) for r in runtime.records]
    assert [r for r in found if r[0] not in builtin_plugin_names()] == [
        ("loyalty", "explicit", True)
    ]
    # Another object under that name is still a second plugin.
    with pytest.raises(PluginError, match=r"two plugins are named 'loyalty' \(entry point and"):
        load_plugins(Settings(plugin_entry_points=True), extra=[FakePlugin("loyalty")])
