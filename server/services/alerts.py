"""Alerts on the shop's KPIs (docs/insights.md, "Alerts").

Staff set **rules** on any KPI of the registry (server.services.kpi_registry): a period's value
ABOVE or BELOW a threshold, or one that RISES_BY or FALLS_BY a share against the period before.
The periodic job ``core.alerts`` evaluates them, runs the anomaly detector
(server.services.anomalies) on the KPIs of the ``anomaly_kpis`` setting and looks for variants
that sold in the last week and have nothing left to sell (**stock-outs**). Each breach raises
one **alert** and one ``alert_raised`` outbox event; staff acknowledge alerts.

Raised once: every alert has a key naming its breach (``rule:<id>:<granularity>:<period
start>``, ``anomaly:<kpi>:<day>``, ``stock_out:<variant>:<day>``), unique in the table, and is
inserted with ``ON CONFLICT DO NOTHING … RETURNING``: of two processes evaluating at once, one
inserts the row and emits the event, the other inserts nothing. Finding breaches only reads;
the inserts run in a short write transaction of their own.
"""

from __future__ import annotations

import calendar
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from server.config import Settings
from server.db import mark_write
from server.graphql.money import exponent
from server.hooktypes import Job, JobContext, Kpi, KpiBucket, KpiUnit
from server.models import Order, OrderLine, Product, ProductVariant, utcnow
from server.models.alerts import (
    ACTOR_MAX,
    ALERT_RULE_NAME_MAX,
    KPI_KEY_MAX,
    Alert,
    AlertCondition,
    AlertDirection,
    AlertKind,
    AlertRule,
    AlertState,
    Granularity,
)
from server.plugins import PluginRuntime
from server.services import anomalies, outbox, variants
from server.services.errors import Conflict, NotFound, ValidationFailed
from server.services.forecasts import shop_day
from server.services.kpi_registry import registered_kpis
from server.services.rfm import PURCHASE_STATUSES

log = logging.getLogger("shopgraph.alerts")

EVENT = "alert_raised"
JOB_NAME = "alerts"  # runs as "core.alerts"
JOB_INTERVAL_SECONDS = 3600
# A variant that sold within this many days and has nothing left is out of stock.
STOCK_OUT_SALES_DAYS = 7
# The largest share a RISES_BY/FALLS_BY threshold may be (100 = 10,000%).
MAX_CHANGE = 100.0
# KPIs whose value only grows while their period runs (sums of things that happened): an
# ABOVE rule may fire on the period under way, before it ends.
GROWING_UNITS = frozenset({KpiUnit.COUNT, KpiUnit.MONEY})
# The units whose values are never negative.
NON_NEGATIVE_UNITS = frozenset({KpiUnit.COUNT, KpiUnit.MONEY, KpiUnit.RATIO})


class UnknownKpi(ValidationFailed):
    """A rule names a KPI that no enabled plugin (nor the core) offers."""

    code = "UNKNOWN_KPI"

    def __init__(self, key: str, known: Sequence[str]) -> None:
        offered = ", ".join(sorted(known)[:40]) or "none"
        super().__init__(f"no KPI {key!r}; the shop offers: {offered}", field="kpi")
        self.key = key


class InvalidThreshold(ValidationFailed):
    """A threshold the rule's condition and KPI cannot use (a ratio above 1, a share of 0)."""

    code = "INVALID_THRESHOLD"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="threshold")


class AlreadyAcknowledged(Conflict):
    """The alert was acknowledged before (by someone else, or by an earlier call)."""

    code = "ALREADY_ACKNOWLEDGED"

    def __init__(self, alert: Alert) -> None:
        super().__init__(
            f"alert {alert.id} was acknowledged by {alert.acknowledged_by} at "
            f"{alert.acknowledged_at:%Y-%m-%d %H:%M} UTC",
            field="alertId",
        )
        self.alert = alert


# --- periods --------------------------------------------------------------------------------


