"""The category tree over GraphQL: the Category type and its queries."""

from __future__ import annotations

from typing import Any, Protocol

import strawberry
from strawberry import relay

from schema.loaders import (
    CategoriesByParentIdLoader,
    CategoryAncestorsByIdLoader,
    CategoryByIdLoader,
    ProductCountByCategoryIdLoader,
)
from server.graphql.context import Info
from server.graphql.node import ModelNode
from server.services import catalog


class CategoryView(Protocol):
    """What a plugin reads of a category: the root of its fields on ``Category``.

    Resolvers a plugin adds to ``Category`` (``graphql_type_extensions``) receive the core
    ``Category`` object as ``self`` or as a parameter named ``root``; annotate it with this
    protocol. These attributes are its documented, read-only interface:

    - ``id``: the primary key (the number inside the global id);
    - ``name``, ``slug``, ``description``, ``position`` (the order among its siblings);
    - ``parent_id``: the parent category's primary key, None for a root.
    """

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def parent_id(self) -> int | None: ...


@strawberry.type(description="A node of the category tree.")
class Category(ModelNode):
    """Built from a category row (entity or listing record) with ``Category.from_model(row)``;
    a :class:`CategoryView`."""

    loader = CategoryByIdLoader

    id: relay.NodeID[int]
    name: str
    slug: str
    description: str
    position: int
    parent_id: strawberry.Private[int | None]

    @strawberry.field
    async def parent(self, info: Info) -> Category | None:
        if self.parent_id is None:
            return None
        row = await info.context.loaders.get(CategoryByIdLoader).load(self.parent_id)
        return Category.from_model(row) if row else None

    @strawberry.field
    async def children(self, info: Info) -> list[Category]:
        rows = await info.context.loaders.get(CategoriesByParentIdLoader).load(self.id)
        return [Category.from_model(r) for r in rows]

    @strawberry.field(description="The path from the root down to the parent (a breadcrumb).")
    async def ancestors(self, info: Info) -> list[Category]:
        if self.parent_id is None:
            return []
        rows = await info.context.loaders.get(CategoryAncestorsByIdLoader).load(self.id)
        return [Category.from_model(r) for r in rows]

    @strawberry.field(description="Products on sale in this category and all categories below it.")
    async def product_count(self, info: Info) -> int:
        return await info.context.loaders.get(ProductCountByCategoryIdLoader).load(self.id)


@strawberry.type
class CategoryQueries:
    @strawberry.field(description="The root categories, each with its children.")
    async def categories(self, info: Info) -> list[Category]:
        rows = await info.context.db.run(catalog.root_categories)
        return [Category.from_model(r) for r in rows]

    @strawberry.field(description="A category by its slug.")
    async def category(self, info: Info, slug: str) -> Category | None:
        row = await info.context.db.run(catalog.category_by_slug, slug)
        return Category.from_model(row) if row else None


QUERIES: list[type[Any]] = [CategoryQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = [Category]
