"""The recommendation plugin's tables (prefix ``recommendation_``).

A rebuild writes its models (neighbours, rules, popularity, repurchase cycles) under a new
``recommendation_build`` and makes it current only when every row is written, so serving,
from any number of processes, always reads one complete build.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field, enum_field, json_field


class BuildStatus(StrEnum):
    RUNNING = "RUNNING"
    READY = "READY"  # complete; the newest READY build is the one served
    FAILED = "FAILED"


class RecommendationBuild(SQLModel, table=True):
    """One rebuild of the models; ``stats`` says what it read and made, and how long it took."""

    __tablename__ = "recommendation_build"

    id: int | None = Field(default=None, primary_key=True)
    status: BuildStatus = enum_field(BuildStatus, BuildStatus.RUNNING, index=True)
    started_at: datetime = created_at_field()
    finished_at: datetime | None = datetime_field()
    stats: dict[str, Any] = json_field(dict)


class NeighbourSource(StrEnum):
    CF = "CF"  # item-item collaborative filtering on implicit feedback (co-view, co-buy)
    CONTENT = "CONTENT"  # category, brand, tags, attributes and text


class RecommendationNeighbour(SQLModel, table=True):
    """A product's nearest products by one source, ``rank`` 1 the nearest."""

    __tablename__ = "recommendation_neighbour"
    __table_args__ = (
        UniqueConstraint("build_id", "product_id", "source", "neighbour_id"),
        Index("ix_recommendation_neighbour_lookup", "build_id", "product_id", "source", "rank"),
    )

    id: int | None = Field(default=None, primary_key=True)
    build_id: int = Field(foreign_key="recommendation_build.id", ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    neighbour_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    source: NeighbourSource = enum_field(NeighbourSource, NeighbourSource.CF)
    score: float
    rank: int


class RecommendationRule(SQLModel, table=True):
    """An association rule antecedent → consequent mined from co-purchases (orders)."""

    __tablename__ = "recommendation_rule"
    __table_args__ = (
        UniqueConstraint("build_id", "antecedent_id", "consequent_id"),
        Index("ix_recommendation_rule_lookup", "build_id", "antecedent_id", "rank"),
    )

    id: int | None = Field(default=None, primary_key=True)
    build_id: int = Field(foreign_key="recommendation_build.id", ondelete="CASCADE")
    antecedent_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    consequent_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    orders: int  # orders holding both
    support: float  # orders holding both / all orders
    confidence: float  # orders holding both / orders holding the antecedent
    lift: float  # confidence / (orders holding the consequent / all orders)
    rank: int  # by lift, then confidence, within the antecedent


class RecommendationPopularity(SQLModel, table=True):
    """Time-decayed popularity, ranked per category (its subtree) and for the whole shop
    (``category_id`` NULL)."""

    __tablename__ = "recommendation_popularity"
    __table_args__ = (
        Index("ix_recommendation_popularity_lookup", "build_id", "category_id", "rank"),
    )

    id: int | None = Field(default=None, primary_key=True)
    build_id: int = Field(foreign_key="recommendation_build.id", ondelete="CASCADE")
    category_id: int | None = Field(default=None, foreign_key="category.id", ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    score: float
    rank: int


class RecommendationCycle(SQLModel, table=True):
    """A product's repurchase cycle, from the gaps between one customer's orders of it."""

    __tablename__ = "recommendation_cycle"
    __table_args__ = (UniqueConstraint("build_id", "product_id"),)

    id: int | None = Field(default=None, primary_key=True)
    build_id: int = Field(foreign_key="recommendation_build.id", ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    buyers: int
    repeat_buyers: int  # buyers who bought it in two or more orders
    interval_days: float | None  # median gap between consecutive orders of one buyer
    consumable: bool  # bought again often enough to come back on its cycle


class RecommendationContext(StrEnum):
    HOME = "HOME"
    PRODUCT = "PRODUCT"
    CART = "CART"
    CATEGORY = "CATEGORY"
    SEARCH_EMPTY = "SEARCH_EMPTY"


class Component(StrEnum):
    """Where a recommended product came from: what its reason says."""

    REPEAT = "REPEAT"  # "you buy this about every 14 days"
    BOUGHT_WITH = "BOUGHT_WITH"  # "often bought with X" (association rules)
    SIMILAR = "SIMILAR"  # "similar to Y you viewed" (CF and content neighbours)
    POPULAR = "POPULAR"  # "popular in Z this week"
    NEW = "NEW"  # "new in a category you like"
    PINNED = "PINNED"  # an operator's pin


class RecommendationImpression(SQLModel, table=True):
    """One answer served: its id is the recommendation id clients report clicks with."""

    __tablename__ = "recommendation_impression"
    __table_args__ = (Index("ix_recommendation_impression_time", "created_at"),)

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    context: RecommendationContext = enum_field(RecommendationContext, RecommendationContext.HOME)
    customer_id: int | None = Field(
        default=None, foreign_key="customer.id", index=True, ondelete="SET NULL"
    )
    session_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    blend: str = Field(default="default", sa_column=Column(String(40), nullable=False))
    # [{"product_id": 1, "component": "REPEAT", "position": 1, "score": 0.9}, ...]
    items: list[dict[str, Any]] = json_field(list)
    created_at: datetime = created_at_field()


class RecommendationClick(SQLModel, table=True):
    """A click on a recommended product; once per answer and product (clients retry)."""

    __tablename__ = "recommendation_click"
    __table_args__ = (UniqueConstraint("impression_id", "product_id"),)

    id: int | None = Field(default=None, primary_key=True)
    impression_id: str = Field(
        sa_column=Column(String(32), nullable=False, index=True)
    )  # the answer's id (no foreign key: impressions are pruned before clicks are read)
    product_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    component: Component = enum_field(Component, Component.POPULAR)
    position: int
    created_at: datetime = created_at_field()


class RecommendationConversion(SQLModel, table=True):
    """An order that followed a recommendation, as the client reported it."""

    __tablename__ = "recommendation_conversion"
    __table_args__ = (UniqueConstraint("impression_id", "order_id"),)

    id: int | None = Field(default=None, primary_key=True)
    impression_id: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    order_id: int = Field(foreign_key="order.id", ondelete="CASCADE")
    # Of the order's products, those the answer recommended, and their revenue (minor units).
    product_ids: list[int] = json_field(list)
    revenue_amount: int = 0
    currency: str = "CNY"
    created_at: datetime = created_at_field()


class MerchandisingKind(StrEnum):
    PIN = "PIN"  # always shown, at ``position``
    EXCLUDE = "EXCLUDE"  # never shown


class RecommendationMerchandising(SQLModel, table=True):
    """An operator's pin or exclusion for one context, or for every context (NULL)."""

    __tablename__ = "recommendation_merchandising"
    __table_args__ = (UniqueConstraint("context", "product_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    context: RecommendationContext | None = Field(
        default=None, sa_column=Column(String(16), nullable=True)
    )
    product_id: int = Field(foreign_key="product.id", ondelete="CASCADE")
    kind: MerchandisingKind = enum_field(MerchandisingKind, MerchandisingKind.EXCLUDE)
    position: int | None = None  # a pin's slot, 1-based
    note: str = ""
    created_at: datetime = created_at_field()


class RecommendationOptOut(SQLModel, table=True):
    """A customer who turned personalised recommendations off: they get the shop's
    non-personal answers (popular, new), as the law on personal information requires."""

    __tablename__ = "recommendation_opt_out"

    customer_id: int = Field(foreign_key="customer.id", primary_key=True, ondelete="CASCADE")
    created_at: datetime = created_at_field()
