"""preview(): count, sample ordered by id, elapsed time, the time budget on both databases (a typed
TIMEOUT, the transaction still usable afterwards) and explain."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from domain.db import Database
from domain.errors import DomainError
from domain.events.models import Event
from domain.segments.definition import validate
from domain.segments.preview import preview
from domain.sql import table
from domain.users.models import Customer
from tests.conftest import count_rows
from tests.segments.core_world import NOW, ago, build_world


async def test_count_and_sample(db: Database) -> None:
    w = await build_world(db)
    async with db.read_only() as s:
        resolved = await validate(s, {"behavior": {"eventType": "purchase"}})
        result = await preview(s, resolved, now=NOW)
        assert result.count == 3
        assert result.sample_ids == sorted([w["de1"], w["at1"], w["fr1"]])
        assert result.elapsed_ms > 0
        assert result.cost is None and result.plan is None
        two = await preview(s, resolved, sample=2, now=NOW)
        assert (two.count, two.sample_ids) == (3, sorted([w["de1"], w["at1"], w["fr1"]])[:2])
        none = await preview(s, await validate(s, {"tag": {"tags": ["absent"]}}), now=NOW)
        assert (none.count, none.sample_ids) == (0, [])
        zero = await preview(s, resolved, sample=0, now=NOW)
        assert (zero.count, zero.sample_ids) == (3, [])


async def test_explain(db: Database, backend: str) -> None:
    await build_world(db)
    async with db.read_only() as s:
        resolved = await validate(
            s,
            {
                "and": [
                    {"behavior": {"eventType": "purchase", "window": {"lastDays": 90}}},
                    {"attribute": {"field": "country", "op": "in", "values": ["DE", "AT"]}},
                ]
            },
        )
        result = await preview(s, resolved, explain=True, now=NOW)
    assert result.count == 2
    assert result.plan
    if backend == "postgres":
        assert result.cost is not None and result.cost > 0
        assert "customer" in result.plan and "event" in result.plan
    else:
        assert result.cost is None
        assert "customer" in result.plan.lower()


async def _many_events(db: Database, customers: int = 400, per_customer: int = 100) -> None:
    async with db.unit_of_work() as s:
        await s.execute(
            insert(table(Customer)),
            [{"external_id": f"bulk-{i}", "attributes": {}} for i in range(customers)],
        )
        ids = list(
            await s.scalars(
                select(table(Customer).c.id).where(table(Customer).c.external_id.like("bulk-%"))
            )
        )
        rows: list[dict[str, Any]] = [
            {
                "client_event_id": f"bulk-{c}-{n}",
                "customer_id": c,
                "type": "purchase",
                "value": Decimal(n % 50),
                "currency": "EUR",
                "occurred_at": ago(days=n % 300),
                "source_client_id": "test",
            }
            for c in ids
            for n in range(per_customer)
        ]
        await s.execute(insert(table(Event)), rows)


HEAVY = {
    "or": [
        {"behavior": {"eventType": "purchase", "count": {"min": n}, "value": {"min": str(n * 10)}}}
        for n in range(2, 60)
    ]
}


async def test_timeout_is_typed_and_the_transaction_stays_usable(
    db: Database, backend: str
) -> None:
    await _many_events(db)
    async with db.unit_of_work() as s:
        if backend == "postgres":
            before = await s.scalar(text("SHOW statement_timeout"))
        resolved = await validate(s, HEAVY)
        with pytest.raises(DomainError) as exc:
            await preview(s, resolved, budget_ms=5, now=NOW)
        assert [(e.code, e.field) for e in exc.value.errors] == [("TIMEOUT", ("definition",))]
        # The same transaction goes on: it reads, writes, and the database's own timeout is back.
        assert await s.scalar(select(func.count()).select_from(table(Customer))) == 400
        await s.execute(insert(table(Customer)).values(external_id="after-timeout", attributes={}))
        if backend == "postgres":
            assert await s.scalar(text("SHOW statement_timeout")) == before
        done = await preview(s, resolved, budget_ms=60_000, now=NOW)
        assert done.count == 400
        if backend == "postgres":
            assert await s.scalar(text("SHOW statement_timeout")) == before
    assert await count_rows(db, "customer") == 401
