"""Generated from the schema: every ID and String a client can send, at any depth of any root
field's arguments or of a field's below the root (reached from a Query field), is tried with
bad values on SQLite and PostgreSQL, against one live server per backend, as a customer and as
a staff user.

- IDs: out of the id columns' range, zero and negative, non-canonical, malformed, of an
  unknown type, of another type, and values of the wrong GraphQL type. A query answers them
  like a missing object (null, an empty list) and a mutation with a typed error; the only
  GraphQL errors allowed are permission refusals and, for the wrong GraphQL type, variable
  coercion errors. Nothing is logged at ERROR.
- Strings (and IDs): one character over their bound is refused before execution with
  ``STRING_TOO_LONG`` naming the argument path and the bound, and nothing is written; a value
  exactly at its bound is not refused by the bounds.

A field added to the schema is covered without editing this file.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import shutil
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    build_schema,
    get_named_type,
    get_nullable_type,
    is_enum_type,
    is_input_object_type,
    is_interface_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    is_union_type,
)
from sqlalchemy import func, select
from sqlmodel import SQLModel
from strawberry import relay

from server import migrate
from server.app import create_app
from server.config import Settings
from server.db import create_engine, session_factory
from server.graphql.input_bounds import STRING_TOO_LONG, string_bound
from server.models import StockLevel
from server.plugins import load_plugins
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.orders import ADD_LINES, ADDRESS, CREATE_CART, PLACE_ORDER, gid, make_product
from tests.support.server import LiveServer

pytestmark = pytest.mark.heavy

ROOTS = ("Query", "Mutation")
ALLOWED_CODES = {"FORBIDDEN", "UNAUTHENTICATED"}  # permission refusals
BOUND_CODES = {"STRING_TOO_LONG", "LIST_TOO_LONG", "JSON_TOO_LARGE"}
ID_BATCH = 29  # aliases per request (the alias limit is 30)
# Values of a wrong GraphQL type per request: each may raise up to three coercion errors (the
# probe and the required ids beside it, which get the probe too), and graphql-core stops
# coercing a request's variables at 50.
WRONG_TYPE_BATCH = 14
LENGTH_BATCH = 10  # the bounds report at most 10 values per request


@dataclass(frozen=True)
class Position:
    """Where a client sends an ID or a String: a root field and the path to the value; for an
    argument of a field below the root, the fields selected from the root field down to it
    (``via``) and the type that field is on (``owner``)."""

    root: str
    field: str
    path: tuple[str | int, ...]  # argument, then input fields; 0 stands for a list item
    leaf: str  # "ID" or "String"
    via: tuple[str, ...] = ()
    owner: str = ""

    @property
    def name(self) -> str:
        return next(str(p) for p in reversed(self.path) if isinstance(p, str))

    @property
    def coordinate(self) -> str:
        """The field taking the argument, as the bounds name it (``Customer.orders``)."""
        return f"{self.owner}.{self.via[-1]}" if self.via else f"{self.root}.{self.field}"

    @property
    def label(self) -> str:
        fields = ".".join((self.field, *self.via))
        return f"{self.root}.{fields}({'.'.join(map(str, self.path))})"


@dataclass
class Shop:
    """The server of one backend and what the probes need to know about its data."""

    url: str
    schema: GraphQLSchema
    tokens: dict[str, str | None]
    rows: dict[str, int]  # a real row of some Node types: Product -> its id
    database_url: str
    # One keep-alive client for the module's thousands of probes.
    http: httpx.Client


# ---- the schema --------------------------------------------------------------------------


def _positions_in(
    tp: GraphQLInputType, path: tuple[str | int, ...], seen: frozenset[str]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    inner = get_nullable_type(tp)  # type: ignore[type-var]
    if is_list_type(inner):
        yield from _positions_in(inner.of_type, (*path, 0), seen)  # type: ignore[attr-defined]
    elif is_input_object_type(inner):
        if inner.name in seen:  # type: ignore[attr-defined]
            return
        for name, field in inner.fields.items():  # type: ignore[attr-defined]
            yield from _positions_in(field.type, (*path, name), seen | {inner.name})  # type: ignore[attr-defined]
    elif get_named_type(inner).name in ("ID", "String"):
        yield path, get_named_type(inner).name


def _object_type(tp: Any) -> GraphQLObjectType | None:
    named = get_named_type(tp)
    return named if is_object_type(named) else None


def routes(schema: GraphQLSchema) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The shortest way to each object type from a Query field, through fields that need no
    argument: type name -> (the root field, the fields selected below it)."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    query = schema.get_type("Query")
    assert is_object_type(query)
    queue: deque[tuple[GraphQLObjectType, str | None, tuple[str, ...]]] = deque([(query, None, ())])
    while queue:
        tp, root_field, via = queue.popleft()
        for name, field in tp.fields.items():
            target = _object_type(field.type)
            if target is None or target.name in ROOTS or target.name in found:
                continue
            if any(_required(arg) for arg in field.args.values()):
                continue
            route = (name, ()) if root_field is None else (root_field, (*via, name))
            found[target.name] = route
            queue.append((target, *route))
    return found


def positions(schema: GraphQLSchema, leaf: set[str]) -> list[Position]:
    """Every position of ``leaf`` values: the root fields' arguments, then the arguments of
    fields below the root, reached from the root by :func:`routes`."""
    found = []
    for root in ROOTS:
        root_type = schema.get_type(root)
        for field_name, field in root_type.fields.items():  # type: ignore[union-attr]
            for arg_name, arg in field.args.items():
                for path, kind in _positions_in(arg.type, (arg_name,), frozenset()):
                    if kind in leaf:
                        found.append(Position(root, field_name, path, kind))
    reach = routes(schema)
    for tp in schema.type_map.values():
        # Subscriptions are served over WebSocket only: tests/server/test_live.py checks their
        # ids (malformed, another type's, missing, someone else's) and bounds there.
        if (
            not is_object_type(tp)
            or tp.name in (*ROOTS, "Subscription")
            or tp.name.startswith("__")
        ):
            continue
        if tp.name not in reach:
            continue  # unreachable_positions names it
        root_field, via = reach[tp.name]
        for field_name, field in tp.fields.items():  # type: ignore[attr-defined]
            for arg_name, arg in field.args.items():
                for path, kind in _positions_in(arg.type, (arg_name,), frozenset()):
                    if kind in leaf:
                        found.append(
                            Position("Query", root_field, path, kind, (*via, field_name), tp.name)
                        )
    return found


def unreachable_positions(schema: GraphQLSchema) -> list[str]:
    """Fields below the root taking an ID or a String that no Query field leads to (without
    arguments): not reached by this test."""
    reach = routes(schema)
    out = []
    for tp in schema.type_map.values():
        # Subscriptions are served over WebSocket only: tests/server/test_live.py checks their
        # ids (malformed, another type's, missing, someone else's) and bounds there.
        if (
            not is_object_type(tp)
            or tp.name in (*ROOTS, "Subscription")
            or tp.name.startswith("__")
        ):
            continue
        for field_name, field in tp.fields.items():  # type: ignore[attr-defined]
            for arg_name, arg in field.args.items():
                if tp.name not in reach and any(
                    True for _ in _positions_in(arg.type, (arg_name,), frozenset())
                ):
                    out.append(f"{tp.name}.{field_name}({arg_name})")
    return out


def node_types(schema: GraphQLSchema) -> list[str]:
    node = schema.get_type("Node")
    return sorted(t.name for t in schema.get_possible_types(node))  # type: ignore[arg-type]


def _guess_type(name: str, shop: Shop) -> str | None:
    """The Node type an ID argument of this name names, as far as its name tells."""
    # productId, and a list's productIds.
    base = name[:-3] if name.endswith("Ids") else name[:-2] if name.endswith("Id") else name
    aliases = {"parent": "Category", "category": "Category", "actor": "StaffUser"}
    guess = aliases.get(base) or base[:1].upper() + base[1:]
    return guess if guess in node_types(shop.schema) else None


def expected_type(position: Position, shop: Shop) -> str | None:
    """The Node type a position's id names (from its name, else the field's), if known."""
    if position.field == "node":
        return None
    guess = _guess_type(position.name, shop)
    if guess is not None or position.name != "id":
        return guess
    # An input's ``id``: the type the field is about (updateProduct, revokeApiKey …).
    about = [t for t in node_types(shop.schema) if t.lower() in position.field.lower()]
    return max(about, key=len) if about else None


def _required(field: Any) -> bool:
    return is_non_null_type(field.type) and field.default_value is Undefined


def filler(tp: GraphQLInputType, name: str, shop: Shop, fallback: Any) -> Any:
    """A plain valid value for a required argument or field that is not being probed."""
    if is_non_null_type(tp):
        tp = tp.of_type  # type: ignore[attr-defined]
    if is_list_type(tp):
        return [filler(tp.of_type, name, shop, fallback)]  # type: ignore[attr-defined]
    if is_input_object_type(tp):
        return {
            n: filler(f.type, n, shop, fallback)
            for n, f in tp.fields.items()  # type: ignore[attr-defined]
            if _required(f)
        }
    if is_enum_type(tp):
        return next(iter(tp.values))  # type: ignore[attr-defined]
    scalar = tp.name  # type: ignore[attr-defined]
    if scalar == "ID":
        # A sibling id names a real row where one is known, so the probe is what fails.
        guess = _guess_type(name, shop)
        return gid(guess, shop.rows[guess]) if guess in shop.rows else fallback
    return {
        "String": "x",
        "Int": 1,
        "Float": 1.0,
        "Boolean": False,
        "Decimal": "1.00",
        "DateTime": "2026-01-01T00:00:00+00:00",
        "JSON": {},
    }.get(scalar, "x")


def value_at(
    tp: GraphQLInputType, path: tuple[str | int, ...], probe: Any, shop: Shop, fallback: Any
) -> Any:
    """A value of ``tp`` holding ``probe`` at ``path``, valid everywhere else."""
    if not path:
        return probe
    inner = get_nullable_type(tp)  # type: ignore[type-var]
    if is_list_type(inner):
        return [value_at(inner.of_type, path[1:], probe, shop, fallback)]  # type: ignore[attr-defined]
    out = {}
    for field_name, field in inner.fields.items():  # type: ignore[attr-defined]
        if field_name == path[0]:
            out[field_name] = value_at(field.type, path[1:], probe, shop, fallback)
        elif _required(field):
            out[field_name] = filler(field.type, field_name, shop, fallback)
    return out


def selection(field: GraphQLField, schema: GraphQLSchema) -> str:
    named = get_named_type(field.type)
    if is_union_type(named) or is_interface_type(named):
        error = schema.get_type("Error")
        members = schema.get_possible_types(named)  # type: ignore[arg-type]
        on_error = (
            " ... on Error { code }"
            if any(m in members for m in schema.get_possible_types(error))
            else ""
        )  # type: ignore[arg-type]
        return "{ __typename" + on_error + " }"
    if is_object_type(named):
        total = " totalCount" if "totalCount" in named.fields else ""  # type: ignore[attr-defined]
        return "{ __typename" + total + " }"
    return ""


def document(
    shop: Shop, probes: list[tuple[Position, Any]], *, probe_siblings: bool = False
) -> tuple[str, dict[str, Any]]:
    """One operation with one aliased root field per probe, each with its own variables.

    Other ids the field needs name real rows where their names tell the type; the others are
    the probe too (``probe_siblings``) or a harmless malformed id.
    """
    root = probes[0][0].root
    root_type = shop.schema.get_type(root)
    declarations, fields, variables = [], [], {}
    for i, (position, probe) in enumerate(probes):
        fallback = probe if probe_siblings else "unknown"
        # The root field, then the fields below it down to the one taking the argument (the
        # route has no required arguments on the way).
        chain = [root_type.fields[position.field]]  # type: ignore[union-attr]
        for name in position.via:
            chain.append(get_named_type(chain[-1].type).fields[name])  # type: ignore[union-attr]
        field = chain[-1]
        arguments = []
        for arg_name, arg in field.args.items():
            if arg_name == position.path[0]:
                value = value_at(arg.type, position.path[1:], probe, shop, fallback)
            elif _required(arg):
                value = filler(arg.type, arg_name, shop, fallback)
            else:
                continue
            variable = f"a{i}_{arg_name}"
            declarations.append(f"${variable}: {arg.type}")
            arguments.append(f"{arg_name}: ${variable}")
            variables[variable] = value
        call = f"({', '.join(arguments)})" if arguments else ""
        names = (position.field, *position.via)
        selected = f"{names[-1]}{call} {selection(field, shop.schema)}"
        for name in reversed(names[:-1]):
            selected = f"{name} {{ {selected} }}"
        fields.append(f"a{i}: {selected}")
    head = f"({', '.join(declarations)})" if declarations else ""
    return f"{root.lower()} {head} {{ {' '.join(fields)} }}", variables


def reached(value: Any, via: tuple[str, ...]) -> list[Any]:
    """What a probe's field answered, below its root field's answer ``value`` (every item of
    the lists on the way; nothing where the way is null)."""
    values = [value]
    for name in via:
        nxt: list[Any] = []
        for item in values:
            for one in item if isinstance(item, list) else [item]:
                if one is not None:
                    nxt.append(one.get(name))
        values = nxt
    return [v for v in values if v is not None]


# ---- the server --------------------------------------------------------------------------


async def _seed(
    database_url: str, settings: Settings
) -> tuple[dict[str, str | None], dict[str, int]]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        customer = await make_customer(session)
        staff = await make_staff(session)
        product = await make_product(session)
        stock = await session.scalar(select(StockLevel).where(StockLevel.product_id == product.id))
        assert stock is not None
        rows = {
            "Customer": customer.id,
            "StaffUser": staff.id,
            "Product": product.id,
            "Category": product.category_id,
            "Warehouse": stock.warehouse_id,
            "StockLevel": stock.id,
        }
        tokens = {
            "customer": token_for(settings, customer),
            "staff": token_for(settings, staff),
            "anonymous": None,
        }
    await engine.dispose()
    return tokens, rows  # type: ignore[return-value]


def _post(shop: Shop, who: str, query: str, variables: dict[str, Any]) -> httpx.Response:
    token = shop.tokens[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return shop.http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


def _place_order(shop: Shop) -> None:
    """An order of the customer's (with its line) and a saved address, as the client makes them."""

    def call(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = _post(shop, "customer", query, variables).json()
        assert not body.get("errors"), body
        return body["data"]

    cart = call(CREATE_CART, {"input": {}})["createCart"]["cart"]["token"]
    line = {"productId": gid("Product", shop.rows["Product"]), "quantity": 1}
    call(ADD_LINES, {"input": {"cartToken": cart, "lines": [line]}})
    placed = call(
        PLACE_ORDER,
        {"input": {"cartToken": cart, "idempotencyKey": "k-1", "shippingAddress": ADDRESS}},
    )["placeOrder"]
    assert placed["__typename"] == "PlaceOrderSuccess", placed
    order = placed["order"]
    shop.rows["Order"] = int(_pk(order["id"]))
    shop.rows["OrderLine"] = int(_pk(order["lines"][0]["id"]))
    added = call(
        "mutation($i: AddAddressInput!) { addAddress(input: $i) {"
        " ... on AddAddressSuccess { address { id } } } }",
        {"i": ADDRESS},
    )
    shop.rows["Address"] = int(_pk(added["addAddress"]["address"]["id"]))


def _pk(global_id: str) -> str:
    return relay.GlobalID.from_id(global_id).node_id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """One server per backend for every test of this module (they change nothing it keeps)."""
    drop: str | None = None
    admin = None
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("inputs") / "shop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        database_url = f"sqlite+aiosqlite:///{path}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        if admin is None:
            pytest.skip("no PostgreSQL binaries on this machine")
        template = request.getfixturevalue("postgres_template")
        drop = f"shopgraph_inputs_{os.getpid()}"
        plain = admin.replace("postgresql+asyncpg://", "postgresql://")

        async def create() -> None:
            conn = await asyncpg.connect(plain)
            await conn.execute(f'DROP DATABASE IF EXISTS "{drop}"')
            await conn.execute(f'CREATE DATABASE "{drop}" TEMPLATE "{template}"')
            await conn.close()

        migrate.run_async(create)
        database_url = f"{admin.rpartition('/')[0]}/{drop}"
    settings = Settings(
        database_url=database_url,
        env="test",
        cost_bucket_size=10_000_000,
        max_query_cost=10_000_000,
        # The longest bound, an import's CSV text (1 Mi characters), probed one past it in
        # three-byte characters, needs a larger request body than the default 1 MiB.
        max_body_bytes=8 * 1_048_576,
    )
    tokens, rows = migrate.run_async(lambda: _seed(database_url, settings))
    app = create_app(settings, load_plugins(settings))
    server = LiveServer(app).start()
    http = httpx.Client(base_url=server.url, timeout=60)
    try:
        schema = build_schema(app.state.shopgraph.schema.as_str())
        built = Shop(server.url, schema, tokens, rows, database_url, http)
        _place_order(built)
        yield built
    finally:
        http.close()
        server.stop()
        if drop is not None and admin is not None:
            plain = admin.replace("postgresql+asyncpg://", "postgresql://")

            async def remove() -> None:
                conn = await asyncpg.connect(plain)
                await conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
                await conn.close()

            migrate.run_async(remove)


def row_counts(database_url: str) -> dict[str, int]:
    """How many rows every table holds."""

    async def count() -> dict[str, int]:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                return {
                    table.name: int(
                        await session.scalar(select(func.count()).select_from(table)) or 0
                    )
                    for table in SQLModel.metadata.sorted_tables
                }
        finally:
            await engine.dispose()

    return migrate.run_async(count)


@pytest.fixture
def error_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    caplog.set_level(logging.WARNING)
    records: list[logging.LogRecord] = []
    yield records
    records.extend(r for r in caplog.records if r.levelno >= logging.ERROR)
    assert not records, [r.getMessage() for r in records][:5]


# ---- ids ---------------------------------------------------------------------------------


def id_probes(position: Position, shop: Shop) -> list[Any]:
    """Ids that name no row the position may find (sent ``ID_BATCH`` to a request)."""
    expected = expected_type(position, shop)
    target = expected or "Product"
    # Past the int4 id columns, for whichever Node type the position wants.
    probes: list[Any] = [gid(type_name, 2**31) for type_name in node_types(shop.schema)]
    probes += [gid(target, n) for n in (2**63, 0, -1, "01", "١")]  # 64-bit, not canonical
    probes += [
        "garbage",
        "T3JkZXI6",  # base64 of "Order:", no key
        "/w==",  # base64 of a byte that is not UTF-8
        gid("NoSuchType", 1),
        5,  # an Int: coerced to the ID "5", which is malformed
    ]
    # Real rows of another type than the one the position wants (any type is right for node).
    if position.field != "node":
        others = [t for t in ("Product", "Customer", "Order", "Address") if t != expected]
        probes += [gid(t, shop.rows[t]) for t in others[:3]]
    return probes


WRONG_GRAPHQL_TYPES: list[Any] = [1.5, True, {"id": 1}, ["T3JkZXI6MQ=="]]


def _judge_ids(
    shop: Shop, who: str, probes: list[tuple[Position, Any]], problems: list[str]
) -> None:
    query, variables = document(shop, probes, probe_siblings=True)
    response = _post(shop, who, query, variables)
    if response.status_code != 200:
        problems.append(
            f"{who} {probes[0][0].label}: HTTP {response.status_code} {response.text[:300]}"
        )
        return
    body = response.json()
    errors = body.get("errors") or []
    data = body.get("data") or {}
    for error in errors:
        code = (error.get("extensions") or {}).get("code")
        if not error.get("path"):
            problems.append(f"{who} {probes[0][0].label}: request refused: {error}")
            return
        if code not in ALLOWED_CODES:
            position, probe = probes[int(error["path"][0][1:])]
            problems.append(f"{who} {position.label} = {probe!r}: {error['message']} ({code})")
    failed = {e["path"][0] for e in errors if e.get("path")}
    if body.get("data") is None:
        return  # a refused non-null mutation field nulls the whole answer: its errors count
    error_types = {t.name for t in shop.schema.get_possible_types(shop.schema.get_type("Error"))}  # type: ignore[arg-type]
    for i, (position, probe) in enumerate(probes):
        alias = f"a{i}"
        if alias in failed:
            continue
        value = data.get(alias)
        if position.root == "Mutation":
            typename = (value or {}).get("__typename")
            if typename not in error_types:
                problems.append(f"{who} {position.label} = {probe!r}: answered {value}")
            continue
        for answer in reached(value, position.via):
            if answer.get("totalCount", 0) != 0:
                problems.append(f"{who} {position.label} = {probe!r}: found {answer}")


@pytest.mark.usefixtures("error_logs")
def test_every_id_argument_answers_a_bad_id_like_a_missing_object(shop: Shop) -> None:
    ids = positions(shop.schema, {"ID"})
    assert len(ids) >= 20, ids
    assert unreachable_positions(shop.schema) == [], "reach these from a root field in this test"
    problems: list[str] = []
    requests = 0
    for who in ("customer", "staff"):
        for position in ids:
            probes = id_probes(position, shop)
            for start in range(0, len(probes), ID_BATCH):
                batch = [(position, p) for p in probes[start : start + ID_BATCH]]
                _judge_ids(shop, who, batch, problems)
                requests += 1
        # Values of another GraphQL type: the variables cannot be coerced, nothing runs.
        for root in ROOTS:
            wrong = [(p, v) for p in ids if p.root == root for v in WRONG_GRAPHQL_TYPES]
            for start in range(0, len(wrong), WRONG_TYPE_BATCH):
                batch = wrong[start : start + WRONG_TYPE_BATCH]
                query, variables = document(shop, batch, probe_siblings=True)
                body = _post(shop, who, query, variables).json()
                requests += 1
                messages = [e["message"] for e in body.get("errors") or []]
                if body.get("data") is not None or len(messages) < len(batch):
                    problems.append(f"{who} {batch[0][0].label}…: wrong GraphQL types gave {body}")
                # graphql-core's words for a variable it cannot coerce.
                bad = [m for m in messages if not m.startswith("Variable '$")]
                problems += [f"{who} wrong GraphQL type: {m}" for m in bad]
    assert requests > 2 * len(ids)
    assert problems == [], "\n".join(problems[:30])


# ---- strings -----------------------------------------------------------------------------


def bound_of(position: Position) -> int:
    return string_bound(position.name, position.leaf)


@pytest.mark.usefixtures("error_logs")
def test_every_string_over_its_bound_is_refused_before_anything_runs(shop: Shop) -> None:
    strings = positions(shop.schema, {"String", "ID"})
    assert len(strings) >= 60, strings
    before = row_counts(shop.database_url)
    problems: list[str] = []
    for who in ("customer", "staff"):
        for root in ROOTS:
            mine = [p for p in strings if p.root == root]
            for start in range(0, len(mine), LENGTH_BATCH):
                batch = [(p, "长" * (bound_of(p) + 1)) for p in mine[start : start + LENGTH_BATCH]]
                query, variables = document(shop, batch)
                response = _post(shop, who, query, variables)
                body = response.json()
                got = Counter(
                    (
                        (e.get("extensions") or {}).get("code"),
                        (e.get("extensions") or {}).get("field"),
                        (e.get("extensions") or {}).get("argument"),
                        (e.get("extensions") or {}).get("maxLength"),
                    )
                    for e in body.get("errors") or []
                )
                wanted = Counter(
                    (
                        STRING_TOO_LONG,
                        p.coordinate,
                        ".".join(map(str, p.path)),
                        bound_of(p),
                    )
                    for p, _ in batch
                )
                if got != wanted or body.get("data") is not None or response.status_code != 200:
                    labels = [p.label for p, _ in batch]
                    problems.append(
                        f"{who} {labels}: {response.status_code} {got - wanted} missing {wanted - got}"
                    )
    assert problems == [], "\n".join(problems[:20])
    assert row_counts(shop.database_url) == before


@pytest.mark.usefixtures("error_logs")
def test_a_string_at_its_bound_is_not_refused(shop: Shop) -> None:
    strings = positions(shop.schema, {"String", "ID"})
    problems: list[str] = []
    for root in ROOTS:
        mine = [p for p in strings if p.root == root]
        for start in range(0, len(mine), ID_BATCH):
            batch = [(p, "a" * bound_of(p)) for p in mine[start : start + ID_BATCH]]
            query, variables = document(shop, batch)
            response = _post(shop, "anonymous", query, variables)
            assert response.status_code < 500, response.text[:500]
            for error in response.json().get("errors") or []:
                if (error.get("extensions") or {}).get("code") in BOUND_CODES:
                    problems.append(error["message"])
    assert problems == []


# ---- what the issue showed -----------------------------------------------------------------


SUGGEST = "query($p: String!) { searchSuggestions(prefix: $p) { text } }"


@pytest.mark.usefixtures("error_logs")
def test_a_huge_search_prefix_is_refused_with_the_bound(shop: Shop) -> None:
    response = _post(shop, "anonymous", SUGGEST, {"p": "耳机" * 150_000})
    body = response.json()
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": STRING_TOO_LONG,
        "field": "Query.searchSuggestions",
        "argument": "prefix",
        "maxLength": 200,
    }
    assert "300000 characters, at most 200" in error["message"]
    assert body["data"] is None
    # Under its bound the same search runs.
    ok = _post(shop, "anonymous", SUGGEST, {"p": "蓝牙" * 100}).json()
    assert "errors" not in ok and isinstance(ok["data"]["searchSuggestions"], list)


