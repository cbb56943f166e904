"""``shopgraph pricing …``: the operators' commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from server.plugin import DomainError


def pricing_group(plugins: Any, config: Any) -> click.Group:
    group = click.Group("pricing", help="Pricing: competitor price imports, model evaluation.")
    group.add_command(import_competitors_command(plugins, config))
    group.add_command(evaluate_command(plugins, config))
    return group


# --- competitor price imports ----------------------------------------------------------------


def import_competitors_command(plugins: Any, config: Any) -> click.Command:
    @click.command("import-competitors")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--competitor", required=True, help="Whose prices these are (created if new).")
    @click.option("--dry-run", is_flag=True, help="Match the rows and report; write nothing.")
    def command(file: Path, competitor: str, dry_run: bool) -> None:
        """Import competitor prices from a CSV file with the columns gtin, sku, amount,
        currency, observed_at (amount in major units, e.g. 12.99; observed_at ISO 8601, UTC
        when it has no offset). Each row names our variant by gtin or sku. The file is checked
        whole first (a bad row stops the import, naming its line); then it is written in one
        transaction. Rows matching nothing are reported with their line numbers."""
        from plugins.pricing.service import csv_import

        try:
            rows = csv_import.read_csv(file)
        except csv_import.BadLine as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            report = csv_import.run(rows, competitor, config, dry_run=dry_run)
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(report.describe())

    return command


# --- the models' evaluation --------------------------------------------------------------------


def evaluate_command(plugins: Any, config: Any) -> click.Command:
    @click.command("evaluate")
    @click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
    @click.option("--seed", default=19, show_default=True, help="The simulation's seed.")
    @click.option(
        "--shops", default=40, show_default=True, help="Simulated products per elasticity."
    )
    def command(as_json: bool, seed: int, shops: int) -> None:
        """Evaluate elasticity estimation and the price optimiser against baselines, on
        synthetic shops whose right answers are known."""
        import json

        import numpy as np

        from plugins.pricing.service import evaluation
        from server.progress import Progress

        rng = np.random.default_rng(seed)
        steps = len(evaluation.ELASTICITIES) + 3
        with Progress("pricing evaluate", steps) as progress:
            recovery = evaluation.recovery(rng, shops, progress.advance)
            pricing = evaluation.pricing(rng, shops, progress.advance)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "seed": seed,
                        "shops": shops,
                        "recovery": [r.__dict__ for r in recovery],
                        "pricing": [r.__dict__ for r in pricing],
                    },
                    indent=2,
                )
            )
            return
        click.echo(evaluation.report(recovery, pricing, seed, shops))

    return command
