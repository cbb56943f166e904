"""Request limits: depth, aliases, tokens, query cost with per-client throttling, and the
production-mode rules (no introspection, no field suggestions, masked unexpected errors).

Everything here runs on the parsed, cached document: validation rules are built once per
schema (so ``ValidationCache`` keeps hitting), and what each selection set costs is worked out
once per document (``CostCache``); a request then costs one estimate from its variables before
execution and one walk over the returned data after it.

Cost model (Shopify's): a scalar or enum field costs 0, an object 1, a connection 2 plus its
page size (``first``/``last``, else the default page size) times the cost of one node; edges
are free wrappers. A mutation field costs 10. A plain list costs its ``first``/``last``/
``limit`` argument (else 1) times one item when estimated, and what it really holds when the
actual cost is measured. Introspection is free.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
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
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_object_type,
)
from graphql.utilities import value_from_ast_untyped
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType as StrawberryOperationType

from server.config import Settings
from server.graphql.pagination import DEFAULT_PAGE_SIZE, PaginationError
from server.graphql.structure import graphql_structure
from server.metrics import QUERY_COST
from server.services.errors import DomainError
from server.throttle import THROTTLED, CostBuckets, LeakyBucket, ThrottleStatus

OBJECT_COST = 1
CONNECTION_COST = 2
MUTATION_COST = 10
MAX_COST_EXCEEDED = "MAX_COST_EXCEEDED"
LIST_SIZE_ARGUMENTS = ("first", "last", "limit")
_STATIC = object()  # "no data": estimate instead of measuring

# ---- cost --------------------------------------------------------------------------------


def _is_connection(tp: GraphQLObjectType) -> bool:
    return "edges" in tp.fields and "pageInfo" in tp.fields


def _is_edge(tp: GraphQLObjectType) -> bool:
    return "node" in tp.fields and "cursor" in tp.fields


class QueryCostCalculator:
    """The requested (static) and actual (measured) cost of one operation of a document.

    Built once per (document, operation) and kept by :class:`CostCache`: what a selection set
    selects on a type is worked out once, so the per-request work is reading page sizes from
    the variables and walking the returned data.
    """

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
    ) -> None:
        self.schema = schema
        self.document = document  # kept alive: the plans below are keyed by its nodes' ids
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
        self.root = (
            None if self.operation is None else schema.get_root_type(self.operation.operation)
        )
        self.is_mutation = (
            self.operation is not None and self.operation.operation is OperationType.MUTATION
        )
        # (selection sets, type) -> the fields they select there: independent of variables.
        self._plans: dict[tuple[tuple[int, ...], str], list[_Selected]] = {}
        # Each plan without its leaves: what a query's cost walk visits (leaves cost nothing,
        # so a plan of leaves only is free in a query, whatever the data).
        self.costed: dict[tuple[tuple[int, ...], str], list[_Selected]] = {}

    def requested(self, variables: Mapping[str, Any] | None = None) -> int:
        if self.root is None or self.operation is None:
            return 0
        # Static costs depend only on (selection sets, type, page size): memoised per call, so
        # nested abstract types cannot make the estimate exponential in the document's depth.
        walk = _Walk(self, variables or {}, {})
        return walk.selections([self.operation.selection_set], self.root, _STATIC, root=True)

    def actual(self, data: Any, variables: Mapping[str, Any] | None = None) -> int:
        if self.root is None or self.operation is None or not isinstance(data, dict):
            return 0
        walk = _Walk(self, variables or {}, None)
        return walk.selections([self.operation.selection_set], self.root, data, root=True)

    # -- what a selection selects

    def _applies(self, condition: str | None, tp: GraphQLObjectType) -> bool:
        if condition is None or condition == tp.name:
            return True
        named = self.schema.get_type(condition)
        return is_abstract_type(named) and self.schema.is_sub_type(named, tp)

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

    def plan(
        self,
        sets: list[SelectionSetNode],
        tp: GraphQLObjectType,
        sets_key: tuple[int, ...] | None = None,
    ) -> list[_Selected]:
        """The costed fields ``sets`` select on ``tp`` (introspection and unknown names left out)."""
        key = (sets_key if sets_key is not None else tuple(id(s) for s in sets), tp.name)
        found = self._plans.get(key)
        if found is not None:
            return found
        fields: dict[str, list[FieldNode]] = {}
        self._collect(sets, tp, fields, set())
        connection = _is_connection(tp)
        selected: list[_Selected] = []
        for response_key, nodes in fields.items():
            name = nodes[0].name.value
            field = tp.fields.get(name)
            if name.startswith("__") or field is None:
                continue  # introspection and __typename are free
            # Inside a connection, its edges/nodes lists hold one page.
            in_page = connection and name in ("edges", "nodes")
            selected.append(_Selected.of(response_key, nodes, field, in_page))
        self._plans[key] = selected
        self.costed[key] = [s for s in selected if not s.leaf]
        return selected

    def leaves_only(self, key: tuple[tuple[int, ...], str]) -> bool:
        """Whether the plan of ``key``, once made, selects leaves only."""
        return self.costed.get(key) == []


@dataclass(frozen=True, slots=True)
class _Selected:
    """One response key of a selection on a type, with what its cost depends on worked out."""

    key: str
    nodes: list[FieldNode]
    field: GraphQLField
    children: list[SelectionSetNode]
    children_key: tuple[int, ...]  # identifies ``children`` in the calculator's plans
    in_page: bool  # an edges/nodes list of a connection: one page long
    leaf: bool
    named: Any  # the field's named type
    item: Any  # for a list: the item type, else None
    each: int  # for a list: what being an item costs (edges are free wrappers)
    connection: bool
    edge: bool

    @classmethod
    def of(cls, key: str, nodes: list[FieldNode], field: GraphQLField, in_page: bool) -> _Selected:
        named = get_named_type(field.type)
        inner = get_nullable_type(field.type)
        item = get_named_type(inner) if is_list_type(inner) else None
        each = 0 if item is not None and is_object_type(item) and _is_edge(item) else OBJECT_COST
        children = [n.selection_set for n in nodes if n.selection_set is not None]
        return cls(
            key=key,
            nodes=nodes,
            field=field,
            children=children,
            children_key=tuple(id(c) for c in children),
            in_page=in_page,
            leaf=is_leaf_type(named),
            named=named,
            item=item,
            each=each,
            connection=item is None and is_object_type(named) and _is_connection(named),
            edge=item is None and is_object_type(named) and _is_edge(named),
        )


class _Walk:
    """One costing pass: estimated when ``memo`` is a dict, else measured on the data."""

    def __init__(
        self,
        calc: QueryCostCalculator,
        variables: Mapping[str, Any],
        memo: dict[tuple[tuple[int, ...], str, int | None], int] | None,
    ) -> None:
        self.calc = calc
        self.variables = variables
        self.memo = memo

    def selections(
        self,
        sets: list[SelectionSetNode],
        tp: GraphQLOutputType,
        data: Any,
        *,
        root: bool = False,
        size: int | None = None,
        sets_key: tuple[int, ...] | None = None,
    ) -> int:
        """Cost of ``sets`` selected on ``tp`` (an object or abstract type)."""
        schema = self.calc.schema
        if sets_key is None:
            sets_key = tuple(id(s) for s in sets)
        if is_abstract_type(tp):
            candidates = list(schema.get_possible_types(tp))
            if isinstance(data, dict) and isinstance(data.get("__typename"), str):
                candidates = [c for c in candidates if c.name == data["__typename"]]
            return max(
                (self.selections(sets, c, data, size=size, sets_key=sets_key) for c in candidates),
                default=0,
            )
        assert isinstance(tp, GraphQLObjectType)
        static = data is _STATIC
        memo_key = (sets_key, tp.name, size)
        if self.memo is not None and memo_key in self.memo:
            return self.memo[memo_key]
        mutation = root and self.calc.is_mutation
        plan = self.calc.plan(sets, tp, sets_key)
        if not mutation:
            # Leaves cost nothing in a query (e.g. each price's amount and currency).
            plan = self.calc.costed[(sets_key, tp.name)]
            if not plan:
                return 0
        total = 0
        for selected in plan:
            if static:
                value: Any = _STATIC
            elif not isinstance(data, dict) or selected.key not in data:
                continue
            else:
                value = data[selected.key]
            page = size if selected.in_page else None
            total += self._field(selected, value, mutation=mutation, page=page)
        if self.memo is not None:
            self.memo[memo_key] = total
        return total

    def _field(self, selected: _Selected, value: Any, *, mutation: bool, page: int | None) -> int:
        own = MUTATION_COST if mutation else 0
        if selected.leaf:
            return own
        static = value is _STATIC
        if not static and value is None:
            return own
        sets, key = selected.children, selected.children_key
        if selected.item is not None:
            each, item_type = selected.each, selected.item
            if static:
                count = page if page is not None else self._list_size(selected)
                return own + count * (
                    each + self.selections(sets, item_type, _STATIC, sets_key=key)
                )
            items = value if isinstance(value, list) else []
            return own + sum(
                each + self.selections(sets, item_type, item, sets_key=key)
                for item in items
                if item is not None
            )
        if selected.connection:
            size = self._page_size(selected)
            base = own or CONNECTION_COST
            return base + self.selections(sets, selected.named, value, size=size, sets_key=key)
        if not mutation and self.calc.leaves_only((key, selected.named.name)):
            children = 0  # known to select leaves only: no walk (the price of every product)
        else:
            children = self.selections(sets, selected.named, value, sets_key=key)
        if selected.edge:
            return own + children
        return (own or OBJECT_COST) + children

    def _int_argument(self, selected: _Selected, names: tuple[str, ...]) -> int | None:
        """The first of ``names`` given as an int (literal or variable), else its default."""
        node, field = selected.nodes[0], selected.field
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
                raw = _default(field.args[name])
            if isinstance(raw, int) and not isinstance(raw, bool):
                return max(0, raw)
        return None

    def _page_size(self, selected: _Selected) -> int:
        size = self._int_argument(selected, ("first", "last"))
        return DEFAULT_PAGE_SIZE if size is None else size

    def _list_size(self, selected: _Selected) -> int:
        size = self._int_argument(selected, LIST_SIZE_ARGUMENTS)
        return 1 if size is None else size


def _default(argument: GraphQLArgument) -> Any:
    """An argument's default value. The schema here is built from SDL (server.graphql.structure), so
    the default is the SDL's literal: graphql-core 3.2 converts it into ``default_value``,
    3.3 keeps the literal; read from the literal, it is the same on both."""
    node = argument.ast_node
    if node is not None and node.default_value is not None:
        return value_from_ast_untyped(node.default_value)
    return argument.default_value


class CostCache:
    """Calculators per (query text, operation name), least recently used dropped first.

    The parsed document comes from ``ParserCache``, so a repeated query is one dict lookup
    here and no walk over its AST.
    """

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple[str, str | None], QueryCostCalculator] = OrderedDict()
        # Apps served from threads of one process may share the schema, and so this cache.
        self._lock = threading.Lock()

    def get(
        self,
        schema: GraphQLSchema,
        query: str | None,
        document: DocumentNode,
        operation_name: str | None,
    ) -> QueryCostCalculator:
        if query is None:
            return QueryCostCalculator(schema, document, operation_name)
        key = (query, operation_name)
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found.document is document and found.schema is schema:
                self._entries.move_to_end(key)
                return found
        calculator = QueryCostCalculator(schema, document, operation_name)
        with self._lock:
            self._entries[key] = calculator
            self._entries.move_to_end(key)
            if len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return calculator


# ---- throttling --------------------------------------------------------------------------


def client_key(context: Any) -> str:
    """Whom a request is charged to: the signed-in viewer or API key, else the client's IP
    address (each key has its own budget, wherever its calls come from)."""
    viewer = getattr(context, "viewer", None)
    if viewer is not None and (viewer.is_customer or viewer.is_staff or viewer.is_app):
        return viewer.subject
    request = getattr(context, "request", None)
    client = getattr(request, "client", None)
    return f"ip:{client.host}" if client is not None else "ip:unknown"


def staff_role(context: Any) -> str | None:
    """The role of a signed-in staff member, whose buckets may be the role's own; else None."""
    viewer = getattr(context, "viewer", None)
    if viewer is not None and viewer.is_staff:
        role: str | None = viewer.role
        return role
    return None


