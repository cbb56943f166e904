"""Auditing of mutations run by staff and API keys.

``run_mutation`` writes the row in the mutation's own transaction (``write_in_transaction``).
:class:`AuditTrail` is the safety net for root mutation fields that never reached
``run_mutation`` — refused by a permission check, failed with a GraphQL error, or written by a
plugin some other way — so no mutation a staff user or an app calls goes unrecorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)
from graphql.utilities import value_from_ast_untyped
from strawberry.extensions import SchemaExtension

from schema.context import Context, Info
from server.db import mark_write
from server.services import audit

ERROR_INTERFACE = "Error"


def arguments(info: Info) -> dict[str, Any]:
    """The field's arguments as the client sent them (variables substituted)."""
    raw = info._raw_info
    variables = raw.variable_values or {}
    return {
        arg.name.value: value_from_ast_untyped(arg.value, variables)
        for arg in raw.field_nodes[0].arguments or ()
    }


def success_type_name(info: Info) -> str:
    """The name of the type a successful call of this mutation returns (the union member that
    is not an Error), e.g. ``UpdateProductSuccess``."""
    named = get_named_type(info._raw_info.return_type)
    if isinstance(named, GraphQLUnionType):
        for member in named.types:
            if ERROR_INTERFACE not in {i.name for i in member.interfaces}:
                return member.name
    return named.name if named is not None else "SUCCESS"


def type_name(value: Any) -> str:
    definition = getattr(type(value), "__strawberry_definition__", None)
    return definition.name if definition is not None else type(value).__name__


def response_key(info: Info) -> str:
    return str(info.path.key)


async def write_in_transaction(info: Info, result: str) -> None:
    """Add the audit row for the current mutation to the open transaction (staff and apps)."""
    ctx = info.context
    if not audit.is_audited(ctx.viewer):
        return
    ctx.audited.add(response_key(info))
    await audit.record(ctx.db.session, ctx.viewer, info.field_name, arguments(info), result)


async def write_alone(info: Info, result: str) -> None:
    """Write the audit row in a transaction of its own (the mutation's was rolled back).
    The caller holds the database lock."""
    ctx = info.context
    if not audit.is_audited(ctx.viewer):
        return
    session = ctx.db.session
    if session.in_transaction():
        await session.commit()
    await mark_write(session)
    ctx.audited.add(response_key(info))
    await audit.record(session, ctx.viewer, info.field_name, arguments(info), result)
    await session.commit()


def _root_fields(selection_set: SelectionSetNode, fragments: dict[str, Any]) -> Iterator[FieldNode]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _root_fields(fragment.selection_set, fragments)


class AuditTrail(SchemaExtension):
    """After a mutation operation by staff or an app, audit every root field that was not
    audited by ``run_mutation`` (in its own, short transaction: nothing else changed)."""

    async def on_operation(self) -> Any:  # type: ignore[override]
        yield
        ctx = self.execution_context.context
        if not isinstance(ctx, Context) or not audit.is_audited(ctx.viewer):
            return
        document = self.execution_context.graphql_document
        result = self.execution_context.result
        if document is None or result is None:
            return
        data = getattr(result, "data", None)
        errors = getattr(result, "errors", None) or []
        if data is None and not any(getattr(e, "path", None) for e in errors):
            return  # refused before execution (syntax, validation, limits): nothing ran
        operation = self._operation(document)
        if operation is None or operation.operation is not OperationType.MUTATION:
            return
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        missing = [
            node
            for node in _root_fields(operation.selection_set, fragments)
            if node.name.value != "__typename" and _key(node) not in ctx.audited
        ]
        if not missing:
            return
        variables = self.execution_context.variables or {}
        async with ctx.db.lock:
            session = ctx.db.session
            if session.in_transaction():
                await session.commit()
            await mark_write(session)
            for node in missing:
                args = {
                    a.name.value: value_from_ast_untyped(a.value, variables)
                    for a in node.arguments or ()
                }
                outcome = _outcome(_key(node), data or {}, errors)
                await audit.record(session, ctx.viewer, node.name.value, args, outcome)
            await session.commit()

    def _operation(self, document: Any) -> OperationDefinitionNode | None:
        name = self.execution_context.operation_name
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if name is None:
            return operations[0] if len(operations) == 1 else None
        return next((o for o in operations if o.name and o.name.value == name), None)


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _outcome(key: str, data: dict[str, Any], errors: list[Any]) -> str:
    for error in errors:
        path = getattr(error, "path", None) or []
        if path and path[0] == key:
            code = (getattr(error, "extensions", None) or {}).get("code")
            return str(code) if code else "ERROR"
    value = data.get(key)
    if isinstance(value, dict) and value.get("__typename"):
        return str(value["__typename"])
    return "COMPLETED"
