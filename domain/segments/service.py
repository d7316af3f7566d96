"""Rules for segments: create, update (versioned), archive, static membership, CSV import, reads.

Every write is audited in the caller's unit of work. Error paths are relative to the mutation input
(``("name",)``, ``("definition", "and", "0", ...)``, ``("customerIds", "3")``). Membership of dynamic
segments is computed by ``domain.segments.membership``; static segments change only here, and each
change is recorded in the transition log like a refresh would.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain import validation as v
from domain.audit import service as audit
from domain.audit.service import Actor
from domain.columns import utcnow
from domain.errors import DomainError, FieldError
from domain.keys import Keys
from domain.segments.models import (
    KINDS,
    STATUSES,
    Segment,
    SegmentMember,
    SegmentTransition,
    SegmentVersion,
)
from domain.sql import insert_for, table
from domain.users.models import Customer

MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_MEMBERS_PER_CALL = 1000  # customer ids per add/remove call
MAX_IMPORT_ROWS = 100_000  # data rows per CSV import
MAX_IMPORT_BYTES = 10_000_000
MAX_REPORTED_ERRORS = 100  # an import refused for bad rows names at most this many
MAX_FIRST = 100
IMPORT_COLUMNS = ("external_id", "user_id", "email")
LOOKUP_CHUNK = 1000
# Segments referencing a static one follow its changes at once for up to this many customers.
FOLLOW_STATIC_MAX = 200


@dataclass(frozen=True)
class ImportResult:
    rows: int  # data rows read
    added: int  # customers that entered the segment
    removed: int  # customers that left it (mode replace)
    unchanged: int  # rows naming a customer already a member (or a repeat)
    members: int  # members after the import


# --- reads ------------------------------------------------------------------------------------


async def get_segment(session: AsyncSession, segment_id: int) -> Segment | None:
    return await session.get(Segment, segment_id)


async def get_segments(session: AsyncSession, segment_ids: Sequence[int]) -> dict[int, Segment]:
    """Segments by id in one query (for DataLoaders)."""
    if not segment_ids:
        return {}
    rows = await session.scalars(select(Segment).where(col(Segment.id).in_(list(segment_ids))))
    return {int(s.id): s for s in rows if s.id is not None}


async def get_by_key(session: AsyncSession, key: str) -> Segment | None:
    return (await session.scalars(select(Segment).where(col(Segment.key) == key))).first()


@dataclass(frozen=True)
class SegmentFilter:
    status: str | None = None
    kind: str | None = None
    builtin: bool | None = None
    search: str | None = None  # case-insensitive substring of the name


def _filtered(flt: SegmentFilter) -> Any:
    stmt = select(Segment)
    if flt.status is not None:
        stmt = stmt.where(col(Segment.status) == flt.status)
    if flt.kind is not None:
        stmt = stmt.where(col(Segment.kind) == flt.kind)
    if flt.builtin is not None:
        stmt = stmt.where(col(Segment.builtin) == flt.builtin)
    if flt.search:
        stmt = stmt.where(
            func.lower(col(Segment.name)).contains(flt.search.lower()[:MAX_NAME], autoescape=True)
        )
    return stmt


async def list_segments(
    session: AsyncSession,
    *,
    status: str | None = None,
    kind: str | None = None,
    builtin: bool | None = None,
    search: str | None = None,
    after: int | None = None,
    first: int = 50,
) -> list[Segment]:
    """Segments ordered by id after the cursor id; ``first + 1`` rows so callers see if more exist."""
    stmt = _filtered(SegmentFilter(status, kind, builtin, search))
    if after is not None:
        stmt = stmt.where(col(Segment.id) > after)
    first = max(0, min(first, MAX_FIRST))
    return list(await session.scalars(stmt.order_by(col(Segment.id)).limit(first + 1)))


async def count_segments(
    session: AsyncSession,
    *,
    status: str | None = None,
    kind: str | None = None,
    builtin: bool | None = None,
    search: str | None = None,
) -> int:
    sub = (
        _filtered(SegmentFilter(status, kind, builtin, search))
        .with_only_columns(col(Segment.id))
        .subquery()
    )
    return int(await session.scalar(select(func.count()).select_from(sub)) or 0)


async def members(
    session: AsyncSession, segment_id: int, *, after: int | None = None, first: int = 50
) -> list[SegmentMember]:
    """Current members ordered by customer id after the cursor (a customer id); ``first + 1`` rows."""
    stmt = select(SegmentMember).where(col(SegmentMember.segment_id) == segment_id)
    if after is not None:
        stmt = stmt.where(col(SegmentMember.customer_id) > after)
    first = max(0, min(first, MAX_FIRST))
    return list(
        await session.scalars(stmt.order_by(col(SegmentMember.customer_id)).limit(first + 1))
    )


async def member_count(session: AsyncSession, segment_id: int) -> int:
    """Counted from the membership rows (the column ``member_count`` is the same number)."""
    stmt = select(func.count()).where(col(SegmentMember.segment_id) == segment_id)
    return int(await session.scalar(stmt) or 0)


async def history(session: AsyncSession, segment_id: int) -> list[SegmentVersion]:
    """Every version of the segment, newest first."""
    stmt = (
        select(SegmentVersion)
        .where(col(SegmentVersion.segment_id) == segment_id)
        .order_by(col(SegmentVersion.version).desc())
    )
    return list(await session.scalars(stmt))


async def customer_segments(
    session: AsyncSession, customer_id: int
) -> list[tuple[Segment, datetime]]:
    """The active segments a customer is in, with the time they entered, by name."""
    return (await customers_segments(session, [customer_id])).get(customer_id, [])


async def customers_segments(
    session: AsyncSession, customer_ids: Sequence[int]
) -> dict[int, list[tuple[Segment, datetime]]]:
    """``customer_segments`` for many customers in one query (for the ``User.segments`` loader)."""
    result: dict[int, list[tuple[Segment, datetime]]] = {}
    if not customer_ids:
        return result
    stmt = (
        select(Segment, col(SegmentMember.customer_id), col(SegmentMember.entered_at))
        .join(SegmentMember, col(SegmentMember.segment_id) == col(Segment.id))
        .where(
            col(SegmentMember.customer_id).in_(list(customer_ids)),
            col(Segment.status) == "active",
        )
        .order_by(col(Segment.name), col(Segment.id))
    )
    for seg, customer_id, entered_at in (await session.execute(stmt)).all():
        result.setdefault(int(customer_id), []).append((seg, entered_at))
    return result


async def transitions(
    session: AsyncSession, segment_id: int, *, after: int | None = None, first: int = 50
) -> list[SegmentTransition]:
    """The segment's enter/exit log, oldest first, after the cursor (a transition id)."""
    stmt = select(SegmentTransition).where(col(SegmentTransition.segment_id) == segment_id)
    if after is not None:
        stmt = stmt.where(col(SegmentTransition.id) > after)
    first = max(0, min(first, MAX_FIRST))
    return list(await session.scalars(stmt.order_by(col(SegmentTransition.id)).limit(first + 1)))


