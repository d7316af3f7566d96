"""``me`` and ``me { setConsents }``: a shopper token reads and changes its own customer only."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select, text

from domain.audit.models import AuditEntry
from tests.conftest import Api, count_rows, error_codes
from tests.me.helpers import delegate_client, exchange, make_customers, shopper_token, user_id

ME = """{ me { scopes expiresAt user { id externalId email phone firstName
  consents { current { purpose granted source policyVersion } } } } }"""
SET = """
mutation($consents: [ConsentInput!]!) {
  me { setConsents(input: {consents: $consents}) {
    consents { purpose granted source policyVersion recordedByClientId }
    state { granted(purpose: ANALYTICS) }
    errors { code field message index }
  } }
}"""
GRANT = [
    {"purpose": "ANALYTICS", "granted": True, "source": "app_settings", "policyVersion": "v3"},
    {"purpose": "EMAIL", "granted": False, "source": "app_settings", "policyVersion": "v3"},
]


async def audit_rows(api: Api, action: str) -> list[AuditEntry]:
    async with api.db.read_only() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action)  # type: ignore[arg-type]
        )
        return list(rows)


async def test_me_is_the_tokens_own_customer_unmasked_and_audited(api: Api) -> None:
    pks = await make_customers(api, "alice", "bob")
    client_id, secret = await delegate_client(api)
    response = await exchange(api.client, (client_id, secret), "alice")
    token = response.json()["access_token"]
    body = await api.gql(ME, token=token)
    assert "errors" not in body, body
    me = body["data"]["me"]
    assert me["scopes"] == ["events:write", "me:read", "me:write", "recommendations:read"]
    assert me["expiresAt"].endswith("+00:00")
    user = me["user"]
    assert user["id"] == user_id(pks["alice"])
    assert user["externalId"] == "alice"
    assert user["email"] == "alice@example.com"  # its own: unmasked without users:pii
    assert user["phone"] == "+4915112345000"
    assert {c["purpose"] for c in user["consents"]["current"]} >= {"ANALYTICS", "EMAIL"}
    [read] = await audit_rows(api, "pii.read")
    assert read.client_id == client_id
    assert read.subject == user_id(pks["alice"])
    assert read.resource_id == str(pks["alice"])
    assert read.fields == ["email", "phone"]


async def test_me_needs_a_shopper_token_with_me_read(api: Api, settings) -> None:  # type: ignore[no-untyped-def]
    from domain.keys import build_keys

    pks = await make_customers(api, "alice")
    # server tokens, however privileged, have no `me`
    for scopes in ("users:read users:pii", "clients:manage shoppers:delegate"):
        body = await api.gql(ME, scopes=scopes)
        assert error_codes(body) == ["FORBIDDEN"], body
        assert body["data"] == {"me": None}
    # a shopper token without me:read
    narrow = await shopper_token(api, "alice", scope="events:write")
    body = await api.gql(ME, token=narrow)
    assert error_codes(body) == ["FORBIDDEN"]
    # a token carrying me:read but bound to no customer (no such token is ever issued: signed
    # here with the real key to show the resolver does not rely on that)
    keys = build_keys(settings)
    real = keys.signing.get_by_kid(keys.signing_kid)
    assert isinstance(real, RSAKey)
    now = int(time.time())
    claims = {
        "iss": "http://127.0.0.1:8000",
        "aud": "precis",
        "sub": user_id(pks["alice"]),
        "client_id": "pc_x",
        "scope": "me:read me:write",
        "jti": "n" * 22,
        "iat": now,
        "exp": now + 600,
    }
    unbound = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": keys.signing_kid}, claims, real)
    body = await api.gql(ME, token=unbound)
    assert error_codes(body) == ["FORBIDDEN"]
    body = await api.gql(SET, {"consents": GRANT}, token=unbound)
    assert error_codes(body) == ["FORBIDDEN"]
    assert await count_rows(api.db, "consent") == 0
    # no token at all
    assert error_codes(await api.gql(ME)) == ["UNAUTHENTICATED"]


async def test_me_set_consents_writes_own_history_only(api: Api) -> None:
    pks = await make_customers(api, "alice", "bob")
    client_id, secret = await delegate_client(api)
    token = (await exchange(api.client, (client_id, secret), "alice")).json()["access_token"]
    body = await api.gql(SET, {"consents": GRANT}, token=token)
    assert "errors" not in body, body
    payload = body["data"]["me"]["setConsents"]
    assert payload["errors"] == []
    assert [c["purpose"] for c in payload["consents"]] == ["ANALYTICS", "EMAIL"]
    assert payload["consents"][0]["recordedByClientId"] == client_id
    assert payload["state"] == {"granted": True}
    async with api.db.read_only() as session:
        owners = list(await session.scalars(text("SELECT DISTINCT customer_id FROM consent")))
    assert owners == [pks["alice"]]
    [entry] = await audit_rows(api, "consents.set")
    assert entry.resource_id == str(pks["alice"])
    assert entry.subject == user_id(pks["alice"])

    # shown on the shopper's own User
    me = (await api.gql(ME, token=token))["data"]["me"]["user"]["consents"]["current"]
    state = {c["purpose"]: c["granted"] for c in me}
    assert state["ANALYTICS"] is True and state["EMAIL"] is False

    # invalid input: typed errors, nothing written (the shared consent validation)
    dup = [GRANT[0], {**GRANT[0], "granted": False}]
    payload = (await api.gql(SET, {"consents": dup}, token=token))["data"]["me"]["setConsents"]
    assert [e["code"] for e in payload["errors"]] == ["DUPLICATE"]
    assert payload["consents"] == [] and payload["state"] is None
    assert await count_rows(api.db, "consent") == 2

    # me:write is needed
    reader = await shopper_token(api, "alice", scope="me:read")
    body = await api.gql(SET, {"consents": GRANT}, token=reader)
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None
    # and no server client reaches Mutation.me, not even with users:write
    body = await api.gql(SET, {"consents": GRANT}, scopes="users:write users:read")
    assert error_codes(body) == ["FORBIDDEN"]
    assert await count_rows(api.db, "consent") == 2


async def test_erased_while_the_token_lives(api: Api) -> None:
    pks = await make_customers(api, "alice", "bob")
    token = await shopper_token(api, "alice")
    assert (await api.gql(ME, token=token))["data"]["me"]["user"]["externalId"] == "alice"
    async with api.db.unit_of_work() as session:  # what eraseUser does to the customer row
        await session.execute(text("DELETE FROM customer WHERE id = :id"), {"id": pks["alice"]})
    audits = await count_rows(api.db, "audit_entry")

    body = await api.gql(ME, token=token)
    assert body == {"data": {"me": None}}
    payload = (await api.gql(SET, {"consents": GRANT}, token=token))["data"]["me"]["setConsents"]
    assert [e["code"] for e in payload["errors"]] == ["NOT_FOUND"]
    assert await count_rows(api.db, "consent") == 0
    assert await count_rows(api.db, "customer") == 1
    assert await count_rows(api.db, "audit_entry") == audits
    # and no new token can be minted for the erased shopper
    response = await exchange(api.client, await delegate_client(api), "alice")
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("what", ["trackEvents", "identify"])
async def test_erased_shoppers_token_writes_nothing(api: Api, what: str) -> None:
    pks = await make_customers(api, "alice")
    token = await shopper_token(api, "alice")
    async with api.db.unit_of_work() as session:  # what eraseUser does to the customer row
        await session.execute(text("DELETE FROM customer WHERE id = :id"), {"id": pks["alice"]})
    before = {t: await count_rows(api.db, t) for t in ("event", "identity_link", "customer")}
    if what == "trackEvents":
        body = await api.gql(
            """mutation { trackEvents(input: {events: [{clientEventId: "e-1", type: "custom:x"}]})
            { accepted errors { code } } }""",
            token=token,
        )
        assert error_codes(body) == [], body
        assert body["data"]["trackEvents"]["accepted"] == 0, body
        assert body["data"]["trackEvents"]["errors"], body
    else:
        body = await api.gql(
            'mutation { identify(input: {anonymousId: "anon-1"}) { user { id } errors { code } } }',
            token=token,
        )
        assert error_codes(body) == [], body
        assert body["data"]["identify"]["user"] is None, body
        assert body["data"]["identify"]["errors"], body
    assert {t: await count_rows(api.db, t) for t in before} == before
