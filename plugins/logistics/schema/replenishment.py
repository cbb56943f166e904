"""The logistics plugin over GraphQL: replenishment."""

from __future__ import annotations

from typing import Any

TYPES: list[type[Any]] = []
QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = []
SUBSCRIPTIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {}
