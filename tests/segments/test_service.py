"""The segment service: versions and conflicts, archive rules, static membership (add, remove, CSV
import) that changes nothing when refused, reads, audit entries and the built-in segments."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from api.ids import encode_id
from domain.audit.models import AuditEntry
from domain.db import Database
from domain.errors import DomainError
from domain.keys import build_keys
from domain.segments import builtins, membership, service
from domain.segments.models import Segment, SegmentVersion
from domain.settings import Settings
from domain.users import service as users
from tests.segments.members_world import (
    ADMIN,
    DE,
    add_event,
    log_of,
    members_of,
    row,
    segment,
    shoppers,
)


async def audit_actions(db: Database) -> list[str]:
    async with db.read_only() as session:
        stmt = select(col(AuditEntry.action)).order_by(col(AuditEntry.id))
        return [str(a) for a in await session.scalars(stmt)]


async def count(db: Database, model: Any) -> int:
    async with db.read_only() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def refused(db: Database, fn: Any) -> DomainError:
    with pytest.raises(DomainError) as err:
        async with db.unit_of_work() as session:
            await fn(session)
    return err.value


# --- create, update, versions ------------------------------------------------------------------


async def test_create_and_update_keep_a_history(db: Database) -> None:
    sid = await segment(db, DE, name="Germans")
    async with db.unit_of_work() as session:
        seg = await service.update_segment(
            session, ADMIN, sid, name="  German shoppers ", description="DE", expected_version=1
        )
        assert (seg.version, seg.name, seg.description) == (2, "German shoppers", "DE")
        seg = await service.update_segment(
            session,
            ADMIN,
            sid,
            definition={"attribute": {"field": "country", "op": "eq", "value": "AT"}},
        )
        assert seg.version == 3
    async with db.read_only() as session:
        versions = await service.history(session, sid)
    assert [(v.version, v.name) for v in versions] == [
        (3, "German shoppers"),
        (2, "German shoppers"),
        (1, "Germans"),
    ]
    assert versions[0].definition == {"attribute": {"field": "country", "op": "eq", "value": "AT"}}
    assert versions[2].definition == DE
    assert versions[0].changed_by == "admin-client:admin"
    assert await audit_actions(db) == ["segment.create", "segment.update", "segment.update"]


async def test_stale_expected_version_is_a_conflict_and_changes_nothing(db: Database) -> None:
    sid = await segment(db, DE)
    async with db.unit_of_work() as session:
        await service.update_segment(session, ADMIN, sid, name="Two")
    err = await refused(
        db,
        lambda s: service.update_segment(s, ADMIN, sid, name="Three", expected_version=1),
    )
    assert [(e.code, e.field) for e in err.errors] == [("CONFLICT", ("expectedVersion",))]
    seg = await row(db, sid)
    assert (seg.version, seg.name) == (2, "Two")
    assert await count(db, SegmentVersion) == 2
    assert await audit_actions(db) == ["segment.create", "segment.update"]


async def test_invalid_input_is_refused_with_paths(db: Database) -> None:
    bad_def = {"and": [DE, {"attribute": {"field": "email", "op": "eq", "value": "x"}}]}
    err = await refused(
        db,
        lambda s: service.create_segment(s, ADMIN, name="X", kind="dynamic", definition=bad_def),
    )
    assert err.errors[0].field[:3] == ("definition", "and", "1")
    err = await refused(
        db, lambda s: service.create_segment(s, ADMIN, name=" ", kind="dynamic", definition=DE)
    )
    assert [(e.code, e.field) for e in err.errors] == [("REQUIRED", ("name",))]
    err = await refused(
        db, lambda s: service.create_segment(s, ADMIN, name="A" * 201, kind="static")
    )
    assert [(e.code, e.field) for e in err.errors] == [("TOO_LONG", ("name",))]
    err = await refused(db, lambda s: service.create_segment(s, ADMIN, name="X", kind="dynamic"))
    assert [(e.code, e.field) for e in err.errors] == [("REQUIRED", ("definition",))]
    err = await refused(
        db,
        lambda s: service.create_segment(s, ADMIN, name="X", kind="static", definition=DE),
    )
    assert [(e.code, e.field) for e in err.errors] == [("INVALID", ("definition",))]
    err = await refused(db, lambda s: service.create_segment(s, ADMIN, name="X\x00", kind="static"))
    assert err.errors[0].code == "INVALID"
    assert await count(db, Segment) == 0
    assert await audit_actions(db) == []

    sid = await segment(db, DE)
    err = await refused(db, lambda s: service.update_segment(s, ADMIN, sid, definition=bad_def))
    assert err.errors[0].field[:3] == ("definition", "and", "1")
    err = await refused(db, lambda s: service.update_segment(s, ADMIN, sid))
    assert err.errors[0].code == "REQUIRED"
    err = await refused(db, lambda s: service.update_segment(s, ADMIN, 999, name="x"))
    assert err.errors[0].code == "NOT_FOUND"
    # A segment cannot reference itself
    err = await refused(
        db,
        lambda s: service.update_segment(
            s, ADMIN, sid, definition={"segment": {"segmentId": sid, "member": True}}
        ),
    )
    assert err.errors[0].code == "CYCLE"
    assert (await row(db, sid)).version == 1


# --- archive -------------------------------------------------------------------------------------


async def test_archive_refused_while_referenced(db: Database, settings: Settings) -> None:
    (a,) = await shoppers(db, settings, ["DE"])
    germans = await segment(db, DE, name="Germans")
    user = await segment(
        db, {"not": {"segment": {"segmentId": germans, "member": True}}}, name="Not German"
    )
    err = await refused(db, lambda s: service.archive_segment(s, ADMIN, germans))
    assert err.errors[0].code == "IN_USE"
    assert f"Not German ({user})" in err.errors[0].message
    assert (await row(db, germans)).status == "active"

    # Once the referencing segment is archived, it can be archived (twice is harmless)
    await membership.refresh_segment(db, germans)
    async with db.unit_of_work() as session:
        await service.archive_segment(session, ADMIN, user)
        seg = await service.archive_segment(session, ADMIN, germans)
        assert seg.status == "archived" and seg.archived_at is not None
        again = await service.archive_segment(session, ADMIN, germans)
        assert again.archived_at == seg.archived_at
    # Archived: no edits, not in User.segments, membership kept as it was
    err = await refused(db, lambda s: service.update_segment(s, ADMIN, germans, name="x"))
    assert err.errors[0].code == "ARCHIVED"
    async with db.read_only() as session:
        assert await service.customer_segments(session, a) == []
    assert await members_of(db, germans) == {a}
    assert await audit_actions(db) == [
        "segment.create",
        "segment.create",
        "segment.archive",
        "segment.archive",
    ]


# --- static membership ---------------------------------------------------------------------------


async def test_static_add_and_remove(db: Database, settings: Settings) -> None:
    a, b, c = await shoppers(db, settings, [None, None, None])
    sid = await segment(db, None, kind="static", name="VIP list")
    async with db.unit_of_work() as session:
        assert await service.add_members(session, ADMIN, sid, [a, b, a]) == 2
    async with db.unit_of_work() as session:
        assert await service.add_members(session, ADMIN, sid, [b, c]) == 1
        assert await service.remove_members(session, ADMIN, sid, [a, a]) == 1
        assert await service.remove_members(session, ADMIN, sid, [a]) == 0
    assert await members_of(db, sid) == {b, c}
    assert (await row(db, sid)).member_count == 2
    assert await log_of(db, sid) == [
        (sid, a, "enter", 1),
        (sid, b, "enter", 1),
        (sid, c, "enter", 1),
        (sid, a, "exit", 1),
    ]
    async with db.read_only() as session:
        mine = await service.customer_segments(session, b)
        assert [(s.id, s.name) for s, _ in mine] == [(sid, "VIP list")]
        page = await service.members(session, sid, first=1)
        assert [m.customer_id for m in page] == [b, c]  # first + 1 rows
        rest = await service.members(session, sid, after=b, first=1)
        assert [m.customer_id for m in rest] == [c]
    assert (await audit_actions(db))[1:] == [
        "segment.members.add",
        "segment.members.add",
        "segment.members.remove",
        "segment.members.remove",
    ]


async def test_refused_static_changes_change_nothing(db: Database, settings: Settings) -> None:
    (a,) = await shoppers(db, settings, [None])
    sid = await segment(db, None, kind="static")
    dynamic = await segment(db, DE)
    async with db.unit_of_work() as session:
        await service.add_members(session, ADMIN, sid, [a])
    before = (await members_of(db, sid), await log_of(db), await audit_actions(db))

    err = await refused(db, lambda s: service.add_members(s, ADMIN, sid, [a, 9999, -1]))
    assert [(e.code, e.field, e.index) for e in err.errors] == [
        ("NOT_FOUND", ("customerIds", "1"), 1),
        ("NOT_FOUND", ("customerIds", "2"), 2),
    ]
    err = await refused(db, lambda s: service.remove_members(s, ADMIN, sid, [a, 9999]))
    assert err.errors[0].field == ("customerIds", "1")
    err = await refused(db, lambda s: service.add_members(s, ADMIN, sid, []))
    assert err.errors[0].code == "REQUIRED"
    err = await refused(
        db,
        lambda s: service.add_members(s, ADMIN, sid, [a] * (service.MAX_MEMBERS_PER_CALL + 1)),
    )
    assert err.errors[0].code == "TOO_MANY"
    err = await refused(db, lambda s: service.add_members(s, ADMIN, dynamic, [a]))
    assert err.errors[0].code == "NOT_STATIC"
    assert (await members_of(db, sid), await log_of(db), await audit_actions(db)) == before


async def test_csv_import(db: Database, settings: Settings) -> None:
    keys = build_keys(settings)
    async with db.unit_of_work() as session:
        made = await users.upsert_users(
            session,
            keys,
            [
                {"external_id": "x-1", "email": "Ann@Example.com"},
                {"external_id": "x-2"},
                {"external_id": "x-3"},
            ],
        )
    a, b, c = (int(u.id or 0) for u in made)
    sid = await segment(db, None, kind="static")

    async def run(text: str, mode: str = "add") -> service.ImportResult:
        async with db.unit_of_work() as session:
            return await service.import_members_csv(session, ADMIN, sid, text, mode=mode, keys=keys)

    result = await run("name,external_id\nAnn,x-1\n\nBob, x-2 \nAnn again,x-1\n")
    assert (result.rows, result.added, result.removed, result.members) == (3, 2, 0, 2)
    assert await members_of(db, sid) == {a, b}
    result = await run("email\nann@example.com\n")  # by keyed hash, normalised
    assert (result.added, result.unchanged) == (0, 1)
    result = await run(f"user_id\n{c}\n{encode_id('User', b)}\n", mode="replace")
    assert (result.added, result.removed, result.members) == (1, 1, 2)
    assert await members_of(db, sid) == {b, c}
    assert (await log_of(db, sid))[-2:] == [(sid, a, "exit", 1), (sid, c, "enter", 1)]
    async with db.read_only() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "segment.members.import")  # type: ignore[arg-type]
            )
        )
    assert [e.details["mode"] for e in entries] == ["add", "add", "replace"]


async def test_csv_import_with_bad_rows_changes_nothing(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = build_keys(settings)
    (a,) = await shoppers(db, settings, [None])
    sid = await segment(db, None, kind="static")
    before = (await members_of(db, sid), await log_of(db), await audit_actions(db))

    async def refused_import(text: str, mode: str = "add") -> DomainError:
        return await refused(
            db,
            lambda s: service.import_members_csv(s, ADMIN, sid, text, mode=mode, keys=keys),
        )

    err = await refused_import("external_id,name\ns-0,A\nnobody,B\n\n,C\ns-0,D\n")
    assert [(e.code, e.field, e.index) for e in err.errors] == [
        ("NOT_FOUND", ("file", "3"), 3),
        ("REQUIRED", ("file", "5"), 5),
    ]
    assert "line 3" in err.errors[0].message
    err = await refused_import("email\nnot-an-email\n")
    assert err.errors[0].code == "INVALID" and err.errors[0].index == 2
    err = await refused_import("user_id\nabc\n0\n")
    assert [e.index for e in err.errors] == [2, 3]
    err = await refused_import("name,phone\nx,y\n")
    assert err.errors[0].code == "INVALID_HEADER"
    err = await refused_import("external_id,email\nx,y\n")
    assert err.errors[0].code == "INVALID_HEADER"
    err = await refused_import("")
    assert err.errors[0].code == "REQUIRED"
    err = await refused_import("external_id\ns-0\n", mode="merge")
    assert err.errors[0].code == "INVALID"
    monkeypatch.setattr(service, "MAX_IMPORT_ROWS", 2)
    err = await refused_import("external_id\ns-0\ns-0\ns-0\n")
    assert err.errors[0].code == "TOO_MANY"
    monkeypatch.setattr(service, "MAX_REPORTED_ERRORS", 2)
    monkeypatch.setattr(service, "MAX_IMPORT_ROWS", 100)
    err = await refused_import("external_id\n" + "".join(f"n{i}\n" for i in range(5)))
    assert [e.code for e in err.errors] == ["NOT_FOUND", "NOT_FOUND", "TOO_MANY"]
    assert "3 more" in err.errors[-1].message
    assert (await members_of(db, sid), await log_of(db), await audit_actions(db)) == before
    _ = a


async def test_list_and_search(db: Database) -> None:
    a = await segment(db, DE, name="Germans 50% off")
    b = await segment(db, None, kind="static", name="Newsletter_list")
    c = await segment(db, DE, name="Other")
    async with db.unit_of_work() as session:
        await service.archive_segment(session, ADMIN, c)
    async with db.read_only() as session:
        ids = [s.id for s in await service.list_segments(session)]
        assert ids == [a, b, c]
        assert [s.id for s in await service.list_segments(session, status="active")] == [a, b]
        assert [s.id for s in await service.list_segments(session, kind="static")] == [b]
        assert [s.id for s in await service.list_segments(session, search="50%")] == [a]
        assert [s.id for s in await service.list_segments(session, search="r_l")] == [b]
        assert [s.id for s in await service.list_segments(session, search="%")] == [a]
        assert [s.id for s in await service.list_segments(session, after=a, first=1)] == [b, c]
        assert await service.count_segments(session, status="archived") == 1
        assert await service.get_segment(session, 999) is None


# --- built-ins ----------------------------------------------------------------------------------


async def test_builtins_seed_idempotently_and_cannot_be_edited(
    db: Database, settings: Settings
) -> None:
    async with db.unit_of_work() as session:
        first = await builtins.seed(session)
    assert sorted(first.created) == sorted(b.name for b in builtins.BUILTINS)
    async with db.unit_of_work() as session:
        second = await builtins.seed(session)
    assert (second.created, second.updated) == ([], [])
    async with db.read_only() as session:
        found = await service.list_segments(session, builtin=True)
        assert {s.key for s in found} == {f"builtin:{b.name}" for b in builtins.BUILTINS}
        assert all(s.version == 1 and s.kind == "dynamic" for s in found)
        loyal = await service.get_by_key(session, "builtin:loyal")
    assert loyal is not None and loyal.id is not None
    err = await refused(db, lambda s: service.update_segment(s, ADMIN, loyal.id, name="x"))
    assert err.errors[0].code == "BUILTIN"
    err = await refused(db, lambda s: service.archive_segment(s, ADMIN, loyal.id))
    assert err.errors[0].code == "BUILTIN"

    # A changed rule (here: edited in the table) is put back, as a new version
    async with db.unit_of_work() as session:
        seg = await session.get(Segment, loyal.id)
        assert seg is not None
        seg.definition = DE
    async with db.unit_of_work() as session:
        third = await builtins.seed(session)
    assert third.updated == ["loyal"]
    assert (await row(db, loyal.id)).version == 2


async def test_cart_abandoners_rule(db: Database, settings: Settings) -> None:
    a, b, c, d = await shoppers(db, settings, [None, None, None, None])
    await add_event(db, a, "add_to_cart", days_ago=2)  # abandoned
    await add_event(db, b, "add_to_cart", days_ago=2)
    await add_event(db, b, "purchase", days_ago=1)  # bought
    await add_event(db, c, "add_to_cart", days_ago=0.1)  # too recent to call abandoned
    await add_event(db, d, "add_to_cart", days_ago=9)  # too long ago
    async with db.unit_of_work() as session:
        await builtins.seed(session)
        seg = await service.get_by_key(session, "builtin:cart_abandoners")
    assert seg is not None and seg.id is not None
    await membership.refresh_all(db)
    assert await members_of(db, seg.id) == {a}


async def test_archive_and_a_new_reference_cannot_cross(db: Database, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("concurrent writers: PostgreSQL (SQLite runs one writer at a time)")
    import asyncio

    target = await segment(db, DE, name="Target")
    ref = {"segment": {"segmentId": target, "member": True}}

    # An archive holds the segment; a save referencing it waits, then sees it archived
    async with db.unit_of_work() as archiving:
        await service.archive_segment(archiving, ADMIN, target)
        saving = asyncio.create_task(segment(db, ref, name="Referrer"))
        await asyncio.sleep(0.5)
        assert not saving.done()
    with pytest.raises(DomainError) as err:
        await saving
    assert err.value.errors[0].code == "NOT_FOUND"
    assert await count(db, Segment) == 1


async def test_segments_on_a_static_list_follow_its_changes(
    db: Database, settings: Settings
) -> None:
    a, b = await shoppers(db, settings, ["DE", "FR"])
    vips = await segment(db, None, kind="static", name="VIPs")
    german_vips = await segment(
        db, {"and": [{"segment": {"segmentId": vips, "member": True}}, DE]}, name="German VIPs"
    )
    async with db.unit_of_work() as session:
        await service.add_members(session, ADMIN, vips, [a, b])
    assert await members_of(db, german_vips) == {a}  # at once, not at the next refresh
    async with db.unit_of_work() as session:
        await service.remove_members(session, ADMIN, vips, [a])
    assert await members_of(db, german_vips) == set()
    assert await log_of(db, german_vips) == [
        (german_vips, a, "enter", 1),
        (german_vips, a, "exit", 1),
    ]
