"""``publish_live`` and the process's hub: only committed changes are heard, once per distinct
message of a transaction; messages stay small; a slow subscriber holds up nobody."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import pytest

from server.app import AppState
from server.config import Settings
from server.live import MAX_MESSAGE_BYTES, QUEUE_SIZE, RESYNC, LiveHub, publish
from server.models import OrderStatus
from server.services import orders
from tests.support.accounts import make_customer
from tests.support.kpis import order as make_order
from tests.support.orders import only_plugins

WAIT = 30


@pytest.fixture
async def state(settings: Settings) -> AsyncIterator[AppState]:
    """What the app holds: its session factory, hub and (on PostgreSQL) LISTEN connection."""
    state = AppState(settings, only_plugins(settings))
    if state.live_listener is not None:
        await state.live_listener.start()
        assert await state.live_listener.wait_listening(WAIT)
    try:
        yield state
    finally:
        if state.live_listener is not None:
            await state.live_listener.stop()
        await state.engine.dispose()


async def test_only_a_committed_change_is_heard_and_once(state: AppState) -> None:
    async with state.sessions() as session:
        customer = await make_customer(session)
        order = await make_order(
            session, "live", customer, 1000, date.today(), OrderStatus.PENDING_PAYMENT, paid=False
        )
        await session.commit()
    assert order.id is not None
    topic = f"order:{order.id}"
    async with state.live.subscribe(topic) as queue:
        # A transition that rolls back tells nobody.
        async with state.sessions() as session:
            await orders.transition_order(session, state.plugins, order.id, OrderStatus.PAID)
            await session.rollback()
        # One that commits is heard once, however many times the transaction published it.
        async with state.sessions() as session:
            await orders.transition_order(session, state.plugins, order.id, OrderStatus.PAID)
            await publish(session, topic, {"order_id": order.id})
            await session.commit()
        assert await asyncio.wait_for(queue.get(), WAIT) == {"order_id": order.id}
        async with state.sessions() as session:
            await publish(session, topic, {"order_id": order.id, "last": True})
            await session.commit()
        # Nothing came in between: neither the rolled-back change nor a second copy.
        assert await asyncio.wait_for(queue.get(), WAIT) == {"order_id": order.id, "last": True}
        assert queue.empty()
    assert state.live.subscriber_count() == 0


async def test_a_message_too_big_for_notify_is_refused(state: AppState) -> None:
    # {"topic":"t","payload":{"x":"…"}}: 32 bytes around the value.
    fits = "x" * (MAX_MESSAGE_BYTES - 1 - 32)
    async with state.live.subscribe("t") as queue, state.sessions() as session:
        await publish(session, "t", {"x": fits})
        with pytest.raises(ValueError, match="7900 bytes; at most 7899"):
            await publish(session, "t", {"x": fits + "x"})
        with pytest.raises(ValueError, match="1 to 200 characters"):
            await publish(session, "", {})
        await session.commit()
        assert await asyncio.wait_for(queue.get(), WAIT) == {"x": fits}


async def test_a_slow_subscriber_gets_a_resync_and_holds_up_nobody() -> None:
    hub = LiveHub()
    fast_got: list[object] = []
    async with hub.subscribe("order:1") as fast, hub.subscribe("order:1") as slow:
        for n in range(QUEUE_SIZE + 4):
            hub.deliver(f'{{"topic":"order:1","payload":{{"n":{n}}}}}')
            fast_got.append(fast.get_nowait())
        slow_got = [slow.get_nowait() for _ in range(slow.qsize())]
    assert fast_got == [{"n": n} for n in range(QUEUE_SIZE + 4)]
    # 16 waiting filled the queue; the 17th replaced them with one resync; 3 more followed.
    assert slow_got == [RESYNC, {"n": 17}, {"n": 18}, {"n": 19}]
    assert hub.subscriber_count() == 0
