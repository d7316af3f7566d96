"""Recurring jobs: ARQ cron jobs in production, an in-process scheduler in the embedded default.

Both run the same task functions from ``jobs.tasks`` with a deterministic job id per run
(``cron:<task>:<unix time of the run>``), so two schedulers, or a scheduler and a restart, never run
one slot twice. Times are UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arq.cron import CronJob, cron, next_cron

from jobs.queue import Queue

log = logging.getLogger("precis.jobs")


@dataclass(frozen=True)
class Schedule:
    task: str
    description: str
    hour: int | set[int] | None = None
    minute: int | set[int] | None = None
    second: int | set[int] | None = 0

    def __hash__(self) -> int:  # the in-process scheduler keys by schedule; sets do not hash
        return hash((self.task, self.description))

    def next_after(self, moment: datetime) -> datetime:
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return next_cron(
            naive, hour=self.hour, minute=self.minute, second=self.second, microsecond=0
        ).replace(tzinfo=UTC)


def every_minutes(n: int) -> set[int]:
    """The minutes of an hour a job running every ``n`` minutes starts at."""
    return set(range(0, 60, max(1, min(n, 60))))


def _segment_refresh_minutes() -> set[int]:
    from domain.settings import get_settings

    try:
        return every_minutes(get_settings().segment_refresh_minutes)
    except Exception:  # settings that fail to load fail the process elsewhere, with a message
        return every_minutes(5)


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("recompute_profiles", "Recompute shopper profiles (RFM, lifecycle, CLV)", minute=15),
    Schedule(
        "refresh_segments",
        "Refresh the membership of every active dynamic segment",
        minute=_segment_refresh_minutes(),
    ),
    Schedule("purge_events", "Roll up and delete raw events past retention", hour=3, minute=30),
    Schedule("purge_exports", "Delete expired data exports", hour=4, minute=0),
    Schedule(
        "refresh_model", "Train and evaluate a candidate recommendation model", hour=2, minute=0
    ),
)


def _functions() -> dict[str, Any]:
    from jobs.tasks import TASKS

    return {f.__name__: f for f in TASKS}


def cron_jobs(schedules: tuple[Schedule, ...] = SCHEDULES) -> list[CronJob]:
    """The ARQ worker's cron jobs (``WorkerSettings.cron_jobs``)."""
    functions = _functions()
    jobs = []
    for s in schedules:
        fn = functions.get(s.task)
        if fn is None:
            log.warning("schedule %s names no task function; skipped", s.task)
            continue
        jobs.append(cron(fn, name=f"cron:{s.task}", hour=s.hour, minute=s.minute, second=s.second))
    return jobs


def job_id(schedule: Schedule, at: datetime) -> str:
    return f"cron:{schedule.task}:{int(at.timestamp())}"


class InProcessScheduler:
    """Enqueues each schedule's runs on the in-process queue while the API runs (no Redis)."""

    def __init__(self, queue: Queue, schedules: tuple[Schedule, ...] = SCHEDULES) -> None:
        known = getattr(queue, "functions", None) or _functions()
        self.queue = queue
        self.schedules = tuple(s for s in schedules if s.task in known)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self.schedules:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        now = datetime.now(UTC)
        due = {s: s.next_after(now) for s in self.schedules}
        while True:
            schedule, at = min(due.items(), key=lambda item: item[1])
            delay = (at - datetime.now(UTC)).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            ident = job_id(schedule, at)
            try:
                await self.queue.enqueue(schedule.task, job_id=ident)
            except Exception:  # a failed enqueue must not stop later runs
                log.exception("could not enqueue %s", ident)
            due[schedule] = schedule.next_after(at)
