"""The signed webhook competitor-price feeds post to."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute


def webhook_routes(config: Any) -> list[BaseRoute]:
    return []
