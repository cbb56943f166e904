"""Compose the core's GraphQL types and the enabled plugins' contributions into one schema.

A pure function of the plugin set: two schemas built in one process share nothing mutable.
Plugins contribute root fields (``graphql_queries`` / ``_mutations`` / ``_subscriptions``),
types (``graphql_types``), fields on core types (``graphql_type_extensions``; core
input types included) and fields on core lists' filter inputs (``list_filters``, see
server.graphql.list_filters); a core domain adds fields to another domain's types the
same way (its ``EXTENSIONS``). Any name clash is a :class:`SchemaAssemblyError` naming
both contributors.

:func:`shared_schema` is what apps use: the same schema for the same contributions and
schema settings, assembled once per process.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.name_converter import NameConverter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.base import (
    StrawberryContainer,
    StrawberryObjectDefinition,
)
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.union import StrawberryUnion

from server.config import Settings
from server.graphql.audit import AuditTrail, record_outcomes
from server.graphql.ids import node_queries
from server.graphql.input_bounds import input_bounds
from server.graphql.inputs import InputExtension, check_plugin_input, extended_input_fields
from server.graphql.limits import is_unexpected, limit_extensions
from server.graphql.list_filters import ListFilter
from server.graphql.operation_metrics import OperationMetrics, tracing_extensions
from server.graphql.sockets import SubscriptionsOverWebSocket
from server.plugins import PluginFailed, PluginRuntime
from server.throttle import CostBuckets

CORE = "core"
PLUGIN_FAILED = "PLUGIN_FAILED"

# Extension fields are spliced into the core classes' definitions for the duration of one
# ``strawberry.Schema(...)`` call; builds in other threads must not see them.
_BUILD_LOCK = threading.Lock()
_names = NameConverter()
# strawberry reports execution errors to this logger (its documented name).
_errors_logger = logging.getLogger("strawberry.execution")


class SchemaAssemblyError(Exception):
    """The enabled plugin set cannot form one schema (a clash, an unknown type)."""


@dataclass(frozen=True)
class _Contribution:
    owner: str
    cls: type[Any]


def _definition(cls: Any) -> StrawberryObjectDefinition:
    definition = getattr(cls, "__strawberry_definition__", None)
    if not isinstance(definition, StrawberryObjectDefinition):
        raise SchemaAssemblyError(f"{cls!r} is not a strawberry type")
    return definition


def _owner_label(owner: str) -> str:
    return "the core" if owner == CORE else f"plugin {owner!r}"


def _clash(what: str, first: str, second: str) -> SchemaAssemblyError:
    # The core first, then plugins by name: the message does not depend on load order.
    a, b = sorted((first, second), key=lambda o: (o != CORE, o))
    return SchemaAssemblyError(f"{what} is defined by {_owner_label(a)} and by {_owner_label(b)}")


def _check_root(kind: str, contributions: list[_Contribution]) -> None:
    """Two contributors defining the same root field is an error, never an override."""
    seen: dict[str, str] = {}
    for contribution in contributions:
        for fld in _definition(contribution.cls).fields:
            name = _names.from_field(fld)
            if name in seen:
                raise _clash(f"{kind}.{name}", seen[name], contribution.owner)
            seen[name] = contribution.owner


def _referenced(tp: Any) -> Iterator[StrawberryObjectDefinition]:
    """The object definitions a field type mentions (through lists, optionals, unions)."""
    if isinstance(tp, LazyType):
        tp = tp.resolve_type()
    if isinstance(tp, StrawberryContainer):
        yield from _referenced(tp.of_type)
    elif isinstance(tp, StrawberryUnion):
        for member in tp.types:
            yield from _referenced(member)
    elif isinstance(tp, StrawberryObjectDefinition):
        yield tp
    else:
        definition = getattr(tp, "__strawberry_definition__", None)
        if isinstance(definition, StrawberryObjectDefinition):
            yield definition


def _type_registry(roots: list[type[Any]]) -> dict[str, StrawberryObjectDefinition]:
    """Every named object and input type reachable from ``roots`` (through field types and
    arguments): the targets extensions may name."""
    registry: dict[str, StrawberryObjectDefinition] = {}
    pending = [_definition(cls) for cls in roots]
    visited: set[int] = set()
    while pending:
        definition = pending.pop()
        if id(definition) in visited:
            continue
        visited.add(id(definition))
        if not definition.is_graphql_generic:
            registry.setdefault(definition.name, definition)
        pending.extend(definition.interfaces)
        for fld in definition.fields:
            try:
                pending.extend(_referenced(fld.type))
                for argument in fld.arguments:
                    pending.extend(_referenced(argument.type))
            except Exception:  # noqa: BLE001 - an unresolvable annotation fails later, in strawberry
                continue
    return registry


def _extension_fields(
    extensions: Iterable[tuple[str, Mapping[str, Sequence[type[Any]]]]],
    registry: dict[str, StrawberryObjectDefinition],
    inputs: dict[str, list[InputExtension]],
) -> dict[str, list[StrawberryField]]:
    """``{core type name: [copied fields]}`` from ``(owner, {type name: [classes]})`` pairs,
    checked for clashes; the extensions of core input types also go to ``inputs``."""
    added: dict[str, list[StrawberryField]] = {}
    owners: dict[tuple[str, str], str] = {}
    for owner, mapping in extensions:
        for type_name, classes in dict(mapping).items():
            target = registry.get(type_name)
            if target is None:
                raise SchemaAssemblyError(
                    f"{_owner_label(owner)} extends type {type_name!r}, which is not in the schema"
                )
            _check_input_target(owner, type_name, target, classes)
            if target.is_input:
                # Given to this schema's subclass of the input (server.graphql.inputs).
                inputs.setdefault(type_name, []).extend(
                    InputExtension(owner, cls) for cls in classes
                )
                continue
            core_fields = {_names.from_field(f) for f in target.fields}
            for cls in classes:
                for fld in _definition(cls).fields:
                    name = _names.from_field(fld)
                    if name in core_fields:
                        raise _clash(f"{type_name}.{name}", CORE, owner)
                    if (type_name, name) in owners:
                        raise _clash(f"{type_name}.{name}", owners[type_name, name], owner)
                    owners[type_name, name] = owner
                    added.setdefault(type_name, []).append(copy.copy(fld))
    return added


def _check_input_target(
    owner: str, type_name: str, target: StrawberryObjectDefinition, classes: Sequence[type[Any]]
) -> None:
    """Fields go to inputs from inputs (optional ones only), to outputs from outputs."""
    for cls in classes:
        if _definition(cls).is_input != target.is_input:
            kind = "an input" if target.is_input else "an object"
            raise SchemaAssemblyError(
                f"plugin {owner!r} extends {kind} type {type_name!r} with {cls.__name__}, "
                f"which is not {kind} type"
            )
        if target.is_input:
            check_plugin_input(owner, type_name, cls, SchemaAssemblyError)


class PluginErrors(SchemaExtension):
    """Name the plugin in the GraphQL error of a failed hook (``extensions.plugin``), also when
    other errors are masked: the message then says which plugin failed, never why."""

    def __init__(self, *, production: bool = False) -> None:
        self.production = production

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is None or not errors:
            return
        result.errors = [self._rewrite(e) for e in errors]

    def _rewrite(self, error: GraphQLError) -> GraphQLError:
        failed = error.original_error
        if not isinstance(failed, PluginFailed):
            return error
        message = (
            f"plugin {failed.plugin!r} failed in {failed.hook}"
            if self.production
            else error.message
        )
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None if self.production else failed,
            extensions={
                **(error.extensions or {}),
                "code": PLUGIN_FAILED,
                "plugin": failed.plugin,
                "hook": failed.hook,
            },
        )


def _not_plugin_failure(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") != PLUGIN_FAILED


def _should_mask(error: GraphQLError) -> bool:
    # Errors written for the client (validation, limits, permissions, pagination) keep theirs.
    return _not_plugin_failure(error) and is_unexpected(error)


class ShopSchema(strawberry.Schema):
    """The schema, logging what the operators must look at and not what clients got wrong.

    strawberry logs every error at ERROR with a stack trace. A refused permission, a missing
    object, a validation, limit, throttling or domain error is the client's: DEBUG, one line.
    An unexpected exception (a bug, a failing plugin, a lost database) stays at ERROR with its
    trace. Runs before production masking, so the original error is what gets logged.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        unexpected = [e for e in errors if is_unexpected(e)]
        logger = _errors_logger
        if logger.isEnabledFor(logging.DEBUG):
            for error in errors:
                if not is_unexpected(error):
                    code = (error.extensions or {}).get("code") or "-"
                    where = ".".join(map(str, error.path or ())) or "-"
                    logger.debug("client error %s at %s: %s", code, where, error.message)
        super().process_errors(unexpected, execution_context)


