"""The condition kinds of audience rules: a registry of small classes, one per kind.

A condition kind is a class registered with :func:`register`. Its ``kind`` is the key that
names it in a rule (``{"tags": {"match": "ANY", "tags": ["学生"]}}``); :meth:`Condition.parse`
checks its parameters strictly (every value read through ``Params``
(server.services.audience_params), which names the path of a bad one and refuses keys nobody
read) and :meth:`Condition.where` builds its SQLAlchemy
condition over ``customer`` — a column test or a correlated subquery, never SQL text, and
always true or false (never NULL), so that ``not`` is its exact complement. A kind that names
rows (a category, a product) lists them in :meth:`Condition.references`; the rule's validation
checks that they exist, in one statement per table.

Adding a kind is one class here, and one member of the GraphQL input ``AudienceRuleInput``
(schema/audiences.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Generic, Self, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    cast,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import SQLCoreOperations
from sqlalchemy.sql.selectable import CTE
from sqlmodel import col

from server.models import (
    Address,
    Category,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerRfm,
    CustomerSegment,
    CustomerValue,
    MembershipTier,
    Order,
    Product,
)
from server.services.audience_params import (
    BAD_VALUE,
    MALFORMED,
    OUT_OF_RANGE,
    UNKNOWN_CATEGORY,
    UNKNOWN_PRODUCT,
    Params,
    path_join,
)
from server.services.churn import ChurnReason
from server.services.customers import MAX_LABEL, json_array_contains
from server.services.errors import InvalidRule
from server.services.rfm import PURCHASE_STATUSES

MAX_DAYS = 3650  # "in the last N days": N from 1 to ten years
MAX_PLACE = 64
MAX_COUNT = 1_000_000
MAX_TIMES = 10_000  # "at least K times"
MAX_RECENCY_DAYS = 36_500


# --- comparisons ------------------------------------------------------------------------------


class Comparison(StrEnum):
    AT_LEAST = "AT_LEAST"  # ≥ value
    AT_MOST = "AT_MOST"  # ≤ value
    BETWEEN = "BETWEEN"  # value ≤ x ≤ to


N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Bounds(Generic[N]):
    """``x ≥ low`` and/or ``x ≤ high`` (both: between, inclusive). Over a NULL ``x`` the test
    is NULL: test an ``x`` that cannot be NULL (a count, a coalesced sum), or inside an
    ``EXISTS``'s ``WHERE``, where NULL drops the row and the condition is false."""

    low: N | None
    high: N | None

    def test(self, expr: SQLCoreOperations[Any]) -> ColumnElement[bool]:
        tests: list[ColumnElement[bool]] = []
        if self.low is not None:
            tests.append(expr >= self.low)
        if self.high is not None:
            tests.append(expr <= self.high)
        return and_(*tests)

    @property
    def everyone(self) -> bool:
        """True of any count (a count is never below 0)."""
        return self.high is None and (self.low or 0) <= 0


def read_bounds(params: Params, read: Callable[[str, bool], N | None]) -> Bounds[N]:
    """``op`` (AT_LEAST, AT_MOST, BETWEEN), ``value`` and, for BETWEEN, ``to`` (≥ value);
    ``read(name, required)`` reads a bound as the measure wants it."""
    op = params.operator(Comparison)
    value = read("value", True)
    assert value is not None
    if op is not Comparison.BETWEEN:
        if params.has("to"):
            raise InvalidRule(MALFORMED, params.at("to"), "to belongs to BETWEEN only")
        return Bounds(value, None) if op is Comparison.AT_LEAST else Bounds(None, value)
    to = read("to", True)
    assert to is not None
    if to < value:
        raise InvalidRule(OUT_OF_RANGE, params.at("to"), "to must not be below value")
    return Bounds(value, to)


