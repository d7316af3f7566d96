"""Recording and reading the audit log.

Writes are recorded in the same unit of work as the change they describe, so a change and its entry
commit or roll back together. Reads of unmasked PII are collected during a request and written when it
ends (see ``api.context.Context.finish``). Entries name fields, never their values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.models import AuditEntry
from domain.columns import utcnow
from domain.sql import count_matching, table


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: the OAuth client, the token subject, the request, and for shopper tokens the
    customer the token is bound to (row-level rules use it)."""

    client_id: str
    subject: str
    request_id: str | None = None
    customer_id: int | None = None

    @property
    def is_shopper(self) -> bool:
        return self.customer_id is not None


SYSTEM = Actor(client_id="precis", subject="system")


def entry(
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: Any = None,
    *,
    fields: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One audit row as a dict (for ``record_many``)."""
    return {
        "at": at or utcnow(),
        "client_id": actor.client_id[:64],
        "subject": actor.subject[:128],
        "action": action,
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else str(resource_id)[:128],
        "fields": sorted(set(fields)),
        "details": details or {},
        "request_id": actor.request_id,
    }


async def record_many(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(table(AuditEntry)), list(rows))


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: Any = None,
    *,
    fields: Iterable[str] = (),
    details: dict[str, Any] | None = None,
) -> None:
    """Record one action in the caller's unit of work."""
    await record_many(
        session, [entry(actor, action, resource_type, resource_id, fields=fields, details=details)]
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    client_id: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def query(flt: AuditFilter) -> Any:
    t = table(AuditEntry)
    stmt = select(AuditEntry)
    for name in ("client_id", "action", "resource_type", "resource_id", "request_id"):
        value = getattr(flt, name)
        if value is not None:
            stmt = stmt.where(t.c[name] == value)
    if flt.since is not None:
        stmt = stmt.where(t.c.at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(t.c.at < flt.until)
    return stmt


async def page(
    session: AsyncSession, flt: AuditFilter, *, first: int, after: int | None
) -> list[AuditEntry]:
    """Newest first (by id, which follows ``at``); ``first + 1`` rows so callers see if more exist."""
    stmt = query(flt)
    if after is not None:
        stmt = stmt.where(table(AuditEntry).c.id < after)
    return list(
        await session.scalars(stmt.order_by(table(AuditEntry).c.id.desc()).limit(first + 1))
    )


async def count(session: AsyncSession, flt: AuditFilter) -> int:
    return await count_matching(session, query(flt), table(AuditEntry).c.id)
