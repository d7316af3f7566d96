"""Catalog over GraphQL: upserts, the category tree, filters, pagination, archiving, money, denials."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from api.ids import encode_id
from tests.conftest import Api, count_rows, error_codes

UPSERT = """
mutation($products: [ProductUpsertInput!]!) {
  upsertProducts(input: {products: $products}) {
    products {
      id externalId title description brand stock inStock active archivedAt attributes tags
      price { amount currency }
      category { name path depth }
    }
    errors { code field message index }
  }
}"""
ARCHIVE = """
mutation($input: ArchiveProductInput!) {
  archiveProduct(input: $input) {
    product { externalId active archivedAt }
    errors { code field message }
  }
}"""
LIST = """
query($first: Int, $after: String, $filter: ProductFilter) {
  products(first: $first, after: $after, filter: $filter) {
    totalCount
    nodes { externalId }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""
W = "catalog:write catalog:read"
R = "catalog:read"


def shoe(**extra: Any) -> dict[str, Any]:
    return {
        "externalId": "p-1",
        "title": "Trail Runner 2",
        "description": "A light trail shoe.",
        "categoryPath": ["Shoes", "Running"],
        "brand": "Acme",
        "tags": ["trail", "new"],
        "price": "19.9",
        "currency": "eur",
        "stock": 3,
        "attributes": {"color": "red"},
        **extra,
    }


async def upsert(api: Api, products: list[dict[str, Any]], scopes: str = W) -> dict[str, Any]:
    body = await api.gql(UPSERT, {"products": products}, scopes=scopes)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["upsertProducts"]
    return result


async def listed(api: Api, flt: dict[str, Any] | None = None, first: int = 100) -> list[str]:
    body = await api.gql(LIST, {"first": first, "filter": flt}, scopes=R)
    assert "errors" not in body, body
    return [n["externalId"] for n in body["data"]["products"]["nodes"]]


async def snapshot(api: Api) -> tuple[Any, ...]:
    async with api.db.read_only() as session:
        products = (
            await session.execute(
                text(
                    "SELECT external_id, title, price, currency, stock, active, archived_at,"
                    " category_id, updated_at FROM product ORDER BY id"
                )
            )
        ).all()
        tags = (
            await session.execute(text("SELECT product_id, tag FROM product_tag ORDER BY 1, 2"))
        ).all()
        categories = (
            await session.execute(text("SELECT id, path FROM category ORDER BY id"))
        ).all()
    return tuple(products), tuple(tags), tuple(categories)


async def test_upsert_creates_then_updates_idempotently(api: Api) -> None:
    first = await upsert(api, [shoe()])
    assert first["errors"] == []
    product = first["products"][0]
    assert product == {
        "id": product["id"],
        "externalId": "p-1",
        "title": "Trail Runner 2",
        "description": "A light trail shoe.",
        "brand": "Acme",
        "stock": 3,
        "inStock": True,
        "active": True,
        "archivedAt": None,
        "attributes": {"color": "red"},
        "tags": ["new", "trail"],
        "price": {"amount": "19.90", "currency": "EUR"},
        "category": {"name": "Running", "path": "Shoes > Running", "depth": 1},
    }

    again = await upsert(api, [shoe()])
    assert again["products"][0] == product
    assert await count_rows(api.db, "product") == 1
    assert await count_rows(api.db, "category") == 2

    changed = await upsert(
        api, [{"externalId": "p-1", "title": "Trail Runner 3", "price": "24.5", "stock": 0}]
    )
    row = changed["products"][0]
    assert row["id"] == product["id"]
    assert (row["title"], row["price"], row["stock"], row["inStock"]) == (
        "Trail Runner 3",
        {"amount": "24.50", "currency": "EUR"},
        0,
        False,
    )
    assert row["brand"] == "Acme"  # omitted fields are kept
    assert row["tags"] == ["new", "trail"]  # tags untouched when not given
    assert row["category"]["path"] == "Shoes > Running"

    cleared = await upsert(
        api, [{"externalId": "p-1", "brand": None, "stock": None, "tags": [], "categoryPath": None}]
    )
    row = cleared["products"][0]
    assert (row["brand"], row["stock"], row["inStock"], row["tags"], row["category"]) == (
        None,
        None,
        True,
        [],
        None,
    )
    assert await count_rows(api.db, "product") == 1
    assert await count_rows(api.db, "product_tag") == 0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("19.9", "19.90"),
        ("19.90", "19.90"),
        ("5", "5.00"),
        ("0", "0.00"),
        ("9999999999.99", "9999999999.99"),
        ("1234.5", "1234.50"),
    ],
)
async def test_money_is_a_decimal_string(api: Api, given: str, expected: str) -> None:
    result = await upsert(api, [shoe(price=given, currency="JPY")])
    assert result["products"][0]["price"] == {"amount": expected, "currency": "JPY"}
    body = await api.gql('{ product(externalId: "p-1") { price { amount currency } } }', scopes=R)
    assert body["data"]["product"]["price"] == {"amount": expected, "currency": "JPY"}


