"""The logistics plugin over GraphQL: returns, exchanges and repairs. Customers ask for them on
their own delivered orders (``requestReturn``, ``cancelReturn``, ``shipReturn``,
``myReturns``); logistics staff decide, follow the parcel back and inspect it (``returns``,
``approveReturn``, ``rejectReturn``, ``recordReturnShipped``, ``receiveReturn``,
``inspectReturn``; logistics.manage, audited; logistics.read reads). ``Order.returns`` shows an
order's requests to its customer and to logistics staff."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.dataloader import DataLoader

from plugins.logistics import MANAGE, READ
from plugins.logistics.models import (
    Carrier,
    ItemCondition,
    ReturnKind,
    ReturnLine,
    ReturnReason,
    ReturnStatus,
)
from plugins.logistics.models import ReturnRequest as ReturnRow
from plugins.logistics.service import returns as service
from plugins.logistics.service.settings import logistics_settings
from server.graphql.errors import (
    InvalidTransition,
    NothingCaptured,
    OutOfStock,
    ReturnExceedsQuantity,
)
from server.plugin import (
    ConflictError,
    Connection,
    Database,
    HasPermission,
    Info,
    IsCustomer,
    ModelByIdLoader,
    ModelNode,
    Money,
    NotFoundError,
    Page,
    Paged,
    ValidationError,
    ValidationFailed,
    Warehouse,
    connection,
    filter_node_id,
    money,
    mutate,
    optional_node_id,
    require_node_id,
)

_MANAGERS = HasPermission(MANAGE)
_READERS = HasPermission(MANAGE, READ)
CODE_MAX = 32
NOTE_MAX = service.NOTE_MAX
COMMENT_MAX = service.COMMENT_MAX
TRACKING_MAX = service.TRACKING_MAX

strawberry.enum(
    ReturnKind,
    name="ReturnKind",
    description="RETURN (money back), EXCHANGE (another variant of the product sent at no "
    "charge) or REPAIR (the same variant sent back at no charge).",
)
strawberry.enum(
    ReturnStatus,
    name="ReturnStatus",
    description="REQUESTED → APPROVED | REJECTED; APPROVED → IN_TRANSIT → RECEIVED → "
    "COMPLETED (inspected); REQUESTED → CANCELLED by the customer.",
)
strawberry.enum(ReturnReason, name="ReturnReason", description="Why it goes back.")
strawberry.enum(
    ItemCondition,
    name="ReturnItemCondition",
    description="What inspection found: RESELLABLE (back on hand) or DEFECTIVE (written off).",
)


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return None if pk is None else strawberry.ID(str(relay.GlobalID(type_name, str(pk))))


def _is_staff_reader(info: Info) -> bool:
    return info.context.viewer.has(MANAGE, READ)


class ReturnRequestByIdLoader(ModelByIdLoader):
    model = ReturnRow


class ReturnCarrierByIdLoader(ModelByIdLoader):
    model = Carrier


class ReturnLinesLoader(DataLoader[int, list[ReturnLine]]):
    """Return id → its lines: one statement for every request of the response."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[ReturnLine]]:
        found = await self.db.run(service.lines_of, list(keys))
        return [found.get(key, []) for key in keys]


