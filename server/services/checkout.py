"""Pricing a cart and turning it into an order, in one transaction.

``quote_cart`` is what a shopper sees (lines priced by plugins, order adjustments, the plugins'
free gifts, shipping quotes and their adjustments); ``place_order`` re-computes the same quote
inside the write transaction, so an order is always placed at the prices of the moment it is
placed.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.auth import Viewer
from server.hookcall import PluginFailed
from server.hooktypes import (
    CORE,
    Adjustment,
    AdjustmentKind,
    CartLineView,
    CartView,
    CheckoutProblem,
    GiftLine,
    ShippingQuote,
)
from server.models import (
    Cart,
    CartLine,
    CartStatus,
    Customer,
    CustomerEventKind,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Product,
    ProductVariant,
    utcnow,
)
from server.plugins import PluginRuntime
from server.services import (
    answers,
    behaviour,
    carts,
    channels,
    idempotency,
    inventory,
    outbox,
    pricing,
    variants,
)
from server.services.errors import (
    CheckoutProblems,
    Conflict,
    EmptyCart,
    OutOfStock,
    ValidationFailed,
)

PLACE_ORDER = "placeOrder"
CART_GIFTS = "cart_gifts"
SHIPPING_ADJUSTMENTS = "shipping_adjustments"
# order_line.gift_rule's length.
GIFT_RULE_MAX = 200


@dataclass(frozen=True)
class PricedLine:
    line: CartLine
    product: Product
    variant: ProductVariant
    breakdown: pricing.PriceBreakdown

    @property
    def total(self) -> int:
        return self.breakdown.final * self.line.quantity


@dataclass(frozen=True)
class PricedGift:
    """A free item a plugin added to the cart (``cart_gifts``): the variant's catalogue price
    as ``base``, the gift's adjustment taking all of it off (``final`` is 0)."""

    gift: GiftLine
    product: Product
    variant: ProductVariant
    breakdown: pricing.PriceBreakdown

    @property
    def quantity(self) -> int:
        return self.gift.quantity


@dataclass(frozen=True)
class CartQuote:
    """A cart priced now: lines, order adjustments, the plugins' gifts and the ways it can be
    shipped (each with its adjustments applied)."""

    currency: str
    lines: tuple[PricedLine, ...]
    view: CartView
    order_adjustments: tuple[Adjustment, ...]
    shipping_quotes: tuple[ShippingQuote, ...]
    gifts: tuple[PricedGift, ...] = ()

    @property
    def subtotal(self) -> int:
        return sum(line.total for line in self.lines)

    @property
    def discount(self) -> int:
        """What the order's discounts take off (a positive amount)."""
        return -sum(a.amount for a in self.order_adjustments if a.kind is AdjustmentKind.DISCOUNT)

    @property
    def fees(self) -> tuple[Adjustment, ...]:
        """The order adjustments that add to what the shopper pays."""
        return tuple(a for a in self.order_adjustments if a.kind is AdjustmentKind.FEE)

    @property
    def fee_total(self) -> int:
        return sum(a.amount for a in self.fees)

    def shipping_quote(self, code: str | None = None) -> ShippingQuote | None:
        """The quote with ``code``, or the cheapest; None when no plugin ships (free)."""
        if code is not None:
            for quote in self.shipping_quotes:
                if quote.code == code:
                    return quote
            raise ValidationFailed(
                f"shipping method {code!r} is not offered for this cart", field="shippingMethod"
            )
        if not self.shipping_quotes:
            return None
        return min(self.shipping_quotes, key=lambda q: (q.amount, q.code))

    def total(self, shipping: int) -> int:
        # Discounts never make an order cost less than nothing.
        return max(0, self.subtotal - self.discount + self.fee_total + shipping)


async def pricing_customer(session: AsyncSession, cart: Cart, viewer: Viewer) -> Customer | None:
    """Whose prices a cart gets: its owner's, or the signed-in viewer's for a guest cart."""
    customer_id = cart.customer_id if cart.customer_id is not None else viewer.customer_id
    if customer_id is None:
        return None
    return await session.get(Customer, customer_id)


