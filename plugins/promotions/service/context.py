"""What the engine reads before it decides: the running promotions, the shopper's facts and
counters, a cart's coupon codes and group-buy choice, the stock of gifts.

Reads are batched and memoised per transaction (``memo``): a page or a cart costs a constant
number of statements, whatever its size, and the hooks the core calls for one cart
(``price_adjustments``, ``order_adjustments``, ``shipping_adjustments``, ``cart_gifts``,
``validate_checkout``) read each thing once. A new transaction reads afresh, so a committed
change (a promotion paused, a code applied) is seen by the next request or transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    BuyGroup,
    Campaign,
    CartCode,
    CartGroupChoice,
    CouponCode,
    CustomerUse,
    GroupStatus,
    Promotion,
    PromotionClass,
    PromotionKind,
    PromotionStatus,
    PromotionsVersion,
    Trigger,
)
from plugins.promotions.service.engine import MissCode, PromotionRef
from plugins.promotions.service.kinds import class_of, parse_rules
from server.models import (
    AudienceMember,
    Customer,
    CustomerRfm,
    Order,
    OrderStatus,
    ProductVariant,
    StockLevel,
)
from server.services.errors import ValidationFailed

_MEMO = "promotions.memo"
_CLASSES = {c.value for c in PromotionClass}

# Orders that count as "paid": a customer with one is no longer new.
PAID_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.FULFILLING,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.COMPLETED,
)


def memo(session: AsyncSession) -> dict[Any, Any]:
    """This transaction's memo (a fresh one for each transaction of the session)."""
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_MEMO)
    if kept is not None and transaction is not None and kept[0] is transaction:
        memo_: dict[Any, Any] = kept[1]
        return memo_
    fresh: dict[Any, Any] = {}
    if transaction is not None:
        session.info[_MEMO] = (transaction, fresh)
    return fresh


def forget(session: AsyncSession) -> None:
    """Drop what this transaction read (after writing what the engine reads)."""
    session.info.pop(_MEMO, None)


def aware(moment: datetime | None) -> datetime | None:
    # Read back, the columns are aware (UTC); a row built in this process may hold a naive
    # moment, which means UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True)
class CampaignState:
    id: int
    name: str
    status: PromotionStatus
    budget_amount: int | None
    budget_uses: int | None
    spent_amount: int
    used_count: int
    starts_at: datetime | None
    ends_at: datetime | None
    exhausted_at: datetime | None


