"""The cheap parts of a profile, kept current on every ingestion call: first and last seen, and
the event count. One statement per batch, whatever the number of customers in it.

The scheduled recompute owns the other columns and recomputes these three from the events table;
between two recomputes they only move forward (min, max, +n), so concurrent batches add up right.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from domain.columns import utcnow
from domain.profiles.models import CustomerProfile
from domain.sql import insert_for, table


@dataclass(slots=True)
class Seen:
    """What one batch says about one customer."""

    first: datetime
    last: datetime
    count: int = 0

    def add(self, at: datetime) -> None:
        if at < self.first:
            self.first = at
        if at > self.last:
            self.last = at
        self.count += 1


def tally(pairs: Iterable[tuple[int | None, datetime]]) -> dict[int, Seen]:
    """``(customer id, occurred at)`` of stored events -> one ``Seen`` per linked customer."""
    seen: dict[int, Seen] = {}
    for customer_id, at in pairs:
        if customer_id is None:
            continue
        found = seen.get(customer_id)
        if found is None:
            seen[customer_id] = Seen(at, at, 1)
        else:
            found.add(at)
    return seen


_STATEMENTS: dict[str, Any] = {}


def _statement(session: AsyncSession) -> Any:
    """One cached upsert per dialect (compiled once, run with many parameter sets)."""
    dialect = session.get_bind().dialect.name
    stmt = _STATEMENTS.get(dialect)
    if stmt is None:
        t = table(CustomerProfile)
        stmt = insert_for(session)(t)
        ex = stmt.excluded
        # PostgreSQL's LEAST/GREATEST skip NULLs; SQLite's min/max return NULL if any is NULL.
        least, greatest = (
            (func.least, func.greatest) if dialect == "postgresql" else (func.min, func.max)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.customer_id],
            set_={
                "first_seen_at": least(
                    func.coalesce(t.c.first_seen_at, ex.first_seen_at), ex.first_seen_at
                ),
                "last_seen_at": greatest(
                    func.coalesce(t.c.last_seen_at, ex.last_seen_at), ex.last_seen_at
                ),
                "event_count": t.c.event_count + ex.event_count,
                "updated_at": ex.updated_at,
            },
        )
        _STATEMENTS[dialect] = stmt
    return stmt


async def record_seen(session: AsyncSession, seen: dict[int, Seen]) -> None:
    """Upsert first/last seen and add to the event count for each customer in ``seen``."""
    if not seen:
        return
    now = utcnow()
    rows = [
        {
            "customer_id": customer_id,
            "first_seen_at": s.first,
            "last_seen_at": s.last,
            "event_count": s.count,
            "orders_count": 0,
            "revenue": Decimal(0),
            "lifecycle_stage": "new",
            "clv_historical": Decimal(0),
            "spend_level": "none",
            "top_categories": [],
            "top_brands": [],
            "active_hours": [],
            "updated_at": now,
        }
        # Sorted: concurrent batches lock profile rows in the same order (no deadlocks).
        for customer_id, s in sorted(seen.items())
    ]
    await session.execute(_statement(session), rows)
