"""The faster DateTime parser accepts what Strawberry's dateutil parser accepts, with the same
result, and refuses what it refuses."""

from __future__ import annotations

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
