"""Imports on ARQ with real Redis: an in-process worker runs the task once per job id, and
``precis worker`` processes what ``precis import`` queued."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker

from domain.db import Database
from domain.imports.service import create_import, import_job_id
from domain.settings import Settings
from domain.tasks.models import TaskRun
from jobs.queue import ArqQueue
from jobs.tasks import TASKS
from tests.conftest import count_rows

PRECIS = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "precis")


async def run_worker(
    db: Database, redis_url: str, queue_name: str, settings: Settings | None = None
) -> Worker:
    """A burst ARQ worker on real Redis, with the context ``precis worker`` gives its jobs."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["db"] = db
        if settings is not None:
            ctx["settings"] = settings

    worker = Worker(
        functions=list(TASKS),  # type: ignore[arg-type]
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=queue_name,
        on_startup=startup,
        burst=True,
        handle_signals=False,
        poll_delay=0.05,
    )
    try:
        await worker.main()
    finally:
        with warnings.catch_warnings():
            # arq 0.28 closes its pool with redis' deprecated close()
            warnings.simplefilter("ignore", DeprecationWarning)
            await worker.close()
    return worker


async def queued_import(db: Database, path: Path) -> TaskRun:
    async with db.unit_of_work() as session:
        return await create_import(session, kind="users", path=path, fmt=None)


async def status_of(db: Database, task_id: str) -> TaskRun:
    async with db.read_only() as session:
        row = await session.get(TaskRun, task_id)
    assert row is not None
    return row


async def test_worker_runs_an_import_once_per_job_id(
    db: Database, settings: Settings, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    # given an import task enqueued twice under its deterministic job id
    path = tmp_path / "users.csv"
    path.write_text("external_id,email\nw-1,w1@example.com\nw-2,broken\nw-3,w3@example.com\n")
    task = await queued_import(db, path)
    queue = await ArqQueue.connect(
        settings.model_copy(update={"redis_url": redis_url, "queue_name": queue_name})
    )
    try:
        assert await queue.enqueue("import_file", task.id, job_id=import_job_id(task)) is True
        assert await queue.enqueue("import_file", task.id, job_id=import_job_id(task)) is False

        # when a worker drains the queue
        worker = await run_worker(db, redis_url, queue_name)

        # then the import ran once and its result is recorded
        assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (1, 0, 0)
        row = await status_of(db, task.id)
        assert row.status == "done"
        assert (row.result["accepted"], row.result["rejected"]) == (2, 1)
        assert row.result["errors"][0]["line"] == 3
        assert await count_rows(db, "customer") == 2

        # and enqueueing it again while ARQ keeps the result runs nothing
        assert await queue.enqueue("import_file", task.id, job_id=import_job_id(task)) is False
        worker = await run_worker(db, redis_url, queue_name)
        assert worker.jobs_complete == 0
    finally:
        await queue.close()


async def test_failed_import_is_recorded_and_not_retried(
    db: Database, settings: Settings, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "users.csv"
    path.write_text("external_id,shoe_size\nw-1,44\n")
    task = await queued_import(db, path)
    queue = await ArqQueue.connect(
        settings.model_copy(update={"redis_url": redis_url, "queue_name": queue_name})
    )
    try:
        assert await queue.enqueue("import_file", task.id, job_id=import_job_id(task))
        worker = await run_worker(db, redis_url, queue_name)
        assert (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried) == (0, 1, 0)
        row = await status_of(db, task.id)
        assert row.status == "failed"
        assert row.error is not None and "unknown column(s) 'shoe_size'" in row.error

        # a fixed file is a new task; the same file again gets a fresh job id and runs
        again = await queued_import(db, path)
        assert again.status == "queued"
        assert await queue.enqueue("import_file", again.id, job_id=import_job_id(again))
        worker = await run_worker(db, redis_url, queue_name)
        assert worker.jobs_failed == 1
        assert (await status_of(db, task.id)).status == "failed"
    finally:
        await queue.close()
    assert await count_rows(db, "customer") == 0


def test_precis_worker_processes_queued_imports(
    tmp_path: Path, sqlite_template: Path, keys_dir: Path, redis_url: str, queue_name: str
) -> None:
    database = tmp_path / "precis.db"
    shutil.copyfile(sqlite_template, database)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PRECIS_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        PRECIS_DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        PRECIS_VAR_DIR=str(keys_dir),
        PRECIS_REDIS_URL=redis_url,
        PRECIS_QUEUE_NAME=queue_name,
    )
    path = tmp_path / "users.jsonl"
    path.write_text('{"external_id": "cli-1"}\n{"external_id": "cli-2", "email": "x"}\n')

    def precis(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PRECIS, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    queued = precis("import", "users", str(path), "--no-wait")
    assert queued.returncode == 0, queued.stderr
    assert "queued task import-users-" in queued.stderr
    assert queued.stdout == ""

    worked = precis("worker", "--burst")
    assert worked.returncode == 0, worked.stderr

    done = precis("import", "users", str(path))
    assert done.returncode == 0, done.stderr
    assert "imported before" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (2, 1, 1)
    assert summary["errors"][0]["line"] == 2
