"""The catalogue: categories (a tree) and products, their validation, their search text, and
the reads of the tree (roots, breadcrumbs, product counts). The product listing's SQL is in
server.services.listing; search suggestions are in server.services.search.

Plain async functions over an AsyncSession. They raise DomainError subclasses for bad input;
the caller owns the transaction (commit or roll back).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from sqlalchemy import Select, and_, func, literal_column, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from server.models import Category, Product, ProductVariant, utcnow
from server.services import audit, outbox, search, variants
from server.services.errors import Conflict, NotFound, ValidationFailed

SKU_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
MAX_NAME = 200
MAX_SLUG = 120
MAX_TAGS = 50
MAX_TAG = 50
# A category tree deeper than this is a data error; the ancestor walk stops there.
MAX_DEPTH = 64


class Keep(Enum):
    """A field an update leaves as it is (distinct from setting it to None)."""

    KEEP = "keep"


KEEP = Keep.KEEP

# Outbox events of catalogue changes (payload: the id, and ``change``). They commit with the
# change: plugins receive them, and the response cache drops the answers that read it.
PRODUCT_CHANGED = "product_changed"
CATEGORY_CHANGED = "category_changed"


async def product_changed(session: AsyncSession, product: Product, change: str) -> None:
    payload: dict[str, Any] = {"product_id": product.id, "change": change}
    # Who changed it, when staff or an API key did (a price history names them).
    actor = audit.ACTOR.get()
    if actor is not None:
        payload["actor"] = actor
    await outbox.emit(session, PRODUCT_CHANGED, payload)


async def _category_changed(session: AsyncSession, category: Category, change: str) -> None:
    await outbox.emit(session, CATEGORY_CHANGED, {"category_id": category.id, "change": change})


@dataclass(frozen=True)
class CategoryFields:
    name: str | Keep = KEEP
    slug: str | Keep = KEEP
    parent_id: int | None | Keep = KEEP
    description: str | Keep = KEEP
    position: int | Keep = KEEP


@dataclass(frozen=True)
class ProductFields:
    sku: str | Keep = KEEP
    name: str | Keep = KEEP
    price_amount: int | Keep = KEEP
    currency: str | Keep = KEEP
    cost_amount: int | None | Keep = KEEP
    # The currency the cost was given in: it must be the product's.
    cost_currency: str | Keep = KEEP
    description: str | Keep = KEEP
    brand: str | None | Keep = KEEP
    category_id: int | None | Keep = KEEP
    tags: Sequence[str] | Keep = KEEP
    attributes: dict[str, Any] | Keep = KEEP
    is_active: bool | Keep = KEEP

    def given(self) -> dict[str, Any]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not KEEP}


# ---------------------------------------------------------------------------------------------
# Normalisation and validation (pure)


def normalize_sku(sku: str) -> str:
    """SKUs are compared and stored upper-case, without surrounding blanks."""
    return sku.strip().upper()


def check_sku(sku: str) -> str:
    sku = normalize_sku(sku)
    if not SKU_PATTERN.match(sku):
        raise ValidationFailed(
            "sku must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field="sku",
        )
    return sku


def _check_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if not slug or len(slug) > MAX_SLUG or not SLUG_PATTERN.match(slug):
        raise ValidationFailed(
            f"slug must be 1-{MAX_SLUG} lower-case letters or digits, words joined by '-'",
            field="slug",
        )
    return slug


def _check_name(name: str, field: str = "name") -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed(f"{field} must not be blank", field=field)
    if len(name) > MAX_NAME:
        raise ValidationFailed(f"{field} must be at most {MAX_NAME} characters", field=field)
    return name


def _check_amount(amount: int | None, field: str) -> int | None:
    if amount is not None and amount < 0:
        raise ValidationFailed(f"{field} must not be negative", field=field)
    return amount


def _check_currency(currency: str) -> str:
    currency = currency.strip().upper()
    if not CURRENCY_PATTERN.match(currency):
        raise ValidationFailed("currency must be a 3-letter ISO 4217 code", field="currency")
    return currency


def _check_tags(tags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = " ".join(tag.split())
        if not tag:
            raise ValidationFailed("tags must not be blank", field="tags")
        if len(tag) > MAX_TAG:
            raise ValidationFailed(f"a tag is at most {MAX_TAG} characters", field="tags")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValidationFailed(f"at most {MAX_TAGS} tags", field="tags")
    return out


def _check_brand(brand: str | None) -> str | None:
    if brand is None:
        return None
    brand = " ".join(brand.split())
    if len(brand) > MAX_NAME:
        raise ValidationFailed(f"brand must be at most {MAX_NAME} characters", field="brand")
    return brand or None


# ---------------------------------------------------------------------------------------------
# Category tree


async def _categories_by_id(session: AsyncSession) -> dict[int, Category]:
    # The tree is small (hundreds of rows) and every path walk needs most of it: read it once.
    # No autoflush: pending changes are flushed once, where a conflict can be reported.
    with session.no_autoflush:
        rows = (await session.execute(select(Category))).scalars().all()
    return {row.id: row for row in rows if row.id is not None}


def _path(by_id: dict[int, Category], category_id: int | None) -> list[Category]:
    """Root-first path to ``category_id`` (inclusive); stops on a cycle rather than looping."""
    path: list[Category] = []
    seen: set[int] = set()
    current = category_id
    while current is not None and current in by_id and current not in seen:
        seen.add(current)
        path.append(by_id[current])
        current = by_id[current].parent_id
    path.reverse()
    return path


async def category_path(session: AsyncSession, category_id: int | None) -> list[Category]:
    """The category and its ancestors, root first (the breadcrumb)."""
    if category_id is None:
        return []
    return _path(await _categories_by_id(session), category_id)


def descendants_query(category_id: int) -> Select[Any]:
    """Ids of a category and all categories below it (a recursive CTE, one statement)."""
    tree = (
        select(col(Category.id).label("id"))
        .where(col(Category.id) == category_id)
        .cte("category_tree", recursive=True)
    )
    tree = tree.union_all(select(col(Category.id)).where(col(Category.parent_id) == tree.c.id))
    return select(tree.c.id)


async def root_categories(session: AsyncSession) -> Sequence[Category]:
    """The categories at the top of the tree, in shop order."""
    stmt = (
        select(Category)
        .where(col(Category.parent_id).is_(None))
        .order_by(col(Category.position), col(Category.name), col(Category.id))
    )
    return (await session.execute(stmt)).scalars().all()


async def category_by_slug(session: AsyncSession, slug: str) -> Category | None:
    return await session.scalar(select(Category).where(col(Category.slug) == slug.strip().lower()))


async def category_ancestors(
    session: AsyncSession, category_ids: Iterable[int]
) -> dict[int, list[Category]]:
    """Each category's ancestors, root first (its breadcrumb without itself): one recursive
    query for them all. A category without a parent is absent from the answer."""
    up = (
        select(
            col(Category.id).label("start_id"),
            col(Category.parent_id).label("id"),
            literal_column("1").label("depth"),
        )
        .where(col(Category.id).in_(set(category_ids)), col(Category.parent_id).is_not(None))
        .cte("ancestors", recursive=True)
    )
    parent = aliased(Category)
    up = up.union_all(
        select(up.c.start_id, col(parent.parent_id), up.c.depth + 1)
        .join(parent, col(parent.id) == up.c.id)
        .where(col(parent.parent_id).is_not(None), up.c.depth < MAX_DEPTH)
    )
    stmt = select(up.c.start_id, up.c.depth, Category).join(Category, col(Category.id) == up.c.id)
    found: dict[int, list[tuple[int, Category]]] = {}
    for start_id, depth, category in await session.execute(stmt):
        found.setdefault(start_id, []).append((depth, category))
    return {
        start: [c for _, c in sorted(path, key=lambda p: -p[0])] for start, path in found.items()
    }


async def active_product_counts(
    session: AsyncSession, category_ids: Iterable[int]
) -> dict[int, int]:
    """Active products in each category and all categories below it: one query for them all.
    A category with none is absent from the answer."""
    subtree = (
        select(col(Category.id).label("root_id"), col(Category.id).label("id"))
        .where(col(Category.id).in_(set(category_ids)))
        .cte("subtree", recursive=True)
    )
    child = aliased(Category)
    subtree = subtree.union_all(
        select(subtree.c.root_id, col(child.id)).join(child, col(child.parent_id) == subtree.c.id)
    )
    stmt = (
        select(subtree.c.root_id, func.count(col(Product.id)))
        .select_from(subtree)
        .join(Product, and_(col(Product.category_id) == subtree.c.id, col(Product.is_active)))
        .group_by(subtree.c.root_id)
    )
    return {root: int(n) for root, n in await session.execute(stmt)}


async def get_category(session: AsyncSession, category_id: int) -> Category:
    category = await session.get(Category, category_id)
    if category is None:
        raise NotFound("Category", category_id, field="id")
    return category


async def _require_unique_slug(session: AsyncSession, slug: str, own_id: int | None) -> None:
    stmt = select(col(Category.id)).where(col(Category.slug) == slug)
    if own_id is not None:
        stmt = stmt.where(col(Category.id) != own_id)
    # No autoflush: the pending change would hit the unique index before we can say why.
    with session.no_autoflush:
        taken = (await session.execute(stmt)).first() is not None
    if taken:
        raise Conflict(f"slug {slug!r} is already taken", field="slug")


async def create_category(
    session: AsyncSession,
    *,
    name: str,
    slug: str,
    parent_id: int | None = None,
    description: str = "",
    position: int = 0,
) -> Category:
    category = Category(
        name=_check_name(name),
        slug=_check_slug(slug),
        description=description.strip(),
        position=position,
    )
    if parent_id is not None:
        await get_category_for(session, parent_id, field="parentId")
        category.parent_id = parent_id
    await _require_unique_slug(session, category.slug, None)
    session.add(category)
    await _flush_unique(session, "slug")
    await _category_changed(session, category, "created")
    return category


async def get_category_for(session: AsyncSession, category_id: int, *, field: str) -> Category:
    """The category an input refers to; NotFound naming the input field otherwise."""
    category = await session.get(Category, category_id)
    if category is None:
        raise NotFound("Category", category_id, field=field)
    return category


async def update_category(
    session: AsyncSession, category_id: int, changes: CategoryFields
) -> Category:
    # Changes are flushed once, at the end, where a unique violation becomes a Conflict.
    with session.no_autoflush:
        category = await _update_category(session, category_id, changes)
    await _flush_unique(session, "slug")
    await _category_changed(session, category, "updated")
    return category


async def _update_category(
    session: AsyncSession, category_id: int, changes: CategoryFields
) -> Category:
    category = await get_category(session, category_id)
    path_changed = False
    if changes.name is not KEEP:
        name = _check_name(changes.name)
        path_changed |= name != category.name
        category.name = name
    if changes.slug is not KEEP:
        category.slug = _check_slug(changes.slug)
        await _require_unique_slug(session, category.slug, category.id)
    if changes.description is not KEEP:
        category.description = changes.description.strip()
    if changes.position is not KEEP:
        category.position = changes.position
    if changes.parent_id is not KEEP and changes.parent_id != category.parent_id:
        if changes.parent_id is not None:
            await get_category_for(session, changes.parent_id, field="parentId")
            by_id = await _categories_by_id(session)
            # A category may not move below itself: that would cut its subtree off the tree.
            if any(c.id == category.id for c in _path(by_id, changes.parent_id)):
                raise ValidationFailed(
                    "a category cannot be moved below itself or its descendants",
                    field="parentId",
                )
        category.parent_id = changes.parent_id
        path_changed = True
    if path_changed:
        # Product search text includes the category path: every product below re-indexes.
        products = (
            (
                await session.execute(
                    select(Product).where(
                        col(Product.category_id).in_(descendants_query(category_id))
                    )
                )
            )
            .scalars()
            .all()
        )
        await refresh_search_text(session, products)
    return category


# ---------------------------------------------------------------------------------------------
# Products


async def refresh_search_text(session: AsyncSession, products: Iterable[Product]) -> None:
    """Recompute what the full-text index holds for ``products`` (name, brand, category path,
    their variants' SKUs and option values, pinyin…), and add their words to those typos are
    corrected to."""
    products = list(products)
    by_id: dict[int, Category] | None = None
    variant_words = await _variant_words(session, products)
    words: set[str] = set()
    for product in products:
        if by_id is None and product.category_id is not None:
            by_id = await _categories_by_id(session)
        path = _path(by_id or {}, product.category_id)
        product.search_title, product.search_body = search.product_search_text(
            name=product.name,
            brand=product.brand,
            sku=product.sku,
            description=product.description,
            tags=product.tags,
            category_names=[c.name for c in path],
            attributes=product.attributes,
            variant_words=variant_words.get(product.id, ()) if product.id is not None else (),
        )
        product.search_pinyin = search.pinyin_text(product.name, product.brand)
        words.update(search.index_words(product.search_title, product.search_pinyin))
    await search.remember_words(session, words)


async def _variant_words(
    session: AsyncSession, products: Sequence[Product]
) -> dict[int, list[str]]:
    """Each stored product's variant words (SKUs, option values) for its search text: one
    statement for them all. Archived variants count too: a shopper searching an old SKU still
    finds the product."""
    ids = [p.id for p in products if p.id is not None]
    if not ids:
        return {}
    with session.no_autoflush:
        rows = (
            await session.execute(
                select(
                    col(ProductVariant.product_id),
                    col(ProductVariant.sku),
                    col(ProductVariant.options),
                )
                .where(col(ProductVariant.product_id).in_(ids))
                .order_by(col(ProductVariant.position), col(ProductVariant.id))
            )
        ).all()
    skus: dict[int, list[str]] = {}
    options: dict[int, list[dict[str, str]]] = {}
    for product_id, sku, opts in rows:
        skus.setdefault(product_id, []).append(sku)
        options.setdefault(product_id, []).append(opts)
    by_product = {p.id: p.sku for p in products if p.id is not None}
    return {pid: search.variant_words(by_product[pid], skus[pid], options[pid]) for pid in skus}


async def product_by_sku(session: AsyncSession, sku: str) -> Product | None:
    """The product of ``sku`` (compared case-insensitively), archived or not: the product's
    own SKU or one of its variants'."""
    sku = normalize_sku(sku)
    of_variant = select(col(ProductVariant.product_id)).where(col(ProductVariant.sku) == sku)
    return await session.scalar(
        select(Product)
        .where(or_(col(Product.sku) == sku, col(Product.id).in_(of_variant)))
        .order_by(col(Product.id))
        .limit(1)
    )


async def get_product(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound("Product", product_id, field="id")
    return product


async def _require_unique_sku(session: AsyncSession, sku: str, own_id: int | None) -> None:
    # Products and variants share one SKU space: another product's or another product's
    # variant's SKU is taken (the product's own variants may share it).
    if await variants.sku_in_use(session, sku, product_id=own_id):
        raise Conflict(f"sku {sku!r} is already taken", field="sku")


async def _flush_unique(session: AsyncSession, field: str) -> None:
    """Flush; a unique violation (a concurrent writer took the value first) is a Conflict."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{field} is already taken", field=field) from exc


def _apply(product: Product, values: dict[str, Any]) -> None:
    checks: dict[str, Callable[[Any], Any]] = {
        "sku": check_sku,
        "name": _check_name,
        "price_amount": lambda v: _check_amount(v, "price"),
        "cost_amount": lambda v: _check_amount(v, "costPrice"),
        "currency": _check_currency,
        "description": lambda v: v.strip(),
        "brand": _check_brand,
        "tags": _check_tags,
        "attributes": dict,
        "is_active": bool,
    }
    for key, value in values.items():
        if key in checks:
            setattr(product, key, checks[key](value))


async def create_product(
    session: AsyncSession,
    *,
    sku: str,
    name: str,
    price_amount: int,
    currency: str,
    cost_amount: int | None = None,
    description: str = "",
    brand: str | None = None,
    category_id: int | None = None,
    tags: Sequence[str] = (),
    attributes: dict[str, Any] | None = None,
) -> Product:
    product = Product(sku="", name="", price_amount=0)
    _apply(
        product,
        {
            "sku": sku,
            "name": name,
            "price_amount": price_amount,
            "cost_amount": cost_amount,
            "currency": currency,
            "description": description,
            "brand": brand,
            "tags": tags,
            "attributes": attributes or {},
        },
    )
    if category_id is not None:
        await get_category_for(session, category_id, field="categoryId")
        product.category_id = category_id
    await _require_unique_sku(session, product.sku, None)
    await refresh_search_text(session, [product])
    session.add(product)
    await _flush_unique(session, "sku")
    session.add(variants.default_variant(product))
    await _flush_unique(session, "sku")
    await product_changed(session, product, "created")
    return product


async def update_product(session: AsyncSession, product_id: int, changes: ProductFields) -> Product:
    # Changes are flushed once, at the end, where a unique violation becomes a Conflict.
    with session.no_autoflush:
        product = await _update_product(session, product_id, changes)
    await _flush_unique(session, "sku")
    await product_changed(session, product, "updated")
    return product


async def _update_product(
    session: AsyncSession, product_id: int, changes: ProductFields
) -> Product:
    product = await get_product(session, product_id)
    values = changes.given()
    category_id = values.pop("category_id", KEEP)
    cost_currency = values.pop("cost_currency", KEEP)
    _apply(product, values)
    if cost_currency is not KEEP and cost_currency != product.currency:
        raise ValidationFailed("costPrice must be in the price's currency", field="costPrice")
    if category_id is not KEEP:
        if category_id is not None:
            await get_category_for(session, category_id, field="categoryId")
        product.category_id = category_id
    if "sku" in values:
        await _require_unique_sku(session, product.sku, product.id)
    if {"price_amount", "cost_amount"} & values.keys() and await variants.has_options(
        session, product_id
    ):
        field = "price" if "price_amount" in values else "costPrice"
        raise ValidationFailed(
            "a product with options is priced per variant: change its variants' prices "
            "(updateProductVariant)",
            field=field,
        )
    if values.get("is_active") and not await variants.variants_of(
        session, product_id, active_only=True
    ):
        raise ValidationFailed(
            "the product has no active variant: reactivate one first", field="isActive"
        )
    await variants.mirror_default(session, product)
    product.updated_at = utcnow()
    await refresh_search_text(session, [product])
    return product


async def archive_product(session: AsyncSession, product_id: int) -> Product:
    """Take a product off sale. Its rows stay: orders and history still refer to it."""
    product = await get_product(session, product_id)
    if product.is_active:
        product.is_active = False
        product.updated_at = utcnow()
        await session.flush()
        await product_changed(session, product, "archived")
    return product
