"""Loading interactions: both file shapes, the retail filters, weights, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from recommend.data import DataError, WeightSettings, event_weight, from_events, load, loads

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def test_interactions_csv_with_iso_and_unix_times_and_weights() -> None:
    data = loads(
        "user_id,item_id,timestamp,weight\n"
        "a,x,2024-01-01T00:00:00Z,2\n"
        "a,y,1704067260,1.5\n"
        "b,x,2024-01-01T00:02:00+01:00,1\n"
    )
    f = data.frame
    assert f["user"].tolist() == ["a", "a", "b"]
    assert f["time"].tolist() == [1704067200.0, 1704067260.0, 1704067200.0 - 3600 + 120]
    assert f["weight"].tolist() == [2.0, 1.5, 1.0]
    assert not data.has_ratings
    # Without order numbers a basket is one user's day.
    assert f["basket"].tolist()[0] == f["basket"].tolist()[1] != f["basket"].tolist()[2]


def test_ratings_column_is_explicit_and_is_the_weight() -> None:
    data = loads("USER_ID,item_id,timestamp,rating\nu,i,2024-01-01,4\nu,j,2024-01-02,2.5\n")
    assert data.has_ratings
    assert data.frame["rating"].tolist() == [4.0, 2.5]
    assert data.frame["weight"].tolist() == [4.0, 2.5]


def test_retail_order_lines_drop_guests_cancellations_and_returns() -> None:
    data = loads(
        f"{RETAIL_HEADER}\n"
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01T08:26:00,2.55,17850,United Kingdom\n"
        "536365,71053,WHITE METAL LANTERN,6,2010-12-01T08:26:00,3.39,17850,United Kingdom\n"
        "536366,22633,HAND WARMER UNION JACK,6,2010-12-01T08:28:00,1.85,,United Kingdom\n"
        "C536379,D,Discount,-1,2010-12-01T09:41:00,27.5,14527,United Kingdom\n"
        "536380,22961,JAM MAKING SET,0,2010-12-01T09:41:00,1.45,14527,United Kingdom\n"
        "536381,22961,JAM MAKING SET,-2,2010-12-01T09:41:00,1.45,14527,United Kingdom\n"
        "536382,22961,JAM MAKING SET,2,2010-12-02T09:41:00,1.45,14527.0,United Kingdom\n"
    )
    f = data.frame
    assert f["user"].tolist() == ["17850", "17850", "14527"]
    assert f["item"].tolist() == ["85123A", "71053", "22961"]
    assert f["basket"].tolist() == ["536365", "536365", "536382"]
    assert f["weight"].tolist() == [1.0, 1.0, 1.0]
    # Descriptions of every line (guest rows too) describe the items.
    assert data.item_text["22633"] == "HAND WARMER UNION JACK"
    assert data.item_text["85123A"] == "WHITE HANGING HEART"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        ("user_id,item_id,timestamp\n", "no usable interactions"),
        ("user,item,time\nu,i,1\n", "missing user_id, item_id, timestamp"),
        ("user_id,item_id\nu,i\n", "missing timestamp"),
        ("user_id,item_id,timestamp\nu,i,yesterday\n", "<data>:2: bad timestamp 'yesterday'"),
        ("user_id,item_id,timestamp\nu,i,1\nu,j,\n", "<data>:3: empty timestamp"),
        ("user_id,item_id,timestamp\nu,i,2024-13-01\n", "<data>:2: bad timestamp"),
        ("user_id,item_id,timestamp\nu,,1\n", "<data>:2: empty user_id or item_id"),
        ("user_id,item_id,timestamp\nu,i\n", "<data>:2: 2 fields, expected at least 3"),
        ("a,b,user_id,item_id,timestamp\n1,2,u\n", "<data>:2: 3 fields, expected at least 5"),
        ("user_id,item_id,timestamp,weight\nu,i,1,heavy\n", "weight 'heavy' is not a number"),
        ("user_id,item_id,timestamp,weight\nu,i,1,-1\n", "weight must be above 0"),
        ("user_id,item_id,timestamp,rating\nu,i,1,nan\n", "rating must be a finite number"),
        ("user_id,item_id,timestamp,rating,weight\nu,i,1,1,1\n", "not both"),
        (f"{RETAIL_HEADER}\n1,A,a,x,2010-12-01,1,2,UK\n", "Quantity 'x' is not a number"),
        (f"{RETAIL_HEADER}\n1,A,a,1,noon,1,2,UK\n", "InvoiceDate: bad timestamp 'noon'"),
        (f"{RETAIL_HEADER}\nC1,A,a,-1,2010-12-01,1,2,UK\n", "no usable interactions"),
    ],
)
def test_bad_input_gives_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        loads(text)
    assert message in str(caught.value)


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="is a directory"):
        load(tmp_path)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        load(binary)


def test_event_weights_by_kind_rating_and_age() -> None:
    s = WeightSettings()
    assert [
        event_weight(k, age_days=0) for k in ("view", "favorite", "add_to_cart", "purchase")
    ] == [
        1.0,
        2.0,
        3.0,
        5.0,
    ]
    assert event_weight("purchase", age_days=90) == pytest.approx(2.5)  # one half-life
    assert event_weight("review", age_days=200, rating=4) == 4.0  # the explicit rating wins
    assert event_weight("view", age_days=400) is None  # beyond retention
    assert event_weight("search", age_days=0) is None  # does not count
    assert event_weight("view", age_days=10, settings=WeightSettings(half_life_days=0)) == 1.0
    assert s.decay(-5) == 1.0  # a clock-skewed future event is not boosted


def test_interactions_from_events() -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    rows = [
        {"user": 1, "item": "p1", "type": "view", "occurred_at": now - timedelta(days=90)},
        {"user": 1, "item": "p2", "type": "purchase", "occurred_at": now, "basket": "o1"},
        {"user": 2, "item": "p1", "type": "review", "rating": 2, "occurred_at": now},
        {"user": 2, "item": None, "type": "view", "occurred_at": now},
        {"user": 2, "item": "p3", "type": "page_view", "occurred_at": now},
    ]
    data = from_events(rows, now=now)
    f = data.frame
    assert f["item"].tolist() == ["p1", "p2", "p1"]
    assert f["weight"].tolist() == [0.5, 5.0, 2.0]
    assert data.has_ratings and np.isnan(f["rating"][0]) and f["rating"][2] == 2.0
    assert f["basket"][1] == "o1"


CASES = [
    "user_id,item_id,timestamp\nu1,i1,1700000000\nu2,i2,1700000000.5\n\nu1,i3,1e9\n",
    "USER_ID , Item_Id ,timestamp,weight\n u1 , i1 ,2024-01-01T10:00:00+02:00,2\n"
    "u2,i2,2024-01-01,0.5\nu3,i3,2024-02-29T23:59:59Z,3\n",
    "extra,user_id,item_id,timestamp,rating\nx,u1,i1,2024-01-01 10:00:00,4.5\ny,u1,i2,1704103200,1\n",
]


@pytest.mark.parametrize("text", CASES)
def test_the_fast_reader_equals_the_row_loop(text: str) -> None:
    import csv
    import io

    from recommend.data import _fast_interactions, _load_interactions

    reader = csv.reader(io.StringIO(text))
    names = [h.strip().lower() for h in next(reader)]
    fast = _fast_interactions(text, names, "<data>")
    assert fast is not None
    slow = _load_interactions(reader, names, "<data>")
    assert fast.frame.equals(slow.frame), (fast.frame, slow.frame)
    assert fast.has_ratings == slow.has_ratings
