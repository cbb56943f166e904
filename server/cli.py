"""The ``shopgraph`` command line."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from server.config import METRICS_DIR_VARIABLE, Settings, get_settings

if TYPE_CHECKING:
    # Imported where used: the plugins load only for the commands that need them.
    from server.plugins import PluginRuntime


def plugin_commands(runtime: PluginRuntime, core: Collection[str]) -> dict[str, click.Command]:
    """The commands the enabled plugins add (the ``cli_commands`` hook), by name. A name the
    core (``core``) or another plugin already has is a :class:`click.ClickException` naming
    both."""
    found: dict[str, tuple[str, click.Command]] = {}
    for plugin, commands in runtime.call_sync("cli_commands"):
        for command in commands or ():
            name = command.name or ""
            if name in core:
                raise click.ClickException(
                    f"plugin {plugin!r} adds the command {name!r}, which shopgraph has"
                )
            if name in found:
                raise click.ClickException(
                    f"plugins {found[name][0]!r} and {plugin!r} both add the command {name!r}"
                )
            found[name] = (plugin, command)
    return {name: command for name, (_, command) in found.items()}


class _WithPluginCommands(click.Group):
    """The core's commands, then those plugins add. Plugins are loaded only for a command the
    core does not have, or to list every command (``--help``)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        core = super().get_command(ctx, cmd_name)
        if core is not None:
            return core
        return plugin_commands(_plugins(), super().list_commands(ctx)).get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        core = super().list_commands(ctx)
        return sorted([*core, *plugin_commands(_plugins(), core)])


@click.group(cls=_WithPluginCommands)
def main() -> None:
    """shopgraph: a GraphQL API server for running an online shop finely."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def serve(host: str, port: int, workers: int, reload: bool) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql outside production)."""
    if workers > 1 and not os.environ.get(METRICS_DIR_VARIABLE):
        # Each worker writes its metrics here; /metrics, answered by any worker, adds them up.
        # Set before prometheus_client is imported anywhere: it picks its storage then.
        os.environ[METRICS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="shopgraph-metrics-")
    # Each worker process builds its app from the environment: tell it how many there are.
    os.environ["SHOPGRAPH_WORKERS"] = str(workers)
    import uvicorn

    from server.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.effective_log_format, settings.log_level)
    _refuse_unapplied_migrations(settings)
    uvicorn.run(
        "server.app:asgi_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=settings.log_level.lower(),
        # Logging is configured by shopgraph (server/logs.py), in this process and each worker.
        log_config=None,
    )


def _refuse_unapplied_migrations(settings: Settings) -> None:
    """``serve`` stops here, before any worker starts, when an enabled plugin's branch is not
    at its head (each worker's start-up checks it again)."""
    from server import migrate

    problem = migrate.serving_problem(settings.database_url, _plugins())
    if problem is not None:
        raise click.ClickException(f"not serving: {problem}")


@main.group()
def db() -> None:
    """Database migrations (the core's history plus each enabled plugin's branch)."""


def _plugins() -> PluginRuntime:
    from server.plugins import PluginError, load_plugins

    try:
        return load_plugins(get_settings())
    except PluginError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _migration_errors() -> Iterator[None]:
    from server.migrate import MigrationError

    try:
        yield
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from exc


