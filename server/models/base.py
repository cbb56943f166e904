"""Shared column helpers for the core's and plugins' SQLModel tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, TypeDecorator
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime on both backends (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general

        def process(value: Any) -> datetime | None:
            # SQLite hands back the naive UTC text SQLAlchemy stored; read as UTC in one step
            # (parse, then attach the zone, costs five times as much: a listing reads many).
            if value.__class__ is str:
                try:
                    parsed = datetime.fromisoformat(value + "+00:00")
                except ValueError:
                    parsed = None  # its own offset, or a form only SQLAlchemy's parser reads
                # A date alone parses with the offset dropped: SQLAlchemy's parser reads it.
                if parsed is not None and parsed.tzinfo is not None:
                    return parsed
            return general(value)

        return process


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def datetime_field(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def json_field(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


# Named constraints, so that migrations can address them on both backends.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def enum_field(enum_cls: type[StrEnum], default: Any = None, *, index: bool = False) -> Any:
    """An enum column stored as VARCHAR: adding a member later needs no database type change."""
    return Field(
        default=default,
        sa_column=Column(
            SAEnum(enum_cls, native_enum=False, length=32, validate_strings=True),
            nullable=False,
            index=index,
        ),
    )
