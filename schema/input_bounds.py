"""Length bounds on what a client sends, checked before anything runs.

Every ``String`` and ``ID`` argument and input-object field, at any depth and inside lists,
has a maximum length in characters: ``DEFAULT_MAX_LENGTH``, every ``ID`` ``ID_MAX_LENGTH``,
and a tighter bound where the domain has one, by the argument's or field's name wherever it
appears (``BOUNDS_BY_NAME``; plugins' fields of these names included). A list given as input
holds at most ``MAX_LIST_ITEMS`` items and a ``JSON`` value serializes to at most
``MAX_JSON_LENGTH`` characters. docs/security.md lists them all.

The check runs after validation and before execution, on the selected operation's literal
arguments and coerced variables. A value past its bound refuses the whole operation with a
GraphQL error (``extensions.code`` ``STRING_TOO_LONG``, ``LIST_TOO_LONG`` or
``JSON_TOO_LARGE``, naming the field, the argument path and the bound): no resolver runs,
nothing is written. The services keep their own, finer rules (a product name of at most 200
characters, an address of at most 20 …) and answer them with typed errors as before; these
bounds only keep absurd input from reaching the database, the search index or a regular
expression at all.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInputType,
    GraphQLNamedType,
    GraphQLSchema,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    build_schema,
    get_argument_values,
    get_named_type,
    get_nullable_type,
    get_variable_values,
    is_input_object_type,
    is_list_type,
    visit,
)
from strawberry.extensions import SchemaExtension

STRING_TOO_LONG = "STRING_TOO_LONG"
LIST_TOO_LONG = "LIST_TOO_LONG"
JSON_TOO_LARGE = "JSON_TOO_LARGE"

DEFAULT_MAX_LENGTH = 2000  # any String: notes, reasons, descriptions, cursors …
ID_MAX_LENGTH = 100  # any ID: a global id is under 50 characters
SEARCH_TEXT_MAX_LENGTH = 200
NAME_MAX_LENGTH = 200
CODE_MAX_LENGTH = 100
TOKEN_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 254  # RFC 5321's longest address
PASSWORD_MAX_LENGTH = 256
MAX_LIST_ITEMS = 100
MAX_JSON_LENGTH = 10_000

_SEARCH_TEXTS = ("search", "prefix", "query")
_NAMES = (
    "name",
    "firstName",
    "lastName",
    "recipientName",
    "brand",
    "carrier",
    "occupation",
    "slug",
    "street",
    "district",
    "city",
    "province",
    "region",
    "trackingNumber",
)
_CODES = (
    "sku",
    "code",
    "currency",
    "gateway",
    "shippingMethod",
    "phone",
    "postalCode",
    "gender",
    "ageBand",
    "tag",
    "tags",
    "interests",
    "scopes",
    "plugin",
    "eventName",
    "mutation",
    "result",
)
_TOKENS = ("cartToken", "token", "refreshToken", "sessionId", "idempotencyKey")
# The tighter bound of a String argument or input field, by its GraphQL name.
BOUNDS_BY_NAME: dict[str, int] = {
    **dict.fromkeys(_SEARCH_TEXTS, SEARCH_TEXT_MAX_LENGTH),
    **dict.fromkeys(_NAMES, NAME_MAX_LENGTH),
    **dict.fromkeys(_CODES, CODE_MAX_LENGTH),
    **dict.fromkeys(_TOKENS, TOKEN_MAX_LENGTH),
    "email": EMAIL_MAX_LENGTH,
    "password": PASSWORD_MAX_LENGTH,
}
_MAX_ERRORS = 10


def string_bound(name: str, type_name: str) -> int:
    """The most characters a ``type_name`` (String or ID) value named ``name`` may have."""
    if type_name == "ID":
        return ID_MAX_LENGTH
    return BOUNDS_BY_NAME.get(name, DEFAULT_MAX_LENGTH)


def _carries_bounds(tp: GraphQLInputType, seen: set[str] | None = None) -> bool:
    """Whether a value of ``tp`` can hold anything bounded (a string, a list, JSON)."""
    inner = get_nullable_type(tp)  # type: ignore[type-var]
    if is_list_type(inner):
        return True
    named: GraphQLNamedType = get_named_type(inner)  # type: ignore[assignment]
    if is_input_object_type(named):
        seen = seen if seen is not None else set()
        if named.name in seen:
            return False
        seen.add(named.name)
        fields = named.fields  # type: ignore[attr-defined]
        return any(_carries_bounds(f.type, seen) for f in fields.values())
    return named.name in ("String", "ID", "JSON")


@dataclass(frozen=True, slots=True)
class _Site:
    """A field of the operation whose arguments can hold bounded values."""

    coordinate: str  # Type.field
    field: GraphQLField
    node: FieldNode
    static_errors: list[GraphQLError] | None  # known once when no argument uses a variable


class _Plan:
    """The sites of one operation of a document: found once, checked per request."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
    ) -> None:
        self.schema = schema
        self.document = document
        self.operation = _operation(document, operation_name)
        self.sites: list[_Site] = []
        if self.operation is not None:
            self.sites = list(self._find_sites(self.operation))

    def _find_sites(self, operation: OperationDefinitionNode) -> Iterator[_Site]:
        fragments = {
            d.name.value: d
            for d in self.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        found: list[tuple[str, GraphQLField, FieldNode]] = []
        type_info = TypeInfo(self.schema)

        class Finder(Visitor):
            def enter_field(self, node: FieldNode, *_: Any) -> None:
                field = type_info.get_field_def()
                parent = type_info.get_parent_type()
                if field is None or parent is None or not node.arguments:
                    return
                if any(_carries_bounds(arg.type) for arg in field.args.values()):
                    found.append((f"{parent.name}.{node.name.value}", field, node))

        finder = TypeInfoVisitor(type_info, Finder())
        for definition in [operation, *_used_fragments(operation, fragments)]:
            visit(definition, finder)
        for coordinate, field, node in found:
            static = None
            if not any(_has_variable(arg) for arg in node.arguments):
                static = _check_field(coordinate, field, node, None)
            yield _Site(coordinate, field, node, static)

    def check(self, variables: Mapping[str, Any] | None) -> list[GraphQLError]:
        if not self.sites or self.operation is None:
            return []
        coerced: Any = None
        if any(site.static_errors is None for site in self.sites):
            coerced = get_variable_values(
                self.schema, self.operation.variable_definitions or (), dict(variables or {})
            )
            if isinstance(coerced, list):
                return []  # execution reports the variables it cannot coerce
        errors: list[GraphQLError] = []
        for site in self.sites:
            if site.static_errors is not None:
                errors.extend(site.static_errors)
            else:
                errors.extend(_check_field(site.coordinate, site.field, site.node, coerced))
            if len(errors) >= _MAX_ERRORS:
                break
        return errors[:_MAX_ERRORS]


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def _used_fragments(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> list[FragmentDefinitionNode]:
    """The fragments ``operation`` spreads, directly or through other fragments."""
    used: dict[str, FragmentDefinitionNode] = {}
    pending: list[Any] = [operation]

    class Spreads(Visitor):
        def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
            name = node.name.value
            if name not in used and name in fragments:
                used[name] = fragments[name]
                pending.append(fragments[name])

    spreads = Spreads()
    while pending:
        visit(pending.pop(), spreads)
    return list(used.values())


def _has_variable(argument: ArgumentNode) -> bool:
    found = False

    class Variables(Visitor):
        def enter_variable(self, node: VariableNode, *_: Any) -> Any:
            nonlocal found
            found = True
            return Visitor.BREAK

    visit(argument, Variables())
    return found


def _check_field(
    coordinate: str, field: GraphQLField, node: FieldNode, variables: Any
) -> list[GraphQLError]:
    try:
        values = get_argument_values(field, node, variables)
    except GraphQLError:
        return []  # execution reports the argument it cannot coerce
    arguments = {a.name.value: a for a in node.arguments or ()}
    errors: list[GraphQLError] = []
    for name, arg in field.args.items():
        value = values.get(arg.out_name or name)
        if value is None or not _carries_bounds(arg.type):
            continue
        for code, path, bound, size in _violations(arg.type, value, name):
            errors.append(_error(code, coordinate, path, bound, size, arguments.get(name) or node))
            if len(errors) >= _MAX_ERRORS:
                return errors
    return errors


def _violations(tp: GraphQLInputType, value: Any, name: str) -> Iterator[tuple[str, str, int, int]]:
    """(code, argument path, bound, size) of every bounded value past its bound."""
    pending: deque[tuple[Any, Any, str, str]] = deque([(tp, value, name, name)])
    while pending:
        tp, value, path, name = pending.popleft()
        if value is None:
            continue
        inner = get_nullable_type(tp)
        if is_list_type(inner):
            items = value if isinstance(value, list) else [value]
            if len(items) > MAX_LIST_ITEMS:
                yield LIST_TOO_LONG, path, MAX_LIST_ITEMS, len(items)
            item_type = inner.of_type  # type: ignore[attr-defined]
            pending.extend(
                (item_type, item, f"{path}.{i}", name)
                for i, item in enumerate(items[:MAX_LIST_ITEMS])
            )
        elif is_input_object_type(inner):
            if not isinstance(value, Mapping):
                continue
            for field_name, field in inner.fields.items():  # type: ignore[attr-defined]
                key = field.out_name or field_name
                if key in value and _carries_bounds(field.type):
                    pending.append((field.type, value[key], f"{path}.{field_name}", field_name))
        elif inner.name == "JSON":  # type: ignore[attr-defined]
            size = _json_size(value)
            if size > MAX_JSON_LENGTH:
                yield JSON_TOO_LARGE, path, MAX_JSON_LENGTH, size
        elif isinstance(value, str):
            bound = string_bound(name, inner.name)  # type: ignore[attr-defined]
            if len(value) > bound:
                yield STRING_TOO_LONG, path, bound, len(value)


def _json_size(value: Any) -> int:
    try:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))
    except (ValueError, TypeError, RecursionError):
        return MAX_JSON_LENGTH + 1  # not even serializable: refused as too large


