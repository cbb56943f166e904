"""One recommendation request: who asks (their purchases and the session profile), which
blend serves them, the hybrid's candidates, the business rules, the operator's pins, the
diversity re-rank, and the impression that records what was shown.

The session profile is read from the core's behaviour events at request time, so a VIEW,
SEARCH, FAVORITE or ADD_TO_CART event changes the visitor's next answer at once, with no
rebuild. Every business rule is a filter that says what it removed (staff see it with
``explain``). A request spends a fixed number of statements, whatever ``first`` is and however
long the visitor's history.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import insert, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.recommendation.models import (
    Component,
    MerchandisingKind,
    RecommendationContext,
    RecommendationImpression,
    RecommendationMerchandising,
    RecommendationOptOut,
)
from plugins.recommendation.service import hybrid
from plugins.recommendation.service.hybrid import Ask, Purchase, Reason, Scored, Touch, Visitor
from plugins.recommendation.service.settings import BlendWeights, RecommendationSettings
from plugins.recommendation.service.store import SqlStore, pk
from server.models import (
    Cart,
    CartLine,
    CartStatus,
    Category,
    CustomerEvent,
    CustomerEventKind,
    Order,
    OrderLine,
    OrderStatus,
    Product,
)
from server.plugin import ValidationFailed, variant_for
from server.services import search
from server.services.listing import in_stock_condition

DAY = 86400.0
MAX_FIRST = 100
SESSION_ID_MAX = 64  # the core's bound on a behaviour session id (experiments, events)
DEFAULT_BLEND = "default"
# How much of a visitor's history a request reads: their latest order lines and events.
MAX_PURCHASES = 500
MAX_TOUCHES = 50
# A SEARCH event contributes what the core's search finds for it: its best few products, for
# the visitor's latest few searches.
SEARCHES = 3
PER_SEARCH = 5
# A consumable comes back on its cycle: it is quiet for this share of its interval after a
# purchase.
CONSUMABLE_QUIET_SHARE = 0.5
PROFILE_KINDS = (
    CustomerEventKind.VIEW,
    CustomerEventKind.SEARCH,
    CustomerEventKind.FAVORITE,
    CustomerEventKind.ADD_TO_CART,
)


class FilterRule(StrEnum):
    """A business rule that removed a candidate (what ``explain`` lists)."""

    INACTIVE = "INACTIVE"  # archived (no longer on sale)
    EXCLUDED = "EXCLUDED"  # the operator excluded it (this context or every context)
    OUT_OF_STOCK = "OUT_OF_STOCK"  # no active variant with a free unit in an active warehouse
    RECENTLY_BOUGHT = "RECENTLY_BOUGHT"  # a durable good bought lately, or a consumable not due
    DIVERSITY = "DIVERSITY"  # its category already had its share of the page


@dataclass(frozen=True)
class AnswerItem:
    product_id: int
    score: float
    position: int  # 1-based
    component: Component
    reason: Reason
    text: str


@dataclass(frozen=True)
class Filtered:
    product_id: int
    rule: FilterRule


@dataclass
class Answer:
    """What one request served; ``id`` is the recommendation id clicks are reported with."""

    id: str
    context: RecommendationContext
    blend: str
    personalised: bool
    items: list[AnswerItem] = field(default_factory=list)
    filtered: list[Filtered] = field(default_factory=list)


def new_recommendation_id() -> str:
    return secrets.token_hex(16)


def clean_session_id(session_id: str | None) -> str | None:
    """A client's session id, trimmed (None when blank); longer than the core's bound is
    refused."""
    if session_id is None:
        return None
    sid = session_id.strip()
    if not sid:
        return None
    if len(sid) > SESSION_ID_MAX:
        raise ValidationFailed(
            f"sessionId must have at most {SESSION_ID_MAX} characters", field="sessionId"
        )
    return sid


def check_first(first: int) -> int:
    if not 0 <= first <= MAX_FIRST:
        raise ValidationFailed(f"first must be between 0 and {MAX_FIRST}", field="first")
    return first


def pool_for(first: int) -> int:
    """How many candidates the hybrid proposes for a page of ``first``: enough that the
    business rules and the diversity re-rank still leave a full page."""
    return max(60, 3 * first)


# --- the visitor -----------------------------------------------------------------------------


async def opted_out(session: AsyncSession, customer_id: int) -> bool:
    found = await session.scalar(
        select(col(RecommendationOptOut.customer_id)).where(
            col(RecommendationOptOut.customer_id) == customer_id
        )
    )
    return found is not None


async def purchases_of(session: AsyncSession, customer_id: int, until: datetime) -> list[Purchase]:
    """The customer's latest order lines (cancelled orders left out), oldest first."""
    rows = await session.execute(
        select(col(OrderLine.order_id), col(OrderLine.product_id), col(Order.placed_at))
        .join(Order, col(Order.id) == OrderLine.order_id)
        .where(
            col(Order.customer_id) == customer_id,
            col(Order.status) != OrderStatus.CANCELLED,
            col(Order.placed_at) <= until,
        )
        .order_by(col(Order.placed_at).desc(), col(OrderLine.id).desc())
        .limit(MAX_PURCHASES)
    )
    return [Purchase(int(o), int(p), at) for o, p, at in reversed(rows.all())]


