"""previewSegment: the count and sample against data sent through the API (the marketer's example
from the issue), the admin-only cost, and hostile definitions (deep nesting, huge lists,
SQL-looking strings), which are typed errors or literal matches, never a crash."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select

from api.ids import encode_id
from domain.events.models import Event
from domain.settings import Settings
from domain.sql import table
from domain.users.models import Customer
from tests.conftest import Api, count_rows, error_codes, serve
from tests.segments.api_helpers import (
    ADMIN,
    CREATE,
    ORDERS,
    PREVIEW,
    PREVIEW_COUNT,
    RU,
    SEED,
    W,
    ago,
    consent,
    create,
    ok,
    products,
    track,
    users,
)

# "Shoppers in Germany or Austria who bought running shoes at least twice in the last 90 days,
# spent over 200 EUR, have push consent and did not open a message in 30 days."
EXAMPLE: dict[str, Any] = {
    "and": [
        {"attribute": {"field": "COUNTRY", "op": "IN", "values": ["DE", "AT"]}},
        {
            "behavior": {
                "eventType": "purchase",
                "categoryPath": ["Shoes", "Running"],
                "count": {"min": 2},
                "window": {"lastDays": 90},
            }
        },
        {
            "order": {
                "totalValue": {"min": "200.01"},
                "currency": "EUR",
                "window": {"lastDays": 90},
            }
        },
        {"consent": {"purpose": "PUSH", "granted": True}},
        {"not": {"behavior": {"eventType": "message_open", "window": {"lastDays": 30}}}},
    ]
}


def purchase(n: str, user: str, product: str, days: float) -> dict[str, Any]:
    return {
        "clientEventId": n,
        "type": "purchase",
        "userExternalId": user,
        "productExternalId": product,
        "value": "120.00",
        "currency": "EUR",
        "occurredAt": ago(days),
    }


def order(n: str, user: str, total: str, days: float) -> dict[str, Any]:
    return {
        "externalId": n,
        "userExternalId": user,
        "currency": "EUR",
        "lines": [{"productExternalId": "gift", "quantity": 1, "unitPrice": total}],
        "placedAt": ago(days),
    }


async def seed_example(api: Api) -> None:
    """m1 and m2 match the example; each x* misses exactly one of its conditions."""
    await products(
        api,
        {
            "externalId": "shoe-1",
            "title": "Road",
            "price": "120.00",
            "currency": "EUR",
            "categoryPath": ["Shoes", "Running"],
        },
        {
            "externalId": "shoe-2",
            "title": "Trail",
            "price": "120.00",
            "currency": "EUR",
            "categoryPath": ["Shoes", "Running", "Trail"],
        },
        {
            "externalId": "sock",
            "title": "Sock",
            "price": "5.00",
            "currency": "EUR",
            "categoryPath": ["Apparel", "Socks"],
        },
        {"externalId": "gift", "title": "Gift card", "price": "50.00", "currency": "EUR"},
    )
    countries = {
        "m1": "DE",
        "m2": "AT",
        "x1": "FR",
        "x2": "DE",
        "x3": "AT",
        "x4": "DE",
        "x5": "AT",
        "x6": "DE",
        "x7": "DE",
    }
    await users(api, *({"externalId": u, "country": c} for u, c in countries.items()))
    events = [
        purchase("m1-a", "m1", "shoe-1", 10),
        purchase("m1-b", "m1", "shoe-2", 20),  # a sub-category counts
        {
            "clientEventId": "m1-open",
            "type": "message_open",
            "userExternalId": "m1",
            "messageId": "7",
            "occurredAt": ago(40),
        },  # older than 30 days
        *(purchase(f"m2-{i}", "m2", "shoe-1", 5 + i) for i in range(3)),
        *(purchase(f"x1-{i}", "x1", "shoe-1", 5 + i) for i in range(3)),  # France
        purchase("x2-a", "x2", "shoe-1", 5),
        purchase("x2-b", "x2", "sock", 6),  # not a running shoe
        *(purchase(f"x3-{i}", "x3", "shoe-1", 5 + i) for i in range(2)),  # spent too little
        *(purchase(f"x4-{i}", "x4", "shoe-1", 5 + i) for i in range(2)),  # withdrew push consent
        *(purchase(f"x5-{i}", "x5", "shoe-1", 5 + i) for i in range(2)),
        {
            "clientEventId": "x5-open",
            "type": "message_open",
            "userExternalId": "x5",
            "messageId": "7",
            "occurredAt": ago(5),
        },  # opened a message lately
        purchase("x6-a", "x6", "shoe-1", 5),
        purchase("x6-b", "x6", "shoe-1", 100),  # outside the window
        *(purchase(f"x7-{i}", "x7", "shoe-1", 5 + i) for i in range(2)),  # no consent record
    ]
    await track(api, *events)
    spent = {
        "m1": "250.00",
        "m2": "300.00",
        "x1": "300.00",
        "x2": "300.00",
        "x3": "150.00",
        "x4": "300.00",
        "x5": "300.00",
        "x6": "300.00",
        "x7": "300.00",
    }
    await ok(api, ORDERS, {"orders": [order(f"o-{u}", u, t, 3) for u, t in spent.items()]}, SEED)
    for user in ("m1", "m2", "x1", "x2", "x3", "x4", "x5", "x6"):
        await consent(api, user, "PUSH", True)
    await consent(api, "x4", "PUSH", False)


async def test_the_marketers_example(api: Api) -> None:
    await seed_example(api)
    body = await api.gql(PREVIEW, {"d": EXAMPLE, "sample": 10}, scopes=RU)
    assert "errors" not in body, body
    result = body["data"]["previewSegment"]
    assert result["errors"] == [], body
    preview = result["preview"]
    assert preview["count"] == 2
    assert [u["externalId"] for u in preview["sample"]] == ["m1", "m2"]
    assert 0 <= preview["elapsedMs"] < 1000
    # not an admin: no cost, no plan
    assert preview["sqlCost"] is None and preview["plan"] is None

    # each condition on its own, and a smaller sample
    body = await api.gql(PREVIEW, {"d": EXAMPLE["and"][0], "sample": 3}, scopes=RU)
    preview = body["data"]["previewSegment"]["preview"]
    assert preview["count"] == 8
    assert [u["externalId"] for u in preview["sample"]] == ["m1", "m2", "x2"]
    body = await api.gql(PREVIEW, {"d": {"not": EXAMPLE}, "sample": 0}, scopes=RU)
    preview = body["data"]["previewSegment"]["preview"]
    assert preview["count"] == 7 and preview["sample"] == []

    # nothing was saved by previewing
    assert await count_rows(api.db, "segment") == 0


async def test_preview_through_a_segment_reference(api: Api) -> None:
    await seed_example(api)
    seg = await create(api, name="example", definition=EXAMPLE)
    body = await api.gql(
        PREVIEW_COUNT,
        {
            "d": {
                "and": [
                    {"segment": {"segmentId": seg["id"]}},
                    {"attribute": {"field": "COUNTRY", "op": "EQ", "value": "AT"}},
                ]
            }
        },
        scopes=RU,
    )
    assert body["data"]["previewSegment"] == {"preview": {"count": 1}, "errors": []}, body


async def test_cost_and_plan_only_for_admins(api: Api, backend: str) -> None:
    await seed_example(api)
    body = await api.gql(PREVIEW, {"d": EXAMPLE}, scopes=ADMIN)
    preview = body["data"]["previewSegment"]["preview"]
    assert preview["count"] == 2
    assert isinstance(preview["plan"], str) and preview["plan"]
    if backend == "postgres":
        assert isinstance(preview["sqlCost"], float) and preview["sqlCost"] > 0
    else:
        assert preview["sqlCost"] is None
    body = await api.gql(PREVIEW, {"d": EXAMPLE}, scopes="segments:read users:read users:pii")
    preview = body["data"]["previewSegment"]["preview"]
    assert preview["sqlCost"] is None and preview["plan"] is None


async def test_sample_and_budget_bounds(api: Api) -> None:
    d = {"attribute": {"field": "COUNTRY", "op": "IS_SET"}}
    for variables, field in (
        ({"sample": 101}, ["sample"]),
        ({"sample": -1}, ["sample"]),
        ({"budget": 0}, ["budgetMs"]),
        ({"budget": 60_000}, ["budgetMs"]),
    ):
        body = await api.gql(PREVIEW, {"d": d, **variables}, scopes=RU)
        result = body["data"]["previewSegment"]
        assert result["preview"] is None
        assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID", field)], body


def nested(kind: str, depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"tag": {"tags": ["x"]}}
    for _ in range(depth):
        node = {"not": node} if kind == "not" else {kind: [node]}
    return node


@pytest.mark.parametrize("kind", ["not", "and", "or"])
async def test_deep_nesting_is_refused_quickly(api: Api, kind: str) -> None:
    # 13 levels: one past the limit; the error names the node where the limit is crossed
    body = await api.gql(PREVIEW_COUNT, {"d": nested(kind, 13)}, scopes=RU)
    errors = body["data"]["previewSegment"]["errors"]
    assert [e["code"] for e in errors] == ["TOO_DEEP"], body
    step = [kind] if kind == "not" else [kind, "0"]
    assert errors[0]["field"] == ["definition", *(step * 12), kind], body
    # 12 levels are fine
    body = await api.gql(PREVIEW_COUNT, {"d": nested(kind, 12)}, scopes=RU)
    assert body["data"]["previewSegment"] == {"preview": {"count": 0}, "errors": []}, body
    # 50 levels, as a variable and written into the document: the same typed error, fast
    started = time.perf_counter()
    body = await api.gql(PREVIEW_COUNT, {"d": nested(kind, 50)}, scopes=RU)
    assert [e["code"] for e in body["data"]["previewSegment"]["errors"]] == ["TOO_DEEP"], body
    literal = _literal(nested(kind, 50))
    body = await api.gql(
        f"{{ previewSegment(definition: {literal}) {{ preview {{ count }} errors {{ code }} }} }}",
        scopes=RU,
    )
    assert [e["code"] for e in body["data"]["previewSegment"]["errors"]] == ["TOO_DEEP"], body
    # far deeper than graphql-core walks: a top-level input error, not a crash
    for depth in (210, 300):
        body = await api.gql(PREVIEW_COUNT, {"d": nested(kind, depth)}, scopes=RU)
        assert body.get("data") is None, body
        # (graphql-core's refusal past 200 levels, or ours past what orjson encodes)
        assert [e["message"].lower().rstrip(".") for e in body["errors"]] == [
            "variable values are nested too deeply"
        ], body
        # (graphql-core's variable errors carry no code, like every other coercion error)
        assert error_codes(body) in (["BAD_USER_INPUT"], [None]), body
    # and deeper than the JSON parser goes: a 400, not a crash
    token = await api.token(RU)
    deep = '{"not": ' * 5000 + '{"tag": {"tags": ["x"]}}' + "}" * 5000
    response = await api.client.post(
        "/graphql",
        content='{"query": "query($d: SegmentCondition!) { previewSegment(definition: $d) '
        '{ preview { count } } }", "variables": {"d": ' + deep + "}}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert time.perf_counter() - started < 5


def _literal(value: Any) -> str:
    """A GraphQL literal of a definition (enum values unquoted)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return '"' + str(value) + '"'


