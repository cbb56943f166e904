"""Recommendation, a built-in plugin: personalised, explainable next-basket and discovery
recommendations that react to a visitor's behaviour at once.

The plugin object is this module: ``PLUGIN_INFO`` says what it is, the ``@hookimpl``
functions below what it does. Everything it uses comes from ``server.plugin`` and the core's
public models and services (docs/plugins/recommendation.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.plugin import DemoShop, Event, Job, Kpi, PluginInfo, hookimpl

PLUGIN_INFO = PluginInfo(
    name="recommendation",
    version="1.0.0",
    description="Recommendations: buy-again, bought-together, similar, popular and new, blended.",
    core_version=">=0.1,<1.0",
)
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "versions"
# Pins, exclusions and rebuilds (staff); reading the figures needs the core's insights.read.
MANAGE = "recommendation.manage"

__all__ = ["MANAGE", "PLUGIN_INFO"]

# --- data ----------------------------------------------------------------------------------


# Named apart from the hook: importing the submodule ``models`` sets this package's attribute
# of that name, which would hide a function called ``models`` from the next registration.
@hookimpl(specname="models")
def table_modules() -> Sequence[str]:
    return ["plugins.recommendation.models"]


@hookimpl
def migration_locations() -> Sequence[str]:
    return [str(MIGRATIONS)]


# --- platform ------------------------------------------------------------------------------


@hookimpl
def settings() -> type:
    from plugins.recommendation.service.settings import RecommendationSettings

    return RecommendationSettings


@hookimpl
def permissions() -> Sequence[str]:
    return [MANAGE]


# --- rebuilding: the models' periodic job, and new products' content neighbours at once ---


@hookimpl
def jobs(config: Any) -> Sequence[Job]:
    from plugins.recommendation.service.rebuild import run_job

    return [
        Job(
            "rebuild",
            config.rebuild_interval_minutes * 60,
            run_job,
            description="Refit the recommendation models (collaborative filtering, content "
            "similarity, bought-together rules, popularity, repurchase cycles) from the "
            "shop's orders and behaviour, and serve them once every row is written.",
        )
    ]


@hookimpl
async def product_changed(event: Event, session: AsyncSession, config: Any) -> None:
    from plugins.recommendation.service.rebuild import refresh_product

    await refresh_product(session, config, int(event.payload["product_id"]))


# --- serving: schema, KPIs and demo data ------------------------------------------------------


@hookimpl
def graphql_queries() -> Sequence[type]:
    from plugins.recommendation import schema

    return schema.QUERIES


@hookimpl
def graphql_mutations() -> Sequence[type]:
    from plugins.recommendation import schema

    return schema.MUTATIONS


@hookimpl
def graphql_type_extensions() -> Mapping[str, Sequence[type]]:
    from plugins.recommendation import schema

    return schema.EXTENSIONS


@hookimpl
def kpis() -> Sequence[Kpi]:
    from plugins.recommendation.service import tracking

    return tracking.recommendation_kpis()


@hookimpl
async def demo_data(
    session: AsyncSession,
    shop: DemoShop,
    rng: random.Random,
    progress: Callable[[str], None],
    config: Any,
) -> dict[str, int]:
    from plugins.recommendation.service import demo

    return await demo.fill(session, shop, rng, config, progress)


# --- command line: the offline evaluation --------------------------------------------------


@hookimpl
def cli_commands(plugins: Any, config: Any) -> Sequence[Any]:
    from plugins.recommendation.commands import recommend_group

    return [recommend_group(plugins, config)]
