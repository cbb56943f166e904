"""``shopgraph pricing …``: the operators' commands."""

from __future__ import annotations

from typing import Any

import click


def pricing_group(plugins: Any, config: Any) -> click.Group:
    @click.group("pricing", help="Pricing: competitor imports and the models' evaluation.")
    def group() -> None:
        pass

    return group
