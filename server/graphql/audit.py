"""Auditing of mutations run by staff and API keys.

``run_mutation`` writes the row in the mutation's own transaction (``write_in_transaction``).
Every root mutation field is wrapped (:func:`record_outcomes`) so that its row says what the
payload really was: a typed error answered after a commit (a declined payment) corrects the
row, and a call that answered without reaching ``run_mutation`` (an input error returned as
data) gets a row of its own. :class:`AuditTrail` is the safety net for root mutation fields that
raised — refused by a permission check, failed with a GraphQL error — so no mutation a staff
user or an app calls goes unrecorded.

A result is the payload's type (``UpdateProductSuccess``), ``Type:CODE`` for a typed error
(``NotFoundError:NOT_FOUND``), or the GraphQL error code of a call that raised (``FORBIDDEN``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
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
    parse,
)
from graphql.utilities import value_from_ast_untyped
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.types import get_object_definition

from server.auth import Viewer, ViewerKind
from server.db import mark_write
from server.graphql.context import Context, Info
from server.graphql.errors import Error
from server.graphql.structure import graphql_structure
from server.services import audit

ERROR_INTERFACE = "Error"


@dataclass
class _Written:
    """The audit row written for the root mutation field being resolved."""

    entry_id: int | None = None
    result: str = ""


# Set around each root mutation field's resolver; mutation fields run one after another, and
# ``run_mutation`` runs inside the resolver, so the writers below find the field's slot here.
_written: ContextVar[_Written | None] = ContextVar("shopgraph_audit_written", default=None)


def _field_node(info: Info) -> FieldNode | None:
    """The document's node of the root field being resolved."""
    key = response_key(info)
    selection_set = info.operation.selection_set
    found = next((n for n in _root_fields(selection_set, {}) if _key(n) == key), None)
    location = info.operation.loc
    if found is None and location is not None:
        # Selected through a fragment spread: the fragment is in the request's document.
        document = parse(location.source)
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        found = next((n for n in _root_fields(selection_set, fragments) if _key(n) == key), None)
    return found


def arguments(info: Info) -> dict[str, Any]:
    """The field's arguments as the client sent them (variables substituted)."""
    node = _field_node(info)
    variables = info.variable_values or {}
    return {
        arg.name.value: value_from_ast_untyped(arg.value, variables)
        for arg in (node.arguments if node is not None else ()) or ()
    }


def success_type_name(info: Info) -> str:
    """The name of the type a successful call of this mutation returns (the union member that
    is not an Error), e.g. ``UpdateProductSuccess``."""
    mutation = graphql_structure(info.schema).mutation_type
    field = mutation.fields.get(info.field_name) if mutation is not None else None
    if field is None:
        return "SUCCESS"
    named = get_named_type(field.type)
    if isinstance(named, GraphQLUnionType):
        for member in named.types:
            if ERROR_INTERFACE not in {i.name for i in member.interfaces}:
                return member.name
    return named.name


def type_name(value: Any) -> str:
    definition = getattr(type(value), "__strawberry_definition__", None)
    return definition.name if definition is not None else type(value).__name__


def outcome(value: Any) -> str:
    """The audit result of a payload: ``NotFoundError:NOT_FOUND`` for a typed error (its code
    tells apart the failures one type covers), else the payload's type name."""
    if isinstance(value, Error):
        return f"{type_name(value)}:{value.code}"
    return type_name(value)


def _outcome_of(value: Any, info: Info) -> str:
    if isinstance(value, Error) or hasattr(type(value), "__strawberry_definition__"):
        return outcome(value)
    # A scalar or null payload: what run_mutation records for a success.
    return success_type_name(info)


def response_key(info: Info) -> str:
    return str(info.path.key)


async def _record(info: Info, actor: Viewer, result: str) -> None:
    ctx = info.context
    ctx.audited.add(response_key(info))
    row = await audit.record(ctx.db.session, actor, info.field_name, arguments(info), result)
    written = _written.get()
    if written is not None:
        written.entry_id, written.result = row.id, row.result


async def _record_alone(info: Info, actor: Viewer, result: str) -> None:
    """The row in a transaction of its own. The caller holds the database lock."""
    session = info.context.db.session
    if session.in_transaction():
        await session.commit()
    await mark_write(session)
    await _record(info, actor, result)
    await session.commit()


async def write_in_transaction(info: Info, result: str) -> None:
    """Add the audit row for the current mutation to the open transaction (staff and apps)."""
    ctx = info.context
    if not audit.is_audited(ctx.viewer):
        return
    await _record(info, ctx.viewer, result)


async def write_alone(info: Info, result: str) -> None:
    """Write the audit row in a transaction of its own (the mutation's was rolled back).
    The caller holds the database lock."""
    ctx = info.context
    if not audit.is_audited(ctx.viewer):
        return
    await _record_alone(info, ctx.viewer, result)


async def write_sign_in(info: Info, payload: Any, staff_id: int | None) -> None:
    """Audit a staff sign-in attempt, whoever calls (usually nobody is signed in yet): failed
    attempts are how password guessing shows. A success is recorded under the staff user who
    signed in, a failure under the caller (``anonymous``)."""
    ctx = info.context
    actor = ctx.viewer if staff_id is None else Viewer(kind=ViewerKind.STAFF, staff_id=staff_id)
    async with ctx.db.lock:
        await _record_alone(info, actor, outcome(payload))


async def _settle(info: Info, written: _Written, value: Any) -> None:
    """Make the audit row of a root mutation field say what its payload is."""
    ctx = info.context
    if not isinstance(ctx, Context):
        return
    if written.entry_id is not None:
        result = _outcome_of(value, info)
        if written.result != result[: audit.MAX_RESULT]:
            # Committed as a success, answered with a typed error (a declined payment).
            async with ctx.db.lock:
                session = ctx.db.session
                if session.in_transaction():
                    await session.commit()
                await mark_write(session)
                await audit.set_result(session, written.entry_id, result)
                await session.commit()
        return
    if response_key(info) in ctx.audited or not audit.is_audited(ctx.viewer):
        return
    # Answered without reaching run_mutation (e.g. a malformed id returned as a typed error).
    async with ctx.db.lock:
        await _record_alone(info, ctx.viewer, _outcome_of(value, info))


class RecordOutcome(FieldExtension):
    """Around a root mutation field: gives ``run_mutation`` the slot it records its row in,
    then makes the row say what the payload really was."""

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        written = _Written()
        token = _written.set(written)
        try:
            value = next_(source, info, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        finally:
            _written.reset(token)
        await _settle(info, written, value)
        return value


def record_outcomes(mutation: type[Any]) -> None:
    """Give every field of the root ``mutation`` type, made for one build, the
    :class:`RecordOutcome` extension, outermost, so that its audit row records the payload it
    answered with.

    The fields are copied first: the originals belong to the domain classes, which every build
    shares. A field extension rather than a schema extension's ``resolve`` hook, which would
    wrap every field of every query.
    """
    definition = get_object_definition(mutation, strict=True)
    extension = RecordOutcome()
    copies = []
    for field in definition.fields:
        recorded = copy.copy(field)
        recorded.extensions = [*field.extensions, extension]
        copies.append(recorded)
    definition.fields = copies


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

    async def on_operation(self) -> Any:
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
