"""The core's per-request DataLoaders, named ``<Entity>By<Key>Loader`` (the generic shapes are
in server/graphql/loaders.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlmodel import col
from strawberry.dataloader import DataLoader

from server import models as m
from server.graphql.connections import ConnectionsByParentLoader
from server.graphql.context import Database
from server.graphql.loaders import ModelByIdLoader, ModelsByFieldLoader
from server.graphql.pagination import SortKey
from server.services import behaviour, catalog, customer_value, variants


class ProductByIdLoader(ModelByIdLoader):
    model = m.Product


class CategoryByIdLoader(ModelByIdLoader):
    model = m.Category


class SynonymGroupByIdLoader(ModelByIdLoader):
    model = m.SynonymGroup


class ExperimentByIdLoader(ModelByIdLoader):
    model = m.Experiment


class AudienceByIdLoader(ModelByIdLoader):
    model = m.Audience


class AlertByIdLoader(ModelByIdLoader):
    model = m.Alert


class AlertRuleByIdLoader(ModelByIdLoader):
    model = m.AlertRule


class CustomerByIdLoader(ModelByIdLoader):
    model = m.Customer


class WarehouseByIdLoader(ModelByIdLoader):
    model = m.Warehouse


class OrderByIdLoader(ModelByIdLoader):
    model = m.Order


class OrderLineByIdLoader(ModelByIdLoader):
    model = m.OrderLine


class ShipmentByIdLoader(ModelByIdLoader):
    model = m.Shipment


class CartByIdLoader(ModelByIdLoader):
    model = m.Cart


class AddressByIdLoader(ModelByIdLoader):
    model = m.Address


class StaffUserByIdLoader(ModelByIdLoader):
    model = m.StaffUser


class StockLevelByIdLoader(ModelByIdLoader):
    model = m.StockLevel


class CustomerEventByIdLoader(ModelByIdLoader):
    model = m.CustomerEvent


class SurveyByIdLoader(ModelByIdLoader):
    model = m.Survey


class ApiKeyByIdLoader(ModelByIdLoader):
    model = m.ApiKey


class AuditLogEntryByIdLoader(ModelByIdLoader):
    model = m.AuditLogEntry


class OutboxEventByIdLoader(ModelByIdLoader):
    model = m.OutboxEvent


class OutboxDeliveryByIdLoader(ModelByIdLoader):
    model = m.OutboxDelivery


class OrderPagesByCustomerIdLoader(ConnectionsByParentLoader):
    """A page of each customer's orders, newest first (``Customer.orders``)."""

    model = m.Order
    parent = "customer_id"
    sort = (SortKey(m.Order.placed_at, "placed_at"),)
    descending = True


class AudienceChangePagesByAudienceIdLoader(ConnectionsByParentLoader):
    """A page of each audience's joins and leaves, newest first (``Audience.changes``)."""

    model = m.AudienceChange
    parent = "audience_id"
    sort = (SortKey(m.AudienceChange.at, "at"),)
    descending = True


class LatestProductIdsByCustomerLoader(DataLoader[tuple[int, m.CustomerEventKind, int], list[int]]):
    """Keys ``(customer_id, kind, limit)`` → distinct product ids of the customer's events of
    that kind, newest first (favourites, recently viewed). One statement per (kind, limit)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[tuple[int, m.CustomerEventKind, int]]) -> list[list[int]]:
        groups: dict[tuple[m.CustomerEventKind, int], set[int]] = defaultdict(set)
        for customer_id, kind, limit in keys:
            groups[(kind, limit)].add(customer_id)
        found: dict[tuple[int, m.CustomerEventKind, int], list[int]] = defaultdict(list)
        for (kind, limit), customer_ids in groups.items():
            stmt = behaviour.latest_products_stmt(customer_ids, kind, limit)
            for customer_id, product_id, _rank in await self.db.rows(stmt):
                found[(customer_id, kind, limit)].append(product_id)
        return [found.get(key, []) for key in keys]


class CustomerRfmByCustomerIdLoader(DataLoader[int, m.CustomerRfm | None]):
    """A customer's current RFM row (None: no purchase yet), for a page of customers at once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[m.CustomerRfm | None]:
        stmt = select(m.CustomerRfm).where(col(m.CustomerRfm.customer_id).in_(set(keys)))
        found = {row.customer_id: row for row in await self.db.scalars(stmt)}
        return [found.get(key) for key in keys]


