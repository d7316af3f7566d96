"""parse/validate: every error code with its exact path, the limits, dependencies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.db import Database
from domain.errors import DomainError
from domain.segments import rfm
from domain.segments.definition import (
    MAX_DEPTH,
    MAX_LIST,
    MAX_STRING,
    Deps,
    Resolved,
    dependencies,
    parse,
    validate,
)
from tests.segments.core_world import add_segment, build_world

D = ("definition",)


def errors(doc: Any) -> list[tuple[str, tuple[str, ...]]]:
    with pytest.raises(DomainError) as exc:
        parse(doc)
    return [(e.code, e.field) for e in exc.value.errors]


def nested(levels: int, kind: str = "and") -> dict[str, Any]:
    doc: dict[str, Any] = {"tag": {"tags": ["vip"]}}
    for _ in range(levels):
        doc = {"not": doc} if kind == "not" else {kind: [doc]}
    return doc


def future(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


CASES: list[tuple[Any, list[tuple[str, tuple[str, ...]]]]] = [
    ("nope", [("INVALID", D)]),
    ({}, [("INVALID", D)]),
    ({"and": [], "or": []}, [("INVALID", D)]),
    ({"xor": []}, [("UNKNOWN_FIELD", (*D, "xor"))]),
    ({"and": []}, [("EMPTY", (*D, "and"))]),
    ({"or": [{"and": []}]}, [("EMPTY", (*D, "or", "0", "and"))]),
    ({"and": {"tag": {}}}, [("INVALID_VALUE", (*D, "and"))]),
    (
        {"attribute": {"field": "colour", "op": "eq", "value": "x"}},
        [("UNKNOWN_FIELD", (*D, "attribute", "field"))],
    ),
    (
        {"attribute": {"field": "email", "op": "eq", "value": "a@b.c"}},
        [("UNKNOWN_FIELD", (*D, "attribute", "field"))],
    ),
    (
        {"attribute": {"field": "phone", "op": "is_set"}},
        [("UNKNOWN_FIELD", (*D, "attribute", "field"))],
    ),
    (
        {"attribute": {"field": "country", "op": "eq", "value": "DE", "extra": 1}},
        [("UNKNOWN_FIELD", (*D, "attribute", "extra"))],
    ),
    ({"attribute": {"op": "eq", "value": "DE"}}, [("INVALID", (*D, "attribute"))]),
    (
        {"attribute": {"field": "country", "key": "x", "op": "eq", "value": "DE"}},
        [("INVALID", (*D, "attribute"))],
    ),
    ({"attribute": {"field": "country", "value": "DE"}}, [("REQUIRED", (*D, "attribute", "op"))]),
    ({"attribute": {"field": "country", "op": "eq"}}, [("REQUIRED", (*D, "attribute", "value"))]),
    ({"attribute": {"field": "country", "op": "in"}}, [("REQUIRED", (*D, "attribute", "values"))]),
    (
        {"attribute": {"field": "country", "op": "regex", "value": ".*"}},
        [("INVALID_OPERATOR", (*D, "attribute", "op"))],
    ),
    (
        {"attribute": {"field": "country", "op": "gt", "value": "DE"}},
        [("INVALID_OPERATOR", (*D, "attribute", "op"))],
    ),
    (
        {"attribute": {"field": "birthDate", "op": "contains", "value": "19"}},
        [("INVALID_OPERATOR", (*D, "attribute", "op"))],
    ),
    (
        {"attribute": {"field": "country", "op": "eq", "value": 5}},
        [("INVALID_VALUE", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"field": "country", "op": "eq", "value": "Germany"}},
        [("INVALID_VALUE", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"field": "birthDate", "op": "lt", "value": "yesterday"}},
        [("INVALID_VALUE", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"field": "createdAt", "op": "lt", "value": "2024-01-01T00:00:00"}},
        [("INVALID_VALUE", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"field": "createdAt", "op": "within_last_days", "value": -1}},
        [("INVALID_VALUE", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"field": "country", "op": "in", "values": ["DE", 7]}},
        [("INVALID_VALUE", (*D, "attribute", "values", "1"))],
    ),
    (
        {"attribute": {"field": "country", "op": "in", "values": []}},
        [("INVALID_VALUE", (*D, "attribute", "values"))],
    ),
    (
        {"attribute": {"field": "country", "op": "is_set", "value": "DE"}},
        [("INVALID", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"field": "birthDate", "op": "between", "values": ["2000-01-01"]}},
        [("INVALID_VALUE", (*D, "attribute", "values"))],
    ),
    (
        {
            "attribute": {
                "field": "birthDate",
                "op": "between",
                "values": ["2001-01-01", "2000-01-01"],
            }
        },
        [("INVALID_VALUE", (*D, "attribute", "values"))],
    ),
    (
        {"attribute": {"key": "a..b", "op": "eq", "value": 1}},
        [("INVALID_VALUE", (*D, "attribute", "key"))],
    ),
    (
        {"attribute": {"key": "a'; DROP", "op": "eq", "value": 1}},
        [("INVALID_VALUE", (*D, "attribute", "key"))],
    ),
    (
        {"attribute": {"key": "n", "op": "gt", "value": "five"}},
        [("INVALID_VALUE", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"key": "n", "op": "within_last_days", "value": 3}},
        [("INVALID_OPERATOR", (*D, "attribute", "op"))],
    ),
    (
        {"attribute": {"key": "n", "op": "in", "values": [True]}},
        [("INVALID_OPERATOR", (*D, "attribute", "op"))],
    ),
    (
        {"attribute": {"field": "firstName", "op": "eq", "value": "x" * (MAX_STRING + 1)}},
        [("TOO_LONG", (*D, "attribute", "value"))],
    ),
    (
        {"attribute": {"field": "firstName", "op": "in", "values": ["a", "x" * 257]}},
        [("TOO_LONG", (*D, "attribute", "values", "1"))],
    ),
    (
        {"attribute": {"field": "firstName", "op": "in", "values": ["a"] * (MAX_LIST + 1)}},
        [("TOO_MANY", (*D, "attribute", "values"))],
    ),
    (
        {"tag": {"tags": [f"t{i}" for i in range(MAX_LIST + 1)]}},
        [("TOO_MANY", (*D, "tag", "tags"))],
    ),
    ({"tag": {"tags": ["ok", "Not OK!"]}}, [("INVALID_VALUE", (*D, "tag", "tags", "1"))]),
    ({"tag": {"tags": ["ok"], "match": "some"}}, [("INVALID_VALUE", (*D, "tag", "match"))]),
    ({"tag": {}}, [("REQUIRED", (*D, "tag", "tags"))]),
    (
        {"consent": {"purpose": "spam", "granted": True}},
        [("INVALID_VALUE", (*D, "consent", "purpose"))],
    ),
    (
        {"consent": {"purpose": "push", "granted": "yes"}},
        [("INVALID_VALUE", (*D, "consent", "granted"))],
    ),
    ({"segment": {"member": True}}, [("REQUIRED", (*D, "segment", "segmentId"))]),
    ({"segment": {"segmentId": "abc"}}, [("INVALID_VALUE", (*D, "segment", "segmentId"))]),
    (
        {"profile": {"field": "rfmGroup", "op": "eq", "value": "royals"}},
        [("INVALID_VALUE", (*D, "profile", "value"))],
    ),
    (
        {"profile": {"field": "rfmGroup", "op": "gt", "value": "champions"}},
        [("INVALID_OPERATOR", (*D, "profile", "op"))],
    ),
    (
        {"profile": {"field": "rScore", "op": "eq", "value": 6}},
        [("INVALID_VALUE", (*D, "profile", "value"))],
    ),
    (
        {"profile": {"field": "revenue", "op": "gt", "value": "lots"}},
        [("INVALID_VALUE", (*D, "profile", "value"))],
    ),
    (
        {"profile": {"field": "wealth", "op": "gt", "value": 1}},
        [("UNKNOWN_FIELD", (*D, "profile", "field"))],
    ),
    ({"behavior": {}}, [("REQUIRED", (*D, "behavior", "eventType"))]),
    ({"behavior": {"eventType": "veiw"}}, [("INVALID_VALUE", (*D, "behavior", "eventType"))]),
    (
        {"behavior": {"eventType": "view", "count": {"min": 3, "max": 1}}},
        [("INVALID_VALUE", (*D, "behavior", "count"))],
    ),
    (
        {"behavior": {"eventType": "view", "count": {}}},
        [("INVALID_VALUE", (*D, "behavior", "count"))],
    ),
    (
        {"behavior": {"eventType": "view", "value": {"min": "x"}}},
        [("INVALID_VALUE", (*D, "behavior", "value", "min"))],
    ),
    (
        {"behavior": {"eventType": "view", "value": {"currency": "EURO"}}},
        [("INVALID_VALUE", (*D, "behavior", "value", "currency"))],
    ),
    (
        {"behavior": {"eventType": "view", "occurrence": "first", "count": {"min": 2}}},
        [("INVALID", (*D, "behavior", "occurrence"))],
    ),
    (
        {"behavior": {"eventType": "view", "occurrence": "middle"}},
        [("INVALID_VALUE", (*D, "behavior", "occurrence"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {"lastDays": 1, "olderThanDays": 2}}},
        [("IMPOSSIBLE_WINDOW", (*D, "behavior", "window"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {"lastDays": -3}}},
        [("IMPOSSIBLE_WINDOW", (*D, "behavior", "window"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {"lastDays": 3651}}},
        [("IMPOSSIBLE_WINDOW", (*D, "behavior", "window"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {"lastDays": 0}}},
        [("IMPOSSIBLE_WINDOW", (*D, "behavior", "window"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {}}},
        [("IMPOSSIBLE_WINDOW", (*D, "behavior", "window"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {"from": future(2)}}},
        [("IMPOSSIBLE_WINDOW", (*D, "behavior", "window"))],
    ),
    (
        {
            "behavior": {
                "eventType": "view",
                "window": {"from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
            }
        },
        [("IMPOSSIBLE_WINDOW", (*D, "behavior", "window"))],
    ),
    (
        {
            "behavior": {
                "eventType": "view",
                "window": {"lastDays": 3, "from": "2024-01-01T00:00:00Z"},
            }
        },
        [("INVALID", (*D, "behavior", "window"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {"lastDays": "3"}}},
        [("INVALID_VALUE", (*D, "behavior", "window", "lastDays"))],
    ),
    (
        {"behavior": {"eventType": "view", "window": {"weeks": 3}}},
        [("UNKNOWN_FIELD", (*D, "behavior", "window", "weeks"))],
    ),
    (
        {"order": {"totalValue": {"min": "-5"}}},
        [("INVALID_VALUE", (*D, "order", "totalValue", "min"))],
    ),
    ({"order": {"currency": "??"}}, [("INVALID_VALUE", (*D, "order", "currency"))]),
    ({"order": {"includeRefunded": 1}}, [("INVALID_VALUE", (*D, "order", "includeRefunded"))]),
    (
        {"order": {"window": {"olderThanHours": 5, "olderThanDays": 1}}},
        [("INVALID", (*D, "order", "window"))],
    ),
    # Several errors are reported at once, each with its path.
    (
        {
            "and": [
                {"tag": {"tags": ["ok"], "match": "x"}},
                {"or": []},
                {"consent": {"purpose": "fax"}},
            ]
        },
        [
            ("INVALID_VALUE", (*D, "and", "0", "tag", "match")),
            ("EMPTY", (*D, "and", "1", "or")),
            ("INVALID_VALUE", (*D, "and", "2", "consent", "purpose")),
        ],
    ),
]


@pytest.mark.parametrize(("doc", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_errors_have_codes_and_paths(doc: Any, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    assert errors(doc) == expected


def test_depth_limit() -> None:
    parse(nested(MAX_DEPTH))
    parse(nested(MAX_DEPTH, "not"))
    path = ("definition", *(["and", "0"] * MAX_DEPTH), "and")
    assert errors(nested(MAX_DEPTH + 1)) == [("TOO_DEEP", path)]
    assert errors(nested(MAX_DEPTH + 1, "not")) == [
        ("TOO_DEEP", ("definition", *["not"] * (MAX_DEPTH + 1)))
    ]


def test_node_limit() -> None:
    leaf = {"tag": {"tags": ["a"]}}
    parse({"or": [leaf] * 299})
    assert errors({"or": [leaf] * 300}) == [("TOO_MANY", ("definition",))]
    with pytest.raises(DomainError) as exc:
        parse({"or": [leaf] * 300}, path=("input", "definition"))
    assert [(e.code, e.field) for e in exc.value.errors] == [("TOO_MANY", ("input", "definition"))]


def test_limits_at_the_edge_are_accepted() -> None:
    parse(
        {
            "attribute": {
                "field": "firstName",
                "op": "in",
                "values": [f"n{i}" for i in range(MAX_LIST)],
            }
        }
    )
    parse({"attribute": {"field": "firstName", "op": "eq", "value": "x" * MAX_STRING}})
    parse({"behavior": {"eventType": "view", "window": {"lastDays": 3650}}})


def test_rfm_grid_covers_every_cell_once() -> None:
    cells = rfm.cells(list(rfm.GROUPS))
    assert len(cells) == 25 and len(set(cells)) == 25
    assert rfm.group_of(5, 5) == "champions"
    assert rfm.group_of(1, 5) == "cant_lose_them"
    assert rfm.group_of(None, 3) is None


def test_dependencies() -> None:
    doc = {
        "and": [
            {"behavior": {"eventType": "purchase", "window": {"lastDays": 30}}},
            {"behavior": {"eventType": "view", "did": False}},
            {"not": {"order": {}}},
            {"consent": {"purpose": "push", "granted": True}},
            {"profile": {"field": "rScore", "op": "gte", "value": 4}},
        ]
    }
    assert dependencies(Resolved(parse(doc))) == Deps(
        event_types=frozenset({"purchase", "view"}),
        orders=True,
        profile=True,
        consents=True,
        time=True,
    )
    assert dependencies(Resolved(parse({"tag": {"tags": ["a"]}}))) == Deps(tags=True)
    assert dependencies(
        Resolved(parse({"attribute": {"field": "createdAt", "op": "within_last_days", "value": 3}}))
    ) == Deps(attributes=True, time=True)


async def test_validate_references(db: Database) -> None:
    w = await build_world(db)
    ok = {"behavior": {"eventType": "view", "productId": w["p_run"], "categoryId": w["shoes"]}}
    async with db.read_only() as s:
        await validate(s, ok)
        with pytest.raises(DomainError) as exc:
            await validate(
                s,
                {
                    "or": [
                        {"behavior": {"eventType": "view", "productId": 999999}},
                        {"behavior": {"eventType": "view", "categoryId": 999999}},
                    ]
                },
            )
    assert [(e.code, e.field) for e in exc.value.errors] == [
        ("NOT_FOUND", ("definition", "or", "0", "behavior", "productId")),
        ("NOT_FOUND", ("definition", "or", "1", "behavior", "categoryId")),
    ]


async def test_cycles(db: Database) -> None:
    from tests.segments.core_world import set_definition

    tag = {"tag": {"tags": ["vip"]}}
    a = await add_segment(db, definition=tag)
    b = await add_segment(db, definition={"segment": {"segmentId": a}})
    c = await add_segment(db, definition={"not": {"segment": {"segmentId": b}}})
    static = await add_segment(db, kind="static")

    async def codes(doc: Any, segment_id: int) -> list[tuple[str, tuple[str, ...]]]:
        async with db.read_only() as s:
            with pytest.raises(DomainError) as exc:
                await validate(s, doc, segment_id=segment_id)
        return [(e.code, e.field) for e in exc.value.errors]

    # Self reference.
    assert await codes({"and": [tag, {"segment": {"segmentId": a}}]}, a) == [
        ("CYCLE", ("definition", "and", "1", "segment", "segmentId"))
    ]
    assert await codes({"segment": {"segmentId": static}}, static) == [
        ("CYCLE", ("definition", "segment", "segmentId"))
    ]
    # Two steps: a -> b -> a.
    assert await codes({"or": [tag, {"segment": {"segmentId": b}}]}, a) == [
        ("CYCLE", ("definition", "or", "1", "segment", "segmentId"))
    ]
    # Three steps: a -> c -> b -> a.
    assert await codes({"not": {"segment": {"segmentId": c}}}, a) == [
        ("CYCLE", ("definition", "not", "segment", "segmentId"))
    ]
    # A cycle that already exists among other segments is still caught (and never recursed).
    await set_definition(db, a, {"segment": {"segmentId": c}})
    assert await codes({"segment": {"segmentId": b}}, static) == [
        ("CYCLE", ("definition", "segment", "segmentId"))
    ]
    # Without the cycle the same references validate, and the inlined tree counts for depth.
    await set_definition(db, a, tag)
    async with db.read_only() as s:
        resolved = await validate(s, {"segment": {"segmentId": c}})
        assert set(resolved.segments) == {a, b, c}
    deep = await add_segment(db, definition=nested(MAX_DEPTH))
    async with db.read_only() as s:
        await validate(s, {"segment": {"segmentId": deep}})
    assert await codes({"and": [{"segment": {"segmentId": deep}}]}, static) == [
        ("TOO_DEEP", ("definition", "and", "0", "segment", "segmentId"))
    ]


def test_explicit_nulls_mean_not_given() -> None:
    tree = parse(
        {
            "behavior": {
                "eventType": "view",
                "did": None,
                "occurrence": None,
                "count": None,
                "value": None,
                "window": None,
                "productId": None,
            }
        }
    )
    assert parse({"behavior": {"eventType": "view"}}) == tree
    parse({"order": {"did": None, "includeRefunded": None, "window": {"lastDays": 3, "to": None}}})
    parse(
        {"attribute": {"field": "country", "key": None, "op": "eq", "value": "DE", "values": None}}
    )


def test_hostile_documents_never_crash() -> None:
    """Random JSON (wrong types everywhere, odd numbers, deep nesting) gives DomainError or a tree,
    never another exception."""
    import random

    rng = random.Random(7)
    names = [
        "and",
        "or",
        "not",
        "attribute",
        "tag",
        "consent",
        "segment",
        "profile",
        "behavior",
        "order",
        "field",
        "key",
        "op",
        "value",
        "values",
        "tags",
        "match",
        "purpose",
        "granted",
        "segmentId",
        "member",
        "eventType",
        "count",
        "window",
        "min",
        "max",
        "lastDays",
        "from",
        "to",
        "occurrence",
        "currency",
        "did",
        "orderValue",
        "totalValue",
        "country",
        "gt",
        "between",
        "in",
        "rfmGroup",
        "createdAt",
        "birthDate",
        "vip.level",
    ]
    atoms: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        2**70,
        1.5,
        float("inf"),
        float("nan"),
        "",
        "x" * 300,
        "NaN",
        "1e999999",
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "DE",
        "purchase",
        "eq",
        [],
        {},
    ]

    def junk(depth: int) -> Any:
        roll = rng.random()
        if depth <= 0 or roll < 0.3:
            return rng.choice(atoms + names)
        if roll < 0.5:
            return [junk(depth - 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(names): junk(depth - 1) for _ in range(rng.randint(1, 3))}

    for _ in range(3000):
        doc = junk(6)
        try:
            parse(doc)
        except DomainError as exc:
            assert exc.errors and all(e.field[:1] == ("definition",) for e in exc.errors)


async def test_dependencies_follow_references(db: Database) -> None:
    static = await add_segment(db, kind="static")
    inner = await add_segment(
        db,
        definition={
            "and": [
                {"segment": {"segmentId": static}},
                {"behavior": {"eventType": "add_to_cart", "window": {"lastHours": 24}}},
            ]
        },
    )
    async with db.read_only() as s:
        resolved = await validate(s, {"not": {"segment": {"segmentId": inner, "member": True}}})
    assert dependencies(resolved) == Deps(
        event_types=frozenset({"add_to_cart"}), static_segments=frozenset({static}), time=True
    )
