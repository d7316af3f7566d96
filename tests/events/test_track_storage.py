"""What ``track_events`` stores is exactly what was sent, for awkward values too: on PostgreSQL the
rows travel as one JSON document (``json_to_recordset``), so quotes, backslashes, non-ASCII text,
the largest ids, exact amounts, microseconds and nested properties must come back unchanged; and a
value too long for its column still fails the insert instead of being cut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from domain.audit.service import Actor
from domain.db import Database
from domain.events import service
from domain.events.models import Event
from domain.settings import Settings
from tests.events.helpers import seed

ACTOR = Actor(client_id='odd "client" \\ é', subject="test")


async def test_awkward_values_are_stored_exactly(db: Database, settings: Settings) -> None:
    ids = await seed(db, settings)
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    at = min(at, datetime.now(UTC) - timedelta(hours=1))
    props: dict[str, Any] = {
        "quote": 'say "hi"',
        "slash": "a\\b/c",
        "text": "Zoë 北京 🙂\n\ttab",
        "nested": {"list": [1, 2.5, None, True, {"deep": []}], "empty": {}},
        "big": 2**62,
        "neg": -7,
    }
    items: list[dict[str, Any]] = [
        {
            "client_event_id": 'id "1" \\ é',
            "type": "purchase",
            "user_external_id": "c-1",
            "value": "12345678.90",
            "currency": "eur",
            "channel": "Émail",
            "campaign_id": service.MAX_ID,
            "message_id": 1,
            "order_id": 2**40,
            "properties": props,
            "occurred_at": at,
        },
        {
            "client_event_id": "x" * 128,
            "type": "custom:a.b-c_d",
            "anonymous_id": "anon \"'\\",
            "query": None,
        },
        {
            "client_event_id": "search-1",
            "type": "search",
            "user_external_id": "c-2",
            "query": '  red "shoes"  ',
            "properties": {"query": "overwritten"},
        },
        {
            "client_event_id": "review-1",
            "type": "review",
            "user_external_id": "c-1",
            "product_external_id": "p-2",
            "rating": 5,
            "value": Decimal("0.00"),
            "currency": "JPY",
        },
    ]
    async with db.unit_of_work() as session:
        result = await service.track_events(session, ACTOR, items, settings)
    assert (result.accepted, result.rejected, result.duplicates) == (4, 0, 0), result.errors
    async with db.read_only() as session:
        rows = {e.client_event_id: e for e in await session.scalars(select(Event))}  # type: ignore[arg-type]
    first = rows['id "1" \\ é']
    assert (first.customer_id, first.type, first.value, first.currency, first.channel) == (
        ids["c-1"],
        "purchase",
        Decimal("12345678.90"),
        "EUR",
        "émail",
    )
    assert (first.campaign_id, first.message_id, first.order_id) == (service.MAX_ID, 1, 2**40)
    assert first.properties == props
    assert first.occurred_at == at
    assert first.source_client_id == ACTOR.client_id
    anonymous = rows["x" * 128]
    assert anonymous.customer_id is None and anonymous.anonymous_id == "anon \"'\\"
    assert anonymous.properties == {} and anonymous.value is None and anonymous.product_id is None
    assert rows["search-1"].properties == {"query": 'red "shoes"'}
    review = rows["review-1"]
    assert (review.product_id, review.properties, review.value) == (
        ids["p-2"],
        {"rating": 5},
        Decimal("0.00"),
    )
    assert len({r.received_at for r in rows.values()}) == 1


async def test_a_value_too_long_for_its_column_fails_instead_of_being_cut(
    db: Database, settings: Settings, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    await seed(db, settings)
    # currency passes the service's checks only as a known code; channel is checked at 32; the
    # source client id is cut to 64 by the service. Past the checks, only a direct insert of a row
    # could be too long: the same rows document the service sends, with one value too long.
    rows: list[dict[str, Any]] = [
        {
            "client_event_id": "long-1",
            "customer_id": None,
            "anonymous_id": "a" * 129,
            "type": "view",
            "product_id": None,
            "properties": {},
            "value": None,
            "currency": None,
            "channel": None,
            "campaign_id": None,
            "message_id": None,
            "order_id": None,
            "source_client_id": "t",
            "occurred_at": datetime.now(UTC),
            "received_at": datetime.now(UTC),
        }
    ]
    window = service._Window.of(settings, datetime.now(UTC), "t")
    with pytest.raises(Exception, match="too long"):
        async with db.unit_of_work() as session:
            await service._store(session, rows, window)
    async with db.read_only() as session:
        assert list(await session.scalars(select(Event))) == []  # type: ignore[arg-type]