async def quote_cart(
    session: AsyncSession,
    plugins: PluginRuntime,
    cart: Cart,
    customer: Customer | None,
    *,
    address: dict[str, Any] | None = None,
) -> CartQuote:
    """Price every line (plugins' price_adjustments), then the order and its shipping."""
    lines = await carts.lines_of(session, cart.id)  # type: ignore[arg-type]  # a stored row has its id
    products = {
        p.id: p
        for p in await session.scalars(
            select(Product).where(col(Product.id).in_([line.product_id for line in lines]))
        )
    }
    variant_of = await variants.by_ids(session, [line.variant_id for line in lines])
    # One call of each price hook for the whole cart, an item per variant.
    prices = await pricing.price_variants(
        session,
        plugins,
        {
            line.variant_id: (products[line.product_id], variant_of[line.variant_id], line.quantity)
            for line in lines
        },
        customer,
        utcnow(),
    )
    priced = [
        PricedLine(
            line=line,
            product=products[line.product_id],
            variant=variant_of[line.variant_id],
            breakdown=prices[line.variant_id],
        )
        for line in lines
    ]
    view = CartView(
        cart_id=cart.id,
        customer_id=cart.customer_id if cart.customer_id is not None else _id(customer),
        currency=cart.currency,
        lines=tuple(
            CartLineView(
                product_id=p.line.product_id,
                variant_id=p.line.variant_id,
                sku=p.variant.sku,
                quantity=p.line.quantity,
                unit_price=p.breakdown.final,
                category_id=p.product.category_id,
                brand=p.product.brand,
                tags=tuple(p.product.tags),
            )
            for p in priced
        ),
        subtotal=sum(p.total for p in priced),
        shipping_address=address if address is not None else cart.shipping_address,
    )
    adjustments = await plugins.call(
        "order_adjustments", session=session, cart=view, customer=customer
    )
    gifts = await _gifts(session, plugins, view, customer)
    quotes = await plugins.call(
        "shipping_quotes", session=session, cart=view, address=view.shipping_address
    )
    offered = [
        # The price the quoting plugin asked is the list price; only the core adjusts it.
        dataclasses.replace(quote, list_amount=quote.amount, adjustments=())
        for plugin, answer in quotes
        for quote in answers.stamped_all(plugin, "shipping_quotes", answer, ShippingQuote)
    ]
    return CartQuote(
        currency=cart.currency,
        lines=tuple(priced),
        view=view,
        order_adjustments=tuple(
            adj
            for plugin, answer in adjustments
            for adj in answers.adjustments_of(plugin, "order_adjustments", answer)
        ),
        shipping_quotes=await _adjust_shipping(session, plugins, view, offered, customer),
        gifts=gifts,
    )


def _gift_problem(gift: GiftLine, variant: ProductVariant | None, product: Product | None) -> str:
    """What is wrong with a plugin's gift ('' when nothing is)."""
    if isinstance(gift.quantity, bool) or not isinstance(gift.quantity, int) or gift.quantity < 1:
        return f"gift quantity {gift.quantity!r} is not a whole number of at least 1"
    if variant is None or product is None:
        return f"gift variant {gift.variant_id!r} does not exist"
    if not (variant.is_active and product.is_active):
        return f"gift variant {gift.variant_id} ({variant.sku}) is not on sale"
    if not isinstance(gift.rule, str) or not gift.rule or len(gift.rule) > GIFT_RULE_MAX:
        return f"gift rule {gift.rule!r} is not a string of 1 to {GIFT_RULE_MAX} characters"
    if not isinstance(gift.label, str):
        return f"gift label {gift.label!r} is not a string"
    return ""


async def _gifts(
    session: AsyncSession, plugins: PluginRuntime, view: CartView, customer: Customer | None
) -> tuple[PricedGift, ...]:
    """The plugins' free items for the cart (one call of ``cart_gifts``; two statements when
    it gives any), each priced at zero; a gift that is not a valid GiftLine of a variant on
    sale fails the request, naming the plugin."""
    if not plugins.implements(CART_GIFTS):
        return ()
    given = [
        gift
        for plugin, answer in await plugins.call(
            CART_GIFTS, session=session, cart=view, customer=customer
        )
        for gift in answers.stamped_all(plugin, CART_GIFTS, answer, GiftLine)
    ]
    if not given:
        return ()
    variant_of = await variants.by_ids(
        session, [g.variant_id for g in given if type(g.variant_id) is int]
    )
    products = {
        p.id: p
        for p in await session.scalars(
            select(Product).where(col(Product.id).in_({v.product_id for v in variant_of.values()}))
        )
    }
    priced: list[PricedGift] = []
    for gift in given:
        variant = variant_of.get(gift.variant_id) if type(gift.variant_id) is int else None
        product = products.get(variant.product_id) if variant is not None else None
        problem = _gift_problem(gift, variant, product)
        if problem:
            raise PluginFailed(gift.source, CART_GIFTS, ValueError(problem))
        assert variant is not None and product is not None
        base = variant.price_amount
        priced.append(
            PricedGift(
                gift=gift,
                product=product,
                variant=variant,
                breakdown=pricing.PriceBreakdown(
                    currency=product.currency,
                    base=base,
                    adjustments=(
                        Adjustment(
                            rule=gift.rule, label=gift.label, amount=-base, source=gift.source
                        ),
                    ),
                ),
            )
        )
    return tuple(priced)


