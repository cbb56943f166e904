"""The demo plan's catalogue: categories, products (names, prices, tags, searchable text) and
the stock each warehouse holds of them."""

from __future__ import annotations

import math
from datetime import timedelta

from server.demo.catalogue import CATALOGUE, LEAVES, PREMIUM_BRANDS, VALUE_BRANDS
from server.demo.places import WAREHOUSES
from server.demo.plan import Draft, PlannedProduct, Row
from server.models import WarehouseKind
from server.services.search import pinyin_text, product_search_text


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
        attributes = {key: rng.choice(values) for key, values in leaf.attrs}
        variant = " ".join(attributes.values())
        name = " ".join(part for part in (brand, model, leaf.noun, variant) if part)
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
            created = plan.as_of - timedelta(days=rng.uniform(200, 900))
        description = (
            f"{brand} {model}{leaf.noun}，{'、'.join(tags[:2])}。"
            + "，".join(f"{k}：{v}" for k, v in attributes.items())
            + "。正品行货，全国联保，支持7天无理由退货。"
        )
        sku = f"{leaf.slug[:3].upper()}-{i + 1:05d}"
        title, body = product_search_text(
            name=name,
            brand=brand,
            sku=sku,
            description=description,
            tags=tags,
            category_names=[top_names[top], leaf.name],
            attributes=attributes,
        )
        row: Row = {
            "sku": sku,
            "name": name,
            "description": description,
            "brand": brand,
            "category_id": None,
            "tags": tags,
            "attributes": attributes,
            "price_amount": price,
            "cost_amount": round(price * (1 - margin)),
            "currency": "CNY",
            # A few discontinued items: still in old orders, no longer listed.
            "is_active": rng.random() > 0.02,
            "search_title": title,
            "search_body": body,
            "search_pinyin": pinyin_text(name, brand),
            "created_at": created,
            "updated_at": created,
        }
        product = PlannedProduct(row=row, leaf=leaf, top=top, index=i)
        plan.products.append(product)
        draft.by_leaf[slug].append(product)


def plan_stock(draft: Draft) -> None:
    """Each product's stock in every regional warehouse, and for fast-moving categories in
    every forward warehouse too: mostly plenty, some low, a few sold out."""
    rng, plan = draft.rng, draft.plan
    for product in plan.products:
        price_yuan = product.row["price_amount"] / 100
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
            safety = max(2, typical // 8)
            roll = rng.random()
            if roll < 0.05:
                on_hand = 0  # sold out (the planner tops it up to what open orders hold)
            elif roll < 0.13:
                on_hand = rng.randint(1, max(1, safety - 1))  # below safety stock
            else:
                on_hand = typical
            plan.stock[(code, product.index)] = [on_hand, safety]
