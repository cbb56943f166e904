"""Filters that plugins add to the core's lists (the ``list_filters`` hook).

A core list takes a ``filter`` input. When that input is declared as a :class:`FilterInput`
naming its list, plugins may add fields to it: each :class:`ListFilter` is one optional input
field plus the function that narrows the list's statement when a client gives the field a value.

Adopting it for a list takes one line where its filter input is declared::

    @strawberry.input
    class OrderFilter(FilterInput, list_name="orders"): ...

and the list's query applies what the client asked for: ``flt.narrow(stmt)`` on the select of
the list's rows, or ``flt.narrowing()`` handed to the service that builds it.

At schema assembly (``server.graphql.assembly``) every field argument typed with a
``FilterInput`` whose list has plugin filters gets, in that schema only, a subclass of the input
with the plugins' fields (same GraphQL name); the core class itself never changes, so schemas of
different plugin sets coexist in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Select

from server.plugins import PluginFailed

HOOK = "list_filters"


@dataclass(frozen=True)
class ListFilter:
    """A filter a plugin adds to a core list (returned by the ``list_filters`` hook).

    ``name`` is the input field's Python name (``min_rating`` is ``minRating`` in GraphQL) and
    ``type`` its GraphQL input type as a Python annotation (``bool``, ``int``, ``str``,
    ``list[str]``, ``strawberry.ID``, a strawberry enum or input type); the field is always
    optional, null by default. ``apply(stmt, value)`` returns ``stmt`` narrowed to the rows that
    match ``value``: the list's query calls it only when the client gave a non-null value,
    with the select of the list's rows (for ``products``: a select over the ``product`` table,
    ``server.models.Product``), after the core's own conditions.
    """

    name: str
    type: Any
    apply: Callable[[Select[Any], Any], Select[Any]]
    description: str = ""


@dataclass(frozen=True)
class AppliedFilter:
    """A plugin's filter with the value a client gave it: called with a statement, narrows it.
    A failure in the plugin's function is a :class:`PluginFailed` naming the plugin."""

    plugin: str
    filter: ListFilter
    value: Any

    def __call__(self, stmt: Select[Any]) -> Select[Any]:
        try:
            return self.filter.apply(stmt, self.value)
        except Exception as exc:
            raise PluginFailed(self.plugin, HOOK, exc) from exc


class FilterInput:
    """Base of a core list's filter input that plugins may add fields to.

    Subclass it with the list's name (``class ProductFilter(FilterInput, list_name="products")``)
    and decorate the subclass with ``@strawberry.input`` as usual.
    """

    # The list's name, as plugins' ``list_filters`` answers key it.
    list_name: ClassVar[str]
    # (plugin, filter) of every field plugins added: set on the schema's own subclass only.
    added_filters: ClassVar[tuple[tuple[str, ListFilter], ...]] = ()

    def __init_subclass__(cls, list_name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if list_name is not None:
            cls.list_name = list_name

    def narrowing(self) -> tuple[AppliedFilter, ...]:
        """The plugins' filters this input gave a value: each narrows a select of the list."""
        applied = []
        for plugin, flt in self.added_filters:
            value = getattr(self, flt.name, None)
            if value is not None:
                applied.append(AppliedFilter(plugin, flt, value))
        return tuple(applied)

    def narrow(self, stmt: Select[Any]) -> Select[Any]:
        """``stmt`` narrowed by every plugin filter this input gave a value."""
        for applied in self.narrowing():
            stmt = applied(stmt)
        return stmt
