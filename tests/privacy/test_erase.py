"""Erasure: PII gone, events and orders anonymised with aggregates unchanged, the user unreachable."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import func, insert, or_, select, text
from sqlmodel import col

from api.ids import encode_id
from domain.audit.models import AuditEntry
from domain.events.models import Event
from domain.orders.models import Order
from domain.privacy.models import PrivacyRequest
from domain.recommend.models import RecommendationImpression
from domain.sql import table as core_table
from tests.conftest import Api, count_rows, error_codes
from tests.privacy.helpers import T0, aggregates, make_customers, seed_shopper

P = "privacy:manage"
ERASE = """
mutation($input: EraseUserInput!) {
  eraseUser(input: $input) {
    privacyRequest { id type status resolution completedAt }
    eventsAnonymised ordersAnonymised
    errors { code field message }
  }
}"""
CHILD_TABLES = ("customer_tag", "consent", "customer_profile", "device", "identity_link")


async def erase(api: Api, **input: Any) -> dict[str, Any]:
    body = await api.gql(ERASE, {"input": input}, scopes=P)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["eraseUser"]
    return result


async def per_customer(api: Api, table: str) -> dict[int, int]:
    async with api.db.read_only() as session:
        rows = await session.execute(
            text(f'SELECT customer_id, COUNT(*) FROM "{table}" GROUP BY customer_id')
        )
        return {int(k): int(v) for k, v in rows.all() if k is not None}


async def test_erasure_removes_pii_keeps_aggregates_and_hides_the_user(api: Api) -> None:
    ids = await make_customers(api, "c-1", "c-2")
    await seed_shopper(api, ids["c-1"], events=40, orders=3)
    await seed_shopper(api, ids["c-2"], events=25, orders=2)
    # an export of c-1 exists before the erasure
    token = await api.token(P)
    made = await api.gql(
        'mutation { requestDataExport(input: {userExternalId: "c-1"}) { dataExport { id } } }',
        token=token,
    )
    export_id = made["data"]["requestDataExport"]["dataExport"]["id"]
    await api.app.state.services.queue.drain()
    before = await aggregates(api)
    c1, c2 = ids["c-1"], ids["c-2"]

    done = await erase(api, userExternalId="c-1")
    assert done["errors"] == []
    # 32 linked events and 8 under the linked anonymous id; 3 orders
    assert done["eventsAnonymised"] == 40 and done["ordersAnonymised"] == 3
    request = done["privacyRequest"]
    assert request["type"] == "ERASURE" and request["status"] == "COMPLETED"

    assert await aggregates(api) == before
    ev, od = Event.__table__, Order.__table__  # type: ignore[attr-defined]
    async with api.db.read_only() as session:
        linked = await session.scalar(
            select(func.count())
            .select_from(ev)
            .where(or_(ev.c.customer_id == c1, ev.c.anonymous_id == f"anon-{c1}"))
        )
        orders = await session.scalar(
            select(func.count())
            .select_from(od)
            .where(or_(od.c.customer_id == c1, od.c.anonymous_id == f"anon-{c1}"))
        )
        secrets = await session.scalar(
            select(func.count())
            .select_from(ev)
            .where(ev.c.client_event_id.like(f"e-{c1}-%"), ev.c.properties != {})
        )
        c2_events = await session.scalar(
            select(func.count()).select_from(ev).where(ev.c.customer_id == c2)
        )
    assert (linked, orders, secrets) == (0, 0, 0)
    assert c2_events == 20
    for name in CHILD_TABLES:
        assert c1 not in await per_customer(api, name), name
        assert c2 in await per_customer(api, name), name
    assert await count_rows(api.db, "customer") == 1
    assert await count_rows(api.db, "data_export") == 0

    # neither readable nor exportable, by id, node, list or external id
    r = "users:read users:pii"
    gid = encode_id("User", c1)
    assert (await api.gql('{ user(externalId: "c-1") { id } }', scopes=r))["data"]["user"] is None
    by_id = await api.gql("query($id: ID!) { user(id: $id) { id } }", {"id": gid}, scopes=r)
    assert by_id["data"]["user"] is None
    node = await api.gql("query($id: ID!) { node(id: $id) { id } }", {"id": gid}, scopes=r)
    assert node["data"]["node"] is None
    listed = await api.gql("{ users(first: 100) { nodes { externalId } } }", scopes=r)
    assert listed["data"]["users"]["nodes"] == [{"externalId": "c-2"}]
    again = await api.gql(
        "mutation($id: ID!) { requestDataExport(input: {userId: $id}) { errors { code } } }",
        {"id": gid},
        token=token,
    )
    assert again["data"]["requestDataExport"]["errors"] == [{"code": "NOT_FOUND"}]
    gone = await api.client.get(
        f"/privacy/exports/{export_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.status_code == 404
    twice = await erase(api, userId=gid)
    assert [e["code"] for e in twice["errors"]] == ["NOT_FOUND"]

    # the audit entry names counts, never personal data
    async with api.db.read_only() as session:
        entry = (
            await session.scalars(select(AuditEntry).where(col(AuditEntry.action) == "user.erase"))
        ).one()
    assert entry.resource_id == str(c1)
    blob = orjson.dumps({"fields": entry.fields, "details": entry.details}).decode()
    assert "c-1" not in blob and "example.com" not in blob and "anon-" not in blob
    assert entry.details["events_anonymised"] == 40


async def test_erasure_completes_the_given_request(api: Api) -> None:
    ids = await make_customers(api, "c-1", "c-2")
    await seed_shopper(api, ids["c-1"], events=5, orders=1)
    body = await api.gql(
        """mutation { a: createPrivacyRequest(input: {type: ERASURE, userExternalId: "c-1"}) {
             privacyRequest { id } }
           b: createPrivacyRequest(input: {type: ACCESS, userExternalId: "c-1"}) {
             privacyRequest { id } }
           c: createPrivacyRequest(input: {type: ERASURE, userExternalId: "c-2"}) {
             privacyRequest { id } } }""",
        scopes=P,
    )
    erasure, access, other = (body["data"][k]["privacyRequest"]["id"] for k in "abc")
    before = await aggregates(api)
    for wrong in (access, other, "UHJpdmFjeVJlcXVlc3Q6OTk="):
        refused = await erase(api, userExternalId="c-1", privacyRequestId=wrong)
        assert refused["privacyRequest"] is None
        assert [e["code"] for e in refused["errors"]] in (["INVALID"], ["NOT_FOUND"])
    assert await count_rows(api.db, "customer") == 2
    assert await per_customer(api, "consent") == {ids["c-1"]: 3}
    assert await aggregates(api) == before

    done = await erase(api, userExternalId="c-1", privacyRequestId=erasure)
    assert done["errors"] == []
    assert done["privacyRequest"]["id"] == erasure
    assert done["privacyRequest"]["status"] == "COMPLETED"
    assert done["privacyRequest"]["resolution"] == "erased"
    assert await count_rows(api.db, "privacy_request") == 3  # none created
    async with api.db.read_only() as session:
        kept = await session.get(PrivacyRequest, 2)
    assert kept is not None and kept.status == "open"  # the access request is left alone


async def test_denied_erasures_change_nothing(api: Api) -> None:
    ids = await make_customers(api, "c-1")
    await seed_shopper(api, ids["c-1"], events=5, orders=1)
    before = await aggregates(api)
    for scopes in ("users:write users:read users:pii", "audit:read"):
        body = await api.gql(ERASE, {"input": {"userExternalId": "c-1"}}, scopes=scopes)
        assert error_codes(body) == ["FORBIDDEN"]
    assert error_codes(await api.gql(ERASE, {"input": {"userExternalId": "c-1"}})) == [
        "UNAUTHENTICATED"
    ]
    unknown = await erase(api, userExternalId="nobody")
    assert [e["code"] for e in unknown["errors"]] == ["NOT_FOUND"]
    both = await api.gql(
        ERASE, {"input": {"userExternalId": "c-1", "userId": "VXNlcjox"}}, scopes=P
    )
    assert error_codes(both) == ["BAD_USER_INPUT"]
    assert await count_rows(api.db, "customer") == 1
    assert await count_rows(api.db, "privacy_request") == 0
    for name in CHILD_TABLES:
        assert await per_customer(api, name) == {ids["c-1"]: 3 if name == "consent" else 1}
    assert await per_customer(api, "event") == {ids["c-1"]: 4}
    assert await aggregates(api) == before


async def test_an_event_written_during_erasure_is_anonymised_too(api: Api, backend: str) -> None:
    """Real concurrency on PostgreSQL: an event insert for the shopper is in flight (not yet
    committed) when erasure starts; erasure waits for it and anonymises it as well."""
    if backend != "postgres":
        pytest.skip("SQLite runs one writer at a time; the race cannot happen there")
    ids = await make_customers(api, "c-1")
    c1 = ids["c-1"]
    ev = core_table(Event)
    async with api.db.sessions() as writer:
        await writer.execute(
            insert(ev).values(
                client_event_id="in-flight",
                customer_id=c1,
                type="search",
                properties={"query": "secret"},
                source_client_id="test",
                occurred_at=T0,
                received_at=T0,
            )
        )
        erasing = asyncio.create_task(erase(api, userExternalId="c-1"))
        # wait until erasure is blocked on the writer's lock, then let the writer commit
        async with api.db.read_only() as probe:
            for _ in range(500):
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                )
                if waiting or erasing.done():
                    break
                await asyncio.sleep(0.01)
                await probe.rollback()  # a fresh snapshot of pg_stat_activity
        assert not erasing.done()
        await writer.commit()
    done = await erasing
    assert done["errors"] == [] and done["eventsAnonymised"] == 1
    async with api.db.read_only() as session:
        row = (await session.execute(select(ev).where(ev.c.client_event_id == "in-flight"))).one()
    assert (row.customer_id, row.anonymous_id, row.properties) == (None, None, {})


async def test_erasure_unlinks_recommendation_impressions_and_keeps_them(api: Api) -> None:
    ids = await make_customers(api, "c-1", "c-2")
    c1, c2 = ids["c-1"], ids["c-2"]
    await seed_shopper(api, c1, events=4, orders=0)  # links anon-<c1> to c-1
    imp = core_table(RecommendationImpression)
    rows = [
        {"id": "a" * 32, "customer_id": c1, "anonymous_id": None},
        {"id": "b" * 32, "customer_id": None, "anonymous_id": f"anon-{c1}"},
        {"id": "c" * 32, "customer_id": c2, "anonymous_id": f"anon-{c2}"},
    ]
    async with api.db.unit_of_work() as session:
        await session.execute(
            insert(imp),
            [
                {
                    **r,
                    "served_at": T0,
                    "surface": "recommendations",
                    "personal": True,
                    "product_ids": [1, 2],
                }
                for r in rows
            ],
        )
    done = await erase(api, userExternalId="c-1")
    assert done["errors"] == []
    async with api.db.read_only() as session:
        left = {
            r.id: (r.customer_id, r.anonymous_id)
            for r in await session.execute(select(imp.c.id, imp.c.customer_id, imp.c.anonymous_id))
        }
    assert left == {"a" * 32: (None, None), "b" * 32: (None, None), "c" * 32: (c2, f"anon-{c2}")}