async def test_category_tree_and_sub_category_filter(api: Api) -> None:
    await upsert(
        api,
        [
            shoe(externalId="road", categoryPath=["Shoes", "Running"]),
            shoe(externalId="trail", categoryPath=["Shoes", "Running", "Trail"]),
            shoe(externalId="kids", categoryPath=["Shoes", "Kids"]),
            shoe(externalId="shoes", categoryPath=["Shoes"]),
            shoe(externalId="tee", categoryPath=["Apparel", "Shirts"]),
            shoe(externalId="similar", categoryPath=["Shoes Outlet"]),
            shoe(externalId="none", categoryPath=[]),
        ],
    )
    body = await api.gql(
        "{ categories { id name path depth parent { name } children { name } } }", scopes=R
    )
    tree = body["data"]["categories"]
    assert [
        (c["path"], c["depth"], (c["parent"] or {}).get("name"), [k["name"] for k in c["children"]])
        for c in tree
    ] == [
        ("Apparel", 0, None, ["Shirts"]),
        ("Apparel > Shirts", 1, "Apparel", []),
        ("Shoes", 0, None, ["Kids", "Running"]),
        ("Shoes > Kids", 1, "Shoes", []),
        ("Shoes > Running", 1, "Shoes", ["Trail"]),
        ("Shoes > Running > Trail", 2, "Running", []),
        ("Shoes Outlet", 0, None, []),
    ]
    ids = {c["path"]: c["id"] for c in tree}

    # the same paths again create nothing new
    await upsert(api, [shoe(externalId="road-2", categoryPath=["Shoes", "Running", "Trail"])])
    assert await count_rows(api.db, "category") == 7

    assert await listed(api, {"category": ids["Shoes"]}) == [
        "road",
        "trail",
        "kids",
        "shoes",
        "road-2",
    ]
    assert await listed(api, {"category": ids["Shoes > Running"]}) == ["road", "trail", "road-2"]
    assert await listed(api, {"category": ids["Shoes > Running > Trail"]}) == ["trail", "road-2"]
    assert await listed(api, {"category": ids["Apparel"]}) == ["tee"]
    assert await listed(api, {"category": ids["Shoes Outlet"]}) == ["similar"]
    assert await listed(api, {"category": encode_id("Category", 9999)}) == []

    child = await api.gql(
        "query($id: ID!) { node(id: $id) { ... on Category { path parent { path } children { path } } } }",
        {"id": ids["Shoes > Running"]},
        scopes=R,
    )
    assert child["data"]["node"] == {
        "path": "Shoes > Running",
        "parent": {"path": "Shoes"},
        "children": [{"path": "Shoes > Running > Trail"}],
    }


