"""The catalogue's staff work on variants: a product's option axes (declare, reorder, rename a
value) and its variants (create, update, archive, reactivate).

The rules that keep a product's variants consistent:

- a product with option axes has every active variant carry exactly one declared value on each
  axis, and one variant per combination (the unique ``option_key``; a concurrent duplicate is a
  Conflict, not a second row);
- a product's first option axes turn its default variant into the first combination (the first
  value of each axis); an axis added later gives every variant its first value; an axis
  removed is dropped from every variant (refused when two variants would then be the same
  combination); a value cannot be withdrawn while an active variant has it (an archived one
  keeps it, and must be given declared values before it is reactivated);
- a product on sale keeps at least one active variant (archive the product instead);
- SKUs are one space for products and variants: a variant's SKU is no other product's and no
  other variant's (checked here; the database guarantees it among variants, and among
  products).

After every change the product's "from" price (its cheapest active variant's), its search text
(variant SKUs and option values) and ``updated_at`` are brought in step, and a
``product_changed`` event is emitted (plugins hear of it; the response cache drops what read
the product).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Product, ProductOption, ProductVariant, utcnow
from server.services import catalog, variants
from server.services.catalog import KEEP, Keep
from server.services.errors import (
    Conflict,
    LastActiveVariant,
    NotFound,
    OptionValueInUse,
    UnknownOption,
    ValidationFailed,
)

MAX_AXES = 3
MAX_VALUES = 50
# A product page shows every combination (``Product.optionMatrix``): bounded.
MAX_COMBINATIONS = 500
MAX_AXIS_NAME = 40
MAX_VALUE = 60


@dataclass(frozen=True)
class OptionAxis:
    """An option axis as staff declare it: its name and its values in display order."""

    name: str
    values: Sequence[str]


@dataclass(frozen=True)
class VariantFields:
    """A variant's fields as given; ``KEEP`` leaves one as it is (an update)."""

    sku: str | Keep = KEEP
    barcode: str | None | Keep = KEEP
    # (axis, value) pairs, as given: an axis named twice is an error, not a silent overwrite.
    options: Sequence[tuple[str, str]] | Keep = KEEP
    price_amount: int | Keep = KEEP
    # The currency the price and the cost were given in: each must be the product's.
    currency: str | Keep = KEEP
    cost_amount: int | None | Keep = KEEP
    cost_currency: str | Keep = KEEP
    weight_grams: int | None | Keep = KEEP
    position: int | Keep = KEEP


# ---------------------------------------------------------------------------------------------
# Validation (pure)


def _text(value: str, what: str, limit: int) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValidationFailed(f"{what} must not be blank", field="options")
    if len(value) > limit:
        raise ValidationFailed(f"{what} must be at most {limit} characters", field="options")
    return value


def check_axes(axes: Sequence[OptionAxis]) -> list[OptionAxis]:
    """The axes normalised (blanks collapsed), or ValidationFailed: names unique (ignoring
    case), each with 1-50 distinct values, at most 3 axes and 500 combinations."""
    if len(axes) > MAX_AXES:
        raise ValidationFailed(f"at most {MAX_AXES} option axes", field="options")
    out: list[OptionAxis] = []
    seen: set[str] = set()
    for axis in axes:
        name = _text(axis.name, "an option's name", MAX_AXIS_NAME)
        if name.casefold() in seen:
            raise ValidationFailed(f"option {name!r} is given twice", field="options")
        seen.add(name.casefold())
        values = [_text(v, f"a value of {name}", MAX_VALUE) for v in axis.values]
        if not values:
            raise ValidationFailed(f"option {name!r} needs at least one value", field="options")
        if len(values) > MAX_VALUES:
            raise ValidationFailed(
                f"option {name!r} has more than {MAX_VALUES} values", field="options"
            )
        if len(set(values)) != len(values):
            raise ValidationFailed(f"option {name!r} repeats a value", field="options")
        out.append(OptionAxis(name, tuple(values)))
    if math.prod(len(a.values) for a in out) > MAX_COMBINATIONS:
        raise ValidationFailed(
            f"the options make more than {MAX_COMBINATIONS} combinations", field="options"
        )
    return out


def check_options(
    given: Iterable[tuple[str, str]], axes: Sequence[ProductOption]
) -> dict[str, str]:
    """A variant's options: exactly one declared value on each of the product's axes."""
    declared = {axis.name: axis.values for axis in axes}
    options: dict[str, str] = {}
    for name, value in given:
        name, value = " ".join(name.split()), " ".join(value.split())
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise UnknownOption(f"the product has no option {name!r} (its options: {known})")
        if value not in declared[name]:
            raise UnknownOption(f"option {name!r} has no value {value!r}")
        if name in options:
            raise UnknownOption(f"option {name!r} is given twice")
        options[name] = value
    missing = [name for name in declared if name not in options]
    if missing:
        raise UnknownOption(f"a value is missing for {', '.join(map(repr, missing))}")
    return options


