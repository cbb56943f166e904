"""The loyalty plugin's command line: ``shopgraph loyalty …`` (the ``cli_commands`` hook)."""

from __future__ import annotations

import click

from server.plugin import DomainError, run_in_session
from shopgraph_loyalty import service


@click.group("loyalty")
def loyalty() -> None:
    """Loyalty points."""


@loyalty.command("balance")
@click.argument("email")
def balance(email: str) -> None:
    """The points of the customer with EMAIL."""
    try:
        points = run_in_session(lambda session: service.balance_of(session, email))
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{points} points")