async def _adjust_shipping(
    session: AsyncSession,
    plugins: PluginRuntime,
    view: CartView,
    quotes: list[ShippingQuote],
    customer: Customer | None,
) -> tuple[ShippingQuote, ...]:
    """Every quote with the plugins' ``shipping_adjustments`` applied (one call for the
    cart): its amount the list price plus them, never below zero."""
    if not quotes or not plugins.implements(SHIPPING_ADJUSTMENTS):
        return tuple(quotes)
    replies = await plugins.call(
        SHIPPING_ADJUSTMENTS, session=session, cart=view, quotes=tuple(quotes), customer=customer
    )
    extra: dict[str, list[Adjustment]] = {}
    for plugin, answer in replies:
        if isinstance(answer, (list, tuple)) and not answer:
            continue  # "nothing", said as an empty list
        if not isinstance(answer, Mapping):
            raise PluginFailed(
                plugin,
                SHIPPING_ADJUSTMENTS,
                TypeError(f"returned {answer!r}, not a mapping of quote code to adjustments"),
            )
        for code, values in answer.items():
            if not isinstance(code, str):
                raise PluginFailed(
                    plugin, SHIPPING_ADJUSTMENTS, TypeError(f"{code!r} is not a quote code")
                )
            extra.setdefault(code, []).extend(
                answers.adjustments_of(plugin, SHIPPING_ADJUSTMENTS, values)
            )
    return tuple(
        dataclasses.replace(
            quote,
            amount=max(0, quote.amount + sum(a.amount for a in extra.get(quote.code, ()))),
            adjustments=tuple(extra.get(quote.code, ())),
        )
        for quote in quotes
    )


def _id(customer: Customer | None) -> int | None:
    return customer.id if customer is not None else None


@dataclass(frozen=True)
class PlaceOrderInput:
    cart_token: str
    idempotency_key: str
    shipping_address: dict[str, str] | None = None
    email: str | None = None
    shipping_method: str | None = None
    # What the shopper sent in the fields plugins added to the input, by plugin name.
    plugin_inputs: Mapping[str, Any] = field(default_factory=dict)
    # Where the order came from (checked: channels.traffic_source); empty: the visitor's
    # latest touch. ``session_id``: a guest's behaviour session, whose touches count.
    source: channels.TrafficSource = field(default_factory=channels.TrafficSource)
    session_id: str | None = None

    def canonical(self) -> dict[str, Any]:
        """What makes two requests "the same" (the key itself does not)."""
        return {
            "cartToken": self.cart_token,
            "shippingAddress": self.shipping_address,
            "email": self.email,
            "shippingMethod": self.shipping_method,
            "plugins": {name: vars(value) for name, value in self.plugin_inputs.items()},
            "source": self.source.columns(),
            "sessionId": self.session_id,
        }


def order_number() -> str:
    # Date + 10 random hex digits: readable on the phone, unique without a sequence.
    return f"SG{utcnow():%Y%m%d}{secrets.token_hex(5).upper()}"


def _core_problems(quote: CartQuote) -> list[CheckoutProblem]:
    return [
        CheckoutProblem(
            code="PRODUCT_UNAVAILABLE",
            message=f"{_line_name(p)} is no longer sold",
            field=f"lines.{i}",
            source=CORE,
        )
        for i, p in enumerate(quote.lines)
        if not (p.product.is_active and p.variant.is_active)
    ]


def _line_name(p: PricedLine) -> str:
    """What the shopper calls a line: the product's name, with its options when it has any."""
    options = " / ".join(p.variant.options.values())
    return f"{p.product.name} ({options})" if options else p.product.name


def problems_of(hook: str, replies: list[tuple[str, Any]]) -> list[CheckoutProblem]:
    """Every CheckoutProblem the plugins answered, each stamped with its plugin."""
    return [
        problem
        for plugin, answer in replies
        for problem in answers.stamped_all(plugin, hook, answer, CheckoutProblem)
    ]