@db.command()
@click.argument("revision", required=False)
def upgrade(revision: str | None) -> None:
    """Migrate the database up to REVISION (default: the core's head and every enabled
    plugin's branch head; a disabled plugin's branch is left where it is)."""
    from server import migrate

    settings = get_settings()
    with _migration_errors():
        migrate.upgrade(settings.database_url, revision, _plugins())
    click.echo(f"database at {', '.join(sorted(migrate.current(settings.database_url)))}")


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. ``base``, ``-1`` or ``<plugin>@base``)."""
    from server import migrate

    settings = get_settings()
    with _migration_errors():
        migrate.downgrade(settings.database_url, revision, _plugins())
    revs = migrate.current(settings.database_url)
    click.echo(f"database at {', '.join(sorted(revs)) or 'base'}")


@db.command()
def current() -> None:
    """Show the revisions the database is at."""
    from server import migrate

    revs = migrate.current(get_settings().database_url)
    click.echo("\n".join(sorted(revs)) or "base (empty database)")


@main.group()
def schema() -> None:
    """The GraphQL schema."""


@schema.command("export")
@click.option(
    "--installed",
    is_flag=True,
    help="The schema this configuration serves: the installed plugins too, as enabled.",
)
def schema_export(installed: bool) -> None:
    """Print the SDL of the core with the built-in plugins (the committed
    schema/schema.graphql), whatever else is installed; with --installed, of the schema this
    configuration serves."""
    from schema.core import build_schema
    from server.plugins import PluginError, load_builtin_plugins

    settings = get_settings()
    try:
        plugins = _plugins() if installed else load_builtin_plugins(settings)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.stdout.write(build_schema(plugins, settings).as_str() + "\n")


@main.group()
def staff() -> None:
    """Staff accounts (there is no self-service sign-up for staff)."""


@staff.command("create")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", default="", help="Display name.")
@click.option(
    "--role",
    default="ADMIN",
    show_default=True,
    help="ADMIN, CATALOG, SUPPORT, LOGISTICS or ANALYST.",
)
def staff_create(email: str, password: str, name: str, role: str) -> None:
    """Create a staff user, who then signs in with the staffLogin mutation."""
    from server.migrate import run_async
    from server.services.accounts import create_staff_account
    from server.services.errors import DomainError

    url = get_settings().database_url
    try:
        user = run_async(
            lambda: create_staff_account(url, email=email, password=password, name=name, role=role)
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"created staff user {user.email} ({user.role.value}), id {user.id}")


@main.group("apikey")
def apikey_group() -> None:
    """API keys for apps and integrations (hashed; the key is shown once)."""


@apikey_group.command("create")
@click.option("--name", required=True, help="Who uses the key, e.g. the app's name.")
@click.option(
    "--scopes", required=True, help="Comma-separated permissions, e.g. catalog.read,orders.manage."
)
def apikey_create(name: str, scopes: str) -> None:
    """Create an API key and print it (this once: only its hash is stored)."""
    from server.migrate import run_async
    from server.permissions import RoleMap
    from server.services.apikeys import create_api_key_in
    from server.services.errors import DomainError

    settings = get_settings()
    roles = RoleMap.build(settings, _plugins().permissions)
    try:
        created = run_async(
            lambda: create_api_key_in(
                settings.database_url,
                roles,
                name=name,
                scopes=scopes.split(","),
                created_by="cli",
            )
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    key = created.api_key
    click.echo(f"created API key {key.name!r} (id {key.id}, scopes {', '.join(key.scopes)})")
    click.echo("store it now, it is not shown again:")
    click.echo(created.secret)


@apikey_group.command("revoke")
@click.argument("prefix_or_id")
def apikey_revoke(prefix_or_id: str) -> None:
    """Revoke the key with this prefix (the part after sg_) or numeric id."""
    from server.migrate import run_async
    from server.services.apikeys import revoke_api_key_in
    from server.services.errors import DomainError

    url = get_settings().database_url
    try:
        key = run_async(lambda: revoke_api_key_in(url, prefix_or_id.strip()))
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"revoked API key {key.name!r} (prefix {key.prefix})")


@main.group("plugins")
def plugins_group() -> None:
    """Installed plugins."""


@plugins_group.command("list")
def plugins_list() -> None:
    """Every discovered plugin: name, version, enabled, source and the hooks it implements."""
    from server.plugins import describe_plugins

    click.echo(describe_plugins(_plugins()))


@main.group("plugin")
def plugin_group() -> None:
    """Writing plugins."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--directory", default=".", show_default=True, help="Where to create it.")
def plugin_new(name: str, directory: str) -> None:
    """Scaffold a pip-installable plugin package NAME (pyproject with the entry point, the
    plugin's rooms, a migration branch and a passing test)."""
    from server.scaffold import ScaffoldError, install_hint, scaffold_plugin

    try:
        root = scaffold_plugin(name, directory)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {root}\nnext: {install_hint(root)} && shopgraph db upgrade")


@plugin_group.command("migration")
@click.argument("name")
@click.option("-m", "--message", required=True, help="What the revision does.")
@click.option(
    "--database-url",
    default=None,
    help="Compare with this database (at every branch's head) instead of a throwaway one.",
)
@click.option("--empty", is_flag=True, help="Write an empty revision (a data migration).")
def plugin_migration(name: str, message: str, database_url: str | None, empty: bool) -> None:
    """Write a revision into plugin NAME's migration branch, autogenerated from its models
    (the branch is created, depending on the core's head, when it has none yet). The plugin
    must be installed from its sources (pip install -e) and enabled."""
    from server import migrate

    with _migration_errors():
        written = migrate.new_revision(
            _plugins(), name, message, database_url=database_url, empty=empty
        )
    if written is None:
        click.echo(f"plugin {name!r}: its models match its migrations, nothing written")
        return
    created = f", the first of its branch {name!r}" if written.branch_created else ""
    click.echo(f"wrote revision {written.revision}{created}: {written.path}")
    click.echo("read it, then: shopgraph db upgrade")


