"""Search analytics for staff: which searches find nothing, and which find things nobody clicks.

Searches are the SEARCH behaviour events shoppers' clients record (``recordEvent``), grouped by
their normalised text (``CustomerEvent.search_key``). A click is a VIEW or ADD_TO_CART event
tied to a search when it was recorded (``CustomerEvent.search_id``; the rule is in
``server.services.behaviour.record``). A period is ``[start, end)`` of the searches' times; a
search's clicks count whenever they came.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, String, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import CustomerEvent, CustomerEventKind
from server.services.behaviour import CLICK_KINDS
from server.services.errors import ValidationFailed

DEFAULT_PERIOD = timedelta(days=7)
MAX_PERIOD = timedelta(days=366)
MAX_FIRST = 100
# Rates are compared in millionths, in integers: no float rounding decides a threshold.
_RATE_SCALE = 1_000_000


@dataclass(frozen=True)
class Period:
    """Searches at or after ``start`` and before ``end``."""

    start: datetime
    end: datetime


def period(start: datetime | None, end: datetime | None, now: datetime) -> Period:
    """The period ``[start, end)``: ``end`` defaults to now, ``start`` to 7 days before ``end``;
    a time without an offset is UTC. An empty, reversed or over-long period is refused."""
    end = _aware(end) if end is not None else now
    start = _aware(start) if start is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise ValidationFailed("from must be before to", field="from")
    if end - start > MAX_PERIOD:
        raise ValidationFailed(f"a period spans at most {MAX_PERIOD.days} days", field="from")
    return Period(start, end)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def check_first(first: int) -> int:
    if not 1 <= first <= MAX_FIRST:
        raise ValidationFailed(f"first must be between 1 and {MAX_FIRST}", field="first")
    return first


@dataclass(frozen=True)
class SearchTermStats:
    """One normalised search text over a period."""

    query: str
    searches: int
    searchers: int
    # The mean result count of the searches that reported one (None: none did).
    average_result_count: float | None
    zero_result_searches: int
    clicks: int
    clicked_searches: int
    last_searched_at: datetime

    @property
    def click_through_rate(self) -> float:
        """The share of the searches followed by at least one click."""
        return self.clicked_searches / self.searches if self.searches else 0.0


@dataclass(frozen=True)
class SearchTermPage:
    terms: list[SearchTermStats]
    has_more: bool


def _terms(in_period: Period, *, zero_results_only: bool) -> tuple[Select[Any], dict[str, Any]]:
    """Per search text: the grouped statement, and its aggregate columns by name."""
    search = CustomerEvent.__table__.alias("search")  # type: ignore[attr-defined]  # SQLModel sets __table__ on a table model without declaring it
    click = CustomerEvent.__table__.alias("click")  # type: ignore[attr-defined]  # SQLModel sets __table__ on a table model without declaring it
    # A search's clicks come after it: the clicks of searches of the period are at or after its
    # start (the kind-and-time index narrows them).
    clicks = (
        select(click.c.search_id, func.count().label("n"))
        .where(
            click.c.kind.in_([k.value for k in CLICK_KINDS]),
            click.c.occurred_at >= in_period.start,
            click.c.search_id.is_not(None),
        )
        .group_by(click.c.search_id)
        .subquery("clicks")
    )
    result_count = search.c.data["result_count"].as_integer()
    searcher = case(
        (search.c.customer_id.is_not(None), literal("c:") + cast(search.c.customer_id, String)),
        else_=literal("s:") + search.c.session_id,
    )
    clicked = case((func.coalesce(clicks.c.n, 0) > 0, 1), else_=0)
    columns: dict[str, Any] = {
        "searches": func.count(),
        "searchers": func.count(searcher.distinct()),
        "average_result_count": func.avg(result_count),
        "zero_result_searches": func.sum(case((result_count == 0, 1), else_=0)),
        "clicks": func.sum(func.coalesce(clicks.c.n, 0)),
        "clicked_searches": func.sum(clicked),
        "last_searched_at": func.max(search.c.occurred_at),
    }
    conditions: list[ColumnElement[bool]] = [
        search.c.kind == CustomerEventKind.SEARCH.value,
        search.c.occurred_at >= in_period.start,
        search.c.occurred_at < in_period.end,
        search.c.search_key.is_not(None),
    ]
    if zero_results_only:
        conditions.append(result_count == 0)
    stmt = (
        select(search.c.search_key, *(c.label(name) for name, c in columns.items()))
        .select_from(search.outerjoin(clicks, clicks.c.search_id == search.c.id))
        .where(*conditions)
        .group_by(search.c.search_key)
    )
    return stmt, columns


async def _page(
    session: AsyncSession, stmt: Select[Any], columns: dict[str, Any], first: int
) -> SearchTermPage:
    stmt = stmt.order_by(columns["searches"].desc(), stmt.selected_columns[0]).limit(first + 1)
    rows = (await session.execute(stmt)).all()
    terms = [
        SearchTermStats(
            query=row[0],
            searches=int(row.searches),
            searchers=int(row.searchers),
            average_result_count=None
            if row.average_result_count is None
            else float(row.average_result_count),
            zero_result_searches=int(row.zero_result_searches or 0),
            clicks=int(row.clicks or 0),
            clicked_searches=int(row.clicked_searches or 0),
            last_searched_at=_aware(row.last_searched_at),
        )
        for row in rows[:first]
    ]
    return SearchTermPage(terms, has_more=len(rows) > first)


async def searches_without_results(
    session: AsyncSession, in_period: Period, first: int
) -> SearchTermPage:
    """The texts of the period's searches that found nothing, most such searches first."""
    stmt, columns = _terms(in_period, zero_results_only=True)
    return await _page(session, stmt, columns, check_first(first))


async def searches_with_low_click_through(
    session: AsyncSession,
    in_period: Period,
    first: int,
    *,
    min_searches: int,
    max_click_through_rate: float,
) -> SearchTermPage:
    """The texts searched at least ``min_searches`` times in the period whose searches were
    followed by a click less often than ``max_click_through_rate``, most searched first."""
    if min_searches < 1:
        raise ValidationFailed("minSearches must be at least 1", field="minSearches")
    if not 0 <= max_click_through_rate <= 1:
        raise ValidationFailed(
            "maxClickThroughRate must be between 0 and 1", field="maxClickThroughRate"
        )
    first = check_first(first)
    stmt, columns = _terms(in_period, zero_results_only=False)
    threshold = literal(round(max_click_through_rate * _RATE_SCALE), Integer)
    stmt = stmt.having(
        columns["searches"] >= min_searches,
        columns["clicked_searches"] * _RATE_SCALE < threshold * columns["searches"],
    )
    return await _page(session, stmt, columns, first)
