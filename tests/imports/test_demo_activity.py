"""Demo activity: consents, events and orders through the real services, then profiles; loading it
twice stores nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from domain.db import Database
from domain.demo import load_demo
from domain.demo_activity import demo_activity, load_activity
from domain.keys import build_keys
from domain.settings import Settings
from tests.conftest import count_rows


def test_activity_is_deterministic_and_valid() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    products = [(f"p-{n}", Decimal("9.90")) for n in range(20)]
    first = demo_activity(["a", "b", "c"], products, seed=1, now=now)
    assert first == demo_activity(["a", "b", "c"], products, seed=1, now=now)
    consents, events, orders = first
    assert [ext for ext, _ in consents] == ["a", "b", "c"]
    assert all(len(items) == 7 for _, items in consents)
    assert all(e["occurred_at"] <= now for e in events)
    for order in orders:
        line_sum = sum(line["quantity"] * line["unit_price"] for line in order["lines"])
        assert order["subtotal"] == line_sum
        assert order["total"] == order["subtotal"] + order["shipping_total"]


async def test_load_activity_through_the_services(db: Database, settings: Settings) -> None:
    await load_demo(db, build_keys(settings), users=60, products=20, seed=4)
    reports: list[tuple[str, int, int]] = []
    result = await load_activity(db, settings, seed=4, progress=lambda *r: reports.append(r))

    assert result["consents"] == 60
    assert result["events"] == await count_rows(db, "event") - result["orders"] > 0
    assert result["orders"] == await count_rows(db, "orders") > 0
    assert await count_rows(db, "consent") == 60 * 7
    assert await count_rows(db, "customer_profile") == 60
    assert {kind for kind, *_ in reports} == {"consents", "events", "orders", "profiles"}

    again = await load_activity(db, settings, seed=4)
    assert (again["events"], again["orders"]) == (0, 0)  # idempotent on ids
    assert await count_rows(db, "orders") == result["orders"]