@dataclass(frozen=True)
class Promo:
    """A promotion as the engine reads it (a snapshot of its row and its campaign's)."""

    ref: PromotionRef
    name: str
    trigger: Trigger
    status: PromotionStatus
    currency: str
    rules: Any
    starts_at: datetime | None
    ends_at: datetime | None
    product_ids: frozenset[int]
    category_ids: frozenset[int]
    variant_ids: frozenset[int]
    membership_tier: str | None
    segment: str | None
    tag: str | None
    audience_id: int | None
    new_customers_only: bool
    total_limit: int | None
    per_customer_limit: int | None
    unit_limit: int | None
    per_customer_unit_limit: int | None
    used_count: int
    units_sold: int
    campaign: CampaignState | None = None

    @property
    def id(self) -> int:
        return self.ref.id

    @property
    def kind(self) -> PromotionKind:
        return self.ref.kind

    @property
    def promotion_class(self) -> PromotionClass:
        return self.ref.promotion_class

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def targets_all(self) -> bool:
        return not (self.product_ids or self.category_ids or self.variant_ids)

    def targets(self, product_id: int, category_id: int | None, variant_id: int | None) -> bool:
        """Whether an item is among the promotion's targets: its variant, its product or its
        category is named (none named: every item)."""
        if self.targets_all:
            return True
        return (
            (variant_id is not None and variant_id in self.variant_ids)
            or product_id in self.product_ids
            or (category_id is not None and category_id in self.category_ids)
        )

    @property
    def units_left(self) -> int | None:
        if self.unit_limit is None:
            return None
        return max(0, self.unit_limit - self.units_sold)

    @property
    def per_customer(self) -> bool:
        """Whether a limit counts per customer (then a guest cannot have it)."""
        return self.per_customer_limit is not None or self.per_customer_unit_limit is not None

    def not_running(self, at: datetime) -> tuple[MissCode, str] | None:
        """Why the promotion does not run at ``at``, or None when it does."""
        if self.status is PromotionStatus.PAUSED:
            return MissCode.PAUSED, f"{self.label} is paused"
        if self.status is PromotionStatus.ENDED:
            return MissCode.EXPIRED, f"{self.label} has ended"
        starts, ends = aware(self.starts_at), aware(self.ends_at)
        if starts is not None and at < starts:
            return MissCode.NOT_STARTED, f"{self.label} starts {starts:%Y-%m-%d %H:%M} UTC"
        if ends is not None and at >= ends:
            return MissCode.EXPIRED, f"{self.label} ended {ends:%Y-%m-%d %H:%M} UTC"
        if self.total_limit is not None and self.used_count >= self.total_limit:
            return MissCode.LIMIT_REACHED, f"{self.label} has been used up"
        if self.units_left == 0:
            return MissCode.LIMIT_REACHED, f"{self.label} is sold out"
        c = self.campaign
        if c is not None:
            if c.status is not PromotionStatus.ACTIVE:
                return MissCode.PAUSED, f"{self.label} is paused"
            c_starts, c_ends = aware(c.starts_at), aware(c.ends_at)
            if c_starts is not None and at < c_starts:
                return MissCode.NOT_STARTED, f"{self.label} has not started"
            if c_ends is not None and at >= c_ends:
                return MissCode.EXPIRED, f"{self.label} has ended"
            if (
                c.exhausted_at is not None
                or (c.budget_amount is not None and c.spent_amount >= c.budget_amount)
                or (c.budget_uses is not None and c.used_count >= c.budget_uses)
            ):
                return MissCode.BUDGET_SPENT, f"{self.label}: the campaign's budget is spent"
        return None


def snapshot(row: Promotion, campaign: Campaign | None = None) -> Promo | None:
    """The snapshot of a row (and its campaign's); None for a row whose rules no longer
    parse (never applied)."""
    try:
        rules = parse_rules(row.kind, dict(row.rules or {}))
    except ValidationFailed:
        return None
    assert row.id is not None
    ref = PromotionRef(
        id=row.id,
        kind=row.kind,
        promotion_class=class_of(row.kind, rules),
        label=row.label or row.name,
        priority=row.priority,
        combinable_with=frozenset(
            PromotionClass(c) for c in row.combinable_with or () if c in _CLASSES
        ),
        exclusive_group=row.exclusive_group,
        joint_group=row.joint_group,
        campaign_id=row.campaign_id,
    )
    state = None
    if campaign is not None and campaign.id is not None:
        state = CampaignState(
            id=campaign.id,
            name=campaign.name,
            status=campaign.status,
            budget_amount=campaign.budget_amount,
            budget_uses=campaign.budget_uses,
            spent_amount=campaign.spent_amount,
            used_count=campaign.used_count,
            starts_at=campaign.starts_at,
            ends_at=campaign.ends_at,
            exhausted_at=campaign.exhausted_at,
        )
    return Promo(
        ref=ref,
        name=row.name,
        trigger=row.trigger,
        status=row.status,
        currency=row.currency,
        rules=rules,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        product_ids=frozenset(row.product_ids or ()),
        category_ids=frozenset(row.category_ids or ()),
        variant_ids=frozenset(row.variant_ids or ()),
        membership_tier=row.membership_tier,
        segment=row.segment,
        tag=row.tag,
        audience_id=row.audience_id,
        new_customers_only=row.new_customers_only,
        total_limit=row.total_limit,
        per_customer_limit=row.per_customer_limit,
        unit_limit=row.unit_limit,
        per_customer_unit_limit=row.per_customer_unit_limit,
        used_count=row.used_count,
        units_sold=row.units_sold,
        campaign=state,
    )


