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
from sqlalchemy import Table, delete, or_, select
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


async def _pages(session: AsyncSession, t: Table, customer_id: int) -> AsyncIterator[list[Any]]:
    """Rows of ``t`` for the customer (by customer id, or by an anonymous id linked to them) in id
    order, ``PAGE`` at a time: keyset pages, so memory stays flat however many rows there are."""
    anonymous_ids = await _anonymous_ids(session, customer_id)
    mine = t.c.customer_id == customer_id
    if anonymous_ids:
        mine = or_(mine, t.c.anonymous_id.in_(anonymous_ids))
    last = 0
    while True:
        stmt = select(t).where(mine, t.c.id > last).order_by(t.c.id).limit(PAGE)
        rows = list((await session.execute(stmt)).all())
        if not rows:
            return
        yield rows
        last = rows[-1].id
        if len(rows) < PAGE:
            return


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
    async def items() -> AsyncIterator[dict[str, Any]]:
        async for rows in _pages(session, table(Event), customer_id):
            for r in rows:
                yield _row(r, drop=("customer_id",))

    return items()


@register("orders")
async def orders_section(session: AsyncSession, keys: Keys, customer_id: int) -> Any:
    lines_t = table(OrderLine)

    async def items() -> AsyncIterator[dict[str, Any]]:
        async for rows in _pages(session, table(Order), customer_id):
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


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"cannot export {type(value).__name__}")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


class _Writer:
    """JSON bytes into gzip, counting size and hashing the uncompressed document."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.gzip = gzip.GzipFile(fileobj=self.buffer, mode="wb", mtime=0)
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.gzip.write(data)
        self.sha.update(data)
        self.size += len(data)

    def close(self) -> bytes:
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
    if len(export_id) > 64:
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