# --- checks -----------------------------------------------------------------------------------


def _check_name(errors: list[FieldError], name: Any) -> str | None:
    if not isinstance(name, str) or not name.strip():
        errors.append(FieldError("REQUIRED", "name is required", ("name",)))
        return None
    if "\x00" in name:  # PostgreSQL text cannot hold NUL
        errors.append(FieldError("INVALID", "name contains a NUL character", ("name",)))
        return None
    return v.check(errors, None, ("name",), v.text, name, field_name="name", max_length=MAX_NAME)


def _check_description(errors: list[FieldError], description: Any) -> str | None:
    if description is None:
        return None
    if not isinstance(description, str):
        errors.append(FieldError("INVALID", "description must be text", ("description",)))
        return None
    if "\x00" in description:
        errors.append(
            FieldError("INVALID", "description contains a NUL character", ("description",))
        )
        return None
    text = v.check(
        errors,
        None,
        ("description",),
        v.text,
        description,
        field_name="description",
        max_length=MAX_DESCRIPTION,
    )
    return text or None


async def _validate_definition(
    session: AsyncSession, definition: Any, segment_id: int | None
) -> None:
    from domain.segments.definition import validate

    await validate(session, definition, segment_id=segment_id)
    refs = sorted(referenced_ids(definition))
    if refs:
        # Hold the referenced segments (PostgreSQL FOR SHARE) until commit: archiving one takes
        # FOR UPDATE, so it waits and then sees this reference (IN_USE), or it committed first
        # and this save sees the segment archived.
        rows = await session.execute(
            select(col(Segment.id), col(Segment.status))
            .where(col(Segment.id).in_(refs))
            .with_for_update(read=True)
        )
        gone = sorted(set(refs) - {int(i or 0) for i, status in rows.all() if status == "active"})
        if gone:
            raise DomainError.one(
                "NOT_FOUND",
                "referenced segment(s) archived or missing: " + ", ".join(map(str, gone)),
                "definition",
            )


