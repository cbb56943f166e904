"""Audiences over GraphQL: saved customer rules for staff with insights.read (reading, members
and counts, a preview of an unsaved rule) and insights.manage (create, update, delete).
Members are personal data: listing them or exporting them needs customers.read as well, and an
export is audited like any staff mutation. Customers never see audiences.

The rule is a typed input tree (``AudienceRuleInput``, one member set per node) that becomes
the rule's JSON form — the same keys — which server.services.audience_rules checks; the
``rule`` field shows that JSON with ids as global ids, so it can be sent back as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import get_object_definition
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.utils.str_converters import to_camel_case

# Declare the GraphQL enums CustomerEventKind and ChurnReasonCode, which the behaviour and
# churnRisk conditions name: imported first, so that the input types below find the classes
# already marked.
from schema import behaviour, insights  # noqa: F401
from schema.customers import Customer
from schema.loaders import AudienceByIdLoader, AudienceChangePagesByAudienceIdLoader
from server import models as m
from server.graphql.connections import (
    Paged,
    PageRequest,
    connection,
    nested_connection,
    page_request,
)
from server.graphql.context import Context, Database, Info
from server.graphql.errors import (
    ConflictError,
    InvalidAudienceRule,
    NotFoundError,
    ValidationError,
    to_graphql,
)
from server.graphql.ids import parse_node_id
from server.graphql.mutations import mutate
from server.graphql.node import FromModel, ModelNode
from server.graphql.pagination import Connection, Edge, Page, PageInfo, SortKey
from server.graphql.permissions import HasPermission
from server.permissions import CUSTOMERS_READ, INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import audience_conditions as conditions
from server.services import audience_export, churn
from server.services import audiences as service
from server.services.audience_conditions import BuildContext
from server.services.audience_rules import Rule
from server.services.errors import DomainError

# GraphQL enums: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(conditions.TagMatch, description="ANY: at least one of the tags; ALL: every one.")
strawberry.enum(
    conditions.Comparison,
    name="AudienceComparison",
    description="AT_LEAST: ≥ value; AT_MOST: ≤ value; BETWEEN: value ≤ x ≤ to.",
)
strawberry.enum(
    conditions.RfmMeasure,
    description="An RFM score (1-5) or figure: recency in days, frequency in purchases, "
    "monetary as an amount.",
)
strawberry.enum(
    conditions.Registration,
    name="RegistrationComparison",
    description="BEFORE: registered before `at`; AFTER: at or after it.",
)
strawberry.enum(m.AudienceChangeKind, description="JOINED or LEFT an audience.")

_READERS = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE)
_MANAGERS = HasPermission(INSIGHTS_MANAGE)
_CUSTOMER_READERS = HasPermission(CUSTOMERS_READ)

# --- the rule, as input -----------------------------------------------------------------------


@strawberry.input(description="Customers with any (or all) of these tags.")
class TagsConditionInput:
    match: conditions.TagMatch = conditions.TagMatch.ANY
    tags: list[str] = strawberry.field(description="1 to 50 tags.")


@strawberry.input(description="Customers now in one of these RFM segments.")
class SegmentConditionInput:
    in_: list[m.CustomerSegment] = strawberry.field(name="in")


@strawberry.input(
    description="One of the customer's RFM scores or figures compared with a value (a "
    "customer without a purchase never matches). Scores are 1-5, recency whole days, "
    "frequency purchases, monetary a decimal amount."
)
class RfmConditionInput:
    measure: conditions.RfmMeasure
    op: conditions.Comparison
    value: Decimal
    to: Decimal | None = strawberry.field(default=None, description="BETWEEN's upper bound.")


@strawberry.input(description="A probability (0 to 1) compared with a value.")
class ProbabilityComparisonInput:
    op: conditions.Comparison
    value: float
    to: float | None = strawberry.field(default=None, description="BETWEEN's upper bound.")


@strawberry.input(
    description="The customer's lifetime value (Customer.clv.value, a decimal amount; it may be "
    "negative) compared with a value and, when given, their P(alive) too. A customer without a "
    "value (no purchase, or the models could not be fitted) never matches; `not` holds for them."
)
class ClvConditionInput:
    op: conditions.Comparison
    value: Decimal
    to: Decimal | None = strawberry.field(default=None, description="BETWEEN's upper bound.")
    probability_alive: ProbabilityComparisonInput | None = strawberry.field(
        default=None, description="Customer.clv.probabilityAlive compared as well."
    )


@strawberry.input(
    description="The customer's churn probability (Customer.churnRisk.probability, 0 to 1) "
    "compared with a value and, when given, `hasReason` among its reasons. A customer without "
    "a probability (no purchase, or the purchase model could not be fitted) never matches; "
    "`not` holds for them."
)
class ChurnRiskConditionInput:
    op: conditions.Comparison
    value: float
    to: float | None = strawberry.field(default=None, description="BETWEEN's upper bound.")
    has_reason: churn.ChurnReason | None = strawberry.field(
        default=None, description="One of the risk's reasons has this code."
    )


@strawberry.input(description="Customers in one of these membership tiers.")
class TierConditionInput:
    in_: list[m.MembershipTier] = strawberry.field(name="in")


@strawberry.input(description="The place is one of these (1 to 50, as written).")
class PlaceConditionInput:
    in_: list[str] = strawberry.field(name="in")


@strawberry.input(description="Customers registered before (or at or after) a moment.")
class RegisteredConditionInput:
    op: conditions.Registration
    at: datetime


@strawberry.input(description="Purchases in the last `days` days (1 to 3650), counted.")
class OrdersConditionInput:
    days: int
    op: conditions.Comparison
    value: int
    to: int | None = strawberry.field(default=None, description="BETWEEN's upper bound.")


@strawberry.input(description="The total of the purchases in the last `days` days.")
class SpendConditionInput:
    days: int
    op: conditions.Comparison
    value: Decimal
    to: Decimal | None = strawberry.field(default=None, description="BETWEEN's upper bound.")


@strawberry.input(
    description="Customers who did `event` (on a product of the category or below it, or on "
    "the product, when one is named; a SEARCH names none) at least `atLeast` times in the last "
    "`days` days."
)
class BehaviourConditionInput:
    event: m.CustomerEventKind
    category_id: strawberry.ID | None = None
    product_id: strawberry.ID | None = None
    at_least: int = 1
    days: int


@strawberry.input(description="Customers with no purchase in the last `days` days.")
class NoOrderConditionInput:
    days: int


@strawberry.input(
    one_of=True,
    description="A rule node: exactly one of `all`, `any` (1 to 50 rules), `not` or a "
    "condition. At most 5 levels deep and 50 conditions (docs/insights.md, 'Audiences').",
)
class AudienceRuleInput:
    all_: list[AudienceRuleInput] | None = strawberry.field(
        name="all", default=strawberry.UNSET, description="Every rule holds."
    )
    any_: list[AudienceRuleInput] | None = strawberry.field(
        name="any", default=strawberry.UNSET, description="At least one rule holds."
    )
    not_: AudienceRuleInput | None = strawberry.field(
        name="not", default=strawberry.UNSET, description="The rule does not hold."
    )
    tags: TagsConditionInput | None = strawberry.UNSET
    segment: SegmentConditionInput | None = strawberry.UNSET
    rfm: RfmConditionInput | None = strawberry.UNSET
    tier: TierConditionInput | None = strawberry.UNSET
    region: PlaceConditionInput | None = strawberry.field(
        default=strawberry.UNSET,
        description="The customer's region (华东 …, from their profile).",
    )
    province: PlaceConditionInput | None = strawberry.field(
        default=strawberry.UNSET, description="The province of the default address."
    )
    city: PlaceConditionInput | None = strawberry.field(
        default=strawberry.UNSET, description="The city of the default address."
    )
    registered: RegisteredConditionInput | None = strawberry.UNSET
    orders: OrdersConditionInput | None = strawberry.UNSET
    spend: SpendConditionInput | None = strawberry.UNSET
    behaviour: BehaviourConditionInput | None = strawberry.UNSET
    no_order: NoOrderConditionInput | None = strawberry.UNSET
    clv: ClvConditionInput | None = strawberry.UNSET
    churn_risk: ChurnRiskConditionInput | None = strawberry.UNSET


# Ids in the rule: global ids in GraphQL, row ids in the rule's JSON.
_NODE_IDS = {"categoryId": "Category", "productId": "Product"}


def _name(field: Any) -> str:
    return str(field.graphql_name or to_camel_case(field.python_name))


def rule_data(value: Any) -> Any:
    """The rule's JSON form of an ``AudienceRuleInput`` (the members that are set, under their
    GraphQL names), ids as the rows' ids. A global id that names no row of its type is kept as
    the client sent it, which the rule's check answers as an unknown category or product."""
    if isinstance(value, list):
        return [rule_data(item) for item in value]
    definition = get_object_definition(type(value))
    if isinstance(definition, StrawberryObjectDefinition):
        out: dict[str, Any] = {}
        for field in definition.fields:
            item = getattr(value, field.python_name)
            if item is None or item is strawberry.UNSET:
                continue
            name = _name(field)
            node = _NODE_IDS.get(name)
            if node is None:
                out[name] = rule_data(item)
            else:
                row_id = parse_node_id(item, node)
                out[name] = row_id if row_id is not None else str(item)
        return out
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def rule_for_api(value: Any) -> Any:
    """A stored rule's JSON as the API shows it: ids as global ids."""
    if isinstance(value, list):
        return [rule_for_api(item) for item in value]
    if isinstance(value, dict):
        return {
            key: str(relay.GlobalID(_NODE_IDS[key], str(item)))
            if key in _NODE_IDS and isinstance(item, int)
            else rule_for_api(item)
            for key, item in value.items()
        }
    return value


