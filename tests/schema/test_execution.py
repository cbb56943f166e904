"""The executor reads leaf fields in one step, with the answers and errors of graphql-core's
general path."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry import relay
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.direct_resolvers import call_directly
from schema.execution import ShopExecutionContext
from server.config import Settings
from server.plugins import load_plugins


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Broken:
    """An attribute that fails to read (a data descriptor: the instance's value is ignored)."""

    def __get__(self, obj: object, owner: type) -> Any:
        if obj is None:
            return self
        raise RuntimeError("cannot read this")

    def __set__(self, obj: object, value: Any) -> None:
        raise AttributeError("read-only")


@strawberry.type
class Thing(relay.Node):
    code: relay.NodeID[int]
    name: str
    maybe: str | None
    colour: Colour
    seen_at: datetime
    count: int
    must: str


class BrokenThing(Thing):
    name = Broken()  # type: ignore[assignment]


def _things() -> list[Thing]:
    at = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    return [
        Thing(code=1, name="tea", maybe=None, colour=Colour.RED, seen_at=at, count=3, must="x"),
        Thing(code=2, name="cup", maybe="yes", colour=Colour.BLUE, seen_at=at, count=0, must="y"),
    ]


BAD: dict[str, Any] = {}


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        things = _things()
        for attr, value in BAD.items():
            object.__setattr__(things[1], attr, value)
        return things

    @strawberry.field
    def broken(self) -> Thing | None:
        thing = _things()[0]
        thing.__class__ = BrokenThing
        return thing


QUERY = "{ things { id name maybe colour seenAt count must } }"


def _schemas(**kwargs: Any) -> tuple[strawberry.Schema, strawberry.Schema]:
    general = strawberry.Schema(query=Query, **kwargs)
    shortcut = strawberry.Schema(
        query=Query, execution_context_class=ShopExecutionContext, **kwargs
    )
    call_directly(general)
    call_directly(shortcut)
    return general, shortcut


@pytest.fixture
def general_path_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fields that went through graphql-core's general path."""
    calls: list[str] = []
    execute_field = StrawberryGraphQLCoreExecutionContext.execute_field

    def counted(self: Any, parent_type: Any, source: Any, details: Any, *args: Any) -> Any:
        calls.append(f"{parent_type.name}.{details[0].node.name.value}")
        return execute_field(self, parent_type, source, details, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counted)
    return calls


async def test_leaf_fields_answer_as_the_general_path_does(general_path_calls: list[str]) -> None:
    general, shortcut = _schemas()
    expected = await general.execute(QUERY)
    general_path_calls.clear()
    got = await shortcut.execute(QUERY)
    assert expected.errors is None and got.errors is None
    assert got.data == expected.data
    assert got.data is not None and got.data["things"][0] == {
        "id": str(relay.GlobalID("Thing", "1")),
        "name": "tea",
        "maybe": None,
        "colour": "RED",
        "seenAt": "2026-05-01T08:30:00+00:00",
        "count": 3,
        "must": "x",
    }
    # Only the list field itself took the general path; every leaf was read directly.
    assert general_path_calls == ["Query.things"]


@pytest.mark.parametrize(
    ("attr", "value"),
    [
        ("must", None),  # null for a non-null field
        ("count", "many"),  # a value the scalar cannot serialize
        ("colour", "green"),  # not a member of the enum
    ],
)
async def test_a_leaf_that_fails_gets_the_general_paths_error(
    attr: str, value: Any, general_path_calls: list[str]
) -> None:
    general, shortcut = _schemas()
    BAD[attr] = value
    try:
        expected = await general.execute(QUERY)
        general_path_calls.clear()
        got = await shortcut.execute(QUERY)
    finally:
        BAD.clear()
    assert got.errors is not None and expected.errors is not None
    assert [e.formatted for e in got.errors] == [e.formatted for e in expected.errors]
    assert got.data == expected.data
    assert f"Thing.{attr}" in general_path_calls


async def test_an_attribute_that_raises_is_reported_with_its_path() -> None:
    general, shortcut = _schemas()
    query = "{ broken { name count } }"
    expected, got = await general.execute(query), await shortcut.execute(query)
    assert got.errors is not None and len(got.errors) == 1
    assert got.errors[0].message == "cannot read this"
    assert got.errors[0].path == ["broken", "name"]
    assert got.data == expected.data == {"broken": None}


class CountResolves(SchemaExtension):
    seen: list[str] = []

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        CountResolves.seen.append(info.field_name)
        return _next(root, info, *args, **kwargs)


async def test_resolve_middleware_sees_every_leaf() -> None:
    _, shortcut = _schemas(extensions=[CountResolves])
    CountResolves.seen = []
    result = await shortcut.execute("{ things { name count } }")
    assert result.errors is None
    assert CountResolves.seen.count("name") == 2
    assert CountResolves.seen.count("count") == 2


def test_the_shop_schema_reads_its_leaves_directly() -> None:
    from schema.assembly import build_schema

    schema = build_schema(load_plugins(Settings(plugins="")))
    assert schema.execution_context_class is ShopExecutionContext
    fields = schema._schema.type_map["Product"].fields  # type: ignore[union-attr]
    assert getattr(fields["sku"].resolve, "leaf", None) is not None
    assert getattr(fields["id"].resolve, "leaf", None) is not None
    # An object-typed field and one with arguments keep the general path.
    assert getattr(fields["category"].resolve, "leaf", None) is None
    assert getattr(fields["priceBreakdown"].resolve, "leaf", None) is None
