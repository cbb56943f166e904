"""Behaviour events: the shopping path (view, search, favourite, add to cart, purchase)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import CustomerEvent, CustomerEventKind, Product
from server.models.base import utcnow
from server.services import outbox
from server.services.channels import TrafficSource
from server.services.errors import NotFound, ValidationFailed

# A VIEW or ADD_TO_CART this soon after the visitor's latest search is a click on its results.
SEARCH_CLICK_WINDOW = timedelta(minutes=30)
CLICK_KINDS = frozenset({CustomerEventKind.VIEW, CustomerEventKind.ADD_TO_CART})


def search_key(query: str) -> str:
    """A search text as search analytics groups it: trimmed, case-folded, whitespace collapsed
    ("  Sony   耳机 " and "sony 耳机" are one search)."""
    return " ".join(query.split()).casefold()


async def _latest_search(
    session: AsyncSession, customer_id: int | None, session_id: str | None, at: datetime
) -> int | None:
    """The search a click at ``at`` is on, when not said explicitly: the visitor's (the
    customer's, else the session's) latest search within SEARCH_CLICK_WINDOW before it, unless
    that search found nothing (a click then came from elsewhere)."""
    if customer_id is not None:
        actor = col(CustomerEvent.customer_id) == customer_id
    elif session_id is not None:
        actor = col(CustomerEvent.session_id) == session_id
    else:
        return None
    stmt = (
        select(col(CustomerEvent.id), col(CustomerEvent.data))
        .where(
            actor,
            col(CustomerEvent.kind) == CustomerEventKind.SEARCH,
            col(CustomerEvent.occurred_at) >= at - SEARCH_CLICK_WINDOW,
            col(CustomerEvent.occurred_at) <= at,
        )
        .order_by(col(CustomerEvent.occurred_at).desc(), col(CustomerEvent.id).desc())
        .limit(1)
    )
    latest = (await session.execute(stmt)).first()
    if latest is None or (latest.data or {}).get("result_count") == 0:
        return None
    return int(latest.id)


async def record(
    session: AsyncSession,
    *,
    kind: CustomerEventKind,
    customer_id: int | None = None,
    session_id: str | None = None,
    product_id: int | None = None,
    order_id: int | None = None,
    query: str | None = None,
    quantity: int | None = None,
    data: dict[str, Any] | None = None,
    search_id: int | None = None,
    source: TrafficSource | None = None,
) -> CustomerEvent:
    """Store one behaviour event and announce it (``customer_event_recorded``).

    A SEARCH is stored with its :func:`search_key`; a VIEW or ADD_TO_CART with the search it
    is a click on: ``search_id`` when given (checked by the caller), else the visitor's latest
    search within SEARCH_CLICK_WINDOW (see ``_latest_search``). ``source`` is where the
    visitor came from (checked by the caller): an event with a channel is a touch.
    """
    now = utcnow()
    if kind in CLICK_KINDS and search_id is None:
        search_id = await _latest_search(session, customer_id, session_id, now)
    event = CustomerEvent(
        kind=kind,
        customer_id=customer_id,
        session_id=session_id,
        product_id=product_id,
        order_id=order_id,
        query=query,
        quantity=quantity,
        data=data or {},
        search_key=search_key(query) or None
        if kind is CustomerEventKind.SEARCH and query
        else None,
        search_id=search_id if kind in CLICK_KINDS else None,
        **(source or TrafficSource()).columns(),
        occurred_at=now,
    )
    session.add(event)
    await session.flush()
    await outbox.emit(
        session,
        "customer_event_recorded",
        {
            "event_id": event.id,
            "customer_id": customer_id,
            "session_id": session_id,
            "kind": kind.value,
            "product_id": product_id,
            "order_id": order_id,
            "query": query,
            "quantity": quantity,
            "channel": event.channel,
        },
    )
    return event


# Kinds a client may report; PURCHASE is written by checkout itself, from the order.
CLIENT_KINDS = frozenset(
    {
        CustomerEventKind.VIEW,
        CustomerEventKind.SEARCH,
        CustomerEventKind.FAVORITE,
        CustomerEventKind.ADD_TO_CART,
    }
)
_PRODUCT_KINDS = frozenset(
    {CustomerEventKind.VIEW, CustomerEventKind.FAVORITE, CustomerEventKind.ADD_TO_CART}
)
MAX_SESSION_ID = 64
MAX_QUERY = 200
MAX_QUANTITY = 999


@dataclass(frozen=True)
class EventFilter:
    customer_id: int | None = None
    kind: CustomerEventKind | None = None
    product_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def check_session_id(session_id: str | None) -> str | None:
    """An anonymous visitor's session id as a client gives it: trimmed (empty is none), at
    most MAX_SESSION_ID characters."""
    sid = (session_id or "").strip() or None
    if sid is not None and len(sid) > MAX_SESSION_ID:
        raise ValidationFailed(
            f"sessionId must have at most {MAX_SESSION_ID} characters", field="sessionId"
        )
    return sid


async def record_client_event(
    session: AsyncSession,
    *,
    kind: CustomerEventKind,
    customer_id: int | None,
    session_id: str | None = None,
    product_id: int | None = None,
    query: str | None = None,
    quantity: int | None = None,
    result_count: int | None = None,
    search_id: int | None = None,
    source: TrafficSource | None = None,
) -> CustomerEvent:
    """Check and record an event a client reports (a signed-in customer, or an anonymous
    visitor followed by ``session_id``). ``search_id`` says which of the visitor's own SEARCH
    events a VIEW or ADD_TO_CART is a click on; ``source`` (checked with
    :func:`server.services.channels.traffic_source`) where the visitor came from."""
    if kind not in CLIENT_KINDS:
        raise ValidationFailed(
            f"{kind.value} events are recorded by the shop itself, not reported", field="kind"
        )
    sid = check_session_id(session_id)
    if customer_id is None and sid is None:
        raise ValidationFailed("anonymous visitors must give a sessionId", field="sessionId")
    text = (query or "").strip() or None
    data: dict[str, Any] = {}
    if kind is CustomerEventKind.SEARCH:
        if text is None:
            raise ValidationFailed("a SEARCH event needs its query", field="query")
        if len(text) > MAX_QUERY:
            raise ValidationFailed(f"query must have at most {MAX_QUERY} characters", field="query")
        if result_count is not None:
            if result_count < 0:
                raise ValidationFailed("resultCount must not be negative", field="resultCount")
            # Kept so that operators can find searches with no results.
            data["result_count"] = result_count
    elif kind in _PRODUCT_KINDS and product_id is None:
        raise ValidationFailed(f"a {kind.value} event needs its productId", field="productId")
    if kind is CustomerEventKind.ADD_TO_CART:
        quantity = 1 if quantity is None else quantity
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ValidationFailed(
                f"quantity must be between 1 and {MAX_QUANTITY}", field="quantity"
            )
    elif quantity is not None:
        raise ValidationFailed("quantity belongs to ADD_TO_CART events only", field="quantity")
    if search_id is not None:
        if kind not in CLICK_KINDS:
            raise ValidationFailed(
                "searchId belongs to VIEW and ADD_TO_CART events only", field="searchId"
            )
        search = await session.get(CustomerEvent, search_id)
        if search is None or not _is_own_search(search, customer_id, sid):
            # Another visitor's search answers like one that does not exist.
            raise NotFound("Search", search_id, field="searchId")
    if product_id is not None and await session.get(Product, product_id) is None:
        raise NotFound("Product", product_id, field="productId")
    return await record(
        session,
        kind=kind,
        customer_id=customer_id,
        session_id=sid,
        product_id=product_id,
        query=text,
        quantity=quantity,
        data=data,
        search_id=search_id,
        source=source,
    )


def _is_own_search(event: CustomerEvent, customer_id: int | None, session_id: str | None) -> bool:
    if event.kind is not CustomerEventKind.SEARCH:
        return False
    if customer_id is not None:
        return event.customer_id == customer_id
    return event.customer_id is None and event.session_id == session_id


def latest_products_stmt(
    customer_ids: Iterable[int], kind: CustomerEventKind, limit: int
) -> Select[Any]:
    """Per customer, the distinct products of their ``kind`` events (FAVORITE: favourites,
    VIEW: recently viewed), most recent first, at most ``limit`` each.

    Rows are ``(customer_id, product_id, rank)``; one statement serves many customers.
    """
    last_at = func.max(CustomerEvent.occurred_at)
    last_id = func.max(CustomerEvent.id)
    # The max id breaks ties between events with the same timestamp.
    rank = (
        func.row_number()
        .over(
            partition_by=col(CustomerEvent.customer_id), order_by=(last_at.desc(), last_id.desc())
        )
        .label("rank")
    )
    per_product = (
        select(col(CustomerEvent.customer_id), col(CustomerEvent.product_id), rank)
        .join(Product, col(Product.id) == CustomerEvent.product_id)
        .where(
            col(CustomerEvent.customer_id).in_(set(customer_ids)),
            col(CustomerEvent.kind) == kind,
            col(Product.is_active),
        )
        .group_by(col(CustomerEvent.customer_id), col(CustomerEvent.product_id))
        .subquery()
    )
    return (
        select(per_product.c.customer_id, per_product.c.product_id, per_product.c.rank)
        .where(per_product.c.rank <= limit)
        .order_by(per_product.c.customer_id, per_product.c.rank)
    )


def events_query(flt: EventFilter) -> Select[Any]:
    """The behaviour events ``flt`` selects, unordered (the page orders)."""
    return select(CustomerEvent).where(*event_conditions(flt))


def event_conditions(flt: EventFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if flt.customer_id is not None:
        conditions.append(col(CustomerEvent.customer_id) == flt.customer_id)
    if flt.kind is not None:
        conditions.append(col(CustomerEvent.kind) == flt.kind)
    if flt.product_id is not None:
        conditions.append(col(CustomerEvent.product_id) == flt.product_id)
    if flt.since is not None:
        conditions.append(col(CustomerEvent.occurred_at) >= flt.since)
    if flt.until is not None:
        conditions.append(col(CustomerEvent.occurred_at) < flt.until)
    return conditions
