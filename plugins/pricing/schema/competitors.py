"""Competitor monitoring over GraphQL (staff only): competitors, their prices, the alerts
they raise, and the operators' acknowledging and acting on alerts.

Reading takes pricing.read or pricing.manage; recording prices and handling alerts takes
pricing.manage. Customers see none of it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.dataloader import DataLoader

from plugins.pricing import READ
from plugins.pricing.models import (
    Competitor as CompetitorRow,
)
from plugins.pricing.models import (
    CompetitorPrice as CompetitorPriceRow,
)
from plugins.pricing.models import (
    ObservationSource,
    PriceAlertKind,
    PriceAlertState,
)
from plugins.pricing.models import (
    PriceAlert as PriceAlertRow,
)
from plugins.pricing.service import competitors
from plugins.pricing.service.competitors import GTIN_MAX, SKU_MAX, PriceRow, UnmatchedReason
from plugins.pricing.service.settings import pricing_settings
from server.plugin import (
    ConflictError,
    Connection,
    Database,
    HasPermission,
    Info,
    ModelByIdLoader,
    ModelNode,
    Money,
    NotFoundError,
    Page,
    Paged,
    Product,
    ProductView,
    SortKey,
    ValidationError,
    connection,
    filter_node_id,
    money,
    mutate,
    require_node_id,
)

MANAGE = "pricing.manage"
_READERS = HasPermission(READ, MANAGE)
_MANAGERS = HasPermission(MANAGE)

strawberry.enum(
    PriceAlertKind,
    name="PriceAlertKind",
    description="UNDERCUT: a competitor is cheaper than our public price by more than the set "
    "share; ABNORMAL_MOVE: a competitor's price moved far from its recent median (robust z).",
)
strawberry.enum(
    PriceAlertState,
    name="PriceAlertState",
    description="OPEN, then ACKNOWLEDGED (seen), then ACTED (dealt with); ACTED is final.",
)
strawberry.enum(
    ObservationSource,
    name="CompetitorPriceSource",
    description="How a price came in: API (recordCompetitorPrices), CSV (the import command), "
    "WEBHOOK (the signed feed).",
)
strawberry.enum(
    UnmatchedReason,
    name="UnmatchedCompetitorPriceReason",
    description="Why a row was not recorded: NO_IDENTIFIER, INVALID_GTIN (not 8–14 digits or a "
    "wrong check digit), UNKNOWN_GTIN, UNKNOWN_SKU, AMBIGUOUS_SKU (a product's sku and the "
    "product has several variants), IDENTIFIERS_DISAGREE (gtin and sku name different "
    "variants), CURRENCY_MISMATCH (not our product's currency).",
)


def _gid(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


# --- types ------------------------------------------------------------------------------------


class CompetitorByIdLoader(ModelByIdLoader):
    model = CompetitorRow


class PriceAlertByIdLoader(ModelByIdLoader):
    model = PriceAlertRow


class CompetitorPriceByIdLoader(ModelByIdLoader):
    model = CompetitorPriceRow


async def _resolved(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@strawberry.type(description="A shop whose prices we watch (pricing.read or pricing.manage).")
class Competitor(ModelNode):
    loader = CompetitorByIdLoader

    id: relay.NodeID[int]
    name: str
    created_at: datetime

    @classmethod
    def can_view(cls, info: Info, model: CompetitorRow) -> bool:
        return info.context.viewer.has(READ, MANAGE)


@strawberry.type(description="A competitor's price for one of our variants, when it was seen.")
class CompetitorPrice:
    id: strawberry.ID
    observed_at: datetime
    recorded_at: datetime
    source: ObservationSource
    price: Money
    _competitor_id: strawberry.Private[int]
    _product_id: strawberry.Private[int]
    _variant_id: strawberry.Private[int]

    @strawberry.field
    def competitor(self, info: Info) -> Competitor | None:
        return Competitor.by_id(info, self._competitor_id)  # type: ignore[return-value]  # a Competitor or an awaitable of one: GraphQL awaits it

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self._product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it

    @strawberry.field(description="The ProductVariant the price is for.")
    def variant_id(self) -> strawberry.ID:
        return _gid("ProductVariant", self._variant_id)


def _price(row: CompetitorPriceRow) -> CompetitorPrice:
    assert row.id is not None
    return CompetitorPrice(
        id=_gid("CompetitorPrice", row.id),
        observed_at=row.observed_at,
        recorded_at=row.recorded_at,
        source=row.source,
        price=money(row.amount, row.currency),
        _competitor_id=row.competitor_id,
        _product_id=row.product_id,
        _variant_id=row.variant_id,
    )


@strawberry.type(description="A competitor alert (pricing.read or pricing.manage).")
class PriceAlert(ModelNode):
    loader = PriceAlertByIdLoader

    id: relay.NodeID[int]
    kind: PriceAlertKind
    state: PriceAlertState
    detail: str = strawberry.field(description="What happened, in words.")
    created_at: datetime
    handled_by: str = strawberry.field(description="Who acknowledged or acted ('' while OPEN).")
    handled_at: datetime | None
    note: str
    competitor_id: strawberry.Private[int]
    product_id: strawberry.Private[int]
    variant_id: strawberry.Private[int]
    _model: strawberry.Private[PriceAlertRow]

    @classmethod
    def can_view(cls, info: Info, model: PriceAlertRow) -> bool:
        return info.context.viewer.has(READ, MANAGE)

    @strawberry.field
    def competitor(self, info: Info) -> Competitor | None:
        return Competitor.by_id(info, self.competitor_id)  # type: ignore[return-value]  # a Competitor or an awaitable of one: GraphQL awaits it

    @strawberry.field
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self.product_id)  # type: ignore[return-value]  # a Product or an awaitable of one: GraphQL awaits it

    @strawberry.field(name="variantId", description="The ProductVariant it is about.")
    def variant(self) -> strawberry.ID:
        return _gid("ProductVariant", self.variant_id)

    @strawberry.field(description="Our public price for the variant when the alert fired.")
    async def our_price(self, info: Info) -> Money:
        return money(self._model.our_amount, await self._currency(info))

    @strawberry.field(description="The competitor's price that fired it.")
    async def their_price(self, info: Info) -> Money:
        return money(self._model.their_amount, await self._currency(info))

    @strawberry.field(description="The competitor's price that fired it, and when it was seen.")
    async def observation(self, info: Info) -> CompetitorPrice | None:
        row = await info.context.loaders.get(CompetitorPriceByIdLoader).load(
            self._model.observation_id
        )
        return _price(row) if row is not None else None

    async def _currency(self, info: Info) -> str:
        # Prices are recorded only in the product's currency: the observation's is both's.
        row = await info.context.loaders.get(CompetitorPriceByIdLoader).load(
            self._model.observation_id
        )
        return row.currency if row is not None else str(info.context.settings.currency)


def _alert(row: PriceAlertRow) -> PriceAlert:
    return PriceAlert.from_model(row)


def _competitor(row: CompetitorRow) -> Competitor:
    return Competitor.from_model(row)


class LatestCompetitorPricesLoader(DataLoader[int, list[CompetitorPriceRow]]):
    """Each product's newest price per competitor and variant: one statement for a page."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[CompetitorPriceRow]]:
        found = await self.db.run(competitors.latest_prices, sorted(set(keys)))
        return [found.get(key, []) for key in keys]