def bucket_of(day: date, granularity: Granularity) -> KpiBucket:
    """The period of ``granularity`` holding shop day ``day``: the day, its week (Monday to
    Sunday) or its calendar month."""
    if granularity is Granularity.DAY:
        return KpiBucket(day, day + timedelta(days=1))
    if granularity is Granularity.WEEK:
        monday = day - timedelta(days=day.weekday())
        return KpiBucket(monday, monday + timedelta(days=7))
    first = day.replace(day=1)
    days = calendar.monthrange(day.year, day.month)[1]
    return KpiBucket(first, first + timedelta(days=days))


def previous(bucket: KpiBucket, granularity: Granularity) -> KpiBucket:
    """The period just before ``bucket``."""
    return bucket_of(bucket.start - timedelta(days=1), granularity)


def period_name(bucket: KpiBucket, granularity: Granularity) -> str:
    if granularity is Granularity.DAY:
        return bucket.start.isoformat()
    if granularity is Granularity.WEEK:
        return f"the week of {bucket.start.isoformat()}"
    return f"{bucket.start:%Y-%m}"


# --- rules ------------------------------------------------------------------------------------


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > ALERT_RULE_NAME_MAX:
        raise ValidationFailed(f"a name has 1 to {ALERT_RULE_NAME_MAX} characters", field="name")
    return name


def _kpi(kpis: Mapping[str, Kpi], key: str) -> Kpi:
    found = kpis.get(key.strip()) if len(key) <= KPI_KEY_MAX else None
    if found is None:
        raise UnknownKpi(key[:KPI_KEY_MAX], list(kpis))
    return found


def check_threshold(kpi: Kpi, condition: AlertCondition, threshold: float) -> float:
    """``threshold`` when ``condition`` on ``kpi`` can use it; InvalidThreshold otherwise."""
    if not math.isfinite(threshold):
        raise InvalidThreshold("a threshold is a finite number")
    if condition in (AlertCondition.RISES_BY, AlertCondition.FALLS_BY):
        if not 0 < threshold <= MAX_CHANGE:
            raise InvalidThreshold(
                f"{condition.value} takes a share of the period before's value, above 0 and "
                f"at most {MAX_CHANGE:g} (0.3 is 30%)"
            )
        if (
            condition is AlertCondition.FALLS_BY
            and kpi.unit in NON_NEGATIVE_UNITS
            and threshold > 1
        ):
            raise InvalidThreshold(
                f"{kpi.key} is never negative, so it cannot fall by more than 100% (1): 0.3 is 30%"
            )
        return threshold
    if kpi.unit is KpiUnit.RATIO and not 0 <= threshold <= 1:
        raise InvalidThreshold(f"{kpi.key} is a ratio between 0 and 1: 5% is 0.05")
    if kpi.unit in NON_NEGATIVE_UNITS and threshold < 0:
        raise InvalidThreshold(f"{kpi.key} is never negative: a threshold is 0 or more")
    return threshold


def _actor(actor: str) -> str:
    return actor[:ACTOR_MAX]


async def create_rule(
    session: AsyncSession,
    kpis: Mapping[str, Kpi],
    *,
    name: str,
    kpi: str,
    granularity: Granularity,
    condition: AlertCondition,
    threshold: float,
    enabled: bool = True,
    actor: str,
) -> AlertRule:
    """A new rule on one of ``kpis``. A bad name, an unknown KPI (UnknownKpi) or a threshold
    the condition cannot use (InvalidThreshold) writes nothing."""
    title = _name(name)
    found = _kpi(kpis, kpi)
    checked = check_threshold(found, condition, threshold)
    rule = AlertRule(
        name=title,
        kpi_key=found.key,
        granularity=granularity,
        condition=condition,
        threshold=checked,
        enabled=enabled,
        created_by=_actor(actor),
    )
    session.add(rule)
    await session.flush()
    return rule


async def get_rule(session: AsyncSession, rule_id: int) -> AlertRule:
    rule = await session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound("alert rule", rule_id, field="id")
    return rule


