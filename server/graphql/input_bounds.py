"""Length bounds on what a client sends, checked before anything runs.

Every ``String`` and ``ID`` argument and input-object field, at any depth and inside lists,
has a maximum length in characters: ``DEFAULT_MAX_LENGTH``, every ``ID`` ``ID_MAX_LENGTH``,
and a tighter bound where the domain has one, by the argument's or field's name wherever it
appears (``BOUNDS_BY_NAME``; plugins' fields of these names included). A list given as input
holds at most ``MAX_LIST_ITEMS`` items (an import's ``rows``: ``LIST_BOUNDS_BY_NAME``) and a
``JSON`` value serializes to at most ``MAX_JSON_LENGTH`` characters. docs/security.md lists them all.

The check runs after validation and before execution, on the selected operation's arguments:
what its literals hold is worked out once per document, and each request's variables are
checked where they land (a variable used as ``prefix`` has the bound of ``prefix``). A value past its bound refuses the whole operation with a
GraphQL error (``extensions.code`` ``STRING_TOO_LONG``, ``LIST_TOO_LONG`` or
``JSON_TOO_LARGE``, or ``NUL_CHARACTER`` for text holding U+0000, naming the field, the argument path and the bound): no resolver runs,
nothing is written. The services keep their own, finer rules (a product name of at most 200
characters, an address of at most 20 …) and answer them with typed errors as before; these
bounds only keep absurd input from reaching the database, the search index or a regular
expression at all.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInputType,
    GraphQLSchema,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    Undefined,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    is_input_object_type,
    is_list_type,
    type_from_ast,
    value_from_ast,
    value_from_ast_untyped,
    visit,
)
from strawberry.extensions import SchemaExtension

from server.graphql.limits import refuse
from server.graphql.structure import graphql_structure

STRING_TOO_LONG = "STRING_TOO_LONG"
# Text with U+0000 in it: PostgreSQL's text types cannot hold it (the driver would fail), and
# no name, address or search a person types contains it.
NUL_CHARACTER = "NUL_CHARACTER"
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
CSV_MAX_LENGTH = 1_048_576  # an import's CSV text: 1 Mi characters (the service counts bytes)
MAX_LIST_ITEMS = 100
# Lists allowed to be longer, by their GraphQL name: the rows of an import.
LIST_BOUNDS_BY_NAME: dict[str, int] = {"rows": 10_000}
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
    "csv": CSV_MAX_LENGTH,
}
_MAX_ERRORS = 10


def string_bound(name: str, type_name: str) -> int:
    """The most characters a ``type_name`` (String or ID) value named ``name`` may have."""
    if type_name == "ID":
        return ID_MAX_LENGTH
    return BOUNDS_BY_NAME.get(name, DEFAULT_MAX_LENGTH)


def list_bound(name: str) -> int:
    """The most items a list named ``name`` may hold."""
    return LIST_BOUNDS_BY_NAME.get(name, MAX_LIST_ITEMS)


class _Kinds:
    """Which input types of a schema can hold a bounded value (a string, a list, JSON)."""

    def __init__(self) -> None:
        self._named: dict[str, bool] = {}

    def bounded(self, tp: GraphQLInputType) -> bool:
        inner = get_nullable_type(tp)
        if is_list_type(inner):
            return True
        named: Any = get_named_type(inner)
        found = self._named.get(named.name)
        if found is None:
            self._named[named.name] = False  # a recursive input type, while it is worked out
            if is_input_object_type(named):
                found = any(self.bounded(f.type) for f in named.fields.values())
            else:
                found = named.name in ("String", "ID", "JSON")
            self._named[named.name] = found
        return found


@dataclass(frozen=True, slots=True)
class _Usage:
    """A variable used in an argument: its value is checked where it lands."""

    variable: str
    type: GraphQLInputType  # the type of the place it lands in
    path: str
    name: str
    coordinate: str
    node: ArgumentNode
    default: Any  # the variable's default in the document, or None


class _Plan:
    """What one operation of a document needs checked: the violations its literals hold
    (found once) and where its variables land (checked per request)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        kinds: _Kinds,
    ) -> None:
        self.schema = schema
        self.document = document
        self.kinds = kinds
        self.static_errors: list[GraphQLError] = []
        self.usages: list[_Usage] = []
        self.defaults: dict[str, Any] = {}
        operation = _operation(document, operation_name)
        if operation is None:
            return
        self.defaults = {
            d.variable.name.value: _default(schema, d) for d in operation.variable_definitions or ()
        }
        for coordinate, field, node in self._fields(operation):
            for argument in node.arguments or ():
                arg = field.args.get(argument.name.value)
                if arg is not None and kinds.bounded(arg.type):
                    name = argument.name.value
                    self._walk(argument.value, arg.type, name, name, coordinate, argument)

    def _fields(
        self, operation: OperationDefinitionNode
    ) -> list[tuple[str, GraphQLField, FieldNode]]:
        """The operation's fields (its fragments' included) with arguments."""
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
                if field is not None and parent is not None and node.arguments:
                    found.append((f"{parent.name}.{node.name.value}", field, node))

        finder = TypeInfoVisitor(type_info, Finder())
        for definition in [operation, *_used_fragments(operation, fragments)]:
            visit(definition, finder)
        return found

    def _walk(
        self,
        node: ValueNode,
        tp: GraphQLInputType,
        path: str,
        name: str,
        coordinate: str,
        argument: ArgumentNode,
    ) -> None:
        if isinstance(node, VariableNode):
            variable = node.name.value
            default = self.defaults.get(variable)
            self.usages.append(_Usage(variable, tp, path, name, coordinate, argument, default))
            return
        if isinstance(node, NullValueNode):
            return
        inner: Any = get_nullable_type(tp)
        if is_list_type(inner):
            items = list(node.values) if isinstance(node, ListValueNode) else [node]
            most = list_bound(name)
            if len(items) > most:
                self._refuse(LIST_TOO_LONG, coordinate, path, most, len(items), argument)
            for i, item in enumerate(items[:most]):
                self._walk(item, inner.of_type, f"{path}.{i}", name, coordinate, argument)
        elif is_input_object_type(inner):
            if isinstance(node, ObjectValueNode):
                for given in node.fields:
                    field = inner.fields.get(given.name.value)
                    if field is not None and self.kinds.bounded(field.type):
                        key = given.name.value
                        self._walk(
                            given.value, field.type, f"{path}.{key}", key, coordinate, argument
                        )
        elif inner.name == "JSON":
            size = _json_size(value_from_ast_untyped(node))
            if size > MAX_JSON_LENGTH:
                self._refuse(JSON_TOO_LARGE, coordinate, path, MAX_JSON_LENGTH, size, argument)
        elif isinstance(node, StringValueNode):
            bound = string_bound(name, inner.name)
            if len(node.value) > bound:
                self._refuse(STRING_TOO_LONG, coordinate, path, bound, len(node.value), argument)
            elif "\x00" in node.value:
                self._refuse(NUL_CHARACTER, coordinate, path, 0, 1, argument)

    def _refuse(
        self, code: str, coordinate: str, path: str, bound: int, size: int, node: ArgumentNode
    ) -> None:
        if len(self.static_errors) < _MAX_ERRORS:
            self.static_errors.append(_error(code, coordinate, path, bound, size, node))

    def check(self, variables: Mapping[str, Any] | None) -> list[GraphQLError]:
        errors = list(self.static_errors)
        given = variables or {}
        for usage in self.usages:
            if len(errors) >= _MAX_ERRORS:
                break
            value = given.get(usage.variable, usage.default)
            for code, path, bound, size in _violations(usage.type, value, usage.path, usage.name):
                errors.append(_error(code, usage.coordinate, path, bound, size, usage.node))
        return errors[:_MAX_ERRORS]