@strawberry.type
class ProductCompetitorPrices:
    """Fields added to the core ``Product`` type."""

    @strawberry.field(
        description="The newest price of each competitor for each of the product's variants, "
        "cheapest first (pricing.read or pricing.manage).",
        permission_classes=[_READERS],
    )
    async def competitor_prices(
        self, info: Info, root: ProductView
    ) -> list[CompetitorPrice] | None:
        rows = await info.context.loaders.get(LatestCompetitorPricesLoader).load(root.id)
        return [_price(row) for row in rows]


# --- recording ------------------------------------------------------------------------------------


@strawberry.input(description="One competitor price: name our variant by gtin or sku.")
class CompetitorPriceInput:
    gtin: str | None = strawberry.field(
        default=None, description=f"EAN-13, UPC-A, GTIN-8 or GTIN-14 (at most {GTIN_MAX} chars)."
    )
    sku: str | None = strawberry.field(
        default=None, description=f"Our variant's sku, or a single-variant product's ({SKU_MAX})."
    )
    amount: int = strawberry.field(description="In minor units of the currency (fen for CNY).")
    currency: str
    observed_at: datetime = strawberry.field(description="When the price was seen.")


@strawberry.input
class RecordCompetitorPricesInput:
    competitor: str = strawberry.field(description="The competitor's name (created if new).")
    prices: list[CompetitorPriceInput] = strawberry.field(
        description=f"1 to {competitors.MAX_ROWS} prices."
    )


