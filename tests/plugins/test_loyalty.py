"""The example plugin (examples/loyalty), pip-installed like any third-party plugin and used
over HTTP: its schema, its tables, its checkout adjustment, its event hooks and its own hook."""

from __future__ import annotations

import asyncio
import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.cli import main as cli
from server.config import Settings
from server.demo import POPULATE_STEPS
from server.models import Cart, CartStatus, Customer
from server.plugins import PluginRuntime, load_plugins
from tests.plugins.fakes import FakePlugin, cart_of, place_order
from tests.support.accounts import make_customer, token_for
from tests.support.catalog import make_product
from tests.support.graphql import GraphQLClient
from tests.support.plugins import installed
from tests.support.waiting import eventually

REDEEM = """
mutation($input: RedeemPointsInput!) {
  redeemPoints(input: $input) {
    __typename
    ... on RedeemPointsSuccess { points balance discount { amount currency } }
    ... on Error { code message field }
  }
}
"""
# What seed 9's small shop (below) gives the loyalty plugin.
HOLDS = 2
SUMMARY = "19 loyalty accounts, 65 loyalty transactions, 2 loyalty redemptions"
ME_POINTS = (
    "{ me { loyaltyPoints } loyaltyAccount { points lifetimeEarned history { kind points note } } }"
)


async def give_points(session: AsyncSession, customer: Customer, points: int) -> None:
    await session.execute(
        text(
            "INSERT INTO loyalty_account (customer_id, balance, lifetime_earned) VALUES (:c, :p, :p)"
        ),
        {"c": customer.id, "p": points},
    )
    await session.commit()


async def balance(session: AsyncSession, customer: Customer) -> int:
    await session.commit()  # read what is committed now, not an earlier snapshot (SQLite)
    value = await session.scalar(
        text("SELECT balance FROM loyalty_account WHERE customer_id = :c"), {"c": customer.id}
    )
    return int(value or 0)


def test_installed_with_pip_not_from_the_source_tree() -> None:
    dist = importlib.metadata.distribution("shopgraph-loyalty")
    [ep] = [e for e in dist.entry_points if e.group == "shopgraph.plugins"]
    assert (ep.name, ep.value) == ("loyalty", "shopgraph_loyalty")
    module = ep.load()
    location = Path(module.__file__).resolve()
    assert "site-packages" in location.parts  # a real install, not the examples/ folder
    assert "examples" not in location.parts


def test_disabling_removes_the_plugin_entirely() -> None:
    runtime = load_plugins(installed(Settings(disabled_plugins="loyalty"), "loyalty"))
    from schema.core import build_schema

    assert runtime.record("loyalty") is not None
    sdl = build_schema(runtime).as_str()
    for name in ("loyaltyPoints", "loyaltyAccount", "redeemPoints", "LoyaltyAccount"):
        assert name not in sdl
    assert "loyalty" not in runtime.implementers("order_placed")