async def test_huge_lists_and_long_values(api: Api) -> None:
    values = [f"v{i}" for i in range(1001)]
    body = await api.gql(
        PREVIEW_COUNT,
        {"d": {"attribute": {"field": "EXTERNAL_ID", "op": "IN", "values": values}}},
        scopes=RU,
    )
    assert [(e["code"], e["field"]) for e in body["data"]["previewSegment"]["errors"]] == [
        ("TOO_MANY", ["definition", "attribute", "values"])
    ], body
    body = await api.gql(
        PREVIEW_COUNT,
        {"d": {"attribute": {"field": "EXTERNAL_ID", "op": "IN", "values": values[:1000]}}},
        scopes=RU,
    )
    assert body["data"]["previewSegment"] == {"preview": {"count": 0}, "errors": []}, body
    body = await api.gql(
        PREVIEW_COUNT,
        {"d": {"and": [{"tag": {"tags": ["a"]}}] * 301}},
        scopes=RU,
    )
    assert [e["code"] for e in body["data"]["previewSegment"]["errors"]][:1] == ["TOO_MANY"], body
    # a value that is an object, where a scalar is expected
    body = await api.gql(
        PREVIEW_COUNT,
        {"d": {"attribute": {"key": "plan", "op": "EQ", "value": {"$ne": None}}}},
        scopes=RU,
    )
    assert [(e["code"], e["field"]) for e in body["data"]["previewSegment"]["errors"]] == [
        ("INVALID_VALUE", ["definition", "attribute", "value"])
    ], body


