"""Reading the parameters of an audience rule's condition: each value checked as it is read,
a bad one refused with an InvalidRule naming its path in the rule, and its normal form (what
the rule stores) kept; keys nobody read are refused (server.services.audience_conditions uses
it for every kind)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from server.graphql.money import exponent, to_decimal
from server.services.errors import InvalidRule

# Why a rule is refused (InvalidRule.code).
UNKNOWN_KIND = "UNKNOWN_KIND"
BAD_OPERATOR = "BAD_OPERATOR"
OUT_OF_RANGE = "OUT_OF_RANGE"
BAD_VALUE = "BAD_VALUE"
MALFORMED = "MALFORMED"
UNKNOWN_CATEGORY = "UNKNOWN_CATEGORY"
UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"

MAX_VALUES = 50  # tags, places … in one condition
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

    def optional_enum(self, name: str, kind: type[E]) -> E | None:
        """A member of ``kind``, or None when the parameter is not given."""
        value = self._value(name, False)
        if value is None:
            return None
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

    def amount(
        self, name: str, currency: str, *, required: bool = True, signed: bool = False
    ) -> int | None:
        """A decimal amount of the shop's currency (a string such as ``"199.00"``, or a whole
        number), in minor units; stored as the decimal string. At least 0, or, ``signed``, as
        far below 0 as above it."""
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
        lowest = -MAX_AMOUNT_MINOR if signed else 0
        if not lowest <= minor <= MAX_AMOUNT_MINOR:
            low, high = to_decimal(lowest, currency), to_decimal(MAX_AMOUNT_MINOR, currency)
            raise InvalidRule(OUT_OF_RANGE, where, f"{value} is out of range: {low} to {high}")
        self.normal[name] = str(to_decimal(minor, currency))
        return minor

    def probability(self, name: str, *, required: bool = True) -> float | None:
        """A probability, 0 to 1 (a number, or a decimal string such as ``"0.5"``)."""
        value = self._value(name, required)
        if value is None:
            return None
        where = self.at(name)
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise InvalidRule(BAD_VALUE, where, "a probability is a number from 0 to 1")
        try:
            number = float(Decimal(value.strip()) if isinstance(value, str) else value)
        except (InvalidOperation, ValueError, OverflowError):
            raise InvalidRule(BAD_VALUE, where, f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise InvalidRule(BAD_VALUE, where, f"{value!r} is not a number")
        if not 0.0 <= number <= 1.0:
            raise InvalidRule(OUT_OF_RANGE, where, f"{value} is out of range: 0 to 1")
        self.normal[name] = number
        return number

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

    def nested(self, name: str) -> Params | None:
        """The parameters grouped under ``name`` (an object of their own, read the same way;
        its normal form is kept under ``name``), or None when it is not given. The caller
        :meth:`finish`-es it."""
        value = self._value(name, False)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise InvalidRule(MALFORMED, self.at(name), f"{name} is an object of parameters")
        group = Params(value, self.at(name))
        self.normal[name] = group.normal
        return group

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
