"""What plugins answer order-flow hooks: checked, and stamped with the plugin's name.

Every value a hook returns (an Adjustment, PriceLimit, ShippingQuote, CheckoutProblem, Parcel,
PaymentGateway) gets ``source=<plugin>``, whatever the plugin put there. A value of another
type fails the request like a hook that raises: PluginFailed, naming the plugin and the hook.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from server.hookcall import PluginFailed
from server.hooktypes import Adjustment, NotApplied

T = TypeVar("T")


def stamped(plugin: str, hook: str, value: Any, kind: type[T]) -> T:
    """``value`` with ``source`` set to ``plugin``; PluginFailed when it is not a ``kind``."""
    if not isinstance(value, kind):
        raise PluginFailed(
            plugin,
            hook,
            TypeError(f"returned {type(value).__name__} {value!r}, not a {kind.__name__}"),
        )
    return dataclasses.replace(value, source=plugin)  # type: ignore[type-var]  # every value stamped is a dataclass with a source field


def stamped_all(plugin: str, hook: str, values: Any, kind: type[T]) -> list[T]:
    """Every value of a hook's list answer, stamped (see :func:`stamped`)."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise PluginFailed(
            plugin, hook, TypeError(f"returned {values!r}, not a list of {kind.__name__}")
        )
    return [stamped(plugin, hook, value, kind) for value in values]


def _checked_amount(plugin: str, hook: str, adjustment: Adjustment) -> Adjustment:
    if isinstance(adjustment.amount, bool) or not isinstance(adjustment.amount, int):
        raise PluginFailed(
            plugin,
            hook,
            TypeError(f"adjustment {adjustment.rule!r}: amount must be an int of minor units"),
        )
    return adjustment


def adjustments_of(plugin: str, hook: str, values: Any) -> list[Adjustment]:
    """A hook's list of adjustments, checked and stamped with ``plugin``."""
    return [
        _checked_amount(plugin, hook, adj) for adj in stamped_all(plugin, hook, values, Adjustment)
    ]


def price_steps_of(
    plugin: str, hook: str, values: Any
) -> tuple[list[Adjustment], list[NotApplied]]:
    """A price hook's list for one item: its adjustments and the candidates it left out
    (``NotApplied``), each checked and stamped with ``plugin``."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise PluginFailed(
            plugin, hook, TypeError(f"returned {values!r}, not a list of Adjustment")
        )
    applied: list[Adjustment] = []
    left_out: list[NotApplied] = []
    for value in values:
        if isinstance(value, NotApplied):
            left_out.append(stamped(plugin, hook, value, NotApplied))
        else:
            applied.append(_checked_amount(plugin, hook, stamped(plugin, hook, value, Adjustment)))
    return applied, left_out
