"""The one parser of the ids clients send: what names a row, and what names none."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from strawberry import relay

from server.graphql.ids import (
    ID_MAX,
    NO_ROW,
    filter_node_id,
    optional_node_id,
    parse_node_id,
    require_node_id,
)
from server.services.errors import NotFound


def gid(type_name: str, key: object) -> str:
    return str(relay.GlobalID(type_name, str(key)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (gid("Order", 1), 1),
        (gid("Order", ID_MAX), ID_MAX),
        (relay.GlobalID("Order", "42"), 42),
    ],
)
def test_an_id_of_the_type_names_its_row(value: Any, expected: int) -> None:
    assert parse_node_id(value, "Order") == expected


@pytest.mark.parametrize(
    "value",
    [
        gid("Order", 2**31),  # past int4, the id columns' type on PostgreSQL
        gid("Order", 2**63),  # past SQLite's 64-bit integers
        gid("Order", 10**40),
        gid("Order", 0),
        gid("Order", -1),
        gid("Order", "01"),
        gid("Order", "+1"),
        gid("Order", " 1"),
        gid("Order", "1 "),
        gid("Order", "1.0"),
        gid("Order", "١"),  # an Arabic-Indic 1: int() reads it, but ids are ASCII
        gid("Order", "²"),  # a superscript: str.isdigit() says yes, int() refuses
        gid("Order", ""),
        gid("Product", 1),
        gid("order", 1),
        "Order:1",
        "",
        "garbage",
        "!!!!",
        base64.b64encode(b"\xff\xfe").decode(),
        base64.b64encode(b"no colon").decode(),
        "\ud800",
        None,
        5,
        ["T3JkZXI6MQ=="],
    ],
)
def test_anything_else_names_no_row(value: Any) -> None:
    assert parse_node_id(value, "Order") is None
    assert filter_node_id(value, "Order") == (None if value is None else NO_ROW)
    with pytest.raises(NotFound) as raised:
        require_node_id(value, "Order", "orderId")
    assert raised.value.field == "orderId"


def test_optional_and_filter_ids_leave_an_absent_id_absent() -> None:
    assert optional_node_id(None, "Order", "orderId") is None
    assert filter_node_id(None, "Order") is None
    assert optional_node_id(gid("Order", 7), "Order", "orderId") == 7
    with pytest.raises(NotFound, match="stock level"):
        optional_node_id(gid("StockLevel", 0), "StockLevel", "id")