SQLISH = [
    "'; DROP TABLE customer; --",
    "x' OR '1'='1",
    '") OR 1=1 --',
    "%",
    "_",
    "\\",
    "a%b_c\\d",
    "1; SELECT pg_sleep(10)",
]


async def test_sql_looking_strings_match_literally(api: Api) -> None:
    # given shoppers whose names and a custom attribute are SQL-looking strings, and one plain
    await users(
        api,
        *(
            {"externalId": f"s{i}", "firstName": s, "attributes": {"note": s}}
            for i, s in enumerate(SQLISH)
        ),
        {
            "externalId": "plain",
            "firstName": "Anna",
            "tags": ["plain"],
            "attributes": {"note": "n"},
        },
    )
    before = await count_rows(api.db, "customer")
    for i, s in enumerate(SQLISH):
        for leaf in (
            {"attribute": {"field": "FIRST_NAME", "op": "EQ", "value": s}},
            {"attribute": {"field": "FIRST_NAME", "op": "CONTAINS", "value": s}},
            {"attribute": {"field": "FIRST_NAME", "op": "STARTS_WITH", "value": s}},
            {"attribute": {"key": "note", "op": "EQ", "value": s}},
            {"attribute": {"key": "note", "op": "CONTAINS", "value": s}},
        ):
            body = await api.gql(PREVIEW, {"d": leaf, "sample": 20}, scopes=RU)
            result = body["data"]["previewSegment"]
            assert result["errors"] == [], (leaf, body)
            matched = {u["externalId"] for u in result["preview"]["sample"]}
            # exactly the shoppers holding that text (contains/starts with: also those whose
            # value merely contains it, e.g. "%" inside "a%b_c\\d"), never everyone
            holders = {f"s{j}" for j, t in enumerate(SQLISH) if _matches(leaf, s, t)}
            assert matched == holders and f"s{i}" in matched, (leaf, matched, holders)
            assert "plain" not in matched
        # a tag can never hold such text: no match, or a typed error, nothing else
        body = await api.gql(PREVIEW_COUNT, {"d": {"tag": {"tags": [s]}}}, scopes=RU)
        result = body["data"]["previewSegment"]
        assert result == {"preview": {"count": 0}, "errors": []} or [
            e["code"] for e in result["errors"]
        ] == ["INVALID_VALUE"], body
    assert await count_rows(api.db, "customer") == before


