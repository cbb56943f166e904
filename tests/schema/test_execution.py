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


def _schemas(query: type = Query, **kwargs: Any) -> tuple[strawberry.Schema, strawberry.Schema]:
    """The same schema on graphql-core's general path and on the shop's executor."""
    general = strawberry.Schema(query=query, **kwargs)
    shortcut = strawberry.Schema(
        query=query, execution_context_class=ShopExecutionContext, **kwargs
    )
    call_directly(general)
    call_directly(shortcut)
    return general, shortcut


def _assert_failed_alike(expected: Any, got: Any) -> None:
    """Both paths failed, with the same errors (message, path, locations) and the same data."""
    assert got.errors is not None and expected.errors is not None
    assert [e.formatted for e in got.errors] == [e.formatted for e in expected.errors]
    assert got.data == expected.data


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
    _assert_failed_alike(expected, got)
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


# ---- object values ---------------------------------------------------------------------------


@strawberry.interface
class Named:
    text: str


@strawberry.type
class Label(Named):  # an interface's implementation: strawberry checks values' types
    weight: int


@strawberry.type
class Box:
    name: str
    label: Label  # a non-null object read off the box
    spare: Label | None  # a nullable one


class NotALabel:
    text = "impostor"
    weight = 1


BOX_CHANGES: dict[str, Any] = {}


def _boxes() -> list[Box]:
    boxes = [
        Box(name="a", label=Label(text="tea", weight=3), spare=None),
        Box(name="b", label=Label(text="cup", weight=1), spare=Label(text="lid", weight=2)),
    ]
    for path, value in BOX_CHANGES.items():
        owner: Any = boxes[1]
        *parents, attr = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        object.__setattr__(owner, attr, value)
    return boxes


@strawberry.type
class BoxQuery:
    @strawberry.field
    def boxes(self) -> list[Box] | None:
        return _boxes()


BOX_QUERY = "{ boxes { name label { text weight } spare { text weight } } }"


async def test_objects_complete_as_on_the_general_path(general_path_calls: list[str]) -> None:
    general, shortcut = _schemas(BoxQuery)
    expected = await general.execute(BOX_QUERY)
    general_path_calls.clear()
    got = await shortcut.execute(BOX_QUERY)
    assert got.errors is None and expected.errors is None
    assert got.data == expected.data
    assert got.data == {
        "boxes": [
            {"name": "a", "label": {"text": "tea", "weight": 3}, "spare": None},
            {
                "name": "b",
                "label": {"text": "cup", "weight": 1},
                "spare": {"text": "lid", "weight": 2},
            },
        ]
    }
    # The present labels were read off their boxes and completed without graphql-core's
    # general path; the null spare took it (it answers null for a nullable field).
    assert general_path_calls == ["BoxQuery.boxes", "Box.spare"]


@pytest.mark.parametrize(
    "change",
    [
        {"spare.weight": "heavy"},  # fails inside a nullable object: that object becomes null
        {"label.weight": "heavy"},  # inside a non-null one: the null reaches the list item
        {"label": None},  # null for a non-null object
        {"spare": NotALabel()},  # not a Label: strawberry's type check refuses it
        {"label": NotALabel()},
    ],
)
async def test_a_failing_object_gets_the_general_paths_error_and_nulls(
    change: dict[str, Any],
) -> None:
    general, shortcut = _schemas(BoxQuery)
    BOX_CHANGES.update(change)
    try:
        expected = await general.execute(BOX_QUERY)
        got = await shortcut.execute(BOX_QUERY)
    finally:
        BOX_CHANGES.clear()
    _assert_failed_alike(expected, got)


def test_only_strawberrys_own_type_check_is_skipped_for_the_info() -> None:
    from graphql import GraphQLField, GraphQLNonNull, GraphQLObjectType, GraphQLString

    from schema.execution import object_shortcut

    _, shortcut = _schemas(BoxQuery)
    label = shortcut._schema.type_map["Label"]
    assert object_shortcut(label) is label
    assert object_shortcut(GraphQLNonNull(label)) is label  # type: ignore[arg-type]
    # A hand-written is_type_of may use the info or await: completed on the general path.
    custom = GraphQLObjectType(
        "Custom", {"a": GraphQLField(GraphQLString)}, is_type_of=lambda value, info: True
    )
    assert object_shortcut(custom) is None
    assert object_shortcut(GraphQLString) is None