# --- batched reads: counts and pages of members -------------------------------------------------


class _RuleLoader(DataLoader[Any, Any]):
    """A loader over audiences' rules: resolvers hand over the audience (its rule) and the
    request's context through the loader's methods; each batch evaluates its rules now."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.context: Context | None = None
        self.rules: dict[int, Rule] = {}
        super().__init__(load_fn=self._load)

    def _remember(self, info: Info, audience: m.Audience) -> int:
        self.context = info.context
        assert audience.id is not None
        if audience.id not in self.rules:
            self.rules[audience.id] = service.rule_of(audience, info.context.settings.currency)
        return audience.id

    def _build(self) -> BuildContext:
        assert self.context is not None, "load through the loader's own methods"
        return service.context(self.db.session, self.context.settings.currency)

    async def _load(self, keys: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


# Members are listed in customer id order: a cursor is the id.
_MEMBER_ORDER: list[Any] = [m.Customer.id]


class AudienceCountLoader(_RuleLoader):
    """The members of many audiences counted in one statement."""

    async def count(self, info: Info, audience: m.Audience) -> int:
        return int(await self.load(self._remember(info, audience)))

    async def _load(self, keys: Sequence[int]) -> list[int]:
        stmt = service.count_query([self.rules[key] for key in keys], self._build())
        [row] = await self.db.rows(stmt)
        return [int(n) for n in row]


class AudienceMemberPagesLoader(_RuleLoader):
    """A page of members of many audiences in one statement per distinct page asked for."""

    async def page(self, info: Info, audience: m.Audience, page: Page) -> Connection[Customer]:
        audience_id = self._remember(info, audience)
        request = page_request(_MEMBER_ORDER, page)
        rows, has_more = await self.load((audience_id, request))
        edges = [Edge(node=Customer.from_model(row), _key=[row.id]) for row in rows]
        page_info = PageInfo(
            has_next_page=has_more if not request.backwards else page.before is not None,
            has_previous_page=has_more if request.backwards else page.after is not None,
            start_cursor=edges[0].cursor() if edges else None,
            end_cursor=edges[-1].cursor() if edges else None,
        )

        async def total() -> int:
            return await info.context.loaders.get(AudienceCountLoader).count(info, audience)

        return Connection(edges=edges, page_info=page_info, _count=total)

    async def _load(
        self, keys: Sequence[tuple[int, PageRequest]]
    ) -> list[tuple[list[m.Customer], bool]]:
        by_request: dict[PageRequest, list[int]] = defaultdict(list)
        for audience_id, request in keys:
            if audience_id not in by_request[request]:
                by_request[request].append(audience_id)
        found: dict[tuple[int, PageRequest], list[m.Customer]] = defaultdict(list)
        for request, ids in by_request.items():
            if request.size == 0:
                continue
            stmt = service.member_pages_query(
                [(audience_id, self.rules[audience_id]) for audience_id in ids],
                self._build(),
                after=request.after[0] if request.after else None,
                before=request.before[0] if request.before else None,
                limit=request.size + 1,
                backwards=request.backwards,
            )
            for customer, audience_id in await self.db.rows(stmt):
                found[(audience_id, request)].append(customer)
        pages = []
        for audience_id, request in keys:
            rows = sorted(found.get((audience_id, request), ()), key=lambda c: c.id or 0)
            if request.backwards:
                rows.reverse()
            has_more = len(rows) > request.size
            rows = rows[: request.size]
            if request.backwards:
                rows.reverse()
            pages.append((rows, has_more))
        return pages


class MembershipCountLoader(DataLoader[int, int]):
    """The stored members of many audiences: one grouped COUNT."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[int]:
        counts = await self.db.run(service.membership_counts, keys)
        return [counts.get(key, 0) for key in keys]


