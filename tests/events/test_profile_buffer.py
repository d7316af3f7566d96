"""Write-behind of the profile counters (``profile_touch_flush_ms`` > 0) through the real app:
tallies of committed requests only, applied by a flush, at shutdown and by the background task;
concurrent batches add up; a failed flush is retried; an erased shopper's tallies are dropped.

The conftest's settings write the counters in each request (0); this module turns the buffer on
with a long interval so that each test decides when a flush happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from api.app import create_app
from domain.db import Database
from domain.events.models import Event
from domain.profiles.live import TouchBuffer
from domain.settings import Settings
from tests.conftest import Api, count_rows
from tests.events.helpers import profile, seed, stored, track, view

LONG = 60_000  # ms: no background flush while a test runs


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"profile_touch_flush_ms": LONG})


def buffer_of(app: Any) -> TouchBuffer:
    touch = app.state.services.touch
    assert isinstance(touch, TouchBuffer)
    return touch


def at(minutes: int) -> str:
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat()


async def linked_events(db: Database, customer_id: int) -> int:
    t = Event.__table__  # type: ignore[attr-defined]
    async with db.read_only() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(t).where(t.c.customer_id == customer_id)
            )
            or 0
        )


@pytest.fixture
def now_window(settings: Settings) -> None:
    """The fixed times above must be within the accepted age."""
    assert (
        settings.event_max_age_days * 86400
        > (datetime.now(UTC) - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds()
    )


async def test_counters_appear_after_a_flush(
    api: Api, settings: Settings, now_window: None
) -> None:
    ids = await seed(api.db, settings)
    buffer = buffer_of(api.app)
    result = await track(
        api,
        [
            view(1, occurredAt=at(5)),
            view(2, occurredAt=at(1)),
            view(3, userExternalId="c-2", occurredAt=at(3)),
            view(4, userExternalId=None, anonymousId="visitor"),  # linked to nobody
        ],
    )
    assert result["accepted"] == 4
    # The events are committed with the request; the counters wait for the flush.
    assert len(await stored(api.db)) == 4
    assert await profile(api.db, ids["c-1"]) is None
    assert sorted(buffer.pending) == [ids["c-1"], ids["c-2"]]

    assert await buffer.flush() == 2
    assert buffer.pending == {}
    count, first, last = await profile(api.db, ids["c-1"]) or (0, None, None)
    assert (count, first.isoformat(), last.isoformat()) == (2, at(1), at(5))
    assert (await profile(api.db, ids["c-2"]) or (0,))[0] == 1
    assert await profile(api.db, ids["c-3"]) is None

    # Later batches move the same counters forward; duplicates count for nothing.
    assert (await track(api, [view(1), view(5, occurredAt=at(0))]))["accepted"] == 1
    assert await buffer.flush() == 1
    count, first, last = await profile(api.db, ids["c-1"]) or (0, None, None)
    assert (count, first.isoformat(), last.isoformat()) == (3, at(0), at(5))
    assert await buffer.flush() == 0  # nothing pending, nothing written


async def test_a_rolled_back_request_leaves_no_tally(api: Api, settings: Settings) -> None:
    ids = await seed(api.db, settings)
    buffer = buffer_of(api.app)
    # trackEvents succeeds, but the second field is refused (no privacy:manage): the whole
    # request is rolled back, so its events are not stored and must not be counted.
    body = await api.gql(
        """mutation($events: [EventInput!]!) {
          trackEvents(input: {events: $events}) { accepted }
          eraseUser(input: {userExternalId: "c-2"}) { errors { code } }
        }""",
        {"events": [view(1), view(2)]},
        scopes="events:write",
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert await count_rows(api.db, "event") == 0
    assert buffer.pending == {}
    assert await buffer.flush() == 0
    assert await profile(api.db, ids["c-1"]) is None


async def test_concurrent_batches_for_the_same_customer_add_up(
    api: Api, settings: Settings, now_window: None
) -> None:
    ids = await seed(api.db, settings)
    buffer = buffer_of(api.app)
    batches = [[view(100 * b + n, occurredAt=at(100 * b + n)) for n in range(40)] for b in range(6)]
    # Every batch sent twice at once (duplicates), and flushes running in between.
    sends = [track(api, batch) for batch in batches for _ in range(2)]
    flushes = [buffer.flush() for _ in range(3)]
    results = await asyncio.gather(*sends, *flushes)
    accepted = sum(r["accepted"] for r in results[: len(sends)])
    assert accepted == 240
    await buffer.flush()
    count, first, last = await profile(api.db, ids["c-1"]) or (0, None, None)
    assert count == 240 == await linked_events(api.db, ids["c-1"])
    assert (first.isoformat(), last.isoformat()) == (at(0), at(539))


async def test_shutdown_flushes(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        db: Database = app.state.db
        ids = await seed(db, settings)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
        ) as client:
            api = Api(client, db, app)
            assert (await track(api, [view(1), view(2, userExternalId="c-3")]))["accepted"] == 2
        assert await profile(db, ids["c-1"]) is None  # still pending
    # The lifespan's end flushed (and closed its pool): read with a new one.
    check = Database(settings)
    try:
        assert (await profile(check, ids["c-1"]) or (0,))[0] == 1
        assert (await profile(check, ids["c-3"]) or (0,))[0] == 1
    finally:
        await check.dispose()


@pytest.fixture
async def quick_api(settings: Settings) -> AsyncIterator[Api]:
    """The app with a 10 ms flush interval (its background task does the flushing)."""
    app = create_app(settings.model_copy(update={"profile_touch_flush_ms": 10}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
        ) as client:
            yield Api(client, app.state.db, app)


async def test_the_background_task_flushes(quick_api: Api, settings: Settings) -> None:
    ids = await seed(quick_api.db, settings)
    buffer = buffer_of(quick_api.app)
    assert (await track(quick_api, [view(n) for n in range(1, 31)]))["accepted"] == 30
    for _ in range(400):  # waits for the task, asserts nothing about how long it took
        found = await profile(quick_api.db, ids["c-1"])
        if found is not None and found[0] == 30:
            break
        await asyncio.sleep(0.025)
    assert (await profile(quick_api.db, ids["c-1"]) or (0,))[0] == 30
    assert buffer.flushes >= 1 and buffer.failures == 0


def unreachable(settings: Settings, tmp_path: Path) -> Settings:
    """The same backend, but a database that cannot serve the flush."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        broken = url.set(database=str(tmp_path / "empty" / "no-tables.db"))
    else:
        broken = url.set(database="precis_no_such_database")
    return settings.model_copy(update={"database_url": broken.render_as_string(False)})


async def test_a_failed_flush_is_retried(api: Api, settings: Settings, tmp_path: Path) -> None:
    ids = await seed(api.db, settings)
    buffer = buffer_of(api.app)
    assert (await track(api, [view(1, occurredAt=at(10)), view(2, occurredAt=at(20))]))[
        "accepted"
    ] == 2
    real, broken = buffer.db, Database(unreachable(settings, tmp_path))
    buffer.db = broken
    try:
        assert await buffer.flush() == 0  # logged, not raised
        assert buffer.failures == 1
        # Kept, and merged with what arrives meanwhile.
        assert (await track(api, [view(3, occurredAt=at(5))]))["accepted"] == 1
        pending = buffer.pending[ids["c-1"]]
        assert (pending.count, pending.first.isoformat(), pending.last.isoformat()) == (
            3,
            at(5),
            at(20),
        )
        assert await profile(api.db, ids["c-1"]) is None
    finally:
        buffer.db = real
        await broken.dispose()
    assert await buffer.flush() == 1
    count, first, last = await profile(api.db, ids["c-1"]) or (0, None, None)
    assert (count, first.isoformat(), last.isoformat()) == (3, at(5), at(20))
    assert buffer.pending == {}


async def test_an_erased_shoppers_tallies_are_dropped(api: Api, settings: Settings) -> None:
    ids = await seed(api.db, settings)
    buffer = buffer_of(api.app)
    assert (await track(api, [view(1), view(2, userExternalId="c-2")]))["accepted"] == 2
    body = await api.gql(
        'mutation { eraseUser(input: {userExternalId: "c-1"}) { errors { code } } }',
        scopes="privacy:manage",
    )
    assert body["data"]["eraseUser"]["errors"] == []
    # c-1 is gone: its pending tally fails one flush (foreign key, logged), and the retry
    # drops it; it neither recreates a profile nor blocks c-2's.
    assert await buffer.flush() == 0
    assert buffer.failures == 1 and await count_rows(api.db, "customer_profile") == 0
    assert await buffer.flush() == 1
    assert buffer.pending == {}
    assert await profile(api.db, ids["c-1"]) is None
    assert await count_rows(api.db, "customer_profile") == 1
    assert (await profile(api.db, ids["c-2"]) or (0,))[0] == 1
