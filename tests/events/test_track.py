"""trackEvents over GraphQL: per-type validation, mixed batches, duplicates (also concurrent),
shopper tokens, limits, denials; every refusal checked to have stored nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from domain.audit.models import AuditEntry
from tests.conftest import Api, count_rows, error_codes
from tests.events.helpers import W, gid, profile, seed, stored, track, view


async def test_valid_batch_of_every_type_is_stored(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    at = datetime.now(UTC) - timedelta(hours=2)
    events = [
        view(1, occurredAt=at.isoformat(), channel="Web", properties={"page": "/p/1"}),
        {
            "clientEventId": "e-2",
            "type": "add_to_cart",
            "userId": gid("User", ids["c-1"]),
            "productExternalId": "p-2",
        },
        {
            "clientEventId": "e-3",
            "type": "purchase",
            "userExternalId": "c-1",
            "value": "19.90",
            "currency": "eur",
        },
        {
            "clientEventId": "e-4",
            "type": "review",
            "userExternalId": "c-1",
            "productExternalId": "p-1",
            "rating": 4,
        },
        {"clientEventId": "e-5", "type": "search", "anonymousId": "anon-1", "query": "red shoes"},
        {
            "clientEventId": "e-6",
            "type": "message_click",
            "userExternalId": "c-2",
            "campaignId": "17",
        },
        {"clientEventId": "e-7", "type": "custom:wishlist_share", "userExternalId": "c-2"},
        {"clientEventId": "e-8", "type": "share", "anonymousId": "anon-1"},
    ]
    result = await track(api, events)
    assert result == {"accepted": 8, "duplicates": 0, "rejected": 0, "unlinked": 0, "errors": []}
    rows = {e.client_event_id: e for e in await stored(api.db)}
    assert rows["e-1"].customer_id == ids["c-1"] and rows["e-1"].product_id == ids["p-1"]
    assert rows["e-1"].channel == "web" and rows["e-1"].properties == {"page": "/p/1"}
    assert abs(rows["e-1"].occurred_at - at) < timedelta(milliseconds=1)
    assert rows["e-2"].product_id == ids["p-2"]
    assert (rows["e-3"].value, rows["e-3"].currency) == (Decimal("19.90"), "EUR")
    assert rows["e-4"].properties == {"rating": 4}
    assert rows["e-5"].customer_id is None and rows["e-5"].anonymous_id == "anon-1"
    assert rows["e-5"].properties == {"query": "red shoes"}
    assert rows["e-6"].campaign_id == 17
    assert rows["e-7"].type == "custom:wishlist_share"
    assert {r.source_client_id for r in rows.values()} == {rows["e-1"].source_client_id}
    # Cheap profile parts: one row per linked customer.
    count, first, _last = await profile(api.db, ids["c-1"]) or (0, None, None)
    assert count == 4
    assert abs(first - at) < timedelta(milliseconds=1)
    assert (await profile(api.db, ids["c-2"]) or (0,))[0] == 2
    assert await profile(api.db, ids["c-3"]) is None
    async with api.db.read_only() as session:
        entries = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "events.track"))  # type: ignore[arg-type]
        )
    assert len(entries) == 1
    assert entries[0].details == {"accepted": 8, "duplicates": 0, "rejected": 0, "unlinked": 0}


INVALID = [
    (
        {"clientEventId": "", "type": "view", "userExternalId": "c-1", "productExternalId": "p-1"},
        "INVALID",
        "clientEventId",
    ),
    (
        {
            "clientEventId": "x" * 129,
            "type": "view",
            "userExternalId": "c-1",
            "productExternalId": "p-1",
        },
        "INVALID",
        "clientEventId",
    ),
    ({"clientEventId": "x", "type": "veiw", "userExternalId": "c-1"}, "INVALID_TYPE", "type"),
    ({"clientEventId": "x", "type": "custom:", "userExternalId": "c-1"}, "INVALID_TYPE", "type"),
    (
        {"clientEventId": "x", "type": "view", "userExternalId": "c-1"},
        "REQUIRED",
        "productExternalId",
    ),
    (
        {"clientEventId": "x", "type": "favorite", "userExternalId": "c-1"},
        "REQUIRED",
        "productExternalId",
    ),
    ({"clientEventId": "x", "type": "purchase", "userExternalId": "c-1"}, "REQUIRED", "value"),
    (
        {"clientEventId": "x", "type": "purchase", "userExternalId": "c-1", "value": "5.00"},
        "REQUIRED",
        "currency",
    ),
    (
        {
            "clientEventId": "x",
            "type": "purchase",
            "userExternalId": "c-1",
            "value": "5.00",
            "currency": "XYZ",
        },
        "INVALID_CURRENCY",
        "currency",
    ),
    (
        {
            "clientEventId": "x",
            "type": "purchase",
            "userExternalId": "c-1",
            "value": "-1",
            "currency": "EUR",
        },
        "INVALID_VALUE",
        "value",
    ),
    (
        {
            "clientEventId": "x",
            "type": "purchase",
            "userExternalId": "c-1",
            "value": "1.001",
            "currency": "EUR",
        },
        "INVALID_VALUE",
        "value",
    ),
    (
        {
            "clientEventId": "x",
            "type": "review",
            "userExternalId": "c-1",
            "productExternalId": "p-1",
        },
        "REQUIRED",
        "rating",
    ),
    (
        {
            "clientEventId": "x",
            "type": "review",
            "userExternalId": "c-1",
            "productExternalId": "p-1",
            "rating": 6,
        },
        "INVALID_RATING",
        "rating",
    ),
    (
        {
            "clientEventId": "x",
            "type": "review",
            "userExternalId": "c-1",
            "productExternalId": "p-1",
            "rating": 0,
        },
        "INVALID_RATING",
        "rating",
    ),
    (
        {
            "clientEventId": "x",
            "type": "view",
            "userExternalId": "c-1",
            "productExternalId": "p-1",
            "rating": 3,
        },
        "INVALID",
        "rating",
    ),
    ({"clientEventId": "x", "type": "search", "userExternalId": "c-1"}, "REQUIRED", "query"),
    (
        {"clientEventId": "x", "type": "message_open", "userExternalId": "c-1"},
        "REQUIRED",
        "campaignId",
    ),
    (
        {"clientEventId": "x", "type": "message_open", "userExternalId": "c-1", "messageId": "abc"},
        "INVALID_ID",
        "messageId",
    ),
    (
        {
            "clientEventId": "x",
            "type": "view",
            "userExternalId": "c-1",
            "productExternalId": "nope",
        },
        "UNKNOWN_PRODUCT",
        "productExternalId",
    ),
    (
        {"clientEventId": "x", "type": "share", "userExternalId": "nobody"},
        "UNKNOWN_USER",
        "userExternalId",
    ),
    ({"clientEventId": "x", "type": "share", "userId": "bad-id"}, "INVALID_ID", "userId"),
    ({"clientEventId": "x", "type": "share"}, "REQUIRED", "userId"),
    (
        {"clientEventId": "x", "type": "share", "userExternalId": "c-1", "properties": [1]},
        "INVALID_PROPERTIES",
        "properties",
    ),
    (
        {
            "clientEventId": "x",
            "type": "share",
            "userExternalId": "c-1",
            "properties": {"blob": "y" * 5000},
        },
        "TOO_LARGE",
        "properties",
    ),
    (
        {
            "clientEventId": "x",
            "type": "share",
            "userExternalId": "c-1",
            "occurredAt": "2020-01-01T00:00:00+00:00",
        },
        "TOO_OLD",
        "occurredAt",
    ),
    (
        {
            "clientEventId": "x",
            "type": "share",
            "userExternalId": "c-1",
            "occurredAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
        "TOO_NEW",
        "occurredAt",
    ),
]


@pytest.mark.parametrize(("event", "code", "field"), INVALID)
async def test_invalid_event_is_rejected_with_a_typed_error(
    api: Api, settings: Any, event: dict[str, Any], code: str, field: str
) -> None:
    await seed(api.db, settings)
    result = await track(api, [event])
    assert (result["accepted"], result["rejected"]) == (0, 1), result
    assert [(e["code"], e["field"], e["index"]) for e in result["errors"]] == [
        (code, ["events", "0", field], 0)
    ], result
    assert await count_rows(api.db, "event") == 0
    assert await count_rows(api.db, "customer_profile") == 0


async def test_naive_timestamp_is_refused(api: Api, settings: Any) -> None:
    await seed(api.db, settings)
    body = await api.gql(
        'mutation { trackEvents(input: {events: [{clientEventId: "x", type: "share", '
        'userExternalId: "c-1", occurredAt: "2026-01-01T00:00:00"}]}) { accepted } }',
        scopes=W,
    )
    # A naive time is either refused by the DateTime scalar or by the service; never stored.
    if "errors" not in body:
        assert body["data"]["trackEvents"]["accepted"] == 0
    assert await count_rows(api.db, "event") == 0


async def test_mixed_batch_stores_exactly_the_valid_events(api: Api, settings: Any) -> None:
    await seed(api.db, settings)
    events = [
        view(1),
        {"clientEventId": "e-2", "type": "view", "userExternalId": "c-1"},  # no product
        view(3, productExternalId="p-2"),
        {"clientEventId": "e-4", "type": "purchase", "userExternalId": "c-1"},  # no value
        view(5, userExternalId="ghost"),
    ]
    result = await track(api, events)
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 0, 3)
    assert sorted(e["index"] for e in result["errors"]) == [1, 3, 4]
    assert [e.client_event_id for e in await stored(api.db)] == ["e-1", "e-3"]


async def test_duplicates_within_and_across_calls_are_stored_once(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    first = await track(api, [view(1), view(2), view(1, productExternalId="p-2")])
    assert (first["accepted"], first["duplicates"]) == (2, 1)
    again = await track(api, [view(1), view(2), view(3)])
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (1, 2, 0)
    rows = await stored(api.db)
    assert [e.client_event_id for e in rows] == ["e-1", "e-2", "e-3"]
    assert rows[0].product_id == ids["p-1"]  # the first occurrence wins
    assert (await profile(api.db, ids["c-1"]) or (0,))[0] == 3  # duplicates not counted


async def test_the_same_batch_sent_twice_concurrently_is_stored_once(
    api: Api, settings: Any, backend: str
) -> None:
    """Two HTTP calls gathered: on PostgreSQL two transactions race on the unique index."""
    ids = await seed(api.db, settings)
    batch = [view(n, productExternalId=f"p-{1 + n % 2}") for n in range(200)]
    token = await api.token(W)
    results = await asyncio.gather(*(track(api, batch, token=token) for _ in range(3)))
    assert sum(r["accepted"] for r in results) == 200
    assert sum(r["duplicates"] for r in results) == 400
    assert all(r["errors"] == [] for r in results)
    assert await count_rows(api.db, "event") == 200
    assert (await profile(api.db, ids["c-1"]) or (0,))[0] == 200


async def test_more_than_500_events_are_refused(api: Api, settings: Any) -> None:
    await seed(api.db, settings)
    result = await track(api, [view(n) for n in range(501)])
    assert result["accepted"] == 0 and result["rejected"] == 501
    assert [(e["code"], e["field"], e["index"]) for e in result["errors"]] == [
        ("TOO_MANY", ["events"], None)
    ]
    assert await count_rows(api.db, "event") == 0
    assert (await track(api, [view(n) for n in range(500)]))["accepted"] == 500


async def test_missing_scope_or_token_is_refused_and_stores_nothing(
    api: Api, settings: Any
) -> None:
    await seed(api.db, settings)
    variables = {"events": [view(1)]}
    from tests.events.helpers import TRACK

    body = await api.gql(TRACK, variables, scopes="users:write users:read")
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None
    body = await api.gql(TRACK, variables)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert await count_rows(api.db, "event") == 0
    assert await count_rows(api.db, "audit_entry") == 0


async def test_shopper_token_sends_only_its_own_events(api: Api, settings: Any) -> None:
    from tests.me.helpers import shopper_token

    ids = await seed(api.db, settings)
    token = await shopper_token(api, "c-1")
    own = await track(
        api,
        [
            {"clientEventId": "s-1", "type": "view", "productExternalId": "p-1"},
            view(2, userExternalId="c-1"),
            view(3, userExternalId=None, userId=gid("User", ids["c-1"]), anonymousId="b-9"),
        ],
        token=token,
    )
    assert (own["accepted"], own["rejected"]) == (3, 0), own["errors"]
    assert {e.customer_id for e in await stored(api.db)} == {ids["c-1"]}
    for other in (
        {"userExternalId": "c-2"},
        {"userExternalId": None, "userId": gid("User", ids["c-2"])},
        {"userExternalId": "no-such-user"},
    ):
        before = await count_rows(api.db, "event")
        refused = await track(api, [view(10), view(11, **other)], token=token)
        assert refused["accepted"] == 0 and refused["rejected"] == 2
        assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN_USER"]
        assert await count_rows(api.db, "event") == before
    assert (await profile(api.db, ids["c-2"])) is None
