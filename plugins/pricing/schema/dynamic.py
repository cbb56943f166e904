"""Elasticity and dynamic pricing over GraphQL, staff only: ``priceElasticity``,
``priceSuggestions``; ``setDynamicPricing``, ``suggestPrices``, ``approvePriceSuggestion``,
``rejectPriceSuggestion``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry import relay

from plugins.pricing import APPROVE, READ
from plugins.pricing.models import (
    DynamicMode,
    DynamicRule,
    PriceSuggestion,
    SuggestionStatus,
)
from plugins.pricing.service import elasticity, suggestions
from plugins.pricing.service.elasticity import EstimateLevel, EstimateStatus
from plugins.pricing.service.settings import pricing_settings
from server.models import Category as CategoryRow
from server.models import Product as ProductRow
from server.plugin import (
    ConflictError,
    Connection,
    HasPermission,
    Info,
    ModelByIdLoader,
    ModelNode,
    Money,
    NotFound,
    NotFoundError,
    Page,
    Paged,
    Product,
    ValidationError,
    connection,
    money,
    mutate,
    parse_node_id,
    require_node_id,
)

MANAGE = "pricing.manage"
NOTE_MAX = 500
MAX_PRODUCTS = 100
_READERS = HasPermission(READ, MANAGE, APPROVE)
_DECIDERS = HasPermission(APPROVE)
_RUNNERS = HasPermission(APPROVE, MANAGE)

strawberry.enum(
    EstimateStatus,
    name="ElasticityStatus",
    description="OK: an estimate; INSUFFICIENT: too few days or price levels to estimate.",
)
strawberry.enum(
    EstimateLevel,
    name="ElasticityLevel",
    description="PRODUCT: the product's own data; CATEGORY: its category's products pooled.",
)
strawberry.enum(
    DynamicMode,
    name="DynamicPricingMode",
    description="SUGGEST: suggestions wait for approval; AUTO: applied at once when they "
    "move the price by at most autoMaxChangeBp.",
)
strawberry.enum(
    SuggestionStatus,
    name="PriceSuggestionStatus",
    description="PENDING, APPROVED (and applied), REJECTED, AUTO_APPLIED, SUPERSEDED (a newer "
    "suggestion for the product replaced it).",
)


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return None if pk is None else strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


@strawberry.type(
    description="A product's own-price elasticity: the change in units sold, in "
    "percent, for a one percent change in price (staff)."
)
class PriceElasticity:
    status: EstimateStatus
    level: EstimateLevel
    estimate: float | None = strawberry.field(description="Null when INSUFFICIENT.")
    low: float | None = strawberry.field(description="The 95% interval's lower end.")
    high: float | None = strawberry.field(description="The 95% interval's upper end.")
    standard_error: float | None
    observations: int = strawberry.field(description="Days the fit used (zero-sale days too).")
    price_levels: int = strawberry.field(description="Distinct prices in those days.")
    reason: str = strawberry.field(description="Why INSUFFICIENT, or why the category's.")
    product_id: strawberry.ID | None
    category_id: strawberry.ID | None


def _elasticity(e: elasticity.Estimate) -> PriceElasticity:
    return PriceElasticity(
        status=e.status,
        level=e.level,
        estimate=e.value,
        low=e.low,
        high=e.high,
        standard_error=e.std_error,
        observations=e.observations,
        price_levels=e.price_levels,
        reason=e.reason,
        product_id=_gid("Product", e.product_id),
        category_id=_gid("Category", e.category_id),
    )


@strawberry.type(description="A factor that drove a price suggestion.")
class PriceSuggestionFactor:
    name: str = strawberry.field(
        description="stock_cover_days, velocity, competitor_min, elasticity or bound."
    )
    value: float | None
    detail: str


class PriceSuggestionByIdLoader(ModelByIdLoader):
    model = PriceSuggestion


@strawberry.type(
    name="PriceSuggestion",
    description="A suggested price for a product, why, and what it is expected to change per "
    "day (staff).",
)
class PriceSuggestionNode(ModelNode):
    loader = PriceSuggestionByIdLoader

    id: relay.NodeID[int]
    status: SuggestionStatus
    elasticity: float | None
    expected_units_change: float = strawberry.field(
        description="Units a day at the suggested price less at today's (forecast rate)."
    )
    created_at: datetime
    decided_at: datetime | None
    decided_by: str
    note: str
    product_id: strawberry.Private[int]
    _model: strawberry.Private[PriceSuggestion]

    @classmethod
    def can_view(cls, info: Info, model: PriceSuggestion) -> bool:
        return info.context.viewer.has(READ, MANAGE, APPROVE)

    @strawberry.field(description="The price it replaces.")
    def current_price(self) -> Money:
        return money(self._model.current_amount, self._model.currency)

    @strawberry.field
    def suggested_price(self) -> Money:
        return money(self._model.suggested_amount, self._model.currency)

    @strawberry.field(description="Profit a day at the suggested price less at today's.")
    def expected_profit_change(self) -> Money:
        return money(self._model.expected_profit_change, self._model.currency)

    @strawberry.field
    def factors(self) -> list[PriceSuggestionFactor]:
        return [
            PriceSuggestionFactor(
                name=str(f.get("name", "")),
                value=None if f.get("value") is None else float(f["value"]),
                detail=str(f.get("detail", "")),
            )
            for f in self._model.factors or []
        ]

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self.product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it


def _suggestion(row: PriceSuggestion) -> PriceSuggestionNode:
    return PriceSuggestionNode.from_model(row)


@strawberry.type(description="Dynamic pricing switched on for a product or a category.")
class DynamicPricingRule:
    id: strawberry.ID
    mode: DynamicMode
    auto_max_change_bp: int
    active: bool
    product_id: strawberry.ID | None
    category_id: strawberry.ID | None


def _rule(rule: DynamicRule) -> DynamicPricingRule:
    return DynamicPricingRule(
        id=strawberry.ID(str(rule.id)),
        mode=rule.mode,
        auto_max_change_bp=rule.auto_max_change_bp,
        active=rule.active,
        product_id=_gid("Product", rule.product_id),
        category_id=_gid("Category", rule.category_id),
    )


@strawberry.input
class SetDynamicPricingInput:
    product_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = None
    mode: DynamicMode = DynamicMode.SUGGEST
    auto_max_change_bp: int = strawberry.field(
        default=500, description="AUTO applies a suggestion moving the price by at most this."
    )
    active: bool = True


@strawberry.input
class SuggestPricesInput:
    product_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="At most 100; null: every product under dynamic pricing."
    )


@strawberry.input
class DecidePriceSuggestionInput:
    id: strawberry.ID = strawberry.field(description="A PriceSuggestion's id.")
    note: str = strawberry.field(default="", description="At most 500 characters.")


@strawberry.type
class SetDynamicPricingSuccess:
    rule: DynamicPricingRule


@strawberry.type
class SuggestPricesSuccess:
    suggestions: list[PriceSuggestionNode]


@strawberry.type
class ApprovePriceSuggestionSuccess:
    suggestion: PriceSuggestionNode


@strawberry.type
class RejectPriceSuggestionSuccess:
    suggestion: PriceSuggestionNode


SetDynamicPricingResult = Annotated[
    SetDynamicPricingSuccess | ValidationError | NotFoundError,
    strawberry.union("SetDynamicPricingResult"),
]
SuggestPricesResult = Annotated[
    SuggestPricesSuccess | ValidationError | NotFoundError,
    strawberry.union("SuggestPricesResult"),
]
ApprovePriceSuggestionResult = Annotated[
    ApprovePriceSuggestionSuccess | NotFoundError | ConflictError | ValidationError,
    strawberry.union("ApprovePriceSuggestionResult"),
]
RejectPriceSuggestionResult = Annotated[
    RejectPriceSuggestionSuccess | NotFoundError | ConflictError | ValidationError,
    strawberry.union("RejectPriceSuggestionResult"),
]


def _bad(message: str, field: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT", "field": field})


def _note(note: str) -> str:
    from server.plugin import ValidationFailed

    if len(note) > NOTE_MAX:
        raise ValidationFailed(f"note: at most {NOTE_MAX} characters", field="note")
    return note


@strawberry.type
class DynamicPricingQueries:
    @strawberry.field(
        description="The own-price elasticity of a product (its category's when its own data "
        "is thin) or of a category (its products pooled). pricing.read or pricing.manage.",
        permission_classes=[_READERS],
    )
    async def price_elasticity(
        self,
        info: Info,
        product_id: strawberry.ID | None = None,
        category_id: strawberry.ID | None = None,
    ) -> PriceElasticity | None:
        """Null for an id that names no product or category (malformed ones included)."""
        if (product_id is None) == (category_id is None):
            raise _bad("give a productId or a categoryId", "productId")
        config = pricing_settings(info.context.plugins)
        if product_id is not None:
            pid = parse_node_id(product_id, "Product")
            if pid is None:
                return None

            async def one(session: AsyncSession) -> elasticity.Estimate | None:
                if await session.get(ProductRow, pid) is None:
                    return None
                found = await elasticity.estimates(session, config, [pid])
                return found[pid]

            estimate = await info.context.db.run(one)
            return None if estimate is None else _elasticity(estimate)
        cid = parse_node_id(category_id, "Category")
        if cid is None:
            return None

        async def pooled(session: AsyncSession) -> elasticity.Estimate | None:
            if await session.get(CategoryRow, cid) is None:
                return None
            return await elasticity.category_estimate(session, config, cid)

        estimate = await info.context.db.run(pooled)
        return None if estimate is None else _elasticity(estimate)

    @strawberry.field(
        description="Price suggestions, newest first (pricing.read or pricing.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def price_suggestions(
        self, info: Info, page: Page, status: SuggestionStatus | None = None
    ) -> Connection[PriceSuggestionNode]:
        stmt = select(PriceSuggestion)
        if status is not None:
            stmt = stmt.where(col(PriceSuggestion.status) == status)
        return await connection(
            info,
            stmt,
            page,
            sort=[],
            to_node=_suggestion,
            descending=True,
        )


@strawberry.type
class DynamicPricingMutations:
    @strawberry.mutation(
        description="Switch dynamic pricing on or off for a product or a category, as "
        "suggestions to approve or applied automatically within autoMaxChangeBp "
        "(pricing.approve).",
        permission_classes=[_DECIDERS],
    )
    async def set_dynamic_pricing(
        self, info: Info, input: SetDynamicPricingInput
    ) -> SetDynamicPricingResult:
        actor = info.context.viewer.subject

        async def work(session: AsyncSession) -> DynamicRule:
            pid = (
                require_node_id(input.product_id, "Product", "productId")
                if input.product_id is not None
                else None
            )
            cid = (
                require_node_id(input.category_id, "Category", "categoryId")
                if input.category_id is not None
                else None
            )
            return await suggestions.set_rule(
                session,
                product_id=pid,
                category_id=cid,
                mode=input.mode,
                auto_max_change_bp=input.auto_max_change_bp,
                active=input.active,
                actor=actor,
            )

        return await mutate(info, work, lambda rule: SetDynamicPricingSuccess(rule=_rule(rule)))

    @strawberry.mutation(
        description="Compute price suggestions now for the given products, or for every "
        "product under dynamic pricing (pricing.approve or pricing.manage).",
        permission_classes=[_RUNNERS],
    )
    async def suggest_prices(self, info: Info, input: SuggestPricesInput) -> SuggestPricesResult:
        config = pricing_settings(info.context.plugins)

        async def work(session: AsyncSession) -> list[PriceSuggestion]:
            from server.plugin import ValidationFailed

            ids: list[int] | None = None
            if input.product_ids is not None:
                if len(input.product_ids) > MAX_PRODUCTS:
                    raise ValidationFailed(f"at most {MAX_PRODUCTS} products", field="productIds")
                ids = [require_node_id(p, "Product", "productIds") for p in input.product_ids]
                found = set(
                    await session.scalars(
                        select(col(ProductRow.id)).where(col(ProductRow.id).in_(ids))
                    )
                )
                missing = [pid for pid in ids if pid not in found]
                if missing:
                    raise NotFound("product", missing[0], field="productIds")
            return await suggestions.suggest(session, config, ids)

        return await mutate(
            info,
            work,
            lambda rows: SuggestPricesSuccess(suggestions=[_suggestion(r) for r in rows]),
        )

    @strawberry.mutation(
        description="Approve a pending suggestion: its price is applied at once (once: a "
        "second approval is ALREADY_DECIDED) (pricing.approve).",
        permission_classes=[_DECIDERS],
    )
    async def approve_price_suggestion(
        self, info: Info, input: DecidePriceSuggestionInput
    ) -> ApprovePriceSuggestionResult:
        config = pricing_settings(info.context.plugins)
        actor = info.context.viewer.subject

        async def work(session: AsyncSession) -> PriceSuggestion:
            sid = require_node_id(input.id, "PriceSuggestion", "id")
            return await suggestions.approve(session, config, sid, actor, _note(input.note))

        return await mutate(
            info, work, lambda row: ApprovePriceSuggestionSuccess(suggestion=_suggestion(row))
        )

    @strawberry.mutation(
        description="Reject a pending suggestion (pricing.approve).",
        permission_classes=[_DECIDERS],
    )
    async def reject_price_suggestion(
        self, info: Info, input: DecidePriceSuggestionInput
    ) -> RejectPriceSuggestionResult:
        config = pricing_settings(info.context.plugins)
        actor = info.context.viewer.subject

        async def work(session: AsyncSession) -> PriceSuggestion:
            sid = require_node_id(input.id, "PriceSuggestion", "id")
            return await suggestions.reject(session, config, sid, actor, _note(input.note))

        return await mutate(
            info, work, lambda row: RejectPriceSuggestionSuccess(suggestion=_suggestion(row))
        )


QUERIES: list[type[Any]] = [DynamicPricingQueries]
MUTATIONS: list[type[Any]] = [DynamicPricingMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {}
CACHEABLE: dict[str, Sequence[str]] = {}
