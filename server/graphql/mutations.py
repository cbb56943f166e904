"""How a mutation runs a service: one write transaction, committed or rolled back whole."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from server.db import mark_write
from server.graphql import audit
from server.graphql.context import Info
from server.graphql.errors import Error, to_graphql
from server.services import audit as audit_log
from server.services.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")


async def run_mutation(
    info: Info,
    service: Callable[Concatenate[AsyncSession, P], Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R | Error:
    """Run ``service`` in its own write transaction.

    Success commits; a DomainError rolls everything back and comes back as its typed error;
    anything else rolls back and propagates (a masked GraphQL error). After a commit the
    request's loaders are cleared, so the payload shows the data as it now is, and the
    after-commit callbacks run (event dispatch).

    When staff or an API key calls, the audit row is written here, in the same transaction as
    the change (a failure's row in a transaction of its own, after the rollback).
    """
    ctx = info.context
    session = ctx.db.session
    async with ctx.db.lock:
        if session.in_transaction():
            # End the read transaction an earlier field opened, so this one can take the
            # write lock from its first statement.
            await session.commit()
        await mark_write(session)
        actor = audit_log.ACTOR.set(
            ctx.viewer.subject if audit_log.is_audited(ctx.viewer) else None
        )
        try:
            result = await service(session, *args, **kwargs)
            await audit.write_in_transaction(info, audit.success_type_name(info))
            await session.commit()
        except DomainError as exc:
            await session.rollback()
            error = to_graphql(exc)
            await audit.write_alone(info, audit.outcome(error))
            return error
        except BaseException:
            await session.rollback()
            raise
        finally:
            audit_log.ACTOR.reset(actor)
    ctx.loaders.clear()
    callbacks, ctx.after_commit[:] = list(ctx.after_commit), []
    for callback in callbacks:
        await callback()
    return result


S = TypeVar("S")


async def mutate(
    info: Info,
    work: Callable[[AsyncSession], Awaitable[R]],
    success: Callable[[R], S],
) -> Any:
    """The one way a mutation resolver runs: ``work`` (parse the input's ids and values, call
    the service) in the request's write transaction, a DomainError raised anywhere in it as
    its typed error, and ``success`` wrapping what ``work`` returned.

    Returns the resolver's union member. Typed ``Any``: whether that member is one of the
    field's union is strawberry's check at run time, not something a type checker can see.
    """
    result = await run_mutation(info, work)
    if isinstance(result, Error):
        return result
    return success(result)


async def run_write(
    info: Info,
    service: Callable[Concatenate[AsyncSession, P], Awaitable[R]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Run ``service`` in a write transaction of its own, from a field that is not a mutation:
    what a read records as it answers (an experiment's exposure when a variant is asked for).

    Success commits; anything raised (a DomainError included, which the field answers as a
    GraphQL error) rolls back and propagates. Not audited, and the request's loaders are
    left as they are: the write is a record, not a change of what the request reads.
    """
    session = info.context.db.session
    async with info.context.db.lock:
        if session.in_transaction():
            # End the read transaction an earlier field opened, so this one can take the
            # write lock from its first statement.
            await session.commit()
        await mark_write(session)
        try:
            result = await service(session, *args, **kwargs)
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    return result
