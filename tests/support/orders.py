"""Helpers for tests of carts, checkout, orders and shipments.

Catalogue and stock rows are created directly with the models and committed, so the server
under test sees them at once; everything else goes through GraphQL like a client would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from server.config import Settings
from server.models import (
    Category,
    OutboxEvent,
    Product,
    ProductOption,
    ProductVariant,
    StockLevel,
    Warehouse,
)
from server.plugins import PluginRuntime, load_plugins
from server.services import variants
from tests.support.graphql import GraphQLClient

_serial = itertools.count(1)

ADDRESS = {
    "recipientName": "王小明",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "street": "文三路 90 号",
    "postalCode": "310012",
}


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


def only_plugins(settings: Settings, *extra: Any) -> PluginRuntime:
    """The core with exactly ``extra`` as plugins (installed ones are left out), so a test
    asserts the core's behaviour and its own plugins', nothing else's."""
    return load_plugins(settings.model_copy(update={"plugins": ""}), extra=extra)


def unthrottled(settings: Settings) -> Settings:
    """Settings whose query-cost budget does not get in the way: these tests play many
    shoppers from one client, and ask for big nested pages on purpose."""
    return settings.model_copy(
        update={"cost_bucket_size": 10_000_000, "max_query_cost": 10_000_000}
    )


async def make_warehouse(session: AsyncSession, *, code: str | None = None) -> Warehouse:
    n = next(_serial)
    warehouse = Warehouse(
        code=code or f"WH-{n}", name=f"杭州仓 {n}", region="华东", province="浙江省", city="杭州市"
    )
    session.add(warehouse)
    await session.commit()
    return warehouse


async def make_product(
    session: AsyncSession,
    *,
    price: int = 19900,
    stock: int | Iterable[tuple[Warehouse, int]] = 100,
    category: Category | None = None,
    name: str | None = None,
) -> Product:
    """A committed product; ``stock`` is units in a new warehouse or [(warehouse, units)]."""
    n = next(_serial)
    if category is None:
        category = Category(name=f"数码 {n}", slug=f"digital-{n}")
        session.add(category)
        await session.flush()
    product = Product(
        sku=f"SKU-{n}",
        name=name or f"蓝牙耳机 {n}",
        price_amount=price,
        category_id=category.id,
    )
    session.add(product)
    await session.flush()
    variant = variants.default_variant(product)
    session.add(variant)
    await session.flush()
    if isinstance(stock, int):
        warehouse = Warehouse(code=f"WH-P{n}", name=f"上海仓 {n}")
        session.add(warehouse)
        await session.flush()
        stock = [(warehouse, stock)]
    for warehouse, units in stock:
        session.add(
            StockLevel(
                warehouse_id=warehouse.id,
                product_id=product.id,
                variant_id=variant.id,
                on_hand=units,
            )
        )
    await session.commit()
    return product


@dataclass(frozen=True)
class VariantSpec:
    """One variant of a product made by :func:`make_variant_product`: its SKU, option values,
    price (minor units) and stock (units in the product's warehouse, or [(warehouse, units)])."""

    sku: str
    options: dict[str, str]
    price: int = 19900
    stock: int | Sequence[tuple[Warehouse, int]] = field(default=0)
    is_active: bool = True


async def make_variant_product(
    session: AsyncSession, specs: Sequence[VariantSpec], *, name: str | None = None
) -> tuple[Product, list[ProductVariant]]:
    """A committed product with option axes and ``specs`` as its variants, as the catalogue
    keeps one: the product's price is its cheapest variant's on sale."""
    n = next(_serial)
    category = Category(name=f"服饰 {n}", slug=f"apparel-{n}")
    session.add(category)
    await session.flush()
    on_sale = [spec.price for spec in specs if spec.is_active] or [specs[0].price]
    product = Product(
        sku=f"SPU-{n}",
        name=name or f"纯棉T恤 {n}",
        price_amount=min(on_sale),
        category_id=category.id,
    )
    session.add(product)
    await session.flush()
    axes: dict[str, list[str]] = {}
    for spec in specs:
        for axis, value in spec.options.items():
            if value not in axes.setdefault(axis, []):
                axes[axis].append(value)
    session.add_all(
        ProductOption(product_id=product.id, name=axis, position=i, values=values)
        for i, (axis, values) in enumerate(axes.items())
    )
    made = [
        ProductVariant(
            product_id=product.id,
            sku=spec.sku,
            options=spec.options,
            option_key=variants.option_key(spec.options),
            price_amount=spec.price,
            position=i,
            is_active=spec.is_active,
        )
        for i, spec in enumerate(specs)
    ]
    session.add_all(made)
    await session.flush()
    own: Warehouse | None = None
    for spec, variant in zip(specs, made, strict=True):
        if isinstance(spec.stock, int):
            if own is None:
                own = Warehouse(code=f"WH-V{n}", name=f"广州仓 {n}")
                session.add(own)
                await session.flush()
            stock: Sequence[tuple[Warehouse, int]] = [(own, spec.stock)]
        else:
            stock = spec.stock
        session.add_all(
            StockLevel(
                warehouse_id=warehouse.id,
                product_id=product.id,
                variant_id=variant.id,
                on_hand=units,
            )
            for warehouse, units in stock
        )
    await session.commit()
    return product, made


async def stock_of(
    session: AsyncSession, product: Product | ProductVariant | int
) -> list[tuple[int, int]]:
    """[(on_hand, reserved)] of the product (every variant) or of one variant, per warehouse,
    as committed now."""
    if isinstance(product, ProductVariant):
        where = StockLevel.variant_id == product.id
    else:
        where = StockLevel.product_id == (product if isinstance(product, int) else product.id)
    await session.commit()  # a fresh snapshot (SQLite keeps one per read transaction)
    rows = await session.execute(
        select(StockLevel.on_hand, StockLevel.reserved).where(where).order_by(StockLevel.id)
    )
    levels = [(r.on_hand, r.reserved) for r in rows]
    await session.commit()  # no read transaction left open to block a later write
    return levels