@plugin_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def plugin_remove(name: str, yes: bool) -> None:
    """Downgrade plugin NAME's migration branch to base: its tables and their rows are
    dropped. It works whether NAME is enabled or disabled; uninstall or disable it after."""
    from server import migrate

    settings = get_settings()
    plugins = _plugins()
    if plugins.record(name) is None:
        raise click.ClickException(
            f"no plugin named {name!r} is installed (see `shopgraph plugins list`)"
        )
    if not yes:
        click.confirm(f"drop every table of plugin {name!r} and the rows in them?", abort=True)
    with _migration_errors():
        removal = migrate.remove_plugin(settings.database_url, name, plugins)
    if not removal.removed and not removal.dependents:
        click.echo(f"plugin {name!r} has no migrations applied to this database: nothing to do")
        return
    click.echo(
        f"plugin {name!r}: downgraded its branch to base ({', '.join(removal.removed)} "
        "undone), its tables are dropped"
    )
    for other, revisions in removal.dependents.items():
        click.echo(f"also undone, as they depend on it: plugin {other!r} ({', '.join(revisions)})")
    if plugins.is_enabled(name):
        click.echo(
            f"plugin {name!r} is still enabled, and the server refuses to start so: "
            f"uninstall it, or disable it (SHOPGRAPH_DISABLED_PLUGINS={name})"
        )
    else:
        click.echo(f"plugin {name!r} is disabled; uninstall it when you like")


@main.group()
def jobs() -> None:
    """Background work: outbox dispatch and the plugins' periodic jobs."""


@jobs.command("run")
@click.argument("name", required=False)
@click.option("--only", default=None, help="Run just this job ('outbox' or <plugin>.<job>).")
@click.option("--force", is_flag=True, help="Run jobs even if their interval has not passed.")
@click.option("--loop", is_flag=True, help="Keep running (a worker process).")
def jobs_run(name: str | None, only: str | None, force: bool, loop: bool) -> None:
    """Drain the event outbox and run every due periodic job, once (or forever with --loop);
    NAME (or --only NAME) runs just that job, e.g. `shopgraph jobs run core.insights`."""
    from server.jobs import run_jobs_command

    if name and only and name != only:
        raise click.UsageError(f"two jobs named: {name!r} and --only {only!r}")
    click.echo(
        run_jobs_command(get_settings(), _plugins(), only=only or name, force=force, loop=loop)
    )


@main.group()
def insights() -> None:
    """Customer insights: RFM segments, lifetime value and audiences' memberships (recomputed by
    the periodic job core.insights), audience exports, lifetime value models fitted on
    transaction logs, demand forecasts' backtest, marketing costs' import, and the KPI
    aggregates (docs/insights.md)."""


@insights.command("fit-clv")
@click.option(
    "--transactions",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV file with a header row, one row per transaction.",
)
@click.option("--customer", required=True, help="The column of the customer id.")
@click.option("--date", "date_column", required=True, help="The column of the purchase date.")
@click.option("--amount", default=None, help="The column of the amount spent (for Gamma-Gamma).")
@click.option(
    "--calibration-end",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The last day of the calibration period (YYYY-MM-DD); later purchases are the holdout.",
)
@click.option(
    "--unit",
    type=click.Choice(["week", "day"]),
    default="week",
    show_default=True,
    help="The unit of time of the fitted rates.",
)
@click.option(
    "--date-format",
    default=None,
    help="strptime format of the dates when not YYYY-MM-DD or YYYYMMDD (e.g. %d/%m/%Y).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def insights_fit_clv(
    transactions: Path,
    customer: str,
    date_column: str,
    amount: str | None,
    calibration_end: datetime,
    unit: Literal["week", "day"],
    date_format: str | None,
    as_json: bool,
) -> None:
    """Fit BG/NBD (purchases) and Gamma-Gamma (spend, with --amount) on a transaction log:
    repeat purchases are counted per distinct day, and each customer's time runs from their
    first purchase to the calibration end. When the log runs past the calibration end, the
    forecast of purchases after it is compared with what happened and with two baselines."""
    import json

    from server.progress import Progress
    from server.services import clv
    from server.services.errors import DomainError
    from server.services.transaction_log import read_transactions_csv

    try:
        with Progress("fit-clv", 2 + clv.FIT_STEPS) as progress:
            log = read_transactions_csv(
                transactions,
                customer=customer,
                date=date_column,
                amount=amount,
                date_format=date_format,
            )
            progress.advance(f"{log.rows} transactions read")
            summary = clv.summarize_transactions(
                log.customers,
                log.dates,
                log.amounts,
                calibration_end=calibration_end.date(),
                unit=unit,
            )
            progress.advance(f"{summary.size} customers summarised")
            fitted = clv.fit_clv(summary, progress=progress)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(json.dumps(fitted.as_dict(), indent=2))
    else:
        click.echo(fitted.describe())


