"""Audience rules: a tree of ``all``/``any``/``not`` nodes over conditions, validated strictly
and turned into one SQLAlchemy condition over ``customer`` (docs/insights.md, "Audiences").

A rule is JSON data, whatever wrote it (the GraphQL input tree, a plugin, a stored audience):
each node is an object with exactly one key — ``all`` or ``any`` (a list of 1 to 50 nodes),
``not`` (one node) or a condition kind of the registry
(server.services.audience_conditions) with its parameters. A rule is at most
:data:`MAX_DEPTH` nodes deep and holds at most :data:`MAX_CONDITIONS` conditions. A bad rule
is an InvalidRule whose ``path`` names the bad node (``all[2].not.orders.days``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.services.audience_conditions import (
    CONDITIONS,
    BuildContext,
    Condition,
    ParseContext,
    Reference,
)
from server.services.audience_params import (
    MALFORMED,
    OUT_OF_RANGE,
    UNKNOWN_KIND,
    Params,
    path_join,
)
from server.services.errors import InvalidRule

MAX_DEPTH = 5
MAX_CONDITIONS = 50
TOO_DEEP = "TOO_DEEP"
TOO_MANY_CONDITIONS = "TOO_MANY_CONDITIONS"
COMBINATORS = ("all", "any", "not")


@dataclass(frozen=True)
class Leaf:
    condition: Condition


@dataclass(frozen=True)
class AllOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = Leaf | AllOf | AnyOf | Not


@dataclass(frozen=True)
class Rule:
    """A checked rule: its tree, its normal JSON form (what is stored), and its conditions."""

    root: Node
    data: dict[str, Any]
    conditions: tuple[Condition, ...]

    def where(self, ctx: BuildContext) -> ColumnElement[bool]:
        """The rule as one condition over ``customer``."""
        return _where(self.root, ctx)


def _where(node: Node, ctx: BuildContext) -> ColumnElement[bool]:
    match node:
        case Leaf(condition):
            return condition.where(ctx)
        case AllOf(children):
            return and_(*(_where(child, ctx) for child in children))
        case AnyOf(children):
            return or_(*(_where(child, ctx) for child in children))
        case Not(child):
            return not_(_where(child, ctx))


class _Parser:
    def __init__(self, currency: str) -> None:
        self.ctx = ParseContext(currency=currency)
        self.conditions: list[Condition] = []

    def node(self, raw: Any, path: str, depth: int) -> tuple[Node, dict[str, Any]]:
        if depth > MAX_DEPTH:
            raise InvalidRule(
                TOO_DEEP, path, f"a rule is at most {MAX_DEPTH} levels deep (all, any, not)"
            )
        if not isinstance(raw, Mapping) or len(raw) != 1:
            keys = ", ".join(map(str, raw)) if isinstance(raw, Mapping) else type(raw).__name__
            raise InvalidRule(
                MALFORMED,
                path,
                "a rule node is an object with one key: all, any, not or a condition kind "
                f"(here: {keys or 'none'})",
            )
        [(key, value)] = raw.items()
        here = path_join(path, str(key))
        if key in ("all", "any"):
            if not isinstance(value, list | tuple) or not value:
                raise InvalidRule(MALFORMED, here, f"{key} is a list of at least one rule")
            if len(value) > MAX_CONDITIONS:
                raise InvalidRule(OUT_OF_RANGE, here, f"{key} holds at most {MAX_CONDITIONS} rules")
            parsed = [self.node(item, f"{here}[{i}]", depth + 1) for i, item in enumerate(value)]
            children = tuple(node for node, _ in parsed)
            data = [normal for _, normal in parsed]
            return (AllOf(children) if key == "all" else AnyOf(children)), {key: data}
        if key == "not":
            child, normal = self.node(value, here, depth + 1)
            return Not(child), {key: normal}
        kind = CONDITIONS.get(key) if isinstance(key, str) else None
        if kind is None:
            known = ", ".join([*COMBINATORS, *CONDITIONS])
            raise InvalidRule(UNKNOWN_KIND, here, f"unknown kind {key!r}; one of {known}")
        if len(self.conditions) >= MAX_CONDITIONS:
            raise InvalidRule(
                TOO_MANY_CONDITIONS, here, f"a rule holds at most {MAX_CONDITIONS} conditions"
            )
        params = Params(value, here)
        condition = kind.parse(params, self.ctx)
        params.finish()
        self.conditions.append(condition)
        return Leaf(condition), {key: params.normal}


def parse_rule(raw: Any, *, currency: str) -> Rule:
    """Check a rule's shape and values (not yet that the rows it names exist: see
    :func:`validate_rule`)."""
    parser = _Parser(currency)
    root, data = parser.node(raw, "", 1)
    return Rule(root=root, data=data, conditions=tuple(parser.conditions))


async def validate_rule(session: AsyncSession, raw: Any, *, currency: str) -> Rule:
    """:func:`parse_rule`, and every category and product the rule names exists (one statement
    per table named)."""
    rule = parse_rule(raw, currency=currency)
    await check_references(session, [r for c in rule.conditions for r in c.references()])
    return rule


async def check_references(session: AsyncSession, references: list[Reference]) -> None:
    by_model: dict[Any, list[Reference]] = defaultdict(list)
    for reference in references:
        by_model[reference.model].append(reference)
    for model, wanted in by_model.items():
        ids = {r.id for r in wanted}
        found = set((await session.execute(select(model.id).where(model.id.in_(ids)))).scalars())
        for reference in wanted:
            if reference.id not in found:
                what = model.__name__.lower()
                raise InvalidRule(
                    reference.problem, reference.path, f"{reference.id} names no {what}"
                )
