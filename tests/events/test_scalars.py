"""The faster DateTime parser accepts what Strawberry's dateutil parser accepts, with the same
result, and refuses what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from dateutil.parser import isoparse

from api.scalars import parse_datetime

ACCEPTED = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00+00:00",
    "2026-01-01T10:20:30.123+02:00",
    "2026-01-01T10:20:30.123456-05:30",
    "2026-01-01T10:20:30",
    "2026-01-01T10:20",
    "2026-01-01",
    "20260101T102030Z",
    "2026-W01-1T10:00:00Z",
    "2026-01-01T10:20:30,5Z",
    "2026-01-01T24:00:00Z",
]


@pytest.mark.parametrize("value", ACCEPTED)
def test_same_result_as_isoparse(value: str) -> None:
    try:
        expected = isoparse(value)
    except ValueError:
        pytest.skip(f"isoparse refuses {value!r} too")
    assert parse_datetime(value) == expected
    assert parse_datetime(value).utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01T25:00Z"])
def test_refused_like_isoparse(value: str) -> None:
    with pytest.raises(ValueError):
        isoparse(value)
    with pytest.raises(ValueError):
        parse_datetime(value)


def test_strawberry_and_fast_path_conversions_agree() -> None:
    """``items_of`` (Strawberry objects) and ``items_of_coerced`` (graphql-core dicts) give the
    service the same items."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from api.events.mutations import EventInput, items_of, items_of_coerced
    from api.ids import encode_id

    at = datetime(2026, 1, 1, tzinfo=UTC)
    full: dict[str, Any] = {
        "clientEventId": "e-1",
        "type": "purchase",
        "userId": encode_id("User", 7),
        "anonymousId": "b-1",
        "properties": {"a": 1},
        "value": Decimal("1.50"),
        "currency": "EUR",
        "channel": "web",
        "campaignId": "12",
        "messageId": "bad",
        "occurredAt": at,
    }
    snake = {
        "clientEventId": "client_event_id",
        "userId": "user_id",
        "anonymousId": "anonymous_id",
        "campaignId": "campaign_id",
        "messageId": "message_id",
        "occurredAt": "occurred_at",
    }
    objects = [
        EventInput(**{snake.get(k, k): v for k, v in full.items()}),  # type: ignore[arg-type]
        EventInput(client_event_id="e-2", type="share", user_external_id="c-1"),
    ]
    dicts: list[dict[str, Any]] = [
        full,
        {"clientEventId": "e-2", "type": "share", "userExternalId": "c-1"},
    ]
    assert items_of(objects) == items_of_coerced(dicts)
    assert items_of_coerced(dicts)[0] == {
        "client_event_id": "e-1",
        "type": "purchase",
        "user_id": 7,
        "anonymous_id": "b-1",
        "properties": {"a": 1},
        "value": Decimal("1.50"),
        "currency": "EUR",
        "channel": "web",
        "campaign_id": 12,
        "message_id": "bad",
        "occurred_at": at,
    }
