"""Serving recommendations over real HTTP on SQLite and PostgreSQL: a model trained once by the
real training code (its serving bundle stored as the active version of each test's database),
the live catalogue, consent, session signals, fallbacks, /readyz, filters, impressions and who may
ask for whom."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select, text, update

from api.ids import encode_id
from domain.catalog.models import Product
from domain.db import Database
from domain.recommend.models import ModelVersion, RecommendationImpression
from domain.settings import Settings
from domain.sql import table
from tests.conftest import Api, error_codes
from tests.me.helpers import make_customers, shopper_token, user_id
from tests.recommend.models_world import fast, refuse_personalization, seed

READ = "recommendations:read"
ITEMS = """items { product { id title brand stock active inStock category { id name } }
                   score reason reasonCode reasonProduct { id title } }"""
PAYLOAD = f"recommendationId modelVersion personal fallback {ITEMS} errors {{ code field message }}"
RECOMMEND = f"""query($input: RecommendationsInput!) {{
  recommendations(input: $input) {{ {PAYLOAD} }} }}"""
SIMILAR = f"""query($p: ID!, $first: Int! = 10, $filter: RecommendationFilter) {{
  similarProducts(productId: $p, first: $first, filter: $filter) {{ {PAYLOAD} }} }}"""
TOGETHER = f"""query($ps: [ID!]!, $first: Int! = 10) {{
  boughtTogether(productIds: $ps, first: $first) {{ {PAYLOAD} }} }}"""
TRENDING = f"""query($c: ID, $first: Int! = 10, $filter: RecommendationFilter) {{
  trendingProducts(category: $c, first: $first, filter: $filter) {{ {PAYLOAD} }} }}"""
UPSERT = """mutation($ps: [ProductUpsertInput!]!) {
  upsertProducts(input: {products: $ps}) { products { id } errors { code message } } }"""
TRACK = """mutation($events: [EventInput!]!) { trackEvents(input: {events: $events}) {
  accepted errors { code field } } }"""
CATEGORIES = "{ categories { id name path } }"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return fast(
        settings,
        recommend_reload_seconds=0,
        recommend_catalog_max_age_ms=0,
        recommend_impression_flush_ms=0,
    )


@pytest_asyncio.fixture(scope="session")
async def serving_blob(tmp_root: Path, sqlite_template: Path, keys_dir: Path) -> bytes:
    """A serving bundle trained once by ``domain.recommend.service.train`` on the seeded world
    (its ids are the same in every test's database: the seed is deterministic)."""
    import shutil

    from domain.recommend import service

    path = tmp_root / "serving-train.db"
    shutil.copyfile(sqlite_template, path)
    settings = fast(
        Settings(
            var_dir=keys_dir,
            database_url=f"sqlite+aiosqlite:///{path}",
            _env_file=None,  # type: ignore[call-arg]
        )
    )
    db = Database(settings)
    try:
        await seed(db)
        row = await service.train(db, settings)
        async with db.read_only() as session:
            blob, artifact = (
                await session.execute(
                    select(ModelVersion.serving, ModelVersion.artifact).where(  # type: ignore[call-overload]
                        ModelVersion.id == row.id
                    )
                )
            ).one()
    finally:
        await db.dispose()
    if blob is None:  # training that does not build the bundle yet: build it from the model
        from recommend.hybrid import Hybrid
        from recommend.serving import Bundle

        blob = Bundle.build(Hybrid.loads(artifact)).dumps()
    return bytes(blob)


def sha_of(blob: bytes) -> str:
    from recommend.serving import Bundle

    return Bundle.sha256_of(blob)


async def add_version(
    db: Database, blob: bytes | None, *, status: str = "active", sha: str | None = None
) -> int:
    async with db.unit_of_work() as session:
        result = await session.execute(
            insert(table(ModelVersion))
            .values(
                algorithm="popularity,itemknn,content",
                parameters={},
                metrics={"ndcg@10": 0.1},
                status=status,
                serving=blob,
                serving_sha256=sha if sha is not None else (sha_of(blob) if blob else None),
                interactions=1,
                users=1,
                items=1,
            )
            .returning(table(ModelVersion).c.id)
        )
        return int(result.scalar_one())


async def catalogue(api: Api) -> dict[str, str]:
    """Give the seeded products categories, brands, prices and stock through upsertProducts:
    p<i>: Shoes (i % 4 == 0), Shoes > Running (1), Bags (2), none (3); brand Acme when i % 3 == 0
    else Zeta; price 10 + i; stock tracked (5) for odd i. Returns category path -> id."""
    products = []
    for i in range(40):
        path = [["Shoes"], ["Shoes", "Running"], ["Bags"], []][i % 4]
        products.append(
            {
                "externalId": f"p{i}",
                "categoryPath": path,
                "brand": "Acme" if i % 3 == 0 else "Zeta",
                "price": f"{10 + i}.00",
                "stock": 5 if i % 2 else None,
            }
        )
    body = await api.gql(UPSERT, {"ps": products}, scopes="catalog:write catalog:read")
    assert body["data"]["upsertProducts"]["errors"] == [], body
    cats = await api.gql(CATEGORIES, scopes="catalog:read")
    return {c["path"]: c["id"] for c in cats["data"]["categories"]}


async def seeded(db: Database) -> dict[str, int]:
    """The seeded world; on PostgreSQL the id sequences are moved past the explicit ids."""
    customers = await seed(db)
    async with db.unit_of_work() as session:
        if session.get_bind().dialect.name == "postgresql":
            for name in ("customer", "product", "orders"):
                await session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
    return customers


@pytest_asyncio.fixture
async def world(api: Api, serving_blob: bytes) -> AsyncIterator[dict[str, Any]]:
    customers = await seeded(api.db)
    categories = await catalogue(api)
    version = await add_version(api.db, serving_blob)
    yield {"customers": customers, "categories": categories, "version": version}


def pid(i: int) -> str:
    """The global id of seeded product p<i> (primary key i + 1)."""
    return encode_id("Product", i + 1)


def index_of(global_id: str) -> int:
    from api.ids import decode_id

    return decode_id(global_id)[1] - 1


async def recommend(api: Api, token: str | None = None, **input: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"token": token} if token else {"scopes": READ}
    body = await api.gql(RECOMMEND, {"input": input}, **kwargs)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["recommendations"]
    return payload


def ids(payload: dict[str, Any]) -> list[str]:
    return [i["product"]["id"] for i in payload["items"]]


async def impressions(db: Database) -> list[dict[str, Any]]:
    async with db.read_only() as session:
        rows = await session.execute(select(table(RecommendationImpression)))
        return [dict(r._mapping) for r in rows]


async def impression_count(db: Database) -> int:
    async with db.read_only() as session:
        t = table(RecommendationImpression)
        return int((await session.execute(select(func.count()).select_from(t))).scalar_one())


# -- personal or not -----------------------------------------------------------------------------


async def test_personal_answers_and_non_personal_ones(api: Api, world: dict[str, Any]) -> None:
    customers, version = world["customers"], world["version"]
    me = await recommend(api, userId=user_id(customers["c0"]))
    assert me["errors"] == [] and me["personal"] is True and me["fallback"] is None, me
    assert me["modelVersion"] == version
    assert 1 <= len(me["items"]) <= 10
    assert re.fullmatch(r"[0-9a-f]{32}", me["recommendationId"])
    scores = [i["score"] for i in me["items"]]
    assert scores == sorted(scores, reverse=True)
    assert len(set(ids(me))) == len(ids(me))

    # the impression: the same id, the shopper, the products in order
    rows = {r["id"]: r for r in await impressions(api.db)}
    row = rows[me["recommendationId"]]
    assert row["customer_id"] == customers["c0"] and row["personal"] is True
    assert row["model_version_id"] == version and row["surface"] == "recommendations"
    assert row["product_ids"] == [index_of(x) + 1 for x in ids(me)]

    anonymous = await recommend(api)
    assert anonymous["personal"] is False and anonymous["fallback"] == "ANONYMOUS", anonymous
    assert anonymous["modelVersion"] == version and anonymous["items"]

    # no personalization consent: exactly the anonymous answer
    await refuse_personalization(api.db, customers["c1"])
    refused = await recommend(api, userId=user_id(customers["c1"]))
    assert refused["personal"] is False and refused["fallback"] == "NO_CONSENT", refused
    assert ids(refused) == ids(anonymous)
    assert ids(me) != ids(anonymous)

    # unknown and erased shoppers: non-personal, never an error
    unknown = await recommend(api, userId=user_id(99_999))
    assert unknown["fallback"] == "UNKNOWN_SHOPPER" and unknown["personal"] is False
    assert ids(unknown) == ids(anonymous)
    from domain.audit.service import SYSTEM
    from domain.privacy.erase import erase_user

    before = await recommend(api, userId=user_id(customers["c2"]))
    assert before["personal"] is True
    async with api.db.unit_of_work() as session:
        await erase_user(session, SYSTEM, customers["c2"], due_days=30)
    erased = await recommend(api, userId=user_id(customers["c2"]))
    assert erased["personal"] is False and erased["fallback"] == "UNKNOWN_SHOPPER", erased
    assert ids(erased) == ids(anonymous)
    rows = {r["id"]: r for r in await impressions(api.db)}
    assert rows[erased["recommendationId"]]["customer_id"] is None
    assert rows[unknown["recommendationId"]]["customer_id"] is None


async def test_a_view_changes_the_next_answer_without_retraining(
    api: Api, world: dict[str, Any]
) -> None:
    # a shopper the model has never seen: non-personal until the first event of the visit
    pks = await make_customers(api, "newbie")
    token = await shopper_token(api, "newbie")
    first = await recommend(api, token, me=True)
    assert first["personal"] is False and first["fallback"] == "UNKNOWN_SHOPPER", first
    viewed = 7
    body = await api.gql(
        TRACK,
        {"events": [{"clientEventId": "v-1", "type": "view", "productExternalId": f"p{viewed}"}]},
        token=token,
    )
    assert body["data"]["trackEvents"]["accepted"] == 1, body
    after = await recommend(api, token, me=True)
    assert after["personal"] is True and after["fallback"] is None, after
    assert ids(after) != ids(first)
    assert pid(viewed) not in ids(after)
    because = [i for i in after["items"] if i["reasonCode"] == "VIEWED"]
    assert because, after
    assert all(i["reasonProduct"]["id"] == pid(viewed) for i in because)
    title = because[0]["reasonProduct"]["title"]
    assert because[0]["reason"] == f"Because you viewed {title}"
    # the same signal sent by the client instead of stored: the same answer for a visitor
    client = await recommend(api, recentProductIds=[pid(viewed)])
    assert client["personal"] is False and ids(client) == ids(after)
    # the token's own userId works like me
    mine = await recommend(api, token, userId=user_id(pks["newbie"]))
    assert ids(mine) == ids(after)


# -- model versions, faults and /readyz ----------------------------------------------------------


async def readyz(api: Api) -> str:
    response = await api.client.get("/readyz")
    assert response.status_code == 200, response.text  # degraded is still ready
    check: str = response.json()["checks"]["recommendations"]
    return check


async def set_active(db: Database, version: int) -> None:
    async with db.unit_of_work() as session:
        t = table(ModelVersion)
        await session.execute(update(t).where(t.c.status == "active").values(status="retired"))
        await session.execute(update(t).where(t.c.id == version).values(status="active"))


async def test_model_faults_fall_back_and_show_in_readyz(api: Api, serving_blob: bytes) -> None:
    customers = await seeded(api.db)
    categories = await catalogue(api)
    c0 = user_id(customers["c0"])

    # no model at all: popular products from the database, never personal
    none = await recommend(api, userId=c0)
    assert none["fallback"] == "NO_MODEL" and none["personal"] is False, none
    assert none["modelVersion"] is None and len(none["items"]) == 10
    assert {i["reasonCode"] for i in none["items"]} <= {"POPULAR", "NEW"}
    assert (await readyz(api)).startswith("degraded: no active model version; serving non-personal")
    shoes = await recommend(api, filter={"categories": [categories["Shoes"]]}, first=50)
    assert shoes["items"] and all(
        i["product"]["category"]["name"] in ("Shoes", "Running") for i in shoes["items"]
    )

    # an active version without a serving bundle, then with a corrupt one
    missing = await add_version(api.db, None)
    answer = await recommend(api, userId=c0)
    assert answer["fallback"] == "MODEL_UNAVAILABLE" and answer["modelVersion"] is None, answer
    assert f"active version {missing} has no serving bundle" in await readyz(api)
    corrupt = serving_blob[:-100] + b"x" * 100
    async with api.db.unit_of_work() as session:
        t = table(ModelVersion)
        await session.execute(
            update(t)
            .where(t.c.id == missing)
            .values(serving=corrupt, serving_sha256=sha_of(corrupt))
        )
    answer = await recommend(api, userId=c0)
    assert answer["fallback"] == "MODEL_UNAVAILABLE" and answer["items"], answer
    check = await readyz(api)
    assert check.startswith("degraded:") and "corrupt" in check and "non-personal" in check

    # a good version promoted: picked up by the next request, no restart
    good = await add_version(api.db, serving_blob, status="candidate")
    body = await api.gql(
        """mutation($input: PromoteModelInput!) { promoteModel(input: $input) {
        errors { code } } }""",
        {"input": {"versionId": encode_id("ModelVersion", good), "force": True}},
        scopes="models:write",
    )
    assert body["data"]["promoteModel"]["errors"] == [], body
    answer = await recommend(api, userId=c0)
    assert answer["modelVersion"] == good and answer["personal"] is True, answer
    assert await readyz(api) == f"ok: version {good}"

    # another good version: switched to; then a corrupt one promoted: the previous keeps serving
    other = await add_version(api.db, serving_blob, status="candidate")
    await set_active(api.db, other)
    assert (await recommend(api, userId=c0))["modelVersion"] == other
    bad = await add_version(api.db, b"PRECIS-RECO-1\n" + b"0" * 80, status="candidate")
    await set_active(api.db, bad)
    answer = await recommend(api, userId=c0)
    assert answer["modelVersion"] == other and answer["personal"] is True, answer
    check = await readyz(api)
    assert check.startswith(f"degraded: active version {bad}") and f"version {other}" in check


# -- filters and business rules ------------------------------------------------------------------


async def test_filters(api: Api, world: dict[str, Any]) -> None:
    c0 = user_id(world["customers"]["c0"])
    cats = world["categories"]

    async def items(**flt: Any) -> list[dict[str, Any]]:
        answer = await recommend(api, userId=c0, first=50, filter=flt)
        assert answer["errors"] == [], answer
        return list(answer["items"])

    everything = await items()
    assert len(everything) >= 20
    shoes = await items(categories=[cats["Shoes"]])
    names = {i["product"]["category"]["name"] for i in shoes}
    assert names == {"Shoes", "Running"}, names  # a category includes its children
    running = await items(categories=[cats["Shoes > Running"]])
    assert running and {i["product"]["category"]["name"] for i in running} == {"Running"}
    acme = await items(brands=["acme"])
    assert acme and {i["product"]["brand"] for i in acme} == {"Acme"}
    priced = await items(priceRange={"min": "20", "max": "30.00"})
    assert priced and all(20 <= 10 + index_of(i["product"]["id"]) <= 30 for i in priced)
    tracked = await items(inStockOnly=True)
    assert tracked and all(i["product"]["stock"] is not None for i in tracked)
    assert len(tracked) < len(everything)
    assert await items(brands=["nobody"]) == []  # excludes everything: fewer, never an error
    assert await items(categories=[encode_id("Category", 9999)]) == []
    # excludePurchased: nothing c0 bought (purchase events and order lines)
    async with api.db.read_only() as session:
        bought = set(
            (
                await session.execute(
                    text(
                        "SELECT product_id FROM event WHERE customer_id = :c AND type = 'purchase'"
                        " UNION SELECT l.product_id FROM order_line l JOIN orders o"
                        " ON o.id = l.order_id WHERE o.customer_id = :c"
                    ),
                    {"c": world["customers"]["c0"]},
                )
            ).scalars()
        )
    assert bought
    fresh = await items(excludePurchased=True)
    assert fresh and not {index_of(i["product"]["id"]) + 1 for i in fresh} & bought


async def test_hidden_products_never_returned(api: Api, world: dict[str, Any]) -> None:
    c0 = user_id(world["customers"]["c0"])
    before = await recommend(api, userId=c0, first=50)
    shown = ids(before)
    archived, inactive, sold_out = shown[0], shown[1], shown[2]
    body = await api.gql(
        """mutation($id: ID!) { archiveProduct(input: {id: $id}) { errors { code } } }""",
        {"id": archived},
        scopes="catalog:write",
    )
    assert body["data"]["archiveProduct"]["errors"] == [], body
    body = await api.gql(
        UPSERT,
        {
            "ps": [
                {"externalId": f"p{index_of(inactive)}", "active": False},
                {"externalId": f"p{index_of(sold_out)}", "stock": 0},
            ]
        },
        scopes="catalog:write",
    )
    assert body["data"]["upsertProducts"]["errors"] == [], body
    hidden = {archived, inactive, sold_out}
    after = await recommend(api, userId=c0, first=50)
    assert not hidden & set(ids(after)) and after["items"]
    for query, variables in (
        (SIMILAR, {"p": shown[3], "first": 50}),
        (TOGETHER, {"ps": [shown[3]], "first": 50}),
        (TRENDING, {"first": 50}),
    ):
        body = await api.gql(query, variables, scopes=READ)
        payload = next(iter(body["data"].values()))
        assert payload["errors"] == [], body
        assert not hidden & set(ids(payload)), (query, payload)
    anonymous = await recommend(api, first=50, recentProductIds=[shown[4]])
    assert not hidden & set(ids(anonymous))
    # a write that committed late (stamped before the previous catalogue read) is still seen
    from datetime import UTC, datetime, timedelta

    late = ids(after)[0]
    async with api.db.unit_of_work() as session:
        t = table(Product)
        await session.execute(
            update(t)
            .where(t.c.id == index_of(late) + 1)
            .values(active=False, updated_at=datetime.now(UTC) - timedelta(seconds=3))
        )
    assert late not in ids(await recommend(api, userId=c0, first=50))
    # back in stock: recommendable again
    await api.gql(
        UPSERT,
        {"ps": [{"externalId": f"p{index_of(sold_out)}", "stock": 3}]},
        scopes="catalog:write",
    )
    assert sold_out in ids(await recommend(api, userId=c0, first=50))


# -- bad input and access ------------------------------------------------------------------------


async def test_bad_input_is_a_typed_error_and_serves_nothing(
    api: Api, world: dict[str, Any]
) -> None:
    c0 = user_id(world["customers"]["c0"])
    cases = [
        ({"userId": c0, "first": 51}, "TOO_MANY", ["input", "first"]),
        ({"userId": c0, "first": 0}, "INVALID", ["input", "first"]),
        ({"userId": "not-an-id"}, "INVALID_ID", ["input", "userId"]),
        ({"userId": pid(1)}, "INVALID_ID", ["input", "userId"]),
        ({"productId": "%%%"}, "INVALID_ID", ["input", "productId"]),
        ({"recentProductIds": [pid(1), "zz"]}, "INVALID_ID", ["input", "recentProductIds", "1"]),
        ({"filter": {"categories": ["zz"]}}, "INVALID_ID", ["input", "filter", "categories", "0"]),
        ({"filter": {"priceRange": {"min": "5", "max": "1"}}}, "INVALID", None),
        ({"userId": c0, "me": True}, "INVALID", ["input"]),
        ({"cartProductIds": [pid(1)] * 51}, "TOO_MANY", ["input", "cartProductIds"]),
    ]
    for input, code, field in cases:
        answer = await recommend(api, **input)
        assert [e["code"] for e in answer["errors"]] == [code], (input, answer)
        if field is not None:
            assert answer["errors"][0]["field"] == field, (input, answer)
        assert answer["items"] == [] and answer["recommendationId"] is None
    for query, variables in (
        (SIMILAR, {"p": pid(1), "first": 51}),
        (SIMILAR, {"p": "??"}),
        (TOGETHER, {"ps": [pid(1), "??"]}),
        (TRENDING, {"c": pid(1)}),
    ):
        body = await api.gql(query, variables, scopes=READ)
        payload = next(iter(body["data"].values()))
        assert payload["errors"] and payload["items"] == [], (query, variables, body)
    assert await impression_count(api.db) == 0  # nothing was served


async def test_a_shopper_token_reads_only_its_own(api: Api, world: dict[str, Any]) -> None:
    pks = await make_customers(api, "alice", "bob")
    token = await shopper_token(api, "alice")
    own = await recommend(api, token)
    assert own["errors"] == [] and own["fallback"] == "UNKNOWN_SHOPPER", own
    before = await impression_count(api.db)
    answers = []
    for attack in (
        {"userId": user_id(pks["bob"])},
        {"userId": user_id(world["customers"]["c0"])},
        {"userId": user_id(99_999)},  # answers like an existing one: nothing to probe
        {"anonymousId": "anon-bob"},
    ):
        answer = await recommend(api, token, **attack)
        assert [e["code"] for e in answer["errors"]] == ["FORBIDDEN"], (attack, answer)
        assert answer["items"] == [] and answer["recommendationId"] is None
        answers.append(answer["errors"][0]["message"])
    assert answers[0] == answers[1] == answers[2]
    assert await impression_count(api.db) == before
    # a server token without the scope, and no token
    body = await api.gql(RECOMMEND, {"input": {}}, scopes="catalog:read")
    assert error_codes(body) == ["FORBIDDEN"] and body["data"] is None
    body = await api.gql(RECOMMEND, {"input": {}})
    assert error_codes(body) == ["UNAUTHENTICATED"]
    # me without a shopper token
    answer = await recommend(api, me=True)
    assert [e["code"] for e in answer["errors"]] == ["FORBIDDEN"]


# -- item-to-item lists --------------------------------------------------------------------------


async def test_similar_together_and_trending(api: Api, world: dict[str, Any]) -> None:
    body = await api.gql(SIMILAR, {"p": pid(3)}, scopes=READ)
    similar = body["data"]["similarProducts"]
    assert similar["errors"] == [] and similar["items"], body
    assert pid(3) not in ids(similar) and similar["modelVersion"] == world["version"]
    assert similar["personal"] is False and similar["fallback"] is None
    assert {i["reasonCode"] for i in similar["items"]} <= {"SIMILAR", "CONTENT", "TOGETHER"}

    body = await api.gql(TOGETHER, {"ps": [pid(3), pid(5)]}, scopes=READ)
    together = body["data"]["boughtTogether"]
    assert together["errors"] == [] and not {pid(3), pid(5)} & set(ids(together)), body

    shoes = world["categories"]["Shoes"]
    body = await api.gql(TRENDING, {"c": shoes, "first": 50}, scopes=READ)
    trending = body["data"]["trendingProducts"]
    assert trending["items"], body
    assert {i["product"]["category"]["name"] for i in trending["items"]} <= {"Shoes", "Running"}
    assert all(i["reasonCode"] in ("TRENDING", "POPULAR") for i in trending["items"])
    body = await api.gql(TRENDING, {"c": encode_id("Category", 9999)}, scopes=READ)
    assert body["data"]["trendingProducts"]["items"] == []

    # unknown products: fewer (here none), never an error
    body = await api.gql(SIMILAR, {"p": encode_id("Product", 9999)}, scopes=READ)
    assert body["data"]["similarProducts"]["errors"] == []
    assert body["data"]["similarProducts"]["items"] == []

    # a product the model never saw gets neighbours by its text
    made = await api.gql(
        UPSERT,
        {"ps": [{"externalId": "new-1", "title": "item 3", "price": "5.00", "currency": "EUR"}]},
        scopes="catalog:write catalog:read",
    )
    new_id = made["data"]["upsertProducts"]["products"][0]["id"]
    body = await api.gql(SIMILAR, {"p": new_id}, scopes=READ)
    cold = body["data"]["similarProducts"]
    assert cold["errors"] == [] and new_id not in ids(cold)
    rows = {r["id"]: r for r in await impressions(api.db)}
    assert rows[similar["recommendationId"]]["surface"] == "similar"
    assert rows[trending["recommendationId"]]["surface"] == "trending"


async def test_impressions_are_written_behind(
    api: Api, world: dict[str, Any], settings: Settings
) -> None:
    """With a flush interval the answer is not held up by the write; the row appears after the
    interval, and the rest at shutdown."""
    from domain.recommend.serving import Ask, RecommendationServer

    server = RecommendationServer(
        api.db, settings.model_copy(update={"recommend_impression_flush_ms": 60_000})
    )
    server.start()
    async with api.db.read_only() as session:
        answer = await server.answer(
            Ask(surface="recommendations", customer_id=world["customers"]["c0"]), session
        )
    erased_answer = await server.answer(
        Ask(surface="recommendations", customer_id=world["customers"]["c5"])
    )
    assert answer.personal and answer.items
    assert await impression_count(api.db) == 0  # queued, not written yet
    # a shopper erased before the flush: the row is written without the customer
    from domain.audit.service import SYSTEM
    from domain.privacy.erase import erase_user

    async with api.db.unit_of_work() as session:
        await erase_user(session, SYSTEM, world["customers"]["c5"], due_days=30)
    await server.stop()
    rows = {r["id"]: r for r in await impressions(api.db)}
    assert set(rows) == {answer.recommendation_id, erased_answer.recommendation_id}
    mine = rows[answer.recommendation_id]
    assert mine["product_ids"] == [i.product.id for i in answer.items]
    assert mine["customer_id"] == world["customers"]["c0"]
    assert rows[erased_answer.recommendation_id]["customer_id"] is None
    assert server.impressions.failures == 0


async def test_a_running_experiment_splits_shoppers_between_versions(
    api: Api, world: dict[str, Any], serving_blob: bytes
) -> None:
    from domain.recommend.experiments import arm_for

    control = world["version"]
    challenger = await add_version(api.db, serving_blob, status="candidate")
    body = await api.gql(
        """mutation($input: StartExperimentInput!) { startExperiment(input: $input) {
        experiment { id } errors { code message } } }""",
        {
            "input": {
                "name": "ab",
                "arms": [
                    {"versionId": encode_id("ModelVersion", control), "weight": 1},
                    {"versionId": encode_id("ModelVersion", challenger), "weight": 1},
                ],
            }
        },
        scopes="models:write",
    )
    assert body["data"]["startExperiment"]["errors"] == [], body
    async with api.db.read_only() as session:
        experiment_id, arms = (await session.execute(text("SELECT id, arms FROM experiment"))).one()
    if isinstance(arms, str):
        import json

        arms = json.loads(arms)
    served: dict[int, int] = {}
    for n in range(12):
        customer = world["customers"][f"c{n}"]
        answer = await recommend(api, userId=user_id(customer))
        expected = arm_for(int(experiment_id), arms, f"c:{customer}")
        assert answer["modelVersion"] == expected, (n, answer)
        assert (await recommend(api, userId=user_id(customer)))["modelVersion"] == expected
        served[expected] = served.get(expected, 0) + 1
        rows = {r["id"]: r for r in await impressions(api.db)}
        row = rows[answer["recommendationId"]]
        assert row["experiment_id"] == experiment_id and row["model_version_id"] == expected
    assert set(served) == {control, challenger}, served  # 12 shoppers: both arms (fixed hash)
    # no shopper to hash (a server asking without a user): the active version, no experiment
    anonymous = await recommend(api)
    assert anonymous["modelVersion"] == control
    rows = {r["id"]: r for r in await impressions(api.db)}
    assert rows[anonymous["recommendationId"]]["experiment_id"] is None


async def test_a_periodic_check_loads_a_new_version_in_the_background(
    api: Api, world: dict[str, Any], serving_blob: bytes, settings: Settings
) -> None:
    """With a reload interval, the request that finds the check due does not wait for the load
    (it runs as a task of its own); a later request gets the new version."""
    import asyncio

    from domain.recommend.serving import Ask, RecommendationServer

    server = RecommendationServer(
        api.db, settings.model_copy(update={"recommend_reload_seconds": 0.01})
    )
    ask = Ask(surface="recommendations", customer_id=world["customers"]["c0"])
    try:
        assert (await server.answer(ask)).model_version == world["version"]
        newer = await add_version(api.db, serving_blob, status="candidate")
        await set_active(api.db, newer)
        await asyncio.sleep(0.02)
        await server.answer(ask)  # finds the check due: answered by what is loaded, or newer
        assert server._checking is not None  # the check runs as a task of its own
        for _ in range(500):  # until the background load is done
            answer = await server.answer(ask)
            if answer.model_version == newer:
                break
            await asyncio.sleep(0.01)
        assert answer.model_version == newer and answer.personal
        assert server.health() == f"ok: version {newer}"
    finally:
        await server.stop()


async def test_the_shopper_read_is_the_same_by_every_path(
    api: Api, world: dict[str, Any], settings: Settings
) -> None:
    """The shopper statement through SQLAlchemy (a session) and, on PostgreSQL, straight to the
    driver (a connection) and on the request path's own connections read the same: existence,
    consent, session events, purchases."""
    from datetime import UTC, datetime

    from sqlalchemy.util import greenlet_spawn

    from domain.recommend.serving import Ask, Driver, Filter, RecommendationServer, load_shopper

    customers = world["customers"]
    await refuse_personalization(api.db, customers["c3"])
    now = datetime.now(UTC)
    from datetime import timedelta

    from domain.events.models import Event

    async with api.db.unit_of_work() as session:  # two events of this visit, one long ago
        for n, (kind, minutes) in enumerate((("view", 1), ("add_to_cart", 2), ("view", 90))):
            at = now - timedelta(minutes=minutes)
            await session.execute(
                insert(table(Event)).values(
                    client_event_id=f"visit-{n}",
                    customer_id=customers["c0"],
                    type=kind,
                    product_id=n + 1,
                    properties={},
                    source_client_id="test",
                    occurred_at=at,
                    received_at=at,
                )
            )
    engine = api.db.engine.execution_options(isolation_level="AUTOCOMMIT")
    server = RecommendationServer(api.db, settings)  # the request path (PostgreSQL: own reads)
    for who in (
        {"customer_id": customers["c0"], "anonymous_id": None},
        {"customer_id": customers["c3"], "anonymous_id": None},
        {"customer_id": 99_999, "anonymous_id": None},
        {"customer_id": None, "anonymous_id": "nobody"},
    ):
        for purchased in (False, True):
            async with api.db.read_only() as session:
                by_session = await load_shopper(
                    session, settings, purchased=purchased, now=now, **who
                )
            async with engine.connect() as conn:
                by_connection = await load_shopper(
                    conn, settings, purchased=purchased, now=now, **who
                )
            assert by_session == by_connection, (who, purchased)
            if api.db.engine.dialect.name == "postgresql":  # the request path: pool -> asyncpg
                raw = await api.db.engine.raw_connection()
                try:
                    by_driver = await load_shopper(
                        Driver(raw.driver_connection, api.db.engine.dialect),
                        settings,
                        purchased=purchased,
                        now=now,
                        **who,
                    )
                finally:
                    await greenlet_spawn(raw.close)
                assert by_driver == by_session, (who, purchased)
            ask = Ask(
                surface="recommendations",
                customer_id=who["customer_id"],
                anonymous_id=who["anonymous_id"],
                filter=Filter(exclude_purchased=purchased),
            )
            assert await server._read_shopper(ask, now) == by_session, (who, purchased)
    await server.stop()
    assert by_session.exists is False
    async with engine.connect() as conn:
        c0 = await load_shopper(
            conn, settings, customer_id=customers["c0"], anonymous_id=None, purchased=True, now=now
        )
        c3 = await load_shopper(
            conn, settings, customer_id=customers["c3"], anonymous_id=None, purchased=False, now=now
        )
    assert c0.exists and c0.personalization and c0.analytics and c0.purchased
    assert [(p, k) for p, k, _ in c0.recent] == [(1, "view"), (2, "add_to_cart")]
    assert c3.exists and not c3.personalization and c3.analytics


async def test_a_client_that_disconnects_mid_request_is_a_quiet_event(
    api: Api, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A client gone before its body was read (wrk stopping, a closed tab): the app returns
    without an answer and without an error (uvicorn logged "Exception in ASGI application" with
    a ClientDisconnect traceback); nothing is served or written, and the next request works."""
    import logging

    token = await api.token(READ)
    body = b'{"query": "{ __typename }"}'
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    before = await impression_count(api.db)
    with caplog.at_level(logging.INFO):
        await api.app(scope, receive, send)  # raised ClientDisconnect before
    assert sent == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await impression_count(api.db) == before
    me = await recommend(api, userId=user_id(world["customers"]["c0"]))
    assert me["errors"] == [] and len(me["items"]) > 0


async def test_concurrent_and_cancelled_requests_give_every_connection_back(
    api: Api, world: dict[str, Any], settings: Settings
) -> None:
    """The request path holds a connection only for the shopper statement: 30 requests at once
    on 2 connections (PostgreSQL: the shopper reads' own; SQLite: a pool of 2 + 1) all answer, a
    request cancelled at any point leaves no connection taken (one cancelled mid-statement is
    closed, not reused), the connections left work, the following requests read the same shopper
    as before, and ``stop`` closes the shopper reads' connections."""
    import asyncio

    from domain.recommend.serving import Ask, RecommendationServer

    small = settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 1})
    db = Database(small)
    server = RecommendationServer(
        db,
        small.model_copy(
            update={
                "recommend_reload_seconds": 60,
                "recommend_catalog_max_age_ms": 60_000,
                "recommend_impression_flush_ms": 60_000,
            }
        ),
    )
    pg = db.engine.dialect.name == "postgresql"

    def taken() -> int:
        if pg:
            reads = server.shopper_reads()
            assert reads.open <= 2
            return reads.open - reads.idle
        return db.engine.pool.checkedout()  # type: ignore[attr-defined,no-any-return]

    c0 = world["customers"]["c0"]
    ask = Ask(surface="recommendations", customer_id=c0, recent=(3,))
    try:
        first = await server.answer(ask)
        assert first.personal and first.items
        answers = await asyncio.gather(*(server.answer(ask) for _ in range(30)))
        assert all(a.personal and len(a.items) == len(first.items) for a in answers)
        assert taken() == 0
        for delay in range(12):  # cancelled before, during and after the statement
            task = asyncio.ensure_future(server.answer(ask))
            for _ in range(delay):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _ in range(500):  # a read still finishing (SQLite: shielded) gives its one back
            if taken() == 0:
                break
            await asyncio.sleep(0.01)
        assert taken() == 0
        again = await server.answer(ask)
        assert again.personal and [i.product.id for i in again.items] == [
            i.product.id for i in first.items
        ]
        assert [(i.reason, i.score) for i in again.items] == [
            (i.reason, i.score) for i in first.items
        ]
        if pg:  # every connection kept is clean: a statement runs on each at once
            kept = list(server.shopper_reads()._idle)
            assert kept and all(not c.is_closed() for c in kept)
            assert [await c.fetchval("SELECT 1") for c in kept] == [1] * len(kept)
    finally:
        await server.stop()
        await db.dispose()
    if pg:
        reads = server._shopper_reads
        assert reads is not None and reads.closed  # by stop, every connection with it
        assert (reads.open, reads.idle) == (0, 0)
        assert all(c.is_closed() for c in kept)