def _matches(leaf: dict[str, Any], needle: str, value: str) -> bool:
    op = (leaf.get("attribute") or {}).get("op", "EQ")
    if op == "CONTAINS":
        return needle.lower() in value.lower()
    if op == "STARTS_WITH":
        return value.lower().startswith(needle.lower())
    return value == needle


async def test_bad_ids_and_unknown_references(api: Api) -> None:
    cases = [
        (
            {"segment": {"segmentId": "!!"}},
            ("INVALID_VALUE", ["definition", "segment", "segmentId"]),
        ),
        (
            {"segment": {"segmentId": encode_id("Segment", 424242)}},
            ("NOT_FOUND", ["definition", "segment", "segmentId"]),
        ),
        (
            {"behavior": {"eventType": "view", "categoryId": encode_id("Product", 1)}},
            ("INVALID_VALUE", ["definition", "behavior", "categoryId"]),
        ),
        (
            {"behavior": {"eventType": "view", "categoryPath": ["No", "Such"]}},
            ("NOT_FOUND", ["definition", "behavior", "categoryPath"]),
        ),
        (
            {"behavior": {"eventType": "view", "categoryPath": ["A>B"]}},
            ("INVALID_VALUE", ["definition", "behavior", "categoryPath"]),
        ),
        (
            {"behavior": {"eventType": "nonsense"}},
            ("INVALID_VALUE", ["definition", "behavior", "eventType"]),
        ),
        (
            {"attribute": {"op": "EQ", "value": "x"}},
            ("INVALID", ["definition", "attribute"]),
        ),
    ]
    for d, expected in cases:
        body = await api.gql(PREVIEW_COUNT, {"d": d}, scopes=RU)
        result = body["data"]["previewSegment"]
        assert result["preview"] is None, body
        got = [(e["code"], e["field"]) for e in result["errors"]]
        assert got[:1] == [expected], (d, body)


