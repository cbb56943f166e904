"""The ``shopgraph`` command line."""

from __future__ import annotations

import sys

import click

from server.config import get_settings


@click.group()
def main() -> None:
    """shopgraph: a GraphQL API server for running an online shop finely."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def serve(host: str, port: int, workers: int, reload: bool) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql outside production)."""
    import uvicorn

    uvicorn.run(
        "server.app:asgi_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
    )


@main.group()
def db() -> None:
    """Database migrations (the core's history plus each enabled plugin's branch)."""


def _plugins():  # type: ignore[no-untyped-def]
    from server.plugins import load_plugins

    return load_plugins(get_settings())


@db.command()
@click.argument("revision", default="heads")
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: every head)."""
    from server import migrate

    settings = get_settings()
    migrate.upgrade(settings.database_url, revision, _plugins())
    click.echo(f"database at {', '.join(sorted(migrate.current(settings.database_url)))}")


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. ``base`` or ``-1``)."""
    from server import migrate

    settings = get_settings()
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
def schema_export() -> None:
    """Print the SDL of the schema this configuration builds."""
    from schema.assembly import build_schema

    settings = get_settings()
    sys.stdout.write(build_schema(_plugins(), settings).as_str() + "\n")


if __name__ == "__main__":
    main()
