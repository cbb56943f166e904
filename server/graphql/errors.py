"""The ``Error`` interface and the typed errors that mutations return as union members."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay

from server.services import errors as domain


@strawberry.interface(description="An expected failure, returned as data.")
class Error:
    code: str
    message: str
    field: str | None = None


@strawberry.type
class ValidationError(Error):
    pass


@strawberry.type
class NotFoundError(Error):
    pass


@strawberry.type
class ConflictError(Error):
    pass


@strawberry.type
class OutOfStock(Error):
    product_id: relay.GlobalID
    variant_id: relay.GlobalID
    requested: int
    available: int


@strawberry.type(
    description="A product was named where a variant is needed and it has several variants on "
    "sale (or none): name the variant (variantId), one of variantIds."
)
class VariantRequired(Error):
    product_id: relay.GlobalID
    variant_ids: list[relay.GlobalID] = strawberry.field(
        description="The product's variants on sale, in display order."
    )


@strawberry.type(
    description="An audience's rule was refused: `code` says why (UNKNOWN_KIND, BAD_OPERATOR, "
    "OUT_OF_RANGE, BAD_VALUE, MALFORMED, UNKNOWN_CATEGORY, UNKNOWN_PRODUCT, TOO_DEEP, "
    "TOO_MANY_CONDITIONS), `path` names the bad node within the rule (e.g. "
    "`all[1].orders.days`; empty for the rule itself) and `field` is `rule.` followed by it."
)
class InvalidAudienceRule(Error):
    path: str


@strawberry.type(
    description="A row of an import was refused, and nothing of the import was written: "
    "`row` is its number (1 for the first row; in a CSV text, the first row after the "
    "header), `column` the column at fault."
)
class InvalidImportRow(Error):
    row: int
    column: str


@strawberry.type
class InvalidTransition(Error):
    current: str
    target: str


@strawberry.type(
    description="A plugin holds the order back from fulfilment (e.g. a group buy still "
    "waiting for members): it cannot move to FULFILLING or SHIPPED, nor get a shipment, "
    "until every hold is lifted. `reasons`: each hold as '<plugin>: <reason>'."
)
class OrderOnHold(Error):
    target: str
    reasons: list[str]


@strawberry.type(
    description="More units of an order line returned than it has left to return (bought "
    "minus returned before): `returnable` is how many it has."
)
class ReturnExceedsQuantity(Error):
    order_line_id: relay.GlobalID
    requested: int
    returnable: int


@strawberry.type(description="The order has no captured payment left to give money back from.")
class NothingCaptured(Error):
    pass


@strawberry.type
class IdempotencyConflict(Error):
    key: str


@strawberry.type
class PaymentDeclined(Error):
    pass


@strawberry.type
class AuthenticationError(Error):
    pass


@strawberry.type
class EmptyCart(Error):
    pass


@strawberry.type(
    description="One reason a cart may not be checked out or an order not placed, raised by "
    "a plugin (validate_checkout, order_placing) or the core: `code` is the plugin's own, "
    "`field` the input it is about, `plugin` who raised it."
)
class CheckoutProblem(Error):
    plugin: str = strawberry.field(description="The plugin that raised it ('core' for the core).")
    source: str = strawberry.field(deprecation_reason="The same as plugin; use plugin.")


@strawberry.type
class CheckoutProblems(Error):
    problems: list[CheckoutProblem]


def validation_error(err: domain.ValidationFailed) -> ValidationError:
    """A refused input as its union member (typed, for resolvers whose union has no other
    error member a :class:`~server.services.errors.ValidationFailed` could become)."""
    return ValidationError(code=err.code, message=err.message, field=err.field)


def to_graphql(err: domain.DomainError) -> Error:
    """The union member that shows ``err`` to the client."""
    base: dict[str, Any] = {"code": err.code, "message": err.message, "field": err.field}
    match err:
        case domain.OutOfStock():
            return OutOfStock(
                **base,
                product_id=relay.GlobalID("Product", str(err.product_id)),
                variant_id=relay.GlobalID("ProductVariant", str(err.variant_id)),
                requested=err.requested,
                available=err.available,
            )
        case domain.VariantRequired():
            return VariantRequired(
                **base,
                product_id=relay.GlobalID("Product", str(err.product_id)),
                variant_ids=[relay.GlobalID("ProductVariant", str(v)) for v in err.variant_ids],
            )
        case domain.InvalidRule():
            return InvalidAudienceRule(**base, path=err.path)
        case domain.InvalidImportRow():
            return InvalidImportRow(**base, row=err.row, column=err.column)
        case domain.InvalidTransition():
            return InvalidTransition(**base, current=err.current, target=err.target)
        case domain.OrderOnHold():
            return OrderOnHold(
                **base,
                target=err.target,
                reasons=[f"{plugin}: {reason}" for plugin, reason in err.holds],
            )
        case domain.ReturnExceedsQuantity():
            return ReturnExceedsQuantity(
                **base,
                order_line_id=relay.GlobalID("OrderLine", str(err.order_line_id)),
                requested=err.requested,
                returnable=err.returnable,
            )
        case domain.NothingCaptured():
            return NothingCaptured(**base)
        case domain.IdempotencyConflict():
            return IdempotencyConflict(**base, key=err.key)
        case domain.NotFound():
            return NotFoundError(**base)
        case domain.Conflict():
            return ConflictError(**base)
        case domain.PaymentDeclined():
            return PaymentDeclined(**base)
        case domain.AuthenticationFailed():
            return AuthenticationError(**base)
        case domain.EmptyCart():
            return EmptyCart(**base)
        case domain.CheckoutProblems():
            return CheckoutProblems(
                **base,
                problems=[
                    CheckoutProblem(
                        code=p.code,
                        message=p.message,
                        field=p.field,
                        plugin=p.source,
                        source=p.source,
                    )
                    for p in err.problems
                ],
            )
        case _:
            return ValidationError(**base)