async def session_profile(
    session: AsyncSession,
    customer_id: int | None,
    session_id: str | None,
    now: datetime,
    minutes: int,
) -> list[Touch]:
    """The visitor's behaviour of the last ``minutes`` (newest first): the products they
    viewed, favourited or put in the cart, and those the core's search finds for what they
    searched. Read from the events as they are now: nothing to rebuild."""
    actors = []
    if customer_id is not None:
        actors.append(col(CustomerEvent.customer_id) == customer_id)
    if session_id is not None:
        actors.append(col(CustomerEvent.session_id) == session_id)
    if not actors:
        return []
    rows = await session.execute(
        select(
            col(CustomerEvent.kind),
            col(CustomerEvent.product_id),
            col(CustomerEvent.query),
            col(CustomerEvent.occurred_at),
        )
        .where(
            or_(*actors),
            col(CustomerEvent.kind).in_(PROFILE_KINDS),
            col(CustomerEvent.occurred_at) >= now - timedelta(minutes=minutes),
            col(CustomerEvent.occurred_at) <= now,
        )
        .order_by(col(CustomerEvent.occurred_at).desc(), col(CustomerEvent.id).desc())
        .limit(MAX_TOUCHES)
    )
    touches: list[Touch] = []
    searches: dict[str, datetime] = {}  # query -> its latest time, newest first
    for kind, product_id, query, at in rows:
        kind = CustomerEventKind(kind)
        if kind is CustomerEventKind.SEARCH:
            text = " ".join((query or "").split())
            if text and text not in searches and len(searches) < SEARCHES:
                searches[text] = at
        elif product_id is not None:
            touches.append(Touch(int(product_id), kind.value, at))
    found = await searched_products(session, list(searches))
    for text, at in searches.items():
        touches.extend(
            Touch(pid, CustomerEventKind.SEARCH.value, at) for pid in found.get(text, [])
        )
    touches.sort(key=lambda t: t.at, reverse=True)
    return touches


async def searched_products(session: AsyncSession, queries: Sequence[str]) -> dict[str, list[int]]:
    """What the core's product search finds first for each query (exact and pinyin matches):
    one statement for every query."""
    dialect = session.get_bind().dialect.name
    parts = []
    texts: list[str] = []
    for text in queries:
        match = search.product_match(dialect, text)
        if match is None:
            continue
        index = len(texts)
        texts.append(text)
        ranked = (
            match.apply(select(col(Product.id).label("product_id"), match.rank.label("rank")))
            .where(col(Product.is_active))
            .order_by(match.rank.desc(), col(Product.id))
            .limit(PER_SEARCH)
            .subquery()
        )
        parts.append(
            select(ranked.c.product_id, ranked.c.rank, literal(index).label("query_index"))
        )
    if not parts:
        return {}
    stmt = parts[0] if len(parts) == 1 else union_all(*parts)
    found: dict[str, list[tuple[float, int]]] = {}
    for product_id, rank, index in await session.execute(stmt):
        found.setdefault(texts[int(index)], []).append((-float(rank or 0), int(product_id)))
    return {text: [pid for _, pid in sorted(hits)] for text, hits in found.items()}