def _window_holds(promo: Promo, at: datetime) -> bool:
    starts, ends = aware(promo.starts_at), aware(promo.ends_at)
    return (starts is None or starts <= at) and (ends is None or ends > at)


def _fresh(promo: Promo) -> bool:
    """Whether the promotion's counters decide whether it runs (read them per request)."""
    return (
        promo.total_limit is not None or promo.unit_limit is not None or promo.campaign is not None
    )


@dataclass(frozen=True)
class Index:
    """Which promotions may target an item: by variant, product and category id, and those
    targeting everything (promotion ids, each set searched once per item)."""

    everything: frozenset[int]
    by_variant: Mapping[int, frozenset[int]]
    by_product: Mapping[int, frozenset[int]]
    by_category: Mapping[int, frozenset[int]]

    @classmethod
    def of(cls, promos: Iterable[Promo]) -> Index:
        every: set[int] = set()
        found: tuple[dict[int, set[int]], ...] = ({}, {}, {})
        for p in promos:
            if p.targets_all:
                every.add(p.id)
            for index, ids in zip(
                found, (p.variant_ids, p.product_ids, p.category_ids), strict=True
            ):
                for target in ids:
                    index.setdefault(target, set()).add(p.id)
        variants, products, categories = (
            {k: frozenset(v) for k, v in index.items()} for index in found
        )
        return cls(frozenset(every), variants, products, categories)

    def ids_for(self, product_id: int, category_id: int | None, variant_id: int | None) -> set[int]:
        ids = set(self.everything)
        ids.update(self.by_product.get(product_id, ()))
        if variant_id is not None:
            ids.update(self.by_variant.get(variant_id, ()))
        if category_id is not None:
            ids.update(self.by_category.get(category_id, ()))
        return ids


@dataclass(frozen=True)
class _Kept:
    """A database's ACTIVE promotions parsed once, under the version row's value: valid for
    a request whose ``at`` is not before ``since`` (those ended before are left out)."""

    version: int
    since: datetime
    promos: tuple[Promo, ...]
    fresh: tuple[int, ...]
    index: Index


# Per database (its URL): what ``running`` parsed last. Process-wide: each request checks
# the version row, so a change committed by any process is seen by the next request.
_KEPT: dict[str, _Kept] = {}
# Promotions that ended this long before the loading request are not kept (a request for an
# earlier moment reads the database).
_KEPT_BEFORE = timedelta(hours=1)


def _database(session: AsyncSession) -> str:
    return session.sync_session.get_bind().engine.url.render_as_string(hide_password=False)


def _with_counters(promo: Promo, row: Any) -> Promo:
    _version, _id, used, units, spent, campaign_used, exhausted = row
    campaign = promo.campaign
    if campaign is not None:
        campaign = replace(
            campaign,
            spent_amount=int(spent or 0),
            used_count=int(campaign_used or 0),
            exhausted_at=exhausted,
        )
    return replace(promo, used_count=int(used), units_sold=int(units), campaign=campaign)


async def _from_kept(session: AsyncSession, kept: _Kept, at: datetime) -> tuple[Promo, ...] | None:
    """The kept promotions running at ``at`` with their counters read now, in one statement
    that also reads the version row; None when the version moved (or the row is missing)."""
    version = col(PromotionsVersion.value)
    statement: Any
    if kept.fresh:
        statement = (
            select(
                version,
                col(Promotion.id),
                col(Promotion.used_count),
                col(Promotion.units_sold),
                col(Campaign.spent_amount),
                col(Campaign.used_count),
                col(Campaign.exhausted_at),
            )
            .select_from(PromotionsVersion)
            .outerjoin(Promotion, col(Promotion.id).in_(kept.fresh))
            .outerjoin(Campaign, col(Campaign.id) == col(Promotion.campaign_id))
        )
    else:
        statement = select(version)
    rows = (await session.execute(statement.where(col(PromotionsVersion.id) == 1))).all()
    if not rows or rows[0][0] != kept.version:
        return None
    counted = {int(row[1]): row for row in rows if len(row) > 1 and row[1] is not None}
    running_: list[Promo] = []
    for promo in kept.promos:
        if not _window_holds(promo, at):
            continue
        if promo.id in counted:
            promo = _with_counters(promo, counted[promo.id])
        elif _fresh(promo):
            continue  # deleted since: the next request reloads
        running_.append(promo)
    return tuple(running_)