async def test_every_filter(api: Api) -> None:
    await upsert(
        api,
        [
            shoe(externalId="a", brand="Acme", tags=["sale"], price="10.00", stock=None),
            shoe(externalId="b", brand="Acme", tags=["sale", "new"], price="19.99", stock=0),
            shoe(externalId="c", brand="Zeta", tags=["new"], price="20.00", stock=5),
            shoe(externalId="d", brand="acme", tags=[], price="99.50", stock=1),
            shoe(externalId="e", brand=None, tags=["sale"], price="0", stock=0),
        ],
    )
    assert await listed(api) == ["a", "b", "c", "d", "e"]
    assert await listed(api, {"brand": "Acme"}) == ["a", "b"]  # exact, case-sensitive
    assert await listed(api, {"tag": "sale"}) == ["a", "b", "e"]
    assert await listed(api, {"tag": "nope"}) == []
    assert await listed(api, {"inStock": True}) == ["a", "c", "d"]  # untracked stock counts
    assert await listed(api, {"inStock": False}) == ["b", "e"]
    assert await listed(api, {"minPrice": "19.99"}) == ["b", "c", "d"]  # inclusive
    assert await listed(api, {"maxPrice": "20"}) == ["a", "b", "c", "e"]  # inclusive
    assert await listed(api, {"minPrice": "10", "maxPrice": "19.99"}) == ["a", "b"]
    assert await listed(
        api, {"brand": "Acme", "tag": "new", "inStock": False, "maxPrice": "19.99"}
    ) == ["b"]
    count = await api.gql(LIST, {"filter": {"tag": "sale", "inStock": True}}, scopes=R)
    assert count["data"]["products"]["totalCount"] == 1

    for flt in (
        {"minPrice": "abc"},
        {"maxPrice": "1.001"},
        {"minPrice": "-1"},
        {"category": encode_id("User", 1)},
        {"category": "garbage!"},
    ):
        body = await api.gql(LIST, {"filter": flt}, scopes=R)
        assert error_codes(body) == ["BAD_USER_INPUT"], flt
    for bad in (
        "{ products(first: 101) { totalCount } }",
        '{ products(after: "zz!") { totalCount } }',
    ):
        assert error_codes(await api.gql(bad, scopes=R)) == ["BAD_USER_INPUT"], bad