@insights.command("backtest")
@click.option("--product", default=None, help="The SKU of the product (or of one of its variants).")
@click.option("--category", default=None, help="The slug of a category (with those below it).")
@click.option(
    "--top", default=None, type=click.IntRange(min=1), help="The N best-selling products."
)
@click.option("--horizon", default=28, show_default=True, type=click.IntRange(1, 366))
@click.option("--origins", default=4, show_default=True, type=click.IntRange(1, 52))
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def insights_backtest(
    product: str | None,
    category: str | None,
    top: int | None,
    horizon: int,
    origins: int,
    as_json: bool,
) -> None:
    """Backtest the daily demand forecasts on the shop's purchases: at each of ORIGINS
    consecutive origins ending with yesterday, forecast HORIZON days from the days before and
    compare MASE and sMAPE with the seasonal naive and moving-average baselines. Without
    --product, --category or --top: the whole shop's demand."""
    import json

    from server.services import forecasts
    from server.services.errors import DomainError

    try:
        report = forecasts.backtest_command(
            get_settings().database_url,
            product=product,
            category=category,
            top=top,
            horizon=horizon,
            origins=origins,
        )
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.describe())


@insights.command("rebuild")
def insights_rebuild() -> None:
    """Recompute every customer insight now, step by step, whatever changed since the last run."""
    from server.services.insights import rebuild_command

    click.echo(rebuild_command(get_settings()))


@insights.command("kpis-rebuild")
def insights_kpis_rebuild() -> None:
    """Recompute every KPI aggregate (every day, week and month of the shop's history) now,
    with a progress bar; the periodic job core.kpis then refreshes what changes."""
    from server.services.kpi_aggregates import rebuild_command

    click.echo(rebuild_command(get_settings()))


@insights.command("export-audience")
@click.argument("key")
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The CSV file to write (customer_id, email, name, region).",
)
def insights_export_audience(key: str, output: Path) -> None:
    """Write the members of audience KEY (its rule evaluated now) to a CSV file, with a
    progress bar. Personal data: the export is recorded in the audit log."""
    from server.services.audience_export import export_command
    from server.services.errors import DomainError

    try:
        click.echo(export_command(get_settings(), key, output))
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc


@insights.command("import-costs")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def insights_import_costs(file: Path) -> None:
    """Import marketing costs from FILE, a UTF-8 CSV file with the header
    day,channel,campaign,amount (at most 10,000 rows, 1 MiB): all rows or none, a day,
    channel and campaign imported again having its amount replaced. Audited."""
    from server.services.errors import DomainError
    from server.services.marketing_costs import import_file_command

    try:
        click.echo(import_file_command(get_settings(), file))
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


@main.command("demo-data")
@click.option("--customers", default=500, show_default=True, type=click.IntRange(min=0))
@click.option("--products", default=300, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--orders",
    default=None,
    type=click.IntRange(min=0),
    help="Exactly this many orders (default: as many as the customers' buying rhythms give).",
)
@click.option("--seed", default=2024, show_default=True, type=int, help="Same seed, same shop.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day the shop's history ends (default: today). Fix it for identical rows.",
)
@click.option("--if-empty", is_flag=True, help="Do nothing if the shop already has products.")
def demo_data(
    customers: int,
    products: int,
    orders: int | None,
    seed: int,
    as_of: datetime | None,
    if_empty: bool,
) -> None:
    """Fill an empty (migrated) database with a demo shop: catalogue, stock, customers with
    their buying rhythms and behaviour, 18 months of orders, payments, shipments and the
    satisfaction surveys that followed them; then each enabled plugin's demo data.
    All of it is committed together, or nothing when a plugin fails."""
    from server.demo import demo_steps, load
    from server.migrate import run_async
    from server.plugins import PluginFailed
    from server.progress import Progress

    when = as_of.replace(tzinfo=UTC) if as_of else None
    plugins = _plugins()
    try:
        with Progress("demo-data", demo_steps(plugins)) as progress:
            report = run_async(
                lambda: load(
                    get_settings().database_url,
                    customers=customers,
                    products=products,
                    orders=orders,
                    seed=seed,
                    as_of=when,
                    if_empty=if_empty,
                    plugins=plugins,
                    progress=progress,
                )
            )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except PluginFailed as exc:
        raise click.ClickException(
            f"the demo data of plugin {exc.plugin!r} failed: {exc.error!r}. Nothing was written; "
            f"to fill the shop without it: SHOPGRAPH_DISABLED_PLUGINS={exc.plugin}"
        ) from exc
    click.echo(report.summary() if report else "the shop already has products: left as it is")


if __name__ == "__main__":
    main()