async def update_rule(
    session: AsyncSession,
    kpis: Mapping[str, Kpi],
    rule_id: int,
    *,
    name: str | None = None,
    kpi: str | None = None,
    granularity: Granularity | None = None,
    condition: AlertCondition | None = None,
    threshold: float | None = None,
    enabled: bool | None = None,
) -> AlertRule:
    """Change what is given. The rule as changed is checked whole (a new KPI against the
    threshold kept, …); a refusal writes nothing. A rule whose KPI is no longer offered (its
    plugin disabled) may still be renamed or disabled."""
    rule = await get_rule(session, rule_id)
    title = _name(name) if name is not None else rule.name
    key = kpi if kpi is not None else rule.kpi_key
    new_condition = condition or rule.condition
    new_threshold = threshold if threshold is not None else rule.threshold
    if kpi is not None or condition is not None or threshold is not None:
        found = _kpi(kpis, key)
        key = found.key
        new_threshold = check_threshold(found, new_condition, new_threshold)
    rule.name = title
    rule.kpi_key = key
    rule.granularity = granularity or rule.granularity
    rule.condition = new_condition
    rule.threshold = new_threshold
    if enabled is not None:
        rule.enabled = enabled
    rule.updated_at = utcnow()
    await session.flush()
    return rule


async def delete_rule(session: AsyncSession, rule_id: int) -> AlertRule:
    """Delete a rule; the alerts it raised stay (without their rule)."""
    rule = await get_rule(session, rule_id)
    await session.delete(rule)
    await session.flush()
    return rule


def rules_query() -> Select[Any]:
    """Every rule, for a connection."""
    return select(AlertRule)


# --- alerts -----------------------------------------------------------------------------------


def alerts_query(state: AlertState | None = None, kind: AlertKind | None = None) -> Select[Any]:
    """The alerts in ``state`` of ``kind`` (each when given), for a connection."""
    stmt = select(Alert)
    if state is not None:
        stmt = stmt.where(col(Alert.state) == state)
    if kind is not None:
        stmt = stmt.where(col(Alert.kind) == kind)
    return stmt


async def acknowledge(session: AsyncSession, alert_id: int, *, actor: str) -> Alert:
    """OPEN → ACKNOWLEDGED, by ``actor``, with one conditional UPDATE: of two people
    acknowledging at once, one does it and the other gets AlreadyAcknowledged."""
    moved = await session.execute(
        update(Alert)
        .where(col(Alert.id) == alert_id, col(Alert.state) == AlertState.OPEN)
        .values(
            state=AlertState.ACKNOWLEDGED, acknowledged_by=_actor(actor), acknowledged_at=utcnow()
        )
        .execution_options(synchronize_session=False)
    )
    alert = await session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        raise NotFound("alert", alert_id, field="alertId")
    if moved.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult, which execute's type does not say
        raise AlreadyAcknowledged(alert)
    return alert


# --- raising ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAlert:
    """A breach found, before it is raised: the columns of its ``alert`` row."""

    key: str
    kind: AlertKind
    bucket_start: date
    bucket_end: date
    direction: AlertDirection
    message: str
    bad_news: bool = True
    rule_id: int | None = None
    kpi_key: str | None = None
    product_id: int | None = None
    variant_id: int | None = None
    value: float | None = None
    expected: float | None = None
    threshold: float | None = None
    score: float | None = None


def _payload(alert_id: int, found: NewAlert) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "kind": found.kind.value,
        "rule_id": found.rule_id,
        "kpi": found.kpi_key,
        "product_id": found.product_id,
        "variant_id": found.variant_id,
        "bucket_start": found.bucket_start.isoformat(),
        "bucket_end": found.bucket_end.isoformat(),
        "value": found.value,
        "expected": found.expected,
        "threshold": found.threshold,
        "score": found.score,
        "direction": found.direction.value,
        "bad_news": found.bad_news,
        "message": found.message,
    }


async def raise_alerts(
    session: AsyncSession,
    found: Sequence[NewAlert],
    *,
    at: datetime | None = None,
    emit: bool = True,
) -> list[int]:
    """Insert each alert not raised before (by its key) and emit ``alert_raised`` for it
    (unless not ``emit``: the demo's history), in the session's transaction (the caller
    commits); the ids of the alerts inserted."""
    if not found:
        return []
    await mark_write(session)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    moment = at or utcnow()
    raised: list[int] = []
    for alert in found:
        values = {**asdict(alert), "state": AlertState.OPEN, "created_at": moment}
        new_id = await session.scalar(
            insert(Alert)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(col(Alert.id))
        )
        if new_id is None:
            continue  # raised before, by this process or another
        raised.append(int(new_id))
        if emit:
            await outbox.emit(session, EVENT, _payload(int(new_id), alert))
    return raised