@pytest.mark.usefixtures("error_logs")
def test_the_node_field_answers_an_out_of_range_order_id_with_null(shop: Shop) -> None:
    node = "query($id: ID!) { node(id: $id) { id } order(id: $id) { id } }"
    for who in ("customer", "staff"):
        for pk in (2**31, 2**63):
            body = _post(shop, who, node, {"id": gid("Order", pk)}).json()
            assert body == {"data": {"node": None, "order": None}, "extensions": body["extensions"]}
        # The real order, for contrast: found by its owner and by staff alike.
        real = gid("Order", shop.rows["Order"])
        body = _post(shop, who, node, {"id": real}).json()
        assert body["data"] == {"node": {"id": real}, "order": {"id": real}}


@pytest.mark.usefixtures("error_logs")
def test_lists_and_json_values_are_bounded_too(shop: Shop) -> None:
    before = row_counts(shop.database_url)
    brands = _post(
        shop,
        "anonymous",
        "query($f: ProductFilter) { products(filter: $f) { totalCount } }",
        {"f": {"brands": ["索尼"] * 101}},
    ).json()
    assert [e["extensions"] for e in brands["errors"]] == [
        {
            "code": "LIST_TOO_LONG",
            "field": "Query.products",
            "argument": "filter.brands",
            "maxItems": 100,
        }
    ]
    product = {
        "sku": "BIG-1",
        "name": "大号",
        "price": {"amount": "1.00"},
        "attributes": {"notes": "字" * 10_000},
    }
    created = _post(
        shop,
        "staff",
        "mutation($i: CreateProductInput!) { createProduct(input: $i) { __typename } }",
        {"i": product},
    ).json()
    assert [e["extensions"]["code"] for e in created["errors"]] == ["JSON_TOO_LARGE"]
    assert row_counts(shop.database_url) == before


