"""NUL characters (which PostgreSQL text cannot hold) in every privacy, consent and audit input are
clear errors, never a database failure, and change nothing."""

from __future__ import annotations

from tests.conftest import Api, count_rows, error_codes
from tests.privacy.helpers import make_customers

NUL = "a\x00b"
TYPED = [
    (
        'mutation($v: String!) { setConsents(input: {userExternalId: "c-1", consents: '
        "[{purpose: EMAIL, granted: true, source: $v, policyVersion: $v}]}) "
        "{ errors { code field } } }",
        "users:write",
        "setConsents",
        ["INVALID", "INVALID"],
    ),
    (
        "mutation($v: String!) { setConsents(input: {userExternalId: $v, consents: "
        '[{purpose: EMAIL, granted: true, source: "x", policyVersion: "1"}]}) '
        "{ errors { code field } } }",
        "users:write",
        "setConsents",
        ["NOT_FOUND"],
    ),
    (
        "mutation($v: String!) { createPrivacyRequest(input: {type: ACCESS, "
        'userExternalId: "c-1", details: $v}) { errors { code field } } }',
        "privacy:manage",
        "createPrivacyRequest",
        ["INVALID"],
    ),
    (
        "mutation($v: String!) { createPrivacyRequest(input: {type: ACCESS, "
        "userExternalId: $v}) { errors { code field } } }",
        "privacy:manage",
        "createPrivacyRequest",
        ["NOT_FOUND"],
    ),
    (
        "mutation($v: String!) { requestDataExport(input: {userExternalId: $v}) "
        "{ errors { code field } } }",
        "privacy:manage",
        "requestDataExport",
        ["NOT_FOUND"],
    ),
    (
        "mutation($v: String!) { eraseUser(input: {userExternalId: $v}) { errors { code field } } }",
        "privacy:manage",
        "eraseUser",
        ["NOT_FOUND"],
    ),
]
TABLES = ("consent", "privacy_request", "data_export", "customer")


async def test_nul_characters_are_refused_and_change_nothing(api: Api) -> None:
    await make_customers(api, "c-1")
    made = await api.gql(
        'mutation { createPrivacyRequest(input: {type: ACCESS, userExternalId: "c-1"}) '
        "{ privacyRequest { id } } }",
        scopes="privacy:manage",
    )
    request_id = made["data"]["createPrivacyRequest"]["privacyRequest"]["id"]
    before = {t: await count_rows(api.db, t) for t in TABLES}

    for document, scopes, field, codes in TYPED:
        body = await api.gql(document, {"v": NUL}, scopes=scopes)
        assert "errors" not in body, (document, body)
        assert [e["code"] for e in body["data"][field]["errors"]] == codes, (document, body)

    moved = await api.gql(
        "mutation($id: ID!, $v: String!) { updatePrivacyRequest(input: {id: $id, "
        "status: REJECTED, resolution: $v}) { errors { code } } }",
        {"id": request_id, "v": NUL},
        scopes="privacy:manage",
    )
    assert moved["data"]["updatePrivacyRequest"]["errors"] == [{"code": "INVALID"}]

    for name in ("action", "clientId", "resourceType", "resourceId", "requestId"):
        body = await api.gql(
            f"query($v: String!) {{ auditLog(filter: {{{name}: $v}}) {{ totalCount }} }}",
            {"v": NUL},
            scopes="audit:read",
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], (name, body)

    export = await api.gql(
        "query($v: ID!) { dataExport(id: $v) { id } }", {"v": NUL}, scopes="privacy:manage"
    )
    assert export == {"data": {"dataExport": None}}
    download = await api.client.get(
        "/privacy/exports/a%00b",
        headers={"Authorization": f"Bearer {await api.token('privacy:manage')}"},
    )
    assert download.status_code == 404
    assert {t: await count_rows(api.db, t) for t in TABLES} == before
