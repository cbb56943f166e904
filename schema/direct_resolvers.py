"""Call argument-free resolvers straight from the executor.

strawberry resolves a field that has a resolver through a general path: it builds an ``Info``,
converts the (absent) arguments, runs the field-extension chain (empty) and only then calls the
function. For a field with no arguments, no field extensions and no exception handler, that
path reduces to "call the function with the object and, if it asks, the info". A product page
holds about eighty such fields (each object's ``id``, ``price``, ``category``, …), and the
general path costs more than most of the resolvers it leads to. A relay Node's ``id`` gets the
same treatment one step further (relay's resolver, inlined), and a plain attribute field is
read with one ``getattr``. Of these, the ones that need no ``Info`` and return a scalar or an
enum are also marked as leaves, which the executor reads and serializes in one step
(:mod:`schema.execution`).

:func:`call_directly` installs, on the graphql-core fields of one built schema, a resolver that
does just that reduced call. Everything the general path would do for these fields still
happens: the same function gets the same arguments and the same ``Info``; a permission class
(a field extension) or an argument keeps the field on strawberry's path.
"""

from __future__ import annotations

import operator
from base64 import b64encode
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
)
from strawberry import relay
from strawberry.relay import GlobalID
from strawberry.relay.exceptions import NodeIDAnnotationError
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

Resolve = Callable[..., Any]


def direct_resolver(field: StrawberryField, info_class: type[Any]) -> Resolve | None:
    """The reduced resolver of ``field``, or None when the field needs strawberry's path."""
    resolver = field.base_resolver
    if resolver is None and not field.extensions and field.default_resolver is getattr:
        # A plain attribute: strawberry's own path is three calls deep for one getattr.
        name = field.python_name

        def resolve_attribute(source: Any, info: GraphQLResolveInfo) -> Any:
            return getattr(source, name)

        # Tracing extensions skip default resolvers (strawberry.resolvers.is_default_resolver).
        resolve_attribute._is_default = True  # type: ignore[attr-defined]
        resolve_attribute.read = operator.attrgetter(name)  # type: ignore[attr-defined]
        return resolve_attribute
    if resolver is None or field.arguments or field.extensions or field.is_subscription:
        return None
    reserved = {
        p.name
        for p in (
            resolver.self_parameter,
            resolver.root_parameter,
            resolver.parent_parameter,
            resolver.info_parameter,
        )
        if p is not None
    }
    # Anything but the object and the info (a classmethod's ``cls`` is bound) keeps the
    # general path.
    if set(resolver.signature.parameters) - reserved - {"cls"}:
        return None
    call = resolver.wrapped_func
    pass_self = resolver.self_parameter is not None
    by_name = [p.name for p in (resolver.root_parameter, resolver.parent_parameter) if p]
    info_name = resolver.info_parameter.name if resolver.info_parameter else None

    if pass_self and not by_name and info_name is None:

        def resolve_self(source: Any, info: GraphQLResolveInfo) -> Any:
            return call(source)

        return resolve_self

    if pass_self and not by_name and info_name is not None:

        def resolve_self_info(source: Any, info: GraphQLResolveInfo) -> Any:
            return call(source, **{info_name: info_class(_raw_info=info, _field=field)})

        return resolve_self_info

    def resolve(source: Any, info: GraphQLResolveInfo) -> Any:
        kwargs: dict[str, Any] = dict.fromkeys(by_name, source)
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=field)
        return call(source, **kwargs) if pass_self else call(**kwargs)

    return resolve


def node_id_resolver(graphql_type: GraphQLObjectType) -> Resolve | None:
    """The reduced resolver of a relay Node type's ``id``: what ``relay.Node``'s own resolver
    answers when the type keeps its default ``resolve_id`` and ``resolve_typename`` (the
    NodeID attribute, under the GraphQL type's name). None for a type that overrides them."""
    definition = (graphql_type.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    origin = getattr(definition, "origin", None)
    if not (isinstance(origin, type) and issubclass(origin, relay.Node)):
        return None
    for name in ("resolve_id", "resolve_typename", "_id"):
        if getattr(origin, name).__func__ is not getattr(relay.Node, name).__func__:
            return None
    try:
        id_attr = origin.resolve_id_attr()
    except NodeIDAnnotationError:
        return None  # relay's resolver reports it, at query time as before
    type_name = graphql_type.name

    def read_node_id(source: Any) -> GlobalID:
        # By the type's NodeID attribute, so that an object that is not a Node instance (an
        # ORM row a plugin returns as the type) answers too, as with relay's resolver.
        return GlobalID(type_name=type_name, node_id=str(getattr(source, id_attr)))

    def resolve_node_id(source: Any, info: GraphQLResolveInfo) -> GlobalID:
        return read_node_id(source)

    def read_encoded_id(source: Any) -> str:
        # What serializing read_node_id's GlobalID gives (relay.utils.to_base64), without the
        # GlobalID: an id per object on every page.
        return b64encode(f"{type_name}:{getattr(source, id_attr)}".encode()).decode()

    resolve_node_id.read = read_encoded_id  # type: ignore[attr-defined]
    return resolve_node_id


def call_directly(schema: strawberry.Schema) -> int:
    """Give every eligible object-type field of the built ``schema`` its direct resolver; returns
    how many fields changed. The graphql-core objects belong to this build alone."""
    if getattr(schema.schema_converter, "_exception_handler_specs", None):
        return 0  # a handler may turn a field's exception into a result: keep strawberry's path
    info_class = schema.config.info_class
    changed = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for name, graphql_field in graphql_type.fields.items():
            field = (graphql_field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(field, StrawberryField):
                continue
            resolve = direct_resolver(field, info_class)
            if name == "id" and field.base_resolver is not None:
                resolve = node_id_resolver(graphql_type) or resolve
            if resolve is not None:
                graphql_field.resolve = resolve
                mark_leaf(graphql_field)
                changed += 1
    return changed


def mark_leaf(graphql_field: GraphQLField) -> None:
    """Let the executor read a scalar or enum field in one step (see schema/execution.py).

    Applies to a field whose direct resolver needs no ``Info`` and cannot await (it has a
    ``read(source)``): the field's plan becomes ``(read, serialize, non_null)``.
    """
    read = getattr(graphql_field.resolve, "read", None)
    if read is None:
        return
    field_type = graphql_field.type
    non_null = isinstance(field_type, GraphQLNonNull)
    named = field_type.of_type if non_null else field_type
    if isinstance(named, (GraphQLScalarType, GraphQLEnumType)):
        graphql_field.resolve.leaf = (read, named.serialize, non_null)  # type: ignore[union-attr]
