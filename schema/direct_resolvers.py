"""Call argument-free resolvers straight from the executor.

strawberry resolves a field that has a resolver through a general path: it builds an ``Info``,
converts the (absent) arguments, runs the field-extension chain (empty) and only then calls the
function. For a field with no arguments, no field extensions and no exception handler, that
path reduces to "call the function with the object and, if it asks, the info". A product page
holds about eighty such fields (each object's ``id``, ``price``, ``category``, …), and the
general path costs more than most of the resolvers it leads to.

:func:`call_directly` installs, on the graphql-core fields of one built schema, a resolver that
does just that reduced call. Everything the general path would do for these fields still
happens: the same function gets the same arguments and the same ``Info``; a permission class
(a field extension) or an argument keeps the field on strawberry's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

Resolve = Callable[..., Any]


def direct_resolver(field: StrawberryField, info_class: type[Any]) -> Resolve | None:
    """The reduced resolver of ``field``, or None when the field needs strawberry's path."""
    resolver = field.base_resolver
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
        for graphql_field in graphql_type.fields.values():
            field = (graphql_field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(field, StrawberryField):
                continue
            resolve = direct_resolver(field, info_class)
            if resolve is not None:
                graphql_field.resolve = resolve
                changed += 1
    return changed
