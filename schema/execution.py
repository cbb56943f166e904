"""The executor: graphql-core's (as strawberry configures it), with leaf fields read in one step.

For every field graphql-core builds a resolve-info tuple, calls the resolver, checks whether
the result must be awaited, then completes it through the non-null wrapper down to the leaf
type's ``serialize``. A product page is mostly scalar fields read straight off an object
(``sku``, ``name``, ``amount``, every ``id``), and for those the resolver is a ``getattr``
that never looks at the info (see :func:`schema.direct_resolvers.mark_leaf`). Such a field is
read and serialized here directly; the answer is the one the general path gives.

Anything unusual takes graphql-core's own path, unchanged: a field without a leaf plan, a
request with resolve middleware (an extension that wraps resolvers), a value that fails to
read or serialize, or a null for a non-null field. The general path then reports the error
exactly as it always does.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLObjectType
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class ShopExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        # Resolve middleware must see every field: then no shortcut.
        self._leaf_shortcut = manager is None or not manager._middleware_resolvers

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        if self._leaf_shortcut:
            field_def = parent_type.fields.get(field_details_list[0].node.name.value)
            leaf = getattr(field_def.resolve, "leaf", None) if field_def is not None else None
            if leaf is not None:
                read, serialize, non_null = leaf
                try:
                    value = read(source)
                    if value is None:
                        if not non_null:
                            return None
                    else:
                        serialized = serialize(value)
                        if serialized is not None and serialized is not Undefined:
                            return serialized
                except Exception:  # noqa: S110 - the general path below reports it
                    pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