def _default(schema: GraphQLSchema, definition: VariableDefinitionNode) -> Any:
    """A variable's default value in the document, as a client's value would be."""
    if definition.default_value is None:
        return None
    tp = type_from_ast(schema, definition.type)
    value = value_from_ast(definition.default_value, tp) if tp is not None else Undefined  # type: ignore[arg-type]  # a valid document types its variables with input types
    return None if value is Undefined else value


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


def _violations(
    tp: GraphQLInputType, value: Any, path: str, name: str
) -> Iterator[tuple[str, str, int, int]]:
    """(code, argument path, bound, size) of every bounded value in a variable's value.

    The value is what the client sent: a shape that does not fit ``tp`` is left to the
    variables' coercion, which refuses it.
    """
    pending: deque[tuple[Any, Any, str, str]] = deque([(tp, value, path, name)])
    while pending:
        tp, value, path, name = pending.popleft()
        if value is None:
            continue
        inner: Any = get_nullable_type(tp)
        if is_list_type(inner):
            items = value if isinstance(value, list) else [value]
            most = list_bound(name)
            if len(items) > most:
                yield LIST_TOO_LONG, path, most, len(items)
            pending.extend(
                (inner.of_type, item, f"{path}.{i}", name) for i, item in enumerate(items[:most])
            )
        elif is_input_object_type(inner):
            if isinstance(value, Mapping):
                for key, item in value.items():
                    field = inner.fields.get(key)
                    if field is not None:
                        pending.append((field.type, item, f"{path}.{key}", key))
        elif inner.name == "JSON":
            size = _json_size(value)
            if size > MAX_JSON_LENGTH:
                yield JSON_TOO_LARGE, path, MAX_JSON_LENGTH, size
        elif isinstance(value, str) and inner.name in ("String", "ID"):
            bound = string_bound(name, inner.name)
            if len(value) > bound:
                yield STRING_TOO_LONG, path, bound, len(value)
            elif "\x00" in value:
                yield NUL_CHARACTER, path, 0, 1


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
    if code == NUL_CHARACTER:
        return GraphQLError(
            f"{path} of {coordinate} contains the NUL character (U+0000), which text may not hold.",
            nodes=[node],
            extensions={"code": code, "field": coordinate, "argument": path},
        )
    unit, adjective, key = _WHAT[code]
    return GraphQLError(
        f"{path} of {coordinate} is too {adjective}: {size} {unit}, at most {bound} allowed.",
        nodes=[node],
        extensions={"code": code, "field": coordinate, "argument": path, key: bound},
    )