async def _load(session: AsyncSession, at: datetime) -> tuple[tuple[Promo, ...], Index | None]:
    """Read and parse the ACTIVE promotions (and the version row, in the same statement),
    keep them for the next requests, and answer those running at ``at``."""
    since = at - _KEPT_BEFORE
    rows = (
        await session.execute(
            select(col(PromotionsVersion.value), Promotion, Campaign)
            .select_from(PromotionsVersion)
            .outerjoin(
                Promotion,
                (col(Promotion.status) == PromotionStatus.ACTIVE)
                & ((col(Promotion.ends_at).is_(None)) | (col(Promotion.ends_at) > since)),
            )
            .outerjoin(Campaign, col(Campaign.id) == col(Promotion.campaign_id))
            .where(col(PromotionsVersion.id) == 1)
            .order_by(col(Promotion.id))
        )
    ).all()
    if not rows:
        return await _read(session, at), None
    promos = tuple(
        p for p in (snapshot(row, campaign) for _v, row, campaign in rows if row is not None) if p
    )
    kept = _Kept(
        version=int(rows[0][0]),
        since=since,
        promos=promos,
        fresh=tuple(p.id for p in promos if _fresh(p)),
        index=Index.of(promos),
    )
    _KEPT[_database(session)] = kept
    return tuple(p for p in promos if _window_holds(p, at)), kept.index


async def _read(session: AsyncSession, at: datetime) -> tuple[Promo, ...]:
    """The running promotions straight from the database (nothing kept)."""
    rows = await session.execute(
        select(Promotion, Campaign)
        .outerjoin(Campaign, col(Campaign.id) == col(Promotion.campaign_id))
        .where(
            col(Promotion.status) == PromotionStatus.ACTIVE,
            (col(Promotion.starts_at).is_(None)) | (col(Promotion.starts_at) <= at),
            (col(Promotion.ends_at).is_(None)) | (col(Promotion.ends_at) > at),
        )
        .order_by(col(Promotion.id))
    )
    return tuple(p for p in (snapshot(row, campaign) for row, campaign in rows.all()) if p)


async def running(session: AsyncSession, at: datetime) -> tuple[Promo, ...]:
    """The ACTIVE promotions whose window holds ``at`` (one statement per transaction), in
    id order. Those stopped by a limit or their campaign are among them: ``not_running``
    says why they do not apply (shown as LIMIT_REACHED, BUDGET_SPENT).

    The parsed promotions are kept per process and database under the version row's value
    (see ``PromotionsVersion``); the statement reads that value and the counters of the
    promotions with a limit or a campaign, so a request sees every committed change and
    only a changed version re-reads and re-parses the rows."""
    found: tuple[Promo, ...] | None = memo(session).get("running")
    if found is not None:
        return found
    kept = _KEPT.get(_database(session))
    promos, index = None, None
    if kept is not None and at >= kept.since:
        promos, index = await _from_kept(session, kept, at), kept.index
    if promos is None:
        promos, index = await _load(session, at)
    memo_ = memo(session)
    memo_["running"] = promos
    if index is not None:
        memo_["index"] = index
    return promos


async def running_index(session: AsyncSession, at: datetime) -> Index:
    """The target index of the promotions ``running`` answers (kept with them)."""
    await running(session, at)
    kept = memo(session)
    index: Index | None = kept.get("index")
    if index is None:
        index = Index.of(kept["running"])
        kept["index"] = index
    return index