class Domain(Protocol):
    """A module of the core's API: its root query and mutation classes and extra types.

    A domain may also define ``EXTENSIONS``, ``{type name: [strawberry types]}``: fields it adds
    to another domain's types, as a plugin's ``graphql_type_extensions`` does (resolvers get the
    extended object as ``root``). So of two domains whose types refer to each other, only one
    imports the other (shipments import orders and add ``Order.shipments``).
    """

    # Read-only members, so that a module's lists (or tuples) match.
    @property
    def QUERIES(self) -> Sequence[type[Any]]: ...
    @property
    def MUTATIONS(self) -> Sequence[type[Any]]: ...
    @property
    def TYPES(self) -> Sequence[type[Any]]: ...


def _domain_subscriptions(domain: Domain) -> Sequence[type[Any]]:
    subscriptions: Sequence[type[Any]] = getattr(domain, "SUBSCRIPTIONS", ())
    return subscriptions


def _domain_extensions(domain: Domain) -> Mapping[str, Sequence[type[Any]]]:
    extensions: Mapping[str, Sequence[type[Any]]] = getattr(domain, "EXTENSIONS", {})
    return extensions


@dataclass(frozen=True)
class _Parts:
    """What the core's domains and the enabled plugins contribute to a schema."""

    queries: tuple[_Contribution, ...]
    mutations: tuple[_Contribution, ...]
    subscriptions: tuple[_Contribution, ...]
    types: tuple[_Contribution, ...]
    type_extensions: tuple[tuple[str, Mapping[str, Sequence[type[Any]]]], ...]
    filters: tuple[tuple[str, Mapping[str, Sequence[ListFilter]]], ...]

    def key(self) -> Hashable | None:
        """The contributions by identity (classes, filters' functions), or None when one of
        them cannot be a key."""
        mappings = tuple(
            (owner, tuple((name, tuple(items)) for name, items in dict(mapping).items()))
            for owner, mapping in (*self.type_extensions, *self.filters)
        )
        # The first query is the core's node field, a class made afresh for every build
        # (node_queries() takes nothing): it is the same field in every schema.
        key = (self.queries[1:], self.mutations, self.subscriptions, self.types, mappings)
        try:
            hash(key)
        except TypeError:
            return None
        return key


