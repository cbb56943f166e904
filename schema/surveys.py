"""Satisfaction surveys over GraphQL: the signed-in customer's open surveys (``mySurveys``)
and their answer (``answerSurvey``); for staff with insights.read, the figures of a period by
trigger, carrier or category (``satisfaction``). The rules and the SQL are in
server/services/surveys.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from schema.categories import Category
from schema.customers import Customer, signed_in_customer_id
from schema.loaders import (
    CategoryByIdLoader,
    CustomerByIdLoader,
    OrderByIdLoader,
    SurveyByIdLoader,
)
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import ConflictError, NotFoundError, ValidationError, validation_error
from server.graphql.ids import require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page, SortKey
from server.graphql.permissions import HasPermission, IsCustomer
from server.models.base import utcnow
from server.permissions import CUSTOMERS_READ, INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import product_health
from server.services import surveys as service
from server.services.errors import ValidationFailed

if TYPE_CHECKING:
    from schema.orders import Order

# GraphQL enums: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(m.SurveyKind, description="CSAT: satisfaction 1-5; NPS: recommendation 0-10.")
strawberry.enum(m.SurveyTrigger, description="What a survey follows.")
strawberry.enum(m.SurveyState, description="SENT: open; ANSWERED; EXPIRED: closed unanswered.")
strawberry.enum(
    service.Grouping,
    name="SatisfactionGrouping",
    description="TRIGGER: by what the surveys followed; CARRIER: the delivery surveys by the "
    "carrier of the parcel; CATEGORY: the surveys about an order, in each category of its "
    "lines (an order in two categories counts in both).",
)

# A manage permission includes its read.
CanRead = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)


@strawberry.type(
    description="A satisfaction survey put to a customer: seen by the customer and with "
    "customers.read."
)
class Survey(ModelNode):
    loader = SurveyByIdLoader

    id: relay.NodeID[int]
    kind: m.SurveyKind
    trigger: m.SurveyTrigger
    state: m.SurveyState
    carrier: str | None = strawberry.field(
        description="The carrier of the delivered parcel (delivery surveys)."
    )
    sent_at: datetime
    expires_at: datetime = strawberry.field(description="Unanswered by then, it closes.")
    answered_at: datetime | None
    score: int | None = strawberry.field(description="The answer: CSAT 1-5, NPS 0-10.")
    comment: str | None
    _model: strawberry.Private[m.Survey]

    @classmethod
    def can_view(cls, info: Info, model: m.Survey) -> bool:
        viewer = info.context.viewer
        return viewer.customer_id == model.customer_id or viewer.has(CUSTOMERS_READ)

    @strawberry.field(description="What the survey asks.")
    def question(self) -> str:
        return service.question(self.kind, self.trigger)

    @strawberry.field(description="The lowest score of its scale: CSAT 1, NPS 0.")
    def min_score(self) -> int:
        return service.SCALES[self.kind][0]

    @strawberry.field(description="The highest score of its scale: CSAT 5, NPS 10.")
    def max_score(self) -> int:
        return service.SCALES[self.kind][1]

    @strawberry.field(description="The number of the order it is about (null: none).")
    async def order_number(self, info: Info) -> str | None:
        if self._model.order_id is None:
            return None
        row = await info.context.loaders.get(OrderByIdLoader).load(self._model.order_id)
        return row.number if row is not None else None

    @strawberry.field(description="The order it is about, to whoever may see the order.")
    async def order(self, info: Info) -> Annotated[Order, strawberry.lazy("schema.orders")] | None:
        from schema.orders import Order

        return await Order.load(info, self._model.order_id)

    @strawberry.field(description="Who it was sent to, to whoever may see the customer.")
    async def customer(self, info: Info) -> Customer | None:
        row = await info.context.loaders.get(CustomerByIdLoader).load(self._model.customer_id)
        return (
            Customer.from_model(row) if row is not None and Customer.can_view(info, row) else None
        )


@strawberry.input(
    description="Surveys sent on the shop days from `from` to `to` (both included), grouped by `by`."
)
class SatisfactionInput:
    from_: date | None = strawberry.field(
        default=None, name="from", description="Default: the 30 days up to `to`."
    )
    to: date | None = strawberry.field(default=None, description="Default: today.")
    by: service.Grouping = service.Grouping.TRIGGER


@strawberry.type(
    description="The satisfaction figures of a set of surveys. Rates are null where there is "
    "nothing to divide by."
)
class SatisfactionGroup:
    key: str = strawberry.field(
        description="TRIGGER: the trigger (DELIVERY …); CARRIER: the carrier; CATEGORY: the "
        "category's id; ALL for the total."
    )
    label: str = strawberry.field(description="The group's name, e.g. 签收后, 顺丰速运, 耳机.")
    sent: int = strawberry.field(description="Surveys sent in the period.")
    responses: int = strawberry.field(description="Of those, the answered.")
    response_rate: float | None = strawberry.field(description="responses / sent, 0-1.")
    csat_responses: int = strawberry.field(description="Answered CSAT surveys.")
    csat_average: float | None = strawberry.field(description="Their mean score, 1-5.")
    csat_satisfied_share: float | None = strawberry.field(
        description="Their share scoring 4 or 5, 0-1."
    )
    nps_responses: int = strawberry.field(description="Answered NPS surveys.")
    promoters: int = strawberry.field(description="NPS answers of 9 or 10.")
    passives: int = strawberry.field(description="NPS answers of 7 or 8.")
    detractors: int = strawberry.field(description="NPS answers of 0 to 6.")
    nps: float | None = strawberry.field(
        description="% promoters - % detractors of the NPS answers, -100 to 100."
    )
    _category_id: strawberry.Private[int | None] = None

    @strawberry.field(description="The category (grouped by CATEGORY).")
    async def category(self, info: Info) -> Category | None:
        if self._category_id is None:
            return None
        row = await info.context.loaders.get(CategoryByIdLoader).load(self._category_id)
        return Category.from_model(row) if row is not None else None

    @classmethod
    def of(cls, group: service.SatisfactionGroup) -> SatisfactionGroup:
        f = group.figures
        return cls(
            key=group.key,
            label=group.label,
            sent=f.sent,
            responses=f.responses,
            response_rate=f.response_rate,
            csat_responses=f.csat_responses,
            csat_average=f.csat_average,
            csat_satisfied_share=f.csat_satisfied_share,
            nps_responses=f.nps_responses,
            promoters=f.promoters,
            passives=f.passives,
            detractors=f.detractors,
            nps=f.nps,
            _category_id=group.category_id,
        )


@strawberry.type(description="Satisfaction over the surveys sent in a period.")
class SatisfactionReport:
    from_: date = strawberry.field(name="from")
    to: date
    by: service.Grouping
    total: SatisfactionGroup = strawberry.field(description="Every survey of the period.")
    groups: list[SatisfactionGroup] = strawberry.field(
        description="Per group, the most surveys sent first."
    )


SatisfactionResult = Annotated[
    SatisfactionReport | ValidationError, strawberry.union("SatisfactionResult")
]


@strawberry.type
class SurveyQueries:
    @strawberry.field(
        description="The signed-in customer's open surveys (sent, neither answered nor "
        "expired), newest first.",
        permission_classes=[IsCustomer],
        extensions=[Paged()],
    )
    async def my_surveys(self, info: Info, page: Page) -> Connection[Survey]:
        stmt = service.my_surveys_query(signed_in_customer_id(info), utcnow())
        return await connection(
            info,
            stmt,
            page,
            sort=[SortKey(m.Survey.sent_at, "sent_at")],
            to_node=Survey.from_model,
            descending=True,
        )

    @strawberry.field(
        description="Satisfaction over the surveys sent in a period: in all and per group "
        "(insights.read). Rates over what was sent in the period, whenever it was answered.",
        permission_classes=[CanRead],
    )
    async def satisfaction(
        self, info: Info, input: SatisfactionInput | None = None
    ) -> SatisfactionResult:
        given = input or SatisfactionInput()
        try:
            days = product_health.days_period(
                given.from_, given.to, max_days=service.MAX_PERIOD.days
            )
            in_period = service.Period(days.utc_start, days.utc_end)
            report = await info.context.db.run(service.satisfaction, in_period, given.by)
        except ValidationFailed as exc:
            return validation_error(exc)
        return SatisfactionReport(
            from_=days.start,
            to=days.last,
            by=report.by,
            total=SatisfactionGroup.of(service.SatisfactionGroup("ALL", "全部", report.total)),
            groups=[SatisfactionGroup.of(g) for g in report.groups],
        )


@strawberry.input
class AnswerSurveyInput:
    survey_id: strawberry.ID
    score: int = strawberry.field(description="CSAT 1-5, NPS 0-10 (the survey's scale).")
    comment: str | None = strawberry.field(
        default=None, description="Anything to add, at most 1,000 characters."
    )


@strawberry.type
class AnswerSurveySuccess:
    survey: Survey


AnswerSurveyResult = Annotated[
    AnswerSurveySuccess | ValidationError | ConflictError | NotFoundError,
    strawberry.union(
        "AnswerSurveyResult",
        description="ValidationError: SCORE_OUT_OF_RANGE, or a comment over 1,000 characters; "
        "ConflictError: ALREADY_ANSWERED or SURVEY_EXPIRED; NotFoundError: no such survey of "
        "the customer's.",
    ),
]


@strawberry.type
class SurveyMutations:
    @strawberry.mutation(
        description="Answer one of the signed-in customer's open surveys.",
        permission_classes=[IsCustomer],
    )
    async def answer_survey(self, info: Info, input: AnswerSurveyInput) -> AnswerSurveyResult:
        customer_id = signed_in_customer_id(info)

        async def work(session: AsyncSession) -> m.Survey:
            survey_id = require_node_id(input.survey_id, "Survey", "surveyId")
            return await service.answer_survey(
                session, customer_id, survey_id, input.score, input.comment
            )

        return await mutate(
            info, work, lambda row: AnswerSurveySuccess(survey=Survey.from_model(row))
        )


QUERIES: list[type[Any]] = [SurveyQueries]
MUTATIONS: list[type[Any]] = [SurveyMutations]
TYPES: list[type[Any]] = [Survey]
