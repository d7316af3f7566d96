"""Enqueue after commit, with deterministic job ids, onto ARQ or an in-process runner."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from domain.db import Database
from domain.settings import Settings

log = logging.getLogger("precis.jobs")

TaskFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Job:
    function: str
    args: tuple[Any, ...]
    job_id: str


@dataclass
class PendingJobs:
    """Jobs a request or task wants to run; sent only once its transaction has committed."""

    items: list[Job] = field(default_factory=list)

    def add(self, function: str, *args: Any, job_id: str) -> None:
        self.items.append(Job(function, args, job_id))

    def clear(self) -> None:
        self.items.clear()

    async def send(self, queue: Queue) -> None:
        items, self.items = self.items, []
        for job in items:
            await queue.enqueue(job.function, *job.args, job_id=job.job_id)


class Queue(Protocol):
    async def enqueue(self, function: str, *args: Any, job_id: str) -> bool: ...

    async def close(self) -> None: ...


class ArqQueue:
    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self.pool = pool
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, settings: Settings) -> ArqQueue:
        """A lazily connecting pool: the API starts while Redis is down and /readyz reports it."""
        assert settings.redis_url
        pool = ArqRedis(
            pool_or_conn=ConnectionPool.from_url(settings.redis_url),
            default_queue_name=settings.queue_name,
        )
        return cls(pool, settings.queue_name)

    async def enqueue(self, function: str, *args: Any, job_id: str) -> bool:
        # ARQ refuses a job id that is queued, running or has a kept result: a double enqueue runs once.
        # Job ids are namespaced by queue so deployments (and test runs) sharing a Redis never clash.
        job = await self.pool.enqueue_job(
            function, *args, _job_id=f"{self.queue_name}:{job_id}", _queue_name=self.queue_name
        )
        return job is not None

    async def close(self) -> None:
        await self.pool.aclose()


class InProcessQueue:
    """Runs task functions as asyncio tasks in this process: the embedded default, no Redis needed."""

    def __init__(self, db: Database, settings: Settings, *, remember: int = 10_000) -> None:
        from jobs.tasks import TASKS

        self.functions: dict[str, TaskFn] = {f.__name__: f for f in TASKS}
        self.ctx: dict[str, Any] = {"db": db, "settings": settings, "queue": self}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self.running: set[asyncio.Task[Any]] = set()

    async def enqueue(self, function: str, *args: Any, job_id: str) -> bool:
        if job_id in self._seen:
            return False
        self._seen[job_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        fn = self.functions[function]
        ctx = dict(self.ctx, job_id=job_id, job_try=1)
        task = asyncio.get_running_loop().create_task(self._run(fn, ctx, args))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return True

    async def _run(self, fn: TaskFn, ctx: dict[str, Any], args: tuple[Any, ...]) -> None:
        try:
            await fn(ctx, *args)
        except Exception:
            log.exception("in-process job %s failed", ctx["job_id"])

    async def drain(self) -> None:
        while self.running:
            await asyncio.gather(*list(self.running), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()


async def make_queue(settings: Settings, db: Database) -> Queue:
    if settings.redis_url:
        return await ArqQueue.connect(settings)
    return InProcessQueue(db, settings)
