"""Coupon codes: shared codes, batches of unique codes, issuing to a segment or tag, claiming,
and the compensation coupons other plugins ask for (idempotent per source).

Codes are stored upper-case. Generated codes come from ``secrets`` over an alphabet without
look-alike characters (no 0/O, 1/I/L); a collision with an existing code is retried with a
new one. Issuing is idempotent on ``source_ref`` (unique): an insert-or-ignore, so issuing
twice — or from two processes at once — gives nobody a second code.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from plugins.promotions.models import (
    CODE_MAX,
    CouponCode,
    Promotion,
    PromotionClass,
    PromotionKind,
    PromotionStatus,
    Trigger,
)
from plugins.promotions.service.sql import insert_for
from server.models import AudienceMember, Customer, CustomerRfm, utcnow
from server.plugin import DomainError, NotFound, ValidationFailed
from server.services.customers import json_array_contains

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_PATTERN = re.compile(r"[A-Z0-9-]{4,32}")
PREFIX_MAX = 12
MAX_BATCH = 10_000
# Rows per INSERT: well under both backends' bound on bound parameters.
CHUNK = 1000
_RETRIES = 5


class CouponRefused(DomainError):
    """An expected refusal about coupons; ``code`` says which (CODE_TAKEN, NOT_A_CODE_PROMOTION,
    NOT_CLAIMABLE, NOT_STARTED, PAUSED, ENDED, EXPIRED, LIMIT_REACHED)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code


class CodeStatus(StrEnum):
    """What a holder can do with a code now."""

    USABLE = "USABLE"
    USED = "USED"
    EXPIRED = "EXPIRED"
    DISABLED = "DISABLED"


def normalise_code(code: str, field: str = "code") -> str:
    """A code as stored: trimmed, upper-case, 4–32 of A–Z, 0–9 and '-'."""
    text = code.strip().upper()
    if not CODE_PATTERN.fullmatch(text):
        raise ValidationFailed("a code is 4 to 32 of A-Z, 0-9 and '-'", field=field)
    return text


def random_code(length: int, prefix: str = "") -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def status_of(code: CouponCode, promotion: Promotion | None, now: datetime) -> CodeStatus:
    if code.disabled:
        return CodeStatus.DISABLED
    if code.max_uses is not None and code.used_count >= code.max_uses:
        return CodeStatus.USED
    if (
        (code.expires_at is not None and code.expires_at <= now)
        or promotion is None
        or promotion.status is PromotionStatus.ENDED
        or (promotion.ends_at is not None and promotion.ends_at <= now)
    ):
        return CodeStatus.EXPIRED
    return CodeStatus.USABLE


async def code_promotion(session: AsyncSession, promotion_id: int) -> Promotion:
    """A promotion codes may be made for: one applied by code, not ended."""
    promotion = await session.get(Promotion, promotion_id)
    if promotion is None:
        raise NotFound("promotion", promotion_id, field="promotionId")
    if promotion.trigger is not Trigger.CODE:
        raise CouponRefused(
            "NOT_A_CODE_PROMOTION",
            "this promotion applies automatically: it has no codes",
            field="promotionId",
        )
    if promotion.status is PromotionStatus.ENDED:
        raise CouponRefused("ENDED", "this promotion has ended", field="promotionId")
    return promotion


def _row(
    promotion_id: int,
    code: str,
    *,
    reason: str,
    max_uses: int | None,
    customer_id: int | None = None,
    expires_at: datetime | None = None,
    source_ref: str | None = None,
    amount_off: int | None = None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "promotion_id": promotion_id,
        "code": code,
        "customer_id": customer_id,
        "max_uses": max_uses,
        "used_count": 0,
        "expires_at": expires_at,
        "issued_reason": reason,
        "source_ref": source_ref,
        "amount_off": amount_off,
        "disabled": False,
        "issued_at": now,
    }