async def cart_products(session: AsyncSession, customer_id: int) -> tuple[int, ...]:
    """The products in the customer's open cart(s)."""
    rows = await session.scalars(
        select(col(CartLine.product_id))
        .join(Cart, col(Cart.id) == CartLine.cart_id)
        .where(col(Cart.customer_id) == customer_id, col(Cart.status) == CartStatus.ACTIVE)
        .order_by(col(CartLine.id))
    )
    return tuple(dict.fromkeys(int(p) for p in rows))


# --- the blend -------------------------------------------------------------------------------


async def choose_blend(
    session: AsyncSession,
    settings: RecommendationSettings,
    customer_id: int | None,
    session_id: str | None,
) -> tuple[str, BlendWeights]:
    """The blend a visitor is served: the variant the core's experiment
    ``settings.experiment_key`` assigns them (its exposure recorded), as the named blend of
    that name (the default weights for a variant without one); the default blend when no such
    experiment runs or the visitor cannot be followed (anonymous without a session id)."""
    if customer_id is not None:
        visitor = f"customer:{customer_id}"
    elif session_id is not None:
        visitor = f"session:{session_id}"
    else:
        return DEFAULT_BLEND, settings.weights
    variant = await variant_for(session, settings.experiment_key, visitor)
    if variant is None:
        return DEFAULT_BLEND, settings.weights
    return variant, settings.blends.get(variant, settings.weights)


# --- the catalogue the rules read ------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    name: str
    category_id: int | None
    is_active: bool
    in_stock: bool


async def product_facts(session: AsyncSession, product_ids: Iterable[int]) -> dict[int, Facts]:
    """Name, category, whether on sale and whether in stock (the core's availability rule),
    of every product asked for: one statement."""
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(
            col(Product.id),
            col(Product.name),
            col(Product.category_id),
            col(Product.is_active),
            in_stock_condition().label("in_stock"),
        ).where(col(Product.id).in_(ids))
    )
    return {
        int(pid): Facts(name, cat, bool(active), bool(stock))
        for pid, name, cat, active, stock in rows
    }


async def category_names(session: AsyncSession, category_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(category_ids))
    rows = await session.execute(
        select(col(Category.id), col(Category.name)).where(col(Category.id).in_(ids))
    )
    return {pk(i): str(n) for i, n in rows}


@dataclass(frozen=True)
class Merchandising:
    pins: list[tuple[int, int]]  # (position, product id), in placing order
    excluded: frozenset[int]


async def merchandising_for(session: AsyncSession, context: RecommendationContext) -> Merchandising:
    """The operator's pins and exclusions for ``context`` and for every context. A product
    pinned both ways keeps the context's own pin."""
    t = RecommendationMerchandising
    rows = await session.execute(
        select(col(t.id), col(t.context), col(t.product_id), col(t.kind), col(t.position)).where(
            or_(col(t.context) == context.value, col(t.context).is_(None))
        )
    )
    pins: dict[int, tuple[int, bool, int]] = {}
    excluded: set[int] = set()
    for rule_id, ctx, product_id, kind, position in rows:
        if MerchandisingKind(kind) is MerchandisingKind.EXCLUDE:
            excluded.add(product_id)
            continue
        key = (int(position or 1), ctx is None, pk(rule_id))
        seen = pins.get(int(product_id))
        if seen is None or (key[1], key[0], key[2]) < (seen[1], seen[0], seen[2]):
            pins[int(product_id)] = key
    ordered = sorted(pins.items(), key=lambda kv: kv[1])
    return Merchandising([(key[0], pid) for pid, key in ordered], frozenset(excluded))


# --- the request -----------------------------------------------------------------------------


def _due_again(
    cycle_interval: float | None, consumable: bool, since_days: float, quiet: int
) -> bool:
    """Whether a product the customer bought ``since_days`` ago may be recommended again."""
    if not consumable:
        return since_days >= quiet
    if cycle_interval:
        return since_days >= CONSUMABLE_QUIET_SHARE * cycle_interval
    return True


