"""The demo plan's orders: who orders when (as their rhythm has it), what, from which warehouse;
each order walked through its states up to the end of the history (payments, cancellations,
status changes), and the shipments and tracking timelines of those that left the warehouse."""

from __future__ import annotations

from datetime import datetime, timedelta

from server.demo.places import CARRIERS, FORWARD_BY_CITY, WAREHOUSE_CITY, WAREHOUSE_REGION
from server.demo.plan import (
    CUSTOMER_ACTOR,
    Draft,
    PlannedCustomer,
    PlannedOrder,
    PlannedProduct,
    PlannedVariant,
    Row,
    pick_variant,
)
from server.demo.plan_behaviour import near, pick_product, plan_browsing, plan_order_session
from server.demo.plan_rhythms import schedule
from server.models import OrderStatus, PaymentStatus, ShipmentStatus

FREE_SHIPPING_FROM = 9900  # 满99包邮, in fen
SHIPPING_FEE = 800


def plan_orders(draft: Draft, count: int | None) -> None:
    """Every customer's purchases as their rhythm has them (exactly ``count`` orders when it is
    given), each an order walked through its states; then every customer's visits that bought
    nothing. Orders are numbered in time order, as a shop numbers them."""
    plan = draft.plan
    if not plan.customers:
        return
    schedule(draft, count)
    for customer in plan.customers:
        customer.end = customer.rhythm.lapsed or plan.as_of
    moments = [
        (placed, i, customer)
        for i, customer in enumerate(plan.customers)
        for placed in customer.rhythm.purchases
    ]
    if count is not None and len(moments) != count:
        raise ValueError(f"{count} orders cannot be planned for these customers")
    for seq, (placed, _, customer) in enumerate(sorted(moments, key=lambda m: m[:2]), start=1):
        _order(draft, seq, customer, placed)
    for customer in plan.customers:
        plan_browsing(draft, customer)


def _order(draft: Draft, seq: int, customer: PlannedCustomer, placed: datetime) -> None:
    rng = draft.rng
    rhythm = customer.rhythm
    # What this order is worth to them (Gamma-Gamma), in fen: the products are picked to come
    # near it, as far as the catalogue allows.
    target = 100 * rng.gammavariate(rhythm.spend_shape, 1 / rhythm.spend_rate)
    count = rng.choices((1, 2, 3, 4), weights=(60, 25, 10, 5))[0]
    chosen: list[PlannedProduct] = []
    for _ in range(count):
        if customer.bought and customer.prefs.archetype == "loyal" and rng.random() < 0.45:
            product = rng.choice(customer.bought)  # a loyal customer's repurchase
        elif customer.bought and rng.random() < 0.12:
            product = rng.choice(customer.bought)
        else:
            product = pick_product(draft, customer, placed, target=target / count)
        if product not in chosen:
            chosen.append(product)
    customer.bought.extend(p for p in chosen if p.leaf.consumable and p not in customer.bought)

    # The size, colour or capacity the customer chose, among those on sale.
    picked = [pick_variant(rng, product) for product in chosen]
    # From the forward warehouse in the customer's city when it stocks everything ordered.
    warehouse = customer.city.rdc
    forward = FORWARD_BY_CITY.get(customer.city.name)
    if forward and all((forward, v.product.index, v.index) in draft.plan.stock for v in picked):
        warehouse = forward

    lines: list[tuple[Row, PlannedVariant]] = []
    for variant in picked:
        product = variant.product
        price = variant.row["price_amount"]
        quantity = 1
        if product.leaf.consumable:
            # Stocking up, more so when one costs far less than they meant to spend.
            quantities = (1, 2, 3, 4, 6)
            fits = near([q * price for q in quantities], target / len(picked))
            weights = [w * base for w, base in zip(fits, (6, 4, 2, 1, 1), strict=True)]
            quantity = rng.choices(quantities, weights=weights)[0]
        line: Row = {
            "sku": variant.row["sku"],
            "product_name": product.row["name"],
            "options": variant.row["options"],
            "quantity": quantity,
            "base_unit_price_amount": price,
            "unit_price_amount": price,
            "line_total_amount": price * quantity,
            "adjustments": [],
        }
        lines.append((line, variant))
    subtotal = sum(line["line_total_amount"] for line, _ in lines)
    shipping = 0 if subtotal >= FREE_SHIPPING_FROM else SHIPPING_FEE
    address = customer.addresses[0 if rng.random() < 0.8 else -1]
    snapshot = {k: address[k] for k in ("recipient_name", "phone", "province", "city")}
    snapshot |= {k: address[k] for k in ("district", "street", "postal_code")}
    row: Row = {
        "number": f"D{placed:%Y%m%d}{seq:06d}",
        "customer_id": None,
        "cart_id": None,
        "email": customer.row["email"],
        "status": OrderStatus.PENDING_PAYMENT,
        "currency": "CNY",
        "subtotal_amount": subtotal,
        "discount_amount": 0,
        "shipping_amount": shipping,
        "total_amount": subtotal + shipping,
        "adjustments": [],
        "shipping_address": snapshot,
        "placed_at": placed,
        "updated_at": placed,
        "paid_at": None,
        "cancelled_at": None,
    }
    order = PlannedOrder(row=row, customer=customer, warehouse=warehouse, lines=lines)
    _lifecycle(draft, order)
    draft.plan.orders.append(order)
    plan_order_session(draft, order)


