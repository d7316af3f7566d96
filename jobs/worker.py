"""ARQ worker settings: ``precis worker`` (or ``arq jobs.worker.WorkerSettings``)."""

from __future__ import annotations

from typing import Any, ClassVar

from arq.connections import RedisSettings

from domain.db import Database
from domain.settings import get_settings
from jobs.schedule import cron_jobs
from jobs.tasks import TASKS


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    ctx["db"] = Database(settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["db"].dispose()


def redis_settings() -> RedisSettings:
    url = get_settings().redis_url or "redis://127.0.0.1:6379/0"
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    functions: ClassVar[list[Any]] = list(TASKS)
    cron_jobs: ClassVar[list[Any]] = cron_jobs()
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
    queue_name = get_settings().queue_name
    max_tries = 5
    job_timeout = 3600
    keep_result = 3600