def count_test(
    column: Any, tests: Sequence[ColumnElement[bool]], bounds: Bounds[int]
) -> ColumnElement[bool]:
    """Whether the number of rows of ``column``'s table that meet ``tests`` (correlated to the
    customer) is within ``bounds``: an EXISTS where "at least 1" is asked, else a correlated
    COUNT."""
    if bounds.everyone:
        return true()
    if bounds.low == 1 and bounds.high is None:
        return select(column).where(*tests).exists()
    return bounds.test(select(func.count(column)).where(*tests).scalar_subquery())


# --- building ---------------------------------------------------------------------------------


@dataclass
class BuildContext:
    """What building a rule's SQL needs: the moment it is evaluated at, the shop's currency and
    the database's dialect. One context serves one statement (its CTEs are named once)."""

    as_of: datetime
    currency: str
    dialect: str
    _trees: dict[int, CTE] = field(default_factory=dict)

    def since(self, days: int) -> datetime:
        return self.as_of - timedelta(days=days)

    def category_tree(self, category_id: int) -> Select[Any]:
        """The ids of the category and every category below it (a recursive CTE, named once
        per statement)."""
        tree = self._trees.get(category_id)
        if tree is None:
            seed = (
                select(col(Category.id).label("id"))
                .where(col(Category.id) == category_id)
                .cte(f"audience_category_{category_id}", recursive=True)
            )
            tree = seed.union_all(
                select(col(Category.id)).where(col(Category.parent_id) == seed.c.id)
            )
            self._trees[category_id] = tree
        return select(tree.c.id)

    def purchases(self, days: int) -> list[ColumnElement[bool]]:
        """The customer's purchases (paid, not cancelled, in the shop's currency: as RFM
        counts them) placed in the last ``days`` days up to the moment of evaluation."""
        return [
            col(Order.customer_id) == col(Customer.id),
            col(Order.status).in_(PURCHASE_STATUSES),
            col(Order.currency) == self.currency,
            col(Order.placed_at) >= self.since(days),
            col(Order.placed_at) <= self.as_of,
        ]


@dataclass(frozen=True)
class Reference:
    """A row a condition names, which must exist when the rule is saved."""

    model: type[Category] | type[Product]
    id: int
    path: str
    problem: str


@dataclass(frozen=True)
class ParseContext:
    currency: str


class Condition(ABC):
    """One kind of condition. Subclasses set ``kind`` and implement ``parse`` and ``where``."""

    kind: ClassVar[str]

    @classmethod
    @abstractmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Self:
        """Read and check the parameters (each through ``params``)."""

    @abstractmethod
    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        """The condition over ``customer``: true or false for every customer, never NULL."""

    def references(self) -> Iterable[Reference]:
        return ()


CONDITIONS: dict[str, type[Condition]] = {}

C = TypeVar("C", bound=type[Condition])


def register(cls: C) -> C:
    """Make ``cls`` a condition kind of the rule language, under ``cls.kind``."""
    if cls.kind in CONDITIONS or cls.kind in ("all", "any", "not"):
        raise ValueError(f"condition kind {cls.kind!r} is taken")
    CONDITIONS[cls.kind] = cls
    return cls


# --- the kinds ------------------------------------------------------------------------------


class TagMatch(StrEnum):
    ANY = "ANY"
    ALL = "ALL"


@register
@dataclass(frozen=True)
class Tags(Condition):
    """The customer has any (or all) of the tags."""

    kind: ClassVar[str] = "tags"
    match: TagMatch
    tags: tuple[str, ...]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Tags:
        return cls(
            match=params.enum("match", TagMatch, default=TagMatch.ANY),
            tags=params.texts("tags", longest=MAX_LABEL),
        )

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        tests = [json_array_contains(Customer.tags, tag, ctx.dialect) for tag in self.tags]
        return or_(*tests) if self.match is TagMatch.ANY else and_(*tests)


@register
@dataclass(frozen=True)
class Segment(Condition):
    """The customer's current RFM segment is one of these (a customer without a purchase has
    none)."""

    kind: ClassVar[str] = "segment"
    segments: tuple[CustomerSegment, ...]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Segment:
        return cls(params.enums("in", CustomerSegment))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        return (
            select(col(CustomerRfm.customer_id))
            .where(
                col(CustomerRfm.customer_id) == col(Customer.id),
                col(CustomerRfm.segment).in_(self.segments),
            )
            .exists()
        )


