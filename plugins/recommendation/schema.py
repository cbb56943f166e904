"""The recommendation plugin over GraphQL: ``recommendations`` for every shopper, the product
and customer pages' lists (``Product.similarProducts``, ``Product.frequentlyBoughtTogether``,
``Customer.buyAgain``), click and conversion reports, the customer's opt-out, and the
operator's merchandising and figures."""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.dataloader import DataLoader

from plugins.recommendation import MANAGE
from plugins.recommendation.models import (
    Component,
    MerchandisingKind,
    NeighbourSource,
    RecommendationContext,
    RecommendationMerchandising,
)
from plugins.recommendation.service import lists, merchandising, serving, tracking
from plugins.recommendation.service.hybrid import Ask
from plugins.recommendation.service.settings import RecommendationSettings
from server.models import utcnow
from server.plugin import (
    AuthenticationError,
    Category,
    ConflictError,
    Connection,
    Database,
    DomainError,
    HasPermission,
    Info,
    IsCustomer,
    ModelByIdLoader,
    ModelNode,
    Money,
    NotFoundError,
    Page,
    Paged,
    Product,
    ProductView,
    ValidationError,
    ValidationFailed,
    connection,
    money,
    mutate,
    parse_node_id,
    require_node_id,
    run_write,
)

PLUGIN = "recommendation"
INSIGHTS_READ = "insights.read"
INSIGHTS_MANAGE = "insights.manage"
_MANAGERS = HasPermission(MANAGE)
_READERS = HasPermission(INSIGHTS_READ, INSIGHTS_MANAGE, MANAGE)

strawberry.enum(
    RecommendationContext,
    name="RecommendationContext",
    description="Where recommendations are shown: HOME, PRODUCT (a product page: productId), "
    "CART, CATEGORY (a category page: categoryId), SEARCH_EMPTY (a search that found nothing).",
)
strawberry.enum(
    Component,
    name="RecommendationComponent",
    description="Where a recommended product came from: REPEAT (buy again), BOUGHT_WITH "
    "(association rules), SIMILAR (collaborative filtering and content), POPULAR, NEW, PINNED "
    "(the shop's pin).",
)
strawberry.enum(
    serving.FilterRule,
    name="RecommendationFilterRule",
    description="The business rule that removed a candidate: INACTIVE, EXCLUDED (by the "
    "shop), OUT_OF_STOCK, RECENTLY_BOUGHT (a durable good bought lately, or a consumable not "
    "due yet), DIVERSITY (its category had its share of the page).",
)
strawberry.enum(
    MerchandisingKind,
    name="MerchandisingKind",
    description="PIN: always shown, at its position; EXCLUDE: never shown.",
)
strawberry.enum(
    NeighbourSource,
    name="SimilaritySource",
    description="CF: bought and viewed by the same shoppers; CONTENT: alike in category, "
    "brand, tags, attributes and text.",
)


def _config(info: Info) -> RecommendationSettings:
    config: RecommendationSettings = info.context.plugins.config_for(PLUGIN)
    return config


def _first(first: int) -> int:
    try:
        return serving.check_first(first)
    except DomainError as exc:
        raise _input_error(exc) from exc


def _input_error(exc: DomainError) -> GraphQLError:
    # GraphQLError is never masked: the client needs to know what to fix.
    return GraphQLError(exc.message, extensions={"code": "BAD_USER_INPUT", "field": exc.field})


