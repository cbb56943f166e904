"""graphql-core's view of a built schema's types and fields, through public APIs only.

strawberry keeps the graphql-core schema it executes to itself. What the engine needs to know
about the schema's shape (query cost, the success type of a mutation) is answered by a
graphql-core schema rebuilt from strawberry's printed SDL: the same types, fields, arguments and
defaults, without resolvers. It is built on first use and shared by every schema that prints
the same SDL (a process that builds many schemas for one plugin set builds it once).
"""

from __future__ import annotations

from functools import lru_cache
from weakref import WeakKeyDictionary

import strawberry
from graphql import GraphQLSchema, build_ast_schema, parse

_of_schema: WeakKeyDictionary[strawberry.Schema, GraphQLSchema] = WeakKeyDictionary()


@lru_cache(maxsize=16)
def _from_sdl(sdl: str) -> GraphQLSchema:
    # strawberry printed it from a schema it validated: no second validation.
    return build_ast_schema(parse(sdl, no_location=True), assume_valid=True, assume_valid_sdl=True)


def graphql_structure(schema: strawberry.Schema, sdl: str | None = None) -> GraphQLSchema:
    """The graphql-core schema with ``schema``'s types and fields (see the module's doc);
    ``sdl``, when given, is ``schema.as_str()`` already printed (printing is not cheap)."""
    found = _of_schema.get(schema)
    if found is None:
        found = _of_schema[schema] = _from_sdl(sdl if sdl is not None else schema.as_str())
    return found