# ---- cursors -----------------------------------------------------------------------------

FORGED_CURSOR_VALUES: list[Any] = [
    [2**31, 2**31],
    [2**70, -(2**70)],
    [1, 2**63],
    ["x", "y"],
    [{"dt": "not a time"}, 1],
    [{"no": "dt"}, 1],
    [1.5, True],
    [None, 2**31],
    [[1], {}],
]


def _cursor(values: Any) -> str:
    raw = json.dumps(values).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.usefixtures("error_logs")
def test_forged_cursors_never_reach_the_database(shop: Shop) -> None:
    """A cursor holds its row's sort key and id: a forged one with a number out of the
    column's range or a value of the wrong kind is a pagination error, never a driver's."""
    query_type = shop.schema.query_type
    assert query_type is not None
    connections = [name for name, f in query_type.fields.items() if "after" in f.args]
    assert len(connections) >= 5, connections
    problems: list[str] = []
    for who in ("customer", "staff"):
        for direction in ("after", "before"):
            for values, start in itertools.product(
                FORGED_CURSOR_VALUES, range(0, len(connections), ID_BATCH)
            ):
                # Many connections at once, one alias each: an error's path names its field.
                batch = connections[start : start + ID_BATCH]
                fields = " ".join(
                    f"a{i}: {name}({direction}: $c) {{ __typename }}"
                    for i, name in enumerate(batch)
                )
                query = f"query($c: String) {{ {fields} }}"
                body = _post(shop, who, query, {"c": _cursor(values)}).json()
                for error in body.get("errors") or []:
                    code = (error.get("extensions") or {}).get("code")
                    if code not in ALLOWED_CODES and "cursor" not in error["message"]:
                        name = batch[int(error["path"][0][1:])] if error.get("path") else "?"
                        problems.append(f"{who} {name}({direction}: {values}): {error}")
    assert problems == [], "\n".join(problems[:20])