# --- types ------------------------------------------------------------------------------------


@strawberry.type(description="A customer joined or left an audience.")
class AudienceChange(FromModel):
    kind: m.AudienceChangeKind
    at: datetime = strawberry.field(description="The computation that saw it.")
    _model: strawberry.Private[m.AudienceChange]

    @strawberry.field(description="The customer (null without customers.read).")
    async def customer(self, info: Info) -> Customer | None:
        return await Customer.load(info, self._model.customer_id)


@strawberry.type(
    description="A saved rule over customers that operators and plugins target (insights.read)."
)
class Audience(ModelNode):
    loader = AudienceByIdLoader

    id: relay.NodeID[int]
    key: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    computed_at: datetime | None = strawberry.field(
        description="When the stored memberships (membershipCount, changes, what plugins "
        "check) were last computed."
    )
    _model: strawberry.Private[m.Audience]

    @classmethod
    def can_view(cls, info: Info, model: m.Audience) -> bool:
        return info.context.viewer.has(INSIGHTS_READ, INSIGHTS_MANAGE)

    @strawberry.field(
        description="The rule, as AudienceRuleInput takes it (JSON; ids are global ids)."
    )
    def rule(self) -> JSON:
        return JSON(rule_for_api(self._model.rule))

    @strawberry.field(description="The customers the rule holds for now (one COUNT).")
    async def count(self, info: Info) -> int:
        return await info.context.loaders.get(AudienceCountLoader).count(info, self._model)

    @strawberry.field(
        description="The customers the rule holds for now, in id order (customers.read too).",
        permission_classes=[_CUSTOMER_READERS],
        extensions=[Paged()],
    )
    async def members(self, info: Info, page: Page) -> Connection[Customer]:
        loader = info.context.loaders.get(AudienceMemberPagesLoader)
        return await loader.page(info, self._model, page)

    @strawberry.field(
        description="The customers in the stored memberships (what plugins check), as of "
        "computedAt."
    )
    async def membership_count(self, info: Info) -> int:
        assert self._model.id is not None
        return await info.context.loaders.get(MembershipCountLoader).load(self._model.id)

    @strawberry.field(
        description="Who joined and who left, newest first: one row per move the "
        "recomputations (and saves of the rule) found.",
        extensions=[Paged()],
    )
    async def changes(self, info: Info, page: Page) -> Connection[AudienceChange]:
        assert self._model.id is not None
        return await nested_connection(
            info,
            AudienceChangePagesByAudienceIdLoader,
            self._model.id,
            page,
            to_node=AudienceChange.from_model,
        )


