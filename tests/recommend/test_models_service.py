"""Training, the failed version on empty or tiny data, consent and erasure, promotion rules, and the
refresh task with its progress row (both databases, real tables, in-process)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select, update

from domain.audit.models import AuditEntry
from domain.audit.service import Actor
from domain.db import Database
from domain.errors import DomainError
from domain.recommend import service
from domain.recommend.models import ModelVersion
from domain.settings import Settings
from domain.sql import table
from domain.tasks.models import TaskRun
from domain.users.models import Customer
from jobs.schedule import SCHEDULES
from jobs.tasks import TASKS, refresh_model
from recommend.hybrid import Hybrid
from tests.recommend.models_world import fast, refuse_personalization, seed

ADMIN = Actor(client_id="ops", subject="ops")


async def versions(db: Database) -> list[tuple[int, str]]:
    async with db.read_only() as session:
        rows = await session.execute(
            select(table(ModelVersion).c.id, table(ModelVersion).c.status).order_by("id")
        )
        return [(int(i), str(s)) for i, s in rows]


async def set_metric(db: Database, version_id: int, value: float) -> None:
    async with db.unit_of_work() as session:
        row = await session.get(ModelVersion, version_id)
        assert row is not None
        row.metrics = {**row.metrics, "ndcg@10": value}


async def promote(db: Database, settings: Settings, vid: int, force: bool = False) -> Any:
    async with db.unit_of_work() as session:
        return await service.promote(session, ADMIN, settings, vid, force=force)


async def test_trains_a_candidate_with_metrics_and_a_loadable_artifact(
    db: Database, settings: Settings
) -> None:
    await seed(db)
    steps: list[str] = []
    row = await service.train(db, fast(settings), progress=lambda s, d, t: steps.append(s))
    assert row.status == "candidate" and row.error is None
    assert row.interactions > 500 and row.users == 60 and row.items <= 40
    assert row.data_from is not None and row.data_to is not None and row.data_from < row.data_to
    m = row.metrics
    for key in ("ndcg@10", "precision@10", "recall@10", "hit_rate@10", "coverage"):
        assert isinstance(m[key], float), key
    assert {c["algorithm"] for c in m["components"]} == {"popularity", "itemknn", "content"}
    assert m["bootstrap"]["metric"] == "ndcg@10"
    assert row.parameters["algorithms"] == ["popularity", "itemknn", "content"]
    assert "HOME" in row.parameters["weights"]
    assert row.trained_seconds is not None and row.trained_seconds > 0
    assert "reading interactions" in steps and "saving the candidate" in steps
    async with db.read_only() as session:
        stored = await session.get(ModelVersion, row.id)
        assert stored is not None and stored.artifact is not None
        model = Hybrid.loads(stored.artifact)
        assert stored.sha256 == row.sha256 and len(stored.sha256 or "") == 64
        actions = (
            await session.execute(select(table(AuditEntry).c.action).order_by("id"))
        ).scalars()
        assert "model.train" in list(actions)
    # Items are product ids; a known shopper gets products back.
    recs = model.recommend(user="1", k=5)
    assert recs and all(r.isdigit() for r in recs)


async def test_empty_data_fails_with_a_row_and_leaves_the_active_version(
    db: Database, settings: Settings
) -> None:
    # Given an active version
    await seed(db)
    first = await service.train(db, fast(settings))
    await promote(db, settings, first.id or 0)
    # When every event and order is gone and training runs
    async with db.unit_of_work() as session:
        await session.execute(delete(table(Customer)))  # erasure-like: nothing linked is left
    with pytest.raises(service.TrainingError) as caught:
        await service.train(db, fast(settings))
    # Then a typed error, a failed row with the error, and the active version untouched
    assert caught.value.errors[0].code == "EMPTY_DATA"
    rows = await versions(db)
    assert rows == [(first.id, "active"), (rows[1][0], "failed")]
    async with db.read_only() as session:
        failed = await session.get(ModelVersion, rows[1][0])
        assert failed is not None and failed.artifact is None
        assert "no interactions" in (failed.error or "")


async def test_tiny_data_is_too_small(db: Database, settings: Settings) -> None:
    await seed(db, users=3, items=5, orders=False)
    with pytest.raises(service.TrainingError) as caught:
        await service.train(db, fast(settings, recommend_min_interactions=1))
    assert caught.value.errors[0].code == "TOO_SMALL"
    assert "evaluate" in caught.value.errors[0].message
    with pytest.raises(service.TrainingError) as caught:
        await service.train(db, fast(settings, recommend_min_interactions=10_000))
    assert caught.value.errors[0].code == "TOO_SMALL"
    assert [s for _, s in await versions(db)] == ["failed", "failed"]


async def test_shoppers_without_personalization_consent_are_left_out(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    async with db.read_only() as session:
        everyone = await service.interaction_rows(session, settings)
    await refuse_personalization(db, ids["c0"])
    async with db.read_only() as session:
        rows = await service.interaction_rows(session, settings)
    assert any(r["user"] == ids["c0"] for r in everyone)
    assert not any(r["user"] == ids["c0"] for r in rows)
    assert len(rows) < len(everyone)
    # Opt-in (default "no"): only those who granted it.
    strict = settings.model_copy(update={"analytics_consent_default": False})
    async with db.read_only() as session:
        assert await service.interaction_rows(session, strict) == []
    # Order lines count as purchases with the order as the basket.
    assert any(r["basket"] == f"o{ids['c1']}" for r in everyone)


async def test_promotion_rules(db: Database, settings: Settings) -> None:
    await seed(db)
    s = fast(settings)
    a = await service.train(db, s)
    b = await service.train(db, s)
    c = await service.train(db, s)
    assert a.id and b.id and c.id
    await set_metric(db, a.id, 0.30)
    await set_metric(db, b.id, 0.2985)  # within the 0.002 tolerance
    await set_metric(db, c.id, 0.20)
    # Nothing active yet: any candidate can be promoted.
    done = await promote(db, s, a.id)
    assert done.previous is None and not done.forced
    # Unknown, and not a candidate.
    for vid, code in ((999_999, "NOT_FOUND"), (a.id, "NOT_CANDIDATE")):
        with pytest.raises(DomainError) as caught:
            await promote(db, s, vid)
        assert caught.value.errors[0].code == code
    # Worse beyond the tolerance: refused with both figures, nothing changed.
    before = await versions(db)
    with pytest.raises(DomainError) as caught:
        await promote(db, s, c.id)
    err = caught.value.errors[0]
    assert err.code == "WORSE_THAN_ACTIVE" and "0.2000" in err.message and "0.3000" in err.message
    assert err.field == ("input", "versionId")
    assert await versions(db) == before
    # Within the tolerance: promoted, the previous one retired.
    done = await promote(db, s, b.id)
    assert done.previous is not None and done.previous.id == a.id and not done.forced
    # Forced: promoted and says so.
    done = await promote(db, s, c.id, force=True)
    assert done.forced and done.version.status == "active"
    assert await versions(db) == [(a.id, "retired"), (b.id, "retired"), (c.id, "active")]
    async with db.read_only() as session:
        active = await service.active_version(session)
        assert active is not None and active.promoted_by == "ops:ops"
        details = (
            await session.execute(
                select(table(AuditEntry).c.details).where(
                    table(AuditEntry).c.action == "model.promote"
                )
            )
        ).scalars()
        assert [d["forced"] for d in details] == [False, False, True]


async def test_one_active_version_is_enforced_by_the_database(
    db: Database, settings: Settings
) -> None:
    await seed(db)
    a = await service.train(db, fast(settings))
    b = await service.train(db, fast(settings))
    await promote(db, settings, a.id or 0)
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with db.unit_of_work() as session:
            await session.execute(
                update(table(ModelVersion))
                .where(table(ModelVersion).c.id == b.id)
                .values(status="active")
            )


async def test_refresh_task_records_progress_and_outcome(db: Database, settings: Settings) -> None:
    await seed(db)
    ctx = {"db": db, "settings": fast(settings), "job_id": "cron:refresh_model:1"}
    result = await refresh_model(ctx)
    assert result["step"] == "done" and isinstance(result["ndcg@10"], float)
    async with db.read_only() as session:
        task = await session.get(TaskRun, "refresh_model:cron:refresh_model:1")
        assert task is not None and task.status == "done" and task.kind == "refresh_model"
        assert task.result["versionId"] == result["versionId"]
        assert task.started_at is not None and task.finished_at is not None
    # A task already done returns its result; a failing run marks the task failed.
    assert await refresh_model(ctx) == result
    async with db.unit_of_work() as session:
        await session.execute(delete(table(Customer)))
    failed = await refresh_model({**ctx, "job_id": "x"})
    assert failed["code"] == "EMPTY_DATA"
    async with db.read_only() as session:
        task = await session.get(TaskRun, "refresh_model:x")
        assert (
            task is not None and task.status == "failed" and "no interactions" in (task.error or "")
        )


def test_scheduled_daily_at_two() -> None:
    (s,) = [s for s in SCHEDULES if s.task == "refresh_model"]
    assert (s.hour, s.minute) == (2, 0)
    assert refresh_model in TASKS


async def test_bad_algorithm_setting_is_a_typed_failure(db: Database, settings: Settings) -> None:
    await seed(db, users=10, items=10, orders=False)
    with pytest.raises(service.TrainingError) as caught:
        await service.train(db, fast(settings, recommend_algorithms="popularity,nosuch"))
    assert caught.value.errors[0].code == "INVALID_CONFIG"
    assert "nosuch" in caught.value.errors[0].message
    assert [s for _, s in await versions(db)] == ["failed"]


async def test_a_crash_during_training_writes_no_version_and_the_active_one_stays(
    db: Database, settings: Settings
) -> None:
    import asyncio

    # Given an active version
    await seed(db)
    s = fast(settings)
    first = await service.train(db, s)
    await promote(db, s, first.id or 0)
    # When the worker dies while the next training is fitting (its coroutine is cancelled from
    # the fitting thread's own progress report, so the cancellation lands mid-fit)
    loop = asyncio.get_running_loop()
    steps: list[str] = []

    def tell(step: str, done: int, total: int) -> None:
        steps.append(step)
        if step.startswith("training: ") and len([x for x in steps if x == step]) == 1:
            loop.call_soon_threadsafe(run.cancel)

    run = asyncio.create_task(service.train(db, s, progress=tell))
    with pytest.raises(asyncio.CancelledError):
        await run
    assert any(x.startswith("training: ") for x in steps)
    await asyncio.sleep(1.0)  # the fitting thread finishes on its own; it writes nothing
    # Then no new version and the active one unchanged
    assert await versions(db) == [(first.id, "active")]
    # And a refresh task cancelled while it runs is marked failed
    job = asyncio.create_task(service.run_refresh(db, s, "refresh_model:crash"))
    for _ in range(500):
        await asyncio.sleep(0.01)
        async with db.read_only() as session:
            task = await session.get(TaskRun, "refresh_model:crash")
        if task is not None and task.status == "running":
            break
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    async with db.read_only() as session:
        task = await session.get(TaskRun, "refresh_model:crash")
        assert task is not None and task.status == "failed"
        assert "CancelledError" in (task.error or "")
    await asyncio.sleep(1.0)
    assert await versions(db) == [(first.id, "active")]


async def test_two_promotions_at_once_one_wins_the_other_conflicts(
    db: Database, settings: Settings, backend: str
) -> None:
    import asyncio

    if backend != "postgres":
        pytest.skip("SQLite runs one writer at a time: promotions cannot overlap")
    await seed(db, users=30, items=20, orders=False)
    s = fast(settings)
    a = await service.train(db, s)
    b = await service.train(db, s)
    async with db.unit_of_work() as first:
        await service.promote(first, ADMIN, s, a.id or 0)

        async def second() -> str:
            try:
                await promote(db, s, b.id or 0)
            except DomainError as exc:
                return exc.errors[0].code
            return "promoted"

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # the second waits on the first's uncommitted active row
        assert not racing.done()
    assert await racing == "CONFLICT"
    assert sorted(await versions(db)) == [(a.id, "active"), (b.id, "candidate")]
