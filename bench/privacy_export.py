"""Data export of one shopper with many events: time, sizes and peak memory of ``build_export``;
then the time to erase that shopper (every event anonymised in one unit of work).

Seeds one customer with ``--events`` events (with properties) and ``--orders`` orders of two lines
into a throw-away database, then builds the export as the job does. Reported: seconds, the JSON
document's size, the stored gzip size, and the peak of Python allocations during the build
(tracemalloc, measured in a second, untimed build) next to the JSON size: events are read in pages
of ``domain.privacy.export.PAGE`` rows, so the peak stays far below the document's size (the gzip
output itself is held in memory, as it is stored in one column).

    .venv/bin/python bench/privacy_export.py                       # SQLite, 100,000 events
    .venv/bin/python bench/privacy_export.py --database postgres
    .venv/bin/python bench/privacy_export.py --quick               # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--orders", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="2,000 events, 10 orders (for CI).")
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.orders = 2_000, 10
    return args


async def seed(benv: common.BenchEnv, events: int, orders: int) -> int:
    from sqlalchemy import insert

    from domain.db import Database
    from domain.events.models import Event
    from domain.keys import build_keys
    from domain.orders.models import Order, OrderLine
    from domain.sql import table
    from domain.users.models import Customer

    settings = benv.settings()
    keys = build_keys(settings)
    db = Database(settings)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        async with db.unit_of_work() as session:
            result = await session.execute(
                insert(table(Customer))
                .values(
                    external_id="export-1",
                    email_encrypted=keys.encrypt("export@example.com"),
                    attributes={},
                    created_at=t0,
                    updated_at=t0,
                )
                .returning(table(Customer).c.id)
            )
            customer_id = int(result.scalar_one())
        for start in range(0, events, 5000):
            rows = [
                {
                    "client_event_id": f"x-{i}",
                    "customer_id": customer_id,
                    "type": ("view", "add_to_cart", "search")[i % 3],
                    "properties": {"page": f"/p/{i % 977}", "referrer": "newsletter", "n": i},
                    "source_client_id": "bench",
                    "occurred_at": t0 + timedelta(seconds=i),
                    "received_at": t0 + timedelta(seconds=i),
                }
                for i in range(start, min(start + 5000, events))
            ]
            async with db.unit_of_work() as session:
                await session.execute(insert(table(Event)), rows)
        async with db.unit_of_work() as session:
            for n in range(orders):
                oid = (
                    await session.execute(
                        insert(table(Order))
                        .values(
                            external_id=f"o-{n}",
                            customer_id=customer_id,
                            currency="EUR",
                            subtotal=Decimal("40.00"),
                            total=Decimal("40.00"),
                            source_client_id="bench",
                            placed_at=t0 + timedelta(hours=n),
                            created_at=t0,
                            updated_at=t0,
                        )
                        .returning(table(Order).c.id)
                    )
                ).scalar_one()
                await session.execute(
                    insert(table(OrderLine)),
                    [
                        {
                            "order_id": oid,
                            "line_no": k,
                            "product_external_id": f"p-{k}",
                            "quantity": 1,
                            "unit_price": Decimal("20.00"),
                            "total": Decimal("20.00"),
                        }
                        for k in (1, 2)
                    ],
                )
    finally:
        await db.dispose()
    return customer_id


async def build(benv: common.BenchEnv, customer_id: int, export_id: str) -> dict[str, float]:
    from domain.db import Database
    from domain.keys import build_keys
    from domain.privacy.export import build_export
    from domain.privacy.models import DataExport

    settings = benv.settings()
    db = Database(settings)
    try:
        async with db.unit_of_work() as session:
            session.add(
                DataExport(id=export_id, customer_id=customer_id, requested_by_client_id="bench")
            )
        started = time.perf_counter()
        status = await build_export(db, build_keys(settings), export_id, ttl_days=1)
        seconds = time.perf_counter() - started
        assert status == "ready", status
        async with db.read_only() as session:
            row = await session.get(DataExport, export_id)
        assert row is not None and row.content_gzip is not None and row.size_bytes is not None
        return {
            "seconds": seconds,
            "json": row.size_bytes,
            "gzip": len(row.content_gzip),
        }
    finally:
        await db.dispose()


async def measure(benv: common.BenchEnv, args: argparse.Namespace) -> tuple[dict[str, float], int]:
    common.log(f"seeding {args.events} events and {args.orders} orders ...")
    customer_id = await seed(benv, args.events, args.orders)
    timed = await build(benv, customer_id, "timed")
    tracemalloc.start()
    await build(benv, customer_id, "traced")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    timed["erase"] = await erase(benv, customer_id)
    return timed, peak


async def erase(benv: common.BenchEnv, customer_id: int) -> float:
    """Seconds for ``eraseUser``'s unit of work on the same shopper (all events anonymised)."""
    from domain.audit.service import SYSTEM
    from domain.db import Database
    from domain.privacy.erase import erase_user

    db = Database(benv.settings())
    try:
        started = time.perf_counter()
        async with db.unit_of_work() as session:
            done = await erase_user(session, SYSTEM, customer_id, due_days=30)
        seconds = time.perf_counter() - started
        assert done.events > 0
        return seconds
    finally:
        await db.dispose()


def main(args: argparse.Namespace) -> None:
    with common.bench_env(args.database) as benv:
        timed, peak = asyncio.run(measure(benv, args))
    mb = 1024 * 1024
    print(common.machine())
    print(
        common.table(
            [
                "backend",
                "events",
                "orders",
                "export s",
                "JSON MB",
                "gzip MB",
                "peak alloc MB",
                "erase s",
            ],
            [
                [
                    args.database,
                    args.events,
                    args.orders,
                    round(timed["seconds"], 2),
                    round(timed["json"] / mb, 1),
                    round(timed["gzip"] / mb, 1),
                    round(peak / mb, 1),
                    round(timed["erase"], 2),
                ]
            ],
        )
    )


if __name__ == "__main__":
    main(parse_args())
