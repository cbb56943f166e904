"""The experiments' service as plugins call it (server.plugin.variant_for), on SQLite and
PostgreSQL: the variant of a visitor, the exposure it records, and visitors it refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import ExperimentExposure, ExperimentMetric
from server.plugin import variant_for
from server.services import experiments
from server.services.errors import NotFound, ValidationFailed
from tests.support.accounts import make_customer

VARIANTS = [experiments.Variant("control", 1), experiments.Variant("treatment", 3)]


async def _exposures(session: AsyncSession) -> list[tuple[str, str, int | None]]:
    rows = await session.execute(
        select(
            col(ExperimentExposure.visitor),
            col(ExperimentExposure.variant),
            col(ExperimentExposure.customer_id),
        ).order_by(col(ExperimentExposure.id))
    )
    return [(r.visitor, r.variant, r.customer_id) for r in rows]


async def test_variant_for_answers_and_records_only_while_running(session: AsyncSession) -> None:
    customer = await make_customer(session, password=None)
    await experiments.create_experiment(
        session,
        key="gift-wrap-banner",
        name="礼品包装横幅",
        hypothesis="",
        variants=VARIANTS,
        primary_metric=ExperimentMetric.AOV,
        min_sample_size=200,
    )
    me = f"customer:{customer.id}"
    assert await variant_for(session, "gift-wrap-banner", me) is None  # a draft
    await experiments.start_experiment(session, "gift-wrap-banner")
    first = await variant_for(session, "gift-wrap-banner", me)
    assert first == experiments.assign("gift-wrap-banner", VARIANTS, me)
    for _ in range(3):
        assert await variant_for(session, "gift-wrap-banner", me) == first
    anonymous = await variant_for(session, "gift-wrap-banner", "session:app-9")
    assert anonymous == experiments.assign("gift-wrap-banner", VARIANTS, "session:app-9")
    assert await variant_for(session, "no-such-test", me) is None
    await session.commit()
    assert await _exposures(session) == [
        (me, first, customer.id),
        ("session:app-9", anonymous, None),
    ]
    await experiments.stop_experiment(session, "gift-wrap-banner")
    assert await variant_for(session, "gift-wrap-banner", "session:late") is None
    await session.commit()
    assert len(await _exposures(session)) == 2


@pytest.mark.parametrize(
    "visitor",
    [
        "12",
        "customer:",
        "customer:0",
        "customer:12a",
        "customer:99999999999",
        "session:",
        "session: padded",
        "session:" + "x" * 65,
        "visitor:12",
        "",
    ],
)
def test_a_malformed_visitor_is_refused(visitor: str) -> None:
    # variant_for checks its visitor first, before it reads anything.
    with pytest.raises(ValidationFailed) as refused:
        experiments.parse_visitor(visitor)
    assert refused.value.field == "visitor"


async def test_an_unknown_customer_is_refused_and_nothing_is_written(
    session: AsyncSession,
) -> None:
    await experiments.create_experiment(
        session,
        key="free-shipping",
        name="包邮门槛",
        hypothesis="",
        variants=VARIANTS,
        primary_metric=ExperimentMetric.CONVERSION,
        min_sample_size=200,
    )
    await experiments.start_experiment(session, "free-shipping")
    with pytest.raises(NotFound):
        await variant_for(session, "free-shipping", "customer:2147483647")
    await session.commit()
    assert await _exposures(session) == []
