"""Segment jobs: the shopper enters a segment right after their event, order, consent or profile
change (the reevaluate job queued after commit, in-process and on a real ARQ worker with Redis),
the refresh cron task, and profile recompute refreshing the profile segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain.db import Database
from domain.segments import membership
from domain.settings import Settings
from jobs.queue import ArqQueue
from jobs.schedule import SCHEDULES, cron_jobs, every_minutes
from jobs.tasks import TASKS, recompute_profiles, reevaluate_segments, refresh_segments
from tests.conftest import Api, serve
from tests.events.helpers import TRACK
from tests.orders.helpers import RECORD, order
from tests.orders.helpers import seed as seed_orders
from tests.segments.members_world import (
    CARTED,
    DE,
    add_event,
    log_of,
    members_of,
    product,
    segment,
    set_country,
    shoppers,
)

W = "events:write"


def cart(n: int, user: str = "s-0") -> dict[str, Any]:
    return {
        "clientEventId": f"cart-{n}",
        "type": "add_to_cart",
        "userExternalId": user,
        "productExternalId": "p-1",
    }


def recent_order() -> dict[str, Any]:
    return order(placedAt=(datetime.now(UTC) - timedelta(hours=1)).isoformat())


async def drain(api: Api) -> None:
    await api.app.state.services.queue.drain()


async def test_shopper_enters_right_after_track_events(
    api: Api, db: Database, settings: Settings
) -> None:
    # Given a segment on add_to_cart and one on country (which the event cannot change)
    a, b = await shoppers(db, settings, ["DE", "DE"])
    await product(db)
    carted = await segment(db, CARTED, name="Carted")
    germans = await segment(db, DE, name="Germans")

    # When s-0 adds to cart through the API and the queued job runs
    body = await api.gql(TRACK, {"events": [cart(1)]}, scopes=W)
    assert body["data"]["trackEvents"]["accepted"] == 1, body
    await drain(api)

    # Then s-0 is in the segment at once, with an enter transition; nothing else was evaluated
    assert await members_of(db, carted) == {a}
    assert await log_of(db) == [(carted, a, "enter", 1)]
    assert await members_of(db, germans) == set()

    # A rejected batch queues nothing
    body = await api.gql(
        TRACK, {"events": [{"clientEventId": "x", "type": "add_to_cart"}]}, scopes=W
    )
    assert body["data"]["trackEvents"]["accepted"] == 0
    await drain(api)
    assert await log_of(db) == [(carted, a, "enter", 1)]
    _ = b


async def test_orders_consents_and_user_changes_move_shoppers(
    api: Api, db: Database, settings: Settings
) -> None:
    await seed_orders(api)  # users u-1, u-2 and products
    buyers = await segment(db, {"order": {"window": {"lastDays": 30}}}, name="Buyers")
    emailable = await segment(db, {"consent": {"purpose": "email", "granted": True}}, name="Mail")
    french = await segment(
        db, {"attribute": {"field": "country", "op": "eq", "value": "FR"}}, name="French"
    )
    body = await api.gql(RECORD, {"orders": [recent_order()]}, scopes="events:write users:read")
    assert body["data"]["recordOrders"]["created"] == 1, body
    await drain(api)
    body = await api.gql(
        """mutation($input: SetConsentsInput!) { setConsents(input: $input) { errors { code } } }""",
        {
            "input": {
                "userExternalId": "u-2",
                "consents": [
                    {"purpose": "EMAIL", "granted": True, "source": "t", "policyVersion": "1"}
                ],
            }
        },
        scopes="users:write users:read",
    )
    assert body["data"]["setConsents"]["errors"] == []
    await drain(api)
    body = await api.gql(
        """mutation($input: UpdateUserInput!) { updateUser(input: $input) { errors { code } } }""",
        {"input": {"externalId": "u-2", "country": "FR"}},
        scopes="users:write users:read",
    )
    assert body["data"]["updateUser"]["errors"] == []
    await drain(api)
    log = await log_of(db)
    assert [(s, k) for s, _, k, _ in log] == [
        (buyers, "enter"),
        (emailable, "enter"),
        (french, "enter"),
    ]
    assert len(await members_of(db, buyers)) == 1
    # Cancelling the order takes the buyer out again
    body = await api.gql(
        """mutation { cancelOrder(input: {externalId: "o-1"}) { errors { code } } }""",
        scopes="events:write users:read",
    )
    assert body["data"]["cancelOrder"]["errors"] == []
    await drain(api)
    assert await members_of(db, buyers) == set()
    assert (await log_of(db))[-1][::2] == (buyers, "exit")


async def test_reevaluation_and_refresh_on_a_real_arq_worker(
    db: Database, settings: Settings, redis_url: str, queue_name: str
) -> None:
    from tests.jobs.test_worker import run_worker

    a, b = await shoppers(db, settings, ["DE", "FR"])
    await product(db)
    carted = await segment(db, CARTED, name="Carted")
    germans = await segment(db, DE, name="Germans")
    async with serve(settings, redis_url=redis_url, queue_name=queue_name) as client:
        api = Api(client, db, None)
        body = await api.gql(TRACK, {"events": [cart(1)]}, scopes=W)
        assert body["data"]["trackEvents"]["accepted"] == 1
        # The API queued the job on Redis; nothing ran in the API process
        assert await members_of(db, carted) == set()
        worker = await run_worker(db, redis_url, queue_name, settings)
    assert worker.jobs_complete == 1
    assert await members_of(db, carted) == {a}

    # The refresh task through ARQ, queued twice under one id: runs once
    queue = await ArqQueue.connect(
        settings.model_copy(update={"redis_url": redis_url, "queue_name": queue_name})
    )
    try:
        assert await queue.enqueue("refresh_segments", job_id="cron:refresh_segments:1") is True
        assert await queue.enqueue("refresh_segments", job_id="cron:refresh_segments:1") is False
    finally:
        await queue.close()
    worker = await run_worker(db, redis_url, queue_name, settings)
    assert worker.jobs_complete == 1
    assert await members_of(db, germans) == {a}
    _ = b


async def test_task_functions_in_process(db: Database, settings: Settings) -> None:
    a, b = await shoppers(db, settings, ["DE", "FR"])
    germans = await segment(db, DE, name="Germans")
    carted = await segment(db, CARTED, name="Carted")
    ctx: dict[str, Any] = {"db": db, "settings": settings}
    result = await refresh_segments(ctx)
    assert (result["segments"], result["entered"], result["failed"]) == (2, 1, {})
    assert await members_of(db, germans) == {a}

    # The reevaluate job resolves external and anonymous ids, and touches only what can change
    await add_event(db, b, "add_to_cart")
    await set_country(db, b, "DE")
    who = {"external_ids": ["s-1"], "customer_ids": [], "anonymous_ids": ["nobody"]}
    changes = membership.Changes(event_types=frozenset({"add_to_cart"})).as_dict()
    assert await reevaluate_segments(ctx, who, changes) == {
        "customers": 1,
        "entered": 1,
        "exited": 0,
    }
    assert await members_of(db, carted) == {b}
    assert await members_of(db, germans) == {a}  # the attribute segment was not re-evaluated
    # Running it again changes nothing (jobs run at least once)
    assert (await reevaluate_segments(ctx, who, changes))["entered"] == 0
    # No affected segment: nothing is resolved or evaluated
    view = membership.Changes(event_types=frozenset({"view"})).as_dict()
    assert (await reevaluate_segments(ctx, who, view))["customers"] == 0


async def test_profile_recompute_refreshes_profile_segments(
    api: Api, db: Database, settings: Settings
) -> None:
    await seed_orders(api)
    body = await api.gql(RECORD, {"orders": [recent_order()]}, scopes="events:write users:read")
    assert body["data"]["recordOrders"]["created"] == 1
    await drain(api)
    one_order = await segment(
        db, {"profile": {"field": "ordersCount", "op": "eq", "value": 1}}, name="One order"
    )
    germans = await segment(db, DE, name="Germans")
    result = await recompute_profiles({"db": db, "settings": settings})
    assert result["segments"]["segments"] == 1  # only the profile segment
    assert len(await members_of(db, one_order)) == 1
    assert (await log_of(db, germans)) == []


def test_refresh_cron_every_few_minutes() -> None:
    assert every_minutes(5) == {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55}
    assert every_minutes(60) == {0}
    assert every_minutes(0) == set(range(60))
    assert len({hash(s) for s in SCHEDULES}) == len(SCHEDULES)  # the in-process scheduler keys them
    (refresh,) = [s for s in SCHEDULES if s.task == "refresh_segments"]
    assert refresh.minute == every_minutes(Settings(_env_file=None).segment_refresh_minutes)  # type: ignore[call-arg]
    assert "cron:refresh_segments" in [j.name for j in cron_jobs()]
    assert {"refresh_segments", "reevaluate_segments"} <= {f.__name__ for f in TASKS}


async def test_identify_moves_anonymous_behaviour_into_segments(
    api: Api, db: Database, settings: Settings
) -> None:
    (a,) = await shoppers(db, settings, [None])
    await product(db)
    carted = await segment(db, CARTED, name="Carted")
    anonymous = {
        "clientEventId": "anon-1",
        "type": "add_to_cart",
        "anonymousId": "visitor-1",
        "productExternalId": "p-1",
    }
    body = await api.gql(TRACK, {"events": [anonymous]}, scopes=W)
    assert body["data"]["trackEvents"]["accepted"] == 1, body
    await drain(api)
    assert await members_of(db, carted) == set()  # nobody known yet
    body = await api.gql(
        """mutation($input: IdentifyInput!) { identify(input: $input) { eventsMoved errors { code } } }""",
        {"input": {"anonymousId": "visitor-1", "userExternalId": "s-0"}},
        scopes=W,
    )
    assert body["data"]["identify"] == {"eventsMoved": 1, "errors": []}
    await drain(api)
    assert await members_of(db, carted) == {a}


async def test_events_no_segment_reads_cost_no_query(db: Database, settings: Settings) -> None:
    from sqlalchemy import event

    (a,) = await shoppers(db, settings, ["DE"])
    await segment(db, DE, name="Germans")  # reads attributes only
    ctx: dict[str, Any] = {"db": db, "settings": settings}
    who = {"customer_ids": [a]}
    view = membership.Changes(event_types=frozenset({"view"})).as_dict()
    assert (await reevaluate_segments(ctx, who, view))["customers"] == 0  # checks definitions
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            assert (await reevaluate_segments(ctx, who, view))["customers"] == 0
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == []
    # A segment saved in this process counts at once
    carted = await segment(db, {"behavior": {"eventType": "view"}}, name="Viewers")
    await add_event(db, a, "view")
    assert (await reevaluate_segments(ctx, who, view))["entered"] == 1
    assert await members_of(db, carted) == {a}


async def test_reevaluation_jobs_share_a_few_database_slots(
    db: Database, settings: Settings, monkeypatch: Any
) -> None:
    import asyncio

    (a,) = await shoppers(db, settings, ["DE"])
    await segment(db, DE)
    running = peak = 0

    async def slow(db: Database, ids: Any, changes: Any) -> dict[str, int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return {"customers": 1, "entered": 0, "exited": 0}

    monkeypatch.setattr(membership, "reevaluate_customers", slow)
    ctx: dict[str, Any] = {"db": db, "settings": settings}
    attrs = membership.USER_CHANGES.as_dict()
    done = await asyncio.gather(
        *(reevaluate_segments(ctx, {"customer_ids": [a]}, attrs) for _ in range(12))
    )
    assert len(done) == 12
    assert peak == membership.JOB_CONCURRENCY


async def test_in_process_scheduler_runs_with_the_real_schedules(
    db: Database, settings: Settings
) -> None:
    import asyncio
    from datetime import UTC, datetime

    from jobs.queue import InProcessQueue
    from jobs.schedule import InProcessScheduler

    queue = InProcessQueue(db, settings)
    scheduler = InProcessScheduler(queue)
    scheduler.start()
    await asyncio.sleep(0.1)  # it computed every schedule's next run (and did not crash)
    assert scheduler._task is not None and not scheduler._task.done()
    await scheduler.stop()
    (refresh,) = [s for s in SCHEDULES if s.task == "refresh_segments"]
    at = refresh.next_after(datetime(2026, 1, 1, 10, 3, tzinfo=UTC))
    assert at == datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