@strawberry.type(description="A row that was not recorded, and why.")
class UnmatchedCompetitorPrice:
    row: int = strawberry.field(description="Its position in prices (1 for the first).")
    reason: UnmatchedReason
    message: str
    gtin: str | None
    sku: str | None


@strawberry.type
class RecordCompetitorPricesSuccess:
    competitor: Competitor
    recorded: int = strawberry.field(description="New prices written.")
    duplicates: int = strawberry.field(description="Prices held already (same time and variant).")
    unmatched: list[UnmatchedCompetitorPrice]
    _alert_ids: strawberry.Private[list[int]]

    @strawberry.field(description="The alerts these prices raised.")
    async def alerts_raised(self, info: Info) -> list[PriceAlert]:
        found = await asyncio.gather(
            *(_resolved(PriceAlert.by_id(info, pk)) for pk in self._alert_ids)
        )
        return [a for a in found if a is not None]


RecordCompetitorPricesResult = Annotated[
    RecordCompetitorPricesSuccess | ValidationError,
    strawberry.union("RecordCompetitorPricesResult"),
]


@strawberry.input
class HandlePriceAlertInput:
    alert_id: strawberry.ID = strawberry.field(description="A PriceAlert's id.")
    note: str = strawberry.field(default="", description="What was seen or done (≤ 500 chars).")


@strawberry.type
class AcknowledgePriceAlertSuccess:
    alert: PriceAlert


@strawberry.type
class ActOnPriceAlertSuccess:
    alert: PriceAlert


AcknowledgePriceAlertResult = Annotated[
    AcknowledgePriceAlertSuccess | NotFoundError | ConflictError | ValidationError,
    strawberry.union("AcknowledgePriceAlertResult"),
]
ActOnPriceAlertResult = Annotated[
    ActOnPriceAlertSuccess | NotFoundError | ConflictError | ValidationError,
    strawberry.union("ActOnPriceAlertResult"),
]


# --- root fields ------------------------------------------------------------------------------