async def test_hook_cli_commands(database_url: str, session: AsyncSession) -> None:
    """The example adds ``shopgraph loyalty balance EMAIL``: found through its entry point,
    it reads the shop's database; disabled, the command is gone and the core's remain."""
    customer = await make_customer(session)
    await give_points(session, customer, 42)
    env = {"SHOPGRAPH_DATABASE_URL": database_url, "SHOPGRAPH_PLUGINS": "loyalty"}
    env["SHOPGRAPH_PLUGIN_ENTRY_POINTS"] = "true"
    runner = CliRunner()
    result = runner.invoke(cli, ["loyalty", "balance", customer.email], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "42 points\n"
    missing = runner.invoke(cli, ["loyalty", "balance", "nobody@example.com"], env=env)
    assert missing.exit_code == 1
    assert "customer with the email 'nobody@example.com' was not found" in missing.output
    assert "loyalty" in runner.invoke(cli, ["--help"], env=env).output

    off = {**env, "SHOPGRAPH_DISABLED_PLUGINS": "loyalty"}
    gone = runner.invoke(cli, ["loyalty", "balance", customer.email], env=off)
    assert gone.exit_code == 2 and "No such command 'loyalty'" in gone.output
    assert "loyalty" not in runner.invoke(cli, ["--help"], env=off).output
    assert runner.invoke(cli, ["plugins", "list"], env=off).exit_code == 0


def test_a_plugin_command_may_not_take_a_core_or_another_plugins_name(
    settings: Settings,
) -> None:
    import click

    from server.cli import plugin_commands

    def named(name: str) -> FakePlugin:
        return FakePlugin(f"cli-{name}", cli_commands=lambda: [click.Command(name)])

    clash = load_plugins(settings, extra=[named("serve")])
    with pytest.raises(click.ClickException, match="'cli-serve' adds the command 'serve'"):
        plugin_commands(clash, cli.list_commands(click.Context(cli)))
    twice = load_plugins(
        settings,
        extra=[
            named("report"),
            FakePlugin("other", cli_commands=lambda: [click.Command("report")]),
        ],
    )
    with pytest.raises(
        click.ClickException,
        match="plugins '(other|cli-report)' and '(cli-report|other)' both add the command 'report'",
    ):
        plugin_commands(twice, ["serve"])
    fine = load_plugins(settings, extra=[named("report")])
    found = plugin_commands(fine, ["serve"])
    assert found["report"].name == "report" and "serve" not in found


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    """The built-in plugins and the example plugin, found through its entry point."""
    return load_plugins(installed(settings, "loyalty"))


class TestLoyalty:
    """The example plugin found through its entry point, as a shop would run it."""

    async def test_prices_are_untouched_without_a_redemption(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        product = await make_product(session, "蓝牙耳机", price="199.00", stock={"SH": 5})
        customer = await make_customer(session)
        shopper = gql.as_(token_for(settings, customer))
        body = await place_order(shopper, await cart_of(shopper, [(product, 2)]))
        order = body["data"]["placeOrder"]["order"]
        assert [a for a in order["adjustments"] if a["source"] == "loyalty"] == []

    async def test_points_are_earned_after_an_order_is_placed(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        product = await make_product(session, "空气炸锅", price="299.50", stock={"SH": 5})
        customer = await make_customer(session)
        shopper = gql.as_(token_for(settings, customer))
        assert (await shopper(ME_POINTS))["me"]["loyaltyPoints"] == 0
        body = await place_order(shopper, await cart_of(shopper, [(product, 2)]))
        total = body["data"]["placeOrder"]["order"]["total"]["amount"]
        expected = int(float(total))  # one point per whole yuan

        async def earned() -> bool:
            return (await shopper(ME_POINTS))["me"]["loyaltyPoints"] == expected

        await eventually(earned)
        account = (await shopper(ME_POINTS))["loyaltyAccount"]
        assert account["points"] == expected and account["lifetimeEarned"] == expected
        assert [h["kind"] for h in account["history"]] == ["EARN"]

    async def test_redeemed_points_are_an_order_adjustment_labelled_with_its_source(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        product = await make_product(session, "电动牙刷", price="150.00", stock={"SH": 5})
        customer = await make_customer(session)
        await give_points(session, customer, 3000)
        shopper = gql.as_(token_for(settings, customer))
        token = await cart_of(shopper, [(product, 1)])
        redeemed = await shopper(REDEEM, {"input": {"cartToken": token, "points": 2000}})
        assert redeemed["redeemPoints"] == {
            "__typename": "RedeemPointsSuccess",
            "points": 2000,
            "balance": 1000,
            "discount": {"amount": "20.00", "currency": "CNY"},
        }
        body = await place_order(shopper, token)
        order = body["data"]["placeOrder"]["order"]
        loyalty = [a for a in order["adjustments"] if a["source"] == "loyalty"]
        assert loyalty == [
            {
                "source": "loyalty",
                "rule": "redeem",
                "label": "积分抵扣 Loyalty points (2000)",
                "amount": {"amount": "-20.00"},
            }
        ]
        assert order["total"]["amount"] == "130.00"

        async def settled() -> bool:  # 1000 left + 130 earned on the order
            return await balance(session, customer) == 1130

        await eventually(settled)

    async def test_a_cancelled_order_gives_its_redeemed_points_back_in_its_own_transaction(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        product = await make_product(session, "电动牙刷", price="150.00", stock={"SH": 5})
        customer = await make_customer(session)
        await give_points(session, customer, 3000)
        shopper = gql.as_(token_for(settings, customer))
        token = await cart_of(shopper, [(product, 1)])
        await shopper(REDEEM, {"input": {"cartToken": token, "points": 2000}})
        body = await place_order(shopper, token)
        order_id = body["data"]["placeOrder"]["order"]["id"]
        # Spent on the order in placeOrder's own transaction (order_placing).
        await session.commit()
        attached = await session.scalar(
            text("SELECT order_id FROM loyalty_redemption WHERE customer_id = :c"),
            {"c": customer.id},
        )
        await session.commit()
        assert attached is not None

        async def earned() -> bool:  # 1000 left + 130 earned on the order
            return await balance(session, customer) == 1130

        await eventually(earned)
        cancelled = await shopper(
            "mutation($input: CancelOrderInput!) { cancelOrder(input: $input) { __typename } }",
            {"input": {"orderId": order_id}},
        )
        assert cancelled["cancelOrder"]["__typename"] == "CancelOrderSuccess"
        # Given back by the cancelling transaction itself (order_cancelling): no waiting.
        await session.commit()
        released = (
            await session.execute(
                text(
                    "SELECT points FROM loyalty_transaction WHERE kind = 'RELEASE' "
                    "AND order_id = :o"
                ),
                {"o": attached},
            )
        ).scalars()
        assert list(released) == [2000]
        await session.commit()

        async def settled() -> bool:  # 1000 left + 2000 back; the points earned taken back
            return await balance(session, customer) == 3000

        await eventually(settled)

    async def test_redeem_rules(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        customer = await make_customer(session)
        other = await make_customer(session)
        await give_points(session, customer, 500)
        cart = Cart(token="tok-mine-000000000000000000000001", customer_id=customer.id)
        others = Cart(token="tok-other-00000000000000000000001", customer_id=other.id)
        done = Cart(
            token="tok-done-000000000000000000000001",
            customer_id=customer.id,
            status=CartStatus.CONVERTED,
        )
        session.add_all([cart, others, done])
        await session.commit()
        shopper = gql.as_(token_for(settings, customer))

        async def redeem(client: GraphQLClient, token: str, points: int) -> dict[str, Any]:
            data = await client(REDEEM, {"input": {"cartToken": token, "points": points}})
            return dict(data["redeemPoints"])

        anonymous = await redeem(gql, cart.token, 10)
        assert anonymous["__typename"] == "AuthenticationError"
        too_many = await redeem(shopper, cart.token, 501)
        assert (too_many["__typename"], too_many["field"]) == ("ValidationError", "points")
        negative = await redeem(shopper, cart.token, -5)
        assert negative["__typename"] == "ValidationError"
        for token in (others.token, done.token, "no-such-cart"):
            missing = await redeem(shopper, token, 10)
            assert (missing["__typename"], missing["field"]) == ("NotFoundError", "cartToken")
        assert await balance(session, customer) == 500  # nothing changed
        assert (await redeem(shopper, cart.token, 300))["balance"] == 200
        # A new amount replaces the hold; 0 releases it.
        assert (await redeem(shopper, cart.token, 450))["balance"] == 50
        assert (await redeem(shopper, cart.token, 0))["balance"] == 500
        await session.commit()
        kinds = (
            await session.execute(text("SELECT kind, points FROM loyalty_transaction ORDER BY id"))
        ).all()
        assert [tuple(k) for k in kinds] == [
            ("REDEEM", -300),
            ("RELEASE", 300),
            ("REDEEM", -450),
            ("RELEASE", 450),
        ]

    async def test_concurrent_redemptions_never_spend_points_twice(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        customer = await make_customer(session)
        await give_points(session, customer, 1000)
        carts = [Cart(token=f"tok-par-{i:026d}", customer_id=customer.id) for i in range(6)]
        session.add_all(carts)
        await session.commit()
        shopper = gql.as_(token_for(settings, customer))
        results = await asyncio.gather(
            *(shopper(REDEEM, {"input": {"cartToken": c.token, "points": 400}}) for c in carts)
        )
        won = [r for r in results if r["redeemPoints"]["__typename"] == "RedeemPointsSuccess"]
        assert len(won) == 2
        assert await balance(session, customer) == 200


def double_points(base_points: int, customer_id: int) -> int:
    return base_points


class TestLoyaltyOwnHook:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        campaign = FakePlugin(
            "double_points", loyalty_bonus_points=double_points, optional=["loyalty_bonus_points"]
        )
        return load_plugins(installed(settings, "loyalty"), extra=[campaign])

    async def test_other_plugins_implement_the_hook_loyalty_declares(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings, plugins: PluginRuntime
    ) -> None:
        assert plugins.implementers("loyalty_bonus_points") == ["double_points"]
        product = await make_product(session, "保温杯", price="88.00", stock={"SH": 5})
        customer = await make_customer(session)
        shopper = gql.as_(token_for(settings, customer))
        await place_order(shopper, await cart_of(shopper, [(product, 1)]))

        async def doubled() -> bool:
            return await balance(session, customer) == 176

        await eventually(doubled)
        await session.commit()
        notes = (
            (await session.execute(text("SELECT note FROM loyalty_transaction"))).scalars().all()
        )
        assert notes[0].endswith("(+88 bonus)")

    def test_the_implementing_plugin_loads_without_loyalty(self, settings: Settings) -> None:
        campaign = FakePlugin(
            "double_points", loyalty_bonus_points=double_points, optional=["loyalty_bonus_points"]
        )
        runtime = load_plugins(
            settings.model_copy(update={"disabled_plugins": "loyalty"}), extra=[campaign]
        )
        assert runtime.is_enabled("double_points")


class TestLoyaltySettings:
    @pytest.fixture
    def plugins(self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> PluginRuntime:
        monkeypatch.setenv("SHOPGRAPH_LOYALTY_POINTS_PER_UNIT", "3")
        monkeypatch.setenv("SHOPGRAPH_LOYALTY_POINT_VALUE", "5")
        return load_plugins(installed(settings, "loyalty"))

    async def test_points_follow_the_plugin_settings(
        self, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        customer = await make_customer(session)
        await give_points(session, customer, 100)
        session.add(Cart(token="tok-settings-0000000000000000001", customer_id=customer.id))
        await session.commit()
        shopper = gql.as_(token_for(settings, customer))
        data = await shopper(
            REDEEM, {"input": {"cartToken": "tok-settings-0000000000000000001", "points": 100}}
        )
        assert data["redeemPoints"]["discount"]["amount"] == "5.00"  # 100 points × 5 fen
        product = await make_product(session, "咖啡豆", price="10.00", stock={"SH": 5})
        other = await make_customer(session)
        buyer = gql.as_(token_for(settings, other))
        await place_order(buyer, await cart_of(buyer, [(product, 1)]))

        async def earned() -> bool:
            return await balance(session, other) == 30  # ¥10 × 3 points

        await eventually(earned)


class TestLoyaltyDemoData:
    """``shopgraph demo-data`` with the plugin enabled, as ``make demo`` runs it."""

    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        return load_plugins(installed(settings, "loyalty"))

    async def test_demo_customers_get_the_points_their_orders_earned(
        self, database_url: str, gql: GraphQLClient, session: AsyncSession, settings: Settings
    ) -> None:
        env = {"SHOPGRAPH_DATABASE_URL": database_url, "SHOPGRAPH_PLUGINS": "loyalty"}
        env["SHOPGRAPH_PLUGIN_ENTRY_POINTS"] = "true"  # the example is installed, not built in
        args = ["demo-data", "--customers", "20", "--products", "30", "--orders", "60"]
        args += ["--seed", "9", "--as-of", "2025-03-01"]
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
        steps = [line for line in result.stderr.splitlines() if line.startswith("demo-data: ")]
        total = POPULATE_STEPS + 1
        # The plugin's steps, then the core's last: the alerts its history raises.
        assert steps[-3:] == [
            f"demo-data: loyalty: {HOLDS} carts with points held ({POPULATE_STEPS - 1}/{total})",
            f"demo-data: loyalty: {SUMMARY} ({POPULATE_STEPS}/{total})",
            f"demo-data: alerts ({total}/{total})",
        ]
        assert f"plugin loyalty: {SUMMARY}" in result.stdout

        async def rows(sql: str) -> list[Any]:
            return list((await session.execute(text(sql))).all())

        orders = {r.id: r for r in await rows('SELECT id, total_amount, status FROM "order"')}
        ledger = await rows(
            "SELECT customer_id, kind, points, order_id, cart_id FROM loyalty_transaction"
        )
        accounts = await rows("SELECT customer_id, balance, lifetime_earned FROM loyalty_account")
        holds = await rows("SELECT cart_id, customer_id, points FROM loyalty_redemption")
        # Every order earned a point per yuan; a cancelled one gave them back.
        earned = {e.order_id: e.points for e in ledger if e.kind == "EARN"}
        assert earned == {i: o.total_amount // 100 for i, o in orders.items()}
        reversed_ = {e.order_id: e.points for e in ledger if e.kind == "REVERSE"}
        cancelled = {i for i, o in orders.items() if o.status == "CANCELLED"}
        assert cancelled and reversed_ == {i: -earned[i] for i in cancelled}
        # Some hold points against the cart they left; the ledger says so.
        assert len(holds) == HOLDS > 0
        redeemed = {e.cart_id: (e.customer_id, -e.points) for e in ledger if e.kind == "REDEEM"}
        assert redeemed == {h.cart_id: (h.customer_id, h.points) for h in holds}
        # Each balance is its ledger's sum, never below zero.
        for account in accounts:
            own = [e for e in ledger if e.customer_id == account.customer_id]
            assert account.balance == sum(e.points for e in own) >= 0
            assert account.lifetime_earned == sum(e.points for e in own if e.kind == "EARN")

        # The demo login sees its points.
        demo = await session.scalar(select(Customer).where(Customer.email == _login(result.stdout)))
        assert demo is not None
        mine = next(a for a in accounts if a.customer_id == demo.id)
        data = await gql.as_(token_for(settings, demo))(ME_POINTS)
        assert data["me"]["loyaltyPoints"] == mine.balance > 0
        assert data["loyaltyAccount"]["lifetimeEarned"] == mine.lifetime_earned

        # A populated shop is left alone, the plugin's tables included.
        again = CliRunner().invoke(cli, [*args, "--if-empty"], env=env)
        assert again.exit_code == 0 and "left as it is" in again.output
        count = await session.scalar(text("SELECT count(*) FROM loyalty_transaction"))
        assert count == len(ledger)


def _login(summary: str) -> str:
    """The demo customer's e-mail address in ``demo-data``'s summary."""
    line = next(line for line in summary.splitlines() if line.startswith("customer login: "))
    return line.removeprefix("customer login: ").split(" / ")[0]
