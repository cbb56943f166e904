"""Fields plugins add to the core's input types: to any input through
``graphql_type_extensions`` (a coupon code on checkout, a delivery note), and to a list's
``filter`` through ``list_filters`` (see server.graphql.list_filters).

One mechanism serves both. At schema assembly every argument typed with an extended core input
gets, in that schema only, a subclass of the input with the plugins' fields (same GraphQL name):
strawberry builds it from what the client sent like any input, and the core class itself never
changes, so schemas of different plugin sets coexist in one process. The core's resolver gets
an instance of the subclass, which is an instance of the class it declared.

A plugin's field must have a default (clients that never heard of the plugin stay valid). Its
values reach the plugin through :func:`input_extras` (one instance of the plugin's own input
class per plugin); a filter's through the filter input's ``narrowing()``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import strawberry
from strawberry.annotation import StrawberryAnnotation
from strawberry.schema.name_converter import NameConverter
from strawberry.types import get_object_definition
from strawberry.types.base import StrawberryOptional
from strawberry.types.field import StrawberryField

from server.graphql.list_filters import FilterInput, ListFilter

# On a schema's subclass of a core input: the plugins' input classes whose fields it carries.
_PARTS = "plugin_inputs"
_names = NameConverter()

Clash = Callable[[str, str, str], Exception]


@dataclass(frozen=True)
class InputExtension:
    """A plugin's fields on one core input type: the plugin's own ``@strawberry.input``."""

    owner: str
    cls: type[Any]


def input_extras(value: object) -> Mapping[str, Any]:
    """``{plugin name: instance of its input class}`` for the fields plugins added to a core
    input (defaults where the client sent nothing); empty for any other object."""
    parts: Sequence[InputExtension] = getattr(type(value), _PARTS, ())
    return MappingProxyType(
        {
            part.owner: part.cls(
                **{f.name: getattr(value, f.name) for f in dataclasses.fields(part.cls) if f.init}
            )
            for part in parts
        }
    )


def check_plugin_input(owner: str, type_name: str, cls: type[Any], error: type[Exception]) -> None:
    """A plugin's fields on a core input must all have defaults: old clients must stay valid."""
    for fld in get_object_definition(cls, strict=True).fields:
        if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise error(
                f"plugin {owner!r} adds {type_name}.{_names.from_field(fld)} without a "
                "default: fields added to a core input must be optional"
            )


def _input_class_of(argument: Any) -> tuple[type[Any], bool] | None:
    """(the input class, whether optional) of a field argument typed with an input."""
    try:
        tp = argument.type
    except Exception:  # noqa: BLE001 - an unresolvable annotation fails later, in strawberry
        return None
    optional = isinstance(tp, StrawberryOptional)
    inner = tp.of_type if optional else tp
    definition = get_object_definition(inner)
    if isinstance(inner, type) and definition is not None and definition.is_input:
        return inner, optional
    return None


def _subclass(
    base: type[Any],
    extensions: Sequence[InputExtension],
    filters: Sequence[tuple[str, ListFilter]],
    error: type[Exception],
) -> type[Any]:
    """A subclass of the core input ``base`` with the plugins' fields, under its GraphQL name."""
    definition = get_object_definition(base, strict=True)
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": base.__module__}
    for extension in extensions:
        for fld in get_object_definition(extension.cls, strict=True).fields:
            annotations[fld.python_name] = fld.type
            namespace[fld.python_name] = copy.copy(fld)
    for owner, flt in filters:
        try:
            annotations[flt.name] = flt.type | None
        except TypeError as exc:
            raise error(
                f"plugin {owner!r}: filter {flt.name!r} has no usable type ({flt.type!r})"
            ) from exc
        namespace[flt.name] = strawberry.field(default=None, description=flt.description or None)
    if extensions:
        namespace[_PARTS] = (*getattr(base, _PARTS, ()), *extensions)
    if filters:
        namespace["added_filters"] = (*getattr(base, "added_filters", ()), *filters)
    cls = type(base.__name__, (base,), namespace)
    return strawberry.input(name=definition.name, description=definition.description)(cls)


