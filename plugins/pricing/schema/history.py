"""(filled in below)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

QUERIES: list[type[Any]] = []
MUTATIONS: list[type[Any]] = []
EXTENSIONS: dict[str, list[type[Any]]] = {}
CACHEABLE: dict[str, Sequence[str]] = {}
