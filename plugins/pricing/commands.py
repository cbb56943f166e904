"""``shopgraph pricing …``: the operators' commands."""

from __future__ import annotations

from typing import Any

import click


def pricing_group(plugins: Any, config: Any) -> click.Group:
    group = click.Group("pricing", help="Pricing: competitor price imports, model evaluation.")
    group.add_command(import_competitors_command(plugins, config))
    group.add_command(evaluate_command(plugins, config))
    return group


# --- competitor price imports ----------------------------------------------------------------


def import_competitors_command(plugins: Any, config: Any) -> click.Command:
    @click.command("import-competitors")
    def command() -> None:
        """Import competitor prices from a CSV file."""
        raise click.ClickException("not available yet")

    return command


# --- the models' evaluation --------------------------------------------------------------------


def evaluate_command(plugins: Any, config: Any) -> click.Command:
    @click.command("evaluate")
    def command() -> None:
        """Evaluate elasticity estimation and the price optimiser against baselines."""
        raise click.ClickException("not available yet")

    return command
