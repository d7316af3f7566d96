"""The privacy request log: types, due dates, the state machine, the overdue filter and denials."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from domain.audit.models import AuditEntry
from domain.privacy.models import PrivacyRequest
from domain.settings import Settings
from tests.conftest import Api, count_rows, error_codes, serve
from tests.privacy.helpers import make_customers

P = "privacy:manage"
CREATE = """
mutation($input: CreatePrivacyRequestInput!) {
  createPrivacyRequest(input: $input) {
    privacyRequest {
      id type status details resolution receivedAt dueAt completedAt overdue userId userExternalId
    }
    errors { code field message }
  }
}"""
UPDATE = """
mutation($input: UpdatePrivacyRequestInput!) {
  updatePrivacyRequest(input: $input) {
    privacyRequest { id status resolution completedAt }
    errors { code field message }
  }
}"""
LIST = """
query($filter: PrivacyRequestFilter, $after: String) {
  privacyRequests(first: 2, filter: $filter, after: $after) {
    totalCount
    nodes { id type status overdue }
    pageInfo { hasNextPage endCursor }
  }
}"""


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def create(api: Api, type: str = "ACCESS", ext: str = "c-1", **extra: Any) -> dict[str, Any]:
    body = await api.gql(
        CREATE, {"input": {"type": type, "userExternalId": ext, **extra}}, scopes=P
    )
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["createPrivacyRequest"]
    return result


async def move(api: Api, id: str, status: str, resolution: str | None = None) -> dict[str, Any]:
    body = await api.gql(
        UPDATE, {"input": {"id": id, "status": status, "resolution": resolution}}, scopes=P
    )
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["updatePrivacyRequest"]
    return result


async def test_requests_of_every_type_get_a_due_date(api: Api) -> None:
    await make_customers(api, "c-1")
    for kind in ("ACCESS", "ERASURE", "RECTIFICATION", "OBJECTION", "COMPLAINT"):
        made = await create(api, kind, details=f"{kind} by letter")
        assert made["errors"] == []
        row = made["privacyRequest"]
        assert row["type"] == kind and row["status"] == "OPEN"
        assert row["userExternalId"] == "c-1" and row["userId"]
        assert when(row["dueAt"]) - when(row["receivedAt"]) == timedelta(days=30)
        assert row["overdue"] is False and row["completedAt"] is None
    assert await count_rows(api.db, "privacy_request") == 5
    async with api.db.read_only() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(col(AuditEntry.action) == "privacy_request.create")
            )
        )
    assert len(entries) == 5 and all(e.request_id for e in entries)
    assert all("c-1" not in str(e.details) for e in entries)  # ids only, no personal data


async def test_due_days_are_configurable(api: Api, settings: Settings) -> None:
    await make_customers(api, "c-1")
    async with serve(settings, privacy_due_days=10) as client:
        other = Api(client, api.db, None)
        body = await other.gql(
            CREATE, {"input": {"type": "OBJECTION", "userExternalId": "c-1"}}, scopes=P
        )
    row = body["data"]["createPrivacyRequest"]["privacyRequest"]
    assert when(row["dueAt"]) - when(row["receivedAt"]) == timedelta(days=10)


async def test_state_machine(api: Api) -> None:
    await make_customers(api, "c-1")
    rid = (await create(api))["privacyRequest"]["id"]
    refused = await move(api, rid, "COMPLETED", "done")
    assert [e["code"] for e in refused["errors"]] == ["INVALID_TRANSITION"]
    assert (await move(api, rid, "IN_PROGRESS"))["privacyRequest"]["status"] == "IN_PROGRESS"
    again = await move(api, rid, "IN_PROGRESS")
    assert [e["code"] for e in again["errors"]] == ["INVALID_TRANSITION"]
    no_reason = await move(api, rid, "COMPLETED")
    assert [e["code"] for e in no_reason["errors"]] == ["REQUIRED"]
    done = await move(api, rid, "COMPLETED", "sent the export by mail")
    assert done["errors"] == []
    assert done["privacyRequest"]["status"] == "COMPLETED"
    assert done["privacyRequest"]["resolution"] == "sent the export by mail"
    assert done["privacyRequest"]["completedAt"]
    final = await move(api, rid, "REJECTED", "changed my mind")
    assert [e["code"] for e in final["errors"]] == ["INVALID_TRANSITION"]

    other = (await create(api, "COMPLAINT"))["privacyRequest"]["id"]
    rejected = await move(api, other, "REJECTED", "identity could not be verified")
    assert rejected["privacyRequest"]["status"] == "REJECTED"

    unknown = await move(api, "UHJpdmFjeVJlcXVlc3Q6OTk5", "IN_PROGRESS")
    assert [e["code"] for e in unknown["errors"]] == ["NOT_FOUND"]
    bad_id = await api.gql(UPDATE, {"input": {"id": "nope", "status": "IN_PROGRESS"}}, scopes=P)
    assert error_codes(bad_id) == ["BAD_USER_INPUT"]
    async with api.db.read_only() as session:
        updates = list(
            await session.scalars(
                select(col(AuditEntry.details)).where(
                    col(AuditEntry.action) == "privacy_request.update"
                )
            )
        )
    assert updates == [
        {"from": "open", "to": "in_progress"},
        {"from": "in_progress", "to": "completed"},
        {"from": "open", "to": "rejected"},
    ]


async def test_list_filters_and_overdue(api: Api) -> None:
    await make_customers(api, "c-1")
    ids = [(await create(api, kind))["privacyRequest"]["id"] for kind in ("ACCESS", "ERASURE")]
    ids.append((await create(api, "ACCESS"))["privacyRequest"]["id"])
    await move(api, ids[2], "IN_PROGRESS")
    # the first and third were received 40 days ago: past their due date
    async with api.db.unit_of_work() as session:
        await session.execute(
            update(PrivacyRequest)
            .where(col(PrivacyRequest.id).in_([1, 3]))
            .values(due_at=datetime.now().astimezone() - timedelta(days=10))
        )
    everything = await api.gql(LIST, scopes=P)
    page = everything["data"]["privacyRequests"]
    assert page["totalCount"] == 3 and page["pageInfo"]["hasNextPage"] is True
    assert [n["id"] for n in page["nodes"]] == ids[:2]
    rest = await api.gql(LIST, {"after": page["pageInfo"]["endCursor"]}, scopes=P)
    assert [n["id"] for n in rest["data"]["privacyRequests"]["nodes"]] == ids[2:]

    overdue = await api.gql(LIST, {"filter": {"overdue": True}}, scopes=P)
    nodes = overdue["data"]["privacyRequests"]["nodes"]
    assert [n["id"] for n in nodes] == [ids[0], ids[2]] and all(n["overdue"] for n in nodes)
    on_time = await api.gql(LIST, {"filter": {"overdue": False}}, scopes=P)
    assert [n["id"] for n in on_time["data"]["privacyRequests"]["nodes"]] == [ids[1]]
    # a resolved request is never overdue, however late
    await move(api, ids[2], "COMPLETED", "answered")
    overdue = await api.gql(LIST, {"filter": {"overdue": True}}, scopes=P)
    assert [n["id"] for n in overdue["data"]["privacyRequests"]["nodes"]] == [ids[0]]
    by_type = await api.gql(LIST, {"filter": {"type": "ERASURE", "status": "OPEN"}}, scopes=P)
    assert [n["id"] for n in by_type["data"]["privacyRequests"]["nodes"]] == [ids[1]]
    one = await api.gql(
        "query($id: ID!) { privacyRequest(id: $id) { type status } }", {"id": ids[1]}, scopes=P
    )
    assert one["data"]["privacyRequest"] == {"type": "ERASURE", "status": "OPEN"}


async def test_denials_change_nothing(api: Api) -> None:
    await make_customers(api, "c-1")
    unknown = await create(api, ext="nobody")
    assert unknown["privacyRequest"] is None
    assert [e["code"] for e in unknown["errors"]] == ["NOT_FOUND"]
    too_long = await create(api, details="x" * 4001)
    assert [e["code"] for e in too_long["errors"]] == ["TOO_LONG"]
    variables = {"input": {"type": "ACCESS", "userExternalId": "c-1"}}
    for scopes in ("users:read users:write users:pii", "audit:read"):
        body = await api.gql(CREATE, variables, scopes=scopes)
        assert error_codes(body) == ["FORBIDDEN"]
    assert error_codes(await api.gql(CREATE, variables)) == ["UNAUTHENTICATED"]
    assert error_codes(await api.gql(LIST, scopes="users:read")) == ["FORBIDDEN"]
    both = await api.gql(
        CREATE,
        {"input": {"type": "ACCESS", "userExternalId": "c-1", "userId": "VXNlcjox"}},
        scopes=P,
    )
    assert error_codes(both) == ["BAD_USER_INPUT"]
    assert await count_rows(api.db, "privacy_request") == 0
    async with api.db.read_only() as session:
        actions = set(await session.scalars(select(col(AuditEntry.action))))
    assert not {a for a in actions if a.startswith("privacy_request.")}
