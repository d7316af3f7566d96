"""The cheap parts of a profile, kept current on every ingestion call: first and last seen, and
the event count. One statement per batch, whatever the number of customers in it.

The scheduled recompute owns the other columns and recomputes these three from the events table;
between two recomputes they only move forward (min, max, +n), so concurrent batches add up right.

Two ways to apply a batch's tallies:

* synchronously (``record_seen``), in the caller's unit of work: jobs, imports, the CLI, and the
  API when ``profile_touch_flush_ms`` is 0;
* write-behind (``TouchBuffer``), in the API process: a committed request's tallies are added to a
  process-wide buffer that coalesces them per customer, and a background task applies the buffer
  with the same single statement every ``profile_touch_flush_ms``, and once more at shutdown.
  The events themselves are committed with the request; only these derived counters lag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import TIMESTAMP, event, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.columns import utcnow
from domain.profiles.models import CustomerProfile
from domain.sql import among, insert_for, table, unnest_params, unnest_rows
from domain.users.models import Customer
from domain.writebehind import WriteBehind

if TYPE_CHECKING:
    from domain.db import Database

log = logging.getLogger("precis.profiles")


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

    def merge(self, other: Seen) -> None:
        if other.first < self.first:
            self.first = other.first
        if other.last > self.last:
            self.last = other.last
        self.count += other.count


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


Touch = Callable[[dict[int, "Seen"]], None]


def merge_into(target: dict[int, Seen], seen: dict[int, Seen]) -> None:
    """Add ``seen`` to ``target`` (min first, max last, counts summed); ``seen`` is not kept."""
    for customer_id, s in seen.items():
        found = target.get(customer_id)
        if found is None:
            target[customer_id] = Seen(s.first, s.last, s.count)
        else:
            found.merge(s)


async def apply(session: AsyncSession, seen: dict[int, Seen], touch: Touch | None = None) -> None:
    """A batch's tallies: upserted now in ``session`` (``touch`` None), or handed to ``touch`` once
    ``session`` commits (nothing if it rolls back), for a ``TouchBuffer`` to write behind."""
    if not seen:
        return
    if touch is None:
        await record_seen(session, seen)
        return
    sync = session.sync_session
    # The transaction this work belongs to: its rollback (or an enclosing one's) drops the
    # tallies; the outermost commit hands them over (a savepoint release fires after_commit too).
    mine = sync.get_nested_transaction() or sync.get_transaction()
    state = {"done": False}

    def committed(sess: Any) -> None:
        if not state["done"] and not sess.in_nested_transaction():
            state["done"] = True
            touch(seen)

    def rolled_back(sess: Any, previous: Any) -> None:
        tx = mine
        while tx is not None:
            if tx is previous:
                state["done"] = True
                return
            tx = tx.parent

    event.listen(sync, "after_commit", committed)
    event.listen(sync, "after_soft_rollback", rolled_back)


async def _existing(session: AsyncSession, ids: Iterable[int]) -> set[int]:
    """The ids among ``ids`` of customers that exist."""
    customers = table(Customer)
    found: set[int] = set()
    wanted = sorted(ids)
    for start in range(0, len(wanted), 5000):  # SQLite binds each id of an IN list
        part = wanted[start : start + 5000]
        found.update(
            await session.scalars(
                select(customers.c.id).where(among(session, customers.c.id, part))
            )
        )
    return found


class TouchBuffer(WriteBehind):
    """Write-behind for ``record_seen`` in a long-lived process (the API): ``add`` merges a
    committed batch's tallies per customer; ``flush`` writes them all with one statement in its
    own unit of work, every ``interval_ms`` while started and once more on ``stop``.

    A failed flush is logged and its tallies are merged back, to be written by the next one
    (which first drops the tallies of customers that no longer exist: erased).
    Flushes never overlap (one lock), so the final flush at shutdown sees every tally.
    """

    def __init__(self, db: Database, interval_ms: int) -> None:
        if interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        super().__init__(db, interval_ms)
        self.pending: dict[int, Seen] = {}
        self.flushes = 0
        self._check = False  # after a failure: skip customers erased meanwhile

    def add(self, seen: dict[int, Seen]) -> None:
        merge_into(self.pending, seen)

    async def flush(self) -> int:
        """Write what is pending; returns the number of customers written (0 if none, or if the
        write failed: then the tallies stay pending). Tallies of customers erased meanwhile fail
        the write once and are dropped by the retry."""
        async with self._lock:
            taken, self.pending = self.pending, {}
            if not taken:
                return 0
            try:
                async with self.db.unit_of_work() as session:
                    written = taken
                    if self._check:
                        # A customer erased since its events were stored has no profile to
                        # count them in (and must not get one back): the upsert fails on the
                        # foreign key, and the retry drops that customer's tallies.
                        known = await _existing(session, taken)
                        written = {c: s for c, s in taken.items() if c in known}
                    await record_seen(session, written)
            except BaseException as exc:
                # Put them back under what arrived meanwhile; the next flush retries, checking
                # first which customers still exist.
                merge_into(taken, self.pending)
                self.pending = taken
                self.failures += 1
                self._check = True
                if not isinstance(exc, Exception):
                    raise  # cancelled: the tallies are kept for the final flush
                log.exception("profile counters: flush of %d customers failed", len(taken))
                return 0
            self.flushes += 1
            self._check = False
            return len(written)

    async def stop(self) -> None:
        """Stop the background task, then write what is still pending (once; a failure is
        logged and those tallies are lost: the recompute rebuilds the counters)."""
        await super().stop()
