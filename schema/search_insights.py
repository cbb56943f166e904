"""Search analytics over GraphQL (staff): searches without results, searches with low
click-through, and rising search terms (the SQL: server.services.search_insights)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import strawberry

from server.graphql.context import Info
from server.graphql.errors import ValidationError, validation_error
from server.graphql.permissions import HasPermission
from server.models.base import utcnow
from server.permissions import CUSTOMERS_READ, INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import product_health
from server.services import search_insights as service
from server.services.errors import ValidationFailed


@strawberry.input(description="A period of searches: from (inclusive) to (exclusive).")
class SearchPeriod:
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Default: 7 days before `to`."
    )
    to: datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.type(description="One search text (normalised) over a period.")
class SearchTermStats:
    query: str = strawberry.field(
        description="The text as grouped: trimmed, case-folded, whitespace collapsed."
    )
    searches: int
    searchers: int = strawberry.field(description="Distinct customers and anonymous sessions.")
    average_result_count: float | None = strawberry.field(
        description="The results the searches found, on average (null: none reported a count)."
    )
    zero_result_searches: int
    clicks: int = strawberry.field(description="Views and adds to cart tied to these searches.")
    clicked_searches: int = strawberry.field(description="Searches followed by a click.")
    click_through_rate: float = strawberry.field(description="clickedSearches / searches.")
    last_searched_at: datetime


@strawberry.type(description="Search texts of a period, most searched first.")
class SearchTermReport:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    terms: list[SearchTermStats]
    has_more: bool = strawberry.field(description="More texts than `first` qualified.")


SearchTermReportResult = Annotated[
    SearchTermReport | ValidationError, strawberry.union("SearchTermReportResult")
]


def _report(in_period: service.Period, page: service.SearchTermPage) -> SearchTermReport:
    return SearchTermReport(
        from_=in_period.start,
        to=in_period.end,
        terms=[
            SearchTermStats(
                query=t.query,
                searches=t.searches,
                searchers=t.searchers,
                average_result_count=t.average_result_count,
                zero_result_searches=t.zero_result_searches,
                clicks=t.clicks,
                clicked_searches=t.clicked_searches,
                click_through_rate=t.click_through_rate,
                last_searched_at=t.last_searched_at,
            )
            for t in page.terms
        ],
        has_more=page.has_more,
    )


@strawberry.type
class SearchInsightQueries:
    @strawberry.field(
        description="Search texts whose searches found nothing, most such searches first "
        "(customers.read).",
        permission_classes=[HasPermission(CUSTOMERS_READ)],
    )
    async def searches_without_results(
        self, info: Info, period: SearchPeriod | None = None, first: int = 20
    ) -> SearchTermReportResult:
        given = period or SearchPeriod()
        try:
            in_period = service.period(given.from_, given.to, utcnow())
            page = await info.context.db.run(service.searches_without_results, in_period, first)
        except ValidationFailed as exc:
            return validation_error(exc)
        return _report(in_period, page)

    @strawberry.field(
        description="Search texts searched at least minSearches times whose searches were "
        "followed by a click less often than maxClickThroughRate, most searched first "
        "(customers.read).",
        permission_classes=[HasPermission(CUSTOMERS_READ)],
    )
    async def searches_with_low_click_through(
        self,
        info: Info,
        period: SearchPeriod | None = None,
        first: int = 20,
        min_searches: int = 5,
        max_click_through_rate: float = 0.1,
    ) -> SearchTermReportResult:
        given = period or SearchPeriod()
        try:
            in_period = service.period(given.from_, given.to, utcnow())
            page = await info.context.db.run(
                service.searches_with_low_click_through,
                in_period,
                first,
                min_searches=min_searches,
                max_click_through_rate=max_click_through_rate,
            )
        except ValidationFailed as exc:
            return validation_error(exc)
        return _report(in_period, page)


@strawberry.input(
    description="A period of shop days (UTC+8), from and to both included, at most 183 "
    "days, compared with the period of the same length before it."
)
class RisingSearchTermsInput:
    from_: date | None = strawberry.field(
        default=None, name="from", description="Default: the 7 days up to `to`."
    )
    to: date | None = strawberry.field(default=None, description="Default: today.")
    limit: int = strawberry.field(default=20, description="The most terms (1-100).")


@strawberry.type(description="A search text searched more than in the period before.")
class RisingSearchTerm:
    query: str = strawberry.field(
        description="The text as grouped: trimmed, case-folded, whitespace collapsed."
    )
    searches: int = strawberry.field(description="Searches in the period.")
    previous_searches: int = strawberry.field(description="Searches in the period before.")
    growth: float = strawberry.field(
        description="ln((searches + 0.5) / (previousSearches + 0.5)): the smoothed log ratio."
    )
    score: float = strawberry.field(
        description="growth - 1.2816 * sqrt(1 / (searches + 0.5) + 1 / (previousSearches + "
        "0.5)): the lower 90% confidence bound of the log ratio of the two periods' search "
        "rates (Poisson counts), above 0 for every term listed."
    )
    zero_result_searches: int = strawberry.field(
        description="Searches of the period that found nothing."
    )
    zero_result_share: float | None = strawberry.field(
        description="zeroResultSearches / the period's searches that reported a result count "
        "(null: none did)."
    )
    unmet_demand: bool = strawberry.field(
        description="zeroResultShare is at least 0.5: the shop lacks what is asked for."
    )


@strawberry.type(description="Rising search texts of a period, the highest score first.")
class RisingSearchTerms:
    from_: date = strawberry.field(name="from")
    to: date
    previous_from: date = strawberry.field(description="The period compared with starts here.")
    terms: list[RisingSearchTerm]
    has_more: bool = strawberry.field(description="More terms than `limit` rose.")


RisingSearchTermsResult = Annotated[
    RisingSearchTerms | ValidationError, strawberry.union("RisingSearchTermsResult")
]

# A long period compared with one as long before it reads twice its searches.
MAX_RISING_PERIOD_DAYS = 183


@strawberry.type
class RisingSearchQueries:
    @strawberry.field(
        description="Search texts searched more in a period than in the one as long before "
        "it, beyond chance, the highest growth score first, with their share of searches "
        "that found nothing (insights.read).",
        permission_classes=[HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)],
    )
    async def rising_search_terms(
        self, info: Info, input: RisingSearchTermsInput | None = None
    ) -> RisingSearchTermsResult:
        given = input or RisingSearchTermsInput()
        try:
            current = product_health.days_period(
                given.from_, given.to, default_days=7, max_days=MAX_RISING_PERIOD_DAYS
            )
            limit = product_health.check_limit(given.limit)
            previous = current.previous()
            page = await info.context.db.run(
                service.rising_search_terms,
                current.utc_start,
                current.utc_end,
                previous.utc_start,
                limit,
            )
        except ValidationFailed as exc:
            return validation_error(exc)
        return RisingSearchTerms(
            from_=current.start,
            to=current.last,
            previous_from=previous.start,
            terms=[
                RisingSearchTerm(
                    query=t.query,
                    searches=t.searches,
                    previous_searches=t.previous_searches,
                    growth=t.growth,
                    score=t.score,
                    zero_result_searches=t.zero_result_searches,
                    zero_result_share=t.zero_result_share,
                    unmet_demand=t.unmet_demand,
                )
                for t in page.terms
            ],
            has_more=page.has_more,
        )


QUERIES: list[type[Any]] = [SearchInsightQueries, RisingSearchQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = []
