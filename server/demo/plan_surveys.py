"""The demo plan's satisfaction surveys, as the core's triggers would have sent them over the
history: a CSAT survey after every delivered order, a return survey after the few orders sent
back (their payment refunded after delivery), and the periodic NPS survey (after a customer's
first purchase, then every 180 days while they keep buying). Whether a survey is answered, and
how well, follows the carrier (EMS is the slow one), a late parcel, and for NPS the
customer's buying archetype; a few customers opt out of surveys altogether.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.demo.plan import Draft, PlannedCustomer, PlannedOrder, Row
from server.models import OrderStatus, PaymentStatus, ShipmentStatus, SurveyKind, SurveyState
from server.models import SurveyTrigger as Trigger

EXPIRY = timedelta(days=14)
NPS_RECENT = timedelta(days=90)
NPS_INTERVAL = timedelta(days=180)
OPT_OUT_SHARE = 0.04
RETURN_SHARE = 0.03

# Per carrier: the share of its delivery surveys answered, and the mean CSAT score.
CARRIER_SATISFACTION: dict[str, tuple[float, float]] = {
    "顺丰速运": (0.42, 4.6),
    "京东物流": (0.40, 4.5),
    "中通快递": (0.33, 4.1),
    "圆通速递": (0.30, 3.9),
    "EMS": (0.24, 3.1),
}
# A parcel later than promised: more answers, and worse ones.
LATE_ANSWER_BONUS = 0.08
LATE_SCORE_PENALTY = 1.1
RETURN_SATISFACTION = (0.45, 3.4)
# Per buying archetype: the share of NPS surveys answered, and the mean NPS score.
ARCHETYPE_NPS: dict[str, tuple[float, float]] = {
    "loyal": (0.45, 9.0),
    "regular": (0.32, 8.1),
    "big_ticket": (0.30, 8.3),
    "seasonal": (0.25, 7.4),
    "new": (0.30, 7.8),
    "one_time": (0.18, 6.4),
    "churner": (0.22, 4.8),
    "browser": (0.15, 7.0),
}

DELIVERY_COMMENTS: dict[int, tuple[str, ...]] = {
    5: (
        "物流很快，第二天就到了",
        "包装很用心，快递小哥态度好",
        "送货上门，点赞！",
        "比预计时间还早到",
    ),
    4: ("整体不错，就是外包装有点压痕", "速度还可以", "快递员提前打了电话，很方便"),
    3: ("一般般，比承诺晚了一天", "放在驿站了，没有送上门"),
    2: ("物流信息好几天不更新", "快递员没打电话就放快递柜了"),
    1: ("等了好几天才到，客服也联系不上", "外箱破损，东西差点摔坏"),
}
RETURN_COMMENTS: dict[int, tuple[str, ...]] = {
    5: ("退款很快，处理得不错", "上门取件很方便"),
    4: ("退货顺利，就是等审核花了点时间",),
    3: ("退货流程有点繁琐",),
    2: ("退款等了一周才到账",),
    1: ("客服一直让我等，体验很差",),
}
NPS_COMMENTS: dict[str, tuple[str, ...]] = {
    "promoter": (
        "已经推荐给同事了，正品有保障",
        "会员活动很实惠，会一直买",
        "客服专业，售后无忧",
        "发货快，品质稳定，值得信赖",
    ),
    "passive": ("东西不错，价格再实惠一点就更好了", "品类可以再丰富些", "整体满意，物流偶尔慢"),
    "detractor": (
        "上次退货体验太差，不会再推荐",
        "价格比别家贵",
        "物流太慢了，等不起",
        "优惠券规则太复杂",
    ),
}


@dataclass(eq=False)
class PlannedSurvey:
    """A survey of the plan: who got it, about which order (the periodic NPS survey is about
    none), and its row (kind, trigger, carrier, state, times, score, comment)."""

    customer: PlannedCustomer
    order: PlannedOrder | None
    row: Row
    # The subject of a survey about neither an order nor a period (a service contact).
    subject: str | None = None


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def _comment(draft: Draft, pool: tuple[str, ...], chance: float) -> str | None:
    return draft.rng.choice(pool) if draft.rng.random() < chance else None


def _nps_band(score: int) -> str:
    return "promoter" if score >= 9 else "detractor" if score <= 6 else "passive"


def _survey(
    draft: Draft,
    customer: PlannedCustomer,
    order: PlannedOrder | None,
    *,
    kind: SurveyKind,
    trigger: Trigger,
    sent: datetime,
    answer_rate: float,
    mean: float,
    carrier: str | None = None,
    keep_open: bool = False,
) -> PlannedSurvey:
    """A survey sent at ``sent``: answered with probability ``answer_rate`` within a few days
    (if those days have come by the end of the history), around ``mean``."""
    rng, as_of = draft.rng, draft.plan.as_of
    row: Row = {
        "kind": kind,
        "trigger": trigger,
        "carrier": carrier,
        "sent_at": sent,
        "expires_at": sent + EXPIRY,
        "answered_at": None,
        "score": None,
        "comment": None,
    }
    answers = rng.random() < answer_rate
    answered = sent + timedelta(hours=rng.uniform(0.2, 96))
    if answers and answered <= as_of and not keep_open:
        if kind is SurveyKind.NPS:
            score = _clamp(rng.gauss(mean, 1.6), 0, 10)
            comment = _comment(draft, NPS_COMMENTS[_nps_band(score)], 0.5)
        else:
            score = _clamp(rng.gauss(mean, 0.9), 1, 5)
            pool = DELIVERY_COMMENTS if trigger is Trigger.DELIVERY else RETURN_COMMENTS
            comment = _comment(draft, pool[score], 0.35)
        row |= {"answered_at": answered, "score": score, "comment": comment}
        row["state"] = SurveyState.ANSWERED
    else:
        row["state"] = SurveyState.EXPIRED if sent + EXPIRY <= as_of else SurveyState.SENT
    return PlannedSurvey(customer=customer, order=order, row=row)


def _delivered(order: PlannedOrder) -> datetime | None:
    shipment = order.shipment
    if shipment is None or shipment["status"] is not ShipmentStatus.DELIVERED:
        return None
    delivered: datetime = shipment["delivered_at"]
    return delivered


def _after_delivery(draft: Draft, order: PlannedOrder, demo: PlannedCustomer | None) -> None:
    rng, plan = draft.rng, draft.plan
    delivered = _delivered(order)
    assert delivered is not None and order.shipment is not None
    carrier = order.shipment["carrier"]
    rate, mean = CARRIER_SATISFACTION[carrier]
    if delivered > order.shipment["promised_at"]:
        rate, mean = rate + LATE_ANSWER_BONUS, mean - LATE_SCORE_PENALTY
    sent = delivered + timedelta(minutes=rng.uniform(1, 30))
    if sent > plan.as_of:
        return
    # The demo login's recent surveys are left open, for mySurveys to show.
    keep_open = order.customer is demo
    plan.surveys.append(
        _survey(
            draft,
            order.customer,
            order,
            kind=SurveyKind.CSAT,
            trigger=Trigger.DELIVERY,
            sent=sent,
            answer_rate=rate,
            mean=mean,
            carrier=carrier,
            keep_open=keep_open,
        )
    )
    # A few delivered orders are sent back: their payment is refunded, a return survey follows.
    payment = order.payment
    if (
        order.row["status"] is OrderStatus.COMPLETED
        and payment is not None
        and payment["status"] is PaymentStatus.CAPTURED
        and rng.random() < RETURN_SHARE
    ):
        refunded = delivered + timedelta(days=rng.uniform(2, 7))
        if refunded + timedelta(minutes=30) <= plan.as_of:
            payment["status"] = PaymentStatus.REFUNDED
            payment["message"] = "退货退款"
            plan.surveys.append(
                _survey(
                    draft,
                    order.customer,
                    order,
                    kind=SurveyKind.CSAT,
                    trigger=Trigger.RETURN,
                    sent=refunded + timedelta(minutes=rng.uniform(1, 30)),
                    answer_rate=RETURN_SATISFACTION[0],
                    mean=RETURN_SATISFACTION[1],
                    keep_open=keep_open,
                )
            )


def _periodic(draft: Draft, customer: PlannedCustomer, paid: list[datetime], demo: bool) -> None:
    """The NPS surveys the hourly job sends a customer: at their first purchase, then each
    time 180 days have passed since the last while they bought in the 90 days before."""
    rng, plan = draft.rng, draft.plan
    rate, mean = ARCHETYPE_NPS[customer.prefs.archetype]
    due = paid[0] if paid else None
    while due is not None:
        sent = due + timedelta(minutes=rng.uniform(1, 60))
        if sent > plan.as_of:
            return
        plan.surveys.append(
            _survey(
                draft,
                customer,
                None,
                kind=SurveyKind.NPS,
                trigger=Trigger.PERIODIC,
                sent=sent,
                answer_rate=rate,
                mean=mean,
                keep_open=demo,
            )
        )
        again = sent + NPS_INTERVAL
        # The last purchase at or before ``again``: recent enough, or wait for the next one.
        last = bisect.bisect_right(paid, again)
        if last and again - paid[last - 1] <= NPS_RECENT:
            due = again
        else:
            due = paid[last] if last < len(paid) else None


def plan_surveys(draft: Draft) -> None:
    """Every survey of the history, in the order the orders and customers were planned; a few
    customers opted out (they get none)."""
    plan, rng = draft.plan, draft.rng
    demo = plan.demo_customer()
    opted_out = set()
    for customer in plan.customers:
        customer.row["surveys_opt_out"] = customer is not demo and rng.random() < OPT_OUT_SHARE
        if customer.row["surveys_opt_out"]:
            opted_out.add(id(customer))
    paid: dict[int, list[datetime]] = {}
    for order in plan.orders:
        if id(order.customer) in opted_out:
            continue
        if order.row["status"] is not OrderStatus.CANCELLED and order.row["paid_at"] is not None:
            paid.setdefault(id(order.customer), []).append(order.row["paid_at"])
        if _delivered(order) is not None:
            _after_delivery(draft, order, demo)
    for customer in plan.customers:
        if id(customer) not in opted_out:
            _periodic(draft, customer, sorted(paid.get(id(customer), [])), customer is demo)
    if demo is not None:
        # The demo login chatted with the service desk two days ago: a survey waits for them.
        contact = _survey(
            draft,
            demo,
            None,
            kind=SurveyKind.CSAT,
            trigger=Trigger.SERVICE_CONTACT,
            sent=plan.as_of - timedelta(days=2),
            answer_rate=0,
            mean=0,
        )
        contact.subject = "service:demo-chat-1"
        plan.surveys.append(contact)
