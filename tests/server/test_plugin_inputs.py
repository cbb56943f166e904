"""Fields plugins add to core input types: in the schema, optional, and their values given to
whoever asks (``input_extras``), one instance of the plugin's own input class per plugin."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry

from server.config import Settings
from server.graphql.assembly import SchemaAssemblyError, build_schema
from server.graphql.inputs import input_extras
from server.plugins import PluginRuntime, load_plugins
from tests.plugins.fakes import FakePlugin


@strawberry.input
class EchoInput:
    text: str


@strawberry.type
class EchoQuery:
    @strawberry.field
    def ping(self) -> str:
        return "pong"


@strawberry.type
class EchoMutation:
    @strawberry.mutation
    def echo(self, input: EchoInput) -> str:
        parts = [input.text]
        for owner, extra in sorted(input_extras(input).items()):
            parts.append(f"{owner}={vars(extra)}")
        return " ".join(parts)


class EchoDomain:
    QUERIES = [EchoQuery]
    MUTATIONS = [EchoMutation]
    TYPES: list[type[Any]] = []


@strawberry.input
class GiftNote:
    gift_note: str | None = None
    wrap: bool = False


@strawberry.input
class Coupon:
    coupon_codes: list[str] | None = None


def runtime(*plugins: Any) -> PluginRuntime:
    return load_plugins(Settings(plugins=""), extra=plugins)


def gifts(**hooks: Any) -> FakePlugin:
    return FakePlugin("gifts", graphql_type_extensions=lambda: {"EchoInput": [GiftNote]}, **hooks)


def coupons() -> FakePlugin:
    return FakePlugin("coupons", graphql_type_extensions=lambda: {"EchoInput": [Coupon]})


async def echo(schema: strawberry.Schema, input_literal: str, variables: Any = None) -> Any:
    query = (
        "mutation($input: EchoInput!) { echo(input: $input) }"
        if variables is not None
        else f"mutation {{ echo(input: {input_literal}) }}"
    )
    result = await schema.execute(query, variable_values=variables)
    assert result.errors is None, result.errors
    return result.data["echo"] if result.data else None


def test_plugin_fields_appear_on_the_core_input_as_optional_fields() -> None:
    sdl = build_schema([EchoDomain], runtime(gifts(), coupons())).as_str()
    block = sdl[sdl.index("input EchoInput") :].split("}")[0]
    assert "text: String!" in block
    assert "giftNote: String = null" in block
    assert "wrap: Boolean! = false" in block
    assert "couponCodes: [String!] = null" in block


async def test_each_plugin_reads_its_own_fields_literal_and_variables() -> None:
    schema = build_schema([EchoDomain], runtime(gifts(), coupons()))
    answer = await echo(schema, '{text: "hi", giftNote: "for you", couponCodes: ["A1"]}')
    assert answer == (
        "hi coupons={'coupon_codes': ['A1']} gifts={'gift_note': 'for you', 'wrap': False}"
    )
    answer = await echo(schema, "", variables={"input": {"text": "hi", "wrap": True}})
    assert answer == "hi coupons={'coupon_codes': None} gifts={'gift_note': None, 'wrap': True}"


async def test_without_the_plugin_the_core_input_is_untouched_and_rejects_its_fields() -> None:
    with_plugin = build_schema([EchoDomain], runtime(gifts()))
    plain = build_schema([EchoDomain], runtime())
    assert "giftNote" not in plain.as_str()
    assert await echo(plain, '{text: "hi"}') == "hi"
    refused = await plain.execute('mutation { echo(input: {text: "hi", giftNote: "x"}) }')
    assert refused.errors and "giftNote" in refused.errors[0].message
    # Building the plain schema after the extended one did not leak the field into it.
    assert "giftNote" in with_plugin.as_str()


def test_a_required_plugin_input_field_is_an_assembly_error() -> None:
    @strawberry.input
    class Required:
        must: str

    plugin = FakePlugin("strict", graphql_type_extensions=lambda: {"EchoInput": [Required]})
    with pytest.raises(SchemaAssemblyError, match="EchoInput.must without a default"):
        build_schema([EchoDomain], runtime(plugin))


def test_an_object_type_cannot_extend_an_input_and_two_plugins_cannot_share_a_field() -> None:
    @strawberry.type
    class Output:
        gift_note: str | None = None

    wrong = FakePlugin("wrong", graphql_type_extensions=lambda: {"EchoInput": [Output]})
    with pytest.raises(SchemaAssemblyError, match="is not an input type"):
        build_schema([EchoDomain], runtime(wrong))
    twin = FakePlugin("twin", graphql_type_extensions=lambda: {"EchoInput": [GiftNote]})
    with pytest.raises(SchemaAssemblyError, match="EchoInput.giftNote is defined by plugin"):
        build_schema([EchoDomain], runtime(gifts(), twin))
