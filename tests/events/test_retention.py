"""Retention: old raw events become daily aggregates; a second run or a crash never double-counts;
the job and the CLI run the same purge."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from domain.db import Database
from domain.events import retention
from domain.events.models import Event, EventDaily
from domain.settings import Settings
from tests.conftest import Precis, count_rows
from tests.events.helpers import seed

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def event(n: int, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "client_event_id": f"old-{n}",
        "type": "view",
        "customer_id": None,
        "anonymous_id": None,
        "product_id": None,
        "channel": None,
        "value": None,
        "currency": None,
        "properties": {},
        "source_client_id": "test",
        "occurred_at": at,
        "received_at": at,
        **extra,
    }


async def put(db: Database, rows: list[dict[str, Any]]) -> None:
    async with db.unit_of_work() as session:
        await session.execute(insert(Event.__table__), rows)  # type: ignore[attr-defined]


async def daily(db: Database) -> list[tuple[Any, ...]]:
    async with db.read_only() as session:
        rows = await session.scalars(
            select(EventDaily).order_by(EventDaily.day, EventDaily.type, EventDaily.product_id)  # type: ignore[arg-type]
        )
        return [
            (r.day, r.type, r.product_id, r.channel, r.currency, r.events, r.customers, r.value)
            for r in rows
        ]


async def test_purge_rolls_up_old_events_and_is_idempotent(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db, settings)
    c1, c2, p1 = ids["c-1"], ids["c-2"], ids["p-1"]
    old = NOW - timedelta(days=400)
    day1 = datetime(old.year, old.month, old.day, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    await put(
        db,
        [
            event(1, day1 + timedelta(hours=1), customer_id=c1, product_id=p1, channel="web"),
            event(2, day1 + timedelta(hours=2), customer_id=c1, product_id=p1, channel="web"),
            event(3, day1 + timedelta(hours=3), customer_id=c2, product_id=p1, channel="web"),
            event(4, day1 + timedelta(hours=4), anonymous_id="a", product_id=p1, channel="web"),
            event(
                5,
                day1 + timedelta(hours=5),
                type="purchase",
                customer_id=c1,
                value=Decimal("10.50"),
                currency="EUR",
            ),
            event(
                6,
                day2 + timedelta(hours=23, minutes=59),
                type="purchase",
                customer_id=c2,
                value=Decimal("4.50"),
                currency="EUR",
            ),
            event(
                7,
                day2 + timedelta(hours=1),
                type="purchase",
                customer_id=c2,
                value=Decimal("1.00"),
                currency="EUR",
            ),
            event(8, NOW - timedelta(days=10), customer_id=c1, product_id=p1),  # kept
        ],
    )
    seen: list[tuple[int, int]] = []
    result = await retention.purge(db, settings, now=NOW, progress=lambda d, t: seen.append((d, t)))
    assert result.events == 7 and result.days == [day1.date(), day2.date()]
    assert seen[0] == (0, 7) and seen[-1] == (7, 7)
    expected = [
        (day1.date(), "purchase", 0, "", "EUR", 1, 1, Decimal("10.50")),
        (day1.date(), "view", p1, "web", "", 4, 2, Decimal("0.00")),
        (day2.date(), "purchase", 0, "", "EUR", 2, 1, Decimal("5.50")),
    ]
    assert await daily(db) == expected
    async with db.read_only() as session:
        left = list(await session.scalars(select(Event.client_event_id)))  # type: ignore[call-overload]
    assert left == ["old-8"]

    again = await retention.purge(db, settings, now=NOW)
    assert again.events == 0
    assert await daily(db) == expected  # nothing counted twice

    # A late back-fill into a purged day adds to that day's aggregate.
    await put(
        db, [event(9, day1 + timedelta(hours=6), customer_id=c2, product_id=p1, channel="web")]
    )
    await retention.purge(db, settings, now=NOW)
    assert (await daily(db))[1] == (day1.date(), "view", p1, "web", "", 5, 3, Decimal("0.00"))


async def test_a_failed_day_rolls_back_whole(db: Database, settings: Settings) -> None:
    """A crash inside a day's transaction leaves its events and the aggregates as they were."""
    old = NOW - timedelta(days=500)
    await put(db, [event(n, old + timedelta(minutes=n)) for n in range(5)])
    cutoff = NOW - timedelta(days=settings.event_retention_days)
    try:
        async with db.unit_of_work() as session:
            _day, count = await retention.purge_day(session, cutoff)
            assert count == 5
            raise RuntimeError("crash after the delete, before commit")
    except RuntimeError:
        pass
    assert await count_rows(db, "event") == 5
    assert await count_rows(db, "event_daily") == 0
    result = await retention.purge(db, settings, now=NOW)
    assert result.events == 5
    assert [(r[5], r[6]) for r in await daily(db)] == [(5, 0)]


async def test_job_purges_with_the_retention_setting(db: Database, settings: Settings) -> None:
    from jobs.tasks import purge_events

    await put(
        db,
        [
            event(1, datetime.now(UTC) - timedelta(days=settings.event_retention_days + 2)),
            event(2, datetime.now(UTC) - timedelta(days=3)),
        ],
    )
    summary = await purge_events({"db": db, "settings": settings})
    assert (summary["events"], summary["days"]) == (1, 1)
    assert await count_rows(db, "event") == 1
    assert await count_rows(db, "audit_entry") == 1


def test_cli_purge_with_older_than_days(precis: Precis, database: Path) -> None:
    import asyncio
    import sqlite3

    url = f"sqlite+aiosqlite:///{database}"
    s = Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]

    async def setup() -> None:
        db = Database(s)
        try:
            await put(
                db,
                [
                    event(1, datetime.now(UTC) - timedelta(days=40)),
                    event(2, datetime.now(UTC) - timedelta(days=5)),
                ],
            )
        finally:
            await db.dispose()

    asyncio.run(setup())
    proc = precis("events", "purge", "--older-than-days", "30")
    assert proc.returncode == 0, proc.stderr
    assert "purged 1 events on 1 days" in proc.stderr
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM event").fetchone() == (1,)
        assert conn.execute("SELECT events FROM event_daily").fetchall() == [(1,)]
    assert precis("events", "purge", "--help").returncode == 0
    assert date.today()  # the CLI test runs on SQLite only (a subprocess on the test's own file)
