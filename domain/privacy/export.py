"""Data exports (GDPR article 15 and 20): one complete JSON document of everything held on a shopper.

The document is built from ``SECTIONS``, a registry of ``name -> async fn(session, keys,
customer_id)``. A section returns a JSON-able value, or an async iterator of items that is written as
a JSON array while it is read (events and orders are read in pages, so a shopper with 100,000 events
never has them all in memory). Later features add a section by registering one function.

The JSON is written straight into a gzip stream; the row keeps the gzip bytes plus the size and the
SHA-256 of the JSON document itself (what a client has after decoding the download).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Table, and_, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from domain.audit import service as audit
from domain.audit.service import SYSTEM, Actor
from domain.columns import utcnow
from domain.consents.models import Consent
from domain.db import Database
from domain.devices.models import Device
from domain.errors import DomainError
from domain.events.models import Event, IdentityLink
from domain.keys import Keys
from domain.orders.models import Order, OrderLine
from domain.privacy import service as privacy_requests
from domain.privacy.models import DataExport, PrivacyRequest
from domain.profiles.models import CustomerProfile
from domain.sql import table
from domain.users.models import Customer, CustomerTag

log = logging.getLogger("precis.privacy")

FORMAT = "precis.export/1"
PAGE = 1000  # rows per query for streamed sections

Section = Callable[[AsyncSession, Keys, int], Awaitable[Any]]
SECTIONS: dict[str, Section] = {}


def register(name: str) -> Callable[[Section], Section]:
    """Add a section to every export (``@register("segments")``)."""

    def wrap(fn: Section) -> Section:
        SECTIONS[name] = fn
        return fn

    return wrap


def _row(row: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in row._mapping.items() if k not in drop}


async def _rows(session: AsyncSession, t: Table, customer_id: int, *order: Any) -> list[Any]:
    stmt = select(t).where(t.c.customer_id == customer_id).order_by(*order)
    return list((await session.execute(stmt)).all())


async def _anonymous_ids(session: AsyncSession, customer_id: int) -> list[str]:
    links = table(IdentityLink)
    stmt = select(links.c.anonymous_id).where(links.c.customer_id == customer_id)
    return list(await session.scalars(stmt))


async def _keyset(
    session: AsyncSession, t: Table, where: Any, keys: tuple[Any, ...]
) -> AsyncIterator[list[Any]]:
    """Rows of ``t`` matching ``where`` in ``keys`` order, ``PAGE`` at a time. Each page continues
    after the previous page's last key (a row-value comparison), so with an index on the filter
    column followed by ``keys`` every page is one index range scan and memory stays flat however
    many rows there are."""
    last: tuple[Any, ...] | None = None
    while True:
        stmt = select(t).where(where)
        if last is not None:
            stmt = stmt.where(tuple_(*keys) > tuple_(*last))
        rows = list((await session.execute(stmt.order_by(*keys).limit(PAGE))).all())
        if not rows:
            return
        yield rows
        if len(rows) < PAGE:
            return
        last = tuple(getattr(rows[-1], k.key) for k in keys)


async def _pages(
    session: AsyncSession, t: Table, customer_id: int, at: Any
) -> AsyncIterator[list[Any]]:
    """The customer's rows of ``t`` (events or orders) in time order, over the index
    ``(customer_id, <time>)``; then rows under an anonymous id linked to them that are not linked
    to the customer themselves (over the ``anonymous_id`` index where there is one)."""
    async for rows in _keyset(session, t, t.c.customer_id == customer_id, (at, t.c.id)):
        yield rows
    anonymous_ids = await _anonymous_ids(session, customer_id)
    if anonymous_ids:
        unlinked = and_(
            t.c.anonymous_id.in_(anonymous_ids),
            or_(t.c.customer_id.is_(None), t.c.customer_id != customer_id),
        )
        async for rows in _keyset(session, t, unlinked, (t.c.id,)):
            yield rows


@register("customer")
async def customer_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    t = table(Customer)
    row = (await session.execute(select(t).where(t.c.id == customer_id))).one()
    out = _row(row, drop=("email_encrypted", "email_hash", "phone_encrypted", "phone_hash"))
    out["email"] = keys.decrypt(row.email_encrypted) if row.email_encrypted else None
    out["phone"] = keys.decrypt(row.phone_encrypted) if row.phone_encrypted else None
    return out


@register("tags")
async def tags_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    t = table(CustomerTag)
    return [r.tag for r in await _rows(session, t, customer_id, t.c.tag)]


@register("profile")
async def profile_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    rows = await _rows(session, table(CustomerProfile), customer_id)
    return _row(rows[0], drop=("customer_id",)) if rows else None


@register("consents")
async def consents_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    t = table(Consent)
    return [_row(r, drop=("customer_id",)) for r in await _rows(session, t, customer_id, t.c.id)]


@register("events")
async def events_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    t = table(Event)

    async def items() -> AsyncIterator[dict[str, Any]]:
        async for rows in _pages(session, t, customer_id, t.c.occurred_at):
            for r in rows:
                yield _row(r, drop=("customer_id",))

    return items()


@register("orders")
async def orders_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    t, lines_t = table(Order), table(OrderLine)

    async def items() -> AsyncIterator[dict[str, Any]]:
        async for rows in _pages(session, t, customer_id, t.c.placed_at):
            ids = [r.id for r in rows]
            lines: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            stmt = (
                select(lines_t)
                .where(lines_t.c.order_id.in_(ids))
                .order_by(lines_t.c.order_id, lines_t.c.line_no)
            )
            for line in (await session.execute(stmt)).all():
                lines[line.order_id].append(_row(line, drop=("order_id",)))
            for r in rows:
                yield {**_row(r, drop=("customer_id",)), "lines": lines[r.id]}

    return items()


@register("devices")
async def devices_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    t = table(Device)
    # Push tokens are credentials for the push services: listed as present, never exported.
    return [
        _row(r, drop=("customer_id", "token_encrypted", "token_hash"))
        for r in await _rows(session, t, customer_id, t.c.id)
    ]


@register("identityLinks")
async def identity_links_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    t = table(IdentityLink)
    return [
        _row(r, drop=("customer_id",)) for r in await _rows(session, t, customer_id, t.c.linked_at)
    ]


@register("segments")
async def segments_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    """Current memberships (segment, entry time) and every recorded entry and exit."""
    from domain.segments.models import Segment, SegmentMember, SegmentTransition

    seg, m, tr = table(Segment), table(SegmentMember), table(SegmentTransition)
    stmt = (
        select(seg.c.id, seg.c.name, seg.c.key, m.c.entered_at)
        .join(m, m.c.segment_id == seg.c.id)
        .where(m.c.customer_id == customer_id)
        .order_by(m.c.entered_at, seg.c.id)
    )
    memberships = [
        {"segment_id": r.id, "name": r.name, "key": r.key, "entered_at": r.entered_at}
        for r in (await session.execute(stmt)).all()
    ]
    log = (
        select(tr.c.id, tr.c.segment_id, seg.c.name, tr.c.kind, tr.c.version, tr.c.occurred_at)
        .join(seg, seg.c.id == tr.c.segment_id)
        .where(tr.c.customer_id == customer_id)
        .order_by(tr.c.id)
    )
    transitions = [_row(r, drop=("id",)) for r in (await session.execute(log)).all()]
    return {"memberships": memberships, "transitions": transitions}


@register("recommendations")
async def recommendations_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    """Recommendations served to the shopper (and to visitor ids linked to them): when, where,
    which model version and which products (the ``recommendationId`` is ``id``)."""
    from domain.recommend.models import RecommendationImpression

    t = table(RecommendationImpression)

    async def items() -> AsyncIterator[dict[str, Any]]:
        async for rows in _pages(session, t, customer_id, t.c.served_at):
            for r in rows:
                yield _row(r, drop=("customer_id",))

    return items()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"cannot export {type(value).__name__}")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


class _Writer:
    """JSON bytes into gzip, counting size and hashing the uncompressed document. Small writes are
    gathered into chunks of about ``CHUNK`` bytes first (one zlib and one hash call per chunk, not
    per event); level 6 compresses this JSON almost as well as 9 in a fraction of the time."""

    CHUNK = 1 << 16

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.gzip = gzip.GzipFile(fileobj=self.buffer, mode="wb", mtime=0, compresslevel=6)
        self.sha = hashlib.sha256()
        self.size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            chunk = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            self.gzip.write(chunk)
            self.sha.update(chunk)
            self.size += len(chunk)

    def close(self) -> bytes:
        self._flush()
        self.gzip.close()
        return self.buffer.getvalue()


async def write_document(
    session: AsyncSession, keys: Keys, customer_id: int, export_id: str
) -> tuple[bytes, int, str]:
    """The export as (gzip bytes, JSON size, JSON SHA-256)."""
    out = _Writer()
    head = {"format": FORMAT, "exportId": export_id, "generatedAt": utcnow()}
    out.write(_dumps(head)[:-1])  # the header object, left open
    out.write(b',"sections":' + _dumps(list(SECTIONS)))
    for name, fn in SECTIONS.items():
        out.write(b"," + _dumps(name) + b":")
        value = await fn(session, keys, customer_id)
        if hasattr(value, "__aiter__"):
            out.write(b"[")
            first = True
            async for item in value:
                out.write(_dumps(item) if first else b"," + _dumps(item))
                first = False
            out.write(b"]")
        else:
            out.write(_dumps(value))
    out.write(b"}")
    return out.close(), out.size, out.sha.hexdigest()


async def request_export(
    session: AsyncSession, actor: Actor, customer_id: int, *, due_days: int
) -> tuple[DataExport, PrivacyRequest]:
    """A queued export plus the ``access`` privacy request it answers; the caller queues
    ``build_export`` after commit."""
    request = await privacy_requests.create_request(
        session,
        actor,
        type="access",
        customer_id=customer_id,
        due_days=due_days,
        status="in_progress",
    )
    export = DataExport(
        id=secrets.token_urlsafe(24),
        customer_id=customer_id,
        privacy_request_id=request.id,
        requested_by_client_id=actor.client_id[:64],
        status="queued",
    )
    session.add(export)
    await session.flush()
    await audit.record(
        session,
        actor,
        "data_export.request",
        "DataExport",
        export.id,
        details={"customer_id": customer_id, "privacy_request_id": request.id},
    )
    return export, request


async def _consistent(session: AsyncSession) -> None:
    """On PostgreSQL read every section from one snapshot (SQLite's read transaction already is)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def build_export(db: Database, keys: Keys, export_id: str, *, ttl_days: int) -> str:
    """Build a queued export; safe to run twice (a ready export is left alone). Returns the status."""
    async with db.unit_of_work() as session:
        export = await session.get(DataExport, export_id)
        if export is None:
            return "missing"
        if export.status == "ready":
            return export.status
        customer_id = export.customer_id
        export.status = "running"
    try:
        async with db.read_only() as session:
            await _consistent(session)
            if await session.get(Customer, customer_id) is None:
                raise DomainError.one("NOT_FOUND", "the user no longer exists")
            content, size, sha = await write_document(session, keys, customer_id, export_id)
    except Exception as exc:
        if isinstance(exc, DomainError):
            log.warning("export %s failed: %s", export_id, exc)
        else:
            log.exception("export %s failed", export_id)
        async with db.unit_of_work() as session:
            failed = await session.get(DataExport, export_id)
            if failed is not None:
                failed.status = "failed"
                failed.error = (
                    str(exc)[:500] if isinstance(exc, DomainError) else type(exc).__name__
                )
        return "failed"
    async with db.unit_of_work() as session:
        export = await session.get(DataExport, export_id)
        if export is None:  # erased while it was being built
            return "missing"
        now = utcnow()
        export.status = "ready"
        export.content_gzip = content
        export.size_bytes = size
        export.sha256 = sha
        export.error = None
        export.ready_at = now
        export.expires_at = now + timedelta(days=ttl_days)
        if export.privacy_request_id is not None:
            request = await session.get(PrivacyRequest, export.privacy_request_id)
            if request is not None:
                await privacy_requests.complete(session, request, f"data export {export_id} ready")
        await audit.record(
            session,
            SYSTEM,
            "data_export.build",
            "DataExport",
            export_id,
            details={"size": size, "customer_id": customer_id},
        )
    return "ready"


async def purge_expired(session: AsyncSession) -> int:
    """Delete exports past their expiry; returns how many."""
    t = table(DataExport)
    result = await session.execute(
        delete(t).where(t.c.expires_at.is_not(None), t.c.expires_at < utcnow())
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        await audit.record(
            session, SYSTEM, "data_export.purge", "DataExport", details={"count": count}
        )
    return count


async def for_client(
    session: AsyncSession, export_id: str, client_id: str, *, content: bool = False
) -> DataExport | None:
    """The export if ``client_id`` requested it (anyone else sees nothing). The gzip bytes are
    loaded only with ``content=True`` (status queries do not need megabytes)."""
    if len(export_id) > 64 or "\x00" in export_id:  # no such id; PostgreSQL cannot compare NUL
        return None
    column: Any = DataExport.content_gzip  # an InstrumentedAttribute at run time
    options = [] if content else [defer(column)]
    export = await session.get(DataExport, export_id, options=options)
    if export is None or export.requested_by_client_id != client_id:
        return None
    return export


def downloadable(export: DataExport) -> bool:
    return (
        export.status == "ready"
        and export.sha256 is not None
        and (export.expires_at is None or export.expires_at > utcnow())
    )


__all__ = ["SECTIONS", "build_export", "register", "request_export"]
