"""Search suggestions over GraphQL (the suggestions themselves: server.services.search)."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError

from schema.categories import Category
from schema.products import Product
from server.graphql.context import Info
from server.services import search

# A GraphQL enum: strawberry.enum marks the class itself, and fields name that class.
strawberry.enum(search.SuggestionKind, description="What a search suggestion completes to.")


@strawberry.type(description="A completion for what a shopper is typing.")
class SearchSuggestion:
    text: str
    kind: search.SuggestionKind
    product: Product | None = strawberry.field(description="Set for PRODUCT suggestions.")
    category: Category | None = strawberry.field(description="Set for CATEGORY suggestions.")

    @classmethod
    def of(cls, found: search.Suggestion) -> SearchSuggestion:
        return cls(
            text=found.text,
            kind=found.kind,
            product=Product.from_model(found.product) if found.product is not None else None,
            category=Category.from_model(found.category) if found.category is not None else None,
        )


@strawberry.type
class SearchQueries:
    @strawberry.field(
        description="Completions for a prefix: product names, brands and category names, "
        "best first, each text once."
    )
    async def search_suggestions(
        self, info: Info, prefix: str, first: int = 10
    ) -> list[SearchSuggestion]:
        if not 1 <= first <= search.MAX_SUGGESTIONS:
            # GraphQLError is never masked: the client needs to know what to fix.
            raise GraphQLError(
                f"first must be between 1 and {search.MAX_SUGGESTIONS}",
                extensions={"code": "BAD_USER_INPUT"},
            )
        found = await info.context.db.run(search.suggestions, prefix, first)
        return [SearchSuggestion.of(s) for s in found]


QUERIES: list[type[Any]] = [SearchQueries]
MUTATIONS: list[type[Any]] = []
TYPES: list[type[Any]] = [SearchSuggestion]