async def recommend(
    session: AsyncSession,
    *,
    customer_id: int | None,
    session_id: str | None,
    ask: Ask,
    first: int,
    settings: RecommendationSettings,
    answer_id: str | None = None,
) -> Answer:
    """The answer for one visitor (a signed-in customer, or an anonymous one followed by
    ``session_id``), recorded as an impression in ``session``'s transaction (commit it)."""
    first = check_first(first)
    session_id = clean_session_id(session_id)
    now = ask.now
    store = SqlStore(session)

    personalised = True
    purchases: list[Purchase] = []
    if customer_id is not None:
        personalised = not await opted_out(session, customer_id)
        if personalised:
            purchases = await purchases_of(session, customer_id, now)
    touches = (
        await session_profile(session, customer_id, session_id, now, settings.session_minutes)
        if personalised
        else []
    )
    cart = ask.cart_product_ids
    if ask.context is RecommendationContext.CART and customer_id is not None and not cart:
        cart = await cart_products(session, customer_id)
    ask = replace(ask, cart_product_ids=cart, pool=pool_for(first))
    visitor = Visitor(customer_id, session_id, purchases, touches, personalised)
    blend_name, blend = await choose_blend(session, settings, customer_id, session_id)

    ranked = await hybrid.rank(store, visitor, ask, blend, settings)
    if await store.build_id() is None:
        # Cold start before the first build: the shop's newest products fill the page.
        ranked = await _with_newest(session, ranked, ask, blend)

    merch = await merchandising_for(session, ask.context)
    reason_products = {s.reason.product_id for s in ranked if s.reason.product_id is not None}
    facts = await product_facts(
        session, [s.product_id for s in ranked] + [p for _, p in merch.pins] + list(reason_products)
    )

    # The business rules, each a filter that says what it removed.
    filtered: list[Filtered] = []
    last_bought: dict[int, datetime] = {}
    for p in purchases:
        last_bought[p.product_id] = max(last_bought.get(p.product_id, p.at), p.at)
    bought_candidates = [
        pid
        for pid in [s.product_id for s in ranked] + [p for _, p in merch.pins]
        if pid in last_bought
    ]
    cycles = await store.cycles(bought_candidates) if bought_candidates else {}

    def rule_for(pid: int) -> FilterRule | None:
        fact = facts.get(pid)
        if fact is None or not fact.is_active:
            return FilterRule.INACTIVE
        if pid in merch.excluded:
            return FilterRule.EXCLUDED
        if not fact.in_stock:
            return FilterRule.OUT_OF_STOCK
        if pid in last_bought:
            cycle = cycles.get(pid)
            since = (now - last_bought[pid]).total_seconds() / DAY
            # Durable means the cycle table says so; an unknown product may come back.
            if cycle is not None and not _due_again(
                cycle.interval_days, cycle.consumable, since, settings.durable_quiet_days
            ):
                return FilterRule.RECENTLY_BOUGHT
        return None

    pinned_ids = {pid for _, pid in merch.pins}
    organic: list[Scored] = []
    for item in ranked:
        if item.product_id in pinned_ids:
            continue
        rule = rule_for(item.product_id)
        if rule is not None:
            filtered.append(Filtered(item.product_id, rule))
        else:
            organic.append(item)

    never = set(ask.cart_product_ids) | ({ask.product_id} if ask.product_id else set())
    pins: list[tuple[int, int]] = []
    for position, pid in merch.pins:
        if position > first or pid in never:
            continue
        rule = rule_for(pid)
        if rule is not None:
            filtered.append(Filtered(pid, rule))
            continue
        pins.append((position, pid))
    pins = pins[:first]

    slots = first - len(pins)
    category_of = {pid: f.category_id for pid, f in facts.items()}
    page = hybrid.diversify(organic, category_of, slots, settings.max_category_share)
    shown = {s.product_id for s in page}
    filtered += [
        Filtered(s.product_id, FilterRule.DIVERSITY)
        for s in organic[:slots]
        if s.product_id not in shown
    ]

    by_product = {s.product_id: s for s in ranked}
    placed: list[Scored] = list(page)
    for position, pid in pins:
        score = by_product[pid].score if pid in by_product else 0.0
        placed.insert(min(position - 1, len(placed)), Scored(pid, score, Reason(Component.PINNED)))

    # The names of every candidate's category reason, not only the page's: what the request
    # reads must not depend on how long the page is.
    names = await category_names(
        session, [s.reason.category_id for s in ranked if s.reason.category_id is not None]
    )
    texts = _Texts(facts, names, ask, visitor)
    items = [
        AnswerItem(
            product_id=s.product_id,
            score=round(s.score, 6),
            position=i + 1,
            component=s.reason.component,
            reason=s.reason,
            text=texts.of(s.reason),
        )
        for i, s in enumerate(placed)
    ]
    answer = Answer(
        id=answer_id or new_recommendation_id(),
        context=ask.context,
        blend=blend_name,
        personalised=personalised,
        items=items,
        filtered=filtered,
    )
    await session.execute(
        insert(RecommendationImpression).values(
            id=answer.id,
            context=ask.context,
            customer_id=customer_id,
            session_id=session_id,
            blend=blend_name,
            items=[
                {
                    "product_id": i.product_id,
                    "component": i.component.value,
                    "position": i.position,
                    "score": i.score,
                }
                for i in items
            ],
            created_at=now,
        )
    )
    return answer


