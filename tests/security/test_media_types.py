"""Content negotiation for GraphQL responses."""

from __future__ import annotations

import pytest

from server.http import APPLICATION_JSON, GRAPHQL_RESPONSE_JSON, response_media_type


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, APPLICATION_JSON),
        ("", APPLICATION_JSON),
        ("*/*", APPLICATION_JSON),
        ("application/json", APPLICATION_JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json;q=0.5", APPLICATION_JSON),
        ("application/graphql-response+json;q=0", APPLICATION_JSON),
        ("text/html, application/graphql-response+json;charset=utf-8", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json;q=junk, application/json", APPLICATION_JSON),
    ],
)
def test_response_media_type(accept: str | None, expected: str) -> None:
    assert response_media_type(accept) == expected
