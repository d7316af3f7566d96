"""Materialised segment membership: full refreshes, per-shopper re-evaluation, the transition log.

* ``refresh_segment`` recomputes one dynamic segment in ONE transaction: it locks the segment row
  (an edit of the definition takes the same lock, so a refresh computes exactly one version and
  records it as ``refreshed_version``), evaluates the compiled definition once into a temporary
  table, then writes the exits (transition rows, then deletes) and the entries (transition rows,
  then inserts). A crash anywhere before the commit leaves the previous membership and log as they
  were.
* ``refresh_all`` refreshes every active dynamic segment, each in its own transaction, referenced
  segments first.
* ``reevaluate_customer`` re-checks one shopper against the active dynamic segments a change can
  affect (``Changes``, matched against each definition's ``dependencies``), with one query for all of
  them. The resolved definitions are cached per process and re-read when a cheap fingerprint of the
  segment table (active dynamic count, sum of versions, last update) changes.
* ``segment_transition`` is the log campaigns trigger on: one row per shopper entering or leaving a
  segment, with the segment version that caused it, read in id order with ``transitions_since``.
  Rows commit in transaction order, not strictly in id order: a reader should re-read from a cursor
  a few seconds behind the newest row it has seen (ids are never reused, so it can skip repeats).

Locking (PostgreSQL): refresh and edits take ``FOR UPDATE`` on the segment row; a per-shopper
re-evaluation takes ``FOR KEY SHARE`` on the segments it evaluates, so it waits for a running
refresh of them (and then sees its result) but never for another shopper's re-evaluation. SQLite
runs one writer at a time, which gives the same order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import CreateTable
from sqlmodel import col

from domain.columns import UTCDateTime, utcnow
from domain.errors import DomainError
from domain.segments.models import Segment, SegmentMember, SegmentTransition
from domain.sql import insert_for, table

if TYPE_CHECKING:
    from domain.db import Database
    from domain.segments.definition import Deps, Resolved

log = logging.getLogger("precis.segments")

# A full refresh of a large segment runs longer than the API's statement timeout.
REFRESH_STATEMENT_TIMEOUT = "30min"
TEMP_NAME = "segment_refresh_members"
PAUSE_ENV = "PRECIS_TEST_REFRESH_PAUSE"  # tests: seconds to sleep inside the refresh transaction
PAUSE_FILE_ENV = "PRECIS_TEST_REFRESH_PAUSE_FILE"  # tests: a file written when the pause starts


@dataclass(frozen=True)
class Changes:
    """What changed for a shopper; a segment is re-evaluated if its dependencies meet it."""

    event_types: frozenset[str] = frozenset()
    orders: bool = False
    profile: bool = False
    consents: bool = False
    attributes: bool = False
    tags: bool = False
    static_segments: frozenset[int] = frozenset()
    everything: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (job arguments)."""
        out: dict[str, Any] = {}
        if self.event_types:
            out["event_types"] = sorted(self.event_types)
        if self.static_segments:
            out["static_segments"] = sorted(self.static_segments)
        for name in ("orders", "profile", "consents", "attributes", "tags", "everything"):
            if getattr(self, name):
                out[name] = True
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Changes:
        return cls(
            event_types=frozenset(str(t) for t in doc.get("event_types", ())),
            static_segments=frozenset(int(s) for s in doc.get("static_segments", ())),
            **{
                name: bool(doc.get(name))
                for name in ("orders", "profile", "consents", "attributes", "tags", "everything")
            },
        )


EVERYTHING = Changes(everything=True)


def affects(deps: Deps, changes: Changes) -> bool:
    """Whether a change can move a shopper in or out of a segment with these dependencies."""
    return bool(
        changes.everything
        or (changes.event_types & deps.event_types)
        or (changes.orders and deps.orders)
        or (changes.profile and deps.profile)
        or (changes.consents and deps.consents)
        or (changes.attributes and deps.attributes)
        or (changes.tags and deps.tags)
        or (changes.static_segments & deps.static_segments)
    )


@dataclass(frozen=True)
class RefreshResult:
    segment_id: int
    entered: int
    exited: int
    members: int
    seconds: float
    version: int | None = None
    skipped: str | None = None  # why nothing was computed (archived, static)


@dataclass
class RefreshSummary:
    refreshed: list[RefreshResult] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)  # held by another refresh or an edit
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "segments": len(self.refreshed),
            "entered": sum(r.entered for r in self.refreshed),
            "exited": sum(r.exited for r in self.refreshed),
            "failed": {str(k): v for k, v in self.failed.items()},
            "skipped": len(self.skipped),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Transition:
    segment_id: int
    customer_id: int
    kind: str  # enter | exit
    version: int