HEAVY = {
    "or": [
        {"behavior": {"eventType": "purchase", "count": {"min": n}, "value": {"min": str(n * 10)}}}
        for n in range(2, 60)
    ]
}


async def test_over_budget_is_a_typed_timeout(api: Api) -> None:
    # given 400 shoppers with 100 purchases each (written directly: only the volume matters)
    async with api.db.unit_of_work() as session:
        await session.execute(
            insert(table(Customer)),
            [{"external_id": f"bulk-{i}", "attributes": {}} for i in range(400)],
        )
        ids = list(await session.scalars(select(table(Customer).c.id)))
        await session.execute(
            insert(table(Event)),
            [
                {
                    "client_event_id": f"bulk-{c}-{n}",
                    "customer_id": c,
                    "type": "purchase",
                    "value": Decimal(n % 50),
                    "currency": "EUR",
                    "occurred_at": datetime.now(UTC) - timedelta(days=n % 300),
                    "source_client_id": "test",
                }
                for c in ids
                for n in range(100)
            ],
        )
    # when a heavy definition is previewed with a 5 ms budget: TIMEOUT, no preview
    body = await api.gql(PREVIEW, {"d": HEAVY, "budget": 5}, scopes=RU)
    assert "errors" not in body, body
    result = body["data"]["previewSegment"]
    assert result["preview"] is None
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("TIMEOUT", ["definition"])]
    # and with time enough it answers
    body = await api.gql(PREVIEW, {"d": HEAVY, "budget": 10_000, "sample": 2}, scopes=RU)
    preview = body["data"]["previewSegment"]["preview"]
    assert preview["count"] == 400 and [u["externalId"] for u in preview["sample"]] == [
        "bulk-0",
        "bulk-1",
    ]


ODD_VALUES: list[Any] = [
    10**30,
    -(10**30),
    1.5e308,
    -0.0,
    "",
    " ",
    "\u202ed\u0435",
    True,
    [],
    {},
    [[1]],
    "2026-13-45",
    "9999-12-31T23:59:59+00:00",
    "0001-01-01",
    "NaN",
    "1e400",
]


async def test_odd_values_are_typed_errors_or_answers(api: Api) -> None:
    """Every operator with odd values on fields of each type: a typed error or a count, never a
    top-level (unexpected) error."""
    await users(api, {"externalId": "u", "country": "DE", "attributes": {"n": 3, "s": "x"}})
    subjects: list[dict[str, Any]] = [
        {"field": "COUNTRY"},
        {"field": "BIRTH_DATE"},
        {"field": "CREATED_AT"},
        {"key": "n"},
        {"key": "s.t"},
    ]
    answered = refused = 0
    for subject in subjects:
        for op in ("EQ", "IN", "GT", "BETWEEN", "CONTAINS", "WITHIN_LAST_DAYS", "IS_SET"):
            for value in ODD_VALUES:
                leaf = {**subject, "op": op}
                leaf["values" if op in ("IN", "BETWEEN") else "value"] = (
                    [value, value] if op in ("IN", "BETWEEN") else value
                )
                body = await api.gql(PREVIEW_COUNT, {"d": {"attribute": leaf}}, scopes=RU)
                assert "errors" not in body, (leaf, body)
                result = body["data"]["previewSegment"]
                assert (result["preview"] is None) == bool(result["errors"]), (leaf, body)
                answered += result["preview"] is not None
                refused += bool(result["errors"])
    assert answered and refused