async def test_pagination_across_pages(api: Api) -> None:
    products = [shoe(externalId=f"p-{i:03d}", tags=[]) for i in range(45)]
    await upsert(api, products)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await api.gql(LIST, {"first": 20, "after": after}, scopes=R)
        conn = body["data"]["products"]
        assert conn["totalCount"] == 45
        seen += [n["externalId"] for n in conn["nodes"]]
        pages += 1
        assert conn["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == [p["externalId"] for p in products]
    edges = await api.gql(
        "{ products(first: 2) { edges { cursor node { externalId } } } }", scopes=R
    )
    cursor = edges["data"]["products"]["edges"][0]["cursor"]
    rest = await api.gql(LIST, {"first": 1, "after": cursor}, scopes=R)
    assert rest["data"]["products"]["nodes"] == [{"externalId": "p-001"}]


async def test_archive_hides_from_default_lists(api: Api) -> None:
    created = (await upsert(api, [shoe(externalId="keep"), shoe(externalId="gone")]))["products"]
    by_id = await api.gql(ARCHIVE, {"input": {"id": created[1]["id"]}}, scopes=W)
    archived = by_id["data"]["archiveProduct"]
    assert archived["errors"] == []
    assert archived["product"]["externalId"] == "gone"
    assert archived["product"]["active"] is False
    archived_at = archived["product"]["archivedAt"]
    assert archived_at is not None

    assert await listed(api) == ["keep"]
    assert await listed(api, {"includeArchived": True}) == ["keep", "gone"]
    assert await listed(api, {"includeArchived": True, "brand": "Acme"}) == ["keep", "gone"]
    one = await api.gql('{ product(externalId: "gone") { archivedAt active } }', scopes=R)
    assert one["data"]["product"] == {"archivedAt": archived_at, "active": False}

    twice = await api.gql(ARCHIVE, {"input": {"externalId": "gone"}}, scopes=W)
    assert twice["data"]["archiveProduct"]["errors"] == []
    assert twice["data"]["archiveProduct"]["product"]["archivedAt"] == archived_at

    # an upsert updates an archived product but does not bring it back
    again = await upsert(api, [{"externalId": "gone", "title": "Renamed"}])
    assert again["products"][0]["archivedAt"] == archived_at
    assert await listed(api) == ["keep"]

    before = await snapshot(api)
    for target in ({"externalId": "nope"}, {"id": encode_id("Product", 9999)}):
        missing = await api.gql(ARCHIVE, {"input": target}, scopes=W)
        assert missing["data"]["archiveProduct"] == {
            "product": None,
            "errors": [
                {"code": "NOT_FOUND", "field": ["input", "id"], "message": "no such product"}
            ],
        }
    for target in (
        {},
        {"id": created[0]["id"], "externalId": "keep"},
        {"id": encode_id("User", 1)},
    ):
        assert error_codes(await api.gql(ARCHIVE, {"input": target}, scopes=W)) == [
            "BAD_USER_INPUT"
        ]
    assert await snapshot(api) == before


async def test_batch_errors_are_per_item_and_write_nothing(api: Api) -> None:
    await upsert(api, [shoe()])
    before = await snapshot(api)
    body = await api.gql(
        UPSERT,
        {
            "products": [
                shoe(externalId="ok-1", categoryPath=["New", "Branch"]),
                shoe(externalId="bad-1", price="19.999"),
                shoe(externalId="ok-1"),
                shoe(externalId="bad 2", currency="EURO", tags=["UPPER"]),
                {"externalId": "bad-3"},
                shoe(externalId="bad-4", price="-1", stock=-2, categoryPath=["A", "B>C"]),
                shoe(externalId="bad-5", title="  ", categoryPath=["x"] * 7),
                {"externalId": "p-1", "price": "abc", "title": None},
            ]
        },
        scopes=W,
    )
    result = body["data"]["upsertProducts"]
    assert result["products"] == []
    got = sorted((e["index"], e["code"], ".".join(e["field"])) for e in result["errors"])
    assert got == [
        (1, "INVALID_PRICE", "products.1.price"),
        (2, "DUPLICATE", "products.2.externalId"),
        (3, "INVALID_CURRENCY", "products.3.currency"),
        (3, "INVALID_EXTERNAL_ID", "products.3.externalId"),
        (3, "INVALID_TAG", "products.3.tags"),
        (4, "REQUIRED", "products.4.currency"),
        (4, "REQUIRED", "products.4.price"),
        (4, "REQUIRED", "products.4.title"),
        (5, "INVALID_CATEGORY", "products.5.categoryPath"),
        (5, "INVALID_PRICE", "products.5.price"),
        (5, "INVALID_STOCK", "products.5.stock"),
        (6, "INVALID_CATEGORY", "products.6.categoryPath"),
        (6, "REQUIRED", "products.6.title"),
        (7, "INVALID_PRICE", "products.7.price"),
        (7, "REQUIRED", "products.7.title"),
    ]
    assert all(e["message"] for e in result["errors"])
    assert await count_rows(api.db, "product") == 1
    assert await snapshot(api) == before

    # an existing product needs no title, price or currency
    assert (await upsert(api, [{"externalId": "p-1", "stock": 7}]))["products"][0]["stock"] == 7


async def test_oversized_batch_writes_nothing(api: Api) -> None:
    body = await api.gql(
        UPSERT, {"products": [shoe(externalId=f"x-{i}") for i in range(101)]}, scopes=W
    )
    assert body["data"]["upsertProducts"]["products"] == []
    assert body["data"]["upsertProducts"]["errors"] == [
        {
            "code": "TOO_MANY",
            "field": ["products"],
            "message": "at most 100 products per call",
            "index": None,
        }
    ]
    assert await count_rows(api.db, "product") == 0
    assert await count_rows(api.db, "category") == 0
    hundred = await upsert(api, [shoe(externalId=f"x-{i}") for i in range(100)])
    assert len(hundred["products"]) == 100


async def test_duplicate_external_id_in_a_batch(api: Api) -> None:
    body = await api.gql(
        UPSERT, {"products": [shoe(), shoe(title="Other"), shoe(externalId="p-2")]}, scopes=W
    )
    assert body["data"]["upsertProducts"]["errors"] == [
        {
            "code": "DUPLICATE",
            "field": ["products", "1", "externalId"],
            "message": "externalId 'p-1' also appears at index 0",
            "index": 1,
        }
    ]
    assert await count_rows(api.db, "product") == 0


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("currency", "EURO", "INVALID_CURRENCY"),
        ("currency", "XXY", "INVALID_CURRENCY"),
        ("currency", "", "INVALID_CURRENCY"),
        ("price", "abc", "INVALID_PRICE"),
        ("price", "1.999", "INVALID_PRICE"),
        ("price", "-0.01", "INVALID_PRICE"),
        ("price", "10000000000", "INVALID_PRICE"),
        ("price", "NaN", "INVALID_PRICE"),
        ("price", "", "INVALID_PRICE"),
        ("stock", -1, "INVALID_STOCK"),
        ("title", "x" * 301, "TOO_LONG"),
        ("brand", "x" * 101, "TOO_LONG"),
        ("categoryPath", ["x" * 101], "TOO_LONG"),
        ("categoryPath", ["Shoes", " "], "INVALID_CATEGORY"),
        ("tags", ["ok", "Not OK"], "INVALID_TAG"),
        ("attributes", [1, 2], "INVALID_ATTRIBUTES"),
        ("externalId", "has space", "INVALID_EXTERNAL_ID"),
    ],
)
async def test_invalid_values(api: Api, field: str, value: Any, code: str) -> None:
    body = await api.gql(UPSERT, {"products": [shoe(**{field: value})]}, scopes=W)
    errors = body["data"]["upsertProducts"]["errors"]
    assert [(e["code"], e["field"], e["index"]) for e in errors] == [
        (code, ["products", "0", field], 0)
    ]
    assert await count_rows(api.db, "product") == 0


