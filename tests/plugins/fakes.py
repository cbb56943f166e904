"""Plugins made up by tests, and the checkout calls tests make over HTTP."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from strawberry import relay

from server.models import Product
from server.plugin import Event, PluginInfo, hookimpl
from tests.support.graphql import GraphQLClient

_keys = itertools.count(1)
ADDRESS = {
    "recipientName": "王小明",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "street": "文三路 90 号",
    "postalCode": "310012",
}


class FakePlugin:
    """A plugin object with ``PLUGIN_INFO`` and the given functions as hook implementations."""

    def __init__(
        self,
        name: str,
        *,
        version: str = "1.0.0",
        core_version: str = ">=0.1",
        requires: Iterable[str] = (),
        hookspecs: Any = None,
        optional: Iterable[str] = (),
        **hooks: Callable[..., Any],
    ) -> None:
        self.PLUGIN_INFO = PluginInfo(
            name=name, version=version, core_version=core_version, requires=tuple(requires)
        )
        if hookspecs is not None:
            self.HOOKSPECS = hookspecs
        for hook_name, fn in hooks.items():
            marker = hookimpl(optionalhook=hook_name in set(optional))
            setattr(self, hook_name, marker(_function(fn)))


def _function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A fresh function calling ``fn`` (pluggy only takes functions, and marks them): its
    parameters are read from ``fn`` through ``__wrapped__``, and pluggy passes them in that
    order."""

    def hook(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    hook.__wrapped__ = fn if inspect.isroutine(fn) else fn.__call__  # type: ignore[attr-defined]
    return hook


def gid(type_name: str, ident: int | None) -> str:
    return str(relay.GlobalID(type_name, str(ident)))


CREATE_CART = "mutation($input: CreateCartInput!) { createCart(input: $input) { __typename ... on CreateCartSuccess { cart { token } } } }"
ADD_LINES = "mutation($input: CartAddLinesInput!) { cartAddLines(input: $input) { __typename } }"
PLACE_ORDER = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on PlaceOrderSuccess {
      order { id total { amount } adjustments { source rule label amount { amount } } }
    }
    ... on Error { code message }
  }
}
"""


async def cart_of(gql: GraphQLClient, lines: Iterable[tuple[Product, int]]) -> str:
    """``createCart`` + ``cartAddLines``: the new cart's token."""
    data = await gql(CREATE_CART, {"input": {}})
    assert data["createCart"]["__typename"] == "CreateCartSuccess", data
    token = str(data["createCart"]["cart"]["token"])
    lines_input = [{"productId": gid("Product", p.id), "quantity": q} for p, q in lines]
    data = await gql(ADD_LINES, {"input": {"cartToken": token, "lines": lines_input}})
    assert data["cartAddLines"]["__typename"] == "CartAddLinesSuccess", data
    return token


async def place_order(gql: GraphQLClient, token: str) -> dict[str, Any]:
    """The whole ``placeOrder`` response body (data and errors)."""
    order = {
        "cartToken": token,
        "idempotencyKey": f"k-{next(_keys)}",
        "shippingAddress": ADDRESS,
        "email": "buyer@example.cn",
    }
    return await gql.execute(PLACE_ORDER, {"input": order})


class Recorder:
    """An event-hook implementation that remembers what it was given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