class RfmMeasure(StrEnum):
    R_SCORE = "R_SCORE"
    F_SCORE = "F_SCORE"
    M_SCORE = "M_SCORE"
    RECENCY_DAYS = "RECENCY_DAYS"
    FREQUENCY = "FREQUENCY"
    MONETARY = "MONETARY"


_RFM_COLUMNS: dict[RfmMeasure, Any] = {
    RfmMeasure.R_SCORE: CustomerRfm.r_score,
    RfmMeasure.F_SCORE: CustomerRfm.f_score,
    RfmMeasure.M_SCORE: CustomerRfm.m_score,
    RfmMeasure.RECENCY_DAYS: CustomerRfm.recency_days,
    RfmMeasure.FREQUENCY: CustomerRfm.frequency,
    RfmMeasure.MONETARY: CustomerRfm.monetary,
}
_RFM_RANGES: dict[RfmMeasure, tuple[int, int]] = {
    RfmMeasure.R_SCORE: (1, 5),
    RfmMeasure.F_SCORE: (1, 5),
    RfmMeasure.M_SCORE: (1, 5),
    RfmMeasure.RECENCY_DAYS: (0, MAX_RECENCY_DAYS),
    RfmMeasure.FREQUENCY: (0, MAX_COUNT),
}


@register
@dataclass(frozen=True)
class Rfm(Condition):
    """One of the customer's RFM scores or figures (as of the last recomputation) compared
    with a value; a customer without a purchase has none and never matches."""

    kind: ClassVar[str] = "rfm"
    measure: RfmMeasure
    bounds: Bounds[int]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Rfm:
        measure = params.enum("measure", RfmMeasure)

        def read(name: str, required: bool) -> int | None:
            if measure is RfmMeasure.MONETARY:
                return params.amount(name, ctx.currency, required=required)
            low, high = _RFM_RANGES[measure]
            return params.integer(name, low, high, required=required)

        return cls(measure, read_bounds(params, read))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        return (
            select(col(CustomerRfm.customer_id))
            .where(
                col(CustomerRfm.customer_id) == col(Customer.id),
                self.bounds.test(_RFM_COLUMNS[self.measure]),
            )
            .exists()
        )


@register
@dataclass(frozen=True)
class Tier(Condition):
    """The customer's membership tier is one of these."""

    kind: ClassVar[str] = "tier"
    tiers: tuple[MembershipTier, ...]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Tier:
        return cls(params.enums("in", MembershipTier))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        return col(Customer.membership_tier).in_(self.tiers)


@register
@dataclass(frozen=True)
class Region(Condition):
    """The customer's region (华东, 华南 …, from their profile: an address has none) is one
    of these; a customer without one never matches."""

    kind: ClassVar[str] = "region"
    places: tuple[str, ...]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Region:
        return cls(params.texts("in", longest=MAX_PLACE))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        return and_(col(Customer.region).is_not(None), col(Customer.region).in_(self.places))


@dataclass(frozen=True)
class _DefaultAddressIn(Condition):
    """The customer's default address is in one of these places (as written on it)."""

    column: ClassVar[str]  # the address's column
    places: tuple[str, ...]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Self:
        return cls(params.texts("in", longest=MAX_PLACE))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        return (
            select(col(Address.id))
            .where(
                col(Address.customer_id) == col(Customer.id),
                col(Address.is_default),
                getattr(Address, self.column).in_(self.places),
            )
            .exists()
        )


@register
@dataclass(frozen=True)
class Province(_DefaultAddressIn):
    """The province of the customer's default address is one of these."""

    kind: ClassVar[str] = "province"
    column: ClassVar[str] = "province"


@register
@dataclass(frozen=True)
class City(_DefaultAddressIn):
    """The city of the customer's default address is one of these."""

    kind: ClassVar[str] = "city"
    column: ClassVar[str] = "city"


