"""Part refunds (``refund_amount`` and the ``refund_payment_part`` hook): never more than
captured minus refunded, concurrent refunds of one order included; a cancellation after a part
refund gives back only the rest."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.config import Settings
from server.db import create_engine, mark_write, session_factory
from server.hookcall import PluginFailed
from server.models import Order, OrderStatus, Payment, PaymentRefund, PaymentStatus
from server.plugin import (
    PaymentGateway,
    PaymentOutcome,
    PaymentResult,
    PluginInfo,
    ValidationFailed,
    hookimpl,
    refund_amount,
)
from server.plugins import PluginRuntime
from server.services import gateways
from tests.support.orders import only_plugins

_numbers = itertools.count(1)


class Wallet:
    """A gateway that records the part refunds it is asked for; ``refuse`` makes it raise,
    ``answer`` changes the status it answers."""

    PLUGIN_INFO = PluginInfo(name="wallet", version="1.0")

    def __init__(self) -> None:
        self.parts: list[tuple[str, int, str]] = []
        self.refuse = False
        self.answer = PaymentOutcome.REFUNDED

    @hookimpl
    def payment_gateways(self) -> list[PaymentGateway]:
        return [PaymentGateway(code="wallet", label="钱包")]

    @hookimpl
    def refund_payment_part(
        self, gateway: str, payment: Payment, amount: int, reason: str
    ) -> PaymentResult:
        if self.refuse:
            raise RuntimeError("the wallet is closed")
        self.parts.append((gateway, amount, reason))
        return PaymentResult(self.answer, f"wr-{payment.id}-{len(self.parts)}", "部分退款")


@pytest.fixture
def wallet() -> Wallet:
    return Wallet()


@pytest.fixture
def plugins(settings: Settings, wallet: Wallet) -> PluginRuntime:
    return only_plugins(settings, wallet)


async def _paid_order(session: AsyncSession, *amounts: int, gateway: str = "wallet") -> Order:
    order = Order(
        number=f"SG-RF-{next(_numbers)}",
        status=OrderStatus.PAID,
        total_amount=sum(amounts),
    )
    session.add(order)
    await session.flush()
    for amount in amounts:
        session.add(Payment(order_id=order.id, gateway=gateway, amount=amount, reference="pay"))
    await session.commit()
    return order


async def _again(session: AsyncSession, order_id: int | None) -> Order:
    """The order, read again (a rollback expires what the session held)."""
    await session.rollback()
    order = await session.get(Order, order_id)
    assert order is not None
    return order


async def _refunded(session: AsyncSession, order: Order) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(col(PaymentRefund.amount)), 0)).where(
            col(PaymentRefund.order_id) == order.id
        )
    )
    return int(total or 0)


async def test_hook_refund_payment_part(
    session: AsyncSession, plugins: PluginRuntime, wallet: Wallet
) -> None:
    order = await _paid_order(session, 6000, 4000)
    reference = await refund_amount(session, plugins, order, 7000, "价格保护")
    await session.commit()
    # Oldest payment first: 6000 of the first, 1000 of the second, each through the gateway.
    assert wallet.parts == [("wallet", 6000, "价格保护"), ("wallet", 1000, "价格保护")]
    assert reference.count(",") == 1
    payments = list(await session.scalars(select(Payment).order_by(col(Payment.id))))
    # The first is given back whole: REFUNDED; the second stays CAPTURED with 3000 left.
    assert [p.status for p in payments] == [PaymentStatus.REFUNDED, PaymentStatus.CAPTURED]
    assert await gateways.refundable(session, order.id or 0) == 3000

    # A gateway answering anything but REFUNDED, or raising, fails the call: nothing written.
    oid = order.id
    wallet.answer = PaymentOutcome.DECLINED
    with pytest.raises(PluginFailed):
        await refund_amount(session, plugins, order, 100, "x")
    order = await _again(session, oid)
    wallet.answer = PaymentOutcome.REFUNDED
    wallet.refuse = True
    with pytest.raises(PluginFailed):
        await refund_amount(session, plugins, order, 100, "x")
    order = await _again(session, oid)
    assert await _refunded(session, order) == 7000


async def test_never_more_than_captured_minus_refunded(
    session: AsyncSession, plugins: PluginRuntime, wallet: Wallet
) -> None:
    order = await _paid_order(session, 5000)
    oid = order.id
    with pytest.raises(ValidationFailed):
        await refund_amount(session, plugins, order, 5001, "x")
    order = await _again(session, oid)
    with pytest.raises(ValidationFailed):
        await refund_amount(session, plugins, order, 0, "x")
    order = await _again(session, oid)
    await refund_amount(session, plugins, order, 3000, "a")
    await session.commit()
    with pytest.raises(ValidationFailed):
        await refund_amount(session, plugins, order, 2001, "b")
    order = await _again(session, oid)
    await refund_amount(session, plugins, order, 2000, "b")
    await session.commit()
    assert await _refunded(session, order) == 5000
    assert wallet.parts == [("wallet", 3000, "a"), ("wallet", 2000, "b")]


async def test_concurrent_part_refunds_of_one_order_never_exceed_it(
    database_url: str, session: AsyncSession, plugins: PluginRuntime
) -> None:
    order = await _paid_order(session, 10000)
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def attempt() -> bool:
        async with sessions() as own:
            # As a mutation does: the transaction writes from its first statement.
            await mark_write(own)
            row = await own.get(Order, order.id)
            assert row is not None
            try:
                await refund_amount(own, plugins, row, 6000, "concurrent")
            except ValidationFailed:
                await own.rollback()
                return False
            await own.commit()
            return True

    try:
        outcomes = await asyncio.gather(*(attempt() for _ in range(3)))
    finally:
        await engine.dispose()
    assert sorted(outcomes) == [False, False, True]
    assert await _refunded(session, order) == 6000


async def test_a_cancellation_after_a_part_refund_gives_back_the_rest(
    session: AsyncSession, plugins: PluginRuntime, wallet: Wallet
) -> None:
    order = await _paid_order(session, 8000)
    await refund_amount(session, plugins, order, 2500, "价格保护")
    await session.commit()
    await gateways.refund_captured(session, plugins, order, reason="取消")
    await session.commit()
    assert wallet.parts == [("wallet", 2500, "价格保护"), ("wallet", 5500, "取消")]
    assert await _refunded(session, order) == 8000
    payment = await session.scalar(select(Payment).where(col(Payment.order_id) == order.id))
    assert payment is not None and payment.status is PaymentStatus.REFUNDED


async def test_the_builtin_gateways_refund_parts(session: AsyncSession, settings: Settings) -> None:
    plugins = only_plugins(settings)
    order = await _paid_order(session, 3000, gateway="test")
    reference = await refund_amount(session, plugins, order, 1200, "价格保护")
    await session.commit()
    assert reference.startswith("refund_")
    part = await session.scalar(select(PaymentRefund))
    assert part is not None
    assert (part.amount, part.reference, part.message) == (
        1200,
        reference,
        "refunded 1200 of pay",
    )
