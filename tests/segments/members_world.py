"""Set-up for the membership tests: shoppers through the users service, events inserted into their
table, segments through the segment service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from domain.audit.service import Actor
from domain.db import Database
from domain.events.models import Event
from domain.keys import build_keys
from domain.segments import service
from domain.segments.models import Segment, SegmentMember, SegmentTransition
from domain.settings import Settings
from domain.sql import table
from domain.users import service as users
from domain.users.models import Customer, CustomerTag

ADMIN = Actor(client_id="admin-client", subject="admin")
DE = {"attribute": {"field": "country", "op": "eq", "value": "DE"}}
CARTED = {"behavior": {"eventType": "add_to_cart", "window": {"lastDays": 7}}}
VIP = {"tag": {"tags": ["vip"], "match": "any"}}


async def shoppers(db: Database, settings: Settings, countries: list[str | None]) -> list[int]:
    """Customers s-0, s-1, ... with the given countries; returns their ids in order."""
    async with db.unit_of_work() as session:
        made = await users.upsert_users(
            session,
            build_keys(settings),
            [
                {"external_id": f"s-{n}", **({"country": c} if c else {})}
                for n, c in enumerate(countries)
            ],
        )
    return [int(c.id or 0) for c in made]


async def product(db: Database, external_id: str = "p-1") -> int:
    from domain.catalog import service as catalog

    async with db.unit_of_work() as session:
        (made,) = await catalog.upsert_products(
            session,
            [{"external_id": external_id, "title": "Mug", "price": "9.99", "currency": "EUR"}],
        )
    return int(made.id or 0)


async def set_country(db: Database, customer_id: int, country: str | None) -> None:
    async with db.unit_of_work() as session:
        await session.execute(
            update(table(Customer))
            .where(table(Customer).c.id == customer_id)
            .values(country=country)
        )


async def tag(db: Database, customer_id: int, name: str) -> None:
    async with db.unit_of_work() as session:
        await session.execute(insert(table(CustomerTag)).values(customer_id=customer_id, tag=name))


async def add_event(
    db: Database, customer_id: int, kind: str = "add_to_cart", *, days_ago: float = 1
) -> None:
    async with db.unit_of_work() as session:
        n = await session.scalar(select(table(Event).c.id).order_by(table(Event).c.id.desc()))
        at = datetime.now(UTC) - timedelta(days=days_ago)
        await session.execute(
            insert(table(Event)).values(
                client_event_id=f"ev-{(n or 0) + 1}",
                customer_id=customer_id,
                type=kind,
                properties={},
                source_client_id="test",
                occurred_at=at,
                received_at=at,
            )
        )


async def segment(
    db: Database, definition: dict[str, Any] | None, *, name: str = "S", kind: str = "dynamic"
) -> int:
    async with db.unit_of_work() as session:
        seg = await service.create_segment(
            session, ADMIN, name=name, kind=kind, definition=definition
        )
    assert seg.id is not None
    return seg.id


async def members_of(db: Database, segment_id: int) -> set[int]:
    async with db.read_only() as session:
        m = table(SegmentMember)
        return {
            int(c)
            for c in await session.scalars(
                select(m.c.customer_id).where(m.c.segment_id == segment_id)
            )
        }


async def log_of(db: Database, segment_id: int | None = None) -> list[tuple[int, int, str, int]]:
    """(segment, customer, kind, version) of every transition, in id order."""
    async with db.read_only() as session:
        t = table(SegmentTransition)
        stmt = select(t.c.segment_id, t.c.customer_id, t.c.kind, t.c.version).order_by(t.c.id)
        if segment_id is not None:
            stmt = stmt.where(t.c.segment_id == segment_id)
        return [
            (int(a), int(b), str(c), int(d)) for a, b, c, d in (await session.execute(stmt)).all()
        ]


async def row(db: Database, segment_id: int) -> Segment:
    async with db.read_only() as session:
        seg = await session.get(Segment, segment_id)
    assert seg is not None
    return seg
