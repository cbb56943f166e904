"""The recommendation plugin's command line: ``shopgraph recommend …`` (the ``cli_commands``
hook)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.exc import SQLAlchemyError

from server.plugin import DomainError, run_in_session, scratch_database

if TYPE_CHECKING:
    from plugins.recommendation.service.data import TrainingData
    from plugins.recommendation.service.settings import RecommendationSettings


def recommend_group(plugins: Any, config: RecommendationSettings) -> click.Group:
    """``shopgraph recommend``, its commands bound to the plugin's settings ``config``."""

    @click.group("recommend")
    def recommend() -> None:
        """Recommendations: the offline evaluation against baselines, and rebuilding the
        models now."""

    @recommend.command("evaluate")
    @click.option(
        "--orders",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="An order log (CSV with a header row, a row per product bought) to evaluate on "
        "instead of the shop's own orders.",
    )
    @click.option(
        "--customer", default="customer_id", show_default=True, help="Its customer column."
    )
    @click.option("--order", default="order_id", show_default=True, help="Its order column.")
    @click.option(
        "--sequence",
        default="sequence",
        show_default=True,
        help="Its column placing each order in time: a number (days) or an ISO date.",
    )
    @click.option(
        "--product", default="product_id", show_default=True, help="Its product column (SKUs)."
    )
    @click.option(
        "--category",
        default=None,
        help="Its column of the product's category (optional), for the products the shop does "
        "not have.",
    )
    @click.option(
        "--split",
        "kind",
        type=click.Choice(["last", "time"]),
        default="last",
        show_default=True,
        help="last: each customer's last order held out; time: each customer's first order "
        "after one cut.",
    )
    @click.option(
        "--cut",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="The time split's cut (default: when 90% of the orders had been placed).",
    )
    @click.option(
        "--tune",
        is_flag=True,
        help="Grid-search the blend weights on a validation split and print the best.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print {model: {metric: value}}.")
    def evaluate(
        orders: Path | None,
        customer: str,
        order: str,
        sequence: str,
        product: str,
        category: str | None,
        kind: str,
        cut: datetime | None,
        tune: bool,
        as_json: bool,
    ) -> None:
        """Score the hybrid and the baselines (global popularity, personal top-frequency,
        the same filled with popular products, recency-weighted frequency, item-kNN) on
        held-out orders: recall, NDCG and hit rate at 10, catalogue coverage, each for all,
        repeat and new items. Progress on stderr."""
        from plugins.recommendation.service import evaluation
        from server.progress import Progress

        try:
            loading = 1 if orders is None else 4
            steps = loading + (evaluation.TUNE_STEPS if tune else evaluation.EVALUATE_STEPS)
            with Progress("recommend evaluate", steps) as progress:
                data = _data(
                    plugins,
                    config,
                    orders,
                    (customer, order, sequence, product, category),
                    progress.advance,
                )
                if tune:
                    tried = asyncio.run(evaluation.tune_blend(data, config, step=progress.advance))
                else:
                    when = cut.replace(tzinfo=UTC).timestamp() if cut else None
                    report = asyncio.run(
                        evaluation.evaluate(
                            data, config, kind=kind, cut=when, step=progress.advance
                        )
                    )
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        if tune:
            click.echo(_describe_tuning(tried, as_json))
        elif as_json:
            click.echo(json.dumps(report.as_dict(), indent=2))
        else:
            click.echo(report.describe())

    @recommend.command("rebuild")
    def rebuild_now() -> None:
        """Refit every model from the shop's data now and serve it: the job
        recommendation.rebuild, at once, with its progress on stderr."""
        from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

        from plugins.recommendation.service.rebuild import STEPS, RebuildReport, rebuild
        from server.progress import Progress

        with Progress("recommend rebuild", STEPS) as progress:

            async def work(session: AsyncSession) -> RebuildReport:
                # The rebuild runs several transactions: sessions of the command's engine.
                sessions = async_sessionmaker(
                    session.bind, class_=AsyncSession, expire_on_commit=False
                )
                return await rebuild(sessions, config, progress.advance)

            report = run_in_session(work)
        click.echo(report.summary())

    return recommend


def _describe_tuning(tried: list[Any], as_json: bool) -> str:
    best = tried[0]
    weights = best.weights.model_dump()
    if as_json:
        return json.dumps(
            [
                {"weights": t.weights.model_dump(), "recall@10": t.recall, "ndcg@10": t.ndcg}
                for t in tried
            ],
            indent=2,
        )
    lines = ["blend (repeat, bought_with, similar, popular, new)  recall@10  ndcg@10"]
    for t in tried[:10]:
        w = t.weights
        shown = f"{w.repeat:g}, {w.bought_with:g}, {w.similar:g}, {w.popular:g}, {w.new:g}"
        lines.append(f"{shown:<52}{t.recall:.4f}     {t.ndcg:.4f}")
    lines.append(f"best: SHOPGRAPH_RECOMMENDATION_WEIGHTS='{json.dumps(weights)}'")
    return "\n".join(lines)


def _data(
    plugins: Any,
    config: RecommendationSettings,
    orders: Path | None,
    columns: tuple[str, str, str, str, str | None],
    advance: Callable[[str], None],
) -> TrainingData:
    from plugins.recommendation.service.data import load_training_data

    if orders is None:
        data = run_in_session(lambda session: load_training_data(session, config))
        advance(f"{data.purchases.at.size} order lines read from the shop")
        return data
    from plugins.recommendation.service import order_log

    customer, order, sequence, product, category = columns
    log = order_log.read_order_log(
        orders,
        customer=customer,
        order=order,
        sequence=sequence,
        product=product,
        category=category,
    )
    advance(f"{log.rows} rows read from {orders.name}")
    skus = list(log.products)
    try:
        catalogue = run_in_session(lambda session: order_log.shop_catalogue(session, skus))
    except SQLAlchemyError:
        # No shop here (or not migrated): every product becomes a placeholder.
        catalogue = order_log.Catalogue([], [])
    advance(f"{len(catalogue.products)} of its products found in the shop's catalogue")
    with scratch_database(plugins) as url:
        imported = run_in_session(
            lambda session: order_log.write_order_log(session, log, catalogue),
            write=True,
            database_url=url,
        )
        advance(f"{imported.orders} orders of {imported.customers} customers imported")
        until = log.end + timedelta(seconds=1)  # everything, the last order too
        data = run_in_session(
            lambda session: load_training_data(session, config, until=until), database_url=url
        )
    advance(f"{data.purchases.at.size} order lines loaded")
    return data