class ReturnsByOrderLoader(DataLoader[int, list[ReturnRow]]):
    """Order id → its requests: one statement for every order of the response."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[ReturnRow]]:
        found = await self.db.run(service.returns_of_orders, list(keys))
        return [found.get(key, []) for key in keys]


@strawberry.type(description="Units of one order line in a return, exchange or repair.")
class ReturnRequestLine:
    id: strawberry.ID = strawberry.field(description="A ReturnRequestLine id (inspectReturn).")
    order_line_id: strawberry.ID = strawberry.field(description="The OrderLine.")
    quantity: int
    exchange_variant_id: strawberry.ID | None = strawberry.field(
        description="An exchange's variant wanted instead (a ProductVariant id)."
    )
    condition: ItemCondition | None = strawberry.field(description="Set at inspection.")
    inspected_at: datetime | None


def _line(row: ReturnLine) -> ReturnRequestLine:
    return ReturnRequestLine(
        id=strawberry.ID(str(relay.GlobalID("ReturnRequestLine", str(row.id)))),
        order_line_id=strawberry.ID(str(relay.GlobalID("OrderLine", str(row.order_line_id)))),
        quantity=row.quantity,
        exchange_variant_id=_gid("ProductVariant", row.exchange_variant_id),
        condition=ItemCondition(row.condition) if row.condition is not None else None,
        inspected_at=row.inspected_at,
    )


@strawberry.type(
    description="A return, exchange or repair (RMA) of some lines of one order: its customer "
    "and logistics staff (logistics.manage or logistics.read) see it."
)
class ReturnRequest(ModelNode):
    loader = ReturnRequestByIdLoader

    id: relay.NodeID[int]
    number: str
    kind: ReturnKind
    status: ReturnStatus
    reason: ReturnReason
    comment: str
    tracking_number: str | None = strawberry.field(description="The parcel on its way back.")
    decision_note: str = strawberry.field(description="Why staff approved or rejected it.")
    created_at: datetime
    updated_at: datetime | None
    _model: strawberry.Private[ReturnRow]

    @classmethod
    def can_view(cls, info: Info, model: ReturnRow) -> bool:
        viewer = info.context.viewer
        if viewer.is_customer:
            return viewer.customer_id is not None and viewer.customer_id == model.customer_id
        return _is_staff_reader(info)

    @strawberry.field(description="The order (an Order id).")
    def order_id(self) -> strawberry.ID:
        return strawberry.ID(str(relay.GlobalID("Order", str(self._model.order_id))))

    @strawberry.field(
        description="An exchange's or repair's replacement order sent at no charge (an Order "
        "id); null until inspected, and for a return."
    )
    def replacement_order_id(self) -> strawberry.ID | None:
        return _gid("Order", self._model.replacement_order_id)

    @strawberry.field(description="What the return refunded (set at inspection; RETURN only).")
    def refund_amount(self) -> Money | None:
        amount = self._model.refund_amount
        return None if amount is None else money(amount, self._model.currency)

    @strawberry.field(description="The warehouse it comes back to (set on approval).")
    def warehouse(self, info: Info) -> Warehouse | None:
        return Warehouse.by_id(info, self._model.warehouse_id)  # type: ignore[return-value]  # a Warehouse or an awaitable of one: GraphQL awaits it

    @strawberry.field(description="The carrier bringing it back (its name).")
    async def carrier_name(self, info: Info) -> str | None:
        if self._model.carrier_id is None:
            return None
        row = await info.context.loaders.get(ReturnCarrierByIdLoader).load(self._model.carrier_id)
        return row.name if row is not None else None

    @strawberry.field(description="Who decided (staff only; null for its customer).")
    def decided_by(self, info: Info) -> str | None:
        return self._model.decided_by if _is_staff_reader(info) else None

    @strawberry.field
    async def lines(self, info: Info) -> list[ReturnRequestLine]:
        rows = await info.context.loaders.get(ReturnLinesLoader).load(int(self._model.id or 0))
        return [_line(row) for row in rows]


def _node(row: ReturnRow) -> ReturnRequest:
    return ReturnRequest.from_model(row)


# --- inputs --------------------------------------------------------------------------------


@strawberry.input
class ReturnLineInput:
    order_line_id: strawberry.ID
    quantity: int
    exchange_variant_id: strawberry.ID | None = strawberry.field(
        default=None, description="EXCHANGE: another active variant of the same product."
    )


@strawberry.input(description="Ask for a return, an exchange or a repair of delivered lines.")
class RequestReturnInput:
    order_id: strawberry.ID
    kind: ReturnKind
    reason: ReturnReason
    lines: list[ReturnLineInput] = strawberry.field(description=f"1 to {service.MAX_LINES}.")
    comment: str = strawberry.field(default="", description=f"At most {COMMENT_MAX} characters.")


@strawberry.input
class ReturnIdInput:
    id: strawberry.ID


@strawberry.input(description="The customer's parcel is on its way back.")
class ShipReturnInput:
    id: strawberry.ID
    tracking_number: str = strawberry.field(description=f"At most {TRACKING_MAX} characters.")
    carrier_code: str | None = None


@strawberry.input(
    description="Accept a request: the warehouse it comes back to (default: the first "
    "line's) and, with a carrier, the return tracking number (default: the carrier's prefix "
    "and the request's number)."
)
class ApproveReturnInput:
    id: strawberry.ID
    warehouse_id: strawberry.ID | None = None
    carrier_code: str | None = None
    tracking_number: str | None = None
    note: str = ""


@strawberry.input
class RejectReturnInput:
    id: strawberry.ID
    note: str = strawberry.field(description=f"Why (1 to {NOTE_MAX} characters).")


@strawberry.input(description="The parcel is on its way back (IN_TRANSIT).")
class RecordReturnShippedInput:
    id: strawberry.ID
    tracking_number: str | None = strawberry.field(
        default=None, description="Default: the one given on approval."
    )
    carrier_code: str | None = None


@strawberry.input
class InspectedLineInput:
    return_line_id: strawberry.ID
    condition: ItemCondition


@strawberry.input(description="What inspection found, for every line of the request.")
class InspectReturnInput:
    id: strawberry.ID
    lines: list[InspectedLineInput]


@strawberry.input(description="Narrows returns; every given field must match.")
class ReturnFilterInput:
    status: ReturnStatus | None = None
    kind: ReturnKind | None = None
    order_id: strawberry.ID | None = None


@strawberry.type
class ReturnRequestSuccess:
    return_request: ReturnRequest


RequestReturnResult = Annotated[
    ReturnRequestSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("RequestReturnResult"),
]
ReturnMoveResult = Annotated[
    ReturnRequestSuccess | InvalidTransition | ValidationError | NotFoundError,
    strawberry.union("ReturnMoveResult"),
]
InspectReturnResult = Annotated[
    ReturnRequestSuccess
    | InvalidTransition
    | ValidationError
    | NotFoundError
    | OutOfStock
    | NothingCaptured
    | ReturnExceedsQuantity,
    strawberry.union("InspectReturnResult"),
]


def _bounded(value: str | None, limit: int, field: str) -> str | None:
    if value is not None and len(value) > limit:
        raise ValidationFailed(f"at most {limit} characters", field=field)
    return value


def _return_id(value: strawberry.ID) -> int:
    return require_node_id(value, "ReturnRequest", "id")


def _success(row: ReturnRow) -> ReturnRequestSuccess:
    return ReturnRequestSuccess(return_request=_node(row))


def _customer(info: Info) -> int:
    customer_id = info.context.viewer.customer_id
    assert customer_id is not None  # IsCustomer
    return customer_id


def _spec(value: RequestReturnInput) -> service.ReturnSpec:
    _bounded(value.comment, COMMENT_MAX, "comment")
    if len(value.lines) > service.MAX_LINES:
        raise ValidationFailed(f"a request has at most {service.MAX_LINES} lines", field="lines")
    return service.ReturnSpec(
        order_id=require_node_id(value.order_id, "Order", "orderId"),
        kind=value.kind,
        reason=value.reason,
        comment=value.comment,
        lines=[
            service.LineSpec(
                order_line_id=require_node_id(
                    line.order_line_id, "OrderLine", f"lines.{i}.orderLineId"
                ),
                quantity=line.quantity,
                exchange_variant_id=optional_node_id(
                    line.exchange_variant_id, "ProductVariant", f"lines.{i}.exchangeVariantId"
                ),
            )
            for i, line in enumerate(value.lines)
        ],
    )


# --- queries -------------------------------------------------------------------------------


@strawberry.type
class ReturnQueries:
    @strawberry.field(
        description="The signed-in customer's returns, exchanges and repairs, newest first.",
        permission_classes=[IsCustomer],
        extensions=[Paged()],
    )
    async def my_returns(self, info: Info, page: Page) -> Connection[ReturnRequest]:
        query = service.returns_query(service.ReturnFilter(customer_id=_customer(info)))
        return await connection(info, query, page, sort=[], to_node=_node, descending=True)

    @strawberry.field(
        description="Returns, exchanges and repairs, newest first (logistics.manage or "
        "logistics.read).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def returns(
        self, info: Info, page: Page, filter: ReturnFilterInput | None = None
    ) -> Connection[ReturnRequest]:
        flt = service.ReturnFilter()
        if filter is not None:
            order_id = None
            if filter.order_id is not None:
                # An id that names no order finds nothing, like any list's filter.
                order_id = filter_node_id(filter.order_id, "Order") or -1
            flt = service.ReturnFilter(status=filter.status, kind=filter.kind, order_id=order_id)
        query = service.returns_query(flt)
        return await connection(info, query, page, sort=[], to_node=_node, descending=True)


# --- mutations -----------------------------------------------------------------------------


@strawberry.type
class ReturnMutations:
    @strawberry.mutation(
        description="Ask for a return, an exchange or a repair of units of your delivered "
        "order's lines, within the window after delivery (errors: OUTSIDE_WINDOW, "
        "NOT_DELIVERED, QUANTITY_EXCEEDED, EXCHANGE_VARIANT_INVALID, GIFT_LINE, "
        "ALREADY_REQUESTED).",
        permission_classes=[IsCustomer],
    )
    async def request_return(self, info: Info, input: RequestReturnInput) -> RequestReturnResult:
        async def work(session: AsyncSession) -> ReturnRow:
            return await service.request_return(
                session, logistics_settings(info.context.plugins), _customer(info), _spec(input)
            )

        return await mutate(info, work, _success)

    @strawberry.mutation(
        description="Withdraw your request before it is decided (REQUESTED → CANCELLED).",
        permission_classes=[IsCustomer],
    )
    async def cancel_return(self, info: Info, input: ReturnIdInput) -> ReturnMoveResult:
        async def work(session: AsyncSession) -> ReturnRow:
            return await service.cancel_return(session, _customer(info), _return_id(input.id))

        return await mutate(info, work, _success)

    @strawberry.mutation(
        description="You sent the approved parcel back: its tracking number (APPROVED → "
        "IN_TRANSIT).",
        permission_classes=[IsCustomer],
    )
    async def ship_return(self, info: Info, input: ShipReturnInput) -> ReturnMoveResult:
        async def work(session: AsyncSession) -> ReturnRow:
            return await service.record_shipped(
                session,
                _return_id(input.id),
                customer_id=_customer(info),
                carrier_code=_bounded(input.carrier_code, CODE_MAX, "carrierCode"),
                tracking_number=_bounded(input.tracking_number, TRACKING_MAX, "trackingNumber"),
            )

        return await mutate(info, work, _success)

    @strawberry.mutation(
        description="Accept a request (REQUESTED → APPROVED) (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def approve_return(self, info: Info, input: ApproveReturnInput) -> ReturnMoveResult:
        async def work(session: AsyncSession) -> ReturnRow:
            return await service.approve_return(
                session,
                info.context.viewer.subject,
                _return_id(input.id),
                warehouse_id=optional_node_id(input.warehouse_id, "Warehouse", "warehouseId"),
                carrier_code=_bounded(input.carrier_code, CODE_MAX, "carrierCode"),
                tracking_number=_bounded(input.tracking_number, TRACKING_MAX, "trackingNumber"),
                note=_bounded(input.note, NOTE_MAX, "note") or "",
            )

        return await mutate(info, work, _success)

    @strawberry.mutation(
        description="Refuse a request, saying why (REQUESTED → REJECTED) (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def reject_return(self, info: Info, input: RejectReturnInput) -> ReturnMoveResult:
        async def work(session: AsyncSession) -> ReturnRow:
            return await service.reject_return(
                session,
                info.context.viewer.subject,
                _return_id(input.id),
                _bounded(input.note, NOTE_MAX, "note") or "",
            )

        return await mutate(info, work, _success)

    @strawberry.mutation(
        description="The parcel is on its way back (APPROVED → IN_TRANSIT) (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def record_return_shipped(
        self, info: Info, input: RecordReturnShippedInput
    ) -> ReturnMoveResult:
        async def work(session: AsyncSession) -> ReturnRow:
            return await service.record_shipped(
                session,
                _return_id(input.id),
                carrier_code=_bounded(input.carrier_code, CODE_MAX, "carrierCode"),
                tracking_number=_bounded(input.tracking_number, TRACKING_MAX, "trackingNumber"),
            )

        return await mutate(info, work, _success)

    @strawberry.mutation(
        description="The parcel arrived at the warehouse (IN_TRANSIT → RECEIVED) "
        "(logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def receive_return(self, info: Info, input: ReturnIdInput) -> ReturnMoveResult:
        async def work(session: AsyncSession) -> ReturnRow:
            return await service.receive_return(session, _return_id(input.id))

        return await mutate(info, work, _success)

    @strawberry.mutation(
        description="Inspect every line (RECEIVED → COMPLETED): RESELLABLE units back on hand "
        "at the receiving warehouse, DEFECTIVE ones written off; then a RETURN is refunded "
        "(the units' price less their share of the order's discounts), an EXCHANGE or a "
        "REPAIR gets a replacement order at no charge (logistics.manage).",
        permission_classes=[_MANAGERS],
    )
    async def inspect_return(self, info: Info, input: InspectReturnInput) -> InspectReturnResult:
        async def work(session: AsyncSession) -> ReturnRow:
            if len(input.lines) > service.MAX_LINES:
                raise ValidationFailed(f"at most {service.MAX_LINES} lines", field="lines")
            conditions = {
                require_node_id(
                    line.return_line_id, "ReturnRequestLine", f"lines.{i}.returnLineId"
                ): line.condition
                for i, line in enumerate(input.lines)
            }
            return await service.inspect_return(
                session,
                info.context.plugins,
                info.context.viewer.subject,
                _return_id(input.id),
                conditions,
            )

        return await mutate(info, work, _success)


# --- Order.returns -------------------------------------------------------------------------


@strawberry.type
class OrderReturns:
    """Fields the logistics plugin adds to the core ``Order`` type."""

    @strawberry.field(
        description="The order's returns, exchanges and repairs, newest first (its customer "
        "and logistics staff; logistics plugin)."
    )
    async def returns(self, info: Info, root: Any) -> list[ReturnRequest]:
        rows = await info.context.loaders.get(ReturnsByOrderLoader).load(int(root.id))
        return [_node(row) for row in rows if ReturnRequest.can_view(info, row)]


TYPES: list[type[Any]] = [ReturnRequest, ReturnRequestLine]
QUERIES: list[type[Any]] = [ReturnQueries]
MUTATIONS: list[type[Any]] = [ReturnMutations]
SUBSCRIPTIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {"Order": [OrderReturns]}
