"""Hooks this plugin offers other plugins (``HOOKSPECS`` in the plugin module).

Implement them with ``@hookimpl(optionalhook=True)`` so your plugin still loads when the
loyalty plugin is not installed or disabled.
"""

from __future__ import annotations

from typing import Any

from server.plugin import hookspec


@hookspec
def loyalty_bonus_points(
    session: Any, order_id: int, customer_id: int, total: int, currency: str, base_points: int
) -> int | None:
    """Return extra points to award for an order on top of ``base_points`` (e.g. a
    double-points campaign returns ``base_points``). Called inside the ``order_placed``
    delivery's transaction; every implementation's answer is added up."""