async def _insert(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert-or-ignore ``rows`` in one statement; the codes actually written (a taken code
    or a taken ``source_ref`` is skipped)."""
    if not rows:
        return []
    result = await session.execute(
        insert_for(session)(CouponCode)
        .values(list(rows))
        .on_conflict_do_nothing()
        .returning(col(CouponCode.code))
    )
    return list(result.scalars())


# --- staff: single codes, batches, issuing ------------------------------------------------------


async def create_code(
    session: AsyncSession,
    *,
    promotion_id: int,
    code: str | None,
    max_uses: int | None,
    customer_id: int | None,
    expires_at: datetime | None,
    code_length: int,
) -> CouponCode:
    """A shared code (``customer_id`` None) or a personal one; ``code`` None: generated."""
    wanted = normalise_code(code) if code is not None else None
    if max_uses is not None and not 1 <= max_uses <= 10**9:
        raise ValidationFailed("maxUses: from 1 (null: no limit of its own)", field="maxUses")
    await code_promotion(session, promotion_id)
    if customer_id is not None and await session.get(Customer, customer_id) is None:
        raise NotFound("customer", customer_id, field="customerId")
    now = utcnow()
    for _ in range(_RETRIES):
        text = wanted or random_code(code_length)
        reason = "SHARED" if customer_id is None else "PERSONAL"
        row = _row(
            promotion_id,
            text,
            reason=reason,
            max_uses=max_uses,
            customer_id=customer_id,
            expires_at=expires_at,
            now=now,
        )
        if await _insert(session, [row]):
            found = await session.scalar(select(CouponCode).where(col(CouponCode.code) == text))
            assert found is not None
            return found
        if wanted is not None:
            raise CouponRefused("CODE_TAKEN", f"the code {wanted} is taken", field="code")
    raise CouponRefused("CODE_TAKEN", "no free code was found: try again", field="code")


async def generate_codes(
    session: AsyncSession,
    *,
    promotion_id: int,
    count: int,
    max_uses_each: int,
    prefix: str | None,
    code_length: int,
) -> int:
    """``count`` new unique codes of a promotion (one INSERT per chunk of ``CHUNK``; codes
    that collide are drawn again). Returns how many were written (``count``)."""
    if not 1 <= count <= MAX_BATCH:
        raise ValidationFailed(f"count: from 1 to {MAX_BATCH}", field="count")
    if not 1 <= max_uses_each <= 10**6:
        raise ValidationFailed("maxUsesEach: from 1", field="maxUsesEach")
    head = ""
    if prefix:
        head = prefix.strip().upper()
        if not re.fullmatch(r"[A-Z0-9-]{1,12}", head) or len(head) + code_length > CODE_MAX:
            raise ValidationFailed(f"prefix: 1 to {PREFIX_MAX} of A-Z, 0-9 and '-'", field="prefix")
    await code_promotion(session, promotion_id)
    now = utcnow()
    written = 0
    attempts = 0
    while written < count:
        attempts += 1
        if attempts > count // CHUNK + 1 + _RETRIES:
            raise CouponRefused("CODE_TAKEN", "too many collisions: use a longer code")
        wanted = min(CHUNK, count - written)
        codes = {random_code(code_length, head) for _ in range(wanted)}
        rows = [
            _row(promotion_id, c, reason="BATCH", max_uses=max_uses_each, now=now) for c in codes
        ]
        written += len(await _insert(session, rows))
    return written


@dataclass(frozen=True)
class Issued:
    """What issuing to a group of customers did: ``matched`` customers, ``issued`` new
    codes, ``already`` customers who held one from an earlier issuing."""

    matched: int
    issued: int
    already: int


def _issue_ref(promotion_id: int, customer_id: int) -> str:
    return f"issue:{promotion_id}:{customer_id}"


async def issue_coupons(
    session: AsyncSession,
    *,
    promotion_id: int,
    segment: str | None,
    tag: str | None,
    audience_id: int | None,
    code_length: int,
) -> Issued:
    """One personal single-use code for each active customer of a segment, a tag or an
    audience (exactly one), idempotently. Statements per ``CHUNK`` customers: three."""
    given = [x for x in (segment, tag, audience_id) if x is not None]
    if len(given) != 1:
        raise ValidationFailed("name exactly one of segment, tag and audienceId", field="segment")
    if tag is not None and not 0 < len(tag.strip()) <= 64:
        raise ValidationFailed("a tag of 1 to 64 characters", field="tag")
    await code_promotion(session, promotion_id)
    dialect = session.get_bind().dialect.name
    who: Select[Any]
    if segment is not None:
        who = select(col(CustomerRfm.customer_id).label("cid")).where(
            col(CustomerRfm.segment) == segment
        )
    elif tag is not None:
        who = select(col(Customer.id).label("cid")).where(
            json_array_contains(col(Customer.tags), tag.strip(), dialect)
        )
    else:
        who = select(col(AudienceMember.customer_id).label("cid")).where(
            col(AudienceMember.audience_id) == audience_id
        )
    matched = who.subquery()
    now = utcnow()
    after = 0
    totals = [0, 0, 0]
    while True:
        ids: list[int] = list(
            await session.scalars(
                select(col(Customer.id))
                .join(matched, matched.c.cid == col(Customer.id))
                .where(col(Customer.is_active), col(Customer.id) > after)
                .order_by(col(Customer.id))
                .limit(CHUNK)
            )
        )
        if not ids:
            break
        after = ids[-1]
        refs = {_issue_ref(promotion_id, c): c for c in ids}
        held = set(
            await session.scalars(
                select(col(CouponCode.source_ref)).where(col(CouponCode.source_ref).in_(refs))
            )
        )
        todo = [ref for ref in refs if ref not in held]
        issued = 0
        for _ in range(_RETRIES):
            if not todo:
                break
            rows = [
                _row(
                    promotion_id,
                    random_code(code_length),
                    reason="SEGMENT" if segment else ("TAG" if tag else "AUDIENCE"),
                    max_uses=1,
                    customer_id=refs[ref],
                    source_ref=ref,
                    now=now,
                )
                for ref in todo
            ]
            result = await session.execute(
                insert_for(session)(CouponCode)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(col(CouponCode.source_ref))
            )
            done = set(result.scalars())
            issued += len(done)
            # What was not written collided on its code (draw again) or was issued meanwhile
            # by another run (its ref is taken now: nothing to do).
            left = [ref for ref in todo if ref not in done]
            if left:
                taken = set(
                    await session.scalars(
                        select(col(CouponCode.source_ref)).where(
                            col(CouponCode.source_ref).in_(left)
                        )
                    )
                )
                held |= taken
                left = [ref for ref in left if ref not in taken]
            todo = left
        totals[0] += len(ids)
        totals[1] += issued
        totals[2] += len(ids) - issued - len(todo)
    return Issued(matched=totals[0], issued=totals[1], already=totals[2])


async def disable_code(session: AsyncSession, code_id: int) -> CouponCode:
    row = await session.get(CouponCode, code_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound("coupon code", code_id, field="id")
    row.disabled = True
    await session.flush()
    return row


def codes_query(promotion_id: int | None = None, customer_id: int | None = None) -> Select[Any]:
    query = select(CouponCode)
    if promotion_id is not None:
        query = query.where(col(CouponCode.promotion_id) == promotion_id)
    if customer_id is not None:
        query = query.where(col(CouponCode.customer_id) == customer_id)
    return query


# --- customers: claiming -------------------------------------------------------------------------


async def claim_coupon(
    session: AsyncSession, *, promotion_id: int, customer_id: int, code_length: int
) -> CouponCode:
    """A personal single-use code of a claimable promotion for ``customer_id``: one per
    customer (claiming again answers the same code). Claims stop when the promotion's
    ``total_limit`` codes were handed out or its uses reached it (the promotion's row is locked
    while counting: two customers claiming the last code at once get one between them)."""
    ref = f"claim:{promotion_id}:{customer_id}"
    held = await session.scalar(select(CouponCode).where(col(CouponCode.source_ref) == ref))
    if held is not None:
        return held
    # The row lock queues concurrent claims of one promotion, so the count below is exact.
    promotion = await session.get(
        Promotion, promotion_id, with_for_update=True, populate_existing=True
    )
    if promotion is None or not promotion.claimable or promotion.trigger is not Trigger.CODE:
        raise CouponRefused(
            "NOT_CLAIMABLE", "this promotion has no coupons to claim", field="promotionId"
        )
    now = utcnow()
    if promotion.status is PromotionStatus.ENDED:
        raise CouponRefused("ENDED", "this promotion has ended", field="promotionId")
    if promotion.status is PromotionStatus.PAUSED:
        raise CouponRefused("PAUSED", "this promotion is paused", field="promotionId")
    if promotion.starts_at is not None and promotion.starts_at > now:
        raise CouponRefused("NOT_STARTED", "this promotion has not started", field="promotionId")
    if promotion.ends_at is not None and promotion.ends_at <= now:
        raise CouponRefused("EXPIRED", "this promotion is over", field="promotionId")
    if promotion.total_limit is not None:
        handed = await session.scalar(
            select(func.count()).where(
                col(CouponCode.promotion_id) == promotion_id,
                col(CouponCode.issued_reason) == "CLAIMED",
            )
        )
        if promotion.used_count >= promotion.total_limit or int(handed or 0) >= (
            promotion.total_limit
        ):
            raise CouponRefused(
                "LIMIT_REACHED", "every coupon of this promotion was claimed", field="promotionId"
            )
    code = await issue_personal(
        session,
        promotion_id=promotion_id,
        ref=ref,
        customer_id=customer_id,
        amount=None,
        reason="CLAIMED",
        expires_at=None,
        code_length=code_length,
    )
    found = await session.scalar(select(CouponCode).where(col(CouponCode.code) == code))
    assert found is not None
    return found


# --- personal codes other parts issue (compensation, protection, referral) ------------------------


async def issue_personal(
    session: AsyncSession,
    *,
    promotion_id: int,
    ref: str,
    customer_id: int,
    amount: int | None,
    reason: str,
    expires_at: datetime | None,
    code_length: int,
) -> str:
    """The single-use personal code issued for ``ref``: written once (insert-or-ignore on
    ``source_ref``), whoever asks again — or at the same time — gets the same code."""
    for _ in range(_RETRIES):
        held = await session.scalar(
            select(col(CouponCode.code)).where(col(CouponCode.source_ref) == ref)
        )
        if held is not None:
            return str(held)
        row = _row(
            promotion_id,
            random_code(code_length),
            reason=reason,
            max_uses=1,
            customer_id=customer_id,
            expires_at=expires_at,
            source_ref=ref[:120],
            amount_off=amount,
            now=utcnow(),
        )
        written = await _insert(session, [row])
        if written:
            return written[0]
    raise CouponRefused("CODE_TAKEN", "no free code was found: try again")


# The plugin's own COUPON promotions, made on first use and found again by their maker.
_SYSTEM = {
    "compensation": ("Compensation", "补偿券 Compensation coupon"),
    "referral": ("Referral reward", "邀请奖励 Referral reward"),
}


async def system_promotion(session: AsyncSession, purpose: str) -> int:
    """The id of the plugin's own promotion for ``purpose`` (compensation, referral): a CODE
    COUPON whose codes carry their own amount (``CouponCode.amount_off``), combinable with
    PRODUCT and SHIPPING promotions. Made on first use; should two processes make it at
    once, the lowest id is the one used from then on (both are valid)."""
    maker = f"system:{purpose}"
    found = await session.scalar(
        select(col(Promotion.id))
        .where(col(Promotion.created_by) == maker)
        .order_by(col(Promotion.id))
        .limit(1)
    )
    if found is not None:
        return int(found)
    name, label = _SYSTEM[purpose]
    row = Promotion(
        name=name,
        label=label,
        kind=PromotionKind.COUPON,
        promotion_class=PromotionClass.ORDER,
        trigger=Trigger.CODE,
        # Each code carries its own amount; the promotion's is the least a code can be worth.
        rules={"amount_off": 1},
        combinable_with=[PromotionClass.PRODUCT.value, PromotionClass.SHIPPING.value],
        created_by=maker,
    )
    session.add(row)
    await session.flush()
    assert row.id is not None
    return row.id


async def compensation_coupon(
    session: AsyncSession,
    config: Any,
    *,
    ref: str,
    customer_id: int | None,
    amount: int,
    currency: str,
    reason: str,
    issued_reason: str = "COMPENSATION",
    purpose: str = "compensation",
) -> str | None:
    """A personal code worth ``amount`` (minor units) for ``customer_id``, valid
    ``compensation_valid_days``, of the compensation promotion (the configured one, or the
    plugin's own); once per ``ref``. None when there is nothing to give or nobody to give it
    to. ``reason`` is for the logs of the caller; the code records ``issued_reason``."""
    if amount <= 0 or customer_id is None:
        return None
    promotion_id: int | None = None
    if purpose == "compensation" and config.compensation_promotion_id is not None:
        configured = await session.get(Promotion, config.compensation_promotion_id)
        if configured is not None and configured.trigger is Trigger.CODE:
            promotion_id = configured.id
    if promotion_id is None:
        promotion_id = await system_promotion(session, purpose)
    return await issue_personal(
        session,
        promotion_id=promotion_id,
        ref=ref,
        customer_id=customer_id,
        amount=amount,
        reason=issued_reason,
        expires_at=utcnow() + timedelta(days=config.compensation_valid_days),
        code_length=config.code_length,
    )


async def protection_coupon(session: AsyncSession, claim: Any, config: Any) -> str | None:
    """The pricing plugin's price protection credited as a coupon of ``claim.amount``."""
    return await compensation_coupon(
        session,
        config,
        ref=f"price-protection:{claim.id}",
        customer_id=claim.customer_id,
        amount=claim.amount,
        currency=claim.currency,
        reason=f"price protection of order line {claim.order_line_id}",
        issued_reason="PROTECTION",
    )