async def test_lookup_by_id_external_id_and_node(api: Api) -> None:
    created = (await upsert(api, [shoe(), shoe(externalId="p-2")]))["products"]
    by_id = await api.gql(
        "query($id: ID!) { product(id: $id) { externalId } }", {"id": created[1]["id"]}, scopes=R
    )
    assert by_id["data"]["product"] == {"externalId": "p-2"}
    by_ext = await api.gql('{ product(externalId: "p-1") { id } }', scopes=R)
    assert by_ext["data"]["product"]["id"] == created[0]["id"]
    assert (await api.gql('{ product(externalId: "nope") { id } }', scopes=R))["data"][
        "product"
    ] is None
    node = await api.gql(
        "query($id: ID!) { node(id: $id) { id ... on Product { externalId price { amount } category { path } } } }",
        {"id": created[0]["id"]},
        scopes=R,
    )
    assert node["data"]["node"] == {
        "id": created[0]["id"],
        "externalId": "p-1",
        "price": {"amount": "19.90"},
        "category": {"path": "Shoes > Running"},
    }
    denied = await api.gql(
        "query($id: ID!) { node(id: $id) { id } }", {"id": created[0]["id"]}, scopes="users:read"
    )
    assert error_codes(denied) == ["FORBIDDEN"]
    for bad in (
        "{ product { id } }",
        '{ product(id: "x", externalId: "p-1") { id } }',
        '{ product(id: "not-an-id") { id } }',
        f'{{ product(id: "{encode_id("User", 1)}") {{ id }} }}',
    ):
        assert error_codes(await api.gql(bad, scopes=R)) == ["BAD_USER_INPUT"], bad


