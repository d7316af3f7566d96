"""compile_members on SQLite and PostgreSQL: every leaf and operator against a small seeded world,
logic, references, hostile values, and the per-shopper restriction agreeing with the full query."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from domain.db import Database
from domain.errors import DomainError
from domain.segments.compiler import compile_members
from domain.segments.definition import parse, validate
from tests.conftest import count_rows
from tests.segments.core_world import NOW, World, add_segment, ago, build_world, members

ALL = {"de1", "at1", "fr1", "none"}


def attr(field: str, op: str, value: Any = None, values: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        body["value"] = value
    if values is not None:
        body["values"] = values
    return {"attribute": body}


def key(k: str, op: str, value: Any = None, values: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": k, "op": op}
    if value is not None:
        body["value"] = value
    if values is not None:
        body["values"] = values
    return {"attribute": body}


def prof(field: str, op: str, value: Any = None, values: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        body["value"] = value
    if values is not None:
        body["values"] = values
    return {"profile": body}


def did(event_type: str, **kw: Any) -> dict[str, Any]:
    return {"behavior": {"eventType": event_type, **kw}}


def order(**kw: Any) -> dict[str, Any]:
    return {"order": kw}


ATTRIBUTE_CASES: list[tuple[dict[str, Any], set[str]]] = [
    (attr("country", "eq", "de"), {"de1"}),
    (attr("country", "ne", "DE"), {"at1", "fr1", "none"}),
    (attr("country", "in", values=["DE", "at"]), {"de1", "at1"}),
    (attr("country", "not_in", values=["DE", "AT"]), {"fr1", "none"}),
    (attr("externalId", "eq", "de1"), {"de1"}),
    (attr("firstName", "contains", "NN"), {"de1"}),
    (attr("firstName", "starts_with", "b"), {"at1"}),
    # LIKE wildcards are literal: "_" and "%" match only a region that holds them.
    (attr("region", "contains", "_"), {"at1"}),
    (attr("region", "contains", "%"), {"at1"}),
    (attr("region", "starts_with", "T_rol"), set()),
    (attr("region", "is_set"), {"de1", "at1"}),
    (attr("region", "is_not_set"), {"fr1", "none"}),
    (attr("birthDate", "lt", "1995-01-01"), {"de1"}),
    (attr("birthDate", "between", values=["1990-01-01", "1990-12-31"]), {"de1"}),
    (attr("birthDate", "within_last_days", 7), {"at1"}),
    (attr("birthDate", "more_than_days_ago", 365), {"de1"}),
    (attr("birthDate", "is_not_set"), {"fr1", "none"}),
    (attr("birthDate", "is_set"), {"de1", "at1"}),
    (attr("birthDate", "eq", "1990-05-01"), {"de1"}),
    (attr("birthDate", "gt", "1990-05-01"), {"at1"}),
    (attr("birthDate", "gte", "1990-05-01"), {"de1", "at1"}),
    (attr("birthDate", "lte", "1990-05-01"), {"de1"}),
    (
        attr("createdAt", "between", values=[ago(150).isoformat(), ago(5).isoformat()]),
        {"de1", "at1"},
    ),
    (attr("createdAt", "lte", ago(100).isoformat()), {"at1", "fr1"}),
    (attr("createdAt", "gt", ago(100).isoformat()), {"de1", "none"}),
    (attr("locale", "is_not_set"), ALL),
    (attr("firstName", "not_in", values=["Anna", "Bert"]), {"fr1", "none"}),
    (attr("firstName", "ne", "Anna"), {"at1", "fr1", "none"}),
    (attr("createdAt", "within_last_days", 30), {"de1", "none"}),
    (attr("createdAt", "more_than_days_ago", 365), {"fr1"}),
    (attr("createdAt", "gte", ago(50).isoformat()), {"de1", "none"}),
    (attr("createdAt", "lt", ago(50).isoformat()), {"at1", "fr1"}),
    (attr("createdAt", "eq", ago(10).isoformat()), {"de1"}),
    # Hostile strings are values, never SQL.
    (attr("firstName", "eq", "'; DROP TABLE customer; --"), set()),
    (attr("firstName", "contains", "' OR '1'='1"), set()),
    (attr("region", "in", values=["x') OR 1=1 --"]), set()),
]

CUSTOM_CASES: list[tuple[dict[str, Any], set[str]]] = [
    (key("plan", "eq", "gold"), {"de1"}),
    (key("plan", "ne", "gold"), {"at1", "fr1", "none"}),
    (key("plan", "in", values=["gold", "silver"]), {"de1", "at1"}),
    (key("plan", "not_in", values=["gold", "silver"]), {"fr1", "none"}),
    (key("plan", "contains", "%_"), {"fr1"}),
    (key("plan", "contains", "_"), {"fr1"}),
    (key("plan", "starts_with", "GO"), {"de1"}),
    (key("vip.level", "gt", 3), {"de1"}),
    (key("vip.level", "gte", 2), {"de1", "at1"}),
    (key("vip.level", "lt", 5), {"at1"}),
    (key("vip.level", "lte", 5), {"de1", "at1"}),
    (key("vip.level", "between", values=[1, 2]), {"at1"}),
    (key("vip.level", "eq", 5), {"de1"}),
    (key("vip.level", "ne", 5), {"at1", "fr1", "none"}),
    (key("vip.level", "in", values=[2, 5]), {"de1", "at1"}),
    # de1 stores "high" where the others store numbers: no crash, no match.
    (key("score", "gt", 5), {"at1", "fr1"}),
    (key("score", "lt", 100), {"at1", "fr1"}),
    (key("score", "eq", 7), {"at1"}),
    (key("score", "eq", "high"), {"de1"}),
    (key("score", "gt", 7.25), {"fr1"}),
    (key("beta", "eq", True), {"de1"}),
    (key("beta", "eq", False), {"at1"}),
    (key("beta", "ne", True), {"at1", "fr1", "none"}),
    (key("plan", "is_set"), {"de1", "at1", "fr1"}),
    (key("vip", "is_set"), {"de1", "at1"}),
    (key("nothing", "is_set"), set()),
    (key("nothing", "is_not_set"), ALL),
    (key("vip.level.deeper", "is_set"), set()),
    (key("plan", "eq", "'; DROP TABLE customer; --"), set()),
]

OTHER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"tag": {"tags": ["vip"], "match": "any"}}, {"de1", "at1"}),
    ({"tag": {"tags": ["vip"]}}, {"de1", "at1"}),
    ({"tag": {"tags": ["vip", "newsletter"], "match": "all"}}, {"de1"}),
    ({"tag": {"tags": ["vip", "nope"], "match": "all"}}, set()),
    ({"tag": {"tags": ["vip"], "match": "none"}}, {"fr1", "none"}),
    ({"tag": {"tags": ["newsletter", "nope"], "match": "any"}}, {"de1"}),
    # Consent: the latest record of the purpose wins; no record is not granted.
    ({"consent": {"purpose": "push", "granted": True}}, {"at1"}),
    ({"consent": {"purpose": "push", "granted": False}}, {"de1", "fr1", "none"}),
    ({"consent": {"purpose": "email", "granted": True}}, {"de1"}),
    ({"consent": {"purpose": "sms", "granted": True}}, set()),
    ({"consent": {"purpose": "sms", "granted": False}}, ALL),
    # Profiles (fr1 has none, so it matches no profile condition).
    (prof("rfmGroup", "eq", "champions"), {"de1"}),
    (prof("rfmGroup", "eq", "at_risk"), {"at1"}),
    (prof("rfmGroup", "in", values=["champions", "at_risk"]), {"de1", "at1"}),
    (prof("rfmGroup", "ne", "champions"), {"at1", "none"}),
    (prof("rfmGroup", "not_in", values=["champions", "at_risk"]), {"none"}),
    (prof("lifecycleStage", "in", values=["loyal", "at_risk"]), {"de1", "at1"}),
    (prof("spendLevel", "eq", "none"), {"none"}),
    (prof("rScore", "gte", 4), {"de1"}),
    (prof("fScore", "between", values=[2, 3]), {"at1"}),
    (prof("mScore", "ne", 4), {"at1", "none"}),
    (prof("revenue", "gt", "100"), {"de1"}),
    (prof("clvPredicted", "is_set"), {"de1"}),
    (prof("clvPredicted", "gte", "400.50"), {"de1"}),
    (prof("recencyDays", "is_not_set"), {"at1", "none"}),
    (prof("probabilityAlive", "lt", 0.5), {"at1"}),
    (prof("ordersCount", "eq", 0), {"at1", "none"}),
    (prof("ordersCount", "gt", 0), {"de1"}),
    (prof("ordersCount", "lte", 0), {"at1", "none"}),
    (prof("ordersCount", "not_in", values=[0]), {"de1"}),
    (prof("recencyDays", "lt", 10), {"de1"}),
    (prof("lifecycleStage", "ne", "loyal"), {"at1", "none"}),
    (prof("spendLevel", "not_in", values=["high", "low"]), {"none"}),
    (prof("lastSeenAt", "gte", ago(2).isoformat()), {"de1", "at1"}),
    (prof("lastSeenAt", "is_not_set"), {"none"}),
    (prof("eventCount", "in", values=[4, 5]), {"de1", "at1"}),
    (prof("averageOrderValue", "is_not_set"), {"de1", "at1", "none"}),
    (prof("lastSeenAt", "within_last_days", 2), {"de1", "at1"}),
    (prof("lastOrderAt", "more_than_days_ago", 3), {"de1"}),
    (prof("firstOrderAt", "is_set"), set()),
    # Behaviour.
    (did("purchase"), {"de1", "at1", "fr1"}),
    (did("purchase", did=False), {"none"}),
    (did("purchase", window={"lastDays": 90}), {"de1", "at1"}),
    (did("purchase", window={"lastHours": 24 * 6}), {"de1", "at1"}),
    (did("purchase", window={"olderThanDays": 100}), {"fr1"}),
    (did("purchase", window={"lastDays": 90, "olderThanDays": 10}), {"de1"}),
    (did("purchase", window={"from": ago(30).isoformat(), "to": ago(10).isoformat()}), {"de1"}),
    (did("purchase", window={"from": ago(30).isoformat()}), {"de1", "at1"}),
    (did("purchase", window={"to": ago(100).isoformat()}), {"fr1"}),
    (did("purchase", productId="p_run"), {"de1"}),
    (did("purchase", categoryId="shoes"), {"de1", "at1", "fr1"}),
    (did("purchase", categoryId="running"), {"de1", "at1"}),
    (did("purchase", categoryId="trail"), {"at1"}),
    (did("view", categoryId="ab"), {"de1"}),
    (did("view", categoryId="axb"), {"at1"}),
    (did("purchase", brand="Nike"), {"de1", "fr1"}),
    (did("purchase", brand="Nike", categoryId="running"), {"de1"}),
    (did("purchase", count={"min": 2}), {"de1"}),
    (did("purchase", count={"min": 3}), set()),
    (did("purchase", count={"max": 1}), {"at1", "fr1"}),
    (did("purchase", count={"min": 0, "max": 1}), {"at1", "fr1", "none"}),
    (did("purchase", did=False, count={"min": 2}), {"at1", "fr1", "none"}),
    (did("purchase", value={"min": "200"}), {"de1", "fr1"}),
    (did("purchase", value={"min": "200"}, window={"lastDays": 90}), {"de1"}),
    (did("purchase", value={"max": "100"}), {"at1"}),
    (did("purchase", value={"min": "200", "currency": "EUR"}), {"de1", "fr1"}),
    (did("purchase", value={"currency": "usd"}), {"at1"}),
    (did("purchase", categoryId="shoes", count={"min": 2}, window={"lastDays": 90}), {"de1"}),
    (did("message_open", did=False, window={"lastDays": 30}), {"at1", "fr1", "none"}),
    (did("view", occurrence="first", window={"lastDays": 30}), {"de1"}),
    (did("view", occurrence="last", window={"lastDays": 30}), {"de1", "at1"}),
    (did("view", did=False, occurrence="first", window={"lastDays": 30}), {"at1", "fr1", "none"}),
    (did("view", occurrence="first"), {"de1", "at1"}),
    (did("view", occurrence="first", window={"olderThanDays": 10}), {"at1"}),
    (did("view", occurrence="last", window={"olderThanDays": 10}), set()),
    (did("view", occurrence="last", window={"lastDays": 30, "olderThanHours": 1}), {"de1", "at1"}),
    (
        did(
            "view",
            occurrence="first",
            window={"from": ago(400).isoformat(), "to": ago(200).isoformat()},
        ),
        {"at1"},
    ),
    (did("view", did=False, occurrence="last", window={"olderThanDays": 10}), ALL),
    (did("custom:quiz.done"), {"de1"}),
    (did("custom:other"), set()),
    # Orders: cancelled never count, refunded only with includeRefunded.
    (order(), {"de1", "fr1"}),
    (order(includeRefunded=True), {"de1", "at1", "fr1"}),
    (order(did=False), {"at1", "none"}),
    (order(count={"min": 2}), {"de1"}),
    (order(count={"min": 0, "max": 1}), {"at1", "fr1", "none"}),
    (order(totalValue={"min": "200"}), {"de1", "fr1"}),
    (order(totalValue={"min": "231"}), {"fr1"}),
    (order(orderValue={"min": "100"}), {"de1", "fr1"}),
    (order(orderValue={"min": "100"}, count={"min": 2}), set()),
    (order(couponCode="SUMMER"), {"fr1"}),
    (order(window={"lastDays": 30}), {"de1"}),
    (order(currency="USD", includeRefunded=True), set()),
    (order(currency="eur", totalValue={"max": "300"}), {"de1", "fr1"}),
    # Logic.
    (
        {
            "and": [
                attr("country", "in", values=["DE", "AT"]),
                did("purchase", window={"lastDays": 90}),
            ]
        },
        {"de1", "at1"},
    ),
    ({"or": [attr("country", "eq", "FR"), {"tag": {"tags": ["newsletter"]}}]}, {"de1", "fr1"}),
    ({"not": {"tag": {"tags": ["vip"]}}}, {"fr1", "none"}),
    ({"not": {"not": {"tag": {"tags": ["vip"]}}}}, {"de1", "at1"}),
    ({"not": attr("country", "ne", "DE")}, {"de1"}),
    ({"not": key("score", "gt", 5)}, {"de1", "none"}),
    ({"not": prof("rScore", "gte", 4)}, {"at1", "fr1", "none"}),
    (
        {
            "and": [
                {"or": [attr("country", "eq", "DE"), attr("country", "eq", "AT")]},
                {"not": {"consent": {"purpose": "push", "granted": True}}},
            ]
        },
        {"de1"},
    ),
]


def resolve_ids(doc: Any, w: World) -> Any:
    """Test definitions name products and categories; the stored form holds their ids."""
    if isinstance(doc, dict):
        return {
            k: (
                w[v]
                if k in ("productId", "categoryId") and isinstance(v, str)
                else resolve_ids(v, w)
            )
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [resolve_ids(v, w) for v in doc]
    return doc


async def check(db: Database, w: World, cases: list[tuple[dict[str, Any], set[str]]]) -> None:
    failures = []
    for doc, expected in cases:
        got = await members(db, w, resolve_ids(doc, w))
        if got != expected:
            failures.append(f"{doc}: expected {sorted(expected)}, got {sorted(got)}")
    assert not failures, "\n".join(failures)


async def test_builtin_attributes(db: Database) -> None:
    w = await build_world(db)
    await check(db, w, ATTRIBUTE_CASES)
    # The hostile value did nothing: the table and its rows are still there.
    assert await count_rows(db, "customer") == 4


async def test_custom_attributes(db: Database) -> None:
    w = await build_world(db)
    await check(db, w, CUSTOM_CASES)


async def test_tags_consents_profiles_behaviour_orders_logic(db: Database) -> None:
    w = await build_world(db)
    await check(db, w, OTHER_CASES)


async def test_per_customer_restriction_agrees_with_the_full_query(db: Database) -> None:
    """Property: for random definitions, restricting to one shopper gives that shopper's row of
    the full answer."""
    w = await build_world(db)
    leaves = [doc for doc, _ in ATTRIBUTE_CASES + CUSTOM_CASES + OTHER_CASES]
    rng = random.Random(5)

    def random_tree(depth: int) -> dict[str, Any]:
        if depth == 0 or rng.random() < 0.4:
            return resolve_ids(rng.choice(leaves), w)
        kind = rng.choice(["and", "or", "not"])
        if kind == "not":
            return {"not": random_tree(depth - 1)}
        return {kind: [random_tree(depth - 1) for _ in range(rng.randint(1, 3))]}

    for _ in range(25):
        doc = random_tree(3)
        full = await members(db, w, doc)
        for name in sorted(ALL):
            one = await members(db, w, doc, customer_id=w[name])
            assert one == ({name} & full), (doc, name)
        # One statement built with a bound customer id serves every shopper.
        async with db.read_only() as s:
            stmt = compile_members(
                await validate(s, doc), now=NOW, customer_id=bindparam("customer_id")
            )
            for name in sorted(ALL):
                ids = (await s.execute(stmt, {"customer_id": w[name]})).scalars().all()
                assert {w.names[i] for i in ids} == ({name} & full), (doc, name)


async def test_segment_references(db: Database) -> None:
    w = await build_world(db)
    germans = await add_segment(db, definition=attr("country", "eq", "DE"))
    static = await add_segment(db, kind="static", members=[w["at1"]])
    # A dynamic segment referencing another dynamic one: inlined, live.
    outer = await add_segment(
        db,
        definition={
            "or": [{"segment": {"segmentId": germans, "member": True}}, attr("country", "eq", "FR")]
        },
    )
    assert await members(db, w, {"segment": {"segmentId": germans, "member": True}}) == {"de1"}
    assert await members(db, w, {"segment": {"segmentId": germans, "member": False}}) == {
        "at1",
        "fr1",
        "none",
    }
    assert await members(db, w, {"segment": {"segmentId": static}}) == {"at1"}
    assert await members(db, w, {"segment": {"segmentId": static, "member": False}}) == {
        "de1",
        "fr1",
        "none",
    }
    assert await members(db, w, {"segment": {"segmentId": outer}}) == {"de1", "fr1"}
    assert await members(db, w, {"not": {"segment": {"segmentId": outer}}}) == {"at1", "none"}
    for name in ALL:
        assert await members(db, w, {"segment": {"segmentId": outer}}, customer_id=w[name]) == (
            {name} & {"de1", "fr1"}
        )


async def test_sql_never_holds_values() -> None:
    """Values are bound parameters: the statement text holds none of them."""
    hostile = "'; DROP TABLE customer; --"
    doc = {
        "and": [
            attr("firstName", "eq", hostile),
            attr("region", "contains", hostile),
            key("plan", "in", values=[hostile]),
            did("custom:x", brand=hostile),
            order(couponCode=hostile),
        ]
    }
    from domain.segments.definition import Resolved

    stmt = compile_members(Resolved(parse(doc)), now=NOW, customer_id=1)
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        assert "DROP" not in str(stmt.compile(dialect=dialect))


async def test_erased_customers_never_match(db: Database) -> None:
    from domain.audit.service import Actor
    from domain.privacy.erase import erase_user

    w = await build_world(db)
    async with db.unit_of_work() as s:
        await erase_user(s, Actor(client_id="test", subject="test"), w["de1"], due_days=30)
    assert "de1" not in await members(db, w, {"not": attr("country", "eq", "XX")})
    assert await members(db, w, did("purchase")) == {"at1", "fr1"}


@pytest.mark.parametrize("bad", [{"segmentId": 999999}, "archived"])
async def test_missing_or_archived_reference_is_not_found(db: Database, bad: Any) -> None:
    if bad == "archived":
        sid = await add_segment(db, definition=attr("country", "eq", "DE"), status="archived")
        bad = {"segmentId": sid}
    async with db.read_only() as s:
        with pytest.raises(DomainError) as exc:
            await validate(s, {"and": [attr("country", "eq", "DE"), {"segment": bad}]})
    assert [(e.code, e.field) for e in exc.value.errors] == [
        ("NOT_FOUND", ("definition", "and", "1", "segment", "segmentId"))
    ]


async def test_count_of_members_is_a_subquery(db: Database) -> None:
    w = await build_world(db)
    async with db.read_only() as s:
        resolved = await validate(s, did("purchase"))
        sub = compile_members(resolved, now=NOW).subquery()
        assert await s.scalar(select(func.count()).select_from(sub)) == 3
    _ = w


async def test_many_conditions_in_one_select_for_one_shopper(db: Database) -> None:
    """compile_condition gives two-valued expressions: several segments can be checked for one
    shopper in one statement (SELECT <cond1>, <cond2> FROM customer WHERE id = :cid)."""
    from sqlalchemy import case

    from domain.segments.compiler import compile_condition, customer

    w = await build_world(db)
    docs = [
        did("purchase", window={"lastDays": 90}),
        {"not": {"tag": {"tags": ["vip"]}}},
        {"consent": {"purpose": "push", "granted": True}},
        key("score", "gt", 5),
    ]
    async with db.read_only() as s:
        resolved = [await validate(s, d) for d in docs]
        for name in sorted(ALL):
            cid = w[name]
            conds = [
                case((compile_condition(r, now=NOW, customer_id=cid), 1), else_=0) for r in resolved
            ]
            row = (await s.execute(select(*conds).where(customer.c.id == cid))).one()
            expected = [int(name in await members(db, w, d)) for d in docs]
            assert list(row) == expected, name


async def test_trees_agree_with_set_algebra_over_their_leaves(db: Database) -> None:
    """Property: a random and/or/not tree matches exactly the set computed from its leaves'
    results with intersection, union and complement (negations pushed to the leaves, semi-joins
    under and, EXISTS under or, anti-joins for negated leaves all mean the same)."""
    w = await build_world(db)
    leaves = [resolve_ids(doc, w) for doc, _ in ATTRIBUTE_CASES + CUSTOM_CASES + OTHER_CASES]
    results: dict[str, set[str]] = {}
    for leaf in leaves:
        results[repr(leaf)] = await members(db, w, leaf)
    rng = random.Random(11)

    def random_tree(depth: int) -> dict[str, Any]:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(leaves)
        kind = rng.choice(["and", "or", "not", "not"])
        if kind == "not":
            return {"not": random_tree(depth - 1)}
        return {kind: [random_tree(depth - 1) for _ in range(rng.randint(1, 3))]}

    def expected(doc: dict[str, Any]) -> set[str]:
        if "and" in doc:
            return set.intersection(*(expected(c) for c in doc["and"]))
        if "or" in doc:
            return set.union(*(expected(c) for c in doc["or"]))
        if "not" in doc:
            return ALL - expected(doc["not"])
        return results[repr(doc)]

    for _ in range(40):
        doc = random_tree(4)
        assert await members(db, w, doc) == expected(doc), doc


async def test_order_purchase_events_match_through_their_lines(db: Database) -> None:
    """recordOrders writes one purchase event per order with no product: product, category and
    brand conditions on purchases look at the order's lines."""
    from domain.orders import service as orders
    from domain.users import service as users

    w = await build_world(db)
    from domain.audit.service import Actor
    from domain.keys import build_keys

    actor = Actor(client_id="test", subject="test")
    async with db.unit_of_work() as s:
        [made] = await users.upsert_users(s, build_keys(db.settings), [{"external_id": "ord1"}])
        w.ids["ord1"] = int(made.id or 0)
        w.names[int(made.id or 0)] = "ord1"
        result = await orders.record_orders(
            s,
            actor,
            [
                {
                    "external_id": "order-1",
                    "user_external_id": "ord1",
                    "currency": "EUR",
                    "placed_at": ago(3).isoformat(),
                    "status": "paid",
                    "lines": [
                        {"product_external_id": "p_abc", "quantity": 1, "unit_price": "10.00"},
                        {"product_external_id": "p_trail", "quantity": 1, "unit_price": "90.00"},
                    ],
                }
            ],
            db.settings,
        )
        assert not result.errors, result.errors
    buyers = {"at1", "ord1"}
    assert await members(db, w, did("purchase", categoryId=w["running"])) == {"de1"} | buyers
    assert await members(db, w, did("purchase", productId=w["p_trail"])) == buyers
    assert await members(db, w, did("purchase", brand="Salomon")) == buyers
    assert await members(db, w, did("purchase", productId=w["p_run"])) == {"de1"}
    assert await members(db, w, did("purchase", categoryId=w["axb"])) == set()
    # The order counts once, with its net total as value; views are untouched.
    assert await members(db, w, did("purchase", categoryId=w["trail"], value={"min": "100"})) == {
        "ord1"
    }
    assert await members(db, w, did("view", categoryId=w["trail"])) == set()
    assert "ord1" not in await members(db, w, did("purchase", did=False, brand="Salomon"))
    one = await members(db, w, did("purchase", productId=w["p_trail"]), customer_id=w["ord1"])
    assert one == {"ord1"}
