"""The executor: graphql-core's (as strawberry configures it), with the common steps made short.

graphql-core executes every field the same general way: it builds a response path and a
resolve-info tuple, calls the resolver, checks whether the result must be awaited, then
completes it through the non-null wrapper, a chain of type tests and, for an object, the
collection and execution of its sub-selection. A product page is a few hundred fields of two
kinds, and both are made short here:

* **Leaves read off an object** (``sku``, ``name``, ``amount``, every ``id``): the resolver is
  a ``getattr`` that never looks at the info (see :func:`schema.direct_resolvers.mark_leaf`).
  Such a field is read and serialized in the loop over the selection, with no path, info or
  completion step. Which fields of a selection are leaves is worked out once per selection
  and request, not once per object.
* **Objects** (each edge, node, price and category): completing a non-null or nullable
  object value is the type check and the sub-selection, with no detour through the
  completion of the other kinds of type.

The answers are the ones the general path gives. Anything unusual takes graphql-core's own
path, unchanged: a field without a leaf plan, a request with resolve middleware (an extension
that wraps resolvers), a value that fails to read or serialize, a null for a non-null field,
an object type whose ``is_type_of`` is not strawberry's own. The general path then reports
the error exactly as it always does.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLNonNull, GraphQLObjectType, GraphQLOutputType
from graphql.execution.executor import invalid_return_type_error
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# For each field of a selection: (response name, field details, a leaf's
# (read, serialize, non_null) or None, an object attribute's (read, object type, field type) or
# None). Neither: graphql-core's general path.
FieldPlan = list[tuple[str, Any, Any, Any]]

# strawberry's generated ``is_type_of`` is an isinstance test that ignores the info and never
# awaits; any other predicate keeps the general completion.
_STRAWBERRY_IS_TYPE_OF = "GraphQLCoreConverter.from_object.<locals>._get_is_type_of.<locals>"
_NO_SHORTCUT = object()


def object_shortcut(return_type: GraphQLOutputType) -> GraphQLObjectType | None:
    """The object type a value of ``return_type`` completes as on the short path, or None.

    ``return_type`` is an object type or a non-null one whose ``is_type_of`` is absent or
    strawberry's own. Worked out once per type object and kept on it.
    """
    cached = return_type.__dict__.get("_shop_object_shortcut", _NO_SHORTCUT)
    if cached is not _NO_SHORTCUT:
        return cached  # type: ignore[no-any-return]
    inner = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    found: GraphQLObjectType | None = None
    if isinstance(inner, GraphQLObjectType):
        check = inner.is_type_of
        if check is None or getattr(check, "__qualname__", "").startswith(_STRAWBERRY_IS_TYPE_OF):
            found = inner
    return_type.__dict__["_shop_object_shortcut"] = found
    return found


class ShopExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        # Resolve middleware must see every field: then no shortcut.
        self._shortcut = manager is None or not manager._middleware_resolvers
        # id(grouped field set) -> (the set, its plan); the set is kept alive with its plan so
        # that its id cannot be reused within the request.
        self._plans: dict[int, tuple[Any, FieldPlan]] = {}

    def _field_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> FieldPlan:
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        fields = parent_type.fields
        plan: FieldPlan = []
        for response_name, field_details_list in grouped_field_set.items():
            field_def = fields.get(field_details_list[0].node.name.value)
            leaf = obj = None
            if field_def is not None:
                leaf = getattr(field_def.resolve, "leaf", None)
                read = getattr(field_def.resolve, "read", None)
                object_type = object_shortcut(field_def.type)
                if leaf is None and read is not None and object_type is not None:
                    obj = (read, object_type, field_def.type)
            plan.append((response_name, field_details_list, leaf, obj))
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if not self._shortcut:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        execute_field = self.execute_field
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, leaf, obj in self._field_plan(
                parent_type, grouped_field_set
            ):
                if leaf is not None:
                    read, serialize, non_null = leaf
                    try:
                        value = read(source_value)
                        if value is None:
                            if not non_null:
                                results[response_name] = None
                                continue
                        else:
                            serialized = serialize(value)
                            if serialized is not None and serialized is not Undefined:
                                results[response_name] = serialized
                                continue
                    except Exception:  # noqa: S110 - the general path below reports it
                        pass
                if obj is not None:
                    result = self._object_off(
                        obj,
                        parent_type,
                        source_value,
                        field_details_list,
                        response_name,
                        path,
                        position_context,
                    )
                else:
                    result = execute_field(
                        parent_type,
                        source_value,
                        field_details_list,
                        Path(path, response_name, parent_type.name),
                        position_context,
                    )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                # As graphql-core does: fields already started may fail too; settle them.
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather_fields(results, awaitable_fields)

    def _object_off(
        self,
        step: tuple[Any, GraphQLObjectType, GraphQLOutputType],
        parent_type: GraphQLObjectType,
        source_value: Any,
        field_details_list: Any,
        response_name: str,
        path: Path | None,
        position_context: Any,
    ) -> Any:
        """An object-typed attribute of the parent, completed without a resolve info: read,
        type-checked (strawberry's check ignores the info), then its sub-selection. Errors
        below it end here as on the general path: null for a nullable field, else raised."""
        read, object_type, return_type = step
        field_path = Path(path, response_name, parent_type.name)
        try:
            value = read(source_value)
        except Exception:  # noqa: BLE001 - the general path reads it again and reports it
            value = None
        if value is None or isinstance(value, Exception) or self.is_awaitable(value):
            return self.execute_field(
                parent_type, source_value, field_details_list, field_path, position_context
            )
        try:
            completed = self._complete_object(
                object_type, field_details_list, None, field_path, value, position_context
            )
            if self.is_awaitable(completed):
                return self._await_object(completed, return_type, field_details_list, field_path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, field_path)
            return None
        return completed

    async def _await_object(
        self,
        completed: Any,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    @staticmethod
    async def _gather_fields(results: dict[str, Any], awaitable_fields: list[str]) -> Any:
        if len(awaitable_fields) == 1:
            name = awaitable_fields[0]
            results[name] = await results[name]
        else:
            awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        object_type = object_shortcut(return_type)
        if (
            object_type is None
            or result is None
            or result is Undefined
            or isinstance(result, Exception)
        ):
            return super().complete_value(
                return_type, field_details_list, info, path, result, position_context
            )
        return self._complete_object(
            object_type, field_details_list, info, path, result, position_context
        )

    def _complete_object(
        self,
        object_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A present value of ``object_type``: the type check, then the sub-selection. The info
        may be None: only strawberry's check, which ignores it, gets this far."""
        is_type_of = object_type.is_type_of
        if is_type_of is not None and not is_type_of(result, info):
            raise invalid_return_type_error(object_type, result, field_details_list)
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, field_details_list
        )
        return self.execute_collected_subfields(
            object_type, result, path, grouped_field_set, new_defer_usages, position_context
        )