@pytest.mark.parametrize(
    "variables",
    [
        {"products": [{"externalId": "x", "unknownField": 1}]},
        {"products": [{"title": "no external id"}]},
        {"products": [{"externalId": "x", "price": 19.9}]},
        {"products": [{"externalId": "x", "stock": "5"}]},
        {"products": "nope"},
    ],
)
async def test_malformed_input_is_rejected_by_graphql(api: Api, variables: dict[str, Any]) -> None:
    body = await api.gql(UPSERT, variables, scopes=W)
    assert body.get("data") is None
    assert body["errors"]
    assert await count_rows(api.db, "product") == 0


P1 = encode_id("Product", 1)
OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("catalog:read", '{ product(externalId: "p-1") { id } }', {}),
    ("catalog:read", "{ products { totalCount nodes { id } } }", {}),
    ("catalog:read", "{ categories { id path } }", {}),
    ("catalog:read", "query($id: ID!) { node(id: $id) { id } }", {"id": P1}),
    ("catalog:write", UPSERT, {"products": [shoe(externalId="new-1", categoryPath=["Fresh"])]}),
    ("catalog:write", UPSERT, {"products": [{"externalId": "p-1", "title": "Changed"}]}),
    ("catalog:write", ARCHIVE, {"input": {"externalId": "p-1"}}),
]


@pytest.mark.parametrize(("scope", "query", "variables"), OPERATIONS)
async def test_scope_matrix(api: Api, scope: str, query: str, variables: dict[str, Any]) -> None:
    await upsert(api, [shoe()])
    before = await snapshot(api)
    anonymous = await api.gql(query, variables)
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert not any((anonymous["data"] or {}).values())  # null, or a nullable field left null
    wrong = await api.gql(query, variables, scopes="users:read users:write")
    assert error_codes(wrong) == ["FORBIDDEN"]
    assert not any((wrong["data"] or {}).values())
    assert scope in wrong["errors"][0]["message"]
    other_half = "catalog:read" if scope == "catalog:write" else "catalog:write"
    half = await api.gql(query, variables, scopes=other_half)
    assert error_codes(half) == ["FORBIDDEN"]
    assert await snapshot(api) == before
    allowed = await api.gql(query, variables, scopes=scope)
    assert "errors" not in allowed, allowed
    assert allowed["data"] is not None
    if scope == "catalog:write":
        payload = next(iter(allowed["data"].values()))
        assert payload["errors"] == []
        assert await snapshot(api) != before


async def test_product_list_has_no_n_plus_one(api: Api, app: Any) -> None:
    await upsert(
        api,
        [
            shoe(
                externalId=f"n-{i}",
                categoryPath=["Shoes", f"Line {i % 7}", f"Sub {i}"],
                tags=["a", f"t{i}"],
            )
            for i in range(60)
        ],
    )
    token = await api.token(R)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "category" in statement or "product" in statement:
            statements.append(statement)

    query = """query($first: Int!) { products(first: $first) {
        nodes { id tags price { amount } category { name parent { name parent { name } } children { name } } } } }"""
    engine = app.state.services.db.engine.sync_engine  # the app's own engine, not the fixture's
    event.listen(engine, "before_cursor_execute", record)
    try:
        counts = []
        for first in (5, 50):
            statements.clear()
            body = await api.gql(query, {"first": first}, token=token)
            nodes = body["data"]["products"]["nodes"]
            assert len(nodes) == first
            assert nodes[-1]["category"]["parent"]["parent"] == {"name": "Shoes"}
            assert nodes[-1]["tags"] == ["a", f"t{first - 1}"]
            counts.append(len(statements))
        # page, tags, categories, their children, then one query per level of parents
        assert counts == [6, 6], statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
