"""Argument-free resolvers are called straight from the executor, with the same result."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from strawberry import relay
from strawberry.permission import BasePermission
from strawberry.resolvers import is_default_resolver

from schema.direct_resolvers import call_directly
from server.config import Settings
from server.plugins import load_plugins


class Refuse(BasePermission):
    message = "refused"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Item:
    n: int

    @strawberry.field
    def doubled(self) -> int:
        return self.n * 2

    @strawberry.field
    def path(self, info: strawberry.Info) -> str:
        return f"{info.path.key}:{info.context['who']}"

    @strawberry.field
    @staticmethod
    def from_root(root: Item) -> int:
        return root.n + 1

    @strawberry.field
    async def later(self) -> int:
        return -self.n

    @strawberry.field
    def times(self, k: int) -> int:
        return self.n * k

    @strawberry.field(permission_classes=[Refuse])
    def secret(self) -> int:
        return 42


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(n=1), Item(n=5)]


@strawberry.type
class Plain(relay.Node):
    code: relay.NodeID[int]


@strawberry.type
class Custom(relay.Node):
    code: relay.NodeID[int]

    @classmethod
    def resolve_id(cls, root: Custom, *, info: strawberry.Info) -> str:
        return f"c{root.code}"


@strawberry.type
class NodeQuery:
    @strawberry.field
    def plain(self) -> Plain:
        return Plain(code=7)

    @strawberry.field
    def custom(self) -> Custom:
        return Custom(code=7)


QUERY = "{ items { n doubled path fromRoot later times(k: 3) } }"


def _is_direct(schema: strawberry.Schema, type_name: str, field: str) -> bool:
    resolve = schema._schema.type_map[type_name].fields[field].resolve  # type: ignore[union-attr]
    return resolve is not None and resolve.__module__ == "schema.direct_resolvers"


async def test_direct_resolvers_answer_as_strawberry_does() -> None:
    plain = strawberry.Schema(query=Query)
    direct = strawberry.Schema(query=Query)
    # n, doubled, path, fromRoot, later, and Query.items itself.
    assert call_directly(direct) == 6
    expected = await plain.execute(QUERY, context_value={"who": "ana"})
    got = await direct.execute(QUERY, context_value={"who": "ana"})
    assert expected.errors is None and got.errors is None
    assert got.data == expected.data
    assert got.data == {
        "items": [
            {"n": 1, "doubled": 2, "path": "path:ana", "fromRoot": 2, "later": -1, "times": 3},
            {"n": 5, "doubled": 10, "path": "path:ana", "fromRoot": 6, "later": -5, "times": 15},
        ]
    }


async def test_arguments_and_permissions_keep_strawberrys_path() -> None:
    schema = strawberry.Schema(query=Query)
    call_directly(schema)
    assert _is_direct(schema, "Item", "doubled")
    assert _is_direct(schema, "Item", "n")
    assert is_default_resolver(schema._schema.type_map["Item"].fields["n"].resolve)  # type: ignore[union-attr, arg-type]
    assert not is_default_resolver(schema._schema.type_map["Item"].fields["doubled"].resolve)  # type: ignore[union-attr, arg-type]
    assert not _is_direct(schema, "Item", "times")
    assert not _is_direct(schema, "Item", "secret")
    result = await schema.execute("{ items { secret } }", context_value={"who": "ana"})
    assert result.data is None
    assert result.errors and result.errors[0].message == "refused"


async def test_a_nodes_id_is_relays_global_id() -> None:
    plain = strawberry.Schema(query=NodeQuery)
    direct = strawberry.Schema(query=NodeQuery)
    call_directly(direct)
    resolve = direct._schema.type_map["Plain"].fields["id"].resolve  # type: ignore[union-attr]
    assert resolve is not None and resolve.__name__ == "resolve_node_id"
    # A type with its own resolve_id keeps relay's resolver, which calls it.
    resolve = direct._schema.type_map["Custom"].fields["id"].resolve  # type: ignore[union-attr]
    assert resolve is not None and resolve.__name__ != "resolve_node_id"
    query = "{ plain { id } custom { id } }"
    expected, got = await plain.execute(query), await direct.execute(query)
    assert got.errors is None and got.data == expected.data
    assert got.data == {
        "plain": {"id": str(relay.GlobalID("Plain", "7"))},
        "custom": {"id": str(relay.GlobalID("Custom", "c7"))},
    }


@pytest.mark.parametrize(
    ("type_name", "field", "direct"),
    [
        ("Product", "id", True),
        ("Product", "price", True),
        ("Product", "category", True),
        ("Product", "priceBreakdown", False),  # an argument
        ("Product", "costPrice", False),  # a permission class
        ("Product", "sku", True),  # a plain attribute
    ],
)
def test_the_shop_schema_calls_its_plain_resolvers_directly(
    type_name: str, field: str, direct: bool
) -> None:
    from schema.assembly import build_schema

    schema = build_schema(load_plugins(Settings(plugins="")))
    assert _is_direct(schema, type_name, field) is direct
