"""OAuth 2.0 endpoints: token (client_credentials), metadata, JWKS, introspection, revocation."""

from __future__ import annotations

import base64
import json
import time

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.conftest import Api, count_rows, error_codes

ME = "{ users(first: 1) { totalCount } }"


async def test_client_credentials_issues_rfc9068_token(api: Api) -> None:
    client_id, secret = await api.new_client("users:read catalog:read")
    response = await api.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "users:read"},
        auth=(client_id, secret),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "users:read"
    assert body["expires_in"] == 900
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert header["kid"] in [k["kid"] for k in jwks["keys"]]
    assert all("d" not in k for k in jwks["keys"])  # no private parts published
    claims = jwt.decode(body["access_token"], KeySet.import_key_set(jwks)).claims
    assert claims["iss"] == "http://127.0.0.1:8000"
    assert claims["aud"] == "precis"
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    assert claims["scope"] == "users:read"
    assert claims["exp"] - claims["iat"] == 900
    assert len(claims["jti"]) >= 16


async def test_token_with_post_auth_and_default_scope(api: Api) -> None:
    client_id, secret = await api.new_client("users:read catalog:read")
    response = await api.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "catalog:read users:read"


async def test_token_denials(api: Api) -> None:
    client_id, secret = await api.new_client("users:read")
    cases = [
        ({"grant_type": "client_credentials"}, (client_id, "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("pc_nope", secret), 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "scope": "users:write"},
            (client_id, secret),
            400,
            "invalid_scope",
        ),
        ({"grant_type": "password"}, (client_id, secret), 400, "unsupported_grant_type"),
    ]
    for data, auth, status, error in cases:
        response = await api.client.post("/oauth/token", data=data, auth=auth)
        assert response.status_code == status, (data, response.text)
        assert response.json()["error"] == error
    # wrong content type and oversized body
    response = await api.client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    response = await api.client.post(
        "/oauth/token",
        content=b"a=" + b"x" * 20_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert await count_rows(api.db, "revoked_token") == 0


async def test_metadata(api: Api) -> None:
    meta = (await api.client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == "http://127.0.0.1:8000"
    assert meta["token_endpoint"] == "http://127.0.0.1:8000/oauth/token"
    assert meta["jwks_uri"] == "http://127.0.0.1:8000/.well-known/jwks.json"
    assert meta["introspection_endpoint"].endswith("/oauth/introspect")
    assert meta["revocation_endpoint"].endswith("/oauth/revoke")
    assert "users:pii" in meta["scopes_supported"]
    assert "me:read" not in meta["scopes_supported"]


async def test_introspection_and_revocation(api: Api) -> None:
    client_id, secret = await api.new_client("users:read")
    token = (
        await api.client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
    ).json()["access_token"]
    info = (
        await api.client.post("/oauth/introspect", data={"token": token}, auth=(client_id, secret))
    ).json()
    assert info["active"] is True
    assert info["client_id"] == client_id
    assert info["scope"] == "users:read"
    assert (await api.gql(ME, token=token))["data"]["users"]["totalCount"] == 0

    # another client may neither introspect nor revoke it
    other_id, other_secret = await api.new_client("catalog:read")
    response = await api.client.post(
        "/oauth/revoke", data={"token": token}, auth=(other_id, other_secret)
    )
    assert response.status_code == 400
    assert await count_rows(api.db, "revoked_token") == 0
    assert (await api.gql(ME, token=token))["data"]["users"]["totalCount"] == 0

    response = await api.client.post(
        "/oauth/revoke", data={"token": token}, auth=(client_id, secret)
    )
    assert response.status_code == 200
    assert await count_rows(api.db, "revoked_token") == 1
    body = await api.gql(ME, token=token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["data"] is None
    info = (
        await api.client.post("/oauth/introspect", data={"token": token}, auth=(client_id, secret))
    ).json()
    assert info == {"active": False}
    # revoking twice is fine (RFC 7009), and garbage tokens are ignored
    assert (
        await api.client.post("/oauth/revoke", data={"token": token}, auth=(client_id, secret))
    ).status_code == 200
    assert (
        await api.client.post("/oauth/revoke", data={"token": "nope"}, auth=(client_id, secret))
    ).status_code == 200
    assert await count_rows(api.db, "revoked_token") == 1


async def test_disabled_client_is_rejected_at_once(api: Api) -> None:
    from domain.auth import service

    client_id, secret = await api.new_client("users:read")
    token = (
        await api.client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
    ).json()["access_token"]
    assert "errors" not in await api.gql(ME, token=token)
    async with api.db.unit_of_work() as session:  # as `precis clients disable` does, out of band
        await service.disable_client(session, client_id)
    assert error_codes(await api.gql(ME, token=token)) == ["UNAUTHENTICATED"]
    response = await api.client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 401


def _forge(claims: dict, header: dict, key: RSAKey | None = None) -> str:
    if header.get("alg") == "none":
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
        return f"{enc(header)}.{enc(claims)}."
    return jwt.encode(header, claims, key or RSAKey.generate_key(2048))


async def test_forged_expired_and_malformed_tokens(api: Api, settings) -> None:  # type: ignore[no-untyped-def]
    from domain.keys import build_keys

    keys = build_keys(settings)
    real = keys.signing.get_by_kid(keys.signing_kid)
    assert isinstance(real, RSAKey)
    now = int(time.time())
    good = {
        "iss": "http://127.0.0.1:8000",
        "aud": "precis",
        "sub": "x",
        "client_id": "x",
        "scope": "users:read",
        "jti": "j" * 20,
        "iat": now,
        "exp": now + 600,
    }
    kid = keys.signing_kid
    tokens = {
        "foreign key": _forge(good, {"alg": "RS256", "typ": "at+jwt", "kid": kid}),
        "alg none": _forge(good, {"alg": "none", "typ": "at+jwt"}),
        "no typ": _forge(good, {"alg": "RS256", "kid": kid}, real),
        "wrong typ": _forge(good, {"alg": "RS256", "typ": "JWT", "kid": kid}, real),
        "expired": _forge(
            {**good, "exp": now - 10, "iat": now - 700},
            {"alg": "RS256", "typ": "at+jwt", "kid": kid},
            real,
        ),
        "wrong aud": _forge(
            {**good, "aud": "other"}, {"alg": "RS256", "typ": "at+jwt", "kid": kid}, real
        ),
        "wrong iss": _forge(
            {**good, "iss": "https://evil"}, {"alg": "RS256", "typ": "at+jwt", "kid": kid}, real
        ),
        "no jti": _forge(
            {k: v for k, v in good.items() if k != "jti"},
            {"alg": "RS256", "typ": "at+jwt", "kid": kid},
            real,
        ),
        "garbage": "not.a.jwt",
        "huge": "a" * 10_000,
    }
    control = _forge(good, {"alg": "RS256", "typ": "at+jwt", "kid": kid}, real)
    assert "errors" not in await api.gql(ME, token=control)
    for name, token in tokens.items():
        body = await api.gql(ME, token=token)
        assert error_codes(body) == ["UNAUTHENTICATED"], name
        assert body["data"] is None, name
    response = await api.client.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Basic abc"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
