"""Every query reading events: newest first (by ``occurred_at``, then id), keyset paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.events.models import Event
from domain.sql import count_matching


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None
    customer_id: int | None = None
    product_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class CursorGone(LookupError):
    """The event a cursor points at no longer exists (purged or erased)."""


def filtered(flt: EventFilter) -> Select[Any]:
    stmt = select(Event)
    if flt.customer_id is not None:
        stmt = stmt.where(col(Event.customer_id) == flt.customer_id)
    if flt.type is not None:
        stmt = stmt.where(col(Event.type) == flt.type)
    if flt.product_id is not None:
        stmt = stmt.where(col(Event.product_id) == flt.product_id)
    if flt.since is not None:
        stmt = stmt.where(col(Event.occurred_at) >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(col(Event.occurred_at) < flt.until)
    return stmt


async def page(
    session: AsyncSession, flt: EventFilter, *, first: int, after: int | None
) -> list[Event]:
    """``first + 1`` events newest first, after the event with id ``after`` (the cursor)."""
    stmt = filtered(flt)
    occurred, pk = col(Event.occurred_at), col(Event.id)
    if after is not None:
        where = [pk == after]
        if flt.customer_id is not None:  # a cursor never reads another shopper's event
            where.append(col(Event.customer_id) == flt.customer_id)
        at = await session.scalar(select(occurred).where(*where))
        if at is None:
            raise CursorGone(after)
        stmt = stmt.where(or_(occurred < at, and_(occurred == at, pk < after)))
    rows = await session.scalars(stmt.order_by(occurred.desc(), pk.desc()).limit(first + 1))
    return list(rows)


async def count(session: AsyncSession, flt: EventFilter) -> int:
    return await count_matching(session, filtered(flt), col(Event.id))
