"""Recurring jobs: times, the ARQ cron list, and the in-process scheduler enqueuing real runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from domain.db import Database
from domain.settings import Settings
from jobs.queue import InProcessQueue
from jobs.schedule import SCHEDULES, InProcessScheduler, Schedule, cron_jobs, job_id
from jobs.tasks import TASKS


def test_next_run_times_are_utc_and_strictly_later() -> None:
    nightly = Schedule("purge_events", "x", hour=3, minute=30)
    assert nightly.next_after(datetime(2026, 1, 1, 1, 0, tzinfo=UTC)) == datetime(
        2026, 1, 1, 3, 30, tzinfo=UTC
    )
    assert nightly.next_after(datetime(2026, 1, 1, 3, 30, tzinfo=UTC)) == datetime(
        2026, 1, 2, 3, 30, tzinfo=UTC
    )
    hourly = Schedule("recompute_profiles", "x", minute=15)
    assert hourly.next_after(datetime(2026, 1, 1, 23, 20, tzinfo=UTC)) == datetime(
        2026, 1, 2, 0, 15, tzinfo=UTC
    )


def test_every_schedule_names_a_task_and_becomes_an_arq_cron_job() -> None:
    names = {f.__name__ for f in TASKS}
    assert {s.task for s in SCHEDULES} <= names
    jobs = cron_jobs()
    assert [j.name for j in jobs] == [f"cron:{s.task}" for s in SCHEDULES]
    assert job_id(SCHEDULES[0], datetime(2026, 1, 1, tzinfo=UTC)) == (
        f"cron:{SCHEDULES[0].task}:1767225600"
    )


async def test_in_process_scheduler_runs_due_jobs_once_per_slot(
    db: Database, settings: Settings
) -> None:
    runs: list[str] = []

    async def tick(ctx: dict[str, Any]) -> None:
        runs.append(ctx["job_id"])

    queue = InProcessQueue(db, settings)
    queue.functions["recompute_profiles"] = tick  # the real queue, running a recording task
    every_second = Schedule("recompute_profiles", "test", second=None)
    scheduler = InProcessScheduler(queue, (every_second,))
    scheduler.start()
    try:
        for _ in range(100):
            if len(runs) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
        await queue.drain()
    assert len(runs) >= 2
    assert len(set(runs)) == len(runs)  # one run per slot
    assert all(r.startswith("cron:recompute_profiles:") for r in runs)
    # The same slot enqueued again (a second scheduler, a restart) does not run twice.
    assert await queue.enqueue("recompute_profiles", job_id=runs[0]) is False