async def raise_plugin_alert(
    session: AsyncSession,
    *,
    plugin: str,
    key: str,
    message: str,
    day: date | None = None,
    value: float | None = None,
    threshold: float | None = None,
    bad_news: bool = True,
) -> int | None:
    """A plugin raises an alert, once per ``key`` (its own naming, at most 150 characters;
    stored as ``plugin:<plugin>:<key>``), in the caller's transaction (the caller commits),
    with its ``alert_raised`` event; the new alert's id, None when it was raised before.
    ``day``: the shop day it is about (today by default). Exported to plugins as
    ``raise_alert``."""
    key, message = key.strip(), message.strip()
    if not key or len(key) > 150:
        raise ValidationFailed("an alert key is 1 to 150 characters", field="key")
    if not message or len(message) > 1000:
        raise ValidationFailed("an alert message is 1 to 1000 characters", field="message")
    first = day or shop_day(utcnow())
    found = NewAlert(
        key=f"plugin:{plugin[:40]}:{key}",
        kind=AlertKind.PLUGIN,
        bucket_start=first,
        bucket_end=first + timedelta(days=1),
        direction=AlertDirection.UP,
        message=message,
        bad_news=bad_news,
        value=value,
        threshold=threshold,
    )
    raised = await raise_alerts(session, [found])
    return raised[0] if raised else None


# --- finding breaches -----------------------------------------------------------------------


def format_value(value: float, unit: KpiUnit, currency: str) -> str:
    """A KPI's value as people read it: 1,234 · 12,345.60 CNY · 12.3% · 4.25."""
    if unit is KpiUnit.MONEY:
        return f"{value / 10 ** exponent(currency):,.{exponent(currency)}f} {currency}"
    if unit is KpiUnit.RATIO:
        return f"{value:.1%}"
    if unit is KpiUnit.COUNT and float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def check_rule(
    condition: AlertCondition, threshold: float, before: float | None, value: float | None
) -> tuple[bool, float | None]:
    """Whether a period of value ``value`` (the period before: ``before``) breaches the rule,
    and the relative change (v − before) / |before| for RISES_BY/FALLS_BY.

    ABOVE: value > threshold. BELOW: value < threshold. RISES_BY: change ≥ threshold. FALLS_BY:
    −change ≥ threshold. No value, or for a change no value before or a value before of 0 (no
    share of nothing), is no breach."""
    if value is None:
        return False, None
    if condition is AlertCondition.ABOVE:
        return value > threshold, None
    if condition is AlertCondition.BELOW:
        return value < threshold, None
    if before is None or before == 0:
        return False, None
    change = (value - before) / abs(before)
    if condition is AlertCondition.RISES_BY:
        return change >= threshold, change
    return -change >= threshold, change


def _rule_alert(
    rule: AlertRule,
    kpi: Kpi,
    bucket: KpiBucket,
    value: float,
    before: float | None,
    change: float | None,
    *,
    partial: bool,
    currency: str,
) -> NewAlert:
    up = rule.condition in (AlertCondition.ABOVE, AlertCondition.RISES_BY)
    shown = format_value(value, kpi.unit, currency)
    period = period_name(bucket, rule.granularity)
    if rule.condition is AlertCondition.ABOVE:
        what = f"{shown} {'so far ' if partial else ''}in {period}, above " + format_value(
            rule.threshold, kpi.unit, currency
        )
    elif rule.condition is AlertCondition.BELOW:
        what = f"{shown} in {period}, below {format_value(rule.threshold, kpi.unit, currency)}"
    else:
        assert before is not None and change is not None
        verb = "rose" if up else "fell"
        what = (
            f"{verb} {abs(change):.0%} to {shown} in {period} "
            f"(from {format_value(before, kpi.unit, currency)}; the rule: {rule.threshold:.0%})"
        )
    return NewAlert(
        key=f"rule:{rule.id}:{rule.granularity.value}:{bucket.start.isoformat()}",
        kind=AlertKind.THRESHOLD,
        rule_id=rule.id,
        kpi_key=kpi.key,
        bucket_start=bucket.start,
        bucket_end=bucket.end,
        value=value,
        expected=before if change is not None else None,
        threshold=rule.threshold,
        score=change,
        direction=AlertDirection.UP if up else AlertDirection.DOWN,
        bad_news=up != kpi.higher_is_better,
        message=f"{rule.name}: {kpi.label} {what}",
    )


