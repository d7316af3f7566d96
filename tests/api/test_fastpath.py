"""The compiled ``recommendations`` path (api/fastpath.py) answers exactly as the generic path does.

Differential, over real HTTP on SQLite and PostgreSQL: every request is sent to the app (fast path
in front) and then, with the same body and token, straight to its Strawberry app (the generic path,
same process, same services); status, content type and JSON must be equal (``recommendationId``
compared as "32 hex digits" on both sides), the path the app took is read from its counters, and
each request must write exactly the impressions the generic one writes (one per ranked answer, none
for refused or failed requests).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from domain.settings import Settings
from tests.conftest import Api, error_codes
from tests.me.helpers import shopper_token, user_id
from tests.recommend.models_world import fast
from tests.recommend.test_serving_api import (
    UPSERT,
    add_version,
    catalogue,
    impression_count,
    pid,
    seeded,
    serving_blob,
)

__all__ = ["serving_blob"]  # the session fixture (a bundle trained once), shared with serving tests

READ = "recommendations:read"
PAYLOAD = """recommendationId modelVersion personal fallback
  items { product { id title brand stock active inStock price { amount currency }
                    category { id name path depth } }
          score reason reasonCode reasonProduct { id title } }
  errors { code field message index }"""
RECOMMEND = (
    f"query($input: RecommendationsInput!) {{ recommendations(input: $input) {{ {PAYLOAD} }} }}"
)
ALIASED = """query Aliased($i: RecommendationsInput!) {
  __typename
  recs: recommendations(input: $i) {
    __typename rid: recommendationId personal
    list: items { __typename p: product { __typename pid: id t: title
                  cost: price { __typename a: amount c: currency } inStock }
                  s: score why: reason code: reasonCode
                  because: reasonProduct { __typename id } }
    problems: errors { __typename code field message } } }"""
FRAGMENTS = """query($i: RecommendationsInput!) { recommendations(input: $i) { ...Payload } }
fragment Payload on RecommendationsPayload {
  personal items { ... on RecommendedItem { score } product { ...P } }
  items { reason product { brand } } errors { code } }
fragment P on Product { id title }"""
MINIMAL = "query($i: RecommendationsInput!) { recommendations(input: $i) { recommendationId } }"
TWO_OPERATIONS = f"""query Recs($input: RecommendationsInput!) {{
  recommendations(input: $input) {{ {PAYLOAD} }} }}
query Floor {{ __typename }}
mutation Track($e: [EventInput!]!) {{ trackEvents(input: {{events: $e}}) {{ accepted }} }}"""

NOT_FAST = {  # valid documents the fast path leaves to graphql-core
    "async field": "query($i: RecommendationsInput!) { recommendations(input: $i) { items { "
    "product { tags } } } }",
    "category of reasonProduct": "query($i: RecommendationsInput!) { recommendations(input: $i) {"
    " items { reasonProduct { category { name } } } } }",
    "category's parent": "query($i: RecommendationsInput!) { recommendations(input: $i) { items {"
    " product { category { parent { id } } } } } }",
    "directive": "query($i: RecommendationsInput!, $t: Boolean!) { recommendations(input: $i) {"
    " personal @include(if: $t) } }",
    "two root fields": "query($i: RecommendationsInput!) { recommendations(input: $i) { personal }"
    " trendingProducts { personal } }",
    "another field": "query($p: ID!) { similarProducts(productId: $p) { personal } }",
}
RANKS = {"two root fields": 2}  # impressions a request writes (recommendations and trending)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return fast(
        settings,
        recommend_reload_seconds=0,
        recommend_catalog_max_age_ms=0,
        recommend_impression_flush_ms=0,
    )


@pytest_asyncio.fixture
async def world(api: Api, serving_blob: bytes) -> dict[str, Any]:
    """The serving tests' world: seeded shoppers and products, categories, an active model."""
    customers = await seeded(api.db)
    categories = await catalogue(api)
    await add_version(api.db, serving_blob)
    return {"customers": customers, "categories": categories}


def normalise(value: Any) -> Any:
    """The JSON with every recommendationId (random) replaced by "<id>" once it is 32 hex."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("recommendationId", "rid") and v is not None:
                assert re.fullmatch(r"[0-9a-f]{32}", v), v
                v = "<id>"
            out[k] = normalise(v)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


class Differ:
    """Sends each request to both paths and compares."""

    def __init__(self, api: Api, app: Any = None) -> None:
        self.api = api
        app = app or api.app
        self.endpoint = app.state.graphql
        base = "http://127.0.0.1:8000"
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
        transport = httpx.ASGITransport(app=self.endpoint.graphql)
        self.generic = httpx.AsyncClient(transport=transport, base_url=base)

    async def same(
        self,
        body: Any,
        token: str | None,
        *,
        path: str,
        ranked: int,
        method: str = "POST",
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Both answers for ``body``; ``path`` is the one the app must take ("fast", "generic",
        "handed_over"), ``ranked`` the impressions each request writes."""
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        counts = dict(self.endpoint.counts)
        before = await impression_count(self.api.db)
        if method == "GET":
            fast_response = await self.client.get("/graphql", params=body, headers=headers)
        else:
            fast_response = await self.client.post("/graphql", content=raw, headers=headers)
        middle = await impression_count(self.api.db)
        if method == "GET":
            generic_response = await self.generic.get("/graphql", params=body, headers=headers)
        else:
            generic_response = await self.generic.post("/graphql", content=raw, headers=headers)
        after = await impression_count(self.api.db)

        taken = {k for k, v in self.endpoint.counts.items() if v != counts.get(k, 0)}
        expected = {"generic", "handed_over"} if path == "handed_over" else {path}
        if method == "GET" or content_type != "application/json":
            expected = set()  # not even looked at
        assert taken == expected, (taken, fast_response.text)
        assert (middle - before, after - middle) == (ranked, ranked), (body, fast_response.text)
        assert fast_response.status_code == generic_response.status_code, fast_response.text
        assert fast_response.headers["content-type"] == generic_response.headers["content-type"]
        if generic_response.headers["content-type"] != "application/json":
            assert fast_response.content == generic_response.content
            return {}
        fast_json, generic_json = fast_response.json(), generic_response.json()
        assert normalise(fast_json) == normalise(generic_json)
        assert list(fast_json) == list(generic_json)  # the same key order, too
        result: dict[str, Any] = fast_json
        return result


@pytest_asyncio.fixture
async def differ(api: Api) -> Differ:
    return Differ(api)


def variables(query: str, **input: Any) -> dict[str, Any]:
    name = "input" if "$input" in query else "i"
    return {"query": query, "variables": {name: input}}


async def test_answers_equal_the_generic_path(
    api: Api, world: dict[str, Any], differ: Differ
) -> None:
    customers, cats = world["customers"], world["categories"]
    server = await api.token(READ)
    shopper = await shopper_token(api, "c0")
    c0 = user_id(customers["c0"])

    # given documents the plan compiler accepts, with variables, literals and defaults
    body = await differ.same(variables(RECOMMEND, userId=c0), server, path="fast", ranked=1)
    payload = body["data"]["recommendations"]
    assert payload["personal"] is True and len(payload["items"]) == 10, payload
    assert any(i["product"]["category"] for i in payload["items"])  # from the catalogue
    await differ.same(variables(RECOMMEND, me=True), shopper, path="fast", ranked=1)
    await differ.same(variables(RECOMMEND), shopper, path="fast", ranked=1)  # defaults
    await differ.same(variables(RECOMMEND), server, path="fast", ranked=1)  # anonymous
    await differ.same(
        variables(RECOMMEND, anonymousId="visitor-1", recentProductIds=[pid(3), pid(7)]),
        server,
        path="fast",
        ranked=1,
    )
    aliased = await differ.same(
        variables(ALIASED, me=True, first=3), shopper, path="fast", ranked=1
    )
    assert aliased["data"]["__typename"] == "Query"
    assert aliased["data"]["recs"]["list"][0]["p"]["cost"]["__typename"] == "Money"
    await differ.same(variables(FRAGMENTS, me=True), shopper, path="fast", ranked=1)
    literal = (
        "{ recommendations(input: {userId: "
        + orjson.dumps(c0).decode()
        + ", scenario: PRODUCT, productId: "
        + orjson.dumps(pid(5)).decode()
        + f", first: 4}}) {{ {PAYLOAD} }} }}"
    )
    await differ.same({"query": literal}, server, path="fast", ranked=1)
    # every input field and every filter
    everything = {
        "userId": c0,
        "scenario": "CART",
        "cartProductIds": [pid(1), pid(2)],
        "recentProductIds": [pid(4)],
        "first": 50,
        "filter": {
            "categories": [cats["Shoes"]],
            "brands": ["acme", "zeta"],
            "priceRange": {"min": "10", "max": "45.5"},
            "inStockOnly": True,
            "excludePurchased": True,
        },
    }
    await differ.same(variables(RECOMMEND, **everything), server, path="fast", ranked=1)
    for flt in (
        {"categories": [cats["Shoes > Running"]]},
        {"brands": ["nobody"]},  # excludes everything: an empty list, still an impression
        {"priceRange": {"max": "20"}},
        {"priceRange": {"min": "40"}},
        {"inStockOnly": True},
        {"excludePurchased": True},
    ):
        await differ.same(
            variables(RECOMMEND, userId=c0, filter=flt), server, path="fast", ranked=1
        )
    # operationName chooses among two queries and a mutation
    named = variables(TWO_OPERATIONS, me=True) | {"operationName": "Recs"}
    await differ.same(named, shopper, path="fast", ranked=1)
    floor = named | {"operationName": "Floor"}
    await differ.same(floor, shopper, path="generic", ranked=0)
    track = {"query": TWO_OPERATIONS, "operationName": "Track", "variables": {"e": []}}
    await differ.same(track, shopper, path="generic", ranked=0)
    # a variable with a default: graphql-core coerces (the plan has no coercers for it)
    defaulted = (
        "query($i: RecommendationsInput = {me: true, first: 3}) "
        f"{{ recommendations(input: $i) {{ {PAYLOAD} }} }}"
    )
    body = await differ.same({"query": defaulted}, shopper, path="fast", ranked=1)
    assert len(body["data"]["recommendations"]["items"]) == 3, body
    await differ.same(variables(defaulted, first=2), server, path="fast", ranked=1)
    await differ.same(
        {"query": defaulted, "variables": {"i": None}}, shopper, path="generic", ranked=0
    )
    plan = differ.endpoint.plans.get((defaulted, None))
    assert plan and plan.variables is None
    plan = differ.endpoint.plans.get((RECOMMEND, None))
    assert plan and plan.variables is not None
    # no name: Strawberry runs the first operation
    await differ.same(named | {"operationName": None}, shopper, path="fast", ranked=1)
    await differ.same(named | {"operationName": "Nope"}, shopper, path="generic", ranked=0)
    assert differ.endpoint.counts["handed_over"] == 0


async def test_refusals_are_answers_too(api: Api, world: dict[str, Any], differ: Differ) -> None:
    server = await api.token(READ)
    shopper = await shopper_token(api, "c0")
    other = user_id(world["customers"]["c1"])
    cases = [
        ({"first": 51}, server, "TOO_MANY"),
        ({"first": 0}, server, "INVALID"),
        ({"userId": "bogus"}, server, "INVALID_ID"),
        ({"cartProductIds": [pid(0)] * 51}, server, "TOO_MANY"),
        ({"filter": {"brands": ["x" * 101]}}, server, "TOO_LONG"),
        ({"filter": {"priceRange": {"min": "9", "max": "1"}}}, server, "INVALID"),
        ({"userId": other}, shopper, "FORBIDDEN"),
        ({"me": True}, server, "FORBIDDEN"),
        ({"anonymousId": "v"}, shopper, "FORBIDDEN"),
        ({"me": True, "userId": other}, shopper, "INVALID"),
    ]
    for input, token, code in cases:
        for query in (RECOMMEND, ALIASED):
            body = await differ.same(variables(query, **input), token, path="fast", ranked=0)
            payload = body["data"].get("recommendations") or body["data"]["recs"]
            errors = payload.get("errors") or payload.get("problems")
            assert [e["code"] for e in errors] == [code], body


async def test_whatever_is_unusual_takes_the_generic_path(
    api: Api, world: dict[str, Any], differ: Differ
) -> None:
    server = await api.token(READ)
    shopper = await shopper_token(api, "c0")
    c0 = user_id(world["customers"]["c0"])
    asks = variables(RECOMMEND, userId=c0)

    # fields the plan cannot read without graphql-core: answered (and ranked) there, once
    for name, query in NOT_FAST.items():
        body = {"query": query, "variables": {"i": {"me": True}, "t": True, "p": pid(1)}}
        answer = await differ.same(body, shopper, path="generic", ranked=RANKS.get(name, 1))
        assert "errors" not in answer, answer

    # who is asking: no token, a malformed header, an invalid, a revoked token, a missing scope
    await differ.same(asks, None, path="generic", ranked=0)
    await differ.same(asks, "not-a-token", path="generic", ranked=0)
    client_id, secret = await api.new_client(READ, name="revoked")
    response = await api.client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    revoked = response.json()["access_token"]
    await differ.same(asks, revoked, path="fast", ranked=1)
    response = await api.client.post(
        "/oauth/revoke", data={"token": revoked}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    body = await differ.same(asks, revoked, path="generic", ranked=0)
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    body = await differ.same(asks, await api.token("catalog:read"), path="generic", ranked=0)
    assert error_codes(body) == ["FORBIDDEN"], body
    headers = {"Authorization": f"Basic {server}", "Content-Type": "application/json"}
    before = dict(differ.endpoint.counts)
    fast_response = await api.client.post("/graphql", content=orjson.dumps(asks), headers=headers)
    generic_response = await differ.generic.post(
        "/graphql", content=orjson.dumps(asks), headers=headers
    )
    assert fast_response.json() == generic_response.json()
    assert differ.endpoint.counts["generic"] == before.get("generic", 0) + 1

    # a body over 32 KB is not looked at (a refusal here: anonymousId is too long)
    huge = variables(RECOMMEND, anonymousId="x" * 40_000)
    body = await differ.same(huge, server, path="generic", ranked=0)
    assert body["data"]["recommendations"]["errors"][0]["code"] == "TOO_LONG", body

    # variables that do not coerce, NUL, bodies that are not one JSON operation
    for bad in (
        {"input": {"first": "ten"}},
        {"input": {"nope": 1}},
        {"input": None},
        {},
        {"input": {"me": True, "scenario": "NOWHERE"}},
        {"input": {"anonymousId": "a\u0000b"}},
        {"input": {"filter": {"priceRange": {"min": "cheap"}}}},
    ):
        body = await differ.same(
            {"query": RECOMMEND, "variables": bad}, server, path="generic", ranked=0
        )
        assert body["errors"] and body["data"] is None, body
    for raw in (
        b"[" + orjson.dumps(asks) + b"]",
        b"{not json",
        orjson.dumps({"query": 7}),
        orjson.dumps(asks | {"variables": [1]}),
        orjson.dumps(asks | {"operationName": 3}),
        orjson.dumps({"query": "{ recommendations(input: {}) { personal "}),  # syntax error
        orjson.dumps({"query": "query { recommendations { personal } }"}),  # invalid
    ):
        await differ.same(raw, server, path="generic", ranked=0)
    # GET (queries are not allowed over GET) and a form body are not even looked at
    await differ.same(
        {"query": MINIMAL, "variables": orjson.dumps({"i": {}}).decode()},
        server,
        path="generic",
        ranked=0,
        method="GET",
    )
    await differ.same(
        orjson.dumps(asks), server, path="generic", ranked=0, content_type="text/plain"
    )


async def test_persisted_queries(api: Api, world: dict[str, Any], differ: Differ) -> None:
    shopper = await shopper_token(api, "c0")
    digest = hashlib.sha256(RECOMMEND.encode()).hexdigest()
    apq = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    input = {"input": {"me": True}}
    # a miss: the generic path answers PersistedQueryNotFound
    body = await differ.same(
        {"extensions": apq, "variables": input}, shopper, path="generic", ranked=0
    )
    assert error_codes(body) == ["PERSISTED_QUERY_NOT_FOUND"], body
    # registering the document is the generic path's (it stores it)
    await differ.same(
        {"query": RECOMMEND, "extensions": apq, "variables": input},
        shopper,
        path="generic",
        ranked=1,
    )
    # a hit in the process's cache: fast
    await differ.same({"extensions": apq, "variables": input}, shopper, path="fast", ranked=1)
    wrong = {"persistedQuery": {"version": 2, "sha256Hash": digest}}
    await differ.same({"extensions": wrong, "variables": input}, shopper, path="generic", ranked=0)


async def test_a_value_graphql_reports_is_ranked_once(
    api: Api, world: dict[str, Any], differ: Differ, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a reason that comes out null for one item (String! in the schema)
    from api.recommend import serving

    text = serving.reason_text
    calls = {"n": 0}
    bad: list[int] = []  # the product of the third item asked about

    def flaky(item: Any) -> str | None:
        calls["n"] += 1
        if calls["n"] == 3:
            bad.append(item.product.id)
        return None if item.product.id in bad else text(item)

    monkeypatch.setattr(serving, "reason_text", flaky)
    shopper = await shopper_token(api, "c0")
    # when asked through the app: the fast path ranks, sees the null, hands the answer over
    body = await differ.same(variables(RECOMMEND, me=True), shopper, path="handed_over", ranked=1)
    # then graphql-core reports it exactly as it does for its own requests
    assert body["data"] is None and body["errors"][0]["path"][:3] == [
        "recommendations",
        "items",
        2,
    ], body
    # and the answer handed over was the one ranked: one impression (checked above), one ranking;
    # the fast path stopped at the null (3 reasons), the other two wrote all 10
    assert calls["n"] == 23


async def test_the_setting_turns_it_off(settings: Settings) -> None:
    from api.app import create_app
    from api.fastpath import FastGraphQL

    assert isinstance(create_app(settings).state.graphql, FastGraphQL)
    off = create_app(settings.model_copy(update={"graphql_fast_path": False}))
    assert not isinstance(off.state.graphql, FastGraphQL)


async def test_every_catalogue_category(api: Api, world: dict[str, Any], differ: Differ) -> None:
    """``Product.category`` read from the catalogue equals the loader's rows, for each root."""
    server = await api.token(READ)
    for cat in world["categories"].values():
        body = await differ.same(
            variables(RECOMMEND, first=50, filter={"categories": [cat]}),
            server,
            path="fast",
            ranked=1,
        )
        items = body["data"]["recommendations"]["items"]
        assert items and all(i["product"]["category"] for i in items), body


async def test_prod(
    api: Api, world: dict[str, Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In prod (introspection closed, unexpected errors masked) the answers are the same too."""
    from api.app import create_app
    from api.recommend import serving
    from tests.api.test_limits import _dev_secret

    prod = create_app(
        settings.model_copy(
            update={
                "env": "prod",
                "signing_keys": _dev_secret(settings, "signing"),
                "encryption_keys": _dev_secret(settings, "encryption"),
                "lookup_key": _dev_secret(settings, "lookup"),
            }
        )
    )
    shopper = await shopper_token(api, "c0")
    async with prod.router.lifespan_context(prod):
        differ = Differ(api, prod)
        await differ.same(variables(ALIASED, me=True), shopper, path="fast", ranked=1)
        await differ.same(
            {"query": "{ __schema { queryType { name } } }"}, shopper, path="generic", ranked=0
        )
        await differ.same(variables(RECOMMEND, first=99), shopper, path="fast", ranked=0)
        monkeypatch.setattr(serving, "reason_text", lambda item: None)
        await differ.same(variables(RECOMMEND, me=True), shopper, path="handed_over", ranked=1)


async def test_body_limits_and_disconnects(api: Api, settings: Settings) -> None:
    """The body is read by the fast path: the size limit and a client gone mid-body behave as
    before (413; nothing answered, nothing raised)."""
    from tests.conftest import serve

    async def chunks() -> Any:
        for _ in range(5):
            yield b" " * 1000

    async with serve(settings, max_body_bytes=2000) as c:
        response = await c.post(
            "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert error_codes(response.json()) == ["PAYLOAD_TOO_LARGE"]

    sent: list[Any] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"query"', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    await api.app(scope, receive, send)
    assert sent == []


async def test_a_changed_product_is_never_served_stale(
    api: Api, world: dict[str, Any], differ: Differ
) -> None:
    """Products are serialised once per plan and catalogue row: a product changed through the
    API is answered with its new values as soon as the catalogue has it."""
    server = await api.token(READ)
    c0 = user_id(world["customers"]["c0"])
    asks = variables(RECOMMEND, userId=c0, first=50)
    # given an answer written by the fast path, its products kept
    before = await differ.same(asks, server, path="fast", ranked=1)
    memo = differ.endpoint.products.entries
    assert memo
    first = before["data"]["recommendations"]["items"][0]["product"]
    again = await differ.same(asks, server, path="fast", ranked=1)
    assert again["data"]["recommendations"]["items"][0]["product"] == first
    # when its title and price change through the API
    from api.ids import decode_id

    external = f"p{decode_id(first['id'])[1] - 1}"
    body = await api.gql(
        UPSERT,
        {"ps": [{"externalId": external, "title": "Renamed", "price": "77.50"}]},
        scopes="catalog:write",
    )
    assert body["data"]["upsertProducts"]["errors"] == [], body
    # then the next answers (both paths, compared) carry the new values
    after = await differ.same(asks, server, path="fast", ranked=1)
    changed = [
        i["product"]
        for i in after["data"]["recommendations"]["items"]
        if i["product"]["id"] == first["id"]
    ]
    assert changed and changed[0]["title"] == "Renamed", after
    assert changed[0]["price"] == {"amount": "77.50", "currency": first["price"]["currency"]}
    reasons = [
        i["reasonProduct"]
        for i in after["data"]["recommendations"]["items"]
        if i["reasonProduct"] and i["reasonProduct"]["id"] == first["id"]
    ]
    assert all(r["title"] == "Renamed" for r in reasons), after


async def test_without_the_domain_readers_the_payload_route_answers(
    api: Api, world: dict[str, Any], differ: Differ, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field the domain readers do not know makes the plan write ``payload``'s objects, as
    before: the same answers."""
    from api.recommend import serving

    fields = dict(serving.ANSWER_FIELDS)
    del fields[("RecommendedItem", "score")]
    monkeypatch.setattr(serving, "ANSWER_FIELDS", fields)
    shopper = await shopper_token(api, "c0")
    query = RECOMMEND.replace("recommendations(", "payloadRoute: recommendations(")
    body = await differ.same(variables(query, me=True), shopper, path="fast", ranked=1)
    assert len(body["data"]["payloadRoute"]["items"]) == 10, body
    plan = differ.endpoint.plans.get((query, None))
    assert plan and plan.answer is None
    # a document without the field still reads the domain answer
    minimal = "query($i: RecommendationsInput!) { recommendations(input: $i) { items { reason } } }"
    await differ.same(variables(minimal, me=True), shopper, path="fast", ranked=1)
    plan = differ.endpoint.plans.get((minimal, None))
    assert plan and plan.answer is not None