def _lifecycle(draft: Draft, order: PlannedOrder) -> None:
    """Walk the order through its states up to ``as_of``: whatever lies in the future has
    not happened yet, which leaves recent orders in their open states."""
    rng, as_of = draft.rng, draft.plan.as_of
    row = order.row
    placed: datetime = row["placed_at"]
    forward = order.warehouse.startswith("FDC")
    steps: list[tuple[datetime, OrderStatus, str]] = [
        (placed, OrderStatus.PENDING_PAYMENT, "用户下单")
    ]
    intent = rng.random()
    paid: datetime | None = None
    if intent < 0.05:
        # Never paid: cancelled automatically after 24 hours.
        steps.append((placed + timedelta(hours=24), OrderStatus.CANCELLED, "超时未支付，自动取消"))
    else:
        delay = (
            timedelta(hours=rng.uniform(1, 20))
            if rng.random() < 0.15
            else timedelta(minutes=rng.uniform(1, 15))
        )
        paid = placed + delay
        steps.append((paid, OrderStatus.PAID, "支付成功"))
        picking = paid + timedelta(minutes=rng.uniform(5, 40 if forward else 360))
        steps.append((picking, OrderStatus.FULFILLING, "仓库拣货打包"))
        if intent < 0.07:
            cancelled = picking + timedelta(minutes=rng.uniform(10, 120))
            steps.append((cancelled, OrderStatus.CANCELLED, "用户申请取消，已退款"))
        else:
            shipped = picking + timedelta(
                minutes=rng.uniform(10, 40) if forward else rng.uniform(120, 1440)
            )
            steps.append((shipped, OrderStatus.SHIPPED, "已发货"))
            delivered = shipped + _transit(draft, order)
            steps.append((delivered, OrderStatus.DELIVERED, "已签收"))
            if rng.random() < 0.9:
                confirmed = delivered + timedelta(days=rng.uniform(0.2, 7))
                steps.append((confirmed, OrderStatus.COMPLETED, "用户确认收货"))
            else:
                confirmed = delivered + timedelta(days=10)
                steps.append((confirmed, OrderStatus.COMPLETED, "系统自动确认收货"))

    happened = [s for s in steps if s[0] <= as_of]
    previous: OrderStatus | None = None
    for at, status, note in happened:
        # The customer places and cancels unpaid orders; the rest is the shop's doing.
        by_customer = status is OrderStatus.PENDING_PAYMENT or note.startswith("用户")
        order.changes.append(
            {"from_status": previous, "to_status": status, "note": note, "at": at}
            | {"actor": CUSTOMER_ACTOR if by_customer else "system"}
        )
        previous = status
    last_at, status, _ = happened[-1]
    row["status"] = status
    row["updated_at"] = last_at
    if status is OrderStatus.CANCELLED:
        row["cancelled_at"] = last_at
    if paid is not None and paid <= as_of:
        row["paid_at"] = paid
        refunded = status is OrderStatus.CANCELLED
        order.payment = {
            "gateway": "manual",
            "amount": row["total_amount"],
            "currency": row["currency"],
            "status": PaymentStatus.REFUNDED if refunded else PaymentStatus.CAPTURED,
            "reference": f"MANUAL-{row['number']}",
            "message": "已原路退款" if refunded else "",
            "created_at": paid,
        }
    when = {s: at for at, s, _ in steps}
    if OrderStatus.SHIPPED in when and when[OrderStatus.SHIPPED] <= as_of:
        _shipment(draft, order, when[OrderStatus.SHIPPED], when[OrderStatus.DELIVERED])


