"""Refused and invalid requests are the client's business: they are not logged as server
errors with a stack trace. An unexpected exception still is."""

from __future__ import annotations

import logging

import pytest
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import StaffRole
from server.plugins import PluginRuntime
from tests.plugins.fakes import FakePlugin
from tests.support.accounts import make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import only_plugins

LOGGER = "strawberry.execution"


@strawberry.type
class BrokenQueries:
    @strawberry.field
    def broken(self) -> int:
        raise RuntimeError("the disk is on fire")


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings, FakePlugin("broken", graphql_queries=lambda: [BrokenQueries]))


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


async def test_client_errors_are_not_logged_as_errors_but_failures_are(
    gql: GraphQLClient,
    session: AsyncSession,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    support = gql.as_(token_for(settings, await make_staff(session, role=StaffRole.SUPPORT)))
    refused = await support.execute("{ plugins { name } }")
    unknown_field = await gql.execute("{ nonsense }")
    bad_page = await gql.execute("{ products(first: 1000) { totalCount } }")
    codes = [
        refused["errors"][0]["extensions"]["code"],
        "errors" in unknown_field,
        "first must be between" in bad_page["errors"][0]["message"],
    ]
    assert codes == ["FORBIDDEN", True, True]
    quiet = logged(caplog)
    assert len(quiet) == 3
    assert all(r.levelno == logging.DEBUG and not r.exc_info for r in quiet), quiet
    assert "FORBIDDEN" in quiet[0].getMessage()

    caplog.clear()
    failed = await gql.execute("{ broken }")
    assert failed["errors"][0]["message"] == "the disk is on fire"
    [record] = logged(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
