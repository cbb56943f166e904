"""The demo plan's catalogue: categories, products (names, prices, tags, searchable text) and
the stock each warehouse holds of them."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta

from server.demo.catalogue import (
    CATALOGUE,
    LEAVES,
    PREMIUM_BRANDS,
    VALUE_BRANDS,
    VARIANT_AXES,
    Axis,
)
from server.demo.places import WAREHOUSES
from server.demo.plan import Draft, PlannedProduct, PlannedVariant, Row
from server.models import WarehouseKind
from server.services.search import pinyin_text, product_search_text, variant_words
from server.services.variants import option_key


def _shop_price(yuan: float) -> int:
    """A price as shops write it (5999, 299, 39.90), in fen."""
    if yuan >= 1000:
        return (max(1, round(yuan / 100)) * 100 - 1) * 100
    if yuan >= 100:
        return (max(1, round(yuan / 10)) * 10 - 1) * 100
    return max(990, round(yuan) * 100 - 10)


def category_rows() -> list[tuple[Row, list[Row]]]:
    """Every top category with its leaf categories."""
    tree = []
    for position, (slug, name, group) in enumerate(CATALOGUE):
        top = {"name": name, "slug": slug, "description": f"{name}频道", "position": position}
        children = [
            {
                "name": leaf.name,
                "slug": f"{slug}-{leaf.slug}",
                "description": f"{name} > {leaf.name}",
                "position": i,
            }
            for i, leaf in enumerate(group)
        ]
        tree.append((top, children))
    return tree


def plan_products(draft: Draft, count: int) -> None:
    """``count`` products, spread evenly over the leaf categories."""
    rng, plan = draft.rng, draft.plan
    top_names = {slug: name for slug, name, _ in CATALOGUE}
    slugs = list(LEAVES)
    for i in range(count):
        slug = slugs[i % len(slugs)]
        top, leaf = LEAVES[slug]
        brand, models = rng.choice(leaf.brands)
        model = rng.choice(models)
        axes = VARIANT_AXES.get(leaf.slug, ())
        # What varies between its variants is no attribute of the product.
        attributes = {
            key: rng.choice(values)
            for key, values in leaf.attrs
            if key not in {a.name for a in axes}
        }
        specifics = " ".join(attributes.values())
        name = " ".join(part for part in (brand, model, leaf.noun, specifics) if part)
        low, high = leaf.price
        yuan = math.exp(rng.uniform(math.log(low), math.log(high)))
        if brand in PREMIUM_BRANDS:
            yuan = min(high, yuan * 1.4)
        elif brand in VALUE_BRANDS:
            yuan = max(low, yuan * 0.7)
        price = _shop_price(yuan)
        margin = rng.uniform(0.2, 0.6)
        tags = rng.sample(leaf.tags, k=min(len(leaf.tags), rng.randint(2, 3)))
        if rng.random() < 0.15:
            tags.append("包邮")
        if rng.random() < 0.1:
            created = plan.as_of - timedelta(days=rng.uniform(3, 60))
            tags.append("新品")
        else:
            created = plan.as_of - timedelta(days=rng.uniform(150, 1200))
        specs = "，".join(f"{k}：{v}" for k, v in attributes.items())
        description = (
            f"{brand} {model}{leaf.noun}，{'、'.join(tags[:2])}。"
            + (f"{specs}。" if specs else "")
            + "正品行货，全国联保，支持7天无理由退货。"
        )
        sku = f"{leaf.slug[:3].upper()}-{i + 1:05d}"
        product = PlannedProduct(row={}, leaf=leaf, top=top, index=i)
        _plan_variants(draft, product, sku, axes, price, margin)
        cheapest = min(product.on_sale(), key=lambda v: v.row["price_amount"])
        title, body = product_search_text(
            name=name,
            brand=brand,
            sku=sku,
            description=description,
            tags=tags,
            category_names=[top_names[top], leaf.name],
            attributes=attributes,
            variant_words=variant_words(
                sku,
                [v.row["sku"] for v in product.variants],
                [v.row["options"] for v in product.variants],
            ),
        )
        row: Row = {
            "sku": sku,
            "name": name,
            "description": description,
            "brand": brand,
            "category_id": None,
            "tags": tags,
            "attributes": attributes,
            # Its "from" price: its cheapest variant on sale's.
            "price_amount": cheapest.row["price_amount"],
            "cost_amount": cheapest.row["cost_amount"],
            "currency": "CNY",
            # A few discontinued items: still in old orders, no longer listed.
            "is_active": rng.random() > 0.02,
            "search_title": title,
            "search_body": body,
            "search_pinyin": pinyin_text(name, brand),
            "created_at": created,
            "updated_at": created,
        }
        product.row = row
        for variant in product.variants:
            variant.row |= {"created_at": created, "updated_at": created}
        plan.products.append(product)
        draft.by_leaf[slug].append(product)


def _plan_variants(
    draft: Draft,
    product: PlannedProduct,
    sku: str,
    axes: tuple[Axis, ...],
    price: int,
    margin: float,
) -> None:
    """The product's option axes (a pick of each axis's values) and a variant for every
    combination, priced by the values' steps; now and then a combination no longer sold."""
    rng = draft.rng
    offered = [
        (axis, sorted(rng.sample(axis.values, axis.pick), key=axis.values.index))
        if axis.pick
        else (axis, list(axis.values))
        for axis in axes
    ]
    product.options = [(axis.name, values) for axis, values in offered]
    combos = itertools.product(*([(axis, v) for v in values] for axis, values in offered))
    for index, combo in enumerate(combos):
        factor = math.prod(axis.step(value) for axis, value in combo)
        amount = price if factor == 1 else _shop_price(price * factor / 100)
        variant_sku = "-".join([sku, *(axis.code(value) for axis, value in combo)])
        row: Row = {
            "sku": variant_sku,
            "options": {axis.name: value for axis, value in combo},
            "option_key": "",
            "price_amount": amount,
            "cost_amount": round(amount * (1 - margin)),
            "position": index,
            # The first combination is always on sale; a few others are discontinued.
            "is_active": index == 0 or rng.random() > 0.04,
        }
        product.variants.append(PlannedVariant(row=row, product=product, index=index))
    for variant in product.variants:
        variant.row["option_key"] = option_key(variant.row["options"])


