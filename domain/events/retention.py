"""Retention: raw events older than ``settings.event_retention_days`` become daily aggregates.

The purge works one UTC day at a time, oldest first. Each day is one transaction: the day's old
events are deleted with ``DELETE ... RETURNING`` and exactly the rows that statement removed are
added to ``event_daily`` (day, type, product, channel, currency -> events, distinct customers,
value). So a crash rolls a day back whole, and a second run (even a concurrent one) can only count
rows it deleted itself: nothing is counted twice. On PostgreSQL an advisory lock also keeps two
runs from working on the same day at once.

``customers`` is exact for a day purged in one run; events of a day that arrive after that day
was purged (a late back-fill) add their own distinct count, so a shopper present in both can be
counted twice there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.columns import utcnow
from domain.db import Database
from domain.events.models import Event, EventDaily
from domain.settings import Settings
from domain.sql import insert_for, table

# pg_advisory_xact_lock key: "precis events purge".
LOCK_KEY = 0x7072_6563_6973_0001

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class PurgeResult:
    cutoff: datetime
    events: int = 0
    days: list[date] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "events": self.events,
            "days": len(self.days),
        }


def _aggregate(day: date, rows: Sequence[Any]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int, str, str], tuple[list[int], set[int], list[Decimal]]] = {}
    for kind, product_id, channel, currency, customer_id, value in rows:
        key = (kind, product_id or 0, channel or "", currency or "")
        found = groups.get(key)
        if found is None:
            found = groups[key] = ([0], set(), [Decimal(0)])
        found[0][0] += 1
        if customer_id is not None:
            found[1].add(customer_id)
        if value is not None:
            found[2][0] += value
    return [
        {
            "day": day,
            "type": kind,
            "product_id": product_id,
            "channel": channel,
            "currency": currency,
            "events": counts[0][0],
            "customers": len(counts[1]),
            "value": counts[2][0],
        }
        for (kind, product_id, channel, currency), counts in sorted(groups.items())
    ]


async def _add_daily(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    t = table(EventDaily)
    stmt = insert_for(session)(t)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.day, t.c.type, t.c.product_id, t.c.channel, t.c.currency],
        set_={
            "events": t.c.events + ex.events,
            "customers": t.c.customers + ex.customers,
            "value": t.c.value + ex.value,
        },
    )
    await session.execute(stmt, rows)


async def purge_day(
    session: AsyncSession, cutoff: datetime, actor: audit.Actor = audit.SYSTEM
) -> tuple[date | None, int]:
    """Roll up and delete the oldest day's events older than ``cutoff``; returns (day, count)."""
    events = table(Event)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    oldest = await session.scalar(
        select(func.min(events.c.occurred_at)).where(events.c.occurred_at < cutoff)
    )
    if oldest is None:
        return None, 0
    day = oldest.astimezone(UTC).date()
    end = min(datetime.combine(day + timedelta(days=1), time(), UTC), cutoff)
    start = datetime.combine(day, time(), UTC)
    deleted = await session.execute(
        delete(events)
        .where(events.c.occurred_at >= start, events.c.occurred_at < end)
        .returning(
            events.c.type,
            events.c.product_id,
            events.c.channel,
            events.c.currency,
            events.c.customer_id,
            events.c.value,
        )
    )
    rows = deleted.all()
    await _add_daily(session, _aggregate(day, rows))
    await audit.record(
        session,
        actor,
        "events.purge",
        "Event",
        details={"day": day.isoformat(), "events": len(rows)},
    )
    return day, len(rows)


async def purge(
    db: Database,
    settings: Settings,
    *,
    now: datetime | None = None,
    older_than_days: int | None = None,
    progress: Progress | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> PurgeResult:
    """Purge every raw event older than the retention age, one day per transaction."""
    days = older_than_days if older_than_days is not None else settings.event_retention_days
    cutoff = (now or utcnow()) - timedelta(days=days)
    result = PurgeResult(cutoff=cutoff)
    events = table(Event)
    async with db.read_only() as session:
        total = int(
            await session.scalar(
                select(func.count()).select_from(events).where(events.c.occurred_at < cutoff)
            )
            or 0
        )
    if progress is not None:
        progress(0, total)
    while True:
        async with db.unit_of_work() as session:
            day, count = await purge_day(session, cutoff, actor)
        if day is None:
            break
        result.days.append(day)
        result.events += count
        if progress is not None:
            progress(result.events, max(total, result.events))
    return result
