"""Alerts over GraphQL, for staff: the alerts raised (``alerts``, newest first) and the rules
(``alertRules``) for insights.read, and for alerts.manage the rules' definition
(``createAlertRule``, ``updateAlertRule``, ``deleteAlertRule``) and ``acknowledgeAlert``.
Customers never see any of it. The rules, the detector and the SQL are in
server/services/alerts.py and server/services/anomalies.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

# KpiUnit as schema.kpis makes it a GraphQL enum (imported first, so that it is made once).
from schema.kpis import KpiUnit
from schema.loaders import AlertByIdLoader, AlertRuleByIdLoader
from schema.periods import Granularity
from schema.products import Product
from schema.variants import ProductVariant
from server import models as m
from server.graphql.connections import Paged, connection
from server.graphql.context import Info
from server.graphql.errors import ConflictError, NotFoundError, ValidationError
from server.graphql.ids import require_node_id
from server.graphql.mutations import mutate
from server.graphql.node import ModelNode
from server.graphql.pagination import Connection, Page, SortKey
from server.graphql.permissions import HasPermission
from server.hooktypes import Kpi
from server.permissions import ALERTS_MANAGE, INSIGHTS_MANAGE, INSIGHTS_READ
from server.services import alerts as service
from server.services.kpi_registry import registered_kpis

# GraphQL enums: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(
    m.AlertCondition,
    description="ABOVE / BELOW: the period's value is above (below) the threshold; RISES_BY / "
    "FALLS_BY: it changed by at least the threshold, a share (0.3 = 30%), against the period "
    "before.",
)
strawberry.enum(
    m.AlertKind,
    description="THRESHOLD: a rule's; ANOMALY: the detector's (a day out of line with its "
    "history); STOCK_OUT: a variant that sold last week has nothing left to sell; PLUGIN: "
    "raised by a plugin (its key starts plugin:<name>:).",
)
strawberry.enum(m.AlertState, description="OPEN until someone acknowledges it.")
strawberry.enum(
    m.AlertDirection, description="UP: above, risen, a spike; DOWN: below, fallen, a drop."
)

_READ = (INSIGHTS_READ, INSIGHTS_MANAGE, ALERTS_MANAGE)
_READERS = HasPermission(*_READ)
_MANAGERS = HasPermission(ALERTS_MANAGE)


def _registry(info: Info, known: Mapping[str, Kpi] | None) -> Mapping[str, Kpi]:
    # A list passes the registry it read once to all its nodes; a node alone reads it.
    return known if known is not None else registered_kpis(info.context.plugins)


def _kpi_label(kpis: Mapping[str, Kpi], key: str | None) -> str | None:
    kpi = kpis.get(key) if key is not None else None
    return kpi.label if kpi is not None else None


def _kpi_unit(kpis: Mapping[str, Kpi], key: str | None) -> KpiUnit | None:
    kpi = kpis.get(key) if key is not None else None
    return kpi.unit if kpi is not None else None


@strawberry.type(description="A rule on a KPI that raises an alert when a period breaches it.")
class AlertRule(ModelNode):
    loader = AlertRuleByIdLoader

    id: relay.NodeID[int]
    name: str
    granularity: Granularity
    condition: m.AlertCondition
    threshold: float = strawberry.field(
        description="ABOVE/BELOW: in the KPI's unit (MONEY in minor units, RATIO 0-1); "
        "RISES_BY/FALLS_BY: a share of the period before's value (0.3 = 30%)."
    )
    enabled: bool
    created_by: str = strawberry.field(description="Who made it: staff:<id>, apikey:<id> …")
    created_at: datetime
    updated_at: datetime
    kpi_key: strawberry.Private[str]
    _model: strawberry.Private[m.AlertRule]
    kpis: strawberry.Private[Mapping[str, Kpi] | None] = None

    @classmethod
    def can_view(cls, info: Info, model: m.AlertRule) -> bool:
        return info.context.viewer.has(*_READ)

    @strawberry.field(description="The KPI's key, as the KPI registry names it (e.g. gmv).")
    def kpi(self) -> str:
        return self.kpi_key

    @strawberry.field(description="The KPI's label; null when no enabled plugin offers it now.")
    def kpi_label(self, info: Info) -> str | None:
        return _kpi_label(_registry(info, self.kpis), self.kpi_key)

    @strawberry.field(
        description="The KPI's unit, that of an ABOVE/BELOW threshold (MONEY in minor units); "
        "null when no enabled plugin offers the KPI now."
    )
    def kpi_unit(self, info: Info) -> KpiUnit | None:
        return _kpi_unit(_registry(info, self.kpis), self.kpi_key)

    @strawberry.field(description="Enabled, and its KPI is offered: the job evaluates it.")
    def active(self, info: Info) -> bool:
        return self.enabled and self.kpi_key in _registry(info, self.kpis)


@strawberry.type(description="A breach raised once: a rule's, an anomaly or a stock-out.")
class Alert(ModelNode):
    loader = AlertByIdLoader

    id: relay.NodeID[int]
    kind: m.AlertKind
    state: m.AlertState
    bucket_start: date = strawberry.field(description="The first shop day of the period.")
    bucket_end: date = strawberry.field(description="The day after the period (exclusive).")
    value: float | None = strawberry.field(
        description="The KPI's value in the period (in its unit; MONEY in minor units); a "
        "stock-out: the units available (0)."
    )
    expected: float | None = strawberry.field(
        description="ANOMALY: the value expected of the day; RISES_BY/FALLS_BY: the period "
        "before's value; STOCK_OUT: the units sold in the last 7 days."
    )
    threshold: float | None = strawberry.field(
        description="The rule's threshold when raised, or the anomaly detector's z threshold."
    )
    score: float | None = strawberry.field(
        description="ANOMALY: the robust z-score; RISES_BY/FALLS_BY: the relative change."
    )
    direction: m.AlertDirection
    bad_news: bool = strawberry.field(
        description="The move is bad for the shop (by the KPI's direction: a refund-rate "
        "spike, a traffic drop); false for good news (GMV above a target)."
    )
    message: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    created_at: datetime
    kpi_key: strawberry.Private[str | None]
    rule_id: strawberry.Private[int | None]
    product_id: strawberry.Private[int | None]
    variant_id: strawberry.Private[int | None]
    _model: strawberry.Private[m.Alert]
    kpis: strawberry.Private[Mapping[str, Kpi] | None] = None

    @classmethod
    def can_view(cls, info: Info, model: m.Alert) -> bool:
        return info.context.viewer.has(*_READ)

    @strawberry.field(description="The KPI's key (null for a stock-out).")
    def kpi(self) -> str | None:
        return self.kpi_key

    @strawberry.field(description="The KPI's label; null when no enabled plugin offers it now.")
    def kpi_label(self, info: Info) -> str | None:
        return _kpi_label(_registry(info, self.kpis), self.kpi_key)

    @strawberry.field(description="The rule that raised it (null: another kind, or deleted).")
    def rule(self, info: Info) -> AlertRule | None:
        return AlertRule.by_id(info, self.rule_id)  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it

    @strawberry.field(description="The product out of stock (STOCK_OUT).")
    def product(self, info: Info) -> Product | None:
        return Product.by_id(info, self.product_id)  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it

    @strawberry.field(description="The variant out of stock (STOCK_OUT).")
    def variant(self, info: Info) -> ProductVariant | None:
        return ProductVariant.by_id(info, self.variant_id)  # type: ignore[return-value]  # maybe an awaitable: GraphQL awaits it


@strawberry.input(description="Alerts in a state, of a kind (each when given).")
class AlertFilter:
    state: m.AlertState | None = None
    kind: m.AlertKind | None = None


# --- queries ----------------------------------------------------------------------------------


@strawberry.type
class AlertQueries:
    @strawberry.field(
        description="Alerts raised, newest first (insights.read or alerts.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def alerts(
        self, info: Info, page: Page, filter: AlertFilter | None = None
    ) -> Connection[Alert]:
        given = filter or AlertFilter()
        kpis = registered_kpis(info.context.plugins)
        return await connection(
            info,
            service.alerts_query(given.state, given.kind),
            page,
            sort=[SortKey(m.Alert.created_at, "created_at")],
            to_node=lambda row: Alert.from_model(row, kpis=kpis),
            descending=True,
        )

    @strawberry.field(
        description="Alert rules, oldest first (insights.read or alerts.manage).",
        permission_classes=[_READERS],
        extensions=[Paged()],
    )
    async def alert_rules(self, info: Info, page: Page) -> Connection[AlertRule]:
        kpis = registered_kpis(info.context.plugins)
        return await connection(
            info,
            service.rules_query(),
            page,
            sort=[],
            to_node=lambda row: AlertRule.from_model(row, kpis=kpis),
        )


# --- mutations --------------------------------------------------------------------------------


@strawberry.input(description="A new alert rule; the job evaluates it from its next run.")
class CreateAlertRuleInput:
    name: str = strawberry.field(description="1 to 200 characters.")
    kpi: str = strawberry.field(description="A KPI's key (gmv, refund_rate, <plugin>.<name>).")
    granularity: Granularity
    condition: m.AlertCondition
    threshold: float = strawberry.field(
        description="ABOVE/BELOW: in the KPI's unit (MONEY in minor units, RATIO 0 to 1); "
        "RISES_BY/FALLS_BY: a share above 0 (0.3 = 30%; FALLS_BY at most 1 for a KPI that is "
        "never negative)."
    )
    enabled: bool = True


@strawberry.input(description="What to change of an alert rule; the rest is kept.")
class UpdateAlertRuleInput:
    id: strawberry.ID
    name: str | None = None
    kpi: str | None = None
    granularity: Granularity | None = None
    condition: m.AlertCondition | None = None
    threshold: float | None = None
    enabled: bool | None = None


@strawberry.input
class AlertRuleIdInput:
    id: strawberry.ID


@strawberry.input
class AcknowledgeAlertInput:
    alert_id: strawberry.ID


@strawberry.type
class CreateAlertRuleSuccess:
    rule: AlertRule


@strawberry.type
class UpdateAlertRuleSuccess:
    rule: AlertRule


@strawberry.type
class DeleteAlertRuleSuccess:
    deleted_id: relay.GlobalID


@strawberry.type
class AcknowledgeAlertSuccess:
    alert: Alert


CreateAlertRuleResult = Annotated[
    CreateAlertRuleSuccess | ValidationError, strawberry.union("CreateAlertRuleResult")
]
UpdateAlertRuleResult = Annotated[
    UpdateAlertRuleSuccess | ValidationError | NotFoundError,
    strawberry.union("UpdateAlertRuleResult"),
]
DeleteAlertRuleResult = Annotated[
    DeleteAlertRuleSuccess | NotFoundError, strawberry.union("DeleteAlertRuleResult")
]
AcknowledgeAlertResult = Annotated[
    AcknowledgeAlertSuccess | NotFoundError | ConflictError,
    strawberry.union("AcknowledgeAlertResult"),
]


@strawberry.type
class AlertMutations:
    @strawberry.mutation(
        description="A rule on a KPI. An unknown KPI is a ValidationError UNKNOWN_KPI, a "
        "threshold the condition cannot use one INVALID_THRESHOLD (alerts.manage).",
        permission_classes=[_MANAGERS],
    )
    async def create_alert_rule(
        self, info: Info, input: CreateAlertRuleInput
    ) -> CreateAlertRuleResult:
        async def work(session: AsyncSession) -> m.AlertRule:
            return await service.create_rule(
                session,
                registered_kpis(info.context.plugins),
                name=input.name,
                kpi=input.kpi,
                granularity=input.granularity,
                condition=input.condition,
                threshold=input.threshold,
                enabled=input.enabled,
                actor=info.context.viewer.subject,
            )

        return await mutate(
            info, work, lambda row: CreateAlertRuleSuccess(rule=AlertRule.from_model(row))
        )

    @strawberry.mutation(
        description="Change a rule; the rule as changed is checked whole (alerts.manage).",
        permission_classes=[_MANAGERS],
    )
    async def update_alert_rule(
        self, info: Info, input: UpdateAlertRuleInput
    ) -> UpdateAlertRuleResult:
        async def work(session: AsyncSession) -> m.AlertRule:
            return await service.update_rule(
                session,
                registered_kpis(info.context.plugins),
                require_node_id(input.id, "AlertRule", "id"),
                name=input.name,
                kpi=input.kpi,
                granularity=input.granularity,
                condition=input.condition,
                threshold=input.threshold,
                enabled=input.enabled,
            )

        return await mutate(
            info, work, lambda row: UpdateAlertRuleSuccess(rule=AlertRule.from_model(row))
        )

    @strawberry.mutation(
        description="Delete a rule; the alerts it raised stay, without it (alerts.manage).",
        permission_classes=[_MANAGERS],
    )
    async def delete_alert_rule(self, info: Info, input: AlertRuleIdInput) -> DeleteAlertRuleResult:
        async def work(session: AsyncSession) -> m.AlertRule:
            return await service.delete_rule(session, require_node_id(input.id, "AlertRule", "id"))

        return await mutate(
            info,
            work,
            lambda row: DeleteAlertRuleSuccess(deleted_id=relay.GlobalID("AlertRule", str(row.id))),
        )

    @strawberry.mutation(
        description="OPEN → ACKNOWLEDGED, signed with the caller; an alert acknowledged "
        "before is a ConflictError ALREADY_ACKNOWLEDGED (alerts.manage).",
        permission_classes=[_MANAGERS],
    )
    async def acknowledge_alert(
        self, info: Info, input: AcknowledgeAlertInput
    ) -> AcknowledgeAlertResult:
        async def work(session: AsyncSession) -> m.Alert:
            return await service.acknowledge(
                session,
                require_node_id(input.alert_id, "Alert", "alertId"),
                actor=info.context.viewer.subject,
            )

        return await mutate(
            info, work, lambda row: AcknowledgeAlertSuccess(alert=Alert.from_model(row))
        )


QUERIES: list[type[Any]] = [AlertQueries]
MUTATIONS: list[type[Any]] = [AlertMutations]
TYPES: list[type[Any]] = [Alert, AlertRule]