# code: (unit, adjective, the extension that holds the bound)
_WHAT = {
    STRING_TOO_LONG: ("characters", "long", "maxLength"),
    LIST_TOO_LONG: ("items", "long", "maxItems"),
    JSON_TOO_LARGE: ("characters", "large", "maxLength"),
}


def _error(code: str, coordinate: str, path: str, bound: int, size: int, node: Any) -> GraphQLError:
    unit, adjective, key = _WHAT[code]
    return GraphQLError(
        f"{path} of {coordinate} is too {adjective}: {size} {unit}, at most {bound} allowed.",
        nodes=[node],
        extensions={"code": code, "field": coordinate, "argument": path, key: bound},
    )


class _Plans:
    """The plans of one schema's operations, per (query text, operation name); the least
    recently used is dropped first.

    Types, arguments and input fields are read from a graphql-core schema built from the
    strawberry schema's SDL (its public form): same names and types, and plain values (input
    objects as dicts) when arguments are coerced.
    """

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[str, str | None], _Plan] = OrderedDict()
        self._schema: tuple[Any, GraphQLSchema] | None = None

    def schema(self, strawberry_schema: Any) -> GraphQLSchema:
        if self._schema is None or self._schema[0] is not strawberry_schema:
            self._schema = (strawberry_schema, build_schema(strawberry_schema.as_str()))
        return self._schema[1]

    def get(
        self,
        strawberry_schema: Any,
        query: str | None,
        document: DocumentNode,
        operation_name: str | None,
    ) -> _Plan:
        schema = self.schema(strawberry_schema)
        if query is None:
            return _Plan(schema, document, operation_name)
        key = (query, operation_name)
        found = self._entries.get(key)
        if found is not None and found.document is document and found.schema is schema:
            self._entries.move_to_end(key)
            return found
        plan = _Plan(schema, document, operation_name)
        self._entries[key] = plan
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return plan


class InputBounds(SchemaExtension):
    """Refuses an operation whose arguments hold a value past its bound, before it runs."""

    def __init__(self, plans: _Plans) -> None:
        self.plans = plans

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None:
            plan = self.plans.get(context.schema, context.query, document, context.operation_name)
            errors = plan.check(context.variables)
            if errors:
                context.result = ExecutionResult(data=None, errors=errors)
        yield


def input_bounds() -> Callable[[], SchemaExtension]:
    """The extension factory of one schema: its plans are shared, the extension is per request."""
    plans = _Plans()
    return lambda: InputBounds(plans)