Progress = Callable[[int, int, str], None]  # (done, total, segment name)


# --- definitions, cached per process ----------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    segment_id: int
    version: int
    name: str
    resolved: Resolved
    deps: Deps


@dataclass
class _Cache:
    fingerprint: tuple[Any, ...]
    items: list[Compiled]
    # Per-shopper statements by the segment ids they check: (built at, statement). Built with
    # ``customer_id`` as a bind parameter and reused for STATEMENT_TTL seconds, so relative windows
    # ("last 7 days") are measured from a "now" at most that old.
    statements: dict[tuple[int, ...], tuple[float, Any]] = field(default_factory=dict)
    checked_at: float = 0.0  # time.monotonic() of the last fingerprint check


STATEMENT_TTL = 30.0
# How long the re-evaluation job waits for a segment a refresh holds before skipping it.
LOCK_WAIT_MS = 2000
LOCK_NOT_AVAILABLE = "55P03"
FRESH_SECONDS = 0.5


_CACHES: dict[str, _Cache] = {}
_ACTIVE_DYNAMIC = (col(Segment.status) == "active", col(Segment.kind) == "dynamic")


async def _fingerprint(session: AsyncSession) -> tuple[Any, ...]:
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(col(Segment.version)), 0),
                func.max(col(Segment.updated_at)),
                func.max(col(Segment.id)),
            ).where(*_ACTIVE_DYNAMIC)
        )
    ).one()
    return tuple(row)


async def resolve(session: AsyncSession, seg: Segment) -> tuple[Resolved, Deps]:
    from domain.segments.definition import dependencies, validate

    resolved = await validate(session, seg.definition, segment_id=seg.id)
    return resolved, dependencies(resolved)


async def active_definitions(session: AsyncSession) -> list[Compiled]:
    """Every active dynamic segment resolved, with its dependencies; one cheap query when nothing
    changed since the last call in this process."""
    return (await _cache(session)).items


async def _cache(session: AsyncSession) -> _Cache:
    key = str(session.get_bind().engine.url)
    fingerprint = await _fingerprint(session)
    cached = _CACHES.get(key)
    if cached is not None and cached.fingerprint == fingerprint:
        cached.checked_at = time.monotonic()
        return cached
    items: list[Compiled] = []
    for seg in await session.scalars(
        select(Segment).where(*_ACTIVE_DYNAMIC).order_by(col(Segment.id))
    ):
        assert seg.id is not None
        try:
            resolved, deps = await resolve(session, seg)
        except DomainError as exc:  # e.g. a product it names was deleted: skipped, logged
            log.warning("segment %s does not validate: %s", seg.id, exc)
            continue
        items.append(Compiled(seg.id, seg.version, seg.name, resolved, deps))
    cached = _CACHES[key] = _Cache(fingerprint, items, checked_at=time.monotonic())
    return cached


def forget_definitions() -> None:
    """Drop this process's cached definitions (a segment was saved or archived here)."""
    _CACHES.clear()


def surely_unaffected(db: Database, changes: Changes) -> bool:
    """True when this process checked the definitions less than ``FRESH_SECONDS`` ago and none of
    them can be affected: a busy event stream then costs no query at all. Saves in this process
    clear the cache at once; one made in another process is seen within ``FRESH_SECONDS``."""
    cached = _CACHES.get(str(db.engine.url))
    return (
        cached is not None
        and time.monotonic() - cached.checked_at < FRESH_SECONDS
        and not any(affects(c.deps, changes) for c in cached.items)
    )


def order_by_references(items: Sequence[Compiled]) -> list[Compiled]:
    """Referenced segments before the segments that reference them (ties by id)."""
    by_id = {c.segment_id: c for c in items}
    done: set[int] = set()
    out: list[Compiled] = []

    def visit(item: Compiled, trail: frozenset[int]) -> None:
        if item.segment_id in done or item.segment_id in trail:
            return
        for ref in sorted(item.resolved.segments):
            if ref in by_id:
                visit(by_id[ref], trail | {item.segment_id})
        done.add(item.segment_id)
        out.append(item)

    for item in sorted(items, key=lambda c: c.segment_id):
        visit(item, frozenset())
    return out


# --- full refresh -----------------------------------------------------------------------------