def _amount(amount: int | None, field: str) -> int | None:
    if amount is not None and amount < 0:
        raise ValidationFailed(f"{field} must not be negative", field=field)
    return amount


def _currency(given: str | Keep, product: Product, field: str) -> None:
    if given is not KEEP and given.strip().upper() != product.currency:
        raise ValidationFailed(
            f"{field} must be in the product's currency, {product.currency}", field=field
        )


def _describe(options: Mapping[str, str]) -> str:
    return " / ".join(f"{k}: {v}" for k, v in options.items()) or "no options"


# ---------------------------------------------------------------------------------------------
# Writes


async def _flush(session: AsyncSession) -> None:
    """Flush; a unique violation (a concurrent writer got there first) is a Conflict naming the
    input it is about."""
    try:
        await session.flush()
    except IntegrityError as exc:
        text = str(exc.orig).lower()
        if "option_key" in text or "uq_product_variant_options" in text:
            raise Conflict("a variant with these options already exists", field="options") from exc
        if "barcode" in text:
            raise Conflict("barcode is already taken", field="barcode") from exc
        raise Conflict("sku is already taken", field="sku") from exc


async def _product(session: AsyncSession, product_id: int) -> Product:
    """The product an input names (its ``productId``)."""
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound("Product", product_id, field="productId")
    return product


async def _changed(session: AsyncSession, product: Product) -> None:
    """Bring the product in step with its variants: from price, search text, event."""
    await _flush(session)
    await variants.refresh_product_price(session, product)
    product.updated_at = utcnow()
    await catalog.refresh_search_text(session, [product])
    session.add(product)
    await session.flush()
    await catalog.product_changed(session, product, "updated")


async def set_options(
    session: AsyncSession, product_id: int, axes: Sequence[OptionAxis]
) -> Product:
    """Declare (replace) the product's option axes and their values, in display order; its
    variants' options follow (see the module's rules)."""
    product = await _product(session, product_id)
    axes = check_axes(axes)
    with session.no_autoflush:
        current = {o.name: o for o in await variants.options_of(session, product_id)}
        rows = await variants.variants_of(session, product_id)
        keys: dict[str, ProductVariant] = {}
        for variant in rows:
            options: dict[str, str] = {}
            for axis in axes:
                value = variant.options.get(axis.name)
                if value is None:
                    value = axis.values[0]  # a new axis: every variant takes its first value
                elif value not in axis.values and variant.is_active:
                    raise OptionValueInUse(
                        f"{axis.name}: {value!r} cannot be withdrawn, active variant "
                        f"{variant.sku} has it (archive it or change its options first)"
                    )
                options[axis.name] = value
            key = variants.option_key(options)
            if key in keys:
                raise Conflict(
                    f"variants {keys[key].sku} and {variant.sku} would both be "
                    f"{_describe(options)}",
                    field="options",
                )
            keys[key] = variant
            if options != variant.options:
                variant.options, variant.option_key = options, key
                variant.updated_at = utcnow()
                session.add(variant)
        if not axes and len(rows) == 1 and rows[0].sku != product.sku:
            # Back to a single default variant, which mirrors the product: the product takes
            # the SKU its stock is labelled with.
            if await variants.sku_in_use(session, rows[0].sku, product_id=product_id):
                raise Conflict(f"sku {rows[0].sku!r} is already taken", field="sku")
            product.sku = rows[0].sku
        for position, axis in enumerate(axes):
            row = current.pop(axis.name, None) or ProductOption(
                product_id=product_id, name=axis.name
            )
            row.position, row.values = position, list(axis.values)
            session.add(row)
        for gone in current.values():
            await session.delete(gone)
    await _changed(session, product)
    return product


async def rename_option_value(
    session: AsyncSession, product_id: int, option: str, value: str, new_value: str
) -> Product:
    """Rename one value of an axis, on the axis and on every variant that has it."""
    product = await _product(session, product_id)
    option, value = " ".join(option.split()), " ".join(value.split())
    new_value = _text(new_value, "the new value", MAX_VALUE)
    with session.no_autoflush:
        axes = {o.name: o for o in await variants.options_of(session, product_id)}
        if option not in axes:
            raise UnknownOption(f"the product has no option {option!r}")
        axis = axes[option]
        if value not in axis.values:
            raise UnknownOption(f"option {option!r} has no value {value!r}")
        if new_value != value and new_value in axis.values:
            raise ValidationFailed(
                f"option {option!r} already has a value {new_value!r}", field="newValue"
            )
        axis.values = [new_value if v == value else v for v in axis.values]
        session.add(axis)
        for variant in await variants.variants_of(session, product_id):
            if variant.options.get(option) == value:
                variant.options = {**variant.options, option: new_value}
                variant.option_key = variants.option_key(variant.options)
                variant.updated_at = utcnow()
                session.add(variant)
    await _changed(session, product)
    return product


