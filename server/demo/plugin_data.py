"""The plugins' demo data: each enabled plugin that implements ``demo_data`` fills its own
tables, after the core's demo shop is written and in the same transaction.

Each plugin gets a ``random.Random`` of its own, seeded from the demo seed and its name, so
that its rows depend on neither the other plugins nor the order they are called in. Each
plugin is one progress step. A plugin that raises fails the whole command (the exception
names it); the caller rolls the transaction back, the core's rows included.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from server.hooktypes import DemoShop
from server.plugins import PluginFailed, PluginRuntime
from server.progress import Progress

HOOK = "demo_data"


def plugin_steps(plugins: PluginRuntime | None) -> int:
    """How many progress steps the plugins' demo data takes: one per implementing plugin."""
    return len(plugins.implementers(HOOK)) if plugins is not None else 0


def plugin_rng(seed: int, plugin: str) -> random.Random:
    """The random source plugin ``plugin`` draws its demo data from."""
    return random.Random(f"demo-data-{seed}-{plugin}")


def _counts(plugin: str, value: object) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(n, int) for k, n in value.items()
    ):
        return dict(value)
    raise PluginFailed(
        plugin, HOOK, TypeError(f"demo_data must return {{what: how many}} or None, not {value!r}")
    )


async def fill_plugins(
    session: AsyncSession,
    plugins: PluginRuntime,
    shop: DemoShop,
    *,
    progress: Progress | None = None,
) -> dict[str, dict[str, int]]:
    """Call every implementation of ``demo_data`` in turn; return each plugin's row counts.

    Raises :class:`server.plugins.PluginFailed` naming the first plugin that fails.
    """
    filled: dict[str, dict[str, int]] = {}
    for name in plugins.implementers(HOOK):

        def note(what: str, name: str = name) -> None:
            if progress is not None:
                progress.note(f"{name}: {what}")

        value = await plugins.answer_of(
            name, HOOK, session=session, shop=shop, rng=plugin_rng(shop.seed, name), progress=note
        )
        counts = _counts(name, value)
        filled[name] = counts
        if progress is not None:
            done = ", ".join(f"{n} {what}" for what, n in counts.items()) or "done"
            progress.advance(f"{name}: {done}")
    return filled