def _temp_table() -> Table:
    return Table(
        TEMP_NAME,
        MetaData(),
        Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


async def _test_pause() -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if not seconds:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))  # noqa: ASYNC240 (tests only, tiny)
    await asyncio.sleep(float(seconds))


async def _lock(session: AsyncSession, segment_id: int, *, skip_locked: bool) -> Segment | None:
    return (
        await session.execute(
            select(Segment)
            .where(col(Segment.id) == segment_id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def _refresh(
    session: AsyncSession, segment_id: int, now: datetime | None, skip_locked: bool = False
) -> RefreshResult:
    from domain.segments.compiler import compile_members

    started = time.perf_counter()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        await session.execute(text(f"SET LOCAL statement_timeout = '{REFRESH_STATEMENT_TIMEOUT}'"))
        # JIT compiling a segment statement costs more than it saves (1.1 s of 2.0 s for the
        # example on 10M events, docs/benchmarks.md); the profile recompute turns it off too.
        await session.execute(text("SET LOCAL jit = off"))
    else:
        # SQLite: take the write lock first (a no-op update), so the members read below and the
        # writes after them see one state; reading first and writing later could fail when
        # another connection commits in between.
        s = table(Segment)
        await session.execute(update(s).where(s.c.id == segment_id).values(version=s.c.version))
    seg = await _lock(session, segment_id, skip_locked=skip_locked)
    if seg is None:
        if skip_locked and await session.get(Segment, segment_id) is not None:
            # Being refreshed (or edited) by another transaction right now: that one counts.
            return RefreshResult(segment_id, 0, 0, 0, 0.0, None, skipped="locked")
        raise DomainError.one("NOT_FOUND", "no such segment", "id")
    assert seg.id is not None
    if seg.status != "active" or seg.kind != "dynamic":
        return RefreshResult(
            seg.id, 0, 0, seg.member_count, 0.0, seg.version, skipped=f"{seg.status} {seg.kind}"
        )
    now = now or utcnow()
    resolved, _ = await resolve(session, seg)
    members_sql = compile_members(resolved, now=now)

    tmp = _temp_table()
    await session.execute(text(f"DROP TABLE IF EXISTS {TEMP_NAME}"))
    await session.execute(CreateTable(tmp))
    filled = await session.execute(insert(tmp).from_select(["customer_id"], members_sql))
    count = int(filled.rowcount or 0)  # type: ignore[attr-defined]
    if postgres:
        await session.execute(text(f"ANALYZE {TEMP_NAME}"))

    m = table(SegmentMember)
    tr = table(SegmentTransition)
    sid, version = seg.id, seg.version
    cols = ["segment_id", "customer_id", "kind", "version", "occurred_at"]
    at = literal(now, UTCDateTime())
    in_new = exists().where(tmp.c.customer_id == m.c.customer_id)
    gone = (m.c.segment_id == sid) & ~in_new
    is_member = exists().where(m.c.segment_id == sid, m.c.customer_id == tmp.c.customer_id)

    await session.execute(
        insert(tr).from_select(
            cols,
            select(
                literal(sid, BigInteger()),
                m.c.customer_id,
                literal("exit", String()),
                literal(version, Integer()),
                at,
            )
            .where(gone)
            .order_by(m.c.customer_id),
        )
    )
    exited = (await session.execute(delete(m).where(gone))).rowcount or 0  # type: ignore[attr-defined]
    await _test_pause()
    await session.execute(
        insert(tr).from_select(
            cols,
            select(
                literal(sid, BigInteger()),
                tmp.c.customer_id,
                literal("enter", String()),
                literal(version, Integer()),
                at,
            )
            .where(~is_member)
            .order_by(tmp.c.customer_id),
        )
    )
    entered = (
        await session.execute(
            insert(m).from_select(
                ["segment_id", "customer_id", "entered_at"],
                select(literal(sid, BigInteger()), tmp.c.customer_id, at).where(~is_member),
            )
        )
    ).rowcount or 0  # type: ignore[attr-defined]
    await session.execute(
        update(table(Segment))
        .where(table(Segment).c.id == sid)
        .values(member_count=count, refreshed_at=now, refreshed_version=version)
    )
    if not postgres:  # PostgreSQL drops it at commit
        await session.execute(text(f"DROP TABLE IF EXISTS {TEMP_NAME}"))
    seg.member_count, seg.refreshed_at, seg.refreshed_version = count, now, version
    return RefreshResult(
        sid, int(entered), int(exited), count, time.perf_counter() - started, version
    )


async def refresh_segment(
    target: Database | AsyncSession,
    segment_id: int,
    *,
    now: datetime | None = None,
    skip_locked: bool = False,
) -> RefreshResult:
    """Recompute one dynamic segment's membership in one transaction (a ``Database``: its own unit
    of work, committed here; a session: the caller's, which the caller commits). With
    ``skip_locked`` a segment another transaction holds (PostgreSQL) is skipped, not waited for."""
    if isinstance(target, AsyncSession):
        return await _refresh(target, segment_id, now, skip_locked)
    async with target.unit_of_work() as session:
        return await _refresh(session, segment_id, now, skip_locked)


async def refresh_all(
    db: Database,
    *,
    progress: Progress | None = None,
    only: Callable[[Compiled], bool] | None = None,
    segment_ids: Iterable[int] | None = None,
    skip_locked: bool = False,
) -> RefreshSummary:
    """Refresh every active dynamic segment (or those ``only`` keeps, or the given ids), referenced
    segments first, each in its own transaction: a failure is logged and reported, the others go on.
    ``skip_locked`` (the cron job): a segment being refreshed by an overlapping run is left to it."""
    started = time.perf_counter()
    async with db.read_only() as session:
        items = order_by_references(await active_definitions(session))
    if only is not None:
        items = [c for c in items if only(c)]
    if segment_ids is not None:
        wanted = set(segment_ids)
        items = [c for c in items if c.segment_id in wanted]
    summary = RefreshSummary()
    for done, item in enumerate(items):
        if progress is not None:
            progress(done, len(items), item.name)
        try:
            result = await refresh_segment(db, item.segment_id, skip_locked=skip_locked)
            if result.skipped == "locked":
                summary.skipped.append(item.segment_id)
            else:
                summary.refreshed.append(result)
        except Exception as exc:  # one bad segment must not stop the others
            log.exception("refresh of segment %s failed", item.segment_id)
            summary.failed[item.segment_id] = str(exc)[:500] or type(exc).__name__
    if progress is not None:
        progress(len(items), len(items), "")
    summary.seconds = time.perf_counter() - started
    return summary


# --- per-shopper re-evaluation ----------------------------------------------------------------


async def reevaluate_customer(
    session: AsyncSession,
    customer_id: int,
    changes: Changes,
    *,
    now: datetime | None = None,
    evaluated: list[int] | None = None,
) -> list[Transition]:
    """Re-check one shopper against the active dynamic segments ``changes`` can affect and apply
    the difference (membership rows, transitions, member counts) in the caller's transaction.
    ``evaluated``, if given, receives the ids of the segments evaluated (tests count them)."""
    return await _reevaluate(session, await _cache(session), customer_id, changes, now, evaluated)


async def _reevaluate(
    session: AsyncSession,
    cache: _Cache,
    customer_id: int,
    changes: Changes,
    now: datetime | None,
    evaluated: list[int] | None,
    skip_locked: bool = False,
) -> list[Transition]:
    items = [c for c in cache.items if affects(c.deps, changes)]
    if not items:
        return []
    s = table(Segment)
    m = table(SegmentMember)
    ids = sorted(c.segment_id for c in items)
    # Lock (PostgreSQL: KEY SHARE, waits for a running refresh of these segments) and read the
    # shopper's current memberships among them, in one statement.
    current_rows = (
        await session.execute(
            select(s.c.id, m.c.customer_id)
            .select_from(
                s.outerjoin(m, (m.c.segment_id == s.c.id) & (m.c.customer_id == customer_id))
            )
            .where(s.c.id.in_(ids), s.c.status == "active")
            .order_by(s.c.id)
            .with_for_update(key_share=True, of=s, skip_locked=skip_locked)
        )
    ).all()
    still_active = {int(r[0]) for r in current_rows}
    current = {int(r[0]) for r in current_rows if r[1] is not None}
    items = [c for c in items if c.segment_id in still_active]
    if not items:
        return []
    if evaluated is not None:
        evaluated.extend(c.segment_id for c in items)
    if now is None:
        query = _shopper_query(cache, items)
    else:
        query = _build_shopper_query(items, now)
    matched = {int(r) for r in await session.scalars(query, {"customer_id": customer_id})}
    now = now or utcnow()
    versions = {c.segment_id: c.version for c in items}
    enter = sorted(matched - current)
    leave = sorted(current - matched)
    return await _write_diff(session, customer_id, enter, leave, versions, now)


def _build_shopper_query(items: Sequence[Compiled], now: datetime) -> Any:
    """``SELECT <id> WHERE EXISTS (<members of it restricted to :customer_id>) UNION ALL ...``:
    which of ``items`` one shopper is in, in one statement."""
    from domain.segments.compiler import compile_members

    customer_id = bindparam("customer_id", type_=BigInteger())
    checks = [
        select(literal(c.segment_id, BigInteger()).label("segment_id")).where(
            exists(compile_members(c.resolved, now=now, customer_id=customer_id))
        )
        for c in items
    ]
    return checks[0] if len(checks) == 1 else union_all(*checks)


def _shopper_query(cache: _Cache, items: Sequence[Compiled]) -> Any:
    key = tuple(c.segment_id for c in items)
    found = cache.statements.get(key)
    clock = time.monotonic()
    if found is not None and clock - found[0] < STATEMENT_TTL:
        return found[1]
    if len(cache.statements) > 256:  # many different affected sets: start again
        cache.statements.clear()
    query = _build_shopper_query(items, utcnow())
    cache.statements[key] = (clock, query)
    return query


async def _write_diff(
    session: AsyncSession,
    customer_id: int,
    enter: Sequence[int],
    leave: Sequence[int],
    versions: dict[int, int],
    now: datetime,
) -> list[Transition]:
    m = table(SegmentMember)
    entered: list[int] = []
    left: list[int] = []
    if enter:
        stmt = (
            insert_for(session)(m)
            .values(
                [
                    {"segment_id": sid, "customer_id": customer_id, "entered_at": now}
                    for sid in enter
                ]
            )
            .on_conflict_do_nothing()
            .returning(m.c.segment_id)
        )
        entered = sorted(int(x) for x in await session.scalars(stmt))
    if leave:
        stmt_d = (
            delete(m)
            .where(m.c.customer_id == customer_id, m.c.segment_id.in_(list(leave)))
            .returning(m.c.segment_id)
        )
        left = sorted(int(x) for x in await session.scalars(stmt_d))
    out = [Transition(sid, customer_id, "exit", versions.get(sid, 0)) for sid in left] + [
        Transition(sid, customer_id, "enter", versions.get(sid, 0)) for sid in entered
    ]
    if not out:
        return []
    await session.execute(
        insert(table(SegmentTransition)),
        [
            {
                "segment_id": t.segment_id,
                "customer_id": t.customer_id,
                "kind": t.kind,
                "version": t.version,
                "occurred_at": now,
            }
            for t in out
        ],
    )
    s = table(Segment)
    for t in sorted(out, key=lambda t: t.segment_id):  # one row at a time, in id order: no deadlock
        delta = 1 if t.kind == "enter" else -1
        await session.execute(
            update(s).where(s.c.id == t.segment_id).values(member_count=s.c.member_count + delta)
        )
    return out


async def reevaluate_customers(
    db: Database, customer_ids: Iterable[int], changes: Changes
) -> dict[str, int]:
    """``reevaluate_customer`` for each shopper, each in its own short transaction (the
    definitions are checked for staleness once for all of them)."""
    entered = exited = customers = 0
    cache: _Cache | None = None
    postgres = db.engine.dialect.name == "postgresql"
    for customer_id in sorted(set(customer_ids)):
        try:
            async with db.unit_of_work() as session:
                if cache is None:
                    cache = await _cache(session)
                if postgres:
                    await session.execute(text(f"SET LOCAL lock_timeout = {int(LOCK_WAIT_MS)}"))
                found = await _reevaluate(session, cache, customer_id, changes, None, None)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            # A long refresh holds a segment: rather than keep a connection waiting (and, in
            # the API process, starve requests of connections), check the other segments now and
            # leave that one to the refresh (or the next one).
            assert cache is not None
            log.info("segments locked for customer %s; re-evaluated the others", customer_id)
            async with db.unit_of_work() as session:
                found = await _reevaluate(
                    session, cache, customer_id, changes, None, None, skip_locked=True
                )
        customers += 1
        entered += sum(1 for t in found if t.kind == "enter")
        exited += sum(1 for t in found if t.kind == "exit")
    return {"customers": customers, "entered": entered, "exited": exited}


# --- the transition log -----------------------------------------------------------------------


async def transitions_since(
    session: AsyncSession, after_id: int | None, limit: int = 1000
) -> list[SegmentTransition]:
    """Transitions (every segment) with an id above ``after_id``, oldest first: the event log
    campaigns trigger on (see the module docstring about reading a little behind the newest id)."""
    stmt = select(SegmentTransition)
    if after_id is not None:
        stmt = stmt.where(col(SegmentTransition.id) > after_id)
    limit = max(1, min(limit, 10_000))
    return list(await session.scalars(stmt.order_by(col(SegmentTransition.id)).limit(limit)))


# --- hooks: what the API queues after a commit ------------------------------------------------

REEVALUATE_TASK = "reevaluate_segments"
MAX_HOOK_IDS = 1000


def queue_reevaluation(
    jobs: Any,
    key: str,
    changes: Changes,
    *,
    customer_ids: Iterable[int | None] = (),
    external_ids: Iterable[str | None] = (),
    anonymous_ids: Iterable[str | None] = (),
) -> None:
    """Queue the ``reevaluate_segments`` job (sent after commit; ``jobs`` is the request's
    ``PendingJobs``) for the shoppers named by internal ids, external ids or anonymous ids (the
    job resolves the last two). ``key`` makes the job id (``segments:<key>``) deterministic."""
    who = {
        "customer_ids": sorted({int(c) for c in customer_ids if c})[:MAX_HOOK_IDS],
        "external_ids": sorted({e for e in external_ids if e})[:MAX_HOOK_IDS],
        "anonymous_ids": sorted({a for a in anonymous_ids if a})[:MAX_HOOK_IDS],
    }
    if not any(who.values()):
        return
    jobs.add(REEVALUATE_TASK, who, changes.as_dict(), job_id=f"segments:{key}")


async def reevaluate_job(
    db: Database, who: dict[str, Any], changes_doc: dict[str, Any]
) -> dict[str, int]:
    """The ``reevaluate_segments`` job: one query when no active segment can be affected, else
    the shoppers resolved and each re-evaluated in its own transaction."""
    changes = Changes.from_dict(changes_doc)
    if surely_unaffected(db, changes):
        return {"customers": 0, "entered": 0, "exited": 0}
    async with _job_slot():
        async with db.read_only() as session:
            if not any(affects(c.deps, changes) for c in await active_definitions(session)):
                return {"customers": 0, "entered": 0, "exited": 0}
            customer_ids = await resolve_customers(session, who)
        return await reevaluate_customers(db, customer_ids, changes)


# At most this many re-evaluation jobs use the database at once per process: a burst of events
# (each request queues one) must not take every pooled connection from the API in-process.
JOB_CONCURRENCY = 4
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _job_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _SLOTS.get(loop)
    if slot is None:
        slot = _SLOTS[loop] = asyncio.Semaphore(JOB_CONCURRENCY)
    return slot


async def resolve_customers(session: AsyncSession, who: dict[str, Any]) -> set[int]:
    """Customer ids for a hook's ``customer_ids``, ``external_ids`` and ``anonymous_ids``."""
    from domain.events.models import IdentityLink
    from domain.users.models import Customer

    found = {int(c) for c in who.get("customer_ids", ())}
    external = list(who.get("external_ids", ()))
    if external:
        found.update(
            int(c or 0)
            for c in await session.scalars(
                select(col(Customer.id)).where(col(Customer.external_id).in_(external))
            )
        )
    anonymous = list(who.get("anonymous_ids", ()))
    if anonymous:
        links = table(IdentityLink)
        found.update(
            int(c)
            for c in await session.scalars(
                select(links.c.customer_id).where(links.c.anonymous_id.in_(anonymous))
            )
        )
    return found


def queue_after_events(
    jobs: Any, key: str, items: Sequence[dict[str, Any]], shopper_id: int | None
) -> None:
    """After ``trackEvents``: re-evaluate the segments on these event types for the shoppers the
    items name (a shopper token's events are all its own)."""
    types = frozenset(str(i["type"]) for i in items if isinstance(i.get("type"), str))
    if shopper_id is not None:
        queue_reevaluation(jobs, key, Changes(event_types=types), customer_ids=[shopper_id])
        return
    queue_reevaluation(
        jobs,
        key,
        Changes(event_types=types),
        customer_ids=(i.get("user_id") for i in items),
        external_ids=(i.get("user_external_id") for i in items),
        anonymous_ids=(
            i.get("anonymous_id")
            for i in items
            if i.get("user_id") is None and i.get("user_external_id") is None
        ),
    )


ORDER_CHANGES = Changes(orders=True, event_types=frozenset({"purchase"}))
CONSENT_CHANGES = Changes(consents=True)
USER_CHANGES = Changes(attributes=True, tags=True)