async def test_odd_bounds_and_windows_are_typed_errors(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"behavior": {"eventType": "view", "count": {"min": -1}}}, "INVALID_VALUE"),
        ({"behavior": {"eventType": "view", "count": {"min": 5, "max": 2}}}, "INVALID_VALUE"),
        ({"behavior": {"eventType": "view", "value": {"min": "NaN"}}}, "INVALID_VALUE"),
        ({"behavior": {"eventType": "view", "value": {"min": "sNaN"}}}, "INVALID_VALUE"),
        ({"behavior": {"eventType": "view", "value": {"max": "1e400"}}}, "INVALID_VALUE"),
        ({"order": {"totalValue": {"min": "-Infinity"}}}, "INVALID_VALUE"),
        (
            {"behavior": {"eventType": "view", "window": {"lastDays": 2**31 - 1}}},
            "IMPOSSIBLE_WINDOW",
        ),
        ({"behavior": {"eventType": "view", "window": {"lastHours": -5}}}, "IMPOSSIBLE_WINDOW"),
        ({"order": {"window": {"from": "2999-01-01T00:00:00+00:00"}}}, "IMPOSSIBLE_WINDOW"),
        (
            {
                "order": {
                    "window": {"from": "2020-01-02T00:00:00+00:00", "to": "2020-01-01T00:00:00Z"}
                }
            },
            "IMPOSSIBLE_WINDOW",
        ),
        ({"order": {"window": {}}}, "IMPOSSIBLE_WINDOW"),
        ({"behavior": {"eventType": "custom:" + "x" * 300}}, "TOO_LONG"),
        (
            {"behavior": {"eventType": "purchase", "occurrence": "FIRST", "count": {"min": 2}}},
            "INVALID",
        ),
    ]
    for d, code in cases:
        body = await api.gql(PREVIEW_COUNT, {"d": d}, scopes=RU)
        assert "errors" not in body, (d, body)
        result = body["data"]["previewSegment"]
        assert result["preview"] is None and result["errors"][0]["code"] == code, (d, body)
        assert result["errors"][0]["field"][:2] == ["definition", next(iter(d))], (d, body)
    # a time without an offset is refused by the DateTime scalar itself or as a typed error
    body = await api.gql(
        PREVIEW_COUNT, {"d": {"order": {"window": {"from": "2020-01-01T00:00:00"}}}}, scopes=RU
    )
    assert "errors" in body or body["data"]["previewSegment"]["errors"], body


async def test_values_in_all_lists_are_bounded(api: Api) -> None:
    """Every value is a bound parameter (PostgreSQL takes at most 32,767 in a statement): a
    definition holds at most 10,000 values in all its lists, and up to that it runs quickly."""
    await users(api, {"externalId": "v-5", "country": "DE"})

    def lists(n: int) -> dict[str, Any]:
        values = [f"v-{i}" for i in range(1000)]
        leaf = {"attribute": {"field": "EXTERNAL_ID", "op": "IN", "values": values}}
        return {"or": [leaf] * n}

    # 90 lists of 1000 (about 0.9 MB, under the 1 MB body limit): TOO_MANY at the root, at once
    started = time.perf_counter()
    body = await api.gql(PREVIEW_COUNT, {"d": lists(90)}, scopes=RU)
    assert [(e["code"], e["field"]) for e in body["data"]["previewSegment"]["errors"]] == [
        ("TOO_MANY", ["definition"])
    ], body
    assert time.perf_counter() - started < 3
    # 10 lists of 1000: counted
    started = time.perf_counter()
    body = await api.gql(PREVIEW_COUNT, {"d": lists(10)}, scopes=RU)
    assert body["data"]["previewSegment"] == {"preview": {"count": 1}, "errors": []}, body
    assert time.perf_counter() - started < 3
    body = await api.gql(CREATE, {"input": {"name": "big", "definition": lists(11)}}, scopes=W)
    assert [(e["code"], e["field"]) for e in body["data"]["createSegment"]["errors"]] == [
        ("TOO_MANY", ["input", "definition"])
    ], body
    # referenced segments are compiled inline, so their values count where they are referenced
    ids = [(await create(api, name=f"s{i}", definition=lists(4)))["id"] for i in range(3)]
    refs = {"or": [{"segment": {"segmentId": i}} for i in ids]}
    body = await api.gql(PREVIEW_COUNT, {"d": refs}, scopes=RU)
    assert [(e["code"], e["field"]) for e in body["data"]["previewSegment"]["errors"]] == [
        ("TOO_MANY", ["definition"])
    ], body
    body = await api.gql(CREATE, {"input": {"name": "refs", "definition": refs}}, scopes=W)
    assert [(e["code"], e["field"]) for e in body["data"]["createSegment"]["errors"]] == [
        ("TOO_MANY", ["input", "definition"])
    ], body
    body = await api.gql(
        PREVIEW_COUNT, {"d": {"or": [{"segment": {"segmentId": i}} for i in ids[:2]]}}, scopes=RU
    )
    assert body["data"]["previewSegment"] == {"preview": {"count": 1}, "errors": []}, body


