"""Every query on orders and their lines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.audit.service import Actor
from domain.orders.models import Order, OrderLine
from domain.sql import count_matching, rows_by


@dataclass(frozen=True)
class OrderFilter:
    customer_id: int | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def readable(actor: Actor) -> Select[Order]:
    """Orders the actor may read: a shopper token only its own customer's."""
    stmt = select(Order)
    if actor.customer_id is not None:
        stmt = stmt.where(col(Order.customer_id) == actor.customer_id)
    return stmt


def filtered(actor: Actor, flt: OrderFilter) -> Select[Order]:
    stmt = readable(actor)
    if flt.customer_id is not None:
        stmt = stmt.where(col(Order.customer_id) == flt.customer_id)
    if flt.status is not None:
        stmt = stmt.where(col(Order.status) == flt.status)
    if flt.since is not None:
        stmt = stmt.where(col(Order.placed_at) >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(col(Order.placed_at) < flt.until)
    return stmt


async def page_newest_first(
    session: AsyncSession, actor: Actor, flt: OrderFilter, *, first: int, after: int | None
) -> list[Order]:
    """Keyset page ordered by (placed_at, id) descending, ``first + 1`` rows. The cursor is the id
    of the last order seen; its placed_at is read back so the cursor stays a plain id."""
    stmt = filtered(actor, flt)
    if after is not None:
        placed = await session.scalar(select(col(Order.placed_at)).where(col(Order.id) == after))
        if placed is None:
            stmt = stmt.where(col(Order.id) < after)
        else:
            stmt = stmt.where(
                or_(
                    col(Order.placed_at) < placed,
                    and_(col(Order.placed_at) == placed, col(Order.id) < after),
                )
            )
    stmt = stmt.order_by(col(Order.placed_at).desc(), col(Order.id).desc()).limit(first + 1)
    return list(await session.scalars(stmt))


async def count(session: AsyncSession, actor: Actor, flt: OrderFilter) -> int:
    return await count_matching(session, filtered(actor, flt), col(Order.id))


async def by_ids(session: AsyncSession, actor: Actor, ids: Sequence[int]) -> dict[int, Order]:
    if not ids:
        return {}
    rows = await session.scalars(readable(actor).where(col(Order.id).in_(ids)))
    return {row.id: row for row in rows if row.id is not None}


async def by_external_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Order]:
    return await rows_by(session, col(Order.external_id), ids)


async def by_external_ids_for_update(session: AsyncSession, ids: Sequence[str]) -> dict[str, Order]:
    """Orders by external id, locked until the unit of work ends (PostgreSQL; SQLite serialises
    writers anyway), in id order so two callers never wait on each other in a cycle."""
    if not ids:
        return {}
    rows = await session.scalars(
        select(Order)
        .where(col(Order.external_id).in_(sorted(set(ids))))
        .order_by(col(Order.external_id))
        .with_for_update()
    )
    return {row.external_id: row for row in rows}


async def lines_for(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, list[OrderLine]]:
    found: dict[int, list[OrderLine]] = defaultdict(list)
    if not order_ids:
        return found
    rows = await session.scalars(
        select(OrderLine)
        .where(col(OrderLine.order_id).in_(order_ids))
        .order_by(col(OrderLine.order_id), col(OrderLine.line_no))
    )
    for row in rows:
        found[row.order_id].append(row)
    return found