async def find_rule_breaches(
    session: AsyncSession,
    kpis: Mapping[str, Kpi],
    *,
    today: date,
    currency: str,
    periods: int = 1,
) -> list[NewAlert]:
    """The breaches of every enabled rule whose KPI is offered: on the latest ``periods``
    complete periods of its granularity before the one holding shop day ``today``, and, for
    ABOVE rules on KPIs that only grow as a period runs (COUNT, MONEY), on that period under
    way too. One ``compute`` call per KPI and granularity."""
    rules = (await session.execute(select(AlertRule).where(col(AlertRule.enabled)))).scalars().all()
    groups: dict[tuple[str, Granularity], list[AlertRule]] = defaultdict(list)
    for rule in rules:
        if rule.kpi_key in kpis:
            groups[(rule.kpi_key, rule.granularity)].append(rule)
    found: list[NewAlert] = []
    for (key, granularity), grouped in groups.items():
        kpi = kpis[key]
        current = bucket_of(today, granularity)
        # The periods, oldest first: the one before the first examined, the examined ones,
        # and the one under way.
        buckets = [current]
        for _ in range(periods + 1):
            buckets.insert(0, previous(buckets[0], granularity))
        values = await anomalies.kpi_values(session, kpi, buckets)
        if values is None:
            continue
        for rule in grouped:
            examined = list(range(1, periods + 1))
            if rule.condition is AlertCondition.ABOVE and kpi.unit in GROWING_UNITS:
                examined.append(periods + 1)
            for i in examined:
                breached, change = check_rule(
                    rule.condition, rule.threshold, values[i - 1], values[i]
                )
                if breached:
                    value = values[i]
                    assert value is not None
                    found.append(
                        _rule_alert(
                            rule,
                            kpi,
                            buckets[i],
                            value,
                            values[i - 1],
                            change,
                            partial=i == periods + 1,
                            currency=currency,
                        )
                    )
    return found


def anomaly_alert(anomaly: anomalies.Anomaly, *, threshold: float, currency: str) -> NewAlert:
    kpi, found = anomaly.kpi, anomaly.detection
    what = "spike" if anomaly.spike else "drop"
    return NewAlert(
        key=f"anomaly:{kpi.key}:{anomaly.day.isoformat()}",
        kind=AlertKind.ANOMALY,
        kpi_key=kpi.key,
        bucket_start=anomaly.day,
        bucket_end=anomaly.day + timedelta(days=1),
        value=found.value,
        expected=found.expected,
        threshold=threshold,
        score=found.score,
        direction=AlertDirection.UP if anomaly.spike else AlertDirection.DOWN,
        bad_news=anomaly.bad_news,
        message=(
            f"{kpi.label} {what} on {anomaly.day.isoformat()}: "
            f"{format_value(found.value, kpi.unit, currency)}, "
            f"{format_value(found.expected, kpi.unit, currency)} expected "
            f"(robust z = {found.score:+.1f})"
        ),
    )