class Registration(StrEnum):
    BEFORE = "BEFORE"  # registered before the moment
    AFTER = "AFTER"  # registered at or after it


@register
@dataclass(frozen=True)
class Registered(Condition):
    """The customer registered before (or at or after) a moment."""

    kind: ClassVar[str] = "registered"
    op: Registration
    at: datetime

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Registered:
        return cls(params.operator(Registration), params.moment("at"))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        created = col(Customer.created_at)
        return created < self.at if self.op is Registration.BEFORE else created >= self.at


@register
@dataclass(frozen=True)
class Orders(Condition):
    """The customer's purchases in the last ``days`` days, counted and compared."""

    kind: ClassVar[str] = "orders"
    days: int
    bounds: Bounds[int]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Orders:
        days = params.integer("days", 1, MAX_DAYS)
        assert days is not None

        def read(name: str, required: bool) -> int | None:
            return params.integer(name, 0, MAX_COUNT, required=required)

        return cls(days, read_bounds(params, read))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        return count_test(col(Order.id), ctx.purchases(self.days), self.bounds)


@register
@dataclass(frozen=True)
class Spend(Condition):
    """The total of the customer's purchases in the last ``days`` days, compared."""

    kind: ClassVar[str] = "spend"
    days: int
    bounds: Bounds[int]

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Spend:
        days = params.integer("days", 1, MAX_DAYS)
        assert days is not None

        def read(name: str, required: bool) -> int | None:
            return params.amount(name, ctx.currency, required=required)

        return cls(days, read_bounds(params, read))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        spent = (
            select(func.coalesce(func.sum(col(Order.total_amount)), 0))
            .where(*ctx.purchases(self.days))
            .scalar_subquery()
        )
        return self.bounds.test(spent)


@register
@dataclass(frozen=True)
class Behaviour(Condition):
    """The customer did ``event`` (on a product of the category or below it, or on the
    product, when one is named) at least ``times`` times in the last ``days`` days."""

    kind: ClassVar[str] = "behaviour"
    event: CustomerEventKind
    times: int
    days: int
    category_id: int | None
    product_id: int | None
    path: str

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Behaviour:
        event = params.enum("event", CustomerEventKind)
        category_id = params.row_id("categoryId", UNKNOWN_CATEGORY, "category")
        product_id = params.row_id("productId", UNKNOWN_PRODUCT, "product")
        if category_id is not None and product_id is not None:
            raise InvalidRule(
                MALFORMED, params.at("productId"), "name a category or a product, not both"
            )
        if event is CustomerEventKind.SEARCH and (category_id or product_id):
            target = "categoryId" if category_id else "productId"
            raise InvalidRule(
                BAD_VALUE, params.at(target), "a SEARCH is about no product: name none"
            )
        times = params.integer("atLeast", 1, MAX_TIMES, required=False)
        if times is None:
            times = 1
            params.normal["atLeast"] = 1
        days = params.integer("days", 1, MAX_DAYS)
        assert days is not None
        return cls(event, times, days, category_id, product_id, params.path)

    def references(self) -> Iterable[Reference]:
        if self.category_id is not None:
            yield Reference(
                Category, self.category_id, path_join(self.path, "categoryId"), UNKNOWN_CATEGORY
            )
        if self.product_id is not None:
            yield Reference(
                Product, self.product_id, path_join(self.path, "productId"), UNKNOWN_PRODUCT
            )

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        tests: list[ColumnElement[bool]] = [
            col(CustomerEvent.customer_id) == col(Customer.id),
            col(CustomerEvent.kind) == self.event,
            col(CustomerEvent.occurred_at) >= ctx.since(self.days),
            col(CustomerEvent.occurred_at) <= ctx.as_of,
        ]
        if self.product_id is not None:
            tests.append(col(CustomerEvent.product_id) == self.product_id)
        if self.category_id is not None:
            in_tree = select(col(Product.id)).where(
                col(Product.category_id).in_(ctx.category_tree(self.category_id))
            )
            tests.append(col(CustomerEvent.product_id).in_(in_tree))
        return count_test(col(CustomerEvent.id), tests, Bounds(self.times, None))


