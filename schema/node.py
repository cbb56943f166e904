"""Relay ``Node`` support for types backed by a table."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any, ClassVar, Self

from strawberry import relay

from schema.context import Info
from schema.global_ids import parse_pk
from schema.loaders import NOT_LOADED, ModelByIdLoader


class ModelNode(relay.Node):
    """A Node whose objects are rows: loaded by id through a DataLoader.

    Subclasses set ``loader`` and implement ``from_model``; ``can_view`` hides rows the viewer
    may not see (they resolve exactly like missing ones).
    """

    loader: ClassVar[type[ModelByIdLoader]]

    @classmethod
    def from_model(cls, model: Any) -> Self:
        raise NotImplementedError

    @classmethod
    def can_view(cls, info: Info, model: Any) -> bool:
        return True

    @classmethod
    def _visible(cls, info: Info, row: Any) -> Self | None:
        """The node of ``row``, or None when there is no row or the viewer may not see it."""
        return cls.from_model(row) if row is not None and cls.can_view(info, row) else None

    @classmethod
    def by_id(cls, info: Info, pk: int | None) -> Self | None | Awaitable[Self | None]:
        """The node of row ``pk`` for a relation's resolver.

        Answers at once when the request already holds the row (a list query joined it), so
        the field needs no await; otherwise returns an awaitable that loads it in a batch.
        GraphQL executors accept either from a resolver.
        """
        if pk is None:
            return None
        loader = info.context.loaders.get(cls.loader)
        row = loader.peek(pk)
        if row is NOT_LOADED:
            return cls._load_visible(info, loader, pk)
        return cls._visible(info, row)

    @classmethod
    async def _load_visible(cls, info: Info, loader: ModelByIdLoader, pk: int) -> Self | None:
        row = await loader.load(pk)
        return cls._visible(info, row)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        ids = [parse_pk(i) for i in node_ids]
        loader = info.context.loaders.get(cls.loader)
        rows = await loader.load_many([i for i in ids if i is not None])
        found = iter(rows)
        out: list[Self | None] = []
        for i in ids:
            row = next(found) if i is not None else None
            out.append(cls._visible(info, row))
        return out
