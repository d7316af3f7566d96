"""A small storefront for model training tests: shoppers, products and behaviour from the
synthetic generator (taste groups, so a personal model has something to learn), written straight
into the domain tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from domain.catalog.models import Product
from domain.consents.models import Consent
from domain.db import Database
from domain.events.models import Event
from domain.orders.models import Order, OrderLine
from domain.settings import Settings
from domain.sql import table
from domain.users.models import Customer
from recommend.synthetic import generate

FAST = "popularity,itemknn,content"


def fast(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"recommend_algorithms": FAST, **changes})


async def seed(
    db: Database, *, users: int = 60, items: int = 40, seed: int = 1, orders: bool = True
) -> dict[str, int]:
    """Customers ``c<u>``, products ``p<i>`` and their events (every fourth a purchase); plus one
    order per shopper with their last item. Returns ``{external id: customer id}``."""
    data = generate(users=users, items=items, groups=4, per_user=(6, 14), seed=seed)
    f = data.frame
    t_max = float(f["time"].max())
    now = datetime.now(UTC) - timedelta(hours=1)
    async with db.unit_of_work() as session:
        await session.execute(
            insert(table(Product)),
            [
                {
                    "id": i + 1,
                    "external_id": f"p{i}",
                    "title": data.item_text.get(str(i), f"item {i}"),
                    "description": "",
                    "price": Decimal("9.90"),
                    "currency": "EUR",
                    "active": True,
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(items)
            ],
        )
        await session.execute(
            insert(table(Customer)),
            [
                {
                    "id": u + 1,
                    "external_id": f"c{u}",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for u in range(users)
            ],
        )
        rows = []
        last: dict[int, tuple[int, datetime]] = {}
        for n, (user, item, t) in enumerate(zip(f["user"], f["item"], f["time"], strict=True)):
            uid = int(user[1:]) + 1
            pid = int(item) + 1
            at = now - timedelta(seconds=(t_max - float(t)) / 20)  # squeeze into recent weeks
            rows.append(
                {
                    "client_event_id": f"e{n}",
                    "customer_id": uid,
                    "type": "purchase" if n % 4 == 0 else "view",
                    "product_id": pid,
                    "properties": {},
                    "source_client_id": "test",
                    "occurred_at": at,
                    "received_at": at,
                }
            )
            last[uid] = (pid, at)
        await session.execute(insert(table(Event)), rows)
        if orders:
            for uid, (pid, at) in last.items():
                await session.execute(
                    insert(table(Order)).values(
                        id=uid,
                        external_id=f"o{uid}",
                        customer_id=uid,
                        status="paid",
                        currency="EUR",
                        subtotal=Decimal("9.90"),
                        total=Decimal("9.90"),
                        source_client_id="test",
                        placed_at=at,
                        created_at=at,
                        updated_at=at,
                    )
                )
                await session.execute(
                    insert(table(OrderLine)).values(
                        order_id=uid,
                        line_no=1,
                        product_id=pid,
                        product_external_id=f"p{pid - 1}",
                        quantity=1,
                        unit_price=Decimal("9.90"),
                        total=Decimal("9.90"),
                    )
                )
    return {f"c{u}": u + 1 for u in range(users)}


async def refuse_personalization(db: Database, customer_id: int) -> None:
    async with db.unit_of_work() as session:
        await session.execute(
            insert(table(Consent)).values(
                customer_id=customer_id,
                purpose="personalization",
                granted=False,
                source="test",
                policy_version="1",
                actor_client_id="test",
                recorded_at=datetime.now(UTC),
            )
        )
