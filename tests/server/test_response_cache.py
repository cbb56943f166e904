"""The response cache of public catalogue reads, over HTTP against a real uvicorn: what is
served from it, what never is, what invalidates it (in the process and across processes), the
HTTP caching headers, and that answers are the same with it off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from server.app import create_app
from server.config import Settings
from server.graphql.context import Info
from server.graphql.mutations import run_mutation
from server.graphql.response_cache import CachedEndpoint, Entry, ResponseCache
from server.plugins import PluginError, PluginRuntime
from server.services import outbox
from tests.plugins.fakes import FakePlugin
from tests.support.accounts import make_customer, make_staff, token_for
from tests.support.graphql import GraphQLClient
from tests.support.orders import (
    CANCEL_ORDER,
    gid,
    make_product,
    make_warehouse,
    only_plugins,
    place_ok,
    unthrottled,
)
from tests.support.server import LiveServer, serve_process

LISTING = """
query Listing($first: Int!) {
  products(first: $first, sort: {field: NAME, direction: ASC}) {
    totalCount
    edges { cursor node { id name price { amount currency } availability { quantityAvailable } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

PRODUCT = """
query($id: ID!) {
  product(id: $id) {
    id name brand price { amount } basePrice { amount }
    availability { inStock quantityAvailable }
    category { id name slug }
  }
}"""


class Client:
    """Raw HTTP to /graphql, keeping the headers (``X-Cache``) of each answer."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"query": query, "variables": variables or {}, **kwargs}
        return await self.http.post("/graphql", json=body, headers=self._headers())

    async def get(
        self, query: str, headers: dict[str, str] | None = None, **params: str
    ) -> httpx.Response:
        return await self.http.get(
            "/graphql", params={"query": query, **params}, headers=self._headers(headers)
        )

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.post(query, variables)
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]


def cache_of(app: Starlette) -> ResponseCache:
    return app.state.shopgraph.cache  # type: ignore[no-any-return]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return unthrottled(settings)


@pytest.fixture
def plugins(settings: Settings) -> PluginRuntime:
    return only_plugins(settings)


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
        yield client


@pytest.fixture
def anon(http: httpx.AsyncClient) -> Client:
    return Client(http)


async def ready(app: Starlette) -> None:
    """On PostgreSQL the cache serves once its invalidation channel listens."""
    cache = cache_of(app)
    for _ in range(500):
        if cache.ready:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the response cache never started listening")


async def test_a_repeated_anonymous_query_is_a_hit(
    anon: Client, app: Starlette, session: AsyncSession
) -> None:
    await make_product(session, name="蓝牙耳机 A", price=19900, stock=7)
    await ready(app)
    first = await anon.post(LISTING, {"first": 5})
    second = await anon.post(LISTING, {"first": 5})
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json()["data"] == first.json()["data"]
    assert first.json()["data"]["products"]["edges"][0]["node"]["name"] == "蓝牙耳机 A"
    # The hit reports its cost like a normal answer: the same cost, charged again.
    cost_1, cost_2 = (r.json()["extensions"]["cost"] for r in (first, second))
    assert cost_2["requestedQueryCost"] == cost_1["requestedQueryCost"] > 0
    assert cost_2["actualQueryCost"] == cost_1["actualQueryCost"]
    assert (
        cost_2["throttleStatus"]["currentlyAvailable"]
        < cost_1["throttleStatus"]["currentlyAvailable"]
    )
    # Whitespace, comments and the order of variables' keys do not make another entry.
    reformatted = "# the same listing\n" + LISTING.replace("\n", "\n\n   ").replace(" {", "{")
    third = await anon.post(reformatted, {"first": 5})
    assert third.headers["x-cache"] == "HIT"
    assert third.json()["data"] == first.json()["data"]
    # Other variables are another answer.
    other = await anon.post(LISTING, {"first": 1})
    assert other.headers["x-cache"] == "MISS"
    assert cache_of(app).stats.hits == 2


async def test_signed_in_viewers_are_never_served_from_or_stored_in_the_cache(
    http: httpx.AsyncClient, app: Starlette, session: AsyncSession, settings: Settings
) -> None:
    product = await make_product(session, stock=3)
    customer = Client(http, token_for(settings, await make_customer(session)))
    staff = Client(http, token_for(settings, await make_staff(session)))
    anon = Client(http)
    await ready(app)
    variables = {"id": gid("Product", product.id)}
    for _ in range(2):
        assert (await customer.post(PRODUCT, variables)).headers["x-cache"] == "BYPASS"
    assert len(cache_of(app)) == 0
    assert (await anon.post(PRODUCT, variables)).headers["x-cache"] == "MISS"
    assert (await anon.post(PRODUCT, variables)).headers["x-cache"] == "HIT"
    # An entry exists now; signed-in viewers still never get it.
    assert (await customer.post(PRODUCT, variables)).headers["x-cache"] == "BYPASS"
    assert (await staff.post(PRODUCT, variables)).headers["x-cache"] == "BYPASS"
    # A public field next to a personal (me) or staff-only (costPrice) one: not cacheable.
    for query in (
        "query($id: ID!) { product(id: $id) { name } me { email } }",
        "query($id: ID!) { product(id: $id) { name costPrice { amount } } }",
        "{ warehouses(first: 1) { totalCount } }",
    ):
        for _ in range(2):
            response = await anon.post(query, variables if "$id" in query else None)
            assert response.headers["x-cache"] == "BYPASS", query
    # Mutations are never cached, even of public fields.
    mutation = "mutation { createCart(input: {}) { __typename } }"
    assert (await anon.post(mutation)).headers["x-cache"] == "BYPASS"
    assert cache_of(app).stats.stores == 1


UPDATE_PRODUCT = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) { __typename ... on Error { message } }
}"""
ARCHIVE_PRODUCT = """
mutation($input: ArchiveProductInput!) {
  archiveProduct(input: $input) { __typename ... on Error { message } }
}"""
UPDATE_CATEGORY = """
mutation($input: UpdateCategoryInput!) {
  updateCategory(input: $input) { __typename ... on Error { message } }
}"""
CREATE_PRODUCT = """
mutation($input: CreateProductInput!) {
  createProduct(input: $input) { __typename ... on Error { message } }
}"""
ADJUST_STOCK = """
mutation($input: AdjustStockInput!) {
  adjustStock(input: $input) { __typename ... on Error { message } }
}"""
SET_STOCK = """
mutation($input: SetStockLevelInput!) {
  setStockLevel(input: $input) { __typename ... on Error { message } }
}"""


async def test_every_catalogue_and_stock_write_invalidates(
    http: httpx.AsyncClient, app: Starlette, session: AsyncSession, settings: Settings
) -> None:
    warehouse = await make_warehouse(session)
    product = await make_product(session, name="旧名字", price=10000, stock=[(warehouse, 5)])
    staff = Client(http, token_for(settings, await make_staff(session)))
    anon = Client(http)
    gql = GraphQLClient(http)
    await ready(app)
    product_id = gid("Product", product.id)
    variables = {"id": product_id}

    async def read() -> dict[str, Any]:
        """The product as the cache serves it, after making sure it is cached. A write's
        notification reaches the writing process too, a moment after its commit, and may drop
        the entry once more: then it is cached again."""
        for _ in range(20):
            await anon.post(PRODUCT, variables)
            response = await anon.post(PRODUCT, variables)
            if response.headers["x-cache"] == "HIT":
                return response.json()["data"]["product"]  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)
        raise AssertionError("the product was never served from the cache")

    async def write(query: str, **fields: Any) -> None:
        result = await staff.data(query, {"input": fields})
        assert next(iter(result.values()))["__typename"].endswith("Success"), result

    async def fresh() -> dict[str, Any]:
        response = await anon.post(PRODUCT, variables)
        assert response.headers["x-cache"] == "MISS"
        return response.json()["data"]["product"]  # type: ignore[no-any-return]

    assert (await read())["name"] == "旧名字"
    await write(UPDATE_PRODUCT, id=product_id, name="新名字", price={"amount": "88.00"})
    updated = await fresh()
    assert (updated["name"], updated["price"]["amount"]) == ("新名字", "88.00")

    assert (await read())["category"]["name"] != "新分类"
    category_id = (await read())["category"]["id"]
    await write(UPDATE_CATEGORY, id=category_id, name="新分类")
    assert (await fresh())["category"]["name"] == "新分类"

    assert (await read())["availability"]["quantityAvailable"] == 5
    await write(
        SET_STOCK, warehouseId=gid("Warehouse", warehouse.id), productId=product_id, onHand=9
    )
    assert (await fresh())["availability"]["quantityAvailable"] == 9

    assert (await read())["availability"]["quantityAvailable"] == 9
    order = await place_ok(gql, [(product, 2)])  # a guest checkout reserves two units
    assert (await fresh())["availability"]["quantityAvailable"] == 7

    assert (await read())["availability"]["quantityAvailable"] == 7
    cancelled = await staff.data(CANCEL_ORDER, {"input": {"orderId": order["id"]}})
    assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"
    assert (await fresh())["availability"]["quantityAvailable"] == 9

    assert (await read())["availability"]["quantityAvailable"] == 9
    await write(
        ADJUST_STOCK,
        warehouseId=gid("Warehouse", warehouse.id),
        productId=product_id,
        delta=-4,
        reason="盘点",
    )
    assert (await fresh())["availability"]["quantityAvailable"] == 5

    listing = await anon.post(LISTING, {"first": 10})
    assert (await anon.post(LISTING, {"first": 10})).headers["x-cache"] == "HIT"
    names = [e["node"]["name"] for e in listing.json()["data"]["products"]["edges"]]
    assert "新名字" in names
    await write(ARCHIVE_PRODUCT, id=product_id)
    after = await anon.post(LISTING, {"first": 10})
    assert after.headers["x-cache"] == "MISS"
    assert "新名字" not in [e["node"]["name"] for e in after.json()["data"]["products"]["edges"]]
    assert (await anon.data(PRODUCT, variables))["product"] is None

    assert (await anon.post(LISTING, {"first": 10})).headers["x-cache"] == "HIT"
    await write(CREATE_PRODUCT, sku="NEW-1", name="新品", price={"amount": "1.00"})
    created = await anon.post(LISTING, {"first": 10})
    assert created.headers["x-cache"] == "MISS"
    assert "新品" in [e["node"]["name"] for e in created.json()["data"]["products"]["edges"]]


async def test_get_answers_carry_cache_control_and_etag_and_revalidate(
    anon: Client, app: Starlette, session: AsyncSession, settings: Settings
) -> None:
    await make_product(session)
    await ready(app)
    query = "{ categories { name slug } }"
    first = await anon.get(query)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    max_age = settings.response_cache_max_age
    assert first.headers["cache-control"] == f"public, max-age={max_age}"
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    second = await anon.get(query)
    assert (second.headers["x-cache"], second.headers["etag"]) == ("HIT", etag)
    assert second.json()["data"] == first.json()["data"]
    unchanged = await anon.get(query, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    stale = await anon.get(query, headers={"If-None-Match": 'W/"something-else"'})
    assert stale.status_code == 200 and stale.json()["data"] == first.json()["data"]
    # Personal or not cacheable: never stored by anyone on the way.
    personal = await anon.get("{ me { email } }")
    assert personal.headers["cache-control"] == "private, no-store"
    assert "etag" not in personal.headers


CORPUS: list[tuple[str, dict[str, Any]]] = [
    (LISTING, {"first": 3}),
    (LISTING, {"first": 20}),
    ("{ categories { id name slug productCount children { name } ancestors { name } } }", {}),
    (
        "query($s: String!) { products(first: 5, filter: {search: $s}) "
        "{ totalCount nodes { name brand tags } } }",
        {"s": "耳机"},
    ),
    ('{ searchSuggestions(prefix: "蓝") { text kind product { name } category { name } } }', {}),
    (
        "{ products(first: 4, filter: {inStock: true}, sort: {field: PRICE, direction: DESC}) "
        "{ nodes { name basePrice { amount currency minorUnits } priceBreakdown(quantity: 2) "
        "{ quantity total { amount } adjustments { source amount { amount } } } } } }",
        {},
    ),
    ("{ __typename products(first: 2) { nodes { __typename id } } }", {}),
    ('{ __type(name: "Product") { name fields { name } } }', {}),
    ('{ product(id: "UHJvZHVjdDo5OTk5OTk=") { name } }', {}),
    ("{ products(first: 1000) { totalCount } }", {}),
    ("{ products(first: 2) { nodes { name nope } } }", {}),
]


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without the caller's remaining budget (it moves with every request)."""
    cost = (body.get("extensions") or {}).get("cost") or {}
    return {
        "data": body.get("data"),
        "errors": body.get("errors"),
        "cost": (cost.get("requestedQueryCost"), cost.get("actualQueryCost")),
    }


async def test_a_disabled_cache_gives_the_same_answers(
    settings: Settings, plugins: PluginRuntime, session: AsyncSession
) -> None:
    category_products = [await make_product(session, name=f"蓝牙耳机 {i}") for i in range(6)]
    assert category_products
    answers: dict[bool, list[list[dict[str, Any]]]] = {}
    for enabled in (False, True):
        app = create_app(settings.model_copy(update={"response_cache": enabled}), plugins)
        server = LiveServer(app).start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                client = Client(http)
                await ready(app)
                runs = []
                for query, variables in CORPUS:
                    bodies = []
                    for _ in range(2):
                        response = await client.post(query, variables)
                        assert response.headers["x-cache"] in (
                            ("HIT", "MISS", "BYPASS") if enabled else ("BYPASS",)
                        )
                        bodies.append(_comparable(response.json()))
                    runs.append(bodies)
                answers[enabled] = runs
        finally:
            server.stop()
        if enabled:
            assert cache_of(app).stats.hits >= len(CORPUS) - 3
    assert answers[True] == answers[False]


# ---- a plugin's public field --------------------------------------------------------------

BANNER: dict[str, str] = {"text": "双十一"}
BANNER_CHANGED = "banner_changed"


async def _set_banner(session: AsyncSession, text: str) -> str:
    BANNER["text"] = text
    await outbox.emit(session, BANNER_CHANGED, {"text": text})
    return text


@strawberry.type
class BannerQueries:
    @strawberry.field
    def banner(self) -> str:
        return BANNER["text"]

    @strawberry.field
    async def banner_during_a_write(self, info: Info) -> str:
        """Reads the banner, then lets a write to it commit before the answer is complete."""
        seen = BANNER["text"]
        state = info.context.request.app.state.shopgraph
        async with state.sessions() as s:
            await _set_banner(s, seen + "!")
            await s.commit()
        return seen


@strawberry.type
class BannerMutations:
    @strawberry.mutation
    async def set_banner(self, info: Info, text: str) -> str:
        return str(await run_mutation(info, _set_banner, text))


def banner_plugin() -> FakePlugin:
    return FakePlugin(
        "banner",
        graphql_queries=lambda: [BannerQueries],
        graphql_mutations=lambda: [BannerMutations],
        cacheable_fields=lambda: {
            "Query.banner": [BANNER_CHANGED],
            "Query.bannerDuringAWrite": [BANNER_CHANGED],
        },
    )


class TestPluginFields:
    @pytest.fixture
    def plugins(self, settings: Settings) -> PluginRuntime:
        BANNER["text"] = "双十一"
        return only_plugins(settings, banner_plugin())

    async def test_hook_cacheable_fields(
        self, http: httpx.AsyncClient, app: Starlette, session: AsyncSession, settings: Settings
    ) -> None:
        anon = Client(http)
        await ready(app)
        assert (await anon.post("{ banner }")).headers["x-cache"] == "MISS"
        hit = await anon.post("{ banner }")
        assert (hit.headers["x-cache"], hit.json()["data"]) == ("HIT", {"banner": "双十一"})
        # With a core field too: both declared, still cacheable.
        both = "{ banner categories { name } }"
        await anon.post(both)
        assert (await anon.post(both)).headers["x-cache"] == "HIT"
        staff = Client(http, token_for(settings, await make_staff(session)))
        await staff.data('mutation { setBanner(text: "年货节") }')
        fresh = await anon.post("{ banner }")
        assert (fresh.headers["x-cache"], fresh.json()["data"]) == ("MISS", {"banner": "年货节"})
        assert (await anon.post(both)).headers["x-cache"] == "MISS"

    async def test_an_answer_read_during_a_write_is_not_stored(
        self, anon: Client, app: Starlette
    ) -> None:
        await ready(app)
        query = "{ bannerDuringAWrite }"
        first = await anon.post(query)
        assert first.headers["x-cache"] == "MISS"
        assert first.json()["data"] == {"bannerDuringAWrite": "双十一"}
        # The write committed while the answer was computed: it was not stored.
        assert len(cache_of(app)) == 0 and cache_of(app).stats.races == 1
        second = await anon.post(query)
        assert second.headers["x-cache"] == "MISS"
        assert second.json()["data"] == {"bannerDuringAWrite": "双十一!"}
        # The plain field saw the same writes.
        assert (await anon.post("{ banner }")).json()["data"] == {"banner": "双十一!!"}


def test_a_declaration_of_a_field_not_in_the_schema_is_refused(settings: Settings) -> None:
    plugin = FakePlugin("typo", cacheable_fields=lambda: {"Product.prise": ["product_changed"]})
    with pytest.raises(PluginError, match="Product.prise"):
        create_app(settings, only_plugins(settings, plugin))


def test_prices_adjusted_by_a_plugin_are_cacheable_only_if_it_says_so(
    settings: Settings,
) -> None:
    def adjusts(**declared: Any) -> CachedEndpoint:
        plugin = FakePlugin("promo", price_adjustments=lambda: [], **declared)
        app = create_app(settings, only_plugins(settings, plugin))
        return app.state.shopgraph.cached  # type: ignore[no-any-return]

    def analyse(cached: CachedEndpoint, query: str) -> Any:
        return cached.cacheability.analyse(query, None)

    silent = adjusts()
    assert analyse(silent, "{ products(first: 1) { nodes { price { amount } } } }") is None
    assert analyse(silent, "{ products(first: 1) { nodes { basePrice { amount } } } }")
    declared = adjusts(cacheable_fields=lambda: {"Product.price": ["promo_changed"]})
    analysis = analyse(declared, "{ products(first: 1) { nodes { price { amount } } } }")
    assert analysis is not None and "promo_changed" in analysis.events


class TestThrottling:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"cost_bucket_size": 30, "max_query_cost": 30, "cost_restore_rate": 0.01}
        )

    async def test_hits_are_charged_to_the_callers_budget(
        self, anon: Client, app: Starlette, session: AsyncSession
    ) -> None:
        await make_product(session)
        await ready(app)
        query = "{ products(first: 4) { nodes { name } } }"
        seen = []
        for _ in range(40):
            response = await anon.post(query)
            body = response.json()
            seen.append(response.headers["x-cache"])
            if body.get("errors"):
                break
            cost = body["extensions"]["cost"]
        requested, actual = cost["requestedQueryCost"], cost["actualQueryCost"]
        # The bucket holds 30 points and refills next to nothing meanwhile: each answer, hits
        # included, spends its actual cost, and one may start while its requested cost fits.
        answered = (30 - requested) // actual + 1
        assert seen == ["MISS"] + ["HIT"] * (answered - 1) + ["BYPASS"]
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED"


# ---- several processes ------------------------------------------------------------------


@pytest.fixture
def other_process(database_url: str, settings: Settings) -> Iterator[str]:
    env = {
        "SHOPGRAPH_DATABASE_URL": database_url,
        "SHOPGRAPH_SECRET_KEY": settings.secret_key,
        "SHOPGRAPH_PLUGINS": "",
        "SHOPGRAPH_COST_BUCKET_SIZE": "1000000",
    }
    process, url = serve_process(env)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.postgres_only
async def test_a_write_through_one_process_invalidates_another(
    other_process: str,
    http: httpx.AsyncClient,
    app: Starlette,
    session: AsyncSession,
    settings: Settings,
) -> None:
    product = await make_product(session, name="进程一")
    staff = Client(http, token_for(settings, await make_staff(session)))
    variables = {"id": gid("Product", product.id)}
    async with httpx.AsyncClient(base_url=other_process, timeout=60) as other_http:
        other = Client(other_http)
        for _ in range(100):
            if (await other.post(PRODUCT, variables)).headers["x-cache"] == "HIT":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the other process never cached the answer")
        # This process writes; the other one hears of it through NOTIFY.
        await staff.data(UPDATE_PRODUCT, {"input": {"id": variables["id"], "name": "进程二"}})
        for _ in range(100):
            response = await other.post(PRODUCT, variables)
            if response.json()["data"]["product"]["name"] == "进程二":
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the other process kept serving the old name")
        assert response.headers["x-cache"] == "MISS"


@pytest.mark.postgres_only
async def test_a_lost_invalidation_channel_turns_the_cache_off_until_it_is_back(
    anon: Client, app: Starlette, session: AsyncSession, database_url: str
) -> None:
    await make_product(session)
    await ready(app)
    query = "{ categories { name } }"
    await anon.post(query)
    assert (await anon.post(query)).headers["x-cache"] == "HIT"
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'shopgraph-cache-listener' AND datname = current_database()"
        )
    finally:
        await conn.close()
    assert killed == 1
    for _ in range(100):
        if not cache_of(app).ready:
            break
        await asyncio.sleep(0.01)
    assert (await anon.post(query)).headers["x-cache"] == "BYPASS"
    await ready(app)  # reconnected (with backoff): everything was dropped meanwhile
    assert (await anon.post(query)).headers["x-cache"] == "MISS"
    assert (await anon.post(query)).headers["x-cache"] == "HIT"


@pytest.mark.heavy
def test_several_workers_on_sqlite_serve_without_the_cache(
    backend: str, database_url: str, settings: Settings
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite only: PostgreSQL tells every process of every write")
    for workers, enabled in ((1, True), (2, False)):
        app = create_app(settings.model_copy(update={"workers": workers}), only_plugins(settings))
        assert app.state.shopgraph.cached.enabled is enabled
    env = {
        "SHOPGRAPH_DATABASE_URL": database_url,
        "SHOPGRAPH_PLUGINS": "",
        "SHOPGRAPH_COST_BUCKET_SIZE": "1000000",
    }
    process, url = serve_process(env, "--workers", "2")
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            answers = [
                http.post("/graphql", json={"query": "{ categories { name } }"}) for _ in range(4)
            ]
        assert [a.headers["x-cache"] for a in answers] == ["BYPASS"] * 4
        assert all(a.json()["data"] == answers[0].json()["data"] for a in answers)
    finally:
        process.terminate()
        process.wait(timeout=15)


# ---- the store and the analysis, without a server -----------------------------------------


def _entry(cache: ResponseCache, events: tuple[str, ...], data: bytes = b"{}") -> Entry:
    return Entry(
        data=data,
        etag='W/"x"',
        requested=1,
        actual=1,
        events=events,
        stamp=cache.stamp(events),
        expires=cache.clock() + cache.ttl,
    )


def test_the_store_is_bounded_expires_and_follows_its_events() -> None:
    now = [0.0]
    cache = ResponseCache(max_entries=3, max_bytes=10_000, ttl=60, clock=lambda: now[0])
    for key in (b"a", b"b", b"c"):
        assert cache.put(key, _entry(cache, ("product_changed",)))
    assert cache.get(b"a", ("product_changed",)) is not None  # a is now the most recent
    cache.put(b"d", _entry(cache, ("category_changed",)))
    assert len(cache) == 3 and cache.get(b"b", ("product_changed",)) is None  # evicted
    # Bytes bound: one big answer pushes the least recently used ones out.
    cache.put(b"big", _entry(cache, (), data=b"x" * 9_700))
    assert len(cache) == 1 and cache.size_bytes <= 10_000
    assert cache.stats.evictions == 4
    # Events: only the answers that read what changed go.
    cache.put(b"p", _entry(cache, ("product_changed",)))
    cache.put(b"c", _entry(cache, ("category_changed",)))
    cache.invalidate(["product_changed"])
    assert cache.get(b"p", ("product_changed",)) is None
    assert cache.get(b"c", ("category_changed",)) is not None
    # Started before an invalidation, finished after it: not stored.
    late = _entry(cache, ("category_changed",))
    cache.invalidate(["category_changed"])
    assert not cache.put(b"late", late) and cache.stats.races == 1
    # Time: an entry expires after the TTL even when nothing invalidates it.
    cache.put(b"t", _entry(cache, ()))
    now[0] += 61
    assert cache.get(b"t", ()) is None
    # Everything at once (the channel of another process's writes was lost).
    cache.put(b"u", _entry(cache, ()))
    old = _entry(cache, ())
    cache.invalidate_all()
    assert len(cache) == 0 and not cache.put(b"old", old)


def test_which_operations_are_cacheable(settings: Settings) -> None:
    app = create_app(settings, only_plugins(settings))
    cached: CachedEndpoint = app.state.shopgraph.cached

    def events(query: str, operation: str | None = None) -> tuple[str, ...] | None:
        analysis = cached.cacheability.analyse(query, operation)
        return None if analysis is None else analysis.events

    assert events("{ categories { name } }") == ("category_changed", "product_changed")
    assert "stock_level_set" in (
        events("{ products { nodes { availability { inStock } } } }") or ()
    )
    assert events("{ __typename }") == ()
    assert events("{ __schema { types { name } } }") == ()
    # Fragments: those the operation spreads count, others do not.
    fragments = """
        query Q { products { nodes { ...P } } }
        fragment P on Product { name ...C }
        fragment C on Product { category { name } }
        fragment Unused on Customer { email }"""
    assert events(fragments, "Q") == events("{ products { nodes { name category { name } } } }")
    assert events(fragments, "Q") is not None
    staff_only = (
        "query { products { nodes { ...S } } } fragment S on Product { costPrice { amount } }"
    )
    assert events(staff_only) is None
    # The operation named: a query next to a mutation is cacheable, the mutation is not.
    both = "query A { categories { name } } mutation B { logout { __typename } }"
    assert events(both, "A") is not None
    assert events(both, "B") is None
    assert events(both) is None  # two operations, none named
    assert events("{ me { email } }") is None
    assert events("{ products { nodes { margin { amount { amount } } } } }") is None
    assert events("{ nope }") is None
    assert events("{ categories { name ") is None  # does not parse
    assert events("subscription { __typename }") is None
