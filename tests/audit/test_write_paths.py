"""Every write path records audit entries: each GraphQL mutation (including ``me { ... }``), run once
successfully, adds entries with the caller's client id and the request's id. A mutation added to the
schema without a case here fails ``test_every_mutation_has_a_case``, so new write paths are covered."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from api.schema import Mutation
from domain.audit.models import AuditEntry
from domain.columns import utcnow
from tests.conftest import Api, count_rows
from tests.me.helpers import shopper_token
from tests.privacy.helpers import make_customers

T = "2026-12-01T10:00:00Z"
ORDER = {
    "externalId": "o-1",
    "userExternalId": "c-1",
    "currency": "EUR",
    "placedAt": T,
    "lines": [{"productExternalId": "p-1", "quantity": 2, "unitPrice": "10.00"}],
}
CONSENT = {"purpose": "EMAIL", "granted": True, "source": "checkout", "policyVersion": "1"}

# mutation field -> (scopes, document, variables, expected action or None to accept any)
CASES: dict[str, tuple[str, str, dict[str, Any], str | None]] = {
    "upsertUsers": (
        "users:write",
        'mutation { upsertUsers(input: {users: [{externalId: "c-9", email: "n@example.com"}]}) '
        "{ errors { code } } }",
        {},
        None,
    ),
    "updateUser": (
        "users:write",
        'mutation { updateUser(input: {externalId: "c-1", firstName: "A"}) { errors { code } } }',
        {},
        None,
    ),
    "tagUsers": (
        "users:write",
        'mutation($id: ID!) { tagUsers(input: {userIds: [$id], tags: ["x"]}) { errors { code } } }',
        {"id": "VXNlcjox"},
        None,
    ),
    "untagUsers": (
        "users:write",
        'mutation($id: ID!) { untagUsers(input: {userIds: [$id], tags: ["vip"]}) '
        "{ errors { code } } }",
        {"id": "VXNlcjox"},
        None,
    ),
    "upsertProducts": (
        "catalog:write",
        'mutation { upsertProducts(input: {products: [{externalId: "p-1", title: "Shoe", '
        'price: "10.00", currency: "EUR"}]}) { errors { code } } }',
        {},
        None,
    ),
    "archiveProduct": (
        "catalog:write",
        'mutation { archiveProduct(input: {externalId: "p-1"}) { errors { code } } }',
        {},
        None,
    ),
    "setConsents": (
        "users:write",
        'mutation($c: [ConsentInput!]!) { setConsents(input: {userExternalId: "c-1", '
        "consents: $c}) { errors { code } } }",
        {"c": [CONSENT]},
        "consents.set",
    ),
    "createPrivacyRequest": (
        "privacy:manage",
        'mutation { createPrivacyRequest(input: {type: OBJECTION, userExternalId: "c-1"}) '
        "{ errors { code } } }",
        {},
        "privacy_request.create",
    ),
    "updatePrivacyRequest": (
        "privacy:manage",
        'mutation { updatePrivacyRequest(input: {id: "UHJpdmFjeVJlcXVlc3Q6MQ", '
        "status: IN_PROGRESS}) { errors { code } } }",
        {},
        "privacy_request.update",
    ),
    "requestDataExport": (
        "privacy:manage",
        'mutation { requestDataExport(input: {userExternalId: "c-1"}) { errors { code } } }',
        {},
        "data_export.request",
    ),
    "trackEvents": (
        "events:write",
        "mutation($e: [EventInput!]!) { trackEvents(input: {events: $e}) { errors { code } } }",
        {
            "e": [
                {
                    "clientEventId": "ev-1",
                    "type": "search",
                    "userExternalId": "c-1",
                    "query": "shoes",
                }
            ]
        },
        None,
    ),
    "identify": (
        "events:write",
        'mutation { identify(input: {anonymousId: "anon-x", userExternalId: "c-1"}) '
        "{ errors { code } } }",
        {},
        None,
    ),
    "recordOrders": (
        "events:write",
        "mutation($o: [OrderInput!]!) { recordOrders(input: {orders: $o}) { errors { code } } }",
        {"o": [ORDER]},
        None,
    ),
    "refundOrder": (
        "events:write",
        'mutation { refundOrder(input: {externalId: "o-1", amount: "5.00"}) { errors { code } } }',
        {},
        None,
    ),
    "cancelOrder": (
        "events:write",
        'mutation { cancelOrder(input: {externalId: "o-1"}) { errors { code } } }',
        {},
        None,
    ),
    # segments: a static one (Segment:1) and a dynamic one (Segment:2), in one request
    "createSegment": (
        "segments:write",
        'mutation { createSegment(input: {name: "List", kind: STATIC}) { errors { code } } '
        'd: createSegment(input: {name: "VIP", definition: {tag: {tags: ["vip"]}}}) '
        "{ errors { code } } }",
        {},
        "segment.create",
    ),
    "updateSegment": (
        "segments:write",
        'mutation { updateSegment(input: {id: "U2VnbWVudDoy", name: "VIPs"}) { errors { code } } }',
        {},
        "segment.update",
    ),
    "addUsersToSegment": (
        "segments:write",
        'mutation { addUsersToSegment(input: {segmentId: "U2VnbWVudDox", '
        'userExternalIds: ["c-1"]}) { errors { code } } }',
        {},
        "segment.members.add",
    ),
    "removeUsersFromSegment": (
        "segments:write",
        'mutation { removeUsersFromSegment(input: {segmentId: "U2VnbWVudDox", '
        'userExternalIds: ["c-1"]}) { errors { code } } }',
        {},
        "segment.members.remove",
    ),
    "importSegmentUsers": (
        "segments:write",
        'mutation($csv: String!) { importSegmentUsers(input: {segmentId: "U2VnbWVudDox", '
        "csv: $csv}) { errors { code } } }",
        {"csv": "external_id\nc-2\n"},
        "segment.members.import",
    ),
    "refreshSegment": (
        "segments:write",
        'mutation { refreshSegment(input: {id: "U2VnbWVudDoy"}) { errors { code } } }',
        {},
        "segment.refresh",
    ),
    "archiveSegment": (
        "segments:write",
        'mutation { archiveSegment(input: {id: "U2VnbWVudDoy"}) { errors { code } } }',
        {},
        "segment.archive",
    ),
    "trainModel": (
        "models:write",
        "mutation { trainModel(input: {}) { errors { code } } }",
        {},
        "model.train_requested",
    ),
    "promoteModel": (  # the candidate made in test_every_write_path_records_audit_entries
        "models:write",
        'mutation { promoteModel(input: {versionId: "TW9kZWxWZXJzaW9uOjE"}) { errors { code } } }',
        {},
        "model.promote",
    ),
    "startExperiment": (  # versions 2 and 3, made in test_every_write_path_records_audit_entries
        "models:write",
        'mutation { startExperiment(input: {name: "a/b", arms: ['
        '{versionId: "TW9kZWxWZXJzaW9uOjI", weight: 1}, '
        '{versionId: "TW9kZWxWZXJzaW9uOjM", weight: 1}]}) { errors { code } } }',
        {},
        "experiment.start",
    ),
    "stopExperiment": (
        "models:write",
        'mutation { stopExperiment(input: {id: "RXhwZXJpbWVudDox"}) { errors { code } } }',
        {},
        "experiment.stop",
    ),
    # last: it removes c-1
    "eraseUser": (
        "privacy:manage",
        'mutation { eraseUser(input: {userExternalId: "c-1"}) { errors { code } } }',
        {},
        "user.erase",
    ),
}
ME_CASES = {
    "setConsents": (
        "mutation($c: [ConsentInput!]!) { me { setConsents(input: {consents: $c}) "
        "{ errors { code } } } }",
        {"c": [CONSENT]},
        "consents.set",
    ),
}


def mutation_fields(type_: Any) -> set[str]:
    return {
        f.graphql_name or to_camel(f.python_name) for f in type_.__strawberry_definition__.fields
    }


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def test_every_mutation_has_a_case() -> None:
    assert mutation_fields(Mutation) - {"me"} == set(CASES)
    definition: Any = Mutation.__strawberry_definition__  # type: ignore[attr-defined]
    me_type = next(f for f in definition.fields if f.python_name == "me")
    assert mutation_fields(me_type.type) == set(ME_CASES)  # type: ignore[arg-type]


async def new_entries(api: Api, after: int) -> list[AuditEntry]:
    async with api.db.read_only() as session:
        rows = await session.scalars(
            select(AuditEntry).where(col(AuditEntry.id) > after).order_by(col(AuditEntry.id))
        )
        return list(rows)


async def last_id(api: Api) -> int:
    async with api.db.read_only() as session:
        return int(
            await session.scalar(select(col(AuditEntry.id)).order_by(col(AuditEntry.id).desc()))
            or 0
        )


async def test_every_write_path_records_audit_entries(api: Api) -> None:
    await make_customers(api, "c-1", "c-2")
    from domain.recommend.models import ModelVersion

    async with api.db.unit_of_work() as session:
        session.add(ModelVersion(algorithm="popularity", metrics={"ndcg@10": 0.1}))
        for _ in range(2):  # experiment arms (start checks a serving bundle is stored)
            session.add(ModelVersion(algorithm="popularity", serving=b"bundle"))
    for name, (scopes, document, variables, action) in CASES.items():
        before = await last_id(api)
        body = await api.gql(document, variables, scopes=scopes)
        assert "errors" not in body, (name, body)
        payload = body["data"][name]
        assert payload["errors"] == [], (name, payload)
        await api.app.state.services.queue.drain()  # jobs the mutation queued (exports) audit too
        # entries of the request itself; a job it queued writes as the system (client "precis")
        added = [e for e in await new_entries(api, before) if e.client_id != "precis"]
        assert added, f"{name} recorded no audit entry"
        assert len({e.request_id for e in added}) == 1 and added[0].request_id, name
        assert len({e.client_id for e in added}) == 1, name
        if action is not None:
            assert action in {e.action for e in added}, (name, [e.action for e in added])

    token = await shopper_token(api, "c-2")
    for name, (document, variables, action) in ME_CASES.items():
        before = await last_id(api)
        body = await api.gql(document, variables, token=token)
        assert "errors" not in body, (name, body)
        assert body["data"]["me"][name]["errors"] == [], (name, body)
        added = await new_entries(api, before)
        assert action in {e.action for e in added}, (name, [e.action for e in added])
        assert all(e.request_id == added[0].request_id for e in added)


async def run_import(api: Api, tmp_path: Path, kind: str, text: str) -> None:
    from domain.imports.service import create_import
    from jobs.tasks import import_file

    path = tmp_path / f"{kind}.csv"
    path.write_text(text)
    async with api.db.unit_of_work() as session:
        task = await create_import(session, kind=kind, path=path, fmt=None)
    await import_file({"db": api.db, "settings": api.db.settings}, task.id)


async def test_export_purge_job_records_an_entry(api: Api) -> None:
    from domain.privacy.models import DataExport
    from jobs.tasks import purge_exports

    async with api.db.unit_of_work() as session:
        session.add(
            DataExport(
                id="old",
                customer_id=1,
                requested_by_client_id="t",
                status="ready",
                expires_at=utcnow() - timedelta(days=1),
            )
        )
    before = await last_id(api)
    assert await purge_exports({"db": api.db, "settings": api.db.settings}) == 1
    added = await new_entries(api, before)
    assert [(e.action, e.client_id, e.details) for e in added] == [
        ("data_export.purge", "precis", {"count": 1})
    ]


async def test_user_and_product_imports_record_entries(api: Api, tmp_path: Path) -> None:
    before = await last_id(api)
    await run_import(api, tmp_path, "users", "external_id,email\ni-1,i1@example.com\n")
    await run_import(
        api, tmp_path, "products", "external_id,title,price,currency\np-9,Sock,3.00,EUR\n"
    )
    assert await count_rows(api.db, "customer") == 1
    added = await new_entries(api, before)
    assert {e.resource_type for e in added} >= {"User", "Product"}
