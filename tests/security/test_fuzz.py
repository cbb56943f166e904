"""Fuzzing the GraphQL endpoint with schemathesis: generated queries and mutations for every
root field, as a staff user and as a customer, against a live server in production mode (so an
internal failure shows up as the masked "Unexpected error."), on SQLite and on PostgreSQL: the
drivers refuse different values (PostgreSQL's int4 ids, its stricter types), so a value that
one backend lets through can be an internal error on the other."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
import strawberry
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import Category, Product
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.server import LiveServer

pytestmark = pytest.mark.heavy

# Every root field, as each viewer: a few hundred requests, well under a minute.
EXAMPLES_PER_FIELD = 2
MASKED = "Unexpected error."

# shopgraph's custom scalars: well-formed values and junk (junk must be a clean client error).
_junk = st.text(max_size=12).map(nodes.String)
schemathesis.graphql.scalar(
    "Decimal",
    st.one_of(
        st.decimals(min_value=-(10**7), max_value=10**7, places=2).map(
            lambda d: nodes.String(str(d))
        ),
        _junk,
    ),
)
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
        _junk,
    ),
)
schemathesis.graphql.scalar(
    "JSON",
    st.one_of(_junk, st.integers(-1000, 1000).map(nodes.Int), st.booleans().map(nodes.Boolean)),
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Production mode masks internal errors; a bucket that never runs dry lets every example
    # execute instead of being throttled.
    return Settings(
        database_url=database_url,
        env="production",
        secret_key="fuzz-secret-0123456789-abcdefghijklmnop",
        cost_bucket_size=10_000_000,
    )


@pytest.fixture
async def tokens(session: AsyncSession, settings: Settings) -> dict[str, str]:
    category = Category(name="茶叶", slug="tea")
    session.add(category)
    await session.flush()
    session.add_all(
        Product(sku=f"F-{i}", name=f"龙井 {i}", price_amount=8800 + i, category_id=category.id)
        for i in range(3)
    )
    await session.commit()
    staff = await make_staff(session)
    customer = await make_customer(session)
    return {"staff": token_for(settings, staff), "customer": token_for(settings, customer)}


def _problem(response: requests.Response) -> str | None:
    if response.status_code >= 500:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    try:
        body: Any = response.json()
    except ValueError:
        return None if response.status_code < 500 else response.text[:500]
    errors = body.get("errors") or [] if isinstance(body, dict) else []
    masked = [e for e in errors if e.get("message") == MASKED]
    return f"masked internal error: {masked}" if masked else None


def _fuzz(
    operation: Any, who: str, token: str, url: str, http: requests.Session, problems: list[str]
) -> int:
    """Run one root field's generated examples as ``who``; return how many were sent."""
    headers = {"Authorization": f"Bearer {token}"}
    calls = 0

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_FIELD,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        nonlocal calls
        response = case.call(base_url=url, session=http, headers=headers)
        calls += 1
        problem = _problem(response)
        if problem is not None:
            problems.append(f"{who} {operation.label}: {case.body} -> {problem}")

    run()
    return calls


def test_fuzzing_finds_no_server_errors(
    live_server: LiveServer, app: Any, tokens: dict[str, str]
) -> None:
    # Production hides introspection, so the schema comes from the app's own SDL.
    schema: strawberry.Schema = app.state.shopgraph.schema
    fuzzed = schemathesis.graphql.from_file(schema.as_str())
    url = f"{live_server.url}/graphql"
    operations = [result.ok() for result in fuzzed.get_all_operations()]
    assert len(operations) > 20
    problems: list[str] = []
    calls = 0
    with requests.Session() as http:
        for operation in operations:
            for who, token in tokens.items():
                calls += _fuzz(operation, who, token, url, http, problems)

    assert calls >= 2 * len(operations)
    assert problems == [], "\n".join(problems[:20])
