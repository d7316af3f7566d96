"""NUL characters, which PostgreSQL text and JSONB cannot hold: any GraphQL request carrying one (in
a variable, nested JSON, or a string literal) is BAD_USER_INPUT before anything runs, and the
services refuse them too (for callers outside GraphQL). Nothing changes either way."""

from __future__ import annotations

from typing import Any

from domain.audit.service import Actor
from domain.consents import service as consents
from domain.errors import DomainError
from domain.privacy import service as privacy
from tests.conftest import Api, count_rows, error_codes
from tests.privacy.helpers import make_customers

NUL = "a\x00b"
TABLES = (
    "consent",
    "privacy_request",
    "data_export",
    "customer",
    "event",
    "product",
    "audit_entry",
)
# (document, variables, scopes): privacy and consent fields, and fields of other areas
VARIABLES: list[tuple[str, dict[str, Any], str]] = [
    (
        'mutation($v: String!) { setConsents(input: {userExternalId: "c-1", consents: '
        '[{purpose: EMAIL, granted: true, source: $v, policyVersion: "1"}]}) { errors { code } } }',
        {"v": NUL},
        "users:write",
    ),
    (
        "mutation($v: String!) { createPrivacyRequest(input: {type: ACCESS, "
        'userExternalId: "c-1", details: $v}) { errors { code } } }',
        {"v": NUL},
        "privacy:manage",
    ),
    (
        "mutation($v: String!) { eraseUser(input: {userExternalId: $v}) { errors { code } } }",
        {"v": NUL},
        "privacy:manage",
    ),
    (
        "query($v: String!) { auditLog(filter: {action: $v}) { totalCount } }",
        {"v": NUL},
        "audit:read",
    ),
    ("query($v: ID!) { dataExport(id: $v) { id } }", {"v": NUL}, "privacy:manage"),
    ("query($v: String!) { user(externalId: $v) { id } }", {"v": NUL}, "users:read"),
    ("query($v: String!) { users(filter: {tag: $v}) { nodes { id } } }", {"v": NUL}, "users:read"),
    (
        'mutation($v: JSON) { upsertUsers(input: {users: [{externalId: "c-1", attributes: $v}]}) '
        "{ errors { code } } }",
        {"v": {"nested": [NUL]}},
        "users:write",
    ),
    (
        'mutation($v: JSON) { upsertUsers(input: {users: [{externalId: "c-1", attributes: $v}]}) '
        "{ errors { code } } }",
        {"v": {NUL: 1}},
        "users:write",
    ),
    (
        "mutation($v: String!) { trackEvents(input: {events: [{clientEventId: $v, "
        'type: "search", userExternalId: "c-1", query: "x"}]}) { errors { code } } }',
        {"v": NUL},
        "events:write",
    ),
    (
        'mutation($v: String!) { upsertProducts(input: {products: [{externalId: "p-1", '
        'title: $v, price: "1.00", currency: "EUR"}]}) { errors { code } } }',
        {"v": NUL},
        "catalog:write",
    ),
]
LITERALS = [
    ('{ user(externalId: "a\\u0000b") { id } }', "users:read"),
    ('{ auditLog(filter: {action: "\\u0000"}) { totalCount } }', "audit:read"),
    (
        'mutation { createPrivacyRequest(input: {type: ACCESS, userExternalId: "c-1", '
        'details: "x\\u0000"}) { errors { code } } }',
        "privacy:manage",
    ),
]


async def test_nul_characters_are_refused_before_anything_runs(api: Api) -> None:
    await make_customers(api, "c-1")
    tokens = {s: await api.token(s) for s in {s for *_, s in VARIABLES + LITERALS}}
    before = {t: await count_rows(api.db, t) for t in TABLES}
    for document, variables, scopes in VARIABLES:
        body = await api.gql(document, variables, token=tokens[scopes])
        assert error_codes(body) == ["BAD_USER_INPUT"], (document, body)
        assert body.get("data") is None
    for document, scopes in LITERALS:
        body = await api.gql(document, token=tokens[scopes])
        assert error_codes(body) == ["BAD_USER_INPUT"], (document, body)
    # the text "\u0000" (a backslash, not a NUL) is fine, and so is an escape of another character
    text = await api.gql(
        "query($v: String!) { user(externalId: $v) { id } }",
        {"v": "\\u0000"},
        token=tokens["users:read"],
    )
    assert text == {"data": {"user": None}}
    fine = await api.gql(
        '{ user(externalId: "c\\u002D1") { externalId } }', token=tokens["users:read"]
    )
    assert fine == {"data": {"user": {"externalId": "c-1"}}}
    download = await api.client.get(
        "/privacy/exports/a%00b", headers={"Authorization": f"Bearer {tokens['privacy:manage']}"}
    )
    assert download.status_code == 404
    assert {t: await count_rows(api.db, t) for t in TABLES} == before


async def test_services_refuse_nul_characters(api: Api) -> None:
    await make_customers(api, "c-1")
    actor = Actor(client_id="t", subject="t")
    item = {"purpose": "email", "granted": True, "source": NUL, "policy_version": NUL}
    async with api.db.unit_of_work() as session:
        for call in (
            consents.set_consents(session, actor, 1, [item]),
            privacy.create_request(
                session, actor, type="access", customer_id=1, details=NUL, due_days=30
            ),
        ):
            try:
                await call
            except DomainError as exc:
                assert {e.code for e in exc.errors} == {"INVALID"}
            else:
                raise AssertionError("a NUL character was accepted")
        made = await privacy.create_request(
            session, actor, type="access", customer_id=1, due_days=30
        )
        try:
            await privacy.update_request(
                session, actor, made.id or 0, status="rejected", resolution=NUL
            )
        except DomainError as exc:
            assert [e.code for e in exc.errors] == ["INVALID"]
        else:
            raise AssertionError("a NUL character was accepted")
    assert await count_rows(api.db, "consent") == 0
