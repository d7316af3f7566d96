"""Abuse limits, hostile requests, prod hardening and health checks: each gets a clear error, the
server stays up, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from domain.settings import ConfigurationError, Settings
from tests.conftest import Api, count_rows, serve

W = "users:write users:read"
UPSERT_ONE = 'upsertUsers(input: {users: [{externalId: "x-%d"}]}) { errors { code } }'


async def still_up(api: Api) -> None:
    body = await api.gql("{ users(first: 1) { totalCount } }", scopes="users:read")
    assert body["data"]["users"]["totalCount"] >= 0


async def test_malformed_and_oversized_bodies(api: Api) -> None:
    token = await api.token(W)
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    response = await api.client.post("/graphql", content=b'{"query": "{ users', headers=headers)
    assert response.status_code == 400
    response = await api.client.post("/graphql", content=b"[1, 2", headers=headers)
    assert response.status_code == 400
    big = json.dumps({"query": "mutation { %s }" % (UPSERT_ONE % 1), "pad": "x" * 1_100_000})
    response = await api.client.post("/graphql", content=big.encode(), headers=headers)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit still holds
        yield (
            b'{"query": "mutation { '
            + (UPSERT_ONE % 2).encode().replace(b'"', b'\\"')
            + b' }", "pad": "'
        )
        for _ in range(120):
            yield b"y" * 10_000
        yield b'"}'

    response = await api.client.post("/graphql", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert await count_rows(api.db, "customer") == 0
    await still_up(api)


async def test_batched_operations_are_refused(api: Api) -> None:
    token = await api.token(W)
    response = await api.client.post(
        "/graphql",
        json=[
            {"query": "mutation { %s }" % (UPSERT_ONE % 1)},
            {"query": "{ users { totalCount } }"},
        ],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert await count_rows(api.db, "customer") == 0


async def test_too_many_aliases(api: Api) -> None:
    doc = "mutation {{ {} }}".format(" ".join(f"a{i}: " + UPSERT_ONE % i for i in range(300)))
    body = await api.gql(doc, scopes=W)
    assert body["data"] is None
    assert body["errors"]  # refused before execution (by the token or the alias limit)
    assert await count_rows(api.db, "customer") == 0
    cheap = "{{ {} }}".format(" ".join(f"a{i}: __typename" for i in range(300)))
    body = await api.gql(cheap, scopes=W)
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"]
    await still_up(api)


async def test_too_many_tokens(api: Api) -> None:
    doc = "{{ users {{ nodes {{ {} }} }} }}".format(" ".join(["id"] * 8000))
    body = await api.gql(doc, scopes="users:read")
    assert body["data"] is None
    assert "token" in body["errors"][0]["message"].lower()
    await still_up(api)


async def test_too_deep(api: Api, settings: Settings) -> None:
    nested = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    body = await api.gql(nested, scopes="users:read")
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()
    token = await api.token("users:read")
    async with serve(settings, max_depth=2) as c:
        deep = "{ users { edges { node { id } } } }"
        body = (
            await c.post(
                "/graphql", json={"query": deep}, headers={"Authorization": f"Bearer {token}"}
            )
        ).json()
        assert body["data"] is None
        assert "exceeds maximum operation depth" in body["errors"][0]["message"]
        shallow = "{ users { nodes { id } } }"
        body = (
            await c.post(
                "/graphql", json={"query": shallow}, headers={"Authorization": f"Bearer {token}"}
            )
        ).json()
        assert "errors" not in body
    await still_up(api)


async def test_query_cost_counts_first_multipliers(api: Api, settings: Settings) -> None:
    async with serve(settings, max_cost=500) as c:
        token = await api.token("users:read")
        headers = {"Authorization": f"Bearer {token}"}
        ok = await c.post(
            "/graphql",
            json={"query": "{ users(first: 10) { nodes { id email tags } } }"},
            headers=headers,
        )
        assert "errors" not in ok.json()
        big = await c.post(
            "/graphql",
            json={
                "query": "query($n: Int!) { users(first: $n) { nodes { id email tags createdAt externalId } } }",
                "variables": {"n": 100},
            },
            headers=headers,
        )
        body = big.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert body["errors"][0]["extensions"]["cost"] == 1 + 100 * (1 + 5)


async def test_prod_hardening(api: Api, settings: Settings) -> None:
    async with serve(
        settings,
        env="prod",
        signing_keys=_dev_secret(settings, "signing"),
        encryption_keys=_dev_secret(settings, "encryption"),
        lookup_key=_dev_secret(settings, "lookup"),
    ) as c:
        user_token = await api.token("users:read")
        admin_token = await api.token("clients:manage")
        ide = await c.get("/graphql", headers={"accept": "text/html"})
        assert ide.status_code != 200 or "graphiql" not in ide.text.lower()
        introspect = {"query": "{ __schema { queryType { name } } }"}
        denied = (
            await c.post(
                "/graphql", json=introspect, headers={"Authorization": f"Bearer {user_token}"}
            )
        ).json()
        assert denied["data"] is None and "introspection" in denied["errors"][0]["message"].lower()
        allowed = (
            await c.post(
                "/graphql", json=introspect, headers={"Authorization": f"Bearer {admin_token}"}
            )
        ).json()
        assert allowed["data"]["__schema"]["queryType"]["name"] == "Query"
        typo = (
            await c.post(
                "/graphql",
                json={"query": "{ usrs { totalCount } }"},
                headers={"Authorization": f"Bearer {user_token}"},
            )
        ).json()
        assert "Did you mean" not in typo["errors"][0]["message"]
    typo_dev = await api.gql("{ usrs { totalCount } }", scopes="users:read")
    assert "Did you mean" in typo_dev["errors"][0]["message"]


async def test_unexpected_errors_are_masked_in_prod(
    api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain.users import repository

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("db password is hunter2")

    monkeypatch.setattr(repository, "page", broken)
    token = await api.token("users:read")
    async with serve(
        settings,
        env="prod",
        signing_keys=_dev_secret(settings, "signing"),
        encryption_keys=_dev_secret(settings, "encryption"),
        lookup_key=_dev_secret(settings, "lookup"),
    ) as c:
        body = (
            await c.post(
                "/graphql",
                json={"query": "{ users { totalCount } }"},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
        assert "hunter2" not in json.dumps(body)
        assert body["errors"][0]["message"] == "Unexpected error."
        still = (
            await c.post(
                "/graphql",
                json={"query": '{ user(externalId: "a") { id } }'},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
        assert still == {"data": {"user": None}}


def _dev_secret(settings: Settings, which: str) -> str:
    data = json.loads((settings.var_dir / "keys.json").read_text())
    if which == "signing":
        return json.dumps(data["signing_keys"])
    return str(data["encryption_keys" if which == "encryption" else "lookup_key"])


def test_prod_refuses_to_start_without_secrets(settings: Settings) -> None:
    from domain.keys import build_keys

    with pytest.raises(ConfigurationError) as exc:
        build_keys(settings.model_copy(update={"env": "prod"}))
    message = str(exc.value)
    for name in ("PRECIS_SIGNING_KEYS", "PRECIS_ENCRYPTION_KEYS", "PRECIS_LOOKUP_KEY"):
        assert name in message


async def test_health_and_readiness(api: Api, settings: Settings, redis_url: str) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    # recommendations: reported, never failing the probe (tests/recommend/test_serving_api.py)
    assert checks.pop("recommendations").startswith(("ok", "degraded"))
    assert ready.json()["status"] == "ok" and checks == {"database": "ok"}
    async with serve(settings, redis_url=redis_url) as c:
        ready = await c.get("/readyz")
        checks = ready.json()["checks"]
        checks.pop("recommendations")
        assert ready.json()["status"] == "ok" and checks == {"database": "ok", "redis": "ok"}
    async with serve(settings, redis_url="redis://127.0.0.1:1/0") as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"].startswith("error")


async def test_unknown_routes_and_methods(api: Api) -> None:
    assert (await api.client.get("/nope")).status_code == 404
    assert (await api.client.put("/graphql", json={})).status_code == 405
    assert (await api.client.get("/oauth/token")).status_code == 405


async def test_only_unexpected_errors_are_logged(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from domain.users import repository

    await api.gql("{ users { totalCount } }")  # UNAUTHENTICATED: the client's problem, not logged
    await api.gql("{ users(first: 500) { totalCount } }", scopes="users:read")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(repository, "page", broken)
    body = await api.gql("{ users { totalCount } }", scopes="users:read")
    assert body["errors"][0]["message"] == "boom"  # dev shows it; prod masks it (tested above)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and "boom" in str(errors[0].exc_info[1])
