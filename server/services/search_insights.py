"""Search analytics for staff: which searches find nothing, which find things nobody clicks,
and which are searched more and more (rising terms, with their share of searches that found
nothing: unmet demand).

Searches are the SEARCH behaviour events shoppers' clients record (``recordEvent``), grouped by
their normalised text (``CustomerEvent.search_key``). A click is a VIEW or ADD_TO_CART event
tied to a search when it was recorded (``CustomerEvent.search_id``; the rule is in
``server.services.behaviour.record``). A period is ``[start, end)`` of the searches' times; a
search's clicks count whenever they came.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, String, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import CustomerEvent, CustomerEventKind
from server.services.behaviour import CLICK_KINDS
from server.services.errors import ValidationFailed
from server.services.periods import Moments as Period
from server.services.periods import aware, moments

DEFAULT_PERIOD = timedelta(days=7)
MAX_PERIOD = timedelta(days=366)
MAX_FIRST = 100
# Rates are compared in millionths, in integers: no float rounding decides a threshold.
_RATE_SCALE = 1_000_000


def period(start: datetime | None, end: datetime | None, now: datetime) -> Period:
    """:func:`periods.moments`, by default the 7 days before ``end``."""
    return moments(start, end, now, default=DEFAULT_PERIOD, longest=MAX_PERIOD)


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
            last_searched_at=aware(row.last_searched_at),
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


# --- rising search terms --------------------------------------------------------------------------

# The one-sided confidence of the growth score: a term's score is the lower 90% bound of the
# log of its search rate this period over the previous one.
GROWTH_CONFIDENCE = 0.9
_GROWTH_Z = NormalDist().inv_cdf(GROWTH_CONFIDENCE)
# Added to both counts (Haldane-Anscombe): a term new this period has a finite ratio.
GROWTH_SMOOTHING = 0.5
# A term is unmet demand when at least this share of its searches (that reported a result
# count) found nothing.
UNMET_DEMAND_SHARE = 0.5


def growth_score(searches: int, previous: int) -> float:
    """The lower one-sided :data:`GROWTH_CONFIDENCE` bound of the log rate ratio of two
    Poisson counts of equal-length periods, with :data:`GROWTH_SMOOTHING` (s) added to each::

        ln((c + s) / (p + s)) - z * sqrt(1 / (c + s) + 1 / (p + s))

    Above 0: the term is searched more than before, beyond what chance makes of small counts
    (3 searches against none score 0.008, 1 against none -0.99, 10 against none 1.19)."""
    c, p = searches + GROWTH_SMOOTHING, previous + GROWTH_SMOOTHING
    return math.log(c / p) - _GROWTH_Z * math.sqrt(1 / c + 1 / p)


def _fewest_rising_searches() -> int:
    """The fewest searches a term scoring above 0 has: against none before (a term's score
    only falls as its previous count grows)."""
    searches = 1
    while growth_score(searches, 0) <= 0:
        searches += 1
    return searches


MIN_RISING_SEARCHES = _fewest_rising_searches()


@dataclass(frozen=True)
class RisingTerm:
    """A search text searched more in a period than in the period of the same length before."""

    query: str
    searches: int
    previous_searches: int
    # Searches of the period that reported a result count, and those whose count was 0.
    counted_searches: int
    zero_result_searches: int

    @property
    def growth(self) -> float:
        """ln((searches + s) / (previous + s)): the smoothed log ratio, without the margin."""
        return math.log(
            (self.searches + GROWTH_SMOOTHING) / (self.previous_searches + GROWTH_SMOOTHING)
        )

    @property
    def score(self) -> float:
        return growth_score(self.searches, self.previous_searches)

    @property
    def zero_result_share(self) -> float | None:
        """The share of the period's searches that found nothing, of those that reported a
        result count (None: none did)."""
        if not self.counted_searches:
            return None
        return self.zero_result_searches / self.counted_searches

    @property
    def unmet_demand(self) -> bool:
        share = self.zero_result_share
        return share is not None and share >= UNMET_DEMAND_SHARE


@dataclass(frozen=True)
class RisingTermPage:
    terms: list[RisingTerm]
    has_more: bool


async def rising_search_terms(
    session: AsyncSession, start: datetime, end: datetime, previous_start: datetime, limit: int
) -> RisingTermPage:
    """The search texts of ``[start, end)`` whose :func:`growth_score` against
    ``[previous_start, start)`` is above 0, the highest first (then the most searched), at
    most ``limit``. One statement counts both periods per text; only texts searched at least
    :data:`MIN_RISING_SEARCHES` times, and more often than before, leave the database."""
    search = CustomerEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ on a table model without declaring it
    current = search.c.occurred_at >= start
    result_count = search.c.data["result_count"].as_integer()
    searches = func.sum(case((current, 1), else_=0))
    previous = func.sum(case((current, 0), else_=1))
    stmt = (
        select(
            search.c.search_key,
            searches,
            previous,
            func.sum(case((current & result_count.is_not(None), 1), else_=0)),
            func.sum(case((current & (result_count == 0), 1), else_=0)),
        )
        .where(
            search.c.kind == CustomerEventKind.SEARCH.value,
            search.c.occurred_at >= previous_start,
            search.c.occurred_at < end,
            search.c.search_key.is_not(None),
        )
        .group_by(search.c.search_key)
        .having(searches >= MIN_RISING_SEARCHES, searches > previous)
    )
    terms = [
        RisingTerm(str(key), int(c), int(p), int(counted or 0), int(zero or 0))
        for key, c, p, counted, zero in (await session.execute(stmt)).all()
    ]
    rising = sorted(
        (t for t in terms if t.score > 0), key=lambda t: (-t.score, -t.searches, t.query)
    )
    return RisingTermPage(rising[:limit], has_more=len(rising) > limit)