def refuse(context: ExecutionContext, errors: list[GraphQLError]) -> None:
    """Answer ``errors`` instead of running the operation (from an extension's on_execute).

    strawberry runs a query or mutation only when no result is set yet; a subscription it
    subscribes regardless, but answers an error raised here, and ends the stream."""
    if context.operation_type is StrawberryOperationType.SUBSCRIPTION:
        raise errors[0]
    context.result = ExecutionResult(data=None, errors=errors)


class QueryCost(SchemaExtension):
    """Estimates the cost before execution, refuses what is too costly or throttled, measures
    the actual cost afterwards and settles the difference; reports ``extensions.cost``. The
    client's buckets are those of its staff role when the role has a budget of its own."""

    def __init__(self, buckets: CostBuckets, max_cost: float, costs: CostCache) -> None:
        self.buckets = buckets
        self.costs = costs
        self.max_query_cost = max_cost
        self.requested: int | None = None
        self.actual: int | None = None
        self.status: ThrottleStatus | None = None

    @property
    def bucket(self) -> LeakyBucket:
        context = self.execution_context.context
        # An app's requests bring its buckets (apps of one configuration share a schema);
        # a schema executed on its own charges those it was built with.
        buckets: CostBuckets | None = getattr(context, "cost_buckets", None)
        if buckets is None:
            buckets = self.buckets
        return buckets.for_role(staff_role(context))

    @property
    def max_cost(self) -> float:
        return min(self.max_query_cost, self.bucket.size)

    def _refuse(self, message: str, code: str, **extra: Any) -> None:
        refuse(self.execution_context, [GraphQLError(message, extensions={"code": code, **extra})])

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        calculator = self.costs.get(
            graphql_structure(context.schema), context.query, document, context.operation_name
        )
        variables = context.variables
        requested = self.requested = calculator.requested(variables)
        key = client_key(context.context)
        bucket, max_cost = self.bucket, self.max_cost
        if requested > max_cost:
            self.status = bucket.status(key)
            self._refuse(
                f"Query cost is {requested}, which exceeds the single query maximum of "
                f"{max_cost:g}. Ask for smaller pages or fewer fields.",
                MAX_COST_EXCEEDED,
            )
            yield
            return
        taken, self.status = bucket.take(key, requested)
        if not taken:
            wait = math.ceil(bucket.seconds_until(key, requested))
            self._refuse(
                f"Throttled: this query costs {requested} points and "
                f"{self.status.currently_available:.0f} are available; "
                f"{bucket.restore_rate:g} points are restored per second.",
                THROTTLED,
                retryAfter=wait,
            )
            yield
            return
        yield
        result = context.result
        data = getattr(result, "data", None)
        self.actual = calculator.actual(data, variables)
        self.status = bucket.settle(key, requested, self.actual)
        QUERY_COST.observe(self.actual)

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


