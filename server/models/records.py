"""Records: read-only copies of a table's rows, for pages that only show them.

An ORM entity carries the ORM's bookkeeping: an instance state, a place in the session's
identity map, change tracking, and (for SQLModel) pydantic's private fields. A page of twenty
products with their categories builds forty of them, and on a listing that work costs more
than the SQL. A record is a slotted object with one attribute per column, under the entity's
attribute names and with the same Python values (the column types' result processing still
runs), built straight from a Core row.

Use records where nothing is written back and no relationship is followed: listings. Code that
needs the entity itself (a plugin hook that receives one, a mutation) loads it by id; see
:func:`is_record`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import ColumnElement
from sqlmodel import SQLModel


class Record:
    """Base of every record class (see :func:`record_type`)."""

    __slots__ = ()
    model: ClassVar[type[SQLModel]]
    names: ClassVar[tuple[str, ...]]


class RecordType:
    """The record class of one model, and the columns a select reads it from."""

    def __init__(self, model: type[SQLModel]) -> None:
        table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on a table model without declaring it
        mapper = model.__mapper__  # type: ignore[attr-defined]  # SQLModel sets it on a table model without declaring it
        # Attribute names, in table order: what entity code reads (e.g. product.price_amount).
        by_column = {prop.columns[0]: prop.key for prop in mapper.column_attrs}
        self.names = tuple(by_column[c] for c in table.c)
        self.width = len(self.names)
        self.columns: Sequence[ColumnElement[Any]] = list(table.c)
        self.cls: type[Record] = dataclasses.make_dataclass(
            f"{model.__name__}Record",
            self.names,
            bases=(Record,),
            slots=True,
            eq=False,
            repr=False,
        )
        self.cls.model = model
        self.cls.names = self.names

    def labelled(self, prefix: str) -> list[ColumnElement[Any]]:
        """The columns, labelled ``prefix + name`` so two tables' columns can share a select."""
        return [
            c.label(f"{prefix}{name}") for c, name in zip(self.columns, self.names, strict=True)
        ]

    def from_row(self, row: Sequence[Any], start: int = 0) -> Record:
        """The record in ``row[start:start + width]``."""
        return self.cls(*row[start : start + self.width])


def is_record(obj: object) -> bool:
    return isinstance(obj, Record)
