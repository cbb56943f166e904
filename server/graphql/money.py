"""Money: stored as integer minor units, shown as ``Money { amount: Decimal, currency }``."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import strawberry

# ISO 4217 minor-unit exponents for the currencies that differ from 2.
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


# Amounts are INTEGER columns (int4 on PostgreSQL): a larger one is a client's error, not the
# driver's.
MAX_MINOR_UNITS = 2**31 - 1


def to_minor(amount: Decimal, currency: str) -> int:
    """Convert a decimal amount to minor units, rejecting sub-minor precision and amounts
    the database cannot hold."""
    if not amount.is_finite():
        raise ValueError(f"{amount} is not an amount")
    limit = to_decimal(MAX_MINOR_UNITS, currency)
    if abs(amount) > limit:
        raise ValueError(f"{amount} is out of range: at most {limit} {currency.upper()}")
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value(rounding=ROUND_HALF_UP):
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


@strawberry.type(description="An amount of money in a currency (amount is a decimal string).")
class Money:
    # Plain fields, filled once by money(): a page of products reads them with no resolver call.
    currency: str
    amount: Decimal = strawberry.field(description='Decimal amount, e.g. "199.00".')
    minor_units: int = strawberry.field(description="Integer minor units (fen for CNY).")


@strawberry.type(
    description="A total of many amounts in one currency (a customer's spend, a segment's "
    "revenue): amount is a decimal string, which holds any total (a minor-unit count could "
    "outgrow a GraphQL Int)."
)
class MoneyTotal:
    currency: str
    amount: Decimal = strawberry.field(description='Decimal amount, e.g. "1234567.80".')


@strawberry.input(description="Money as input: a decimal amount and an optional currency.")
class MoneyInput:
    amount: Decimal
    currency: str | None = None


def money(minor: int, currency: str) -> Money:
    return Money(amount=to_decimal(minor, currency), currency=currency, minor_units=minor)


def money_total(minor: int, currency: str) -> MoneyTotal:
    return MoneyTotal(amount=to_decimal(minor, currency), currency=currency)