def plan_stock(draft: Draft) -> None:
    """Each variant's stock in every regional warehouse, and for fast-moving categories in
    every forward warehouse too: mostly plenty, some low, a few sold out. A product's stock
    is shared out among its variants; discontinued variants hold none."""
    for product in draft.plan.products:
        for variant in product.on_sale():
            _plan_variant_stock(draft, variant, len(product.on_sale()))


def _plan_variant_stock(draft: Draft, variant: PlannedVariant, siblings: int) -> None:
    rng, plan = draft.rng, draft.plan
    product = variant.product
    price_yuan = variant.row["price_amount"] / 100
    for code, _, kind, _, _, _ in WAREHOUSES:
        if kind is WarehouseKind.FORWARD and not product.leaf.daily:
            continue
        if price_yuan < 100:
            typical = rng.randint(150, 600)
        elif price_yuan < 1000:
            typical = rng.randint(40, 250)
        else:
            typical = rng.randint(8, 60)
        if kind is WarehouseKind.FORWARD:
            typical = max(5, typical // 4)
        if siblings > 1:
            typical = max(3, typical * 2 // siblings)
        safety = max(2, typical // 8)
        roll = rng.random()
        if roll < 0.05:
            on_hand = 0  # sold out (the planner tops it up to what open orders hold)
        elif roll < 0.13:
            on_hand = rng.randint(1, max(1, safety - 1))  # below safety stock
        else:
            on_hand = typical
        plan.stock[(code, product.index, variant.index)] = [on_hand, safety]