async def _resolved(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _products(info: Info, ids: Sequence[int]) -> list[Product | None]:
    """The products of ``ids`` the viewer may see (None for the others), in one batch."""
    found = await asyncio.gather(*(_resolved(Product.by_id(info, pid)) for pid in ids))
    return list(found)


# --- recommendations -------------------------------------------------------------------------


@strawberry.type(description="Why a product is recommended.")
class RecommendationReason:
    component: Component
    text: str = strawberry.field(
        description='In words: "you buy this about every 14 days", "often bought with X", '
        '"similar to Y you viewed", "popular in Z this week", "new in a category you like", '
        '"chosen by the shop".'
    )
    interval_days: float | None = strawberry.field(
        description="REPEAT: the product's repurchase cycle in days."
    )
    _product_id: strawberry.Private[int | None]
    _category_id: strawberry.Private[int | None]

    @strawberry.field(description="The product it came from (BOUGHT_WITH, SIMILAR).")
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self._product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it

    @strawberry.field(description="The category it came from (POPULAR, NEW).")
    def category(self, info: Info) -> Category | None:
        return Category.by_id(info, self._category_id)  # type: ignore[return-value]  # a Category or an awaitable of one: GraphQL awaits it


@strawberry.type(description="One recommended product.")
class RecommendedProduct:
    product: Product
    score: float = strawberry.field(description="The blend of the components' scores.")
    position: int = strawberry.field(description="1 for the first.")
    component: Component
    reason: RecommendationReason


@strawberry.type(description="A candidate a business rule removed (staff, with explain).")
class FilteredCandidate:
    rule: serving.FilterRule
    _product_id: strawberry.Private[int]

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self._product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it


@strawberry.type(description="One answer: report clicks and orders with its id.")
class RecommendationList:
    id: strawberry.ID = strawberry.field(description="The recommendation id.")
    context: RecommendationContext
    blend: str = strawberry.field(
        description="The blend of components that served it: 'default', or the variant the "
        "recommendation experiment gave the visitor."
    )
    personalised: bool = strawberry.field(
        description="False when the customer turned personalised recommendations off."
    )
    items: list[RecommendedProduct]
    filtered: list[FilteredCandidate] | None = strawberry.field(
        description="What the business rules removed, and by which rule: for staff asking "
        "with explain, else null."
    )


async def _answer(info: Info, answer: serving.Answer, explain: bool) -> RecommendationList:
    products = await _products(info, [i.product_id for i in answer.items])
    items = [
        RecommendedProduct(
            product=product,
            score=item.score,
            position=item.position,
            component=item.component,
            reason=RecommendationReason(
                component=item.reason.component,
                text=item.text,
                interval_days=item.reason.interval_days,
                _product_id=item.reason.product_id,
                _category_id=item.reason.category_id,
            ),
        )
        for item, product in zip(answer.items, products, strict=True)
        if product is not None
    ]
    filtered = (
        [FilteredCandidate(rule=f.rule, _product_id=f.product_id) for f in answer.filtered]
        if explain and info.context.viewer.is_staff
        else None
    )
    return RecommendationList(
        id=strawberry.ID(answer.id),
        context=answer.context,
        blend=answer.blend,
        personalised=answer.personalised,
        items=items,
        filtered=filtered,
    )


# --- product and customer pages --------------------------------------------------------------


class _ListLoader(DataLoader[tuple[int, int], list[Any]]):
    """Keys ``(id, first)`` → a list; one statement per distinct ``first`` of the request."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def fetch(
        self, session: AsyncSession, ids: list[int], first: int
    ) -> dict[int, list[Any]]:
        raise NotImplementedError

    async def _load(self, keys: Sequence[tuple[int, int]]) -> list[list[Any]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for pid, first in keys:
            groups[first].append(pid)
        found: dict[tuple[int, int], list[Any]] = {}
        for first, ids in groups.items():
            lists_of = await self.db.run(self.fetch, ids, first)
            for pid in ids:
                found[(pid, first)] = lists_of.get(pid, [])
        return [found[key] for key in keys]


class SimilarProductsLoader(_ListLoader):
    async def fetch(
        self, session: AsyncSession, ids: list[int], first: int
    ) -> dict[int, list[Any]]:
        return dict(await lists.similar_products(session, ids, first))


class BoughtTogetherLoader(_ListLoader):
    async def fetch(
        self, session: AsyncSession, ids: list[int], first: int
    ) -> dict[int, list[Any]]:
        return dict(await lists.bought_together(session, ids, first))


class BuyAgainLoader(DataLoader[int, list[lists.BuyAgain]]):
    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[lists.BuyAgain]]:
        found = await self.db.run(lists.buy_again, list(keys))
        return [found.get(key, []) for key in keys]


class OptedOutLoader(DataLoader[int, bool]):
    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[bool]:
        out = await self.db.run(merchandising.opted_out_among, list(keys))
        return [key in out for key in keys]


@strawberry.type(description="A product like another one.")
class SimilarProduct:
    product: Product
    score: float = strawberry.field(description="Cosine similarity, 0 to 1.")
    source: NeighbourSource


@strawberry.type(description="A product bought together with another (an association rule).")
class BoughtTogether:
    product: Product
    support: float = strawberry.field(description="Orders holding both / all orders.")
    confidence: float = strawberry.field(
        description="Orders holding both / orders holding the first."
    )
    lift: float = strawberry.field(
        description="confidence / the share of orders holding this one (over 1: together "
        "more often than by chance)."
    )
    orders: int = strawberry.field(description="Orders holding both.")


@strawberry.type(description="A product the customer buys again, and when it is due.")
class BuyAgainItem:
    product: Product
    last_bought_at: datetime
    times_bought: int = strawberry.field(description="Orders that held it.")
    interval_days: float | None = strawberry.field(
        description="Its repurchase cycle in days (the shop's, else the customer's own)."
    )
    due_at: datetime | None = strawberry.field(description="lastBoughtAt + intervalDays.")


@strawberry.type
class ProductRecommendations:
    """Fields added to the core ``Product`` type."""

    # Both lists read their products' rows with them (products on sale: anyone may see them),
    # so a listing asking for them costs two statements whatever its length.
    @strawberry.field(
        description="Products like this one, by co-view and co-purchase (CF) and by content, "
        "best first (on sale and in stock; recommendation plugin)."
    )
    async def similar_products(
        self, info: Info, root: ProductView, first: int = 10
    ) -> list[SimilarProduct]:
        if _first(first) == 0:
            return []
        near = await info.context.loaders.get(SimilarProductsLoader).load((root.id, first))
        return [
            SimilarProduct(product=Product.from_model(n.product), score=n.score, source=n.source)
            for n in near
        ]

    @strawberry.field(
        description="Products often bought in the same order as this one, by lift "
        "(association rules; recommendation plugin)."
    )
    async def frequently_bought_together(
        self, info: Info, root: ProductView, first: int = 10
    ) -> list[BoughtTogether]:
        if _first(first) == 0:
            return []
        rules = await info.context.loaders.get(BoughtTogetherLoader).load((root.id, first))
        return [
            BoughtTogether(
                product=Product.from_model(r.product),
                support=r.support,
                confidence=r.confidence,
                lift=r.lift,
                orders=r.orders,
            )
            for r in rules
        ]


@strawberry.type
class CustomerRecommendations:
    """Fields added to the core ``Customer`` type (``self`` is the Customer: seen only by the
    customer themself and staff with customers.read)."""

    @strawberry.field(
        description="What the customer buys again, most due first: consumables on their "
        "cycle (recommendation plugin)."
    )
    async def buy_again(self, info: Info, first: int = 10) -> list[BuyAgainItem]:
        if _first(first) == 0:
            return []
        customer_id = int(self.id)  # type: ignore[attr-defined]  # self is the core Customer this class adds fields to
        due = (await info.context.loaders.get(BuyAgainLoader).load(customer_id))[:first]
        products = await _products(info, [b.product_id for b in due])
        return [
            BuyAgainItem(
                product=p,
                last_bought_at=b.last_bought_at,
                times_bought=b.times_bought,
                interval_days=b.interval_days,
                due_at=b.due_at,
            )
            for b, p in zip(due, products, strict=True)
            if p is not None
        ]

    @strawberry.field(
        description="False when the customer turned personalised recommendations off "
        "(setRecommendationPersonalisation)."
    )
    async def recommendations_personalised(self, info: Info) -> bool:
        customer_id = int(self.id)  # type: ignore[attr-defined]  # self is the core Customer this class adds fields to
        return not await info.context.loaders.get(OptedOutLoader).load(customer_id)


# --- merchandising ---------------------------------------------------------------------------


class MerchandisingRuleByIdLoader(ModelByIdLoader):
    model = RecommendationMerchandising


@strawberry.type(description="An operator's pin or exclusion (recommendation.manage).")
class MerchandisingRule(ModelNode):
    loader = MerchandisingRuleByIdLoader

    id: relay.NodeID[int]
    kind: MerchandisingKind
    position: int | None = strawberry.field(description="A pin's slot (1 for the first).")
    note: str
    created_at: datetime
    product_id: strawberry.Private[int]
    _model: strawberry.Private[RecommendationMerchandising]

    @classmethod
    def can_view(cls, info: Info, model: RecommendationMerchandising) -> bool:
        return info.context.viewer.has(MANAGE)

    @strawberry.field(description="The context it applies to; null: every context.")
    def context(self) -> RecommendationContext | None:
        raw = self._model.context
        return RecommendationContext(raw) if raw is not None else None

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self.product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it


@strawberry.input
class PinRecommendationInput:
    product_id: strawberry.ID
    position: int = strawberry.field(description="The slot, 1 to 100.")
    context: RecommendationContext | None = strawberry.field(
        default=None, description="Null: every context."
    )
    note: str = ""


@strawberry.input
class ExcludeFromRecommendationsInput:
    product_id: strawberry.ID
    context: RecommendationContext | None = strawberry.field(
        default=None, description="Null: every context."
    )
    note: str = ""


@strawberry.input
class RemoveRecommendationRuleInput:
    id: strawberry.ID = strawberry.field(description="A MerchandisingRule's id.")


@strawberry.type
class PinRecommendationSuccess:
    rule: MerchandisingRule


@strawberry.type
class ExcludeFromRecommendationsSuccess:
    rule: MerchandisingRule


@strawberry.type
class RemoveRecommendationRuleSuccess:
    removed_id: strawberry.ID


PinRecommendationResult = Annotated[
    PinRecommendationSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("PinRecommendationResult"),
]
ExcludeFromRecommendationsResult = Annotated[
    ExcludeFromRecommendationsSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("ExcludeFromRecommendationsResult"),
]
RemoveRecommendationRuleResult = Annotated[
    RemoveRecommendationRuleSuccess | NotFoundError,
    strawberry.union("RemoveRecommendationRuleResult"),
]


def _rule(row: RecommendationMerchandising) -> MerchandisingRule:
    return MerchandisingRule.from_model(row)


# --- the customer's choice and tracking ------------------------------------------------------


@strawberry.input
class SetRecommendationPersonalisationInput:
    enabled: bool = strawberry.field(
        description="False: recommendations stop using your purchases and browsing."
    )


@strawberry.type
class SetRecommendationPersonalisationSuccess:
    enabled: bool


SetRecommendationPersonalisationResult = Annotated[
    SetRecommendationPersonalisationSuccess | AuthenticationError,
    strawberry.union("SetRecommendationPersonalisationResult"),
]


@strawberry.input
class RecordRecommendationClickInput:
    recommendation_id: strawberry.ID = strawberry.field(description="RecommendationList.id.")
    product_id: strawberry.ID


@strawberry.type
class RecordRecommendationClickSuccess:
    recommendation_id: strawberry.ID
    component: Component
    position: int
    recorded: bool = strawberry.field(
        description="False: this click was reported before (nothing changed)."
    )
    _product_id: strawberry.Private[int]

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self._product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it


RecordRecommendationClickResult = Annotated[
    RecordRecommendationClickSuccess | NotFoundError | ValidationError,
    strawberry.union("RecordRecommendationClickResult"),
]


@strawberry.input
class RecordRecommendationConversionInput:
    recommendation_id: strawberry.ID = strawberry.field(description="RecommendationList.id.")
    order_id: strawberry.ID = strawberry.field(
        description="The order that followed: the signed-in customer's, or a guest order of "
        "the session the recommendation was served to."
    )


@strawberry.type
class RecordRecommendationConversionSuccess:
    recommendation_id: strawberry.ID
    revenue: Money = strawberry.field(
        description="What the order paid for the recommended products it holds."
    )
    recorded: bool = strawberry.field(
        description="False: this order was reported for this recommendation before."
    )
    _product_ids: strawberry.Private[tuple[int, ...]]

    @strawberry.field(description="The recommended products the order holds.")
    async def products(self, info: Info) -> list[Product]:
        return [p for p in await _products(info, self._product_ids) if p is not None]


RecordRecommendationConversionResult = Annotated[
    RecordRecommendationConversionSuccess | NotFoundError | ValidationError,
    strawberry.union("RecordRecommendationConversionResult"),
]


# --- performance -----------------------------------------------------------------------------


@strawberry.type(description="What a set of recommendations did.")
class RecommendationFigures:
    answers: int = strawberry.field(description="Answers served.")
    shown: int = strawberry.field(description="Products shown in them.")
    clicks: int = strawberry.field(description="Clicks reported on them.")
    click_through: float | None = strawberry.field(description="clicks / shown.")
    orders: int = strawberry.field(description="Orders reported after them.")
    converted: int = strawberry.field(description="Answers followed by an order.")
    conversion_rate: float | None = strawberry.field(description="converted / answers.")
    revenue: Money = strawberry.field(
        description="What those orders paid for the recommended products they held."
    )


@strawberry.type
class RecommendationContextPerformance:
    context: RecommendationContext
    figures: RecommendationFigures


@strawberry.type
class RecommendationBlendPerformance:
    blend: str
    figures: RecommendationFigures


@strawberry.type(description="One component's recommended products.")
class RecommendationComponentPerformance:
    component: Component
    shown: int
    clicks: int
    click_through: float | None = strawberry.field(description="clicks / shown.")
    converted: int = strawberry.field(description="Of those shown, those an order then held.")
    conversion_rate: float | None = strawberry.field(description="converted / shown.")


@strawberry.type(
    description="Recommendations served on the shop days from–to (both included), with the "
    "clicks and orders reported after them."
)
class RecommendationPerformance:
    from_: date = strawberry.field(name="from")
    to: date
    total: RecommendationFigures
    by_context: list[RecommendationContextPerformance]
    by_blend: list[RecommendationBlendPerformance]
    by_component: list[RecommendationComponentPerformance]


RecommendationPerformanceResult = Annotated[
    RecommendationPerformance | ValidationError,
    strawberry.union("RecommendationPerformanceResult"),
]


def _figures(f: tracking.Figures, currency: str) -> RecommendationFigures:
    return RecommendationFigures(
        answers=f.answers,
        shown=f.shown,
        clicks=f.clicks,
        click_through=f.click_through,
        orders=f.orders,
        converted=f.converted,
        conversion_rate=f.conversion_rate,
        revenue=money(f.revenue, currency),
    )


def _performance(p: tracking.Performance, currency: str) -> RecommendationPerformance:
    return RecommendationPerformance(
        from_=p.first,
        to=p.last,
        total=_figures(p.total, currency),
        by_context=[
            RecommendationContextPerformance(context=c, figures=_figures(p.by_context[c], currency))
            for c in RecommendationContext
            if c in p.by_context
        ],
        by_blend=[
            RecommendationBlendPerformance(blend=b, figures=_figures(f, currency))
            for b, f in sorted(p.by_blend.items())
        ],
        by_component=[
            RecommendationComponentPerformance(
                component=c,
                shown=f.shown,
                clicks=f.clicks,
                click_through=f.click_through,
                converted=f.converted,
                conversion_rate=f.conversion_rate,
            )
            for c in Component
            if (f := p.by_component.get(c)) is not None
        ],
    )


# --- root fields -----------------------------------------------------------------------------


@strawberry.type
class RecommendationQueries:
    @strawberry.field(
        description="Recommended products for the viewer: a signed-in customer, or an "
        "anonymous shopper followed by sessionId (keep one per visitor). Each answer is "
        "recorded; report clicks and orders with its id. explain: staff also see what the "
        "business rules removed."
    )
    async def recommendations(
        self,
        info: Info,
        context: RecommendationContext,
        product_id: strawberry.ID | None = None,
        category_id: strawberry.ID | None = None,
        session_id: str | None = None,
        first: int = 10,
        explain: bool = False,
    ) -> RecommendationList:
        first = _first(first)
        ask = Ask(
            context=context,
            now=utcnow(),
            product_id=parse_node_id(product_id, "Product") if product_id else None,
            category_id=parse_node_id(category_id, "Category") if category_id else None,
        )
        try:
            answer = await run_write(
                info,
                serving.recommend,
                customer_id=info.context.viewer.customer_id,
                session_id=session_id,
                ask=ask,
                first=first,
                settings=_config(info),
            )
        except DomainError as exc:
            raise _input_error(exc) from exc
        return await _answer(info, answer, explain)

    @strawberry.field(
        description="The operator's pins and exclusions, oldest first; a context narrows "
        "them to its own and those of every context (recommendation.manage).",
        permission_classes=[_MANAGERS],
        extensions=[Paged()],
    )
    async def recommendation_merchandising(
        self,
        info: Info,
        page: Page,
        context: RecommendationContext | None = None,
        kind: MerchandisingKind | None = None,
    ) -> Connection[MerchandisingRule]:
        return await connection(
            info, merchandising.rules_query(context, kind), page, sort=[], to_node=_rule
        )

    @strawberry.field(
        description="Click-through and conversion of the recommendations served on the shop "
        "days from–to (UTC+8, both included): in all, per context, per blend and per "
        "component (insights.read).",
        permission_classes=[_READERS],
    )
    async def recommendation_performance(
        self,
        info: Info,
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
    ) -> RecommendationPerformanceResult:
        try:
            report = await info.context.db.run(tracking.performance, from_, to)
        except ValidationFailed as exc:
            return ValidationError(code=exc.code, message=exc.message, field=exc.field)
        return _performance(report, info.context.settings.currency)


@strawberry.type
class RecommendationMutations:
    @strawberry.mutation(
        description="Show a product at a position in a context's recommendations, or in "
        "every context's (recommendation.manage).",
        permission_classes=[_MANAGERS],
    )
    async def pin_recommendation(
        self, info: Info, input: PinRecommendationInput
    ) -> PinRecommendationResult:
        async def work(session: AsyncSession) -> RecommendationMerchandising:
            product_id = require_node_id(input.product_id, "Product", "productId")
            return await merchandising.pin(
                session, product_id, input.context, input.position, input.note
            )

        return await mutate(info, work, lambda row: PinRecommendationSuccess(rule=_rule(row)))

    @strawberry.mutation(
        description="Never recommend a product in a context, or in any (recommendation.manage).",
        permission_classes=[_MANAGERS],
    )
    async def exclude_from_recommendations(
        self, info: Info, input: ExcludeFromRecommendationsInput
    ) -> ExcludeFromRecommendationsResult:
        async def work(session: AsyncSession) -> RecommendationMerchandising:
            product_id = require_node_id(input.product_id, "Product", "productId")
            return await merchandising.exclude(session, product_id, input.context, input.note)

        return await mutate(
            info, work, lambda row: ExcludeFromRecommendationsSuccess(rule=_rule(row))
        )

    @strawberry.mutation(
        description="Remove a pin or an exclusion (recommendation.manage).",
        permission_classes=[_MANAGERS],
    )
    async def remove_recommendation_rule(
        self, info: Info, input: RemoveRecommendationRuleInput
    ) -> RemoveRecommendationRuleResult:
        async def work(session: AsyncSession) -> int:
            rule_id = require_node_id(input.id, "MerchandisingRule", "id")
            return await merchandising.remove_rule(session, rule_id)

        return await mutate(
            info,
            work,
            lambda rid: RemoveRecommendationRuleSuccess(
                removed_id=strawberry.ID(str(relay.GlobalID("MerchandisingRule", str(rid))))
            ),
        )

    @strawberry.mutation(
        description="Turn the signed-in customer's personalised recommendations on or off. "
        "Off, their answers use neither their purchases nor their browsing.",
        permission_classes=[IsCustomer],
    )
    async def set_recommendation_personalisation(
        self, info: Info, input: SetRecommendationPersonalisationInput
    ) -> SetRecommendationPersonalisationResult:
        customer_id = info.context.viewer.customer_id
        assert customer_id is not None  # IsCustomer admitted the viewer

        async def work(session: AsyncSession) -> bool:
            return await merchandising.set_personalisation(session, customer_id, input.enabled)

        return await mutate(
            info, work, lambda enabled: SetRecommendationPersonalisationSuccess(enabled=enabled)
        )

    @strawberry.mutation(
        description="Report a click on a recommended product (once per recommendation and "
        "product: a retry changes nothing)."
    )
    async def record_recommendation_click(
        self, info: Info, input: RecordRecommendationClickInput
    ) -> RecordRecommendationClickResult:
        async def work(session: AsyncSession) -> tracking.ClickRecorded:
            product_id = require_node_id(input.product_id, "Product", "productId")
            return await tracking.record_click(session, str(input.recommendation_id), product_id)

        return await mutate(
            info,
            work,
            lambda c: RecordRecommendationClickSuccess(
                recommendation_id=strawberry.ID(c.recommendation_id),
                component=c.component,
                position=c.position,
                recorded=c.recorded,
                _product_id=c.product_id,
            ),
        )

    @strawberry.mutation(
        description="Report the order that followed a recommendation (once per "
        "recommendation and order)."
    )
    async def record_recommendation_conversion(
        self, info: Info, input: RecordRecommendationConversionInput
    ) -> RecordRecommendationConversionResult:
        customer_id = info.context.viewer.customer_id

        async def work(session: AsyncSession) -> tracking.ConversionRecorded:
            order_id = require_node_id(input.order_id, "Order", "orderId")
            return await tracking.record_conversion(
                session, str(input.recommendation_id), order_id, customer_id=customer_id
            )

        return await mutate(
            info,
            work,
            lambda c: RecordRecommendationConversionSuccess(
                recommendation_id=strawberry.ID(c.recommendation_id),
                revenue=money(c.revenue_amount, c.currency),
                recorded=c.recorded,
                _product_ids=c.product_ids,
            ),
        )


QUERIES: list[type[Any]] = [RecommendationQueries]
MUTATIONS: list[type[Any]] = [RecommendationMutations]
TYPES: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {
    "Product": [ProductRecommendations],
    "Customer": [CustomerRecommendations],
}
