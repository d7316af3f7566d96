"""The column-wise interaction read (``read_interactions``: consent in SQL, chunks of numpy arrays,
vectorised weights) gives the same interactions as the row-wise read it replaced (kept in
``bench/recommend_read.py`` as the baseline), on both databases: reviews with and without a usable
rating, anonymous events, kinds that do not count, events naming an order, cancelled orders,
refunded lines, events too old to count, and every shape of personalization consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert

from bench.recommend_read import old_from_events, old_interaction_rows
from domain.consents.models import Consent
from domain.db import Database
from domain.events.models import Event
from domain.orders.models import Order, OrderLine
from domain.recommend import service
from domain.settings import Settings
from domain.sql import table
from recommend.data import WeightSettings
from tests.recommend.models_world import seed

NOW = datetime.now(UTC).replace(microsecond=0)


def consent(customer: int, granted: bool, minutes_ago: int) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "purpose": "personalization",
        "granted": granted,
        "source": "test",
        "policy_version": "1",
        "actor_client_id": "test",
        "recorded_at": NOW - timedelta(minutes=minutes_ago),
    }


async def edge_cases(db: Database) -> None:
    """On top of the seeded store (customers 1..60, products 1..40, orders 1..60)."""
    at = NOW - timedelta(days=2, microseconds=123_457)
    events = [
        # customer, type, product, properties, order, occurred_at
        (2, "review", 3, {"rating": 4}, None, at),
        (2, "review", 4, {"rating": 4.5}, None, at),  # not a whole number: does not count
        (3, "review", 5, {}, None, at),  # no rating: does not count
        (3, "review", 6, {"rating": True}, None, at),  # a boolean is no rating
        (3, "review", 7, {"rating": 4.0}, None, at),  # 4.0 is a float in JSON: no rating
        (3, "review", 8, {"rating": "4"}, None, at),  # a string: no rating
        (3, "review", 9, {"rating": 5, "text": "good"}, None, at),  # counts: 5
        (None, "view", 7, {}, None, at),  # anonymous
        (4, "search", None, {}, None, at),  # no product, a kind that does not count
        (4, "share", 8, {}, None, at),  # a kind that does not count
        (5, "purchase", 9, {}, 5, at),  # names an order: the order is its basket
        (5, "favorite", 10, {}, None, NOW - timedelta(days=500)),  # older than the maximum age
        (6, "add_to_cart", 11, {}, None, NOW + timedelta(hours=3)),  # clock skew: the future
    ]
    async with db.unit_of_work() as session:
        await session.execute(
            insert(table(Event)),
            [
                {
                    "client_event_id": f"edge{n}",
                    "customer_id": c,
                    "type": kind,
                    "product_id": p,
                    "properties": props,
                    "order_id": order,
                    "source_client_id": "test",
                    "occurred_at": when,
                    "received_at": when,
                }
                for n, (c, kind, p, props, order, when) in enumerate(events)
            ],
        )
        for oid, customer, status in ((900, 7, "cancelled"), (901, 8, "paid")):
            await session.execute(
                insert(table(Order)).values(
                    id=oid,
                    external_id=f"edge-o{oid}",
                    customer_id=customer,
                    status=status,
                    currency="EUR",
                    subtotal=Decimal("20"),
                    total=Decimal("20"),
                    source_client_id="test",
                    placed_at=at,
                    created_at=at,
                    updated_at=at,
                )
            )
            for line_no, refunded in ((1, 0), (2, 2), (3, 1)):  # line 2 fully refunded
                await session.execute(
                    insert(table(OrderLine)).values(
                        order_id=oid,
                        line_no=line_no,
                        product_id=12 + line_no,
                        product_external_id="x",
                        quantity=2,
                        refunded_quantity=refunded,
                        unit_price=Decimal("5"),
                        total=Decimal("10"),
                    )
                )
        await session.execute(
            insert(table(Consent)),
            [
                consent(10, False, 30),  # refused
                consent(11, False, 30),  # refused, then granted again
                consent(11, True, 10),
                consent(12, True, 30),  # granted, then refused
                consent(12, False, 10),
                consent(13, True, 30),  # granted
            ],
        )


def sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["user", "item", "time", "basket", "weight"]).reset_index(drop=True)


async def old_read(db: Database, settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    async with db.read_only() as session:
        rows = await old_interaction_rows(session, settings)
    return rows, old_from_events(rows, now=NOW, settings=WeightSettings())


async def test_the_column_read_equals_the_row_read(db: Database, settings: Settings) -> None:
    await seed(db)
    await edge_cases(db)
    for default in (True, False):
        s = settings.model_copy(update={"analytics_consent_default": default})
        rows, want = await old_read(db, s)
        async with db.read_only() as session:
            got = await service.read_interactions(session, s, now=NOW)
            as_dicts = await service.interaction_rows(session, s)
        key = ("user", "item", "occurred_at", "type", "basket")
        assert sorted(as_dicts, key=lambda r: tuple(str(r[k]) for k in key)) == sorted(
            rows, key=lambda r: tuple(str(r[k]) for k in key)
        )
        a, b = sorted_frame(want.frame), sorted_frame(got.frame)
        pd.testing.assert_frame_equal(
            a.drop(columns="weight"), b.drop(columns="weight"), check_exact=True
        )
        # The old loop took libm's pow, the new path numpy's: at most the last bits differ.
        np.testing.assert_allclose(a["weight"], b["weight"], rtol=1e-12, atol=0)
        assert got.has_ratings == want.has_ratings
        users = set(got.frame["user"])
        if default:
            assert len(got) > 500 and got.has_ratings
            assert {"10", "12"}.isdisjoint(users) and {"11", "13", "2"} <= users
        else:  # opt-in: only those whose latest record grants it
            assert users == {"11", "13"}
        f = got.frame
        if default:
            review = f[(f["user"] == "2") & (f["rating"].notna())]
            assert review["item"].tolist() == ["3"] and review["weight"].tolist() == [4.0]
            assert not ((f["user"] == "2") & (f["item"] == "4")).any()
            assert not ((f["user"] == "3") & f["item"].isin(["5", "6", "7", "8"])).any()
            five = f[(f["user"] == "3") & (f["item"] == "9") & f["rating"].notna()]
            assert five["weight"].tolist() == [5.0]
            assert not ((f["user"] == "5") & (f["item"] == "10")).any()  # too old
            assert f[(f["user"] == "5") & (f["item"] == "9")]["basket"].tolist() == ["o5"]
            future = f[(f["user"] == "6") & (f["item"] == "11")]["weight"].tolist()
            assert future == [3.0]  # not boosted above its kind's weight
            # The cancelled order and the fully refunded line count for nothing.
            assert not (f["basket"] == "o900").any()
            assert sorted(f[f["basket"] == "o901"]["item"]) == ["13", "15"]


async def test_empty_store_and_small_chunks(db: Database, settings: Settings) -> None:
    async with db.read_only() as session:
        empty = await service.interaction_columns(session, settings)
        assert len(empty) == 0 and empty.time.dtype == np.dtype("datetime64[us]")
        data = await service.read_interactions(session, settings, now=NOW)
    assert len(data) == 0
    await seed(db, users=20, items=10)
    seen: list[int] = []
    async with db.read_only() as session:
        whole = await service.interaction_columns(session, settings)
        chunked = await service.interaction_columns(
            session, settings, chunk=7, progress=seen.append
        )
    # Told as chunks arrive (PostgreSQL sends COPY data in blocks of many rows).
    assert seen == sorted(seen) and seen[-1] == len(whole) and len(seen) >= 2
    for name in ("user", "item", "kind", "time", "rating", "order"):
        a, b = getattr(whole, name), getattr(chunked, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.sort(a.astype(str)), np.sort(b.astype(str)))
