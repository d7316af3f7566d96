"""Token exchange (RFC 8693) at /oauth/token: shopper tokens, their claims, lifetimes, audit, and
every denial (with nothing recorded)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select, text

from domain.audit.models import AuditEntry
from tests.conftest import Api, count_rows, error_codes, serve
from tests.me.helpers import (
    ACCESS_TOKEN,
    EXTERNAL_ID,
    SHOPPER_SCOPES,
    TOKEN_EXCHANGE,
    USER_ID,
    delegate_client,
    exchange,
    make_customers,
    shopper_token,
    user_id,
)

ME = "{ me { user { id externalId email } } }"


async def claims_of(api: Api, token: str) -> dict[str, Any]:
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    return dict(jwt.decode(token, KeySet.import_key_set(jwks)).claims)


async def exchange_audits(api: Api) -> list[AuditEntry]:
    async with api.db.read_only() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "token.exchange")  # type: ignore[arg-type]
        )
        return list(rows)


async def test_exchange_mints_a_shopper_token(api: Api) -> None:
    pks = await make_customers(api, "alice", "bob")
    client_id, secret = await delegate_client(api)
    response = await exchange(api.client, (client_id, secret), "alice")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["scope"] == SHOPPER_SCOPES
    assert body["expires_in"] == 900
    assert "refresh_token" not in body
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header == {**header, "typ": "at+jwt", "alg": "RS256"}
    claims = await claims_of(api, body["access_token"])
    assert claims["sub"] == user_id(pks["alice"])
    assert claims["customer_id"] == pks["alice"]
    assert claims["client_id"] == client_id
    assert claims["act"] == {"sub": client_id}
    assert claims["scope"] == SHOPPER_SCOPES
    assert claims["aud"] == "precis"
    assert claims["iss"] == "http://127.0.0.1:8000"
    assert claims["exp"] - claims["iat"] == 900

    # the token works for its own customer
    me = await api.gql(ME, token=body["access_token"])
    assert me["data"]["me"]["user"] == {
        "id": user_id(pks["alice"]),
        "externalId": "alice",
        "email": "alice@example.com",
    }

    # audited: client, customer number, scopes and token id; no PII
    [entry] = await exchange_audits(api)
    assert entry.client_id == client_id
    assert entry.resource_type == "User"
    assert entry.resource_id == str(pks["alice"])
    assert entry.details == {"scope": SHOPPER_SCOPES, "jti": claims["jti"], "expires_in": 900}
    assert "alice" not in json.dumps(entry.details)


async def test_exchange_by_global_user_id_with_post_auth_and_fewer_scopes(api: Api) -> None:
    pks = await make_customers(api, "alice")
    client_id, secret = await delegate_client(api, "shoppers:delegate users:read")
    response = await api.client.post(
        "/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "client_id": client_id,
            "client_secret": secret,
            "subject_token": user_id(pks["alice"]),
            "subject_token_type": USER_ID,
            "scope": "me:read me:read events:write",
            "requested_token_type": ACCESS_TOKEN,
            "audience": "precis",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "events:write me:read"
    claims = await claims_of(api, response.json()["access_token"])
    # the delegate's own scopes (users:read) are not inherited by the shopper
    assert claims["scope"] == "events:write me:read"
    assert claims["customer_id"] == pks["alice"]


async def test_lifetime_setting_and_cap(api: Api, settings) -> None:  # type: ignore[no-untyped-def]
    await make_customers(api, "alice")
    auth = await delegate_client(api)
    for changes, expected in [
        ({"shopper_token_ttl": 300}, 300),
        ({"shopper_token_ttl": 3600, "access_token_ttl": 1200}, 1200),  # capped
    ]:
        async with serve(settings, **changes) as client:
            response = await exchange(client, auth, "alice")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["expires_in"] == expected
        claims = await claims_of(api, body["access_token"])
        assert claims["exp"] - claims["iat"] == expected


async def test_denials_change_nothing(api: Api) -> None:
    pks = await make_customers(api, "alice", "gone")
    good = await delegate_client(api)
    no_scope = await delegate_client(api, "events:write users:read")
    no_grant = await delegate_client(api, "shoppers:delegate", exchange=False)
    shopper = await shopper_token(api, "alice")
    audits_before = await count_rows(api.db, "audit_entry")
    async with api.db.unit_of_work() as session:  # as eraseUser does: the row is deleted
        await session.execute(text("DELETE FROM customer WHERE id = :id"), {"id": pks["gone"]})

    cases: list[tuple[str, tuple[str, str], dict[str, str], int, str]] = [
        ("no shoppers:delegate", no_scope, {}, 400, "unauthorized_client"),
        ("grant type not allowed", no_grant, {}, 400, "unauthorized_client"),
        ("wrong secret", (good[0], "wrong"), {}, 401, "invalid_client"),
        ("unknown client", ("pc_nope", good[1]), {}, 401, "invalid_client"),
        ("unknown customer", good, {"subject_token": "nobody"}, 400, "invalid_grant"),
        ("erased customer", good, {"subject_token": "gone"}, 400, "invalid_grant"),
        (
            "unknown user id",
            good,
            {"subject_token": user_id(999_999), "subject_token_type": USER_ID},
            400,
            "invalid_grant",
        ),
        (
            "malformed user id",
            good,
            {"subject_token": "%%%", "subject_token_type": USER_ID},
            400,
            "invalid_grant",
        ),
        (
            "product id as user id",
            good,
            {"subject_token": base64.urlsafe_b64encode(b"Product:1").decode().rstrip("=")}
            | {"subject_token_type": USER_ID},
            400,
            "invalid_grant",
        ),
        ("escalation to users:read", good, {"scope": "me:read users:read"}, 400, "invalid_scope"),
        ("admin scope", good, {"scope": "clients:manage"}, 400, "invalid_scope"),
        ("delegate scope", good, {"scope": "shoppers:delegate"}, 400, "invalid_scope"),
        ("made-up scope", good, {"scope": "me:everything"}, 400, "invalid_scope"),
        ("missing subject_token", good, {"subject_token": ""}, 400, "invalid_request"),
        ("missing subject_token_type", good, {"subject_token_type": ""}, 400, "invalid_request"),
        ("unknown subject_token_type", good, {"subject_token_type": "x"}, 400, "invalid_request"),
        (
            "a shopper token exchanged again",
            good,
            {"subject_token": shopper, "subject_token_type": ACCESS_TOKEN},
            400,
            "invalid_request",
        ),
        (
            "a shopper token as a customer id",
            good,
            {"subject_token": shopper},
            400,
            "invalid_grant",
        ),
        (
            "actor token",
            good,
            {"actor_token": shopper, "actor_token_type": ACCESS_TOKEN},
            400,
            "invalid_request",
        ),
        (
            "refresh token requested",
            good,
            {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
            400,
            "invalid_request",
        ),
        ("other audience", good, {"audience": "elsewhere"}, 400, "invalid_target"),
        ("resource", good, {"resource": "https://elsewhere/api"}, 400, "invalid_target"),
    ]
    for name, auth, extra, status, error in cases:
        data = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": "alice",
            "subject_token_type": EXTERNAL_ID,
            **extra,
        }
        response = await api.client.post("/oauth/token", data=data, auth=auth)
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"] == error, (name, response.text)
        assert "access_token" not in response.json()

    # NUL characters (PostgreSQL text cannot hold them) in a parameter or in the client id
    response = await exchange(api.client, good, "ali\x00ce")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    response = await exchange(api.client, (good[0] + "\x00", good[1]), "alice")
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")

    # the token endpoint does not take a shopper token as credentials, for any grant
    for grant in ("client_credentials", TOKEN_EXCHANGE):
        response = await api.client.post(
            "/oauth/token",
            data={"grant_type": grant, "subject_token": "alice", "subject_token_type": EXTERNAL_ID},
            headers={"Authorization": f"Bearer {shopper}"},
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
    # a client of the delegate's own may still use client credentials as before
    response = await api.client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=good
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "shoppers:delegate"
    # nor do introspection and revocation
    for endpoint in ("/oauth/introspect", "/oauth/revoke"):
        response = await api.client.post(
            endpoint, data={"token": shopper}, headers={"Authorization": f"Bearer {shopper}"}
        )
        assert response.status_code == 401, (endpoint, response.text)
    assert await count_rows(api.db, "revoked_token") == 0
    assert await count_rows(api.db, "audit_entry") == audits_before
    assert len(await exchange_audits(api)) == 1  # only the one shopper_token() made


async def test_metadata_lists_token_exchange(api: Api) -> None:
    meta = (await api.client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["grant_types_supported"] == ["client_credentials", TOKEN_EXCHANGE]
    assert "me:read" not in meta["scopes_supported"]


async def test_introspection_and_revocation_of_shopper_tokens(api: Api) -> None:
    pks = await make_customers(api, "alice")
    client_id, secret = await delegate_client(api)
    token = (await exchange(api.client, (client_id, secret), "alice")).json()["access_token"]
    info = (
        await api.client.post("/oauth/introspect", data={"token": token}, auth=(client_id, secret))
    ).json()
    assert info["active"] is True
    assert info["client_id"] == client_id
    assert info["sub"] == user_id(pks["alice"])
    assert info["act"] == {"sub": client_id}
    assert info["customer_id"] == pks["alice"]
    assert info["scope"] == SHOPPER_SCOPES

    # another client can neither see nor revoke it
    other = await delegate_client(api)
    assert (
        await api.client.post("/oauth/introspect", data={"token": token}, auth=other)
    ).json() == {"active": False}
    assert (
        await api.client.post("/oauth/revoke", data={"token": token}, auth=other)
    ).status_code == 400
    assert "errors" not in await api.gql(ME, token=token)

    response = await api.client.post(
        "/oauth/revoke", data={"token": token}, auth=(client_id, secret)
    )
    assert response.status_code == 200
    assert await count_rows(api.db, "revoked_token") == 1
    body = await api.gql(ME, token=token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert (body["data"] or {}).get("me") is None
    assert (
        await api.client.post("/oauth/introspect", data={"token": token}, auth=(client_id, secret))
    ).json() == {"active": False}


async def test_disabled_delegate_takes_its_shopper_tokens_with_it(api: Api) -> None:
    from domain.auth import service

    await make_customers(api, "alice")
    client_id, secret = await delegate_client(api)
    token = (await exchange(api.client, (client_id, secret), "alice")).json()["access_token"]
    assert "errors" not in await api.gql(ME, token=token)
    async with api.db.unit_of_work() as session:
        await service.disable_client(session, client_id)
    assert error_codes(await api.gql(ME, token=token)) == ["UNAUTHENTICATED"]
    response = await exchange(api.client, (client_id, secret), "alice")
    assert response.status_code == 401


async def test_expired_and_forged_shopper_tokens_are_refused(api: Api, settings) -> None:  # type: ignore[no-untyped-def]
    from domain.keys import build_keys

    pks = await make_customers(api, "alice")
    keys = build_keys(settings)
    real = keys.signing.get_by_kid(keys.signing_kid)
    assert isinstance(real, RSAKey)
    now = int(time.time())
    claims = {
        "iss": "http://127.0.0.1:8000",
        "aud": "precis",
        "sub": user_id(pks["alice"]),
        "client_id": "pc_x",
        "customer_id": pks["alice"],
        "act": {"sub": "pc_x"},
        "scope": SHOPPER_SCOPES,
        "jti": "s" * 22,
        "iat": now - 1000,
        "exp": now - 100,
    }
    header = {"alg": "RS256", "typ": "at+jwt", "kid": keys.signing_kid}
    expired = jwt.encode(header, claims, real)
    forged = jwt.encode(header, {**claims, "exp": now + 600}, RSAKey.generate_key(2048))
    for token in (expired, forged):
        body = await api.gql(ME, token=token)
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert (body["data"] or {}).get("me") is None


async def test_cli_creates_a_delegate_client(precis) -> None:  # type: ignore[no-untyped-def]
    made = precis(
        "clients", "create", "--name", "shop", "--scopes", "shoppers:delegate", "--token-exchange"
    )
    assert made.returncode == 0, made.stderr
    listed = precis("clients", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert TOKEN_EXCHANGE in listed.stdout
