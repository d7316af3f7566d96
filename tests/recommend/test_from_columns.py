"""The columnar interaction builder (``from_columns``, what training uses) equals the row loop
(``from_events``) exactly, on random rows with review ratings, too-old and future events, unknown
kinds, missing ids, naive and aware datetimes, and baskets given or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from recommend.data import WeightSettings, from_columns, from_events

NOW = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
KINDS = ["view", "favorite", "add_to_cart", "purchase", "review", "search", "page_view"]


def random_rows(seed: int, n: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for _ in range(n):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        # Ages from a day in the future to 450 days back (max age 395), to the microsecond.
        at = NOW - timedelta(microseconds=int(rng.integers(-86_400_000_000, 450 * 86_400_000_000)))
        style = int(rng.integers(3))
        if style == 0:
            at = at.replace(tzinfo=None)  # naive: UTC
        elif style == 1:
            at = at.astimezone(timezone(timedelta(hours=int(rng.integers(-11, 12)))))
        rating: object = None
        if kind == "review" or rng.random() < 0.05:
            rating = [None, 1, 2, 3, 4, 5, 3.5][int(rng.integers(7))]
        basket = [None, "", f"o{int(rng.integers(40))}"][int(rng.integers(3))]
        user: object = int(rng.integers(1, 30)) if rng.random() < 0.98 else None
        item: object = f"p{int(rng.integers(50))}" if rng.random() < 0.98 else None
        rows.append(
            {
                "user": user,
                "item": item,
                "type": kind,
                "occurred_at": at,
                "rating": rating,
                "basket": basket,
            }
        )
    return rows


def columns(rows: list[dict[str, object]]) -> dict[str, list[object]]:
    return {
        k: [r[k] for r in rows] for k in ("user", "item", "type", "occurred_at", "rating", "basket")
    }


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_columns_equal_the_row_loop(seed: int) -> None:
    rows = random_rows(seed, 3000)
    settings = WeightSettings(half_life_days=[90.0, 30.0, 0.0, 7.5][seed])
    want = from_events(rows, now=NOW, settings=settings)
    c = columns(rows)
    got = from_columns(
        c["user"],
        c["item"],
        c["type"],
        c["occurred_at"],
        c["rating"],
        c["basket"],
        now=NOW,
        settings=settings,
    )
    assert len(want) > 1000 and len(want) < 3000  # rows were dropped, most kept
    assert_same(got.frame, want.frame)
    assert got.has_ratings == want.has_ratings and got.source == want.source


def test_numpy_columns_as_the_database_reader_gives_them() -> None:
    rows = random_rows(7, 2000)
    for r in rows:
        r["user"] = r["user"] or 1
        r["item"] = int(str(r["item"] or "p0")[1:])
        at = r["occurred_at"]
        assert isinstance(at, datetime)
        r["occurred_at"] = at if at.tzinfo else at.replace(tzinfo=UTC)
    want = from_events(rows, now=NOW)
    c = columns(rows)
    times = np.array(
        [
            pd.Timestamp(t).tz_convert(UTC).tz_localize(None).to_datetime64()
            for t in c["occurred_at"]
        ]
    ).astype("datetime64[us]")
    ratings = np.array([np.nan if x is None else float(x) for x in c["rating"]])  # type: ignore[arg-type]
    got = from_columns(
        np.array(c["user"], dtype=np.int64),
        np.array(c["item"], dtype=np.int64),
        np.array(c["type"], dtype=object),
        times,
        ratings,
        np.array(c["basket"], dtype=object),
        now=NOW,
    )
    assert_same(got.frame, want.frame)


def test_no_ratings_no_baskets_and_empty() -> None:
    rows = [
        {"user": 1, "item": "a", "type": "view", "occurred_at": NOW - timedelta(days=1)},
        {"user": 1, "item": "b", "type": "purchase", "occurred_at": NOW - timedelta(days=1)},
        {"user": 2, "item": "a", "type": "favorite", "occurred_at": NOW - timedelta(days=3)},
    ]
    want = from_events(rows, now=NOW)
    c = {k: [r[k] for r in rows] for k in ("user", "item", "type", "occurred_at")}
    got = from_columns(c["user"], c["item"], c["type"], c["occurred_at"], now=NOW)
    assert_same(got.frame, want.frame)
    assert not got.has_ratings
    assert got.frame["basket"].tolist() == [f"1@{(NOW.timestamp() - 86400) // 86400:.0f}"] * 2 + [
        f"2@{(NOW.timestamp() - 3 * 86400) // 86400:.0f}"
    ]
    empty = from_columns([], [], [], np.array([], dtype="datetime64[us]"), now=NOW)
    assert len(empty) == 0 and list(empty.frame.columns) == list(want.frame.columns)


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        from_columns([1, 2], ["a"], ["view", "view"], [NOW, NOW], now=NOW)