@strawberry.type
class CompetitorQueries:
    @strawberry.field(
        description="The competitors we watch, by name (pricing.read or pricing.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def competitors(self, info: Info, page: Page) -> Connection[Competitor]:
        return await connection(
            info,
            competitors.competitors_query(),
            page,
            sort=[SortKey(CompetitorRow.name, "name")],
            to_node=_competitor,
        )

    @strawberry.field(
        description="Competitor prices, newest first: of one product (productId), of one "
        "competitor (competitorId), or all (pricing.read or pricing.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def competitor_prices(
        self,
        info: Info,
        page: Page,
        product_id: strawberry.ID | None = None,
        competitor_id: strawberry.ID | None = None,
    ) -> Connection[CompetitorPrice]:
        # An id of another type or of nothing finds nothing, like a missing row.
        pid = filter_node_id(product_id, "Product")
        cid = filter_node_id(competitor_id, "Competitor")
        return await connection(
            info,
            competitors.prices_query(pid, cid),
            page,
            sort=[SortKey(CompetitorPriceRow.observed_at, "observed_at")],
            to_node=_price,
            descending=True,
        )

    @strawberry.field(
        description="Competitor alerts, newest first, by state and kind (pricing.read or "
        "pricing.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def price_alerts(
        self,
        info: Info,
        page: Page,
        state: PriceAlertState | None = None,
        kind: PriceAlertKind | None = None,
    ) -> Connection[PriceAlert]:
        return await connection(
            info,
            competitors.alerts_query(state, kind),
            page,
            sort=[SortKey(PriceAlertRow.created_at, "created_at")],
            to_node=_alert,
            descending=True,
        )


@strawberry.type
class CompetitorMutations:
    @strawberry.mutation(
        description="Record a competitor's prices (pricing.manage): each row is matched to our "
        "variant by gtin or sku; rows matching nothing, or priced in another currency than our "
        "product, are answered in unmatched; a price held already counts as a duplicate. New "
        "prices may raise alerts.",
        permission_classes=[_MANAGERS],
    )
    async def record_competitor_prices(
        self, info: Info, input: RecordCompetitorPricesInput
    ) -> RecordCompetitorPricesResult:
        config = pricing_settings(info.context.plugins)

        async def work(
            session: AsyncSession,
        ) -> tuple[competitors.Recorded, CompetitorRow | None]:
            if len(input.prices) > competitors.MAX_ROWS:
                raise competitors.BadPrices(
                    "TOO_MANY_ROWS",
                    f"at most {competitors.MAX_ROWS} prices per call ({len(input.prices)} given)",
                    field="prices",
                )
            rows = [
                PriceRow(
                    amount=p.amount,
                    currency=p.currency,
                    observed_at=p.observed_at,
                    gtin=p.gtin,
                    sku=p.sku,
                )
                for p in input.prices
            ]
            done = await competitors.record_prices(
                session, config, input.competitor, rows, ObservationSource.API
            )
            return done, await session.get(CompetitorRow, done.competitor_id)

        def success(
            result: tuple[competitors.Recorded, CompetitorRow | None],
        ) -> RecordCompetitorPricesSuccess:
            done, row = result
            assert row is not None  # recorded in this very transaction
            return RecordCompetitorPricesSuccess(
                competitor=_competitor(row),
                recorded=done.recorded,
                duplicates=done.duplicates,
                unmatched=[
                    UnmatchedCompetitorPrice(
                        row=u.row, reason=u.reason, message=u.message, gtin=u.gtin, sku=u.sku
                    )
                    for u in done.unmatched
                ],
                _alert_ids=done.alert_ids,
            )

        return await mutate(info, work, success)

    @strawberry.mutation(
        description="Acknowledge an OPEN alert: seen, being looked at (pricing.manage). "
        "ALREADY_HANDLED when it is no longer OPEN.",
        permission_classes=[_MANAGERS],
    )
    async def acknowledge_price_alert(
        self, info: Info, input: HandlePriceAlertInput
    ) -> AcknowledgePriceAlertResult:
        async def work(session: AsyncSession) -> PriceAlertRow:
            pk = require_node_id(input.alert_id, "PriceAlert", "alertId")
            return await competitors.acknowledge(
                session, pk, info.context.viewer.subject, input.note
            )

        return await mutate(info, work, lambda row: AcknowledgePriceAlertSuccess(alert=_alert(row)))

    @strawberry.mutation(
        description="Mark an OPEN or ACKNOWLEDGED alert as ACTED, with a note of what was done "
        "(pricing.manage; change prices with the price rules). ALREADY_HANDLED when it is "
        "ACTED already.",
        permission_classes=[_MANAGERS],
    )
    async def act_on_price_alert(
        self, info: Info, input: HandlePriceAlertInput
    ) -> ActOnPriceAlertResult:
        async def work(session: AsyncSession) -> PriceAlertRow:
            pk = require_node_id(input.alert_id, "PriceAlert", "alertId")
            return await competitors.act(session, pk, info.context.viewer.subject, input.note)

        return await mutate(info, work, lambda row: ActOnPriceAlertSuccess(alert=_alert(row)))


QUERIES: list[type[Any]] = [CompetitorQueries]
MUTATIONS: list[type[Any]] = [CompetitorMutations]
EXTENSIONS: dict[str, list[type[Any]]] = {"Product": [ProductCompetitorPrices]}
CACHEABLE: dict[str, Sequence[str]] = {}