def extended_input_fields(
    fields_by_type: Mapping[str, list[StrawberryField]],
    extensions: Mapping[str, Sequence[InputExtension]],
    filters: Sequence[tuple[str, Mapping[str, Sequence[ListFilter]]]],
    *,
    clash: Clash,
    error: type[Exception],
) -> dict[str, list[StrawberryField]]:
    """``{type name: its fields}`` for the types (of ``fields_by_type``: every type's fields)
    with an argument whose input plugins extend — ``extensions`` by input name, ``filters`` as
    the ``list_filters`` answers, ``(owner, {list name: [ListFilter]})`` — copies of those
    fields taking this schema's subclass of the input. Name clashes are ``clash(what, a, b)``."""
    if not extensions and not filters:
        return {}
    by_name: dict[str, type[Any]] = {}
    lists: dict[str, type[FilterInput]] = {}
    for type_fields in fields_by_type.values():
        for fld in type_fields:
            for argument in fld.arguments:
                found = _input_class_of(argument)
                if found is None:
                    continue
                cls = found[0]
                by_name.setdefault(get_object_definition(cls, strict=True).name, cls)
                if issubclass(cls, FilterInput):
                    lists.setdefault(cls.list_name, cls)

    owners: dict[tuple[type[Any], str], str] = {}

    def claim(cls: type[Any], name: str, owner: str) -> None:
        definition = get_object_definition(cls, strict=True)
        if name in {_names.from_field(f) for f in definition.fields}:
            raise clash(f"{definition.name}.{name}", "core", owner)
        if (cls, name) in owners:
            raise clash(f"{definition.name}.{name}", owners[cls, name], owner)
        owners[cls, name] = owner

    added: dict[type[Any], list[InputExtension]] = {}
    for type_name, parts in extensions.items():
        base = by_name.get(type_name)
        if base is None:
            owner = parts[0].owner
            raise error(
                f"plugin {owner!r} extends input {type_name!r}, which no field takes as an "
                "argument (inputs nested in other inputs take no plugin fields)"
            )
        for part in parts:
            for fld in get_object_definition(part.cls, strict=True).fields:
                claim(base, _names.from_field(fld), part.owner)
            added.setdefault(base, []).append(part)
    filtered: dict[type[Any], list[tuple[str, ListFilter]]] = {}
    for owner, mapping in filters:
        for list_name, list_filters in dict(mapping).items():
            base = lists.get(list_name)
            if base is None:
                raise error(
                    f"plugin {owner!r} adds filters to list {list_name!r}, which is not in "
                    "the schema (or takes no filter plugins may extend)"
                )
            for flt in list_filters:
                if not isinstance(flt, ListFilter) or not flt.name.isidentifier():
                    raise error(
                        f"plugin {owner!r}: list_filters[{list_name!r}] must be ListFilter "
                        f"values named by Python identifiers, not {flt!r}"
                    )
                claim(base, _names.apply_naming_config(flt.name), owner)
                filtered.setdefault(base, []).append((owner, flt))

    subclasses = {
        base: _subclass(base, added.get(base, ()), filtered.get(base, ()), error)
        for base in {*added, *filtered}
    }
    replaced: dict[str, list[StrawberryField]] = {}
    for type_name, type_fields in fields_by_type.items():
        fields = list(type_fields)
        for index, fld in enumerate(fields):
            arguments = list(fld.arguments)
            for position, argument in enumerate(arguments):
                found = _input_class_of(argument)
                if found is None or found[0] not in subclasses:
                    continue
                sub = subclasses[found[0]]
                arguments[position] = copy.copy(argument)
                arguments[position].type_annotation = StrawberryAnnotation(
                    sub | None if found[1] else sub
                )
            if arguments != fld.arguments:
                fields[index] = copy.copy(fld)
                fields[index].arguments = arguments
                replaced[type_name] = fields
    return replaced