class _Plans:
    """The plans of one schema's operations, per (query text, operation name); the least
    recently used is dropped first.

    Types, arguments and input fields are read from the schema's graphql-core structure
    (server/graphql/structure.py): the same names and types.
    """

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[str, str | None], _Plan] = OrderedDict()
        self._schema: tuple[Any, GraphQLSchema, _Kinds] | None = None
        # Apps served from threads of one process may share the schema, and so these plans.
        self._lock = threading.Lock()

    def schema(self, strawberry_schema: Any) -> tuple[GraphQLSchema, _Kinds]:
        if self._schema is None or self._schema[0] is not strawberry_schema:
            built = graphql_structure(strawberry_schema)
            self._schema = (strawberry_schema, built, _Kinds())
        return self._schema[1], self._schema[2]

    def get(
        self,
        strawberry_schema: Any,
        query: str | None,
        document: DocumentNode,
        operation_name: str | None,
    ) -> _Plan:
        schema, kinds = self.schema(strawberry_schema)
        if query is None:
            return _Plan(schema, document, operation_name, kinds)
        key = (query, operation_name)
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found.document is document and found.schema is schema:
                self._entries.move_to_end(key)
                return found
        plan = _Plan(schema, document, operation_name, kinds)
        with self._lock:
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
                refuse(context, errors)
        yield


def input_bounds() -> Callable[[], SchemaExtension]:
    """The extension factory of one schema: its plans are shared, the extension is per request."""
    plans = _Plans()
    return lambda: InputBounds(plans)
