"""Variants in the catalogue over HTTP: option axes and variants through the staff mutations
(and every typed error, which writes nothing), the product page's variant fields (prices,
stock, price range, option matrix) and the lookups by SKU and barcode. Every test runs on
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.models import OutboxEvent, Product, ProductOption, ProductVariant
from server.services import variant_admin, variants
from tests.schema.test_products import UPDATE_PRODUCT, gid, staff_token
from tests.support.catalog import add_variants, make_product, make_warehouse
from tests.support.graphql import GraphQLClient

SET_OPTIONS = """
mutation($input: SetProductOptionsInput!) {
  setProductOptions(input: $input) {
    __typename
    ... on SetProductOptionsSuccess {
      product { sku basePrice { amount } options { name values }
                variants { sku options { name value } basePrice { amount } } }
    }
    ... on Error { code message field }
  }
}"""

RENAME_VALUE = """
mutation($input: RenameProductOptionValueInput!) {
  renameProductOptionValue(input: $input) {
    __typename
    ... on SetProductOptionsSuccess { product { options { name values }
                                                variants { sku options { name value } } } }
    ... on Error { code message field }
  }
}"""

VARIANT_RESULT = """
    __typename
    ... on ProductVariantSuccess {
      variant { id sku barcode weightGrams isActive options { name value }
                basePrice { amount currency } costPrice { amount } }
      product { sku basePrice { amount } costPrice { amount } }
    }
    ... on Error { code message field }