async def _check_sku(
    session: AsyncSession, sku: str, product_id: int, variant_id: int | None
) -> str:
    sku = catalog.check_sku(sku)
    if await variants.sku_in_use(session, sku, product_id=product_id, variant_id=variant_id):
        raise Conflict(f"sku {sku!r} is already taken", field="sku")
    if variant_id is None:
        # A new variant shares no SKU with its own product's other variants either.
        taken = [v for v in await variants.variants_of(session, product_id) if v.sku == sku]
        if taken:
            raise Conflict(f"sku {sku!r} is already taken", field="sku")
    return sku


async def _check_barcode(
    session: AsyncSession, barcode: str | None, variant_id: int | None
) -> str | None:
    barcode = variants.check_barcode(barcode)
    if barcode is not None:
        with session.no_autoflush:
            found = await variants.by_barcode(session, barcode)
        if found is not None and found.id != variant_id:
            raise Conflict(f"barcode {barcode} is already taken", field="barcode")
    return barcode


async def _apply(
    session: AsyncSession, product: Product, variant: ProductVariant, fields: VariantFields
) -> None:
    assert product.id is not None  # a stored product
    _currency(fields.currency, product, "price")
    _currency(fields.cost_currency, product, "costPrice")
    if fields.price_amount is not KEEP:
        variant.price_amount = _amount(fields.price_amount, "price") or 0
    if fields.cost_amount is not KEEP:
        variant.cost_amount = _amount(fields.cost_amount, "costPrice")
    if fields.weight_grams is not KEEP:
        variant.weight_grams = _amount(fields.weight_grams, "weightGrams")
    if fields.position is not KEEP:
        variant.position = fields.position
    if fields.sku is not KEEP:
        variant.sku = await _check_sku(session, fields.sku, product.id, variant.id)
    if fields.barcode is not KEEP:
        variant.barcode = await _check_barcode(session, fields.barcode, variant.id)
    if fields.options is not KEEP:
        axes = await variants.options_of(session, product.id)
        variant.options = check_options(fields.options, axes)
        variant.option_key = variants.option_key(variant.options)
        for other in await variants.variants_of(session, product.id):
            if other.id != variant.id and other.option_key == variant.option_key:
                raise Conflict(
                    f"variant {other.sku} is already {_describe(variant.options)}",
                    field="options",
                )


async def create_variant(
    session: AsyncSession, product_id: int, fields: VariantFields
) -> ProductVariant:
    """A new variant of a product with option axes (a product without any has its one default
    variant: declare its axes first)."""
    product = await _product(session, product_id)
    if fields.sku is KEEP or fields.price_amount is KEEP or fields.options is KEEP:
        raise ValidationFailed("a variant needs a sku, options and a price")
    with session.no_autoflush:
        if not await variants.has_options(session, product_id):
            raise UnknownOption(
                "the product has no options: declare its option axes first (setProductOptions)"
            )
        variant = ProductVariant(product_id=product_id, sku="", price_amount=0)
        if fields.position is KEEP:
            existing = await variants.variants_of(session, product_id)
            variant.position = max((v.position for v in existing), default=-1) + 1
        await _apply(session, product, variant, fields)
    session.add(variant)
    await _changed(session, product)
    return variant


async def get_variant(session: AsyncSession, variant_id: int) -> ProductVariant:
    variant = await session.get(ProductVariant, variant_id)
    if variant is None:
        raise NotFound("ProductVariant", variant_id, field="id")
    return variant


async def update_variant(
    session: AsyncSession, variant_id: int, fields: VariantFields
) -> ProductVariant:
    """Change the fields given. A default variant (its product has no options) is the product
    as sold: a new SKU is the product's too."""
    variant = await get_variant(session, variant_id)
    product = await catalog.get_product(session, variant.product_id)
    with session.no_autoflush:
        await _apply(session, product, variant, fields)
        if (
            fields.sku is not KEEP
            and variant.option_key == ""
            and not await variants.has_options(session, product.id or 0)
        ):
            product.sku = variant.sku
        variant.updated_at = utcnow()
        session.add(variant)
    await _changed(session, product)
    return variant


async def set_variant_active(
    session: AsyncSession, variant_id: int, active: bool
) -> ProductVariant:
    """Archive a variant (no longer sold; its history stays) or put it back on sale."""
    variant = await get_variant(session, variant_id)
    product = await catalog.get_product(session, variant.product_id)
    if variant.is_active == active:
        return variant
    with session.no_autoflush:
        if active:
            axes = await variants.options_of(session, variant.product_id)
            check_options(variant.options.items(), axes)
        else:
            others = [
                v
                for v in await variants.variants_of(session, variant.product_id, active_only=True)
                if v.id != variant.id
            ]
            if not others and product.is_active:
                raise LastActiveVariant(
                    f"{variant.sku} is the last variant on sale of product {product.id}: "
                    "archive the product instead"
                )
        variant.is_active = active
        variant.updated_at = utcnow()
        session.add(variant)
    await _changed(session, product)
    return variant
