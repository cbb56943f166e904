"""The condition kinds of audience rules: a registry of small classes, one per kind.

A condition kind is a class registered with :func:`register`. Its ``kind`` is the key that
names it in a rule (``{"tags": {"match": "ANY", "tags": ["学生"]}}``); :meth:`Condition.parse`
checks its parameters strictly (every value read through :class:`Params`, which names the path
of a bad one and refuses keys nobody read) and :meth:`Condition.where` builds its SQLAlchemy
condition over ``customer`` — a column test or a correlated subquery, never SQL text, and
always true or false (never NULL), so that ``not`` is its exact complement. A kind that names
rows (a category, a product) lists them in :meth:`Condition.references`; the rule's validation
checks that they exist, in one statement per table.

Adding a kind (a CLV band, a churn risk) is one class here, and one member of the GraphQL
input ``AudienceRuleInput`` (schema/audiences.py).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.sql.selectable import CTE
from sqlmodel import col

from server.graphql.money import exponent, to_decimal
from server.models import (
    Address,
    Category,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerRfm,
    CustomerSegment,
    MembershipTier,
    Order,
    Product,
)
from server.services.customers import MAX_LABEL, json_array_contains
from server.services.errors import InvalidRule
from server.services.rfm import PURCHASE_STATUSES

# Why a rule is refused (InvalidRule.code).
UNKNOWN_KIND = "UNKNOWN_KIND"
BAD_OPERATOR = "BAD_OPERATOR"
OUT_OF_RANGE = "OUT_OF_RANGE"
BAD_VALUE = "BAD_VALUE"
MALFORMED = "MALFORMED"
UNKNOWN_CATEGORY = "UNKNOWN_CATEGORY"
UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"

MAX_DAYS = 3650  # "in the last N days": N from 1 to ten years
MAX_VALUES = 50  # tags, places … in one condition
MAX_PLACE = 64
MAX_COUNT = 1_000_000
MAX_TIMES = 10_000  # "at least K times"
MAX_RECENCY_DAYS = 36_500
# Sums of orders are 64-bit: a bound past 10^15 minor units is nobody's spend.
MAX_AMOUNT_MINOR = 10**15
MAX_ROW_ID = 2**31 - 1  # ids are INTEGER columns

E = TypeVar("E", bound=StrEnum)


def path_join(path: str, key: str) -> str:
    """The path of ``key`` below ``path`` (``all[1].orders`` + ``days``)."""
    return f"{path}.{key}" if path else key


# --- reading parameters -----------------------------------------------------------------------


class Params:
    """A condition's parameters, read one by one: each read checks one value (a bad one is an
    InvalidRule naming its path) and puts its normal form in :attr:`normal`, which is what the
    rule stores. :meth:`finish` refuses the keys no read asked for."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise InvalidRule(MALFORMED, path, "a condition's parameters are an object")
        self.raw = raw
        self.path = path
        self.normal: dict[str, Any] = {}

    def at(self, name: str) -> str:
        return path_join(self.path, name)

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def _value(self, name: str, required: bool) -> Any:
        value = self.raw.get(name)
        if value is None and required:
            raise InvalidRule(MALFORMED, self.at(name), f"{name} is required")
        return value

    def enum(self, name: str, kind: type[E], *, default: E | None = None) -> E:
        value = self._value(name, default is None)
        if value is None:
            assert default is not None
            found = default
        else:
            found = _member(kind, value, self.at(name))
        self.normal[name] = found.value
        return found

    def enums(self, name: str, kind: type[E]) -> tuple[E, ...]:
        """One or more members of ``kind``, each once, in the order given."""
        items = self._list(name, len(kind))
        found: list[E] = []
        for i, value in enumerate(items):
            member = _member(kind, value, f"{self.at(name)}[{i}]")
            if member not in found:
                found.append(member)
        self.normal[name] = [m.value for m in found]
        return tuple(found)

    def operator(self, kind: type[E], name: str = "op") -> E:
        value = self._value(name, True)
        if not isinstance(value, str) or value not in kind.__members__:
            allowed = ", ".join(kind.__members__)
            raise InvalidRule(
                BAD_OPERATOR, self.at(name), f"{value!r} is not an operator here; use {allowed}"
            )
        found = kind[value]
        self.normal[name] = found.value
        return found

    def integer(self, name: str, low: int, high: int, *, required: bool = True) -> int | None:
        value = self._value(name, required)
        if value is None:
            return None
        number = _whole(value, self.at(name))
        if not low <= number <= high:
            raise InvalidRule(
                OUT_OF_RANGE, self.at(name), f"{number} is out of range: {low} to {high:,}"
            )
        self.normal[name] = number
        return number

    def amount(self, name: str, currency: str, *, required: bool = True) -> int | None:
        """A decimal amount of the shop's currency (a string such as ``"199.00"``, or a whole
        number), in minor units; stored as the decimal string."""
        value = self._value(name, required)
        if value is None:
            return None
        where = self.at(name)
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise InvalidRule(BAD_VALUE, where, 'an amount is a decimal string, e.g. "199.00"')
        try:
            decimal = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidRule(BAD_VALUE, where, f"{value!r} is not an amount") from None
        if not decimal.is_finite():
            raise InvalidRule(BAD_VALUE, where, f"{value!r} is not an amount")
        scaled = decimal.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise InvalidRule(BAD_VALUE, where, f"{value} has more decimals than {currency} allows")
        minor = int(scaled)
        if not 0 <= minor <= MAX_AMOUNT_MINOR:
            limit = to_decimal(MAX_AMOUNT_MINOR, currency)
            raise InvalidRule(OUT_OF_RANGE, where, f"{value} is out of range: 0 to {limit}")
        self.normal[name] = str(to_decimal(minor, currency))
        return minor

    def texts(self, name: str, *, longest: int) -> tuple[str, ...]:
        """One to MAX_VALUES texts, trimmed, each once, in the order given."""
        items = self._list(name, MAX_VALUES)
        found: list[str] = []
        for i, value in enumerate(items):
            where = f"{self.at(name)}[{i}]"
            if not isinstance(value, str) or not value.strip():
                raise InvalidRule(BAD_VALUE, where, "a non-blank text is needed")
            text = value.strip()
            if len(text) > longest:
                raise InvalidRule(
                    OUT_OF_RANGE, where, f"{text[:20]!r}… is longer than {longest} characters"
                )
            if text not in found:
                found.append(text)
        self.normal[name] = found
        return tuple(found)

    def moment(self, name: str) -> datetime:
        """A date and time (ISO 8601; without an offset it is UTC)."""
        value = self._value(name, True)
        where = self.at(name)
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise InvalidRule(
                    BAD_VALUE, where, f"{value!r} is not a date and time (ISO 8601)"
                ) from None
        else:
            raise InvalidRule(BAD_VALUE, where, "a date and time (ISO 8601) is needed")
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        self.normal[name] = moment.isoformat()
        return moment

    def row_id(self, name: str, problem: str, what: str) -> int | None:
        """The id of a row (a category, a product): an id that cannot name one is answered
        like one that names nothing (``problem``)."""
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROW_ID:
            raise InvalidRule(problem, self.at(name), f"{value!r} names no {what}")
        self.normal[name] = value
        return value

    def finish(self) -> None:
        unknown = [key for key in self.raw if key not in self.normal and self.raw[key] is not None]
        if unknown:
            known = ", ".join(self.normal) or "none"
            raise InvalidRule(
                MALFORMED,
                self.at(str(unknown[0])),
                f"unknown parameter {unknown[0]!r} (this condition takes: {known})",
            )

    def _list(self, name: str, longest: int) -> list[Any]:
        value = self._value(name, True)
        if not isinstance(value, list | tuple) or not value:
            raise InvalidRule(MALFORMED, self.at(name), f"{name} is a list of at least one value")
        if len(value) > longest:
            raise InvalidRule(OUT_OF_RANGE, self.at(name), f"{name} holds at most {longest} values")
        return list(value)


