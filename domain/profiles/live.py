"""The cheap parts of a profile, kept current on every ingestion call: first and last seen, and
the event count. One statement per batch, whatever the number of customers in it.

The scheduled recompute owns the other columns and recomputes these three from the events table;
between two recomputes they only move forward (min, max, +n), so concurrent batches add up right.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TIMESTAMP, func, literal_column
from sqlalchemy.ext.asyncio import AsyncSession

from domain.columns import utcnow
from domain.profiles.models import CustomerProfile
from domain.sql import insert_for, table, unnest_params, unnest_rows


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
# A new profile's other NOT NULL columns (the model's defaults), as SQL; any other column with a
# default gets it from SQLAlchemy as usual.
NEW_PROFILE = {
    "orders_count": "0",
    "revenue": "0",
    "lifecycle_stage": "'new'",
    "clv_historical": "0",
    "spend_level": "'none'",
    "top_categories": "'[]'",
    "top_brands": "'[]'",
    "active_hours": "'[]'",
}


COLUMNS = ("customer_id", "first_seen_at", "last_seen_at", "event_count", "updated_at")


# Aware datetimes go to PostgreSQL as they are, without per-element processing in Python.
PG_ELEMENTS = {name: TIMESTAMP(timezone=True) for name in COLUMNS if name.endswith("_at")}


def _statement(session: AsyncSession) -> Any:
    """One cached upsert per dialect, compiled once. On PostgreSQL the rows arrive as one array
    per column (``unnest``), elsewhere as many parameter sets."""
    dialect = session.get_bind().dialect.name
    stmt = _STATEMENTS.get(dialect)
    if stmt is None:
        t = table(CustomerProfile)
        # The columns the recompute owns get their defaults as SQL constants, so each row sends
        # only the five values that change (the per-row cost is in binding parameters).
        constants: dict[str, Any] = {
            n: literal_column(sql) for n, sql in NEW_PROFILE.items() if n in t.c
        }
        if dialect == "postgresql":
            stmt = insert_for(session)(t).from_select(
                [*COLUMNS, *constants],
                unnest_rows(t, COLUMNS, element_types=PG_ELEMENTS, **constants),
            )
            least, greatest = "least", "greatest"  # these skip NULLs
        else:
            stmt = insert_for(session)(t).values(constants)
            least, greatest = "min", "max"  # SQLite's: NULL if any argument is NULL
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.customer_id],
            set_={
                "first_seen_at": getattr(func, least)(
                    func.coalesce(t.c.first_seen_at, ex.first_seen_at), ex.first_seen_at
                ),
                "last_seen_at": getattr(func, greatest)(
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
            "updated_at": now,
        }
        # Sorted: concurrent batches lock profile rows in the same order (no deadlocks).
        for customer_id, s in sorted(seen.items())
    ]
    stmt = _statement(session)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(stmt, unnest_params(rows, COLUMNS))
    else:
        await session.execute(stmt, rows)