def _parts(domains: Sequence[Domain], plugins: PluginRuntime) -> _Parts:
    queries = [_Contribution(CORE, node_queries())]
    mutations: list[_Contribution] = []
    subscriptions: list[_Contribution] = []
    types: list[_Contribution] = []
    for domain in domains:
        queries.extend(_Contribution(CORE, cls) for cls in domain.QUERIES)
        mutations.extend(_Contribution(CORE, cls) for cls in domain.MUTATIONS)
        types.extend(_Contribution(CORE, cls) for cls in domain.TYPES)
        subscriptions.extend(_Contribution(CORE, cls) for cls in _domain_subscriptions(domain))
    for hook, target in (
        ("graphql_queries", queries),
        ("graphql_mutations", mutations),
        ("graphql_subscriptions", subscriptions),
        ("graphql_types", types),
    ):
        for owner, classes in plugins.call_sync(hook):
            target.extend(_Contribution(owner, cls) for cls in classes)
    # The core's extensions first: a plugin's field of the same name clashes with the core's.
    type_extensions = [(CORE, _domain_extensions(domain)) for domain in domains]
    type_extensions += plugins.call_sync("graphql_type_extensions")
    return _Parts(
        tuple(queries),
        tuple(mutations),
        tuple(subscriptions),
        tuple(types),
        tuple(type_extensions),
        tuple(plugins.call_sync("list_filters")),
    )


def build_schema(
    domains: Sequence[Domain],
    plugins: PluginRuntime,
    settings: Settings | None = None,
    buckets: CostBuckets | None = None,
) -> strawberry.Schema:
    """The schema of the core's ``domains`` plus every enabled plugin's contributions;
    ``buckets`` hold the clients' query-cost budgets (made from ``settings`` when not given;
    a request whose context has ``cost_buckets`` is charged to those instead)."""
    return _build(_parts(domains, plugins), settings, buckets)


def _schema_settings(settings: Settings | None) -> Hashable:
    """What of ``settings`` the schema is made of: the limits its extensions enforce, whether
    it is production's, and the tracing extensions (which also depend on the process)."""
    settings = settings or Settings()
    return (
        settings.env == "production",
        settings.max_depth,
        settings.max_aliases,
        settings.max_tokens,
        settings.max_query_cost,
        tuple(tracing_extensions(settings)),
    )