def _member(kind: type[E], value: Any, where: str) -> E:
    if isinstance(value, str) and value in kind.__members__:
        return kind[value]
    allowed = ", ".join(kind.__members__)
    raise InvalidRule(BAD_VALUE, where, f"{value!r} is not one of {allowed}")


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise InvalidRule(BAD_VALUE, where, "a whole number is needed")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return _whole(Decimal(value.strip()), where)
        except InvalidOperation:
            pass
    raise InvalidRule(BAD_VALUE, where, f"{value!r} is not a whole number")


# --- comparisons ------------------------------------------------------------------------------


class Comparison(StrEnum):
    AT_LEAST = "AT_LEAST"  # ≥ value
    AT_MOST = "AT_MOST"  # ≤ value
    BETWEEN = "BETWEEN"  # value ≤ x ≤ to


@dataclass(frozen=True)
class Bounds:
    """``x ≥ low`` and/or ``x ≤ high`` (both: between, inclusive)."""

    low: int | None
    high: int | None

    def test(self, expr: ColumnElement[Any]) -> ColumnElement[bool]:
        tests = []
        if self.low is not None:
            tests.append(expr >= self.low)
        if self.high is not None:
            tests.append(expr <= self.high)
        return and_(*tests)

    @property
    def everyone(self) -> bool:
        """True of any count (a count is never below 0)."""
        return self.high is None and (self.low or 0) <= 0


def read_bounds(params: Params, read: Callable[[str, bool], int | None]) -> Bounds:
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
    column: Any, tests: Sequence[ColumnElement[bool]], bounds: Bounds
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
    bounds: Bounds

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
    bounds: Bounds

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
    bounds: Bounds

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


def kinds() -> Sequence[str]:
    """The registered kinds, in registration order."""
    return list(CONDITIONS)
