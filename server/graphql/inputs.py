"""Fields plugins add to core input types (a coupon code on checkout, a delivery note).

A plugin adds fields with the ``graphql_type_extensions`` hook, naming the core input as it
names an object type; each field must have a default, so that clients that never heard of the
plugin stay valid. The schema shows the fields; the core's resolver gets its input as before,
and whoever needs a plugin's values (the plugin's hooks, its own code) reads them with
:func:`input_extras`: one instance of the plugin's own input class per plugin.

Only a root mutation's arguments take plugin fields (``input`` of ``placeOrder``, …), not
inputs nested inside them. Plugin input fields are built-in scalars, enums or lists of them.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.schema.name_converter import NameConverter
from strawberry.types import Info, get_object_definition
from strawberry.types.arguments import convert_argument
from strawberry.types.field import StrawberryField

_EXTRAS = "__shopgraph_input_extras__"
_NONE: Mapping[str, Any] = MappingProxyType({})
_names = NameConverter()


@dataclass(frozen=True)
class InputExtension:
    """A plugin's fields on one core input type: the plugin's own ``@strawberry.input``."""

    owner: str
    cls: type[Any]


def input_extras(value: object) -> Mapping[str, Any]:
    """``{plugin name: instance of its input class}`` for the plugin fields of a core input
    (defaults included when the client left them out); empty for any other object."""
    extras: Mapping[str, Any] = getattr(value, _EXTRAS, _NONE)
    return extras


class PluginInputs(FieldExtension):
    """Around a root field whose arguments plugins extended: builds each plugin's part of the
    arguments from what the client sent, and attaches them to the core input object."""

    def __init__(self, arguments: Mapping[str, tuple[str, Sequence[InputExtension]]]) -> None:
        # python argument name -> (GraphQL argument name, the plugins' extensions of its type)
        self.arguments = arguments

    def _attach(self, info: Info, kwargs: dict[str, Any]) -> None:
        raw_arguments = info.selected_fields[0].arguments
        schema = info.schema
        for python_name, (graphql_name, extensions) in self.arguments.items():
            value = kwargs.get(python_name)
            if value is None:
                continue
            raw = raw_arguments.get(graphql_name)
            sent = raw if isinstance(raw, Mapping) else {}
            extras = {
                ext.owner: convert_argument(
                    sent, ext.cls, schema.schema_converter.scalar_registry, schema.config
                )
                for ext in extensions
            }
            object.__setattr__(value, _EXTRAS, MappingProxyType(extras))

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        self._attach(info, kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        self._attach(info, kwargs)
        value = next_(source, info, **kwargs)
        return await value if inspect.isawaitable(value) else value


def attach_plugin_inputs(root: type[Any], extended: Mapping[str, Sequence[InputExtension]]) -> None:
    """Give the fields of ``root`` (a root type made for one build) whose arguments are of an
    ``extended`` input type (by GraphQL name) the :class:`PluginInputs` extension. The fields
    are copied first: the originals belong to the domain classes, which every build shares."""
    if not extended:
        return
    definition = get_object_definition(root, strict=True)
    fields = []
    for field in definition.fields:
        arguments: dict[str, tuple[str, Sequence[InputExtension]]] = {}
        for argument in field.arguments:
            target = get_object_definition(getattr(argument.type, "of_type", argument.type))
            if target is not None and target.name in extended:
                graphql_name = _names.from_argument(argument)
                arguments[argument.python_name] = (graphql_name, extended[target.name])
        if arguments:
            field = copy_with_extension(field, PluginInputs(arguments))
        fields.append(field)
    definition.fields = fields


def copy_with_extension(field: StrawberryField, extension: FieldExtension) -> StrawberryField:
    extended = copy.copy(field)
    extended.extensions = [*field.extensions, extension]
    return extended