# Schemas already assembled, by what they are made of (most recently used last).
_SHARED: OrderedDict[Hashable, tuple[strawberry.Schema, str]] = OrderedDict()
_SHARED_SIZE = 16
_SHARED_LOCK = threading.Lock()


def shared_schema(
    domains: Sequence[Domain], plugins: PluginRuntime, settings: Settings | None = None
) -> tuple[strawberry.Schema, str]:
    """:func:`build_schema`'s schema and its SDL, assembled once per process for the same
    contributions (the same classes and filters) and the same schema settings: an app built
    again in one process (a test's, a reloaded one's) reuses it instead of paying for
    strawberry's conversion and printing again.

    The schema is the same whichever app uses it: what differs between apps of one
    configuration (the query-cost buckets, the plugin runtime, the settings) reaches resolvers
    and extensions through each request's context, never through the schema. Each request's
    context must carry the app's ``cost_buckets``."""
    parts = _parts(domains, plugins)
    contributions = parts.key()
    if contributions is None:
        schema = _build(parts, settings, None)
        return schema, schema.as_str()
    key = (tuple(id(d) for d in domains), contributions, _schema_settings(settings))
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is not None:
            _SHARED.move_to_end(key)
            return found
        schema = _build(parts, settings, None)
        # Printed once: the app's structure and response cache key both come from it.
        found = _SHARED[key] = (schema, schema.as_str())
        if len(_SHARED) > _SHARED_SIZE:
            _SHARED.popitem(last=False)
        return found


def _build(parts: _Parts, settings: Settings | None, buckets: CostBuckets | None) -> ShopSchema:
    queries, mutations, subscriptions = parts.queries, parts.mutations, parts.subscriptions
    types = parts.types
    _check_root("Query", list(queries))
    _check_root("Mutation", list(mutations))
    _check_root("Subscription", list(subscriptions))
    type_owners: dict[str, str] = {}
    for contribution in types:
        name = _definition(contribution.cls).name
        previous = type_owners.setdefault(name, contribution.owner)
        if previous != contribution.owner:
            raise _clash(f"type {name}", previous, contribution.owner)

    production = settings is not None and settings.env == "production"
    extensions: list[Any] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        # Length bounds on every string, list and JSON value a client sends (before it runs).
        input_bounds(),
        # Depth, aliases, tokens, query cost and throttling; production's schema hiding.
        *limit_extensions(settings, buckets),
        # Every mutation by staff or an API key is in the audit log (see server/graphql/audit.py).
        AuditTrail,
        # Subscriptions are served over WebSocket only (server/graphql/sockets.py).
        SubscriptionsOverWebSocket,
        OperationMetrics,
        *tracing_extensions(settings),
    ]
    if production:
        extensions.append(lambda: MaskErrors(should_mask_error=_should_mask))
    # Listed last so that it runs first when the operation ends, before masking.
    extensions.append(lambda: PluginErrors(production=production))

    query = merge_types("Query", tuple(c.cls for c in queries))
    mutation = merge_types("Mutation", tuple(c.cls for c in mutations)) if mutations else None
    if mutation is not None:
        # Audit rows say what each mutation answered, typed errors included (see server/graphql/audit.py).
        record_outcomes(mutation)
    subscription = (
        merge_types("Subscription", tuple(c.cls for c in subscriptions)) if subscriptions else None
    )
    roots = [query, *(c.cls for c in types)]
    roots += [r for r in (mutation, subscription) if r is not None]
    registry = _type_registry(roots)
    inputs: dict[str, list[InputExtension]] = {}
    added = _extension_fields(parts.type_extensions, registry, inputs)
    filters = list(parts.filters)

    with _BUILD_LOCK:
        # Read under the lock: no other build has spliced its fields into a core type now.
        current = {name: [*d.fields, *added.get(name, [])] for name, d in registry.items()}
        changed = {name: current[name] for name in added}
        changed.update(
            extended_input_fields(current, inputs, filters, clash=_clash, error=SchemaAssemblyError)
        )
        saved = {name: registry[name].fields for name in changed}
        try:
            for name, type_fields in changed.items():
                registry[name].fields = type_fields
            schema = ShopSchema(
                query=query,
                mutation=mutation,
                subscription=subscription,
                types=[c.cls for c in types],
                extensions=extensions,
            )
        finally:
            for name, fields in saved.items():
                registry[name].fields = fields
    return schema