"""
CREATE_VARIANT = (
    "mutation($input: CreateProductVariantInput!) { createProductVariant(input: $input) {"
    + VARIANT_RESULT
    + "} }"
)
UPDATE_VARIANT = (
    "mutation($input: UpdateProductVariantInput!) { updateProductVariant(input: $input) {"
    + VARIANT_RESULT
    + "} }"
)
ARCHIVE_VARIANT = (
    "mutation($input: ProductVariantIdInput!) { archiveProductVariant(input: $input) {"
    + VARIANT_RESULT
    + "} }"
)
REACTIVATE_VARIANT = (
    "mutation($input: ProductVariantIdInput!) { reactivateProductVariant(input: $input) {"
    + VARIANT_RESULT
    + "} }"
)

SEARCH = "query($text: String!) { products(first: 10, filter: {search: $text}) { nodes { sku } } }"

SIZES_COLOURS = [
    {"name": "尺码", "values": ["S", "M", "L"]},
    {"name": "颜色", "values": ["黑色", "白色"]},
]


def opts(**values: str) -> list[dict[str, str]]:
    names = {"size": "尺码", "colour": "颜色", "storage": "容量"}
    return [{"name": names[k], "value": v} for k, v in values.items()]


async def count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def archive(session: AsyncSession, sku: str) -> None:
    variant = await variants.by_sku(session, sku)
    assert variant is not None and variant.id is not None
    await variant_admin.set_variant_active(session, variant.id, False)
    await session.commit()


async def search(gql: GraphQLClient, text: str) -> list[str]:
    data = await gql(SEARCH, {"text": text})
    return [n["sku"] for n in data["products"]["nodes"]]


async def test_options_and_variants_from_first_axes_to_rename(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    product = await make_product(session, "纯棉T恤", sku="TEE-1", price="199.00", cost="80")
    await make_product(session, "其他商品", sku="OTHER-1")
    pid = gid("Product", product.id)

    # The first axes make the default variant the first combination: S / 黑色, same SKU.
    first = (await staff(SET_OPTIONS, {"input": {"productId": pid, "options": SIZES_COLOURS}}))[
        "setProductOptions"
    ]
    assert first["__typename"] == "SetProductOptionsSuccess", first
    assert first["product"]["options"] == SIZES_COLOURS
    assert first["product"]["variants"] == [
        {
            "sku": "TEE-1",
            "options": [{"name": "尺码", "value": "S"}, {"name": "颜色", "value": "黑色"}],
            "basePrice": {"amount": "199.00"},
        }
    ]

    created = (
        await staff(
            CREATE_VARIANT,
            {
                "input": {
                    "productId": pid,
                    "sku": "zx-9031",
                    "options": opts(colour="白色", size="M"),
                    "price": {"amount": "219.00"},
                    "costPrice": {"amount": "90"},
                    "barcode": "4006381333931",
                    "weightGrams": 250,
                }
            },
        )
    )["createProductVariant"]
    assert created["__typename"] == "ProductVariantSuccess", created
    variant = created["variant"]
    assert variant | {"id": None} == {
        "id": None,
        "sku": "ZX-9031",
        "barcode": "4006381333931",
        "weightGrams": 250,
        "isActive": True,
        # In the axes' order, whatever the order given.
        "options": [{"name": "尺码", "value": "M"}, {"name": "颜色", "value": "白色"}],
        "basePrice": {"amount": "219.00", "currency": "CNY"},
        "costPrice": {"amount": "90.00"},
    }
    cheap = (
        await staff(
            CREATE_VARIANT,
            {
                "input": {
                    "productId": pid,
                    "sku": "TEE-1-L-BK",
                    "options": opts(size="L", colour="黑色"),
                    "price": {"amount": "179.00"},
                    "costPrice": {"amount": "70"},
                }
            },
        )
    )["createProductVariant"]
    # The product's from price (and cost) is its cheapest active variant's.
    assert cheap["product"] == {
        "sku": "TEE-1",
        "basePrice": {"amount": "179.00"},
        "costPrice": {"amount": "70.00"},
    }

    # Findable by a variant's SKU and by an option value; productBySku finds it by either.
    assert await search(gql, "9031") == ["TEE-1"]
    assert await search(gql, "白色") == ["TEE-1"]
    found = await gql(
        "query($s: String!) { productBySku(sku: $s) { sku } productVariantBySku(sku: $s) { sku "
        'product { sku } } productVariantByBarcode(barcode: "4006381333931") { sku } }',
        {"s": "zx-9031"},
    )
    assert found == {
        "productBySku": {"sku": "TEE-1"},
        "productVariantBySku": {"sku": "ZX-9031", "product": {"sku": "TEE-1"}},
        "productVariantByBarcode": {"sku": "ZX-9031"},
    }

    # A dearer cheapest variant raises the from price; archiving the cheapest raises it too.
    updated = (
        await staff(
            UPDATE_VARIANT,
            {
                "input": {
                    "id": cheap["variant"]["id"],
                    "price": {"amount": "299.00"},
                    "barcode": None,
                }
            },
        )
    )["updateProductVariant"]
    assert updated["product"]["basePrice"] == {"amount": "199.00"}
    archived = (await staff(ARCHIVE_VARIANT, {"input": {"id": variant["id"]}}))[
        "archiveProductVariant"
    ]
    assert archived["variant"]["isActive"] is False
    assert archived["product"]["basePrice"] == {"amount": "199.00"}
    # A shopper no longer sees the archived variant; its SKU still finds the product.
    shopper = await gql(
        "query($id: ID!) { product(id: $id) { variants { sku } } "
        'productVariantBySku(sku: "ZX-9031") { sku } }',
        {"id": pid},
    )
    assert shopper == {
        "product": {"variants": [{"sku": "TEE-1"}, {"sku": "TEE-1-L-BK"}]},
        "productVariantBySku": None,
    }
    back = (await staff(REACTIVATE_VARIANT, {"input": {"id": variant["id"]}}))[
        "reactivateProductVariant"
    ]
    assert back["variant"]["isActive"] is True

    # Renaming a value renames it on the axis and on the variants that have it.
    renamed = (
        await staff(
            RENAME_VALUE,
            {"input": {"productId": pid, "option": "颜色", "value": "白色", "newValue": "雪白"}},
        )
    )["renameProductOptionValue"]
    assert renamed["__typename"] == "SetProductOptionsSuccess", renamed
    assert renamed["product"]["options"][1] == {"name": "颜色", "values": ["黑色", "雪白"]}
    assert {"name": "颜色", "value": "雪白"} in renamed["product"]["variants"][1]["options"]
    assert await search(gql, "雪白") == ["TEE-1"]
    assert await search(gql, "白色") == []

    # Reordering: axes and values in a new order; the variants' options follow the axes.
    reordered = (
        await staff(
            SET_OPTIONS,
            {
                "input": {
                    "productId": pid,
                    "options": [
                        {"name": "颜色", "values": ["雪白", "黑色"]},
                        {"name": "尺码", "values": ["L", "M", "S"]},
                    ],
                }
            },
        )
    )["setProductOptions"]
    assert [o["name"] for o in reordered["product"]["options"]] == ["颜色", "尺码"]
    assert reordered["product"]["variants"][1]["options"] == [
        {"name": "颜色", "value": "雪白"},
        {"name": "尺码", "value": "M"},
    ]

    # A new axis gives every variant its first value.
    third = [
        {"name": "颜色", "values": ["雪白", "黑色"]},
        {"name": "尺码", "values": ["L", "M", "S"]},
        {"name": "版型", "values": ["常规", "修身"]},
    ]
    grown = (await staff(SET_OPTIONS, {"input": {"productId": pid, "options": third}}))[
        "setProductOptions"
    ]
    assert all(
        v["options"][2] == {"name": "版型", "value": "常规"} for v in grown["product"]["variants"]
    )

    await session.commit()
    events = await session.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.name == "product_changed")
    )
    # Every one of the nine changes above announced the product.
    assert events == 9


async def test_bad_input_is_a_typed_error_and_writes_nothing(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    await make_product(session, "其他商品", sku="OTHER-1")
    plain = await make_product(session, "单品", sku="PLAIN-1")
    product = await make_product(session, "纯棉T恤", sku="TEE-1", price="199.00")
    variants = await add_variants(
        session,
        product,
        {"尺码": ["S", "M", "L"], "颜色": ["黑色", "白色"]},
        [({"尺码": "M", "颜色": "黑色"}, "TEE-1-M", "209.00", None)],
    )
    await session.execute(
        ProductVariant.__table__.update()  # type: ignore[attr-defined]  # SQLModel sets __table__ on a table model without declaring it
        .where(ProductVariant.id == variants[1].id)
        .values(barcode="036000291452")
    )
    await session.commit()
    pid, default_id, second_id = product.id, variants[0].id, variants[1].id
    valid = {
        "productId": gid("Product", pid),
        "sku": "TEE-1-L",
        "options": opts(size="L", colour="白色"),
        "price": {"amount": "219.00"},
    }
    cases: list[tuple[dict[str, Any], str, str, str]] = [
        (
            {"options": [{"name": "材质", "value": "棉"}]},
            "ValidationError",
            "UNKNOWN_OPTION",
            "options",
        ),
        (
            {"options": opts(size="XXL", colour="白色")},
            "ValidationError",
            "UNKNOWN_OPTION",
            "options",
        ),
        ({"options": opts(size="L")}, "ValidationError", "UNKNOWN_OPTION", "options"),
        (
            {"options": opts(size="L", colour="白色") + opts(size="M")},
            "ValidationError",
            "UNKNOWN_OPTION",
            "options",
        ),
        ({"options": opts(size="M", colour="黑色")}, "ConflictError", "CONFLICT", "options"),
        ({"sku": "other-1"}, "ConflictError", "CONFLICT", "sku"),
        ({"sku": "tee-1-m"}, "ConflictError", "CONFLICT", "sku"),
        ({"sku": "bad sku!"}, "ValidationError", "VALIDATION_FAILED", "sku"),
        ({"barcode": "4006381333932"}, "ValidationError", "INVALID_BARCODE", "barcode"),
        ({"barcode": "40063813339"}, "ValidationError", "INVALID_BARCODE", "barcode"),
        ({"barcode": "400638133393A"}, "ValidationError", "INVALID_BARCODE", "barcode"),
        ({"barcode": "036000291452"}, "ConflictError", "CONFLICT", "barcode"),
        ({"price": {"amount": "-1.00"}}, "ValidationError", "VALIDATION_FAILED", "price"),
        ({"price": {"amount": "1.001"}}, "ValidationError", "VALIDATION_FAILED", "price"),
        (
            {"price": {"amount": "10.00", "currency": "USD"}},
            "ValidationError",
            "VALIDATION_FAILED",
            "price",
        ),
        (
            {"costPrice": {"amount": "1.00", "currency": "USD"}},
            "ValidationError",
            "VALIDATION_FAILED",
            "costPrice",
        ),
        ({"weightGrams": -5}, "ValidationError", "VALIDATION_FAILED", "weightGrams"),
        ({"productId": gid("Product", 999_999)}, "NotFoundError", "NOT_FOUND", "productId"),
        # A product without options has its one default variant: axes first.
        (
            {"productId": gid("Product", plain.id), "options": []},
            "ValidationError",
            "UNKNOWN_OPTION",
            "options",
        ),
    ]
    for override, typename, code, field in cases:
        result = (await staff(CREATE_VARIANT, {"input": {**valid, **override}}))[
            "createProductVariant"
        ]
        assert (result["__typename"], result["code"], result["field"]) == (typename, code, field), (
            override,
            result,
        )
        assert result["message"]

    update_cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"id": gid("ProductVariant", second_id), "options": opts(size="S", colour="黑色")},
            "CONFLICT",
            "options",
        ),
        ({"id": gid("ProductVariant", second_id), "sku": "TEE-1"}, "CONFLICT", "sku"),
        ({"id": gid("ProductVariant", second_id), "sku": None}, "VALIDATION_FAILED", "sku"),
        ({"id": gid("ProductVariant", 999_999), "sku": "X-1"}, "NOT_FOUND", "id"),
        ({"id": gid("Product", pid), "sku": "X-1"}, "NOT_FOUND", "id"),
    ]
    for input, code, field in update_cases:
        result = (await staff(UPDATE_VARIANT, {"input": input}))["updateProductVariant"]
        assert (result["code"], result["field"]) == (code, field), (input, result)

    # A value an active variant has cannot be withdrawn; an axis whose removal would make two
    # variants the same combination cannot be removed.
    withdraw = [
        {"name": "尺码", "values": ["S", "L"]},
        {"name": "颜色", "values": ["黑色", "白色"]},
    ]
    collapse = [{"name": "颜色", "values": ["黑色", "白色"]}]
    for options, code in ((withdraw, "OPTION_VALUE_IN_USE"), (collapse, "CONFLICT")):
        result = (
            await staff(
                SET_OPTIONS, {"input": {"productId": gid("Product", pid), "options": options}}
            )
        )["setProductOptions"]
        assert (result["code"], result["field"]) == (code, "options"), result
    for options in (
        [{"name": "尺码", "values": []}],
        [{"name": "尺码", "values": ["S", "S"]}],
        [{"name": " ", "values": ["S"]}],
        [{"name": "尺码", "values": ["S"]}, {"name": "尺码", "values": ["M"]}],
        [{"name": f"轴{i}", "values": ["a"]} for i in range(4)],
        [
            {"name": "a", "values": [str(i) for i in range(30)]},
            {"name": "b", "values": [str(i) for i in range(30)]},
        ],
    ):
        result = (
            await staff(
                SET_OPTIONS, {"input": {"productId": gid("Product", pid), "options": options}}
            )
        )["setProductOptions"]
        assert (result["__typename"], result["field"]) == ("ValidationError", "options"), options
    rename = {
        "productId": gid("Product", pid),
        "option": "颜色",
        "value": "白色",
        "newValue": "黑色",
    }
    result = (await staff(RENAME_VALUE, {"input": rename}))["renameProductOptionValue"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "newValue")
    result = (await staff(RENAME_VALUE, {"input": {**rename, "value": "红色"}}))[
        "renameProductOptionValue"
    ]
    assert result["code"] == "UNKNOWN_OPTION"

    # A product with options is priced per variant.
    result = (
        await staff(
            UPDATE_PRODUCT, {"input": {"id": gid("Product", pid), "price": {"amount": "1"}}}
        )
    )["updateProduct"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "price")

    # The last variant on sale of a product on sale stays: archive the product instead.
    first = (await staff(ARCHIVE_VARIANT, {"input": {"id": gid("ProductVariant", second_id)}}))[
        "archiveProductVariant"
    ]
    assert first["__typename"] == "ProductVariantSuccess"
    last = (await staff(ARCHIVE_VARIANT, {"input": {"id": gid("ProductVariant", default_id)}}))[
        "archiveProductVariant"
    ]
    assert (last["code"], last["field"]) == ("LAST_ACTIVE_VARIANT", "id")

    await session.commit()  # a fresh snapshot
    session.expire_all()
    assert await count(session, ProductVariant) == 4  # OTHER-1, PLAIN-1, TEE-1 (2)
    stored = await session.get(Product, pid)
    assert stored is not None and stored.price_amount == 19900
    assert [o.values for o in (await session.scalars(select(ProductOption))).all()] == [
        ["S", "M", "L"],
        ["黑色", "白色"],
    ]
    rows = (await session.scalars(select(ProductVariant).order_by(ProductVariant.id))).all()
    assert [(v.sku, v.is_active, v.options) for v in rows[2:]] == [
        ("TEE-1", True, {"尺码": "S", "颜色": "黑色"}),
        ("TEE-1-M", False, {"尺码": "M", "颜色": "黑色"}),
    ]


async def test_concurrent_duplicates_make_one_variant(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    product = await make_product(session, "纯棉T恤", sku="TEE-1")
    await add_variants(session, product, {"尺码": ["S", "M"]}, [])
    results = await asyncio.gather(
        *(
            staff(
                CREATE_VARIANT,
                {
                    "input": {
                        "productId": gid("Product", product.id),
                        "sku": f"TEE-1-M-{i}",
                        "options": opts(size="M"),
                        "price": {"amount": "10.00"},
                    }
                },
            )
            for i in range(4)
        )
    )
    kinds = sorted(
        (r["createProductVariant"]["__typename"], r["createProductVariant"].get("field"))
        for r in results
    )
    assert kinds == [("ConflictError", "options")] * 3 + [("ProductVariantSuccess", None)]
    await session.commit()  # a fresh snapshot
    assert await count(session, ProductVariant) == 2


async def test_default_variant_is_the_product_as_sold(
    gql: GraphQLClient, session: AsyncSession, settings: Settings
):
    staff = gql.as_(await staff_token(session, settings))
    product = await make_product(session, "单品", sku="ONE-1", price="50.00")
    pid = gid("Product", product.id)
    page = "query($id: ID!) { product(id: $id) { sku basePrice { amount } variants { id sku basePrice { amount } } } }"
    variant_id = (await gql(page, {"id": pid}))["product"]["variants"][0]["id"]

    # The product's price and SKU are its default variant's, edited from either side.
    await staff(UPDATE_PRODUCT, {"input": {"id": pid, "price": {"amount": "60.00"}}})
    assert (await gql(page, {"id": pid}))["product"]["variants"][0]["basePrice"] == {
        "amount": "60.00"
    }
    changed = (
        await staff(
            UPDATE_VARIANT, {"input": {"id": variant_id, "sku": "one-2", "price": {"amount": "55"}}}
        )
    )["updateProductVariant"]
    assert changed["product"] == {
        "sku": "ONE-2",
        "basePrice": {"amount": "55.00"},
        "costPrice": None,
    }

    # Options and back: with one variant left, it is the default variant again, and the
    # product is known by that variant's SKU.
    await staff(
        SET_OPTIONS,
        {"input": {"productId": pid, "options": [{"name": "颜色", "values": ["红", "蓝"]}]}},
    )
    await staff(UPDATE_VARIANT, {"input": {"id": variant_id, "sku": "ONE-RED"}})
    dropped = (await staff(SET_OPTIONS, {"input": {"productId": pid, "options": []}}))[
        "setProductOptions"
    ]
    assert dropped["product"]["sku"] == "ONE-RED"
    assert dropped["product"]["variants"] == [
        {"sku": "ONE-RED", "options": [], "basePrice": {"amount": "55.00"}}
    ]


PRODUCT_PAGE = """
query($id: ID!) {
  product(id: $id) {
    basePrice { amount }
    availability { inStock quantityAvailable }
    priceRange { min { amount } max { amount } }
    variants { sku price { amount } priceBreakdown(quantity: 2) { total { amount } }
               availability { inStock quantityAvailable } }
    optionMatrix { options { value } variant { sku } availability { inStock quantityAvailable } }
  }
}"""


async def test_product_page_stock_price_range_and_option_matrix(
    gql: GraphQLClient, session: AsyncSession
):
    closed = await make_warehouse(session, "WH-CLOSED", is_active=False)
    product = await make_product(
        session, "iPhone 15", sku="IP15", price="5999.00", stock=[("WH-A", 3), (closed, 50)]
    )
    await add_variants(
        session,
        product,
        {"容量": ["128GB", "256GB", "512GB"], "颜色": ["黑色", "白色"]},
        [
            ({"容量": "256GB", "颜色": "黑色"}, "IP15-256-BK", "6999.00", {"WH-A": 0, "WH-B": 0}),
            ({"容量": "512GB", "颜色": "白色"}, "IP15-512-WH", "8999.00", {"WH-B": 4}),
            ({"容量": "128GB", "颜色": "白色"}, "IP15-128-WH", "5799.00", {"WH-A": 9}),
        ],
    )
    # The cheapest is archived: its stock is no longer for sale, and its price no longer counts.
    await archive(session, "IP15-128-WH")

    page = (await gql(PRODUCT_PAGE, {"id": gid("Product", product.id)}))["product"]
    assert page["basePrice"] == {"amount": "5999.00"}
    assert page["availability"] == {"inStock": True, "quantityAvailable": 7}  # 3 + 4
    assert page["priceRange"] == {"min": {"amount": "5999.00"}, "max": {"amount": "8999.00"}}
    assert page["variants"] == [
        {
            "sku": "IP15",
            "price": {"amount": "5999.00"},
            "priceBreakdown": {"total": {"amount": "11998.00"}},
            "availability": {"inStock": True, "quantityAvailable": 3},
        },
        {
            "sku": "IP15-256-BK",
            "price": {"amount": "6999.00"},
            "priceBreakdown": {"total": {"amount": "13998.00"}},
            "availability": {"inStock": False, "quantityAvailable": 0},
        },
        {
            "sku": "IP15-512-WH",
            "price": {"amount": "8999.00"},
            "priceBreakdown": {"total": {"amount": "17998.00"}},
            "availability": {"inStock": True, "quantityAvailable": 4},
        },
    ]
    matrix = [
        ([o["value"] for o in c["options"]], (c["variant"] or {}).get("sku"), c["availability"])
        for c in page["optionMatrix"]
    ]
    out = {"inStock": False, "quantityAvailable": 0}
    assert matrix == [
        (["128GB", "黑色"], "IP15", {"inStock": True, "quantityAvailable": 3}),
        (["128GB", "白色"], None, out),  # archived: not for sale
        (["256GB", "黑色"], "IP15-256-BK", out),  # sold out
        (["256GB", "白色"], None, out),  # no such variant
        (["512GB", "黑色"], None, out),
        (["512GB", "白色"], "IP15-512-WH", {"inStock": True, "quantityAvailable": 4}),
    ]

    # The listing's inStock filter agrees: only the archived variant has stock.
    other = await make_product(session, "旧款", sku="OLD-1", stock={"WH-A": 0})
    await add_variants(
        session,
        other,
        {"颜色": ["黑色", "白色"]},
        [({"颜色": "白色"}, "OLD-1-WH", "1", {"WH-A": 5})],
    )
    await archive(session, "OLD-1-WH")
    listed = await gql(
        "{ products(first: 10, filter: {inStock: true}) { nodes { sku } } "
        "out: products(first: 10, filter: {inStock: false}) { nodes { sku } } }"
    )
    assert listed == {
        "products": {"nodes": [{"sku": "IP15"}]},
        "out": {"nodes": [{"sku": "OLD-1"}]},
    }