async def _locked(session: AsyncSession, segment_id: int) -> Segment:
    """The segment row, locked for update (PostgreSQL; SQLite has one writer at a time): a refresh
    holds the same lock, so an edit and a refresh never interleave."""
    seg = (
        await session.execute(
            select(Segment)
            .where(col(Segment.id) == segment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if seg is None:
        raise DomainError.one("NOT_FOUND", "no such segment", "id")
    return seg


def _who(actor: Actor) -> str:
    return f"{actor.client_id}:{actor.subject}"[:200]


def _forget_definitions() -> None:
    from domain.segments.membership import forget_definitions

    forget_definitions()


async def _add_version(session: AsyncSession, seg: Segment, actor: Actor) -> None:
    _forget_definitions()
    assert seg.id is not None
    session.add(
        SegmentVersion(
            segment_id=seg.id,
            version=seg.version,
            name=seg.name,
            description=seg.description,
            definition=seg.definition,
            changed_by=_who(actor),
            changed_at=seg.updated_at,
        )
    )
    await session.flush()


# --- writes -----------------------------------------------------------------------------------


async def create_segment(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    description: str | None = None,
    kind: str,
    definition: Mapping[str, Any] | None = None,
    key: str | None = None,
    builtin: bool = False,
) -> Segment:
    """Create a dynamic segment (``definition`` required, validated first) or a static one (no
    definition; members are added later). Its membership is empty until refreshed."""
    errors: list[FieldError] = []
    clean_name = _check_name(errors, name)
    clean_description = _check_description(errors, description)
    if kind not in KINDS:
        errors.append(FieldError("INVALID", "kind must be dynamic or static", ("kind",)))
    elif kind == "dynamic" and definition is None:
        errors.append(
            FieldError("REQUIRED", "a dynamic segment needs a definition", ("definition",))
        )
    elif kind == "static" and definition is not None:
        errors.append(FieldError("INVALID", "a static segment has no definition", ("definition",)))
    if errors:
        raise DomainError(errors)
    if kind == "dynamic":
        await _validate_definition(session, definition, None)
    now = utcnow()
    seg = Segment(
        key=key,
        name=clean_name or "",
        description=clean_description,
        kind=kind,
        status="active",
        builtin=builtin,
        definition=dict(definition) if definition is not None else None,
        version=1,
        member_count=0,
        created_by=_who(actor),
        created_at=now,
        updated_at=now,
    )
    session.add(seg)
    await session.flush()
    await _add_version(session, seg, actor)
    await audit.record(
        session,
        actor,
        "segment.create",
        "Segment",
        seg.id,
        details={"kind": kind, "version": 1, "builtin": builtin},
    )
    return seg


async def update_segment(
    session: AsyncSession,
    actor: Actor,
    segment_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    definition: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
    allow_builtin: bool = False,
) -> Segment:
    """Change name, description and/or definition: version + 1 and a history row. With
    ``expected_version`` the update is refused (CONFLICT) unless it is the current version."""
    seg = await _locked(session, segment_id)
    if seg.builtin and not allow_builtin:
        raise DomainError.one("BUILTIN", "built-in segments cannot be changed", "id")
    if seg.status == "archived":
        raise DomainError.one("ARCHIVED", "the segment is archived", "id")
    if expected_version is not None and expected_version != seg.version:
        raise DomainError.one(
            "CONFLICT",
            f"the segment is at version {seg.version}, not {expected_version}",
            "expectedVersion",
        )
    errors: list[FieldError] = []
    if name is None and description is None and definition is None:
        errors.append(
            FieldError("REQUIRED", "give a name, a description or a definition", ("input",))
        )
    clean_name = _check_name(errors, name) if name is not None else None
    clean_description = _check_description(errors, description)
    if definition is not None and seg.kind == "static":
        errors.append(FieldError("INVALID", "a static segment has no definition", ("definition",)))
    if errors:
        raise DomainError(errors)
    if definition is not None:
        await _validate_definition(session, definition, segment_id)
    changed: list[str] = []
    if clean_name is not None:
        seg.name = clean_name
        changed.append("name")
    if description is not None:
        seg.description = clean_description
        changed.append("description")
    if definition is not None:
        seg.definition = dict(definition)
        changed.append("definition")
    seg.version += 1
    seg.updated_at = utcnow()
    await session.flush()
    await _add_version(session, seg, actor)
    await audit.record(
        session,
        actor,
        "segment.update",
        "Segment",
        seg.id,
        fields=changed,
        details={"version": seg.version},
    )
    return seg


def referenced_ids(node: Any) -> set[int]:
    """Segment ids a definition references (``{"segment": {"segmentId": n}}`` leaves)."""
    found: set[int] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("segment")
            if isinstance(ref, dict) and isinstance(ref.get("segmentId"), int):
                found.add(ref["segmentId"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


async def referenced_by(session: AsyncSession, segment_id: int) -> list[Segment]:
    """Active dynamic segments whose definition references ``segment_id``."""
    stmt = select(Segment).where(
        col(Segment.status) == "active",
        col(Segment.kind) == "dynamic",
        col(Segment.id) != segment_id,
    )
    return [s for s in await session.scalars(stmt) if segment_id in referenced_ids(s.definition)]


async def archive_segment(
    session: AsyncSession, actor: Actor, segment_id: int, *, allow_builtin: bool = False
) -> Segment:
    """Archive a segment: it is no longer refreshed nor listed in ``User.segments``; its last
    membership is kept as it was. Refused (IN_USE) while active segments reference it."""
    seg = await _locked(session, segment_id)
    if seg.builtin and not allow_builtin:
        raise DomainError.one("BUILTIN", "built-in segments cannot be archived", "id")
    if seg.status == "archived":
        return seg
    users = await referenced_by(session, segment_id)
    if users:
        names = ", ".join(f"{s.name} ({s.id})" for s in users[:20])
        raise DomainError.one("IN_USE", f"the segment is referenced by: {names}", "id")
    now = utcnow()
    seg.status = "archived"
    seg.archived_at = now
    seg.updated_at = now
    await session.flush()
    _forget_definitions()
    await audit.record(
        session, actor, "segment.archive", "Segment", seg.id, details={"version": seg.version}
    )
    return seg


# --- static membership ------------------------------------------------------------------------


async def _static(session: AsyncSession, segment_id: int) -> Segment:
    seg = await _locked(session, segment_id)
    if seg.kind != "static":
        raise DomainError.one(
            "NOT_STATIC", "only static segments take members by hand", "segmentId"
        )
    if seg.status == "archived":
        raise DomainError.one("ARCHIVED", "the segment is archived", "segmentId")
    return seg


async def _apply(
    session: AsyncSession, seg: Segment, enter: Sequence[int], leave: Sequence[int]
) -> tuple[int, int]:
    """Insert/delete membership rows and record a transition for each row that really changed."""
    assert seg.id is not None
    now = utcnow()
    entered: list[int] = []
    left: list[int] = []
    m = table(SegmentMember)
    for start in range(0, len(enter), LOOKUP_CHUNK):
        chunk = enter[start : start + LOOKUP_CHUNK]
        stmt = (
            insert_for(session)(m)
            .values([{"segment_id": seg.id, "customer_id": c, "entered_at": now} for c in chunk])
            .on_conflict_do_nothing()
            .returning(m.c.customer_id)
        )
        entered.extend(int(c) for c in (await session.scalars(stmt)).all())
    for start in range(0, len(leave), LOOKUP_CHUNK):
        chunk = leave[start : start + LOOKUP_CHUNK]
        stmt_d = (
            delete(m)
            .where(m.c.segment_id == seg.id, m.c.customer_id.in_(chunk))
            .returning(m.c.customer_id)
        )
        left.extend(int(c) for c in (await session.scalars(stmt_d)).all())
    rows = [
        {
            "segment_id": seg.id,
            "customer_id": c,
            "kind": kind,
            "version": seg.version,
            "occurred_at": now,
        }
        for kind, ids in (("exit", sorted(left)), ("enter", sorted(entered)))
        for c in ids
    ]
    if rows:
        await session.execute(insert(table(SegmentTransition)), rows)
    if entered or left:
        await session.execute(
            update(table(Segment))
            .where(table(Segment).c.id == seg.id)
            .values(member_count=table(Segment).c.member_count + len(entered) - len(left))
        )
        seg.member_count = seg.member_count + len(entered) - len(left)
        await _follow_static(session, seg.id, sorted({*entered, *left}))
    return len(entered), len(left)


async def _follow_static(session: AsyncSession, segment_id: int, changed: list[int]) -> None:
    """Re-evaluate the segments that reference this static one for the customers that changed
    (at most ``FOLLOW_STATIC_MAX``; beyond that they catch up at their next refresh)."""
    from domain.segments.membership import Changes, reevaluate_customer

    if not changed or len(changed) > FOLLOW_STATIC_MAX:
        return
    if not await referenced_by(session, segment_id):
        return
    changes = Changes(static_segments=frozenset({segment_id}))
    for customer_id in changed:
        await reevaluate_customer(session, customer_id, changes)


async def _existing_customers(session: AsyncSession, ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        chunk = unique[start : start + LOOKUP_CHUNK]
        found.update(
            int(i or 0)
            for i in await session.scalars(
                select(col(Customer.id)).where(col(Customer.id).in_(chunk))
            )
        )
    return found


async def _checked_ids(session: AsyncSession, customer_ids: Sequence[int]) -> list[int]:
    if not customer_ids:
        raise DomainError.one("REQUIRED", "give at least one user", "customerIds")
    if len(customer_ids) > MAX_MEMBERS_PER_CALL:
        raise DomainError.one(
            "TOO_MANY", f"at most {MAX_MEMBERS_PER_CALL} users per call", "customerIds"
        )
    valid = [c for c in customer_ids if isinstance(c, int) and 0 < c < 2**63]
    existing = await _existing_customers(session, valid)
    errors = [
        FieldError("NOT_FOUND", "no such user", ("customerIds", str(i)), i)
        for i, c in enumerate(customer_ids)
        if c not in existing
    ]
    if errors:
        raise DomainError(errors)
    return list(dict.fromkeys(customer_ids))


async def add_members(
    session: AsyncSession, actor: Actor, segment_id: int, customer_ids: Sequence[int]
) -> int:
    """Add customers to a static segment; returns how many were not members yet. All or nothing:
    any unknown id refuses the whole call (one NOT_FOUND error per bad item)."""
    seg = await _static(session, segment_id)
    ids = await _checked_ids(session, customer_ids)
    added, _ = await _apply(session, seg, ids, [])
    await audit.record(
        session,
        actor,
        "segment.members.add",
        "Segment",
        segment_id,
        details={"requested": len(ids), "added": added},
    )
    return added


async def remove_members(
    session: AsyncSession, actor: Actor, segment_id: int, customer_ids: Sequence[int]
) -> int:
    """Remove customers from a static segment; returns how many were members."""
    seg = await _static(session, segment_id)
    ids = await _checked_ids(session, customer_ids)
    _, removed = await _apply(session, seg, [], ids)
    await audit.record(
        session,
        actor,
        "segment.members.remove",
        "Segment",
        segment_id,
        details={"requested": len(ids), "removed": removed},
    )
    return removed


def _user_id(value: str) -> int | None:
    """A user id cell: the internal number or the GraphQL global id (``base64url("User:42")``)."""
    if value.isdigit():
        number = int(value)
    else:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        type_name, _, pk = raw.partition(":")
        if type_name != "User" or not pk.isdigit():
            return None
        number = int(pk)
    return number if 0 < number < 2**63 else None


def _csv_rows(text: str) -> tuple[str, Iterator[tuple[int, str]]]:
    """The id column's name and its (line number, value) rows; raises for a bad header."""
    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise DomainError.one("TOO_LARGE", f"at most {MAX_IMPORT_BYTES} bytes", "file")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise DomainError.one("REQUIRED", "the file is empty", "file") from None
    except csv.Error as exc:
        raise DomainError.one("INVALID", f"line 1: {exc}", "file", "1") from None
    named = [h for h in header if h in IMPORT_COLUMNS]
    if len(named) != 1:
        raise DomainError.one(
            "INVALID_HEADER",
            "the header must name exactly one of " + ", ".join(IMPORT_COLUMNS),
            "file",
            "1",
        )
    column = header.index(named[0])

    def rows() -> Iterator[tuple[int, str]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DomainError.one(
                    "INVALID", f"line {reader.line_num}: {exc}", "file", str(reader.line_num)
                ) from None
            if not row or not any(cell.strip() for cell in row):
                continue
            yield reader.line_num, (row[column].strip() if column < len(row) else "")

    return named[0], rows()


async def _resolve_rows(
    session: AsyncSession, keys: Keys | None, column: str, rows: list[tuple[int, str]]
) -> tuple[list[int], list[FieldError]]:
    """Customer ids for the rows (in row order) and an error per row naming no customer."""
    errors: list[FieldError] = []
    wanted: dict[int, Any] = {}  # line -> lookup key
    for line, value in rows:
        if not value:
            errors.append(
                FieldError("REQUIRED", f"line {line}: empty {column}", ("file", str(line)), line)
            )
            continue
        if column == "user_id":
            number = _user_id(value)
            if number is None:
                errors.append(
                    FieldError("INVALID", f"line {line}: not a user id", ("file", str(line)), line)
                )
                continue
            wanted[line] = number
        elif column == "email":
            if keys is None:
                raise DomainError.one("INVALID_HEADER", "email lookup is not available", "file")
            try:
                wanted[line] = keys.lookup_hash("email", v.email(value))
            except v.Invalid:
                errors.append(
                    FieldError("INVALID", f"line {line}: not an email", ("file", str(line)), line)
                )
        else:
            wanted[line] = value
    target: Any = {
        "user_id": col(Customer.id),
        "email": col(Customer.email_hash),
        "external_id": col(Customer.external_id),
    }[column]
    distinct = list(dict.fromkeys(wanted.values()))
    found: dict[Any, int] = {}
    for start in range(0, len(distinct), LOOKUP_CHUNK):
        chunk = distinct[start : start + LOOKUP_CHUNK]
        stmt = select(target, col(Customer.id)).where(target.in_(chunk))
        for value, number in (await session.execute(stmt)).all():
            found[value] = int(number)
    ids: list[int] = []
    for line, lookup in wanted.items():
        pk = found.get(lookup)
        if pk is None:
            errors.append(
                FieldError("NOT_FOUND", f"line {line}: no such user", ("file", str(line)), line)
            )
        else:
            ids.append(pk)
    errors.sort(key=lambda e: e.index or 0)
    return ids, errors


async def import_members_csv(
    session: AsyncSession,
    actor: Actor,
    segment_id: int,
    text: str,
    *,
    mode: str = "add",
    keys: Keys | None = None,
) -> ImportResult:
    """Import a static segment's members from CSV text.

    The header names one id column: ``external_id``, ``user_id`` (the number or the GraphQL id) or
    ``email`` (found by its keyed hash; needs ``keys``); other columns are ignored. At most
    ``MAX_IMPORT_ROWS`` rows. ``mode`` ``add`` adds the rows' customers; ``replace`` makes them the
    whole membership. All or nothing: if any row is bad or names no customer, nothing changes and
    the error lists the first ``MAX_REPORTED_ERRORS`` bad rows by line number."""
    if mode not in ("add", "replace"):
        raise DomainError.one("INVALID", "mode must be add or replace", "mode")
    seg = await _static(session, segment_id)
    column, reader = _csv_rows(text)
    rows: list[tuple[int, str]] = []
    for line, value in reader:
        rows.append((line, value))
        if len(rows) > MAX_IMPORT_ROWS:
            raise DomainError.one("TOO_MANY", f"at most {MAX_IMPORT_ROWS} rows", "file")
    ids, errors = await _resolve_rows(session, keys, column, rows)
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        if len(errors) > len(shown):
            shown.append(
                FieldError(
                    "TOO_MANY", f"{len(errors) - len(shown)} more bad rows not listed", ("file",)
                )
            )
        raise DomainError(shown)
    unique = list(dict.fromkeys(ids))
    leave: list[int] = []
    if mode == "replace":
        keep = set(unique)
        current = await session.scalars(
            select(col(SegmentMember.customer_id)).where(
                col(SegmentMember.segment_id) == segment_id
            )
        )
        leave = [int(c) for c in current if c not in keep]
    added, removed = await _apply(session, seg, unique, leave)
    result = ImportResult(
        rows=len(rows),
        added=added,
        removed=removed,
        unchanged=len(rows) - added,
        members=seg.member_count,
    )
    await audit.record(
        session,
        actor,
        "segment.members.import",
        "Segment",
        segment_id,
        details={
            "mode": mode,
            "column": column,
            "rows": result.rows,
            "added": added,
            "removed": removed,
        },
    )
    return result


__all__ = [
    "MAX_IMPORT_ROWS",
    "MAX_MEMBERS_PER_CALL",
    "STATUSES",
    "ImportResult",
    "SegmentFilter",
    "add_members",
    "archive_segment",
    "count_segments",
    "create_segment",
    "customer_segments",
    "customers_segments",
    "get_by_key",
    "get_segment",
    "get_segments",
    "history",
    "import_members_csv",
    "list_segments",
    "member_count",
    "members",
    "referenced_by",
    "remove_members",
    "transitions",
    "update_segment",
]
