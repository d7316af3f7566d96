"""Materialised membership: full refreshes (enter/exit transitions, versions, crash safety, one
consistent version while the definition is edited), per-shopper re-evaluation of only the affected
segments, and erasure. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from domain.db import Database
from domain.errors import DomainError
from domain.privacy.erase import erase_user
from domain.segments import membership, service
from domain.segments.membership import Changes
from domain.settings import Settings
from tests.segments.members_world import (
    ADMIN,
    CARTED,
    DE,
    VIP,
    add_event,
    log_of,
    members_of,
    row,
    segment,
    set_country,
    shoppers,
    tag,
)

PRECIS = str(Path(sys.executable).parent / "precis")


async def test_refresh_enters_and_exits_with_transitions(db: Database, settings: Settings) -> None:
    # Given four shoppers, two in Germany, and a segment "country = DE"
    a, b, c, d = await shoppers(db, settings, ["DE", "DE", "FR", None])
    sid = await segment(db, DE)
    assert await members_of(db, sid) == set()

    # When it is refreshed, the two German shoppers enter
    first = await membership.refresh_segment(db, sid)
    assert (first.entered, first.exited, first.members, first.version) == (2, 0, 2, 1)
    assert await members_of(db, sid) == {a, b}
    assert await log_of(db, sid) == [(sid, a, "enter", 1), (sid, b, "enter", 1)]
    seg = await row(db, sid)
    assert (seg.member_count, seg.refreshed_version) == (2, 1)
    assert seg.refreshed_at is not None

    # When b moves to France and c to Germany, the next refresh records one exit and one entry
    await set_country(db, b, "FR")
    await set_country(db, c, "DE")
    second = await membership.refresh_segment(db, sid)
    assert (second.entered, second.exited, second.members) == (1, 1, 2)
    assert await members_of(db, sid) == {a, c}
    assert (await log_of(db, sid))[2:] == [(sid, b, "exit", 1), (sid, c, "enter", 1)]

    # And a refresh with nothing changed changes nothing
    third = await membership.refresh_segment(db, sid)
    assert (third.entered, third.exited, third.members) == (0, 0, 2)
    assert len(await log_of(db, sid)) == 4
    assert d not in await members_of(db, sid)


async def test_refresh_keeps_entry_time_and_uses_the_current_version(
    db: Database, settings: Settings
) -> None:
    a, b = await shoppers(db, settings, ["DE", "FR"])
    sid = await segment(db, DE)
    await membership.refresh_segment(db, sid)
    async with db.read_only() as session:
        entered = {m.customer_id: m.entered_at for m in await service.members(session, sid)}

    # When the definition changes to FR, version 2 is what the refresh computes and records
    async with db.unit_of_work() as session:
        updated = await service.update_segment(
            session,
            ADMIN,
            sid,
            definition={"attribute": {"field": "country", "op": "in", "values": ["DE", "FR"]}},
            expected_version=1,
        )
    assert updated.version == 2
    result = await membership.refresh_segment(db, sid)
    assert (result.entered, result.exited, result.version) == (1, 0, 2)
    assert (await row(db, sid)).refreshed_version == 2
    assert (await log_of(db, sid))[-1] == (sid, b, "enter", 2)
    async with db.read_only() as session:
        again = {m.customer_id: m.entered_at for m in await service.members(session, sid)}
    assert again[a] == entered[a]  # a stayed a member: its entry time did not move


async def test_archived_and_static_segments_are_not_refreshed(
    db: Database, settings: Settings
) -> None:
    (a,) = await shoppers(db, settings, ["DE"])
    sid = await segment(db, DE)
    static = await segment(db, None, kind="static", name="List")
    async with db.unit_of_work() as session:
        await service.archive_segment(session, ADMIN, sid)
    result = await membership.refresh_segment(db, sid)
    assert result.skipped == "archived dynamic"
    assert await members_of(db, sid) == set()
    summary = await membership.refresh_all(db)
    assert summary.refreshed == [] and summary.failed == {}
    assert (await membership.refresh_segment(db, static)).skipped == "active static"
    assert await log_of(db) == []
    _ = a


async def test_refresh_all_in_reference_order_with_progress(
    db: Database, settings: Settings
) -> None:
    a, b = await shoppers(db, settings, ["DE", "FR"])
    await tag(db, a, "vip")
    germans = await segment(db, DE, name="Germans")
    vips = await segment(db, VIP, name="VIPs")
    german_vips = await segment(
        db,
        {"and": [{"segment": {"segmentId": germans, "member": True}}, VIP]},
        name="German VIPs",
    )
    seen: list[tuple[int, int, str]] = []
    summary = await membership.refresh_all(db, progress=lambda d, t, n: seen.append((d, t, n)))
    assert [r.segment_id for r in summary.refreshed] == [germans, vips, german_vips]
    assert seen[0] == (0, 3, "Germans") and seen[-1] == (3, 3, "")
    assert summary.as_dict()["entered"] == 3
    assert await members_of(db, german_vips) == {a}
    _ = b


async def test_reevaluate_only_affected_segments(db: Database, settings: Settings) -> None:
    # Given a shopper and three segments reading different things
    (a,) = await shoppers(db, settings, ["FR"])
    carted = await segment(db, CARTED, name="Carted")
    germans = await segment(db, DE, name="Germans")
    vips = await segment(db, VIP, name="VIPs")
    await add_event(db, a, "add_to_cart")

    # When an add_to_cart event is re-evaluated, only the behaviour segment is evaluated
    evaluated: list[int] = []
    async with db.unit_of_work() as session:
        found = await membership.reevaluate_customer(
            session, a, Changes(event_types=frozenset({"add_to_cart"})), evaluated=evaluated
        )
    assert evaluated == [carted]
    assert [(t.segment_id, t.kind) for t in found] == [(carted, "enter")]
    assert await members_of(db, carted) == {a}
    assert (await row(db, carted)).member_count == 1
    assert await log_of(db) == [(carted, a, "enter", 1)]

    # A view event affects none of them: nothing is evaluated
    evaluated.clear()
    async with db.unit_of_work() as session:
        assert (
            await membership.reevaluate_customer(
                session, a, Changes(event_types=frozenset({"view"})), evaluated=evaluated
            )
            == []
        )
    assert evaluated == []

    # Attribute and tag changes evaluate the matching segments only
    await set_country(db, a, "DE")
    await tag(db, a, "vip")
    evaluated.clear()
    async with db.unit_of_work() as session:
        found = await membership.reevaluate_customer(
            session, a, Changes(attributes=True, tags=True), evaluated=evaluated
        )
    assert sorted(evaluated) == sorted([germans, vips])
    assert sorted((t.segment_id, t.kind) for t in found) == sorted(
        [(germans, "enter"), (vips, "enter")]
    )

    # Leaving: the country changes back; the exit is recorded and the count goes down
    await set_country(db, a, "FR")
    async with db.unit_of_work() as session:
        found = await membership.reevaluate_customer(session, a, Changes(attributes=True))
    assert [(t.segment_id, t.kind) for t in found] == [(germans, "exit")]
    assert (await row(db, germans)).member_count == 0
    assert await members_of(db, germans) == set()


async def test_definition_cache_follows_edits(db: Database, settings: Settings) -> None:
    (a,) = await shoppers(db, settings, ["DE"])
    sid = await segment(db, {"attribute": {"field": "country", "op": "eq", "value": "FR"}})
    async with db.unit_of_work() as session:
        assert await membership.reevaluate_customer(session, a, Changes(attributes=True)) == []
    async with db.unit_of_work() as session:
        await service.update_segment(session, ADMIN, sid, definition=DE)
    async with db.unit_of_work() as session:
        found = await membership.reevaluate_customer(session, a, Changes(attributes=True))
    assert [(t.kind, t.version) for t in found] == [("enter", 2)]
    # Archived: no longer evaluated
    async with db.unit_of_work() as session:
        await service.archive_segment(session, ADMIN, sid)
    evaluated: list[int] = []
    async with db.unit_of_work() as session:
        await membership.reevaluate_customer(session, a, membership.EVERYTHING, evaluated=evaluated)
    assert evaluated == []


async def test_erased_shopper_leaves_every_segment(db: Database, settings: Settings) -> None:
    a, b = await shoppers(db, settings, ["DE", "DE"])
    sid = await segment(db, DE)
    static = await segment(db, None, kind="static", name="List")
    async with db.unit_of_work() as session:
        await service.add_members(session, ADMIN, static, [a, b])
    await membership.refresh_segment(db, sid)
    assert await members_of(db, sid) == {a, b}

    async with db.unit_of_work() as session:
        await erase_user(session, ADMIN, a, due_days=30)

    # Memberships and transitions went with the customer row
    assert await members_of(db, sid) == {b}
    assert await members_of(db, static) == {b}
    assert all(t[1] != a for t in await log_of(db))
    async with db.read_only() as session:
        assert await service.customer_segments(session, a) == []
    # A later refresh and re-evaluation do not bring them back
    result = await membership.refresh_segment(db, sid)
    assert result.members == 1 and result.entered == 0
    async with db.unit_of_work() as session:
        assert await membership.reevaluate_customer(session, a, membership.EVERYTHING) == []
    assert await members_of(db, sid) == {b}
    assert (await row(db, sid)).member_count == 1


async def test_transitions_since_reads_the_log_by_cursor(db: Database, settings: Settings) -> None:
    a, b, c = await shoppers(db, settings, ["DE", "DE", "DE"])
    sid = await segment(db, DE)
    await membership.refresh_segment(db, sid)
    async with db.read_only() as session:
        page = await membership.transitions_since(session, None, 2)
        assert [(t.customer_id, t.kind) for t in page] == [(a, "enter"), (b, "enter")]
        rest = await membership.transitions_since(session, page[-1].id, 2)
        assert [(t.customer_id, t.kind) for t in rest] == [(c, "enter")]
        assert await membership.transitions_since(session, rest[-1].id, 2) == []


async def test_refresh_of_unknown_segment_is_not_found(db: Database) -> None:
    with pytest.raises(DomainError) as err:
        await membership.refresh_segment(db, 999)
    assert err.value.errors[0].code == "NOT_FOUND"


# --- concurrency and crashes (real PostgreSQL sessions and a real killed process) --------------


async def test_refresh_waits_for_an_edit_and_computes_its_version(
    db: Database, settings: Settings, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("concurrent writers: PostgreSQL (SQLite runs one writer at a time)")
    a, b = await shoppers(db, settings, ["DE", "FR"])
    sid = await segment(db, DE)
    fr = {"attribute": {"field": "country", "op": "eq", "value": "FR"}}

    # Given an edit holding the segment (not committed yet)
    async with db.unit_of_work() as editing:
        await service.update_segment(editing, ADMIN, sid, definition=fr)
        # When a refresh starts meanwhile, it waits
        refresh = asyncio.create_task(membership.refresh_segment(db, sid))
        await asyncio.sleep(0.5)
        assert not refresh.done()
    # Then, once the edit commits, it computes version 2 only
    result = await refresh
    assert result.version == 2
    assert await members_of(db, sid) == {b}
    assert await log_of(db, sid) == [(sid, b, "enter", 2)]
    assert (await row(db, sid)).refreshed_version == 2
    _ = a


async def paused_refresh(
    db: Database,
    sid: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    seconds: float = 1.0,
) -> asyncio.Task[membership.RefreshResult]:
    """A refresh started in this process that holds the segment and sleeps ``seconds`` inside its
    transaction; returns once it is inside the pause."""
    marker = tmp_path / "paused"
    monkeypatch.setenv(membership.PAUSE_ENV, str(seconds))
    monkeypatch.setenv(membership.PAUSE_FILE_ENV, str(marker))
    refresh = asyncio.create_task(membership.refresh_segment(db, sid))
    for _ in range(600):
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    monkeypatch.delenv(membership.PAUSE_ENV)
    monkeypatch.delenv(membership.PAUSE_FILE_ENV)
    assert marker.exists()
    return refresh


async def test_an_edit_waits_for_a_running_refresh(
    db: Database,
    settings: Settings,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if backend != "postgres":
        pytest.skip("concurrent writers: PostgreSQL (SQLite runs one writer at a time)")
    a, b = await shoppers(db, settings, ["DE", "FR"])
    sid = await segment(db, DE)
    refresh = await paused_refresh(db, sid, monkeypatch, tmp_path)
    started = time.monotonic()
    async with db.unit_of_work() as session:
        await service.update_segment(
            session,
            ADMIN,
            sid,
            definition={"attribute": {"field": "country", "op": "eq", "value": "FR"}},
        )
    waited = time.monotonic() - started
    result = await refresh
    assert waited > 0.4  # the edit waited for the refresh's commit
    assert result.version == 1
    assert await log_of(db, sid) == [(sid, a, "enter", 1)]
    assert (await row(db, sid)).refreshed_version == 1
    second = await membership.refresh_segment(db, sid)
    assert (second.version, second.entered, second.exited) == (2, 1, 1)
    _ = b


def _env(settings: Settings) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PRECIS_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(PRECIS_DATABASE_URL=settings.database_url, PRECIS_VAR_DIR=str(settings.var_dir))
    return env


async def test_killed_refresh_leaves_previous_membership(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    # Given a refreshed segment {a, b}, then data that moves b out and c in
    a, b, c = await shoppers(db, settings, ["DE", "DE", "FR"])
    sid = await segment(db, DE)
    await membership.refresh_segment(db, sid)
    before_log = await log_of(db)
    await set_country(db, b, "FR")
    await set_country(db, c, "DE")

    # When `precis segments refresh` is killed inside its transaction (after deleting the exits)
    marker = tmp_path / "paused"
    env = _env(settings) | {
        membership.PAUSE_ENV: "60",
        membership.PAUSE_FILE_ENV: str(marker),
    }
    proc = await asyncio.create_subprocess_exec(
        PRECIS,
        "segments",
        "refresh",
        "--id",
        str(sid),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.returncode is None, "the refresh ended before its pause"
            assert time.monotonic() < deadline, "the refresh never reached its pause"
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Then members, transitions and the segment row are as before
    assert await members_of(db, sid) == {a, b}
    assert await log_of(db) == before_log
    assert (await row(db, sid)).member_count == 2
    # And the next refresh completes (PostgreSQL released the dead session's lock)
    result = await asyncio.wait_for(membership.refresh_segment(db, sid), 30)
    assert (result.entered, result.exited) == (1, 1)
    assert await members_of(db, sid) == {a, c}


async def test_per_shopper_path_is_three_queries_plus_writes(
    db: Database, settings: Settings
) -> None:
    from typing import Any

    from sqlalchemy import event

    (a,) = await shoppers(db, settings, ["DE"])
    for n in range(5):
        await segment(db, {"behavior": {"eventType": "view", "window": {"lastDays": n + 1}}})
    await segment(db, DE)
    async with db.unit_of_work() as session:  # warm the definition cache
        await membership.reevaluate_customer(session, a, membership.EVERYTHING)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        # No change: staleness check, lock + current memberships, one evaluation of 5 segments
        async with db.unit_of_work() as session:
            assert (
                await membership.reevaluate_customer(
                    session, a, Changes(event_types=frozenset({"view"}))
                )
                == []
            )
        assert len(statements) == 3, statements
        assert statements[2].count("UNION ALL") == 4
        # A change: the same three, then the writes (member rows, transitions, counts)
        await add_event(db, a, "view")
        statements.clear()
        async with db.unit_of_work() as session:
            found = await membership.reevaluate_customer(
                session, a, Changes(event_types=frozenset({"view"}))
            )
        assert len(found) == 5
        assert len(statements) == 3 + 2 + 5, statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_data_export_lists_memberships_and_transitions(
    db: Database, settings: Settings
) -> None:
    from domain.keys import build_keys
    from domain.privacy.export import SECTIONS

    a, b = await shoppers(db, settings, ["DE", "FR"])
    sid = await segment(db, DE, name="Germans")
    await membership.refresh_segment(db, sid)
    await set_country(db, a, "FR")
    await membership.refresh_segment(db, sid)
    await set_country(db, a, "DE")
    await membership.refresh_segment(db, sid)
    async with db.read_only() as session:
        doc = await SECTIONS["segments"](session, build_keys(settings), a)
        other = await SECTIONS["segments"](session, build_keys(settings), b)
    assert [(m["segment_id"], m["name"]) for m in doc["memberships"]] == [(sid, "Germans")]
    assert doc["memberships"][0]["entered_at"] is not None
    assert [(t["segment_id"], t["kind"], t["version"]) for t in doc["transitions"]] == [
        (sid, "enter", 1),
        (sid, "exit", 1),
        (sid, "enter", 1),
    ]
    assert other == {"memberships": [], "transitions": []}


async def test_reevaluation_waits_for_a_running_refresh(
    db: Database,
    settings: Settings,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if backend != "postgres":
        pytest.skip("concurrent writers: PostgreSQL (SQLite runs one writer at a time)")
    a, b = await shoppers(db, settings, ["DE", "FR"])
    sid = await segment(db, DE)
    await membership.refresh_segment(db, sid)
    await set_country(db, b, "DE")
    refresh = await paused_refresh(db, sid, monkeypatch, tmp_path)
    started = time.monotonic()
    async with db.unit_of_work() as session:
        found = await membership.reevaluate_customer(session, b, Changes(attributes=True))
    waited = time.monotonic() - started
    assert (await refresh).entered == 1
    # It waited for the refresh's commit, then saw b already entered: no second transition
    assert waited > 0.4
    assert found == []
    assert await log_of(db, sid) == [(sid, a, "enter", 1), (sid, b, "enter", 1)]
    assert (await row(db, sid)).member_count == 2


async def test_overlapping_cron_refresh_skips_a_held_segment(
    db: Database, settings: Settings, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("row locks: PostgreSQL (SQLite runs one writer at a time)")
    (a,) = await shoppers(db, settings, ["DE"])
    held = await segment(db, DE, name="Held")
    free = await segment(db, DE, name="Free")
    async with db.unit_of_work() as editing:
        await service.update_segment(editing, ADMIN, held, name="Held 2")
        started = time.monotonic()
        summary = await asyncio.wait_for(membership.refresh_all(db, skip_locked=True), 10)
        assert time.monotonic() - started < 5  # did not wait for the edit
    assert summary.skipped == [held]
    assert [r.segment_id for r in summary.refreshed] == [free]
    assert summary.as_dict()["skipped"] == 1
    assert await members_of(db, held) == set() and await members_of(db, free) == {a}


async def test_reevaluation_job_skips_a_segment_held_too_long(
    db: Database,
    settings: Settings,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if backend != "postgres":
        pytest.skip("row locks: PostgreSQL (SQLite runs one writer at a time)")
    (a,) = await shoppers(db, settings, ["DE"])
    held = await segment(db, DE, name="Held")
    free = await segment(db, {"attribute": {"field": "country", "op": "in", "values": ["DE"]}})
    monkeypatch.setattr(membership, "LOCK_WAIT_MS", 200)
    refresh = await paused_refresh(db, held, monkeypatch, tmp_path, seconds=3.0)
    started = time.monotonic()
    result = await membership.reevaluate_customers(db, [a], Changes(attributes=True))
    assert time.monotonic() - started < 2.5  # gave up waiting on the held segment
    assert result == {"customers": 1, "entered": 1, "exited": 0}
    assert await members_of(db, free) == {a}
    assert (await refresh).entered == 1  # the held one: its refresh took a in
    assert await log_of(db, held) == [(held, a, "enter", 1)]
