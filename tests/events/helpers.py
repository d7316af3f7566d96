"""Shared set-up for the event tests: customers and products through the services, consent
records straight into their table, and the trackEvents mutation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from api.ids import encode_id
from domain.catalog import service as catalog
from domain.consents.models import Consent
from domain.db import Database
from domain.events.models import Event
from domain.keys import build_keys
from domain.profiles.models import CustomerProfile
from domain.settings import Settings
from domain.users import service as users
from tests.conftest import Api

TRACK = """
mutation($events: [EventInput!]!) {
  trackEvents(input: {events: $events}) {
    accepted duplicates rejected unlinked
    errors { code field message index }
  }
}"""
W = "events:write"


async def seed(db: Database, settings: Settings) -> dict[str, int]:
    """Customers c-1, c-2, c-3 and products p-1, p-2; returns external id -> primary key."""
    async with db.unit_of_work() as session:
        made = await users.upsert_users(
            session, build_keys(settings), [{"external_id": f"c-{n}"} for n in (1, 2, 3)]
        )
        products = await catalog.upsert_products(
            session,
            [
                {"external_id": f"p-{n}", "title": f"P{n}", "price": "9.99", "currency": "EUR"}
                for n in (1, 2)
            ],
        )
    ids = {c.external_id: int(c.id or 0) for c in made}
    ids.update({p.external_id: int(p.id or 0) for p in products})
    return ids


def view(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "clientEventId": f"e-{n}",
        "type": "view",
        "userExternalId": "c-1",
        "productExternalId": "p-1",
        **extra,
    }


def gid(kind: str, pk: int) -> str:
    return encode_id(kind, pk)


async def track(
    api: Api, events: list[dict[str, Any]], *, scopes: str = W, token: str | None = None
) -> dict[str, Any]:
    body = await api.gql(TRACK, {"events": events}, scopes=None if token else scopes, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["trackEvents"]
    return result


async def stored(db: Database) -> list[Event]:
    async with db.read_only() as session:
        return list(await session.scalars(select(Event).order_by(Event.client_event_id)))  # type: ignore[arg-type]


async def consent(db: Database, customer_id: int, granted: bool) -> None:
    async with db.unit_of_work() as session:
        await session.execute(
            insert(Consent.__table__),  # type: ignore[attr-defined]
            [
                {
                    "customer_id": customer_id,
                    "purpose": "analytics",
                    "granted": granted,
                    "source": "test",
                    "policy_version": "v1",
                    "actor_client_id": "test",
                    "recorded_at": datetime.now(UTC),
                }
            ],
        )


async def profile(db: Database, customer_id: int) -> tuple[Any, ...] | None:
    """(event_count, first_seen_at, last_seen_at) of the customer's profile, if it has one."""
    async with db.read_only() as session:
        row = await session.get(CustomerProfile, customer_id)
    return None if row is None else (row.event_count, row.first_seen_at, row.last_seen_at)