async def place_order(
    session: AsyncSession,
    plugins: PluginRuntime,
    viewer: Viewer,
    data: PlaceOrderInput,
    *,
    lookback: timedelta = channels.DEFAULT_LOOKBACK,
) -> Order:
    """Validate, price, reserve stock and create the order: all or nothing.

    The steps, in one transaction: claim the idempotency key and the cart; price the cart
    again (plugins' adjustments and guardrails, order adjustments, shipping); the core's and
    the plugins' checks (``validate_checkout``); reserve stock; write the order and its lines;
    let the plugins reserve what they limit (``order_placing``); record the purchase and the
    ``order_placed`` event. Any refusal (a typed error) or failure rolls all of it back.

    The order's channel and UTM tags are the input's; when it gives none, those of the
    visitor's latest touch within ``lookback`` (one indexed statement).

    Idempotent on (viewer or cart, key): a repeat with the same input returns the first order.
    """
    key = idempotency.validate_key(data.idempotency_key)
    visitor_session = behaviour.check_session_id(data.session_id)
    scope = viewer.subject if viewer.is_customer else f"cart:{data.cart_token}"
    claimed = await idempotency.claim(
        session,
        scope=scope,
        operation=PLACE_ORDER,
        key=key,
        digest=idempotency.request_hash(data.canonical()),
    )
    if claimed.replay_id is not None:
        order = await session.get(Order, claimed.replay_id)
        assert order is not None
        return order

    cart = await carts.get_cart(session, viewer, data.cart_token)
    # Claim the cart itself: of two concurrent checkouts of one cart (different keys), one wins.
    converted = await session.execute(
        update(Cart)
        .where(col(Cart.id) == cart.id, col(Cart.status) == CartStatus.ACTIVE)
        .values(status=CartStatus.CONVERTED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if converted.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say
        raise Conflict("this cart was already checked out", field="cartToken")

    customer = await pricing_customer(session, cart, viewer)
    address = data.shipping_address or cart.shipping_address
    if not address:
        raise ValidationFailed("a shipping address is needed", field="shippingAddress")
    address = carts.clean_address(address, "shippingAddress")
    email = data.email or cart.email or (customer.email if customer else None)
    if not email:
        raise ValidationFailed("an email address is needed for a guest order", field="email")
    email = carts.clean_email(email)

    quote = await quote_cart(session, plugins, cart, customer, address=address)
    if not quote.lines:
        raise EmptyCart("the cart is empty", field="cartToken")
    problems = _core_problems(quote) + problems_of(
        "validate_checkout",
        await plugins.call(
            "validate_checkout",
            session=session,
            cart=quote.view,
            customer=customer,
            inputs=data.plugin_inputs,
        ),
    )
    if problems:
        raise CheckoutProblems(problems)
    shipping = quote.shipping_quote(data.shipping_method)
    shipping_amount = shipping.amount if shipping is not None else 0

    customer_id = cart.customer_id if cart.customer_id is not None else viewer.customer_id
    guest_session = visitor_session if customer_id is None else None
    source = data.source
    if source.is_empty:
        source = await channels.latest_touch(
            session,
            customer_id=customer_id,
            session_id=guest_session,
            at=utcnow(),
            lookback=lookback,
        )

    # Lock rows in one order (by variant, the gifts' among the lines') so concurrent
    # multi-line checkouts cannot deadlock.
    warehouses: dict[int, int] = {}
    gifts: list[tuple[PricedGift, int]] = []
    left_out: list[PricedGift] = []
    reservations: list[tuple[int, int, PricedLine | PricedGift]] = [
        *((p.line.variant_id, 0, p) for p in quote.lines),
        *((g.gift.variant_id, 1, g) for g in quote.gifts),
    ]
    for variant_id, _gift, item in sorted(reservations, key=lambda r: r[:2]):
        if isinstance(item, PricedLine):
            warehouses[variant_id] = await inventory.reserve(
                session, variant_id, item.line.quantity
            )
            continue
        try:
            # A gift out of stock is left out, the rest of the order goes through: its
            # reservation is undone alone, to a savepoint.
            async with session.begin_nested():
                gifts.append((item, await inventory.reserve(session, variant_id, item.quantity)))
        except OutOfStock:
            left_out.append(item)

    order = Order(
        number=order_number(),
        customer_id=customer_id,
        cart_id=cart.id,
        email=email,
        status=OrderStatus.PENDING_PAYMENT,
        currency=cart.currency,
        subtotal_amount=quote.subtotal,
        discount_amount=quote.discount,
        fee_amount=quote.fee_total,
        shipping_amount=shipping_amount,
        shipping_list_amount=_list_amount(shipping),
        shipping_adjustments=[a.as_dict() for a in shipping.adjustments] if shipping else [],
        shipping_method=shipping.code if shipping else None,
        shipping_carrier=shipping.carrier if shipping else None,
        shipping_source=shipping.source if shipping else None,
        promised_from=shipping.promised_from if shipping else None,
        promised_by=shipping.promised_by if shipping else None,
        total_amount=quote.total(shipping_amount),
        adjustments=[adj.as_dict() for adj in quote.order_adjustments],
        shipping_address=address,
        session_id=guest_session,
        **source.columns(),
    )
    session.add(order)
    await session.flush()
    order_lines = _order_lines(order, quote.lines, warehouses) + _gift_lines(order, gifts)
    session.add_all(order_lines)
    session.add(
        OrderStatusChange(
            order_id=order.id,  # type: ignore[arg-type]  # a stored row has its id
            from_status=None,
            to_status=OrderStatus.PENDING_PAYMENT,
            actor=viewer.subject,
            note=(
                "order placed"
                + (f" (shipping: {shipping.carrier} {shipping.label})" if shipping else "")
                + "".join(
                    f"; gift {g.product.name} ({g.variant.sku}) × {g.quantity} left out: "
                    "out of stock"
                    for g in left_out
                )
            )[:500],
        )
    )
    await session.flush()
    # The plugins reserve what is limited (coupon uses, seats, budgets) for this very order;
    # a refusal undoes the whole order.
    refusals = problems_of(
        "order_placing",
        await plugins.call(
            "order_placing",
            session=session,
            order=order,
            lines=order_lines,
            cart=quote.view,
            customer=customer,
            inputs=data.plugin_inputs,
        ),
    )
    if refusals:
        raise CheckoutProblems(refusals)
    for line in order_lines:
        if line.gift_rule is not None:
            continue  # a gift was given, not bought
        await behaviour.record(
            session,
            kind=CustomerEventKind.PURCHASE,
            customer_id=order.customer_id,
            session_id=None if order.customer_id else carts.behaviour_session_id(cart),
            product_id=line.product_id,
            order_id=order.id,
            quantity=line.quantity,
            data={
                "unit_price": line.unit_price_amount,
                "currency": order.currency,
                "variant_id": line.variant_id,
                "sku": line.sku,
            },
        )
    await outbox.emit(
        session,
        "order_placed",
        {
            "order_id": order.id,
            "number": order.number,
            "customer_id": order.customer_id,
            "total": order.total_amount,
            "currency": order.currency,
            "channel": order.channel,
            "lines": [
                {
                    "order_line_id": line.id,
                    "product_id": line.product_id,
                    "variant_id": line.variant_id,
                    "sku": line.sku,
                    "options": dict(line.options),
                    "quantity": line.quantity,
                    "unit_price": line.unit_price_amount,
                    "warehouse_id": line.warehouse_id,
                    # A free item a plugin added (cart_gifts), and the rule that gave it.
                    "gift": line.gift_rule is not None,
                    "gift_rule": line.gift_rule,
                }
                for line in order_lines
            ],
        },
    )
    await idempotency.complete(session, claimed, order.id)  # type: ignore[arg-type]  # a stored row has its id
    return order


def _order_lines(
    order: Order, lines: Sequence[PricedLine], warehouses: dict[int, int]
) -> list[OrderLine]:
    return [
        OrderLine(
            order_id=order.id,  # type: ignore[arg-type]  # a stored row has its id
            product_id=p.line.product_id,
            variant_id=p.line.variant_id,
            warehouse_id=warehouses[p.line.variant_id],
            sku=p.variant.sku,
            product_name=p.product.name,
            options=dict(p.variant.options),
            quantity=p.line.quantity,
            base_unit_price_amount=p.breakdown.base,
            unit_price_amount=p.breakdown.final,
            line_total_amount=p.total,
            adjustments=p.breakdown.stored(),
        )
        for p in lines
    ]


def _list_amount(shipping: ShippingQuote | None) -> int:
    if shipping is None:
        return 0
    return shipping.amount if shipping.list_amount is None else shipping.list_amount


def _gift_lines(order: Order, gifts: Sequence[tuple[PricedGift, int]]) -> list[OrderLine]:
    """The gifts whose stock was reserved, as free lines marked with their rule."""
    return [
        OrderLine(
            order_id=order.id,  # type: ignore[arg-type]  # a stored row has its id
            product_id=g.product.id,  # type: ignore[arg-type]  # a stored row has its id
            variant_id=g.gift.variant_id,
            warehouse_id=warehouse_id,
            sku=g.variant.sku,
            product_name=g.product.name,
            options=dict(g.variant.options),
            quantity=g.quantity,
            base_unit_price_amount=g.breakdown.base,
            unit_price_amount=g.breakdown.final,
            line_total_amount=g.breakdown.final * g.quantity,
            adjustments=g.breakdown.stored(),
            gift_rule=g.gift.rule,
        )
        for g, warehouse_id in gifts
    ]