class CustomerValueByCustomerIdLoader(DataLoader[int, m.CustomerValue | None]):
    """A customer's lifetime value and churn risk (None: no purchase yet, or not computed yet),
    for a page of customers at once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[m.CustomerValue | None]:
        stmt = select(m.CustomerValue).where(col(m.CustomerValue.customer_id).in_(set(keys)))
        found = {row.customer_id: row for row in await self.db.scalars(stmt)}
        return [found.get(key) for key in keys]


class AverageClvBySegmentLoader(DataLoader[m.CustomerSegment, int | None]):
    """The mean lifetime value of each RFM segment's customers (None: nobody in it has one):
    one statement for every segment asked."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[m.CustomerSegment]) -> list[int | None]:
        averages = await self.db.run(customer_value.average_value_by_segment)
        return [averages.get(key) for key in keys]


class CategoriesByParentIdLoader(ModelsByFieldLoader):
    model = m.Category
    field = "parent_id"
    order_by = ("position", "name", "id")


class CategoryAncestorsByIdLoader(DataLoader[int, list[m.Category]]):
    """A category's ancestors, root first: one recursive query for a whole batch."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[m.Category]]:
        found = await self.db.run(catalog.category_ancestors, keys)
        return [found.get(key, []) for key in keys]


class ProductCountByCategoryIdLoader(DataLoader[int, int]):
    """Active products in a category and all its descendants: one query for a whole batch."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[int]:
        counts = await self.db.run(catalog.active_product_counts, keys)
        return [counts.get(key, 0) for key in keys]


class AddressesByCustomerIdLoader(ModelsByFieldLoader):
    model = m.Address
    field = "customer_id"


class OrderLinesByOrderIdLoader(ModelsByFieldLoader):
    model = m.OrderLine
    field = "order_id"


class OrderStatusChangesByOrderIdLoader(ModelsByFieldLoader):
    model = m.OrderStatusChange
    field = "order_id"
    order_by = ("at", "id")


class PaymentsByOrderIdLoader(ModelsByFieldLoader):
    model = m.Payment
    field = "order_id"


class ShipmentsByOrderIdLoader(ModelsByFieldLoader):
    model = m.Shipment
    field = "order_id"


class ShipmentLinesByShipmentIdLoader(ModelsByFieldLoader):
    model = m.ShipmentLine
    field = "shipment_id"


class TrackingEventsByShipmentIdLoader(ModelsByFieldLoader):
    model = m.TrackingEvent
    field = "shipment_id"
    order_by = ("occurred_at", "id")


class StockLevelsByProductIdLoader(ModelsByFieldLoader):
    model = m.StockLevel
    field = "product_id"


class CartLinesByCartIdLoader(ModelsByFieldLoader):
    model = m.CartLine
    field = "cart_id"


class ProductVariantByIdLoader(ModelByIdLoader):
    model = m.ProductVariant


class ProductVariantsByProductIdLoader(ModelsByFieldLoader):
    model = m.ProductVariant
    field = "product_id"
    order_by = ("position", "id")


class ProductOptionsByProductIdLoader(ModelsByFieldLoader):
    model = m.ProductOption
    field = "product_id"
    order_by = ("position", "id")


class AvailableUnitsByVariantIdLoader(DataLoader[int, int]):
    """Units of a variant that can be sold now, over the active warehouses: one grouped
    statement for a whole batch (a product page's variants)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[int]:
        units = await self.db.run(variants.available_units, keys)
        return [units.get(key, 0) for key in keys]


class AvailableUnitsByProductIdLoader(DataLoader[int, int]):
    """Units of a product's active variants that can be sold now, over the active warehouses:
    one grouped statement for a whole batch (a page of products)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[int]:
        units = await self.db.run(variants.available_units_of_products, keys)
        return [units.get(key, 0) for key in keys]


class SynonymsByGroupIdLoader(ModelsByFieldLoader):
    model = m.Synonym
    field = "group_id"
    order_by = ("position", "id")