def _transit(draft: Draft, order: PlannedOrder) -> timedelta:
    rng = draft.rng
    if order.warehouse.startswith("FDC"):
        return timedelta(minutes=rng.uniform(30, 180))
    if WAREHOUSE_CITY[order.warehouse] == order.customer.city.name:
        return timedelta(hours=rng.uniform(8, 30))
    if WAREHOUSE_REGION[order.warehouse] == order.customer.city.region:
        return timedelta(hours=rng.uniform(20, 50))
    return timedelta(hours=rng.uniform(36, 100))


def _shipment(draft: Draft, order: PlannedOrder, shipped: datetime, delivered: datetime) -> None:
    rng, as_of = draft.rng, draft.plan.as_of
    forward = order.warehouse.startswith("FDC")
    if forward:
        carrier = rng.choice(("京东物流", "顺丰速运"))
        promise = timedelta(hours=3)  # 前置仓: within hours
    else:
        carrier = rng.choices(CARRIERS, weights=(30, 25, 20, 15, 10))[0]
        near = order.customer.city.region == WAREHOUSE_REGION[order.warehouse]
        promise = timedelta(hours=48 if near else 72)
    tracking_number = {
        "顺丰速运": f"SF{rng.randint(10**12, 10**13 - 1)}",
        "京东物流": f"JDVA{rng.randint(10**10, 10**11 - 1)}",
        "中通快递": f"7{rng.randint(10**12, 10**13 - 1)}",
        "圆通速递": f"YT{rng.randint(10**12, 10**13 - 1)}",
        "EMS": f"1{rng.randint(10**11, 10**12 - 1)}",
    }[carrier]
    origin = WAREHOUSE_CITY[order.warehouse]
    dest = order.customer.city.name
    district = order.row["shipping_address"]["district"]
    span = delivered - shipped
    hub = "前置仓" if forward else "转运中心"
    timeline = [
        (shipped, ShipmentStatus.CREATED, f"{carrier}已揽收", origin),
        (shipped + span * 0.1, ShipmentStatus.IN_TRANSIT, f"快件已从{origin}{hub}发出", origin),
    ]
    if dest != origin:
        timeline.append(
            (shipped + span * 0.7, ShipmentStatus.IN_TRANSIT, f"快件已到达{dest}转运中心", dest)
        )
    courier = f"1{rng.randint(3, 9)}{rng.randint(0, 999_999_999):09d}"
    out = f"【{district}】快递员正在派送，联系电话{courier}"
    timeline.append((shipped + span * 0.85, ShipmentStatus.OUT_FOR_DELIVERY, out, dest + district))
    signer = rng.choice(("本人", "快递柜", "驿站", "前台", "家人"))
    timeline.append(
        (delivered, ShipmentStatus.DELIVERED, f"已签收，签收人：{signer}", dest + district)
    )
    seen = [t for t in timeline if t[0] <= as_of]
    status = seen[-1][1]
    if status is ShipmentStatus.IN_TRANSIT and rng.random() < 0.15:
        # A delayed parcel: an exception for the logistics team to follow up.
        at = min(as_of, seen[-1][0] + timedelta(hours=6))
        seen.append((at, ShipmentStatus.EXCEPTION, "受天气影响，快件延误", seen[-1][3]))
        status = ShipmentStatus.EXCEPTION
    order.shipment = {
        "order_id": None,
        "warehouse_id": None,
        "carrier": carrier,
        "tracking_number": tracking_number,
        "status": status,
        "promised_at": shipped + promise,
        "shipped_at": shipped,
        "delivered_at": delivered if status is ShipmentStatus.DELIVERED else None,
        "created_at": shipped,
        "updated_at": seen[-1][0],
    }
    order.tracking = [
        {
            "status": st,
            "description": text,
            "location": where,
            "occurred_at": at,
            "created_at": at,
        }
        for at, st, text, where in seen
    ]