@register
@dataclass(frozen=True)
class NoOrder(Condition):
    """The customer made no purchase in the last ``days`` days (never bought included)."""

    kind: ClassVar[str] = "noOrder"
    days: int

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> NoOrder:
        days = params.integer("days", 1, MAX_DAYS)
        assert days is not None
        return cls(days)

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        return ~select(col(Order.id)).where(*ctx.purchases(self.days)).exists()


# --- lifetime value and churn risk (customer_value, as of the last recomputation) --------------
#
# A customer has a row once they bought, and its figures are NULL where the models could not be
# fitted. Each condition is an EXISTS over the customer's row whose tests are plain comparisons:
# a missing row or a NULL figure fails them, so the condition is false — never NULL — and `not`
# of it holds for exactly those customers.


def _probability(params: Params) -> Callable[[str, bool], float | None]:
    def read(name: str, required: bool) -> float | None:
        return params.probability(name, required=required)

    return read


def _value_row(*tests: ColumnElement[bool]) -> ColumnElement[bool]:
    """The customer has a ``customer_value`` row meeting ``tests``."""
    return (
        select(col(CustomerValue.customer_id))
        .where(col(CustomerValue.customer_id) == col(Customer.id), *tests)
        .exists()
    )


def _json_array_has_object(column: Any, key: str, value: str, dialect: str) -> ColumnElement[bool]:
    """The JSON array in ``column`` holds an object whose ``key`` is ``value``."""
    if dialect == "postgresql":
        return cast(column, JSONB).contains([{key: value}])
    elements = func.json_each(column).table_valued("value")
    return (
        exists()
        .select_from(elements)
        .where(func.json_extract(elements.c.value, f"$.{key}") == value)
    )


@register
@dataclass(frozen=True)
class Clv(Condition):
    """The customer's lifetime value (minor units of the shop's currency; it may be negative)
    within the bounds and, when ``probabilityAlive`` is given, their P(alive) within its
    bounds too. A customer without a value (no purchase, or the models could not be fitted)
    never matches."""

    kind: ClassVar[str] = "clv"
    bounds: Bounds[int]
    alive: Bounds[float] | None

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> Clv:
        def amount(name: str, required: bool) -> int | None:
            return params.amount(name, ctx.currency, required=required, signed=True)

        bounds = read_bounds(params, amount)
        alive = None
        group = params.nested("probabilityAlive")
        if group is not None:
            alive = read_bounds(group, _probability(group))
            group.finish()
        return cls(bounds, alive)

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        tests = [self.bounds.test(col(CustomerValue.clv_amount))]
        if self.alive is not None:
            tests.append(self.alive.test(col(CustomerValue.p_alive)))
        return _value_row(*tests)


@register
@dataclass(frozen=True)
class ChurnRisk(Condition):
    """The customer's churn probability (0-1) within the bounds and, when ``hasReason`` is
    given, that reason among those of their risk. A customer without a probability (no
    purchase, or the purchase model could not be fitted) never matches, whatever their
    reasons."""

    kind: ClassVar[str] = "churnRisk"
    bounds: Bounds[float]
    reason: ChurnReason | None

    @classmethod
    def parse(cls, params: Params, ctx: ParseContext) -> ChurnRisk:
        bounds = read_bounds(params, _probability(params))
        return cls(bounds, params.optional_enum("hasReason", ChurnReason))

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        tests = [self.bounds.test(col(CustomerValue.churn_probability))]
        if self.reason is not None:
            tests.append(
                _json_array_has_object(
                    CustomerValue.churn_reasons, "code", self.reason.value, ctx.dialect
                )
            )
        return _value_row(*tests)


def kinds() -> Sequence[str]:
    """The registered kinds, in registration order."""
    return list(CONDITIONS)
