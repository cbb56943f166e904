"""The inventory domain over GraphQL."""

from __future__ import annotations

from typing import Any

QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = []
