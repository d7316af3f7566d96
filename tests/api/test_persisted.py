"""Automatic persisted queries (APQ): hash-only requests, registration, mismatches, Redis sharing."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from domain.settings import Settings
from tests.conftest import Api, serve

QUERY = "{ users(first: 1) { totalCount } }"
DIGEST = hashlib.sha256(QUERY.encode()).hexdigest()


def apq(digest: str = DIGEST) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_register_then_send_the_hash_only(api: Api) -> None:
    token = await api.token("users:read")
    miss = await post(api.client, token, {"extensions": apq()})
    assert miss["errors"][0]["message"] == "PersistedQueryNotFound"
    assert miss["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = await post(api.client, token, {"query": QUERY, "extensions": apq()})
    assert registered == {"data": {"users": {"totalCount": 0}}}
    hit = await post(api.client, token, {"extensions": apq()})
    assert hit == {"data": {"users": {"totalCount": 0}}}


async def test_bad_hashes_are_refused(api: Api) -> None:
    token = await api.token("users:read")
    wrong = await post(api.client, token, {"query": QUERY, "extensions": apq("0" * 64)})
    assert wrong["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_INVALID"
    assert "does not match" in wrong["errors"][0]["message"]
    for ext in (
        apq("xyz"),
        {"persistedQuery": {"version": 2, "sha256Hash": DIGEST}},
        {"persistedQuery": "no"},
    ):
        body = await post(api.client, token, {"query": QUERY, "extensions": ext})
        assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_INVALID"
    # the wrong hash was not stored
    miss = await post(api.client, token, {"extensions": apq("0" * 64)})
    assert miss["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_persisted_queries_still_need_a_token(api: Api) -> None:
    token = await api.token("users:read")
    await post(api.client, token, {"query": QUERY, "extensions": apq()})
    response = await api.client.post("/graphql", json={"extensions": apq()})
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_redis_shares_documents_between_processes(
    api: Api, settings: Settings, redis_url: str, queue_name: str
) -> None:
    token = await api.token("users:read")
    query = "{ users(first: 2) { totalCount } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    async with serve(settings, redis_url=redis_url, queue_name=queue_name) as first:
        await post(first, token, {"query": query, "extensions": apq(digest)})
    async with serve(settings, redis_url=redis_url, queue_name=queue_name) as second:
        hit = await post(second, token, {"extensions": apq(digest)})
    assert hit == {"data": {"users": {"totalCount": 0}}}
