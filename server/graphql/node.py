"""Relay ``Node`` support for types backed by a table."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Iterable
from typing import Any, ClassVar, Self

from strawberry import relay
from strawberry.types import get_object_definition

from server.graphql.context import Info
from server.graphql.ids import parse_node_id, parse_pk
from server.graphql.loaders import NOT_LOADED, ModelByIdLoader


@functools.cache
def _init_fields(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


class FromModel:
    """A strawberry type built from a row (a table's model or a listing record)."""

    @classmethod
    def from_model(cls, row: Any, **values: Any) -> Self:
        """The type of ``row``: each field takes ``values[name]`` when given, else the row's
        attribute of the same name; a ``_model`` field keeps the row itself. A field that is
        in neither and has no default is a TypeError, at once."""
        kwargs: dict[str, Any] = {}
        for name in _init_fields(cls):  # type: ignore[arg-type]  # a class is hashable; mypy does not count type[Self] as Hashable
            if name in values:
                kwargs[name] = values[name]
            elif name == "_model":
                kwargs[name] = row
            elif hasattr(row, name):
                kwargs[name] = getattr(row, name)
        return cls(**kwargs)


class ModelNode(FromModel, relay.Node):
    """A Node whose objects are rows: loaded by id through a DataLoader.

    Subclasses set ``loader``; ``from_model`` (see :class:`FromModel`) builds the node of a
    row; ``can_view`` hides rows the viewer may not see (they resolve exactly like missing
    ones).
    """

    loader: ClassVar[type[ModelByIdLoader]]

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
    async def load(cls, info: Info, pk: int | None) -> Self | None:
        """The node of row ``pk``, or None when there is none or the viewer may not see it.

        Goes through :meth:`resolve_nodes` (batched through the loader), so a type that
        overrides it with its own rule of who sees what is answered by that rule.
        """
        if pk is None:
            return None
        nodes = await cls.resolve_nodes(info=info, node_ids=[str(pk)])
        return nodes[0]

    @classmethod
    async def load_global_id(cls, info: Info, value: object) -> Self | None:
        """A root field's ``thing(id:)``: the node a client's global id names, or None when it
        names no row of this type the viewer may see (see :mod:`server.graphql.ids`)."""
        type_name = get_object_definition(cls, strict=True).name
        return await cls.load(info, parse_node_id(value, type_name))

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # strawberry's is overloaded on `required`; this one answers both
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