@dataclass(frozen=True)
class Shopper:
    """What the promotions may ask of the shopper (``customer_id`` None: a guest)."""

    customer_id: int | None = None
    tier: str | None = None
    tags: frozenset[str] = frozenset()
    segment: str | None = None
    audiences: frozenset[int] = frozenset()
    is_new: bool = True
    # Per promotion: (uses, units) counted so far.
    uses: Mapping[int, tuple[int, int]] = field(default_factory=dict)

    def eligible(self, promo: Promo) -> str | None:
        """Why the shopper may not have ``promo`` (a message), or None when they may."""
        if promo.membership_tier is not None and promo.membership_tier != self.tier:
            return f"{promo.label} is for {promo.membership_tier.lower()} members"
        if promo.segment is not None and promo.segment != self.segment:
            return f"{promo.label} is for selected customers"
        if promo.tag is not None and promo.tag not in self.tags:
            return f"{promo.label} is for selected customers"
        if promo.audience_id is not None and promo.audience_id not in self.audiences:
            return f"{promo.label} is for selected customers"
        if promo.new_customers_only and not self.is_new:
            return f"{promo.label} is for new customers"
        if promo.per_customer and self.customer_id is None:
            return f"sign in to get {promo.label}"
        return None

    def used(self, promo_id: int) -> tuple[int, int]:
        return self.uses.get(promo_id, (0, 0))


async def shopper(
    session: AsyncSession, customer: Customer | None, promos: Iterable[Promo]
) -> Shopper:
    """The shopper's facts the promotions ask about: a statement for each kind of fact some
    promotion needs (segment, audiences, whether new, per-customer counters), none for a
    guest; memoised per transaction and customer."""
    if customer is None or customer.id is None:
        return Shopper()
    promos = list(promos)
    key = ("shopper", customer.id, tuple(p.id for p in promos))
    kept = memo(session)
    if key in kept:
        found: Shopper = kept[key]
        return found
    segment = None
    if any(p.segment is not None for p in promos):
        value = await session.scalar(
            select(col(CustomerRfm.segment)).where(col(CustomerRfm.customer_id) == customer.id)
        )
        segment = str(value.value if hasattr(value, "value") else value) if value else None
    audiences: frozenset[int] = frozenset()
    wanted = sorted({p.audience_id for p in promos if p.audience_id is not None})
    if wanted:
        audiences = frozenset(
            await session.scalars(
                select(col(AudienceMember.audience_id)).where(
                    col(AudienceMember.customer_id) == customer.id,
                    col(AudienceMember.audience_id).in_(wanted),
                )
            )
        )
    is_new = True
    if any(p.new_customers_only for p in promos):
        paid = await session.scalar(
            select(func.count())
            .select_from(Order)
            .where(
                col(Order.customer_id) == customer.id,
                col(Order.status).in_(PAID_STATUSES),
            )
        )
        is_new = not paid
    uses: dict[int, tuple[int, int]] = {}
    limited = sorted(p.id for p in promos if p.per_customer)
    if limited:
        for promotion_id, n, units in await session.execute(
            select(
                col(CustomerUse.promotion_id), col(CustomerUse.uses), col(CustomerUse.units)
            ).where(
                col(CustomerUse.customer_id) == customer.id,
                col(CustomerUse.promotion_id).in_(limited),
            )
        ):
            uses[int(promotion_id)] = (int(n), int(units))
    tier = customer.membership_tier
    found = Shopper(
        customer_id=customer.id,
        tier=str(tier.value if hasattr(tier, "value") else tier) if tier else None,
        tags=frozenset(customer.tags or ()),
        segment=segment,
        audiences=audiences,
        is_new=is_new,
        uses=uses,
    )
    memo(session)[key] = found
    return found


@dataclass(frozen=True)
class CodeOnCart:
    """A coupon code on a cart (or one a shopper is applying), with its promotion."""

    code_id: int
    code: str
    promo: Promo | None
    customer_id: int | None
    max_uses: int | None
    used_count: int
    expires_at: datetime | None
    amount_off: int | None
    disabled: bool


_CODE_COLUMNS = (CouponCode, Promotion, Campaign)


def _code_query() -> Any:
    return (
        select(*_CODE_COLUMNS)
        .join(Promotion, col(Promotion.id) == col(CouponCode.promotion_id))
        .outerjoin(Campaign, col(Campaign.id) == col(Promotion.campaign_id))
    )


