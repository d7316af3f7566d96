"""The audit log: ``auditLog`` (audit:read), filters and paging, and PII reads recorded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import col

from domain.audit.models import AuditEntry
from tests.conftest import Api, count_rows, error_codes
from tests.privacy.helpers import make_customers

LOG = """
query($filter: AuditLogFilter, $first: Int = 20, $after: String) {
  auditLog(filter: $filter, first: $first, after: $after) {
    totalCount
    nodes { id at clientId subject action resourceType resourceId fields details requestId }
    pageInfo { hasNextPage endCursor }
  }
}"""
A = "audit:read"


async def log(api: Api, **variables: Any) -> dict[str, Any]:
    body = await api.gql(LOG, variables, scopes=A)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["auditLog"]
    return result


async def entries(api: Api) -> list[AuditEntry]:
    async with api.db.read_only() as session:
        return list(await session.scalars(select(AuditEntry).order_by(col(AuditEntry.id))))


async def test_audit_log_is_newest_first_filtered_and_paged(api: Api) -> None:
    await make_customers(api, "c-1", "c-2")
    for ext in ("c-1", "c-2"):
        body = await api.gql(
            "mutation($e: String!) { createPrivacyRequest(input: {type: ACCESS, "
            "userExternalId: $e}) { errors { code } } }",
            {"e": ext},
            scopes="privacy:manage",
        )
        assert body["data"]["createPrivacyRequest"]["errors"] == []
    rows = await entries(api)
    everything = await log(api)
    assert everything["totalCount"] == len(rows) >= 3
    assert [int(n["resourceId"] or 0) for n in everything["nodes"]][:2] == [2, 1]
    assert [n["action"] for n in everything["nodes"]][:2] == ["privacy_request.create"] * 2
    newest = everything["nodes"][0]
    assert newest["resourceType"] == "PrivacyRequest" and newest["requestId"]
    assert newest["details"] == {"type": "access", "customer_id": 2}

    page = await log(api, first=1, filter={"action": "privacy_request.create"})
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"] is True
    rest = await log(
        api,
        first=1,
        after=page["pageInfo"]["endCursor"],
        filter={"action": "privacy_request.create"},
    )
    assert [n["resourceId"] for n in page["nodes"] + rest["nodes"]] == ["2", "1"]
    assert rest["pageInfo"]["hasNextPage"] is False

    by_request = await log(api, filter={"requestId": newest["requestId"]})
    assert [n["id"] for n in by_request["nodes"]] == [newest["id"]]
    by_resource = await log(api, filter={"resourceType": "PrivacyRequest", "resourceId": "1"})
    assert by_resource["totalCount"] == 1
    by_client = await log(api, filter={"clientId": newest["clientId"]})
    assert by_client["totalCount"] == 2
    window = await log(api, filter={"since": newest["at"], "until": "2999-01-01T00:00:00Z"})
    assert newest["id"] in [n["id"] for n in window["nodes"]]
    assert (await log(api, filter={"until": "2000-01-01T00:00:00Z"}))["totalCount"] == 0


async def test_audit_log_needs_audit_read(api: Api) -> None:
    before = await count_rows(api.db, "audit_entry")
    for scopes in ("users:read users:pii privacy:manage", "clients:manage"):
        assert error_codes(await api.gql(LOG, scopes=scopes)) == ["FORBIDDEN"]
    assert error_codes(await api.gql(LOG)) == ["UNAUTHENTICATED"]
    naive = await api.gql(LOG, {"filter": {"since": "2026-01-01T00:00:00"}}, scopes=A)
    assert error_codes(naive) == ["BAD_USER_INPUT"]
    too_many = await api.gql(LOG, {"first": 101}, scopes=A)
    assert error_codes(too_many) == ["BAD_USER_INPUT"]
    assert await count_rows(api.db, "audit_entry") == before


async def test_unmasked_pii_reads_are_recorded_and_masked_reads_are_not(api: Api) -> None:
    await make_customers(api, "c-1", "c-2")
    start = len(await entries(api))
    masked = await api.gql("{ users(first: 10) { nodes { email phone } } }", scopes="users:read")
    assert masked["data"]["users"]["nodes"][0]["email"] == "c***@example.com"
    assert len(await entries(api)) == start  # a masked read records nothing

    read = await api.client.post(
        "/graphql",
        json={"query": '{ user(externalId: "c-2") { email firstName } }'},
        headers={"Authorization": f"Bearer {await api.token('users:read users:pii')}"},
    )
    assert read.json()["data"]["user"]["email"] == "c-2@example.com"
    new = (await entries(api))[start:]
    assert len(new) == 1
    entry = new[0]
    assert entry.action == "pii.read" and entry.resource_type == "User"
    assert entry.resource_id == "2" and entry.fields == ["email"]
    assert entry.request_id and len(entry.request_id) == 32
    assert "c-2@example.com" not in str(entry.details)

    both = await api.gql(
        "{ users(first: 10) { nodes { email phone } } }", scopes="users:read users:pii"
    )
    assert len(both["data"]["users"]["nodes"]) == 2
    reads = (await entries(api))[start + 1 :]
    assert sorted((e.resource_id, tuple(e.fields)) for e in reads) == [
        ("1", ("email", "phone")),
        ("2", ("email", "phone")),
    ]
    assert len({e.request_id for e in reads}) == 1  # one request, one id
    listed = await log(api, filter={"action": "pii.read", "resourceId": "2"})
    assert listed["totalCount"] == 2
    assert listed["nodes"][0]["fields"] == ["email", "phone"]
