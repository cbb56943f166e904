"""Per-request DataLoaders: the two generic shapes (a row by id, the rows of a parent) and the
request's registry of loaders.

Every relation in the schema is resolved through a loader, so the number of SQL statements of
a request does not grow with the page size. Loaders are named ``<Entity>By<Key>Loader``; the
core's are in schema/loaders.py, and plugins define theirs the same way and fetch them with
``info.context.loaders.get(MyLoader)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from server.graphql.context import Database

LoaderT = TypeVar("LoaderT", bound=DataLoader[Any, Any])


# What ``peek`` answers for a key the request has not loaded yet (None means "no such row").
NOT_LOADED: Any = object()


class ModelByIdLoader(DataLoader[int, Any]):
    """Loads rows of ``model`` by primary key; a missing id loads None."""

    model: ClassVar[type[Any]]

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[Any]:
        rows = await self.db.scalars(select(self.model).where(self.model.id.in_(set(keys))))
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in keys]

    def peek(self, key: int) -> Any:
        """The row of ``key`` if this request already holds it (None: no such row), else
        NOT_LOADED. Lets a resolver answer at once instead of awaiting a loaded future."""
        future = self.cache_map.get(key)
        if future is None or not future.done() or future.cancelled():
            return NOT_LOADED
        if future.exception() is not None:
            return NOT_LOADED
        return future.result()


class ModelsByFieldLoader(DataLoader[int, list[Any]]):
    """Loads the rows of ``model`` whose ``field`` equals each key, ordered by ``order_by``."""

    model: ClassVar[type[Any]]
    field: ClassVar[str]
    order_by: ClassVar[tuple[str, ...]] = ("id",)

    def __init__(self, db: Database) -> None:
        self.db = db
        super().__init__(load_fn=self._load)

    async def _load(self, keys: Sequence[int]) -> list[list[Any]]:
        column = getattr(self.model, self.field)
        stmt = (
            select(self.model)
            .where(column.in_(set(keys)))
            .order_by(*(getattr(self.model, name) for name in self.order_by))
        )
        grouped: dict[int, list[Any]] = defaultdict(list)
        for row in await self.db.scalars(stmt):
            grouped[getattr(row, self.field)].append(row)
        return [grouped.get(key, []) for key in keys]


class Loaders:
    """The request's loaders, created on first use."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._loaders: dict[type[Any], DataLoader[Any, Any]] = {}

    def get(self, loader_cls: type[LoaderT]) -> LoaderT:
        loader = self._loaders.get(loader_cls)
        if loader is None:
            loader = self._loaders[loader_cls] = loader_cls(self.db)  # type: ignore[call-overload]  # every loader class takes the Database; the bound, DataLoader, takes a load function
        return loader  # type: ignore[return-value]  # the dict maps each class to an instance of it, which its type cannot say

    def clear(self) -> None:
        """Forget everything loaded (after a mutation changed the data)."""
        self._loaders.clear()