def cost_buckets(settings: Settings, roles: Iterable[str] | None = None) -> CostBuckets:
    """The per-client query-cost buckets of ``settings``: everyone's, and those of each staff
    role with a budget of its own (``role_cost_budgets``: at least everyone's, never less). A
    role that is not one of ``roles`` (when given: the roles there are) is an error."""
    size, rate = settings.cost_bucket_size, settings.cost_restore_rate
    known = None if roles is None else set(roles)
    by_role: dict[str, LeakyBucket] = {}
    for name, budget in settings.role_cost_budgets.items():
        role = name.strip().upper()
        if known is not None and role not in known:
            raise ValueError(
                f"role_cost_budgets names role {name!r}; one of {', '.join(sorted(known))}"
            )
        by_role[role] = LeakyBucket(max(size, budget.size), max(rate, budget.restore_rate))
    return CostBuckets(LeakyBucket(size, rate), by_role)


def limit_extensions(
    settings: Settings | None, buckets: CostBuckets | None = None
) -> list[Callable[[], SchemaExtension]]:
    """The per-request extensions that enforce the limits of ``settings``.

    The validation rule classes and the bucket are made once here, per schema: the same rule
    classes keep ``ValidationCache`` keys stable (a ``QueryDepthLimiter`` made per request
    would bring a rule class of its own, and every request would miss the cache), and the
    bucket outlives requests. The depth and alias rules are those of strawberry's
    ``QueryDepthLimiter`` and ``MaxAliasesLimiter``, made once and run by one
    ``AddValidationRules``. ``buckets``
    are given when something else charges the same clients (the response cache's hits).
    """
    settings = settings or Settings()
    production = settings.env == "production"
    rules: list[type[ASTValidationRule]] = [
        *QueryDepthLimiter(max_depth=settings.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)
    if buckets is None:
        buckets = cost_buckets(settings)
    costs = CostCache()
    max_tokens, max_cost = settings.max_tokens, settings.max_query_cost
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(rules),
        lambda: QueryCost(buckets, max_cost, costs),
    ]
    if production:
        extensions.append(HideSuggestions)
    return extensions
