"""Seeding a shopper with everything Precis can hold on one: real rows in the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select

from api.ids import decode_id
from domain.consents.models import Consent
from domain.devices.models import Device
from domain.events.models import Event, IdentityLink
from domain.orders.models import Order, OrderLine
from domain.profiles.models import CustomerProfile
from domain.sql import table
from tests.conftest import Api

UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { users { id externalId } errors { code message } }
}"""
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EVENT_TYPES = ("view", "add_to_cart", "purchase")


async def make_customers(api: Api, *external_ids: str) -> dict[str, int]:
    users = [
        {
            "externalId": x,
            "email": f"{x}@example.com",
            "phone": f"+4915112345{i:03d}",
            "firstName": f"Name-{x}",
            "tags": ["vip"],
        }
        for i, x in enumerate(external_ids)
    ]
    body = await api.gql(UPSERT, {"users": users}, scopes="users:write users:read")
    assert "errors" not in body and body["data"]["upsertUsers"]["errors"] == [], body
    return {u["externalId"]: decode_id(u["id"])[1] for u in body["data"]["upsertUsers"]["users"]}


async def seed_shopper(api: Api, customer_id: int, *, events: int = 30, orders: int = 3) -> None:
    """Events (some under a linked anonymous id), orders with lines, consents, a profile, a device
    and an identity link for one customer."""
    anon = f"anon-{customer_id}"
    event_rows: list[dict[str, Any]] = []
    for i in range(events):
        kind = EVENT_TYPES[i % 3]
        event_rows.append(
            {
                "client_event_id": f"e-{customer_id}-{i}",
                "customer_id": customer_id if i % 5 else None,
                "anonymous_id": anon if i % 5 == 0 else None,
                "type": kind,
                "properties": {"query": f"secret-{customer_id}", "i": i},
                "value": Decimal("10.50") if kind == "purchase" else None,
                "currency": "EUR" if kind == "purchase" else None,
                "source_client_id": "test",
                "occurred_at": T0 + timedelta(minutes=i),
                "received_at": T0 + timedelta(minutes=i),
            }
        )
    async with api.db.unit_of_work() as session:
        if event_rows:
            await session.execute(insert(table(Event)), event_rows)
        for n in range(orders):
            result = await session.execute(
                insert(table(Order))
                .values(
                    external_id=f"o-{customer_id}-{n}",
                    customer_id=customer_id,
                    anonymous_id=anon if n == 0 else None,
                    status="paid",
                    currency="EUR",
                    subtotal=Decimal("40.00"),
                    total=Decimal("42.00") + n,
                    source_client_id="test",
                    placed_at=T0 + timedelta(days=n),
                    created_at=T0,
                    updated_at=T0,
                )
                .returning(table(Order).c.id)
            )
            order_id = result.scalar_one()
            await session.execute(
                insert(table(OrderLine)),
                [
                    {
                        "order_id": order_id,
                        "line_no": line,
                        "product_external_id": f"p-{line}",
                        "title": "Shoe",
                        "quantity": 1,
                        "unit_price": Decimal("20.00"),
                        "total": Decimal("20.00"),
                    }
                    for line in (1, 2)
                ],
            )
        await session.execute(
            insert(table(Consent)),
            [
                {
                    "customer_id": customer_id,
                    "purpose": p,
                    "granted": g,
                    "source": "checkout",
                    "policy_version": "1",
                    "actor_client_id": "test",
                    "recorded_at": T0,
                }
                for p, g in (("email", True), ("analytics", True), ("email", False))
            ],
        )
        await session.execute(
            insert(table(CustomerProfile)).values(
                customer_id=customer_id,
                event_count=events,
                orders_count=orders,
                revenue=Decimal("126.00"),
                lifecycle_stage="active",
                clv_historical=Decimal("126.00"),
                spend_level="medium",
                top_categories=[],
                top_brands=[],
                active_hours=[0] * 24,
                updated_at=T0,
            )
        )
        await session.execute(
            insert(table(Device)).values(
                customer_id=customer_id,
                platform="ios",
                token_encrypted=f"ENCRYPTED-PUSH-TOKEN-{customer_id}",
                token_hash=f"{customer_id:064d}",
                last_seen_at=T0,
                created_at=T0,
            )
        )
        await session.execute(
            insert(table(IdentityLink)).values(
                anonymous_id=anon, customer_id=customer_id, source_client_id="test", linked_at=T0
            )
        )


async def aggregates(api: Api) -> dict[str, Any]:
    """What metrics are built on: events per type, purchase value, order count and revenue."""
    ev, od = table(Event), table(Order)
    async with api.db.read_only() as session:
        per_type: dict[str, int] = dict(
            (await session.execute(select(ev.c.type, func.count()).group_by(ev.c.type))).all()
        )
        value = await session.scalar(select(func.sum(ev.c.value)))
        orders = await session.scalar(select(func.count()).select_from(od))
        revenue = await session.scalar(select(func.sum(od.c.total)))
    return {
        "per_type": per_type,
        "value": Decimal(value),
        "orders": orders,
        "revenue": Decimal(revenue),
    }