# ---- amounts -----------------------------------------------------------------------------


@pytest.mark.usefixtures("error_logs")
def test_amounts_out_of_the_columns_range_are_client_errors(shop: Shop) -> None:
    """Money is stored as int4 minor units: a larger amount (or not a number at all) is the
    client's error, never the driver's. Nothing is written but the staff call's audit row."""
    before = row_counts(shop.database_url)
    amounts = ("1e20", "21474836.48", "-1e30", "1e999999", "Infinity", "sNaN")
    for amount in amounts:
        listing = _post(
            shop,
            "anonymous",
            "query($f: ProductFilter) { products(filter: $f) { totalCount } }",
            {"f": {"priceMin": amount}},
        ).json()
        [error] = listing["errors"]
        assert error["message"].startswith("priceMin: "), error
        created = _post(
            shop,
            "staff",
            "mutation($i: CreateProductInput!) { createProduct(input: $i) {"
            " __typename ... on Error { field } } }",
            {"i": {"sku": "HUGE-1", "name": "巨款", "price": {"amount": amount}}},
        ).json()
        assert created["data"]["createProduct"] == {
            "__typename": "ValidationError",
            "field": "price",
        }
        paid = _post(
            shop,
            "customer",
            "mutation($i: PayOrderInput!) { payOrder(input: $i) {"
            " __typename ... on Error { field } } }",
            {
                "i": {
                    "orderId": gid("Order", shop.rows["Order"]),
                    "gateway": "test",
                    "amount": {"amount": amount},
                }
            },
        ).json()
        assert paid["data"]["payOrder"] == {"__typename": "ValidationError", "field": "amount"}
    after = row_counts(shop.database_url)
    assert after.pop("audit_log") == before.pop("audit_log") + len(amounts)
    assert after == before