async def test_hostile_definitions_in_prod_are_never_unexpected(
    api: Api, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """In production (unexpected errors masked and logged), every hostile definition gets a typed
    error or a clear input error: nothing is masked, nothing is logged as a bug."""
    from tests.api.test_limits import _dev_secret

    token = await api.token(RU)
    values = [f"v{i}" for i in range(1001)]
    hostile: list[dict[str, Any]] = [
        nested("and", 13),
        nested("not", 50),
        nested("or", 300),
        {"attribute": {"field": "EXTERNAL_ID", "op": "IN", "values": values}},
        {"attribute": {"field": "FIRST_NAME", "op": "EQ", "value": "'; DROP TABLE customer; --"}},
        {"attribute": {"key": "a.b", "op": "GT", "value": {"$gt": ""}}},
        {"behavior": {"eventType": "view", "window": {"lastDays": 2**31 - 1}}},
        {"segment": {"segmentId": "x" * 101}},
        {"or": [{"attribute": {"field": "EXTERNAL_ID", "op": "IN", "values": values[:1000]}}] * 11},
    ]
    caplog.set_level(logging.ERROR, logger="precis.api")
    async with serve(
        settings,
        env="prod",
        signing_keys=_dev_secret(settings, "signing"),
        encryption_keys=_dev_secret(settings, "encryption"),
        lookup_key=_dev_secret(settings, "lookup"),
    ) as c:
        for d in hostile:
            response = await c.post(
                "/graphql",
                json={"query": PREVIEW_COUNT, "variables": {"d": d}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert "Unexpected error." not in response.text, (str(d)[:80], body)
            if body.get("data"):
                assert body["data"]["previewSegment"]["errors"] or str(d).count("DROP"), body
    assert not [r for r in caplog.records if "unexpected" in r.getMessage()]
    assert await count_rows(api.db, "customer") == 0


async def test_aliased_previews_take_turns_and_are_counted(api: Api) -> None:
    """Root fields of a query run at once on the request's one connection: previews take turns
    (each sets a statement timeout in a savepoint), beside other fields, and a request holds at
    most three (aliases would otherwise multiply the time budget)."""
    await users(api, {"externalId": "de", "country": "DE"}, {"externalId": "at", "country": "AT"})
    await create(api, name="VIP", definition={"tag": {"tags": ["vip"]}})
    fields = [
        f'p{i}: previewSegment(definition: {{attribute: {{field: COUNTRY, op: EQ, value: "{c}"}}}}) '
        "{ preview { count } errors { code field } }"
        for i, c in enumerate(["DE", "AT", "FR", "DE"])
    ]
    others = "s: segments { totalCount } u: users { totalCount }"
    body = await api.gql("{ " + " ".join(fields[:3]) + " " + others + " }", scopes=RU)
    assert body == {
        "data": {
            "p0": {"preview": {"count": 1}, "errors": []},
            "p1": {"preview": {"count": 1}, "errors": []},
            "p2": {"preview": {"count": 0}, "errors": []},
            "s": {"totalCount": 1},
            "u": {"totalCount": 2},
        }
    }, body
    body = await api.gql("{ " + " ".join(fields) + " }", scopes=RU)
    results = [body["data"][f"p{i}"] for i in range(4)]
    assert [r["errors"] for r in results].count([]) == 3, body
    assert [{"code": "TOO_MANY", "field": ["definition"]}] in [r["errors"] for r in results]
