"""Full profile recompute on a generated store: customers, events, orders and their lines.

The data is generated inside the database with one INSERT ... SELECT per table over a number
series (PostgreSQL ``generate_series``, SQLite a recursive CTE), not through the API, then VACUUM
ANALYZE (PostgreSQL) or ANALYZE (SQLite). Values come from hashes of the row number, so every run
builds the same store: up to 60 % of customers buy, skewed (a few often, most once; 3 orders per
buyer on average, 2 lines per order, 3 % cancelled, 5 % partly refunded) over two years; events
spread over the last year, 10 % anonymous, 60 % views.

Timed: ``domain.profiles.service.recompute`` over every customer, with the CLV model fit (its
time is reported separately from the SQL and the writes).

    .venv/bin/python bench/profile_recompute.py --database postgres        # 100k / 2M (default)
    .venv/bin/python bench/profile_recompute.py --database sqlite --customers 10000 --events 200000
    .venv/bin/python bench/profile_recompute.py --quick                   # tiny, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench import common

NOW = "2026-06-01 00:00:00"
# Row numbers are hashed modulo a prime larger than any row count: no short periods.
PRIME = 1_000_003
ZONES = ("Europe/Vienna", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
TYPES = (  # (type, share in percent)
    ("view", 60),
    ("search", 10),
    ("add_to_cart", 12),
    ("remove_from_cart", 3),
    ("favorite", 5),
    ("purchase", 4),
    ("review", 2),
    ("share", 2),
    ("message_open", 2),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--customers", type=int, help="customers (default 100000; 500 with --quick)")
    p.add_argument("--events", type=int, help="events (default 2000000; 5000 with --quick)")
    p.add_argument("--products", type=int, default=5000, help="products (default 5000)")
    p.add_argument("--quick", action="store_true", help="tiny run for CI")
    p.add_argument("--no-clv", action="store_true", help="skip the predictive CLV fit")
    p.add_argument("--chunk-size", type=int, default=5000, help="customers per chunk")
    args = p.parse_args(argv)
    args.customers = args.customers or (500 if args.quick else 100_000)
    args.events = args.events or (5000 if args.quick else 2_000_000)
    if args.quick:
        args.products = min(args.products, 200)
    return args


def q(value: str) -> str:
    return f"'{value}'"


def h(expr: str, mult: int, mod: int) -> str:
    """A deterministic pseudo-random integer in [0, mod) from a row number (portable SQL)."""
    return f"((CAST({expr} AS BIGINT) * {mult}) % {mod})"


class Dialect:
    def __init__(self, name: str) -> None:
        self.pg = name == "postgres"

    def series(self, n: int) -> str:
        if self.pg:
            return f"generate_series(1, {n}) AS s(n)"
        return (
            f"(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {n}) "
            "SELECT n FROM r) AS s"
        )

    def ago(self, seconds: str) -> str:
        if self.pg:
            return f"(TIMESTAMPTZ '{NOW}+00' - ({seconds}) * INTERVAL '1 second')"
        return f"datetime('{NOW}', '-' || ({seconds}) || ' seconds')"

    def now(self) -> str:
        return f"TIMESTAMPTZ '{NOW}+00'" if self.pg else f"'{NOW}'"

    def money(self, expr: str) -> str:
        return f"CAST({expr} AS NUMERIC(14, 2))" if self.pg else f"ROUND({expr}, 2)"

    def concat(self, *parts: str) -> str:
        return " || ".join(parts) if not self.pg else "CONCAT(" + ", ".join(parts) + ")"


def statements(d: Dialect, customers: int, events: int, products: int) -> list[tuple[str, str]]:
    buyers = customers * 6 // 10
    orders = buyers * 3
    lines = orders * 2
    day = 86400
    zone = (
        "CASE "
        + " ".join(f"WHEN {h('n', 40503, 6)} = {i} THEN '{z}'" for i, z in enumerate(ZONES))
        + " ELSE NULL END"
    )
    kind, acc = [], 0
    for t, share in TYPES:
        acc += share
        kind.append(f"WHEN {h('n', 69069, 100)} < {acc} THEN '{t}'")
    kinds = "CASE " + " ".join(kind) + " ELSE 'view' END"
    status = (
        f"CASE WHEN {h('n', 7919, 100)} < 3 THEN 'cancelled' "
        f"WHEN {h('n', 7919, 100)} < 8 THEN 'partially_refunded' ELSE 'paid' END"
    )
    total = d.money(f"10 + {h('n', 104729, 20000)} / 100.0")
    # Skewed: low customer ids buy often, high ones once or never (x uniform, x * x / n is not).
    x = f"({h('n', 2654435761, PRIME)} * {buyers} / {PRIME})"
    return [
        (
            "categories",
            "INSERT INTO category (name, path, depth) "
            f"SELECT {d.concat(q('Category '), 'n')}, {d.concat(q('Category '), 'n')}, 0 "
            f"FROM {d.series(50)}",
        ),
        (
            f"{products} products",
            "INSERT INTO product (external_id, title, description, category_id, brand, price, "
            "currency, active, attributes, created_at, updated_at) "
            f"SELECT {d.concat(q('p'), 'n')}, {d.concat(q('Product '), 'n')}, '', "
            f"1 + {h('n', 31, 50)}, {d.concat(q('Brand '), h('n', 17, 100))}, "
            f"{d.money('5 + n % 200')}, 'EUR', TRUE, '{{}}', {d.now()}, {d.now()} "
            f"FROM {d.series(products)}",
        ),
        (
            f"{customers} customers",
            "INSERT INTO customer (external_id, timezone, attributes, created_at, updated_at) "
            f"SELECT {d.concat(q('c'), 'n')}, {zone}, '{{}}', {d.now()}, {d.now()} "
            f"FROM {d.series(customers)}",
        ),
        (
            f"{orders} orders",
            "INSERT INTO orders (external_id, customer_id, status, currency, subtotal, "
            "discount_total, shipping_total, tax_total, total, refunded_total, source_client_id, "
            "placed_at, cancelled_at, created_at, updated_at) "
            f"SELECT {d.concat(q('o'), 'n')}, 1 + {x} * {x} / {buyers}, {status}, 'EUR', "
            f"{total}, 0, 0, 0, {total}, "
            f"CASE WHEN {h('n', 7919, 100)} BETWEEN 3 AND 7 THEN {d.money('5')} ELSE 0 END, "
            f"'bench', {d.ago(h('CAST(n AS BIGINT) * n', 48271, 730 * day))}, "
            f"CASE WHEN {h('n', 7919, 100)} < 3 THEN {d.now()} END, {d.now()}, {d.now()} "
            f"FROM {d.series(orders)}",
        ),
        (
            f"{lines} order lines",
            "INSERT INTO order_line (order_id, line_no, product_id, product_external_id, "
            "quantity, unit_price, total, refunded_quantity) "
            f"SELECT (n + 1) / 2, 2 - n % 2, 1 + {h('n', 16807, products)}, "
            f"{d.concat(q('p'), '1 + ' + h('n', 16807, products))}, 1, {d.money('5')}, "
            f"{d.money('5')}, 0 FROM {d.series(lines)}",
        ),
        (
            f"{events} events",
            "INSERT INTO event (client_event_id, customer_id, anonymous_id, type, product_id, "
            "properties, source_client_id, occurred_at, received_at) "
            f"SELECT {d.concat(q('e'), 'n')}, "
            f"CASE WHEN {h('n', 97, 10)} = 0 THEN NULL ELSE 1 + {h('n', 2246822519, PRIME)} * {customers} / {PRIME} END, "
            f"CASE WHEN {h('n', 97, 10)} = 0 THEN {d.concat(q('anon'), 'n % 1000')} END, "
            f"{kinds}, CASE WHEN {h('n', 69069, 100)} BETWEEN 60 AND 69 THEN NULL "
            f"ELSE 1 + {h('n', 3266489917, products)} END, '{{}}', 'bench', "
            f"{d.ago(h('n', 1103515245, 365 * day))}, {d.now()} FROM {d.series(events)}",
        ),
    ]


async def seed(url: str, database: str, args: argparse.Namespace) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    d = Dialect(database)
    engine = create_async_engine(url)
    try:
        for label, sql in statements(d, args.customers, args.events, args.products):
            started = time.perf_counter()
            async with engine.begin() as conn:
                await conn.execute(text(sql))
            common.log(f"seeded {label} in {time.perf_counter() - started:.1f} s")
    finally:
        await engine.dispose()


async def vacuum(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()


async def run(benv: common.BenchEnv, args: argparse.Namespace) -> dict[str, Any]:
    from domain.db import Database
    from domain.profiles import clv as clv_module
    from domain.profiles import service

    settings = benv.settings().model_copy(
        update={
            "profile_clv_model": "off" if args.no_clv else "bgnbd",
            "profile_chunk_size": args.chunk_size,
            "statement_timeout_ms": 600_000,
        }
    )
    fit_seconds = 0.0
    fit = clv_module.fit_and_predict

    def timed_fit(*a: Any, **k: Any) -> Any:
        nonlocal fit_seconds
        started = time.perf_counter()
        try:
            return fit(*a, **k)
        finally:
            fit_seconds = time.perf_counter() - started

    clv_module.fit_and_predict = timed_fit  # type: ignore[assignment]
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 5 or done == total:
            last[0] = time.perf_counter()
            common.log(f"  {done}/{total} customers")

    db = Database(settings)
    try:
        started = time.perf_counter()
        result = await service.recompute(db, settings, progress=progress)
        seconds = time.perf_counter() - started
    finally:
        await db.dispose()
        clv_module.fit_and_predict = fit  # type: ignore[assignment]
    return {"seconds": seconds, "fit_seconds": fit_seconds, "result": result}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with common.bench_env(args.database) as benv:
        started = time.perf_counter()
        asyncio.run(seed(benv.database_url, args.database, args))
        if args.database == "postgres":
            # VACUUM too: a bulk load leaves every row's hint bits unset, and the first reader
            # of each page would pay for setting them (a live database's autovacuum has).
            asyncio.run(vacuum(benv.database_url))
        else:
            import sqlite3

            with sqlite3.connect(benv.database_url.split("///", 1)[1]) as conn:
                conn.execute("ANALYZE")
        common.log(f"seeded and analysed in {time.perf_counter() - started:.1f} s")
        out = asyncio.run(run(benv, args))
    r = out["result"]
    seconds = out["seconds"]
    sql_seconds = seconds - out["fit_seconds"]
    print(f"database: {args.database}")
    print(f"customers: {r.customers}, buyers: {r.buyers}, events: {args.events}")
    print(f"stages: {dict(sorted(r.stages.items()))}")
    print(f"clv: {r.clv.get('model')} params={r.clv.get('params')} skipped={r.clv.get('skipped')}")
    print(f"recompute seconds ({args.database}): {seconds:.2f}")
    print(f"clv fit seconds ({args.database}): {out['fit_seconds']:.2f}")
    print(f"sql and writes seconds ({args.database}): {sql_seconds:.2f}")
    print(f"customers per second ({args.database}): {r.customers / seconds:,.0f}")
    print(f"events per second ({args.database}): {args.events / seconds:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
