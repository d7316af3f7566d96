"""Demo shopper activity: consents, behaviour events and orders for the demo storefront, then one
profile recompute, so that `make run` shows profiles, consents, events and orders in GraphiQL.

Deterministic for a seed (times are relative to the load). Everything goes through the same services
as the API (consents, trackEvents, recordOrders, the profile recompute), as the system actor.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from domain.audit.service import SYSTEM
from domain.catalog.models import Product
from domain.consents.models import PURPOSES
from domain.db import Database
from domain.settings import Settings
from domain.sql import table
from domain.users.models import Customer

Progress = Callable[[str, int, int], None]
EVENT_BATCH = 500
ORDER_BATCH = 100
# Share of shoppers granting each purpose.
CONSENT_SHARE = {
    "personalization": 0.85,
    "analytics": 0.9,
    "email": 0.6,
    "push": 0.4,
    "sms": 0.15,
    "inapp": 0.7,
    "third_party": 0.1,
}
SEARCHES = ("linen shirt", "running shoes", "tea", "gift", "sale", "lamp", "backpack", "socks")


def _zipf_pick(rng: random.Random, items: list[Any]) -> Any:
    """Popular items first: index ~ a long-tailed distribution, as in real catalogs."""
    return items[min(int(rng.paretovariate(1.2)) - 1, len(items) - 1)]


def demo_activity(
    customers: list[str], products: list[tuple[str, Decimal]], seed: int, now: datetime
) -> tuple[list[tuple[str, list[dict[str, Any]]]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(consents per customer, events, orders) for the given customer and product external ids."""
    rng = random.Random(f"activity:{seed}")
    shuffled = products[:]
    rng.shuffle(shuffled)
    consents: list[tuple[str, list[dict[str, Any]]]] = []
    events: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    for n, ext in enumerate(customers):
        consents.append(
            (
                ext,
                [
                    {
                        "purpose": p,
                        "granted": rng.random() < CONSENT_SHARE[p],
                        "source": "demo",
                        "policy_version": "2026-01",
                    }
                    for p in PURPOSES
                ],
            )
        )
        # Behaviour over the last 90 days, in sessions.
        for s in range(int(rng.expovariate(1 / 3))):
            start = now - timedelta(days=rng.uniform(0, 90), hours=rng.uniform(0, 24))
            at = start
            for k in range(rng.randint(1, 8)):
                at += timedelta(seconds=rng.randint(5, 300))
                product, _price = _zipf_pick(rng, shuffled)
                roll = rng.random()
                event: dict[str, Any] = {
                    "client_event_id": f"demo-e-{n}-{s}-{k}",
                    "user_external_id": ext,
                    "occurred_at": at,
                    "channel": rng.choice(("web", "app")),
                }
                if roll < 0.7:
                    event.update(type="view", product_external_id=product)
                elif roll < 0.82:
                    event.update(type="add_to_cart", product_external_id=product)
                elif roll < 0.92:
                    event.update(type="search", query=rng.choice(SEARCHES))
                elif roll < 0.97:
                    event.update(type="favorite", product_external_id=product)
                else:
                    event.update(
                        type="review", product_external_id=product, rating=rng.randint(2, 5)
                    )
                events.append(event)
        # Orders over the last two years; some shoppers never buy.
        if rng.random() < 0.55:
            count = 1 + int(rng.expovariate(1 / 1.5))
            for o in range(count):
                lines: list[dict[str, Any]] = []
                for _ in range(rng.randint(1, 3)):
                    product, price = _zipf_pick(rng, shuffled)
                    if any(line["product_external_id"] == product for line in lines):
                        continue
                    lines.append(
                        {
                            "product_external_id": product,
                            "quantity": rng.randint(1, 2),
                            "unit_price": price,
                        }
                    )
                subtotal = sum(
                    (line["quantity"] * line["unit_price"] for line in lines), Decimal(0)
                )
                shipping = Decimal("0.00") if subtotal >= 50 else Decimal("4.90")
                orders.append(
                    {
                        "external_id": f"demo-o-{n}-{o}",
                        "user_external_id": ext,
                        "currency": "EUR",
                        "lines": lines,
                        "subtotal": subtotal,
                        "shipping_total": shipping,
                        "total": subtotal + shipping,
                        "placed_at": now - timedelta(days=rng.uniform(0, 720)),
                        "status": "fulfilled",
                    }
                )
    events.sort(key=lambda e: e["occurred_at"])
    orders.sort(key=lambda o: o["placed_at"])
    return consents, events, orders


async def load_activity(
    db: Database, settings: Settings, *, seed: int, progress: Progress | None = None
) -> dict[str, int]:
    """Consents, events and orders for every customer and active product, then profiles."""
    from domain.consents.service import set_consents
    from domain.events.service import track_events
    from domain.orders.service import record_orders
    from domain.profiles.service import recompute

    now = datetime.now(UTC).replace(microsecond=0)
    customers, catalog = table(Customer), table(Product)
    async with db.read_only() as session:
        found = await session.execute(
            select(customers.c.external_id, customers.c.id).order_by(customers.c.id)
        )
        ids: dict[str, int] = {ext: pk for ext, pk in found.all()}
        active = await session.execute(
            select(catalog.c.external_id, catalog.c.price)
            .where(catalog.c.active, catalog.c.archived_at.is_(None))
            .order_by(catalog.c.id)
        )
        products: list[tuple[str, Decimal]] = [(ext, price) for ext, price in active.all()]
    if not ids or not products:
        return {"consents": 0, "events": 0, "orders": 0}
    consents, events, orders = demo_activity(list(ids), products, seed, now)

    done = 0
    for start in range(0, len(consents), 200):
        async with db.unit_of_work() as session:
            for ext, items in consents[start : start + 200]:
                await set_consents(session, SYSTEM, ids[ext], items)
        done = min(start + 200, len(consents))
        if progress is not None:
            progress("consents", done, len(consents))

    stored = 0
    for start in range(0, len(events), EVENT_BATCH):
        async with db.unit_of_work() as session:
            result = await track_events(
                session, SYSTEM, events[start : start + EVENT_BATCH], settings
            )
        stored += result.accepted
        if progress is not None:
            progress("events", min(start + EVENT_BATCH, len(events)), len(events))

    recorded = 0
    for start in range(0, len(orders), ORDER_BATCH):
        async with db.unit_of_work() as session:
            outcome = await record_orders(
                session, SYSTEM, orders[start : start + ORDER_BATCH], settings
            )
        recorded += outcome.created
        if progress is not None:
            progress("orders", min(start + ORDER_BATCH, len(orders)), len(orders))

    def profile_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("profiles", done, total)

    await recompute(db, settings, now=now, progress=profile_progress)
    return {"consents": len(consents), "events": stored, "orders": recorded}