async def count(session: AsyncSession, model: Any, *where: Any) -> int:
    await session.commit()  # a fresh snapshot (SQLite keeps one per read transaction)
    stmt = select(func.count()).select_from(model)
    for clause in where:
        stmt = stmt.where(clause)
    found = int(await session.scalar(stmt) or 0)
    await session.commit()
    return found


async def outbox_names(session: AsyncSession) -> list[str]:
    await session.commit()  # a fresh snapshot (SQLite keeps one per read transaction)
    names = list(await session.scalars(select(OutboxEvent.name).order_by(OutboxEvent.id)))
    await session.commit()
    return names


CREATE_CART = """
mutation CreateCart($input: CreateCartInput!) {
  createCart(input: $input) {
    __typename
    ... on CreateCartSuccess { cart { token currency } }
    ... on Error { code message field }
  }
}"""

ADD_LINES = """
mutation CartAddLines($input: CartAddLinesInput!) {
  cartAddLines(input: $input) {
    __typename
    ... on CartAddLinesSuccess {
      cart {
        itemCount
        lines { id quantity product { id } unitPrice { amount } lineTotal { amount } }
        subtotal { amount }
      }
    }
    ... on Error { code message field }
  }
}"""

PLACE_ORDER = """
mutation PlaceOrder($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on PlaceOrderSuccess {
      order {
        id number status
        subtotal { amount } discount { amount } shipping { amount } total { amount currency }
        lines { id quantity sku unitPrice { amount } basePrice { amount } }
      }
    }
    ... on OutOfStock { code productId variantId requested available }
    ... on CheckoutProblems { code problems { source plugin code message field } }
    ... on Error { code message field }
  }
}"""

PAY_ORDER = """
mutation PayOrder($input: PayOrderInput!) {
  payOrder(input: $input) {
    __typename
    ... on PayOrderSuccess { order { status paidAt } payment { status gateway amount { amount } } }
    ... on InvalidTransition { current target }
    ... on Error { code message field }
  }
}"""

ORDER_RESULT = """
    __typename
    ... on InvalidTransition { code current target }
    ... on Error { code message field }
"""

CANCEL_ORDER = (
    """
mutation CancelOrder($input: CancelOrderInput!) {
  cancelOrder(input: $input) {
    ... on CancelOrderSuccess { order { status cancelledAt } }
"""
    + ORDER_RESULT
    + "} }"
)

UPDATE_STATUS = (
    """
mutation UpdateOrderStatus($input: UpdateOrderStatusInput!) {
  updateOrderStatus(input: $input) {
    ... on UpdateOrderStatusSuccess { order { status } }
"""
    + ORDER_RESULT
    + "} }"
)

CONFIRM_RECEIPT = (
    """
mutation ConfirmReceipt($input: ConfirmReceiptInput!) {
  confirmReceipt(input: $input) {
    ... on ConfirmReceiptSuccess { order { status } }
"""
    + ORDER_RESULT
    + "} }"
)


async def new_cart(gql: GraphQLClient, **fields: Any) -> str:
    data = await gql(CREATE_CART, {"input": fields})
    assert data["createCart"]["__typename"] == "CreateCartSuccess", data
    return str(data["createCart"]["cart"]["token"])


def line_input(item: Product | ProductVariant, quantity: int) -> dict[str, Any]:
    """A CartLineInput: a variant by its id, a (single-variant) product by the product's."""
    if isinstance(item, ProductVariant):
        return {"variantId": gid("ProductVariant", item.id), "quantity": quantity}
    return {"productId": gid("Product", item.id), "quantity": quantity}


async def cart_with(
    gql: GraphQLClient, lines: Iterable[tuple[Product | ProductVariant, int]], **fields: Any
) -> str:
    """A new cart holding ``lines`` (products with one variant, or variants); returns its
    token."""
    token = await new_cart(gql, **fields)
    lines = list(lines)
    if not lines:
        return token
    data = await gql(
        ADD_LINES,
        {
            "input": {
                "cartToken": token,
                "lines": [line_input(p, q) for p, q in lines],
            }
        },
    )
    assert data["cartAddLines"]["__typename"] == "CartAddLinesSuccess", data
    return token


def order_input(token: str, key: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cartToken": token,
        "idempotencyKey": key,
        "shippingAddress": ADDRESS,
        "email": "buyer@example.cn",
    }
    fields.update(extra)
    return {"input": fields}


async def place(gql: GraphQLClient, token: str, key: str | None = None, **extra: Any) -> Any:
    """placeOrder's result (the union member as a dict)."""
    data = await gql(PLACE_ORDER, order_input(token, key or f"key-{next(_serial)}", **extra))
    return data["placeOrder"]


async def place_ok(
    gql: GraphQLClient, lines: Iterable[tuple[Product | ProductVariant, int]]
) -> dict[str, Any]:
    """A placed order (PENDING_PAYMENT) of ``lines``."""
    result = await place(gql, await cart_with(gql, lines))
    assert result["__typename"] == "PlaceOrderSuccess", result
    return dict(result["order"])


async def pay(gql: GraphQLClient, order: dict[str, Any], token: str = "tok_visa") -> Any:
    data = await gql(
        PAY_ORDER,
        {
            "input": {
                "orderId": order["id"],
                "gateway": "test",
                "token": token,
                "amount": {"amount": order["total"]["amount"]},
            }
        },
    )
    return data["payOrder"]