@strawberry.type(description="An unsaved rule's members now: nothing is written.")
class AudiencePreview:
    count: int
    _members: strawberry.Private[list[m.Customer]]

    @strawberry.field(
        description="The first members, in id order (customers.read too).",
        permission_classes=[_CUSTOMER_READERS],
    )
    def members(self) -> list[Customer]:
        return [Customer.from_model(row) for row in self._members]


PreviewAudienceResult = Annotated[
    AudiencePreview | InvalidAudienceRule | ValidationError,
    strawberry.union("PreviewAudienceResult"),
]

# --- queries ----------------------------------------------------------------------------------


@strawberry.type
class AudienceQueries:
    @strawberry.field(
        description="Audiences, by key (insights.read).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def audiences(self, info: Info, page: Page) -> Connection[Audience]:
        return await connection(
            info,
            service.audiences_query(),
            page,
            sort=[SortKey(m.Audience.key, "key")],
            to_node=Audience.from_model,
        )

    @strawberry.field(
        description="An audience by key; null when there is none (insights.read).",
        permission_classes=[_READERS],
    )
    async def audience(self, info: Info, key: str) -> Audience | None:
        row = await info.context.db.run(service.find_by_key, key)
        return Audience.from_model(row) if row is not None else None

    @strawberry.field(
        description="Count an unsaved rule's members now, with the first `first` (0 to 100; "
        "customers.read to see them); a bad rule is an InvalidAudienceRule (insights.read).",
        permission_classes=[_READERS],
    )
    async def preview_audience(
        self, info: Info, rule: AudienceRuleInput, first: int = 10
    ) -> PreviewAudienceResult:
        try:
            found = await info.context.db.run(
                service.preview,
                rule_data(rule),
                currency=info.context.settings.currency,
                first=first,
            )
        except DomainError as exc:
            return to_graphql(exc)  # type: ignore[return-value]  # preview raises InvalidRule or ValidationFailed only: InvalidAudienceRule or ValidationError
        return AudiencePreview(count=found.count, _members=found.members)


# --- mutations --------------------------------------------------------------------------------


@strawberry.input(description="A new audience; its memberships are computed at once.")
class CreateAudienceInput:
    key: str = strawberry.field(description="Lower-case letters, digits, hyphens; unique.")
    name: str
    rule: AudienceRuleInput
    description: str = ""


@strawberry.input(description="What to change of an audience; a new rule is computed at once.")
class UpdateAudienceInput:
    key: str
    name: str | None = None
    description: str | None = None
    rule: AudienceRuleInput | None = None


@strawberry.input
class AudienceKeyInput:
    key: str


@strawberry.type
class CreateAudienceSuccess:
    audience: Audience


@strawberry.type
class UpdateAudienceSuccess:
    audience: Audience


@strawberry.type
class DeleteAudienceSuccess:
    key: str
    deleted_id: relay.GlobalID


@strawberry.type(description="The audience's members as CSV: customer_id, email, name, region.")
class ExportAudienceSuccess:
    audience: Audience
    filename: str
    content_type: str
    rows: int
    csv: str


CreateAudienceResult = Annotated[
    CreateAudienceSuccess | InvalidAudienceRule | ValidationError | ConflictError,
    strawberry.union("CreateAudienceResult"),
]
UpdateAudienceResult = Annotated[
    UpdateAudienceSuccess | InvalidAudienceRule | ValidationError | NotFoundError,
    strawberry.union("UpdateAudienceResult"),
]
DeleteAudienceResult = Annotated[
    DeleteAudienceSuccess | NotFoundError, strawberry.union("DeleteAudienceResult")
]
ExportAudienceResult = Annotated[
    ExportAudienceSuccess | NotFoundError | ValidationError,
    strawberry.union("ExportAudienceResult"),
]


@strawberry.type
class AudienceMutations:
    @strawberry.mutation(permission_classes=[_MANAGERS])
    async def create_audience(self, info: Info, input: CreateAudienceInput) -> CreateAudienceResult:
        async def work(session: AsyncSession) -> m.Audience:
            return await service.create_audience(
                session,
                key=input.key,
                name=input.name,
                description=input.description,
                rule=rule_data(input.rule),
                currency=info.context.settings.currency,
            )

        return await mutate(
            info, work, lambda row: CreateAudienceSuccess(audience=Audience.from_model(row))
        )

    @strawberry.mutation(permission_classes=[_MANAGERS])
    async def update_audience(self, info: Info, input: UpdateAudienceInput) -> UpdateAudienceResult:
        async def work(session: AsyncSession) -> m.Audience:
            return await service.update_audience(
                session,
                input.key,
                name=input.name,
                description=input.description,
                rule=rule_data(input.rule) if input.rule is not None else None,
                currency=info.context.settings.currency,
            )

        return await mutate(
            info, work, lambda row: UpdateAudienceSuccess(audience=Audience.from_model(row))
        )

    @strawberry.mutation(
        description="Delete an audience, its memberships and their history.",
        permission_classes=[_MANAGERS],
    )
    async def delete_audience(self, info: Info, input: AudienceKeyInput) -> DeleteAudienceResult:
        async def work(session: AsyncSession) -> m.Audience:
            return await service.delete_audience(session, input.key)

        return await mutate(
            info,
            work,
            lambda row: DeleteAudienceSuccess(
                key=row.key, deleted_id=relay.GlobalID("Audience", str(row.id))
            ),
        )

    @strawberry.mutation(
        description="The audience's members now as CSV (customer_id, email, name, region), up "
        "to 10,000 of them (larger ones: `shopgraph insights export-audience`). Personal data: "
        "needs customers.read besides insights.read, and is audited.",
        permission_classes=[_READERS, _CUSTOMER_READERS],
    )
    async def export_audience(self, info: Info, input: AudienceKeyInput) -> ExportAudienceResult:
        async def work(session: AsyncSession) -> audience_export.Export:
            return await audience_export.export_csv(
                session, input.key, currency=info.context.settings.currency
            )

        return await mutate(
            info,
            work,
            lambda done: ExportAudienceSuccess(
                audience=Audience.from_model(done.audience),
                filename=done.filename,
                content_type="text/csv; charset=utf-8",
                rows=done.rows,
                csv=done.csv,
            ),
        )


QUERIES: list[type[Any]] = [AudienceQueries]
MUTATIONS: list[type[Any]] = [AudienceMutations]
TYPES: list[type[Any]] = [Audience]