async def _with_newest(
    session: AsyncSession, ranked: list[Scored], ask: Ask, blend: BlendWeights
) -> list[Scored]:
    """``ranked`` followed by the shop's newest products on sale that it lacks."""
    rows = await session.scalars(
        select(col(Product.id))
        .where(col(Product.is_active))
        .order_by(col(Product.created_at).desc(), col(Product.id).desc())
        .limit(ask.pool)
    )
    never = set(ask.cart_product_ids) | ({ask.product_id} if ask.product_id else set())
    have = {s.product_id for s in ranked}
    floor = min((s.score for s in ranked), default=1.0)
    out = list(ranked)
    fresh = [pk(p) for p in rows if p not in have and p not in never]
    for i, pid in enumerate(fresh):
        # Below everything the components proposed, newest first.
        score = floor * max(blend.new, 0.01) / (2 + i) if ranked else 1.0 / (1 + i)
        out.append(Scored(pid, score, Reason(Component.NEW)))
    return out[: ask.pool]


class _Texts:
    """Reasons in words, naming the product or category they came from."""

    def __init__(
        self,
        facts: Mapping[int, Facts],
        categories: Mapping[int, str],
        ask: Ask,
        visitor: Visitor,
    ) -> None:
        self.facts = facts
        self.categories = categories
        self.ask = ask
        self.viewed = {t.product_id for t in visitor.touches if t.kind != "SEARCH"}
        self.searched = {t.product_id for t in visitor.touches if t.kind == "SEARCH"}
        self.bought = {p.product_id for p in visitor.purchases}

    def _name(self, pid: int | None) -> str:
        fact = self.facts.get(pid) if pid is not None else None
        return fact.name if fact is not None else "a product"

    def of(self, reason: Reason) -> str:
        match reason.component:
            case Component.REPEAT:
                if reason.interval_days:
                    days = max(1, math.floor(reason.interval_days + 0.5))
                    return (
                        "you buy this every day"
                        if days == 1
                        else (f"you buy this about every {days} days")
                    )
                return "you bought this before"
            case Component.BOUGHT_WITH:
                return f"often bought with {self._name(reason.product_id)}"
            case Component.SIMILAR:
                pid = reason.product_id
                name = self._name(pid)
                if pid == self.ask.product_id:
                    return f"similar to {name}"
                if pid in self.ask.cart_product_ids:
                    return f"similar to {name} in your cart"
                if pid in self.viewed:
                    return f"similar to {name} you viewed"
                if pid in self.searched:
                    return f"similar to {name} you searched for"
                if pid in self.bought:
                    return f"similar to {name} you bought"
                return f"similar to {name}"
            case Component.POPULAR:
                if reason.category_id is None:
                    return "popular in the shop this week"
                cat = self.categories.get(reason.category_id, "its category")
                return f"popular in {cat} this week"
            case Component.NEW:
                if reason.category_id is None:
                    return "new in the shop"
                return "new in a category you like"
            case Component.PINNED:
                return "chosen by the shop"
        return ""  # pragma: no cover - every component is matched above