async def find_stock_outs(session: AsyncSession, *, as_of: datetime) -> list[NewAlert]:
    """Active variants (of products on sale) that sold in the :data:`STOCK_OUT_SALES_DAYS`
    days up to ``as_of`` and have no unit available now (none on hand and unreserved in an
    active warehouse): one alert each per shop day."""
    since = as_of - timedelta(days=STOCK_OUT_SALES_DAYS)
    sold = (
        await session.execute(
            select(
                col(OrderLine.variant_id),
                col(ProductVariant.product_id),
                col(ProductVariant.sku),
                col(Product.name),
                func.sum(col(OrderLine.quantity)).label("units"),
            )
            .join(Order, col(Order.id) == OrderLine.order_id)
            .join(ProductVariant, col(ProductVariant.id) == OrderLine.variant_id)
            .join(Product, col(Product.id) == ProductVariant.product_id)
            .where(
                col(Order.status).in_(PURCHASE_STATUSES),
                col(Order.placed_at) > since,
                col(Order.placed_at) <= as_of,
                col(ProductVariant.is_active),
                col(Product.is_active),
            )
            .group_by(
                col(OrderLine.variant_id),
                col(ProductVariant.product_id),
                col(ProductVariant.sku),
                col(Product.name),
            )
        )
    ).all()
    available = await variants.available_units(session, [row.variant_id for row in sold])
    day = shop_day(as_of)
    found: list[NewAlert] = []
    for row in sorted(sold, key=lambda r: r.variant_id):
        if available.get(row.variant_id, 0) > 0:
            continue
        units = int(row.units or 0)
        found.append(
            NewAlert(
                key=f"stock_out:{row.variant_id}:{day.isoformat()}",
                kind=AlertKind.STOCK_OUT,
                product_id=row.product_id,
                variant_id=row.variant_id,
                bucket_start=day,
                bucket_end=day + timedelta(days=1),
                value=0.0,
                expected=float(units),
                direction=AlertDirection.DOWN,
                message=(
                    f"Out of stock: {row.name} ({row.sku}) sold {units} in the last "
                    f"{STOCK_OUT_SALES_DAYS} days and has none left to sell"
                ),
            )
        )
    return found


# --- the job ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationReport:
    """What one evaluation raised, by kind (alerts raised before are not counted)."""

    thresholds: int
    anomalies: int
    stock_outs: int

    def summary(self) -> str:
        return (
            f"alerts: {self.thresholds} threshold, {self.anomalies} anomaly, "
            f"{self.stock_outs} stock-out raised"
        )


async def evaluate(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    plugins: PluginRuntime,
    *,
    as_of: datetime | None = None,
) -> EvaluationReport:
    """Evaluate every enabled rule, the anomaly detector (on the latest complete day) and the
    stock-out check as of ``as_of`` (now), and raise what they find. Each finding reads in a
    transaction of its own, and raises in a short write transaction after it."""
    moment = as_of or utcnow()
    today = shop_day(moment)
    kpis = registered_kpis(plugins)
    counts: dict[AlertKind, int] = {}

    async def raise_found(kind: AlertKind, found: Sequence[NewAlert]) -> None:
        async with sessions() as session:
            raised = await raise_alerts(session, found, at=moment)
            await session.commit()
        counts[kind] = len(raised)

    async with sessions() as session:
        breaches = await find_rule_breaches(session, kpis, today=today, currency=settings.currency)
    await raise_found(AlertKind.THRESHOLD, breaches)
    yesterday = today - timedelta(days=1)
    async with sessions() as session:
        found = await anomalies.find_anomalies(
            session,
            kpis,
            settings.anomaly_kpi_keys,
            first_day=yesterday,
            last_day=yesterday,
            history_days=settings.anomaly_history_days,
            threshold=settings.anomaly_threshold,
        )
    await raise_found(
        AlertKind.ANOMALY,
        [
            anomaly_alert(a, threshold=settings.anomaly_threshold, currency=settings.currency)
            for a in found
        ],
    )
    async with sessions() as session:
        stock_outs = await find_stock_outs(session, as_of=moment)
    await raise_found(AlertKind.STOCK_OUT, stock_outs)
    report = EvaluationReport(
        thresholds=counts[AlertKind.THRESHOLD],
        anomalies=counts[AlertKind.ANOMALY],
        stock_outs=counts[AlertKind.STOCK_OUT],
    )
    log.info(report.summary())
    return report


async def run_job(ctx: JobContext) -> None:
    await evaluate(ctx.sessions, ctx.settings, ctx.plugins)


def jobs() -> list[Job]:
    return [
        Job(
            JOB_NAME,
            JOB_INTERVAL_SECONDS,
            run_job,
            description="Evaluate the alert rules, the anomaly detector and the stock-out "
            "check; raise each new breach once (an alert_raised event each).",
        )
    ]
