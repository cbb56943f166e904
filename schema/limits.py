"""Request limits: depth, aliases, tokens, query cost with per-client throttling, and the
production-mode rules (no introspection, no field suggestions, masked unexpected errors).

Everything here runs on the parsed, cached document: validation rules are built once per
schema (so ``ValidationCache`` keeps hitting), and the cost is one walk over the operation's
selections before execution plus one walk over the returned data after it.

Cost model (Shopify's): a scalar or enum field costs 0, an object 1, a connection 2 plus its
page size (``first``/``last``, else the default page size) times the cost of one node; edges
are free wrappers. A mutation field costs 10. A plain list costs its ``first``/``last``/
``limit`` argument (else 1) times one item when estimated, and what it really holds when the
actual cost is measured. Introspection is free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_object_type,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    SchemaExtension,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule

from schema.pagination import DEFAULT_PAGE_SIZE, PaginationError
from server.config import Settings
from server.services.errors import DomainError
from server.throttle import LeakyBucket, ThrottleStatus

OBJECT_COST = 1
CONNECTION_COST = 2
MUTATION_COST = 10
THROTTLED = "THROTTLED"
MAX_COST_EXCEEDED = "MAX_COST_EXCEEDED"
LIST_SIZE_ARGUMENTS = ("first", "last", "limit")
_STATIC = object()  # "no data": estimate instead of measuring

# ---- cost --------------------------------------------------------------------------------


def _is_connection(tp: GraphQLObjectType) -> bool:
    return "edges" in tp.fields and "pageInfo" in tp.fields


def _is_edge(tp: GraphQLObjectType) -> bool:
    return "node" in tp.fields and "cursor" in tp.fields


class QueryCostCalculator:
    """The requested (static) and actual (measured) cost of one operation of a document."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        operations: list[OperationDefinitionNode] = []
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                self.fragments[definition.name.value] = definition
            elif isinstance(definition, OperationDefinitionNode):
                operations.append(definition)
        self.operation: OperationDefinitionNode | None = None
        if operation_name is None and len(operations) == 1:
            self.operation = operations[0]
        else:
            self.operation = next(
                (o for o in operations if o.name and o.name.value == operation_name), None
            )
        # Static costs depend only on (selection sets, type, page size): memoised, so nested
        # abstract types cannot make the estimate exponential in the document's depth.
        self._memo: dict[tuple[tuple[int, ...], str], int] = {}

    def _root(self) -> GraphQLObjectType | None:
        if self.operation is None:
            return None
        return self.schema.get_root_type(self.operation.operation)

    def requested(self) -> int:
        root = self._root()
        if root is None or self.operation is None:
            return 0
        return self._selections([self.operation.selection_set], root, _STATIC, root=True)

    def actual(self, data: Any) -> int:
        root = self._root()
        if root is None or self.operation is None or not isinstance(data, dict):
            return 0
        return self._selections([self.operation.selection_set], root, data, root=True)

    # -- walking

    def _applies(self, condition: str | None, tp: GraphQLObjectType) -> bool:
        if condition is None or condition == tp.name:
            return True
        named = self.schema.get_type(condition)
        return is_abstract_type(named) and self.schema.is_sub_type(named, tp)  # type: ignore[arg-type]

    def _collect(
        self,
        sets: list[SelectionSetNode],
        tp: GraphQLObjectType,
        fields: dict[str, list[FieldNode]],
        seen: set[str],
    ) -> None:
        for selection_set in sets:
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    if self._applies(condition.name.value if condition else None, tp):
                        self._collect([selection.selection_set], tp, fields, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is None or name in seen:
                        continue
                    if self._applies(fragment.type_condition.name.value, tp):
                        self._collect([fragment.selection_set], tp, fields, seen | {name})

    def _selections(
        self,
        sets: list[SelectionSetNode],
        tp: GraphQLOutputType,
        data: Any,
        *,
        root: bool = False,
        size: int | None = None,
    ) -> int:
        """Cost of ``sets`` selected on ``tp`` (an object or abstract type)."""
        if is_abstract_type(tp):
            candidates = list(self.schema.get_possible_types(tp))  # type: ignore[arg-type]
            if isinstance(data, dict) and isinstance(data.get("__typename"), str):
                candidates = [c for c in candidates if c.name == data["__typename"]]
            return max((self._selections(sets, c, data, size=size) for c in candidates), default=0)
        assert isinstance(tp, GraphQLObjectType)
        static = data is _STATIC
        memo_key = (tuple(id(s) for s in sets), f"{tp.name}/{size}")
        if static and memo_key in self._memo:
            return self._memo[memo_key]
        fields: dict[str, list[FieldNode]] = {}
        self._collect(sets, tp, fields, set())
        connection = _is_connection(tp)
        is_mutation = (
            root
            and self.operation is not None
            and self.operation.operation is OperationType.MUTATION
        )
        total = 0
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name.startswith("__"):
                continue  # introspection and __typename are free
            field = tp.fields.get(name)
            if field is None:
                continue
            if static:
                value: Any = _STATIC
            elif not isinstance(data, dict) or key not in data:
                continue
            else:
                value = data[key]
            # Inside a connection, its edges/nodes lists hold one page.
            page = size if connection and name in ("edges", "nodes") else None
            total += self._field(nodes, field, value, mutation=is_mutation, page=page)
        if static:
            self._memo[memo_key] = total
        return total

    def _field(
        self,
        nodes: list[FieldNode],
        field: GraphQLField,
        value: Any,
        *,
        mutation: bool,
        page: int | None,
    ) -> int:
        named = get_named_type(field.type)
        own = MUTATION_COST if mutation else 0
        if is_leaf_type(named):
            return own
        static = value is _STATIC
        if not static and value is None:
            return own
        sets = [n.selection_set for n in nodes if n.selection_set is not None]
        inner = get_nullable_type(field.type)  # type: ignore[arg-type]
        if is_list_type(inner):
            item_type = get_named_type(inner)
            each = 0 if is_object_type(item_type) and _is_edge(item_type) else OBJECT_COST  # type: ignore[arg-type]
            if static:
                count = page if page is not None else self._list_size(nodes[0], field)
                return own + count * (each + self._selections(sets, item_type, _STATIC))
            items = value if isinstance(value, list) else []
            return own + sum(
                each + self._selections(sets, item_type, item) for item in items if item is not None
            )
        if is_object_type(named) and _is_connection(named):  # type: ignore[arg-type]
            size = self._page_size(nodes[0], field)
            base = own or CONNECTION_COST
            return base + self._selections(sets, named, value, size=size)
        if is_object_type(named) and _is_edge(named):  # type: ignore[arg-type]
            return own + self._selections(sets, named, value)
        return (own or OBJECT_COST) + self._selections(sets, named, value)  # type: ignore[arg-type]

    def _int_argument(
        self, node: FieldNode, field: GraphQLField, names: tuple[str, ...]
    ) -> int | None:
        """The first of ``names`` given as an int (literal or variable), else its default."""
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name in names:
            raw: Any = None
            if name in given:
                value = given[name]
                if isinstance(value, VariableNode):
                    raw = self.variables.get(value.name.value)
                elif isinstance(value, IntValueNode):
                    raw = int(value.value)
            elif name in field.args:
                raw = field.args[name].default_value
            if isinstance(raw, int) and not isinstance(raw, bool):
                return max(0, raw)
        return None

    def _page_size(self, node: FieldNode, field: GraphQLField) -> int:
        size = self._int_argument(node, field, ("first", "last"))
        return DEFAULT_PAGE_SIZE if size is None else size

    def _list_size(self, node: FieldNode, field: GraphQLField) -> int:
        size = self._int_argument(node, field, LIST_SIZE_ARGUMENTS)
        return 1 if size is None else size


# ---- throttling --------------------------------------------------------------------------


def client_key(context: Any) -> str:
    """Whom a request is charged to: the signed-in viewer, else the client's IP address."""
    viewer = getattr(context, "viewer", None)
    if viewer is not None and (viewer.is_customer or viewer.is_staff):
        return viewer.subject
    request = getattr(context, "request", None)
    client = getattr(request, "client", None)
    return f"ip:{client.host}" if client is not None else "ip:unknown"


class QueryCost(SchemaExtension):
    """Estimates the cost before execution, refuses what is too costly or throttled, measures
    the actual cost afterwards and settles the difference; reports ``extensions.cost``."""

    def __init__(self, bucket: LeakyBucket, max_cost: float) -> None:
        self.bucket = bucket
        self.max_cost = min(max_cost, bucket.size)
        self.requested: int | None = None
        self.actual: int | None = None
        self.status: ThrottleStatus | None = None

    def _refuse(self, message: str, code: str, **extra: Any) -> None:
        error = GraphQLError(message, extensions={"code": code, **extra})
        self.execution_context.result = ExecutionResult(data=None, errors=[error])

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        calculator = QueryCostCalculator(
            context.schema._schema, document, context.variables, context.operation_name
        )
        requested = self.requested = calculator.requested()
        key = client_key(context.context)
        if requested > self.max_cost:
            self.status = self.bucket.status(key)
            self._refuse(
                f"Query cost is {requested}, which exceeds the single query maximum of "
                f"{self.max_cost:g}. Ask for smaller pages or fewer fields.",
                MAX_COST_EXCEEDED,
            )
            yield
            return
        taken, self.status = self.bucket.take(key, requested)
        if not taken:
            wait = math.ceil(self.bucket.seconds_until(key, requested))
            self._refuse(
                f"Throttled: this query costs {requested} points and "
                f"{self.status.currently_available:.0f} are available; "
                f"{self.bucket.restore_rate:g} points are restored per second.",
                THROTTLED,
                retryAfter=wait,
            )
            yield
            return
        yield
        result = context.result
        data = getattr(result, "data", None)
        self.actual = calculator.actual(data)
        self.status = self.bucket.settle(key, requested, self.actual)

    def get_results(self) -> dict[str, Any]:
        status = self.status
        if status is None:
            status = self.bucket.status(client_key(self.execution_context.context))
        return {
            "cost": {
                "requestedQueryCost": self.requested,
                "actualQueryCost": self.actual,
                "throttleStatus": status.as_json(),
            }
        }


# ---- production mode ---------------------------------------------------------------------

_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


def without_suggestions(error: GraphQLError) -> GraphQLError:
    """The error without its "Did you mean …?" hint, which would leak the schema."""
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )


class HideSuggestions(SchemaExtension):
    """Removes field/argument/type/enum-value suggestions from every error message."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [without_suggestions(e) for e in errors]


def is_unexpected(error: GraphQLError) -> bool:
    """Whether an error comes from an unexpected exception (masked in production).

    Validation and parse errors, errors built on purpose (limits, throttling), GraphQLErrors
    raised by resolvers or permission classes, pagination errors and domain errors all carry
    a message written for the client; anything else is an internal failure.
    """
    original = error.original_error
    if original is None:
        return False
    return not isinstance(original, GraphQLError | PaginationError | DomainError)


# ---- assembly ----------------------------------------------------------------------------


def limit_extensions(settings: Settings | None) -> list[Callable[[], SchemaExtension]]:
    """The per-request extensions that enforce the limits of ``settings``.

    The validation rule classes and the bucket are made once here, per schema: the same rule
    classes keep ``ValidationCache`` keys stable, and the bucket outlives requests.
    """
    settings = settings or Settings()
    production = settings.env == "production"
    rules: list[type[ValidationRule]] = [
        max_depth_rule(settings.max_depth, should_ignore=None),
        max_aliases_rule(settings.max_aliases),
    ]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)
    bucket = LeakyBucket(settings.cost_bucket_size, settings.cost_restore_rate)
    max_tokens, max_cost = settings.max_tokens, settings.max_query_cost
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(rules),
        lambda: QueryCost(bucket, max_cost),
    ]
    if production:
        extensions.append(HideSuggestions)
    return extensions
