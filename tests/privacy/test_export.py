"""Data export: a complete JSON document built by a job, fetchable only by the requesting client."""

from __future__ import annotations

import gzip
import hashlib
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import insert, select, update
from sqlmodel import col

from domain.audit.models import AuditEntry
from domain.columns import utcnow
from domain.db import Database
from domain.events.models import Event
from domain.keys import build_keys
from domain.privacy import export as export_module
from domain.privacy.models import DataExport, PrivacyRequest
from domain.recommend.models import RecommendationImpression
from domain.settings import Settings
from jobs.tasks import purge_exports
from tests.conftest import Api, count_rows, error_codes, serve
from tests.privacy.helpers import T0, make_customers, seed_shopper

P = "privacy:manage"
REQUEST = """
mutation($input: RequestDataExportInput!) {
  requestDataExport(input: $input) {
    dataExport { id status size sha256 expiresAt downloadUrl }
    privacyRequest { id type status }
    errors { code field message }
  }
}"""
STATUS = """
query($id: ID!) {
  dataExport(id: $id) {
    id status size sha256 expiresAt readyAt downloadUrl error privacyRequestId
  }
}"""


async def drain(api: Api) -> None:
    await api.app.state.services.queue.drain()


async def request_export(api: Api, token: str, ext: str = "c-1") -> dict[str, Any]:
    body = await api.gql(REQUEST, {"input": {"userExternalId": ext}}, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["requestDataExport"]
    return result


async def test_export_is_complete_and_only_the_requester_can_fetch_it(api: Api) -> None:
    ids = await make_customers(api, "c-1", "c-2")
    await seed_shopper(api, ids["c-1"], events=40, orders=3)
    await seed_shopper(api, ids["c-2"], events=10, orders=1)
    served = [  # one to the shopper, one to their linked visitor id, one to the other shopper
        {"id": "a" * 32, "customer_id": ids["c-1"], "anonymous_id": None},
        {"id": "b" * 32, "customer_id": None, "anonymous_id": f"anon-{ids['c-1']}"},
        {"id": "c" * 32, "customer_id": ids["c-2"], "anonymous_id": None},
    ]
    async with api.db.unit_of_work() as session:
        await session.execute(
            insert(RecommendationImpression.__table__),  # type: ignore[attr-defined]
            [
                {
                    **r,
                    "served_at": T0,
                    "surface": "recommendations",
                    "personal": True,
                    "product_ids": [7],
                }
                for r in served
            ],
        )
    token = await api.token(P)
    made = await request_export(api, token)
    assert made["errors"] == []
    export_id = made["dataExport"]["id"]
    assert made["dataExport"]["status"] == "QUEUED" and made["dataExport"]["downloadUrl"] is None
    assert made["privacyRequest"]["type"] == "ACCESS"
    assert made["privacyRequest"]["status"] == "IN_PROGRESS"
    await drain(api)

    status = (await api.gql(STATUS, {"id": export_id}, token=token))["data"]["dataExport"]
    assert status["status"] == "READY", status
    assert status["downloadUrl"] == f"http://127.0.0.1:8000/privacy/exports/{export_id}"
    assert status["privacyRequestId"] == made["privacyRequest"]["id"]
    response = await api.client.get(
        f"/privacy/exports/{export_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-encoding"] == "gzip"
    body = response.content  # decoded by httpx
    assert len(body) == status["size"]
    assert hashlib.sha256(body).hexdigest() == status["sha256"]
    doc = orjson.loads(body)

    assert doc["format"] == "precis.export/1" and doc["exportId"] == export_id
    assert doc["sections"] == list(export_module.SECTIONS)
    customer = doc["customer"]
    assert customer["external_id"] == "c-1"
    assert customer["email"] == "c-1@example.com" and customer["phone"] == "+4915112345000"
    assert "email_encrypted" not in customer and "email_hash" not in customer
    assert doc["tags"] == ["vip"]
    assert doc["profile"]["lifecycle_stage"] == "active"
    assert [(c["purpose"], c["granted"]) for c in doc["consents"]] == [
        ("email", True),
        ("analytics", True),
        ("email", False),
    ]
    # events linked to the customer and those under an anonymous id linked to them
    assert len(doc["events"]) == 40
    assert all(e["client_event_id"].startswith(f"e-{ids['c-1']}-") for e in doc["events"])
    assert [o["external_id"] for o in doc["orders"]] == [f"o-{ids['c-1']}-{n}" for n in range(3)]
    assert [len(o["lines"]) for o in doc["orders"]] == [2, 2, 2]
    assert doc["orders"][0]["total"] == "42.00"
    assert doc["devices"] == [
        {k: v for k, v in doc["devices"][0].items() if k not in ("token_encrypted", "token_hash")}
    ]
    assert "PUSH-TOKEN" not in body.decode()
    assert [link["anonymous_id"] for link in doc["identityLinks"]] == [f"anon-{ids['c-1']}"]
    assert [(r["id"], r["product_ids"]) for r in doc["recommendations"]] == [
        ("a" * 32, [7]),
        ("b" * 32, [7]),
    ]
    assert f"e-{ids['c-2']}-" not in body.decode()  # nothing of the other shopper

    # the access request is completed; building and downloading are audited
    async with api.db.read_only() as session:
        request = await session.get(PrivacyRequest, 1)
        actions = list(
            await session.scalars(select(col(AuditEntry.action)).order_by(col(AuditEntry.id)))
        )
    assert request is not None and request.status == "completed"
    for action in (
        "privacy_request.create",
        "data_export.request",
        "data_export.build",
        "data_export.download",
    ):
        assert action in actions

    # another client, even with privacy:manage, sees nothing; no token is 401
    other = await api.token(P + " audit:read")
    assert (await api.gql(STATUS, {"id": export_id}, token=other))["data"]["dataExport"] is None
    for headers, code in (
        ({"Authorization": f"Bearer {other}"}, 404),
        ({"Authorization": f"Bearer {await api.token('users:read')}"}, 404),
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
    ):
        denied = await api.client.get(f"/privacy/exports/{export_id}", headers=headers)
        assert denied.status_code == code
        assert "c-1" not in denied.text
    missing = await api.client.get(
        "/privacy/exports/nope", headers={"Authorization": f"Bearer {token}"}
    )
    assert missing.status_code == 404
    async with api.db.read_only() as session:
        downloads = list(
            await session.scalars(
                select(AuditEntry).where(col(AuditEntry.action) == "data_export.download")
            )
        )
    assert len(downloads) == 1


async def test_unknown_user_is_a_typed_error_and_nothing_is_created(api: Api) -> None:
    await make_customers(api, "c-1")
    token = await api.token(P)
    made = await request_export(api, token, ext="nobody")
    assert made["dataExport"] is None
    assert [e["code"] for e in made["errors"]] == ["NOT_FOUND"]
    denied = await api.gql(REQUEST, {"input": {"userExternalId": "c-1"}}, scopes="users:read")
    assert error_codes(denied) == ["FORBIDDEN"]
    await drain(api)
    assert await count_rows(api.db, "data_export") == 0
    assert await count_rows(api.db, "privacy_request") == 0


async def test_expired_exports_are_not_served_and_are_purged(
    api: Api, db: Database, settings: Settings
) -> None:
    ids = await make_customers(api, "c-1")
    await seed_shopper(api, ids["c-1"], events=3, orders=1)
    token = await api.token(P)
    first = (await request_export(api, token))["dataExport"]["id"]
    second = (await request_export(api, token))["dataExport"]["id"]
    await drain(api)
    status = (await api.gql(STATUS, {"id": first}, token=token))["data"]["dataExport"]
    ready = status["readyAt"]
    assert status["expiresAt"] > ready  # 7 days by default
    async with db.unit_of_work() as session:
        await session.execute(
            update(DataExport)
            .where(col(DataExport.id) == first)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await api.client.get(
        f"/privacy/exports/{first}", headers={"Authorization": f"Bearer {token}"}
    )
    assert expired.status_code == 404
    after = (await api.gql(STATUS, {"id": first}, token=token))["data"]["dataExport"]
    assert after["downloadUrl"] is None
    assert await purge_exports({"db": db, "settings": settings}) == 1
    assert await count_rows(db, "data_export") == 1
    kept = await api.client.get(
        f"/privacy/exports/{second}", headers={"Authorization": f"Bearer {token}"}
    )
    assert kept.status_code == 200


async def test_events_are_read_in_pages(
    api: Api, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await make_customers(api, "c-1")
    await seed_shopper(api, ids["c-1"], events=50, orders=5)
    same_time = T0 + timedelta(days=1)  # 20 events at one instant: pages must split ties by id
    async with db.unit_of_work() as session:
        await session.execute(
            insert(Event.__table__),  # type: ignore[attr-defined]
            [
                {
                    "client_event_id": f"tie-{n}",
                    "customer_id": ids["c-1"],
                    "type": "view",
                    "properties": {},
                    "source_client_id": "t",
                    "occurred_at": same_time,
                    "received_at": same_time,
                }
                for n in range(20)
            ],
        )
    monkeypatch.setattr(export_module, "PAGE", 7)
    async with db.unit_of_work() as session:
        row = DataExport(id="x1", customer_id=ids["c-1"], requested_by_client_id="t")
        session.add(row)
    assert await export_module.build_export(db, build_keys(settings), "x1", ttl_days=1) == "ready"
    assert await export_module.build_export(db, build_keys(settings), "x1", ttl_days=1) == "ready"
    async with db.read_only() as session:
        built = await session.get(DataExport, "x1")
    assert built is not None and built.content_gzip is not None
    doc = orjson.loads(gzip.decompress(built.content_gzip))
    names = [e["client_event_id"] for e in doc["events"]]
    numbers = [int(n.rsplit("-", 1)[1]) for n in names]
    # the customer's own events in time order (ties by id), then those under their linked
    # anonymous id
    assert names[40:60] == [f"tie-{n}" for n in range(20)]
    assert numbers[:40] == [i for i in range(50) if i % 5]
    assert numbers[60:] == list(range(0, 50, 5))
    assert len(doc["orders"]) == 5


async def test_export_job_runs_on_arq_when_redis_is_configured(
    api: Api, db: Database, settings: Settings, redis_url: str, queue_name: str
) -> None:
    ids = await make_customers(api, "c-1")
    await seed_shopper(api, ids["c-1"], events=5, orders=1)
    async with serve(settings, redis_url=redis_url, queue_name=queue_name) as client:
        with_redis = Api(client, db, None)
        body = await with_redis.gql(REQUEST, {"input": {"userExternalId": "c-1"}}, scopes=P)
        export_id = body["data"]["requestDataExport"]["dataExport"]["id"]
        token = with_redis._tokens[P]

        await run_worker_with_settings(db, settings, redis_url, queue_name)

        status = await with_redis.gql(STATUS, {"id": export_id}, token=token)
        assert status["data"]["dataExport"]["status"] == "READY"
        fetched = await client.get(
            f"/privacy/exports/{export_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert fetched.status_code == 200
        assert orjson.loads(fetched.content)["customer"]["email"] == "c-1@example.com"


async def run_worker_with_settings(
    db: Database, settings: Settings, redis_url: str, queue_name: str
) -> None:
    """A burst ARQ worker with the context ``precis worker`` gives its jobs (db and settings)."""
    from tests.jobs.test_worker import run_worker

    worker = await run_worker(db, redis_url, queue_name, settings)
    assert worker.jobs_complete >= 1


async def test_an_export_of_a_missing_user_fails_cleanly(db: Database, settings: Settings) -> None:
    async with db.unit_of_work() as session:
        session.add(DataExport(id="gone", customer_id=999, requested_by_client_id="t"))
    keys = build_keys(settings)
    assert await export_module.build_export(db, keys, "gone", ttl_days=1) == "failed"
    assert await export_module.build_export(db, keys, "never-requested", ttl_days=1) == "missing"
    async with db.read_only() as session:
        row = await session.get(DataExport, "gone")
    assert row is not None
    assert (row.status, row.error, row.content_gzip) == (
        "failed",
        "the user no longer exists",
        None,
    )