def _code(code: CouponCode, promotion: Promotion, campaign: Campaign | None) -> CodeOnCart:
    assert code.id is not None
    return CodeOnCart(
        code_id=code.id,
        code=code.code,
        promo=snapshot(promotion, campaign),
        customer_id=code.customer_id,
        max_uses=code.max_uses,
        used_count=code.used_count,
        expires_at=code.expires_at,
        amount_off=code.amount_off,
        disabled=code.disabled,
    )


async def cart_codes(session: AsyncSession, cart_id: int | None) -> tuple[CodeOnCart, ...]:
    """The codes applied to the cart, in the order they were applied (one statement)."""
    if cart_id is None:
        return ()
    kept = memo(session)
    key = ("codes", cart_id)
    if key in kept:
        found: tuple[CodeOnCart, ...] = kept[key]
        return found
    rows = await session.execute(
        _code_query()
        .join(CartCode, col(CartCode.code_id) == col(CouponCode.id))
        .where(col(CartCode.cart_id) == cart_id)
        .order_by(col(CartCode.id))
    )
    codes = tuple(_code(*row) for row in rows.all())
    memo(session)[key] = codes
    return codes


def normalise_code(code: str) -> str:
    return "".join(code.split()).upper()


async def code_named(session: AsyncSession, code: str) -> CodeOnCart | None:
    """The coupon code ``code`` (case and spaces ignored), or None."""
    row = (
        await session.execute(_code_query().where(col(CouponCode.code) == normalise_code(code)))
    ).first()
    return _code(*row) if row is not None else None


@dataclass(frozen=True)
class GroupChoice:
    """A cart's group-buy choice: open a group of ``promotion_id`` or join ``group_id``."""

    promotion_id: int
    group_id: int | None = None
    group_status: GroupStatus | None = None
    group_full: bool = False
    group_expires_at: datetime | None = None


async def group_choice(session: AsyncSession, cart_id: int | None) -> GroupChoice | None:
    if cart_id is None:
        return None
    kept = memo(session)
    key = ("group", cart_id)
    if key in kept:
        found: GroupChoice | None = kept[key]
        return found
    row = (
        await session.execute(
            select(CartGroupChoice, BuyGroup)
            .outerjoin(BuyGroup, col(BuyGroup.id) == col(CartGroupChoice.group_id))
            .where(col(CartGroupChoice.cart_id) == cart_id)
        )
    ).first()
    choice = None
    if row is not None:
        chosen, group = row
        choice = GroupChoice(
            promotion_id=chosen.promotion_id,
            group_id=chosen.group_id,
            group_status=group.status if group is not None else None,
            group_full=group is not None and group.members >= group.size,
            group_expires_at=group.expires_at if group is not None else None,
        )
    memo(session)[key] = choice
    return choice


async def available(session: AsyncSession, variant_ids: Sequence[int]) -> dict[int, int]:
    """Units of each variant one warehouse can still give (what a reservation could take:
    the best warehouse's on hand less reserved), in one statement."""
    wanted = sorted(set(variant_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            col(StockLevel.variant_id),
            func.max(col(StockLevel.on_hand) - col(StockLevel.reserved)),
        )
        .where(col(StockLevel.variant_id).in_(wanted))
        .group_by(col(StockLevel.variant_id))
    )
    found = {int(v): max(0, int(n or 0)) for v, n in rows.all()}
    return {v: found.get(v, 0) for v in wanted}


async def products_of_variants(session: AsyncSession, variant_ids: Iterable[int]) -> dict[int, int]:
    """variant id -> product id (one statement; memoised per transaction)."""
    wanted = sorted(set(variant_ids))
    if not wanted:
        return {}
    kept = memo(session)
    key = ("variant-products", tuple(wanted))
    if key in kept:
        found: dict[int, int] = kept[key]
        return found
    rows = await session.execute(
        select(col(ProductVariant.id), col(ProductVariant.product_id)).where(
            col(ProductVariant.id).in_(wanted)
        )
    )
    result = {int(v or 0): int(p) for v, p in rows.all()}
    memo(session)[key] = result
    return result
