"""The plugin's demo data, written in the demo shop's transaction: a full rebuild of the models
from the shop's history, a few pins and an exclusion, and recommendations served over the last
weeks (through the serving path itself) with the clicks and orders that followed, so that the
performance query, the KPIs and every list show something in ``make demo``."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.recommendation.models import (
    Component,
    MerchandisingKind,
    RecommendationClick,
    RecommendationContext,
    RecommendationConversion,
    RecommendationMerchandising,
    RecommendationOptOut,
    RecommendationPopularity,
)
from plugins.recommendation.service import serving
from plugins.recommendation.service.hybrid import Ask
from plugins.recommendation.service.rebuild import rebuild
from plugins.recommendation.service.settings import RecommendationSettings
from plugins.recommendation.service.store import SqlStore, pk
from server.models import Order, OrderLine, OrderStatus
from server.plugin import DemoShop

# How much is served: answers before this many of the customers' recent orders, and to this
# many anonymous sessions; the orders looked at are those of the last WINDOW.
ORDERS = 120
SESSIONS = 40
WINDOW = timedelta(days=45)
PAGE = 10


class _Shared:
    """The demo's session as the rebuild's sessions see it: its commits are flushes, so the
    build is written in the demo's transaction (committed with the shop, or not at all)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def commit(self) -> None:
        await self._session.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _in_transaction(session: AsyncSession) -> Any:
    @asynccontextmanager
    async def shared() -> AsyncIterator[AsyncSession]:
        yield cast(AsyncSession, _Shared(session))

    return shared


def _click_chance(position: int) -> float:
    # Shoppers look at the top of a list most: a tenth of first places is clicked.
    return 0.1 / position**0.7


async def fill(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    config: Any,
    progress: Callable[[str], None],
) -> dict[str, int]:
    settings = config if isinstance(config, RecommendationSettings) else RecommendationSettings()
    report = await rebuild(_in_transaction(session), settings, progress=progress)
    model_rows = sum(int(n) for n in report.stats.get("rows", {}).values())

    # The operator: the shop-wide favourite of two categories pinned on the home page, a
    # product left out of every recommendation, and one customer who opted out.
    store = SqlStore(session)
    build = await store.build_id()
    tops = (
        await session.execute(
            select(
                col(RecommendationPopularity.category_id), col(RecommendationPopularity.product_id)
            )
            .where(
                col(RecommendationPopularity.build_id) == build,
                col(RecommendationPopularity.category_id).is_not(None),
                col(RecommendationPopularity.rank) == 1,
            )
            .order_by(col(RecommendationPopularity.category_id))
        )
    ).all()
    picks = rng.sample([pid for _, pid in tops], min(3, len(tops)))
    rules = [
        RecommendationMerchandising(
            context=RecommendationContext.HOME,
            product_id=pid,
            kind=MerchandisingKind.PIN,
            position=position,
            note=note,
        )
        for pid, position, note in zip(picks[:2], (2, 5), ("本周主推", "店长推荐"), strict=False)
    ]
    if len(picks) == 3:
        rules.append(
            RecommendationMerchandising(
                product_id=picks[2], kind=MerchandisingKind.EXCLUDE, note="临期处理，暂不推荐"
            )
        )
    session.add_all(rules)
    others = [c for c in shop.customer_ids if c != shop.demo_customer_id]
    if others:
        session.add(RecommendationOptOut(customer_id=rng.choice(others), created_at=shop.as_of))
    await session.flush()
    progress("pins and an exclusion")

    # Customers' answers shortly before an order of theirs; the order converts them when it
    # holds what they recommended.
    recent = (
        await session.execute(
            select(col(Order.id), col(Order.customer_id), col(Order.placed_at))
            .where(
                col(Order.id).in_(shop.order_ids),
                col(Order.customer_id).is_not(None),
                col(Order.status) != OrderStatus.CANCELLED,
                col(Order.placed_at) >= shop.as_of - WINDOW,
            )
            .order_by(col(Order.placed_at), col(Order.id))
        )
    ).all()
    chosen = sorted(rng.sample(recent, min(ORDERS, len(recent))), key=lambda r: (r[2], r[0]))
    lines: dict[int, list[tuple[int, int]]] = defaultdict(list)
    if chosen:
        for line_order, product_id, amount in await session.execute(
            select(
                col(OrderLine.order_id), col(OrderLine.product_id), col(OrderLine.line_total_amount)
            ).where(col(OrderLine.order_id).in_([o for o, _, _ in chosen]))
        ):
            lines[line_order].append((product_id, amount))
    served = clicks = conversions = 0
    contexts = [RecommendationContext.HOME] * 3 + [
        RecommendationContext.PRODUCT,
        RecommendationContext.CART,
    ]
    for order, buyer, placed_at in chosen:
        order_id = pk(order)
        at = placed_at - timedelta(minutes=rng.randint(20, 48 * 60))
        context = rng.choice(contexts)
        bought = lines.get(order_id, [])
        page = bought[0][0] if context is RecommendationContext.PRODUCT and bought else None
        answer = await _serve(session, rng, settings, at, context, buyer, None, page)
        served += 1
        shown = {i.product_id: i for i in answer.items}
        held = [(pid, amount) for pid, amount in bought if pid in shown]
        clicked = {pid for pid, _ in held} | {
            i.product_id for i in answer.items if rng.random() < _click_chance(i.position)
        }
        clicks += _clicks(session, answer, clicked, at)
        if held:
            session.add(
                RecommendationConversion(
                    impression_id=answer.id,
                    order_id=order_id,
                    product_ids=sorted({pid for pid, _ in held}),
                    revenue_amount=sum(amount for _, amount in held),
                    created_at=placed_at,
                )
            )
            conversions += 1
    # Anonymous visitors browsing the home page.
    for n in range(SESSIONS):
        at = shop.as_of - timedelta(minutes=rng.randint(10, int(WINDOW.total_seconds() // 60)))
        answer = await _serve(
            session, rng, settings, at, RecommendationContext.HOME, None, f"demo-{n}", None
        )
        served += 1
        clicked = {i.product_id for i in answer.items if rng.random() < _click_chance(i.position)}
        clicks += _clicks(session, answer, clicked, at)
    await session.flush()
    progress("recommendations served, clicked and bought")
    return {
        "model rows": model_rows,
        "merchandising rules": len(rules),
        "recommendations served": served,
        "clicks": clicks,
        "conversions": conversions,
    }


async def _serve(
    session: AsyncSession,
    rng: random.Random,
    settings: RecommendationSettings,
    at: datetime,
    context: RecommendationContext,
    customer_id: int | None,
    session_id: str | None,
    page: int | None,
) -> serving.Answer:
    return await serving.recommend(
        session,
        customer_id=customer_id,
        session_id=session_id,
        ask=Ask(context, at, product_id=page),
        first=PAGE,
        settings=settings,
        answer_id=f"{rng.getrandbits(128):032x}",
    )


def _clicks(session: AsyncSession, answer: serving.Answer, clicked: set[int], at: datetime) -> int:
    n = 0
    for item in answer.items:
        if item.product_id in clicked:
            session.add(
                RecommendationClick(
                    impression_id=answer.id,
                    product_id=item.product_id,
                    component=Component(item.component),
                    position=item.position,
                    created_at=at + timedelta(seconds=30 * item.position),
                )
            )
            n += 1
    return n
