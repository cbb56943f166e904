"""Expected domain failures. Services raise them; the GraphQL layer returns them as data.

Services never import GraphQL: each error carries what its GraphQL union member shows
(``server.graphql.errors`` maps them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.hooktypes import CheckoutProblem


class DomainError(Exception):
    """An expected failure: returned to the client as a typed error, never a 500."""

    code = "DOMAIN_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"


class NotFound(DomainError):
    code = "NOT_FOUND"

    def __init__(self, kind: str, ident: object, *, field: str | None = None) -> None:
        super().__init__(f"{kind} {ident} was not found", field=field)
        self.kind = kind


class VariantRequired(ValidationFailed):
    """A product was named where a variant is needed, and it has not exactly one variant on
    sale: the client must name the variant (``variant_ids``: those on sale, in display order)."""

    code = "VARIANT_REQUIRED"

    def __init__(self, product_id: int, variant_ids: Sequence[int], *, field: str) -> None:
        super().__init__(
            f"product {product_id} has {len(variant_ids)} variants on sale: give the variantId "
            "of the one you mean",
            field=field,
        )
        self.product_id = product_id
        self.variant_ids = tuple(variant_ids)


class Conflict(DomainError):
    """The input collides with existing data (a taken email or sku)."""

    code = "CONFLICT"


class OutOfStock(DomainError):
    code = "OUT_OF_STOCK"

    def __init__(
        self, product_id: int, variant_id: int, requested: int, available: int, sku: str = ""
    ) -> None:
        named = f"product {product_id} (variant {variant_id})"
        if sku:
            named = f"{sku}, {named}"
        super().__init__(f"{named}: {requested} requested, {available} available", field="lines")
        self.product_id = product_id
        self.variant_id = variant_id
        self.requested = requested
        self.available = available


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"{kind} cannot go from {current} to {target}", field="status")
        self.current = current
        self.target = target


class OrderOnHold(DomainError):
    """A plugin holds the order (``order_fulfilment_hold``): it may not be fulfilled or shipped
    yet. ``holds``: (plugin, reason) pairs, in the plugins' call order."""

    code = "ORDER_ON_HOLD"

    def __init__(self, order_id: int, target: str, holds: Sequence[tuple[str, str]]) -> None:
        listed = "; ".join(f"{plugin}: {reason}" for plugin, reason in holds)
        super().__init__(f"order {order_id} is on hold and cannot go to {target}: {listed}")
        self.target = target
        self.holds = tuple(holds)


class ReturnExceedsQuantity(ValidationFailed):
    """More units of an order line returned than it has left to return (bought minus
    returned before)."""

    code = "RETURN_EXCEEDS_QUANTITY"

    def __init__(self, order_line_id: int, requested: int, returnable: int) -> None:
        super().__init__(
            f"order line {order_line_id} has {returnable} units left to return, not {requested}",
            field="lines",
        )
        self.order_line_id = order_line_id
        self.requested = requested
        self.returnable = returnable


class NothingCaptured(DomainError):
    """An order has no captured payment left to give money back from."""

    code = "NOTHING_CAPTURED"

    def __init__(self, order_id: int) -> None:
        super().__init__(
            f"order {order_id} has no captured payment left to refund", field="orderId"
        )


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used with a different input",
            field="idempotencyKey",
        )
        self.key = key


class PaymentDeclined(DomainError):
    code = "PAYMENT_DECLINED"


class AuthenticationFailed(DomainError):
    code = "AUTHENTICATION_FAILED"


class EmptyCart(DomainError):
    code = "EMPTY_CART"


class CheckoutProblems(DomainError):
    """The core or plugins (``validate_checkout``, ``order_placing``) refused the checkout;
    each problem names the plugin that raised it (its ``source``)."""

    code = "CHECKOUT_PROBLEMS"

    def __init__(self, problems: Sequence[CheckoutProblem]) -> None:
        summary = "; ".join(p.message for p in problems)
        super().__init__(f"the cart cannot be checked out: {summary}")
        self.problems = tuple(problems)


class UnknownGateway(ValidationFailed):
    """``payOrder`` named a payment gateway no enabled plugin offers."""

    code = "UNKNOWN_GATEWAY"

    def __init__(self, gateway: str, known: Sequence[str]) -> None:
        offered = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown gateway {gateway!r}; use one of: {offered}", field="gateway")
        self.gateway = gateway


class InvalidBarcode(ValidationFailed):
    """A variant's barcode is not a GTIN-8, -12, -13 or -14 with a correct check digit."""

    code = "INVALID_BARCODE"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="barcode")


class UnknownOption(ValidationFailed):
    """A variant names an option axis its product does not have, or a value the axis does not
    offer (or leaves an axis out)."""

    code = "UNKNOWN_OPTION"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="options")


class OptionValueInUse(ValidationFailed):
    """An option value cannot be withdrawn while an active variant has it."""

    code = "OPTION_VALUE_IN_USE"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="options")


class LastActiveVariant(ValidationFailed):
    """A product on sale keeps at least one active variant: archive the product instead."""

    code = "LAST_ACTIVE_VARIANT"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="id")


class InvalidRule(ValidationFailed):
    """An audience's rule was refused. ``code`` says why (UNKNOWN_KIND, BAD_OPERATOR,
    OUT_OF_RANGE, BAD_VALUE, MALFORMED, UNKNOWN_CATEGORY, UNKNOWN_PRODUCT, TOO_DEEP,
    TOO_MANY_CONDITIONS); ``path`` names the bad node within the rule (``all[1].orders.days``;
    empty for the rule itself), and ``field`` is the input field, ``rule`` followed by it."""

    code = "INVALID_RULE"

    def __init__(self, code: str, path: str, message: str) -> None:
        where = f"rule.{path}" if path else "rule"
        super().__init__(f"{where}: {message}", field=where)
        self.code = code
        self.path = path


class SurveyAlreadyAnswered(Conflict):
    """A survey is answered once: a second answer changes nothing."""

    code = "ALREADY_ANSWERED"

    def __init__(self, survey_id: int) -> None:
        super().__init__(f"survey {survey_id} is already answered", field="surveyId")


class SurveyExpired(Conflict):
    """An unanswered survey closes when it expires (or when its customer opts out)."""

    code = "SURVEY_EXPIRED"

    def __init__(self, survey_id: int) -> None:
        super().__init__(f"survey {survey_id} has expired", field="surveyId")


class ScoreOutOfRange(ValidationFailed):
    """A score outside its survey's scale: CSAT 1-5, NPS 0-10."""

    code = "SCORE_OUT_OF_RANGE"

    def __init__(self, kind: str, low: int, high: int) -> None:
        super().__init__(f"a {kind} score is a whole number from {low} to {high}", field="score")


class InvalidImportRow(ValidationFailed):
    """A row of an import (rows given as input, or a CSV file) was refused: ``row`` is its
    number (1 for the first row; in a CSV file, the first row after the header) and
    ``column`` the column at fault. Nothing of the import is written."""

    code = "INVALID_IMPORT_ROW"

    def __init__(self, row: int, column: str, message: str, *, field: str) -> None:
        super().__init__(f"row {row}, {column}: {message}", field=field)
        self.row = row
        self.column = column
