"""The catalogue over HTTP: category tree, product listing (filters, sorts, keyset pages),
staff-only fields and the staff mutations. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from strawberry import relay

from server.auth import create_access_token
from server.config import Settings
from server.models import Category, Customer, OutboxEvent, Product, StaffUser
from tests.support.catalog import make_category, make_product, make_warehouse
from tests.support.graphql import GraphQLClient
from tests.support.statements import counting


def gid(type_name: str, pk: int | None) -> str:
    return str(relay.GlobalID(type_name, str(pk)))


async def staff_token(session: AsyncSession, settings: Settings) -> str:
    staff = StaffUser(email="ops@example.cn", password_hash="-", name="运营")
    session.add(staff)
    await session.commit()
    return create_access_token(settings, f"staff:{staff.id}", role="ADMIN")


async def customer_token(session: AsyncSession, settings: Settings) -> str:
    customer = Customer(email="buyer@example.cn", first_name="小明", last_name="王")
    session.add(customer)
    await session.commit()
    return create_access_token(settings, f"customer:{customer.id}")


async def count(session: AsyncSession, model: Any) -> int:
    return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# ---------------------------------------------------------------------------------------------
# Category tree


async def test_category_tree_breadcrumb_and_counts(gql: GraphQLClient, session: AsyncSession):
    digital = await make_category(session, "数码", slug="digital", position=1)
    home = await make_category(session, "家居", slug="home", position=0)
    audio = await make_category(session, "影音", slug="audio", parent=digital)
    phones = await make_category(session, "手机", slug="phones", parent=digital)
    earphones = await make_category(session, "耳机", slug="earphones", parent=audio)
    await make_product(session, "降噪耳机", category=earphones)
    await make_product(session, "运动耳机", category=earphones)
    await make_product(session, "旧款耳机", category=earphones, is_active=False)
    await make_product(session, "蓝牙音箱", category=audio)
    await make_product(session, "智能手机", category=phones)

    data = await gql(
        "{ categories { name slug children { name children { name productCount } } } }"
    )
    assert [c["slug"] for c in data["categories"]] == ["home", "digital"]
    tree = data["categories"][1]
    assert sorted(c["name"] for c in tree["children"]) == ["影音", "手机"]
    audio_node = next(c for c in tree["children"] if c["name"] == "影音")
    # Archived products are not counted.
    assert audio_node["children"] == [{"name": "耳机", "productCount": 2}]

    data = await gql(
        """query($slug: String!) { category(slug: $slug) {
             id name productCount parent { name } ancestors { name slug } } }""",
        {"slug": "earphones"},
    )
    leaf = data["category"]
    assert leaf["id"] == gid("Category", earphones.id)
    assert leaf["parent"] == {"name": "影音"}
    assert leaf["ancestors"] == [
        {"name": "数码", "slug": "digital"},
        {"name": "影音", "slug": "audio"},
    ]

    data = await gql(
        '{ d: category(slug: "digital") { productCount ancestors { name } } '
        '  h: category(slug: "home") { productCount } '
        '  missing: category(slug: "nope") { name } }'
    )
    # Descendants count: 2 earphones + 1 speaker + 1 phone.
    assert data["d"] == {"productCount": 4, "ancestors": []}
    assert data["h"] == {"productCount": 0}
    assert data["missing"] is None
    assert home.id is not None


# ---------------------------------------------------------------------------------------------
# Listing: every sort, forwards and backwards


PAGE_QUERY = """
query($first: Int, $after: String, $last: Int, $before: String,
      $filter: ProductFilter, $sort: ProductSort) {
  products(first: $first, after: $after, last: $last, before: $before,
           filter: $filter, sort: $sort) {
    totalCount
    edges { cursor node { id name } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def walk_forward(gql: GraphQLClient, size: int, **variables: Any) -> list[str]:
    ids: list[str] = []
    after = None
    for _ in range(100):
        data = await gql(PAGE_QUERY, {"first": size, "after": after, **variables})
        conn = data["products"]
        ids += [e["node"]["id"] for e in conn["edges"]]
        assert len(conn["edges"]) <= size
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            return ids
        assert len(conn["edges"]) == size
        after = conn["pageInfo"]["endCursor"]
    raise AssertionError("pagination did not end")


async def walk_backward(gql: GraphQLClient, size: int, **variables: Any) -> list[str]:
    ids: list[str] = []
    before = None
    for _ in range(100):
        data = await gql(PAGE_QUERY, {"last": size, "before": before, **variables})
        conn = data["products"]
        ids = [e["node"]["id"] for e in conn["edges"]] + ids
        assert conn["pageInfo"]["hasNextPage"] is (before is not None)
        if not conn["pageInfo"]["hasPreviousPage"]:
            return ids
        assert len(conn["edges"]) == size
        before = conn["pageInfo"]["startCursor"]
    raise AssertionError("pagination did not end")


async def test_every_sort_paginates_both_ways_without_gaps(
    gql: GraphQLClient, session: AsyncSession
):
    base = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    names = ["delta", "alpha", "charlie", "alpha", "bravo", "echo", "delta", "foxtrot"]
    products: list[Product] = []
    for i in range(17):
        products.append(
            await make_product(
                session,
                names[i % len(names)],
                # Repeated prices and timestamps: ties must be broken by id, never lost.
                price=f"{(i * 7) % 5 * 10 + 9}.90",
                created_at=base + timedelta(hours=(i * 3) % 6),
                description="茶 " * (1 + i % 3),
            )
        )
    await make_product(session, "archived", is_active=False)

    expectations = {
        "NAME": lambda p: (p.name, p.id),
        "PRICE": lambda p: (p.price_amount, p.id),
        "NEWEST": lambda p: (p.created_at, p.id),
    }
    for field, direction in [(f, d) for f in expectations for d in ("ASC", "DESC")]:
        expected = [
            gid("Product", p.id)
            for p in sorted(products, key=expectations[field], reverse=direction == "DESC")
        ]
        variables = {"sort": {"field": field, "direction": direction}}
        full = await gql(PAGE_QUERY, {"first": 100, **variables})
        assert [e["node"]["id"] for e in full["products"]["edges"]] == expected, field
        assert full["products"]["totalCount"] == 17
        for size in (1, 4, 5):
            assert await walk_forward(gql, size, **variables) == expected, (field, size)
            assert await walk_backward(gql, size, **variables) == expected, (field, size)

    # Relevance: the order comes from the engine, so compare pages with one full page.
    for direction in ("DESC", "ASC"):
        variables = {
            "filter": {"search": "茶"},
            "sort": {"field": "RELEVANCE", "direction": direction},
        }
        full = await gql(PAGE_QUERY, {"first": 100, **variables})
        expected = [e["node"]["id"] for e in full["products"]["edges"]]
        assert sorted(expected) == sorted(gid("Product", p.id) for p in products)
        for size in (2, 5):
            assert await walk_forward(gql, size, **variables) == expected
            assert await walk_backward(gql, size, **variables) == expected

    # The defaults: NEWEST first without a search.
    default = await gql(PAGE_QUERY, {"first": 100})
    newest = sorted(products, key=expectations["NEWEST"], reverse=True)
    assert [e["node"]["id"] for e in default["products"]["edges"]] == [
        gid("Product", p.id) for p in newest
    ]


async def test_whole_catalogue_pages_reuse_their_statements(
    gql: GraphQLClient, session: AsyncSession
):
    from server.graphql import pagination

    for name in ("alpha", "bravo", "charlie"):
        await make_product(session, name, brand="茶")
    pagination._STATEMENTS.clear()
    pagination._COUNTS.clear()
    page = await gql(PAGE_QUERY, {"first": 1})
    after = page["products"]["pageInfo"]["endCursor"]
    second = await gql(PAGE_QUERY, {"first": 1, "after": after})
    assert (
        second["products"]["edges"][0]["node"]["id"] != page["products"]["edges"][0]["node"]["id"]
    )
    built = dict(pagination._STATEMENTS)
    assert len(built) == 2  # a first page; a page after a cursor
    counts = dict(pagination._COUNTS)
    assert len(counts) == 1  # one count for the whole catalogue, whatever the page
    # Another size, another cursor, the total count: the same statements.
    await gql(PAGE_QUERY, {"first": 2})
    await gql(PAGE_QUERY, {"first": 1, "after": second["products"]["pageInfo"]["endCursor"]})
    assert pagination._STATEMENTS.keys() == built.keys()
    assert all(pagination._STATEMENTS[shape] is built[shape] for shape in built)
    # A narrowed listing builds its own.
    narrowed = await gql(PAGE_QUERY, {"first": 5, "filter": {"brands": ["茶"]}})
    assert narrowed["products"]["totalCount"] == 3
    assert pagination._STATEMENTS.keys() == built.keys()
    assert pagination._COUNTS.keys() == counts.keys()
    assert all(pagination._COUNTS[shape] is counts[shape] for shape in counts)


async def test_page_size_limit_and_bad_cursor(gql: GraphQLClient, session: AsyncSession):
    await make_product(session)
    body = await gql.execute("{ products(first: 101) { edges { cursor } } }")
    assert body["data"] is None
    assert "between 0 and 100" in body["errors"][0]["message"]
    body = await gql.execute('{ products(first: 2, after: "bm9wZQ") { edges { cursor } } }')
    assert body["errors"] and body["data"] is None
    body = await gql.execute(
        "{ products(first: 5, sort: {field: RELEVANCE}) { edges { cursor } } }"
    )
    assert "needs filter.search" in body["errors"][0]["message"]
    data = await gql("{ products(first: 100) { totalCount } }")
    assert data["products"]["totalCount"] == 1


# ---------------------------------------------------------------------------------------------
# Filters


async def ids_for(gql: GraphQLClient, flt: dict[str, Any]) -> set[str]:
    data = await gql(PAGE_QUERY, {"first": 100, "filter": flt})
    ids = {e["node"]["id"] for e in data["products"]["edges"]}
    assert data["products"]["totalCount"] == len(ids)
    return ids


async def test_filters(gql: GraphQLClient, session: AsyncSession):
    digital = await make_category(session, "数码")
    audio = await make_category(session, "影音", parent=digital)
    earphones = await make_category(session, "耳机", parent=audio)
    home = await make_category(session, "家居")
    sh = await make_warehouse(session, "SH-01")
    bj = await make_warehouse(session, "BJ-01", name="北京华北仓", city="北京")

    buds = await make_product(
        session,
        "降噪耳机",
        brand="Sony",
        price="1299.00",
        category=earphones,
        tags=["新品", "降噪"],
        stock=[(sh, 3)],
    )
    speaker = await make_product(
        session,
        "蓝牙音箱",
        brand="JBL",
        price="499.00",
        category=audio,
        tags=["新品"],
        # All of it reserved: nothing to sell.
        stock={"SH-01": 2},
        reserved={"SH-01": 2},
    )
    phone = await make_product(
        session,
        "智能手机",
        brand="Xiaomi",
        price="2999.00",
        category=digital,
        stock=[(sh, 0), (bj, 5)],
    )
    lamp = await make_product(session, "台灯", brand="Xiaomi", price="99.50", category=home)
    archived = await make_product(session, "旧耳机", category=earphones, is_active=False)
    g = {p.id: gid("Product", p.id) for p in (buds, speaker, phone, lamp, archived)}

    assert await ids_for(gql, {"category": gid("Category", digital.id)}) == {
        g[buds.id],
        g[speaker.id],
        g[phone.id],
    }
    assert await ids_for(gql, {"category": gid("Category", audio.id)}) == {
        g[buds.id],
        g[speaker.id],
    }
    assert await ids_for(gql, {"category": gid("Category", earphones.id)}) == {g[buds.id]}
    assert await ids_for(gql, {"category": gid("Category", 999_999)}) == set()
    assert await ids_for(gql, {"category": "not-an-id"}) == set()
    assert await ids_for(gql, {"category": gid("Product", digital.id)}) == set()

    assert await ids_for(gql, {"priceMin": "499.00", "priceMax": "1299"}) == {
        g[buds.id],
        g[speaker.id],
    }
    assert await ids_for(gql, {"priceMax": "99.50"}) == {g[lamp.id]}
    assert await ids_for(gql, {"priceMin": "99.51", "priceMax": "499"}) == {g[speaker.id]}
    body = await gql.execute(PAGE_QUERY, {"first": 5, "filter": {"priceMin": "1.001"}})
    assert "priceMin" in body["errors"][0]["message"]

    assert await ids_for(gql, {"brands": ["Xiaomi"]}) == {g[phone.id], g[lamp.id]}
    assert await ids_for(gql, {"brands": ["Sony", "JBL"]}) == {g[buds.id], g[speaker.id]}
    assert await ids_for(gql, {"tags": ["新品"]}) == {g[buds.id], g[speaker.id]}
    assert await ids_for(gql, {"tags": ["新品", "降噪"]}) == {g[buds.id]}
    assert await ids_for(gql, {"tags": ["不存在"]}) == set()

    assert await ids_for(gql, {"inStock": True}) == {g[buds.id], g[phone.id]}
    assert await ids_for(gql, {"inStock": False}) == {g[speaker.id], g[lamp.id]}

    assert await ids_for(
        gql,
        {"category": gid("Category", digital.id), "inStock": True, "priceMax": "2000"},
    ) == {g[buds.id]}

    data = await gql(
        "query($id: ID!) { product(id: $id) { availability { inStock quantityAvailable } } }",
        {"id": g[phone.id]},
    )
    assert data["product"]["availability"] == {"inStock": True, "quantityAvailable": 5}


async def test_archived_products_only_for_staff(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    live = await make_product(session, "在售商品", sku="LIVE-1")
    old = await make_product(session, "下架商品", sku="OLD-1", is_active=False)
    query = """query($id: ID!, $sku: String!) {
        product(id: $id) { sku isActive }
        productBySku(sku: $sku) { sku }
        node(id: $id) { id }
        products(first: 10, filter: {includeArchived: true}) { totalCount }
    }"""
    variables = {"id": gid("Product", old.id), "sku": "old-1"}
    data = await gql(query, variables)
    assert data == {
        "product": None,
        "productBySku": None,
        "node": None,
        "products": {"totalCount": 1},
    }

    staff = gql.as_(await staff_token(session, settings))
    data = await staff(query, variables)
    assert data["product"] == {"sku": "OLD-1", "isActive": False}
    assert data["productBySku"] == {"sku": "OLD-1"}
    assert data["node"] == {"id": gid("Product", old.id)}
    assert data["products"] == {"totalCount": 2}

    data = await gql(query, {"id": gid("Product", live.id), "sku": " live-1 "})
    assert data["product"] == {"sku": "LIVE-1", "isActive": True}
    assert data["productBySku"] == {"sku": "LIVE-1"}


async def test_price_breakdown(gql: GraphQLClient, session: AsyncSession):
    product = await make_product(session, price="88.80")
    data = await gql(
        """query($id: ID!) { product(id: $id) {
             basePrice { amount currency }
             priceBreakdown(quantity: 3) {
               quantity basePrice { amount } adjustments { source amount { amount } }
               unitPrice { amount } total { amount currency } } } }""",
        {"id": gid("Product", product.id)},
    )
    breakdown = data["product"]["priceBreakdown"]
    assert data["product"]["basePrice"] == {"amount": "88.80", "currency": "CNY"}
    assert breakdown == {
        "quantity": 3,
        "basePrice": {"amount": "88.80"},
        "adjustments": [],
        "unitPrice": {"amount": "88.80"},
        "total": {"amount": "266.40", "currency": "CNY"},
    }
    body = await gql.execute(
        "query($id: ID!) { product(id: $id) { priceBreakdown(quantity: 0) { quantity } } }",
        {"id": gid("Product", product.id)},
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# ---------------------------------------------------------------------------------------------
# Staff-only fields and mutations


async def test_cost_and_margin_are_staff_only(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    product = await make_product(session, price="200.00", cost="130.00")
    free = await make_product(session, price="0", cost="5.00")
    query = """query($id: ID!) { product(id: $id) {
        name costPrice { amount } margin { amount { amount } rate } } }"""
    variables = {"id": gid("Product", product.id)}

    for client in (gql, gql.as_(await customer_token(session, settings))):
        body = await client.execute(query, variables)
        assert body["data"]["product"]["name"] == product.name
        assert body["data"]["product"]["costPrice"] is None
        assert body["data"]["product"]["margin"] is None
        assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
        assert sorted(e["path"][-1] for e in body["errors"]) == ["costPrice", "margin"]

    staff = gql.as_(await staff_token(session, settings))
    data = await staff(query, variables)
    assert data["product"]["costPrice"] == {"amount": "130.00"}
    assert data["product"]["margin"] == {"amount": {"amount": "70.00"}, "rate": "0.3500"}
    data = await staff(query, {"id": gid("Product", free.id)})
    assert data["product"]["margin"] == {"amount": {"amount": "-5.00"}, "rate": None}


CREATE_PRODUCT = """
mutation($input: CreateProductInput!) {
  createProduct(input: $input) {
    __typename
    ... on CreateProductSuccess {
      product { id sku name basePrice { amount currency } costPrice { amount }
                brand tags category { slug } }
    }
    ... on Error { code message field }
  }
}
"""

CREATE_CATEGORY = """
mutation($input: CreateCategoryInput!) {
  createCategory(input: $input) {
    __typename
    ... on CreateCategorySuccess { category { id name slug parent { slug } } }
    ... on Error { code message field }
  }
}
"""

UPDATE_PRODUCT = """
mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) {
    __typename
    ... on UpdateProductSuccess { product { id sku name brand isActive category { slug }
                                            basePrice { amount } costPrice { amount } } }
    ... on Error { code message field }
  }
}
"""

UPDATE_CATEGORY = """
mutation($input: UpdateCategoryInput!) {
  updateCategory(input: $input) {
    __typename
    ... on UpdateCategorySuccess { category { name slug parent { slug } } }
    ... on Error { code message field }
  }
}
"""

ARCHIVE_PRODUCT = """
mutation($input: ArchiveProductInput!) {
  archiveProduct(input: $input) {
    __typename
    ... on ArchiveProductSuccess { product { isActive } }
    ... on Error { code field }
  }
}
"""


async def test_staff_mutations_refused_to_others(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    category = await make_category(session, "数码", slug="digital")
    product = await make_product(session, "蓝牙耳机", sku="BT-1")
    attempts = [
        (CREATE_CATEGORY, {"name": "家居", "slug": "home"}),
        (UPDATE_CATEGORY, {"id": gid("Category", category.id), "name": "电子"}),
        (CREATE_PRODUCT, {"sku": "NEW-1", "name": "新品", "price": {"amount": "1.00"}}),
        (UPDATE_PRODUCT, {"id": gid("Product", product.id), "name": "改名"}),
        (ARCHIVE_PRODUCT, {"id": gid("Product", product.id)}),
    ]
    product_id, category_id = product.id, category.id
    customer = gql.as_(await customer_token(session, settings))
    for client in (gql, customer):
        for mutation, input in attempts:
            body = await client.execute(mutation, {"input": input})
            assert body["data"] is None
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    session.expire_all()
    assert await count(session, Category) == 1
    assert await count(session, Product) == 1
    stored = await session.get(Product, product_id)
    assert stored is not None and (stored.name, stored.is_active) == ("蓝牙耳机", True)
    stored_category = await session.get(Category, category_id)
    assert stored_category is not None and stored_category.name == "数码"


async def test_create_category_and_product(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    root = (await staff(CREATE_CATEGORY, {"input": {"name": " 数码 ", "slug": "Digital"}}))[
        "createCategory"
    ]
    assert root["__typename"] == "CreateCategorySuccess"
    assert root["category"]["name"] == "数码"
    assert root["category"]["slug"] == "digital"
    child = (
        await staff(
            CREATE_CATEGORY,
            {"input": {"name": "耳机", "slug": "earphones", "parentId": root["category"]["id"]}},
        )
    )["createCategory"]
    assert child["category"]["parent"] == {"slug": "digital"}

    created = (
        await staff(
            CREATE_PRODUCT,
            {
                "input": {
                    "sku": "sony-wh1000xm5",
                    "name": "Sony WH-1000XM5 降噪耳机",
                    "price": {"amount": "2499.00"},
                    "costPrice": {"amount": "1800"},
                    "brand": "Sony",
                    "tags": ["降噪", "降噪", "新品"],
                    "categoryId": child["category"]["id"],
                }
            },
        )
    )["createProduct"]
    assert created["__typename"] == "CreateProductSuccess"
    assert created["product"] == {
        "id": created["product"]["id"],
        "sku": "SONY-WH1000XM5",
        "name": "Sony WH-1000XM5 降噪耳机",
        "basePrice": {"amount": "2499.00", "currency": "CNY"},
        "costPrice": {"amount": "1800.00"},
        "brand": "Sony",
        "tags": ["降噪", "新品"],
        "category": {"slug": "earphones"},
    }
    # Findable at once, by its name and by its category path.
    for text in ("降噪", "数码", "wh 1000xm5"):
        data = await gql(PAGE_QUERY, {"first": 5, "filter": {"search": text}})
        assert [e["node"]["name"] for e in data["products"]["edges"]] == [
            "Sony WH-1000XM5 降噪耳机"
        ], text


async def test_create_validation_and_conflicts_write_nothing(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    category = await make_category(session, "数码", slug="digital")
    category_id = category.id
    await make_product(session, "蓝牙耳机", sku="BT-1")
    valid = {"sku": "NEW-1", "name": "新品", "price": {"amount": "10.00"}}

    cases = [
        ({"sku": "bad sku!"}, "ValidationError", "sku"),
        ({"sku": ""}, "ValidationError", "sku"),
        ({"name": "   "}, "ValidationError", "name"),
        ({"price": {"amount": "-0.01"}}, "ValidationError", "price"),
        ({"price": {"amount": "1.001"}}, "ValidationError", "price"),
        ({"costPrice": {"amount": "-1"}}, "ValidationError", "costPrice"),
        ({"costPrice": {"amount": "1", "currency": "USD"}}, "ValidationError", "costPrice"),
        ({"categoryId": gid("Category", 999_999)}, "NotFoundError", "categoryId"),
        ({"categoryId": "garbage"}, "NotFoundError", "categoryId"),
        ({"sku": "bt-1"}, "ConflictError", "sku"),
    ]
    for override, typename, field in cases:
        result = (await staff(CREATE_PRODUCT, {"input": {**valid, **override}}))["createProduct"]
        assert result["__typename"] == typename, (override, result)
        assert result["field"] == field
        assert result["message"]

    category_cases = [
        ({"slug": "Not A Slug"}, "ValidationError", "slug"),
        ({"slug": "digital"}, "ConflictError", "slug"),
        ({"parentId": gid("Category", 999_999)}, "NotFoundError", "parentId"),
    ]
    for override, typename, field in category_cases:
        input = {"name": "家居", "slug": "home", **override}
        result = (await staff(CREATE_CATEGORY, {"input": input}))["createCategory"]
        assert (result["__typename"], result["field"]) == (typename, field)

    session.expire_all()
    assert await count(session, Product) == 1
    assert await count(session, Category) == 1
    assert (await session.get(Category, category_id)) is not None


async def test_update_product_reindexes_and_validates(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    audio = await make_category(session, "影音", slug="audio")
    product = await make_product(session, "蓝牙耳机", sku="BT-1", brand="Anker", cost="50")
    product_id, audio_id = product.id, audio.id
    await make_product(session, "其他商品", sku="OTHER-1")
    pid = gid("Product", product_id)

    async def search(text: str) -> list[str]:
        data = await gql(PAGE_QUERY, {"first": 10, "filter": {"search": text}})
        return [e["node"]["id"] for e in data["products"]["edges"]]

    assert await search("蓝牙") == [pid]
    result = (
        await staff(
            UPDATE_PRODUCT,
            {
                "input": {
                    "id": pid,
                    "name": "头戴式耳麦",
                    "brand": None,
                    "categoryId": gid("Category", audio.id),
                    "price": {"amount": "159.90"},
                    "costPrice": None,
                }
            },
        )
    )["updateProduct"]
    assert result["product"] == {
        "id": pid,
        "sku": "BT-1",
        "name": "头戴式耳麦",
        "brand": None,
        "isActive": True,
        "category": {"slug": "audio"},
        "basePrice": {"amount": "159.90"},
        "costPrice": None,
    }
    assert await search("耳麦") == [pid]
    assert await search("影音") == [pid]
    assert await search("蓝牙") == []
    assert await search("anker") == []

    failures = [
        ({"sku": "OTHER-1"}, "ConflictError", "sku"),
        ({"name": None}, "ValidationError", "name"),
        ({"price": {"amount": "-5"}}, "ValidationError", "price"),
        ({"categoryId": gid("Category", 424242)}, "NotFoundError", "categoryId"),
    ]
    for override, typename, field in failures:
        result = (await staff(UPDATE_PRODUCT, {"input": {"id": pid, **override}}))["updateProduct"]
        assert (result["__typename"], result["field"]) == (typename, field), override
    missing = (await staff(UPDATE_PRODUCT, {"input": {"id": gid("Product", 777), "name": "x"}}))[
        "updateProduct"
    ]
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "id")

    session.expire_all()
    stored = await session.get(Product, product_id)
    assert stored is not None
    assert (stored.sku, stored.name, stored.price_amount, stored.category_id) == (
        "BT-1",
        "头戴式耳麦",
        15990,
        audio_id,
    )


async def test_category_rename_and_move(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    digital = await make_category(session, "数码", slug="digital")
    audio = await make_category(session, "影音", slug="audio", parent=digital)
    earphones = await make_category(session, "耳机", slug="earphones", parent=audio)
    home = await make_category(session, "家居", slug="home")
    product = await make_product(session, "降噪款", category=earphones)
    await make_product(session, "台灯", category=home)

    async def search(text: str) -> list[str]:
        data = await gql(PAGE_QUERY, {"first": 10, "filter": {"search": text}})
        return [e["node"]["name"] for e in data["products"]["edges"]]

    assert await search("影音") == ["降噪款"]
    renamed = (
        await staff(UPDATE_CATEGORY, {"input": {"id": gid("Category", audio.id), "name": "音响"}})
    )["updateCategory"]
    assert renamed["category"] == {"name": "音响", "slug": "audio", "parent": {"slug": "digital"}}
    # Products below the renamed category are found by its new name only.
    assert await search("音响") == ["降噪款"]
    assert await search("影音") == []

    # Moving a category below its own descendant would detach the subtree.
    result = (
        await staff(
            UPDATE_CATEGORY,
            {
                "input": {
                    "id": gid("Category", digital.id),
                    "parentId": gid("Category", earphones.id),
                }
            },
        )
    )["updateCategory"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "parentId")

    moved = (
        await staff(
            UPDATE_CATEGORY,
            {"input": {"id": gid("Category", audio.id), "parentId": gid("Category", home.id)}},
        )
    )["updateCategory"]
    assert moved["category"]["parent"] == {"slug": "home"}
    assert sorted(await search("家居")) == sorted(["降噪款", "台灯"])
    assert await search("数码") == []
    root = (
        await staff(UPDATE_CATEGORY, {"input": {"id": gid("Category", audio.id), "parentId": None}})
    )["updateCategory"]
    assert root["category"]["parent"] is None
    dup = (
        await staff(UPDATE_CATEGORY, {"input": {"id": gid("Category", audio.id), "slug": "home"}})
    )["updateCategory"]
    assert (dup["__typename"], dup["field"]) == ("ConflictError", "slug")
    assert product.id is not None


async def test_archive_product(gql: GraphQLClient, session: AsyncSession, settings: Settings):
    staff = gql.as_(await staff_token(session, settings))
    product = await make_product(session, "蓝牙耳机")
    pid = gid("Product", product.id)
    for _ in range(2):  # archiving twice is harmless
        result = (await staff(ARCHIVE_PRODUCT, {"input": {"id": pid}}))["archiveProduct"]
        assert result == {"__typename": "ArchiveProductSuccess", "product": {"isActive": False}}
    data = await gql(PAGE_QUERY, {"first": 10, "filter": {"search": "耳机"}})
    assert data["products"]["edges"] == []
    missing = (await staff(ARCHIVE_PRODUCT, {"input": {"id": "nope"}}))["archiveProduct"]
    assert missing == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "id"}
    restored = (await staff(UPDATE_PRODUCT, {"input": {"id": pid, "isActive": True}}))[
        "updateProduct"
    ]
    assert restored["product"]["isActive"] is True
    data = await gql(PAGE_QUERY, {"first": 10, "filter": {"search": "耳机"}})
    assert [e["node"]["id"] for e in data["products"]["edges"]] == [pid]


async def test_statement_count_does_not_grow_with_page_size(
    gql: GraphQLClient, session: AsyncSession, app: Any
):
    digital = await make_category(session, "数码")
    audio = await make_category(session, "影音", parent=digital)
    for i in range(12):
        await make_product(
            session, f"耳机 {i}", category=audio if i % 2 else digital, stock={"SH-01": i}
        )
    query = """query($first: Int!) { products(first: $first) { totalCount edges { node {
        name basePrice { amount } priceBreakdown(quantity: 2) { total { amount } }
        availability { inStock }
        category { name productCount parent { name } ancestors { name } children { name } }
    } } } }"""
    counts = []
    for first in (2, 12):
        with counting(app) as statements:
            data = await gql(query, {"first": first})
        assert len(data["products"]["edges"]) == first
        counts.append(len(statements))
    assert counts[0] > 0
    assert counts[0] == counts[1], counts


async def test_catalogue_writes_emit_their_events(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    category = (await staff(CREATE_CATEGORY, {"input": {"name": "数码", "slug": "digital"}}))[
        "createCategory"
    ]["category"]
    await staff(UPDATE_CATEGORY, {"input": {"id": category["id"], "name": "电子"}})
    new = {"sku": "NEW-1", "name": "新品", "price": {"amount": "10.00"}}
    product = (await staff(CREATE_PRODUCT, {"input": new}))["createProduct"]["product"]
    await staff(UPDATE_PRODUCT, {"input": {"id": product["id"], "price": {"amount": "9.00"}}})
    for _ in range(2):  # the second archive changes nothing, and says nothing
        await staff(ARCHIVE_PRODUCT, {"input": {"id": product["id"]}})
    refused = await staff(CREATE_PRODUCT, {"input": {**new, "name": " "}})
    assert refused["createProduct"]["__typename"] == "ValidationError"

    await session.commit()
    events = (
        await session.execute(
            # The catalogue's own events (plugins hearing of them may emit theirs, e.g. the
            # pricing plugin's pricing_prices_changed).
            select(OutboxEvent.name, OutboxEvent.payload)
            .where(col(OutboxEvent.name).in_(["category_changed", "product_changed"]))
            .order_by(OutboxEvent.id)
        )
    ).all()
    product_id = int(relay.GlobalID.from_id(product["id"]).node_id)
    category_id = int(relay.GlobalID.from_id(category["id"]).node_id)
    # A product's events name the staff member who made the change (as the audit log does).
    actor = await session.scalar(select(StaffUser.id).where(StaffUser.email == "ops@example.cn"))
    by = {"actor": f"staff:{actor}"}
    assert [(name, dict(payload)) for name, payload in events] == [
        ("category_changed", {"category_id": category_id, "change": "created"}),
        ("category_changed", {"category_id": category_id, "change": "updated"}),
        ("product_changed", {"product_id": product_id, "change": "created", **by}),
        ("product_changed", {"product_id": product_id, "change": "updated", **by}),
        ("product_changed", {"product_id": product_id, "change": "archived", **by}),
    ]
