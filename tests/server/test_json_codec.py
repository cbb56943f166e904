"""JSON on the wire and in JSON columns: orjson's speed, the standard library's answers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from server import json_codec

DOCUMENTS: list[Any] = [
    {"query": "{ products { edges { node { id } } } }", "variables": {"first": 20}},
    ["organic", "sale", "新品"],
    {"colour": "red", "sizes": [36, 37.5], "stock": None, "active": True, "nested": {"a": []}},
    "plain",
    0,
    -1.25e-7,
]


@pytest.mark.parametrize("value", DOCUMENTS)
def test_round_trips_agree_with_the_standard_library(value: Any) -> None:
    text = json_codec.dumps(value)
    assert isinstance(text, str)
    assert json.loads(text) == value
    assert json_codec.loads(text) == value
    assert json_codec.loads(text.encode()) == value
    assert json_codec.loads(json.dumps(value)) == json.loads(json.dumps(value))


def test_what_orjson_refuses_is_read_and_written_by_the_standard_library() -> None:
    huge = 2**70
    assert json_codec.loads(f'{{"n": {huge}}}') == {"n": huge}
    assert json_codec.dumps({"n": huge}) == f'{{"n":{huge}}}'
    nan = json_codec.loads('{"x": NaN}')["x"]
    assert nan != nan
    assert json_codec.dumps({1: "a"}) == '{"1":"a"}'
    with pytest.raises(TypeError):
        json_codec.dumps({"amount": Decimal("1.50")})  # as json.dumps: not JSON


@pytest.mark.parametrize("bad", ["{", "", "[1,]", "{'a': 1}"])
def test_invalid_json_raises_the_standard_error(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json_codec.loads(bad)


def test_text_is_written_as_utf8_and_compact() -> None:
    assert (
        json_codec.dumps({"name": "绿茶", "tags": ["a", "b"]}) == '{"name":"绿茶","tags":["a","b"]}'
    )


@pytest.mark.parametrize("depth", [1_100, 1_500, 100_000])
def test_a_document_nested_too_deeply_is_invalid_json_not_a_crash(depth: int) -> None:
    body = '{"query": "{ __typename }", "variables": {"v": ' + "[" * depth + "]" * depth + "}}"
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        json_codec.loads(body)
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        json_codec.loads(body.encode())
