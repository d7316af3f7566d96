"""``precis import orders --format online-retail`` on the real Online Retail sample: rows per second,
against a bare bulk INSERT of the same orders, lines and purchase events in the same run.

The import runs as ``run_import`` runs it (parsing, validation through ``record_orders``, customers
and products created through their services, audit entries, returns applied as refunds) on a fresh
migrated database. The baseline then re-inserts every stored order, line and purchase event (under
new external ids) through the same engine, in the same batches of 100 orders, one unit of work each,
with no validation, lookups, customers, products, audit or refunds: the floor for writing that data.

    .venv/bin/python bench/import_orders.py                       # SQLite, all 40,000 rows
    .venv/bin/python bench/import_orders.py --database postgres
    .venv/bin/python bench/import_orders.py --quick               # 2,000 rows, for CI

Data: Daqing Chen, "Online Retail", UCI Machine Learning Repository (2015), DOI 10.24432/C5BW33,
CC BY 4.0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.data import retail_sample

DATA = retail_sample()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--file", type=Path, default=DATA)
    p.add_argument("--rows", type=int, default=0, help="Only the first N data rows (0: all).")
    p.add_argument("--quick", action="store_true", help="The first 2,000 rows (for CI).")
    args = p.parse_args(argv)
    if args.quick:
        args.rows = 2_000
    return args


def slice_file(source: Path, rows: int, workdir: Path) -> Path:
    if rows <= 0:
        return source
    target = workdir / f"online-retail-{rows}.csv"
    with source.open(encoding="utf-8") as fh, target.open("w", encoding="utf-8") as out:
        for n, line in enumerate(fh):
            if n > rows:
                break
            out.write(line)
    return target


async def run(benv: common.BenchEnv, path: Path) -> dict[str, Any]:
    from domain.db import Database
    from domain.imports.service import create_import, run_import

    db = Database(benv.settings())
    try:
        async with db.unit_of_work() as session:
            task = await create_import(session, kind="orders", path=path, fmt="online-retail")
        started = time.perf_counter()
        result = await run_import(db, task.id)
        result["wall_seconds"] = time.perf_counter() - started
        return result
    finally:
        await db.dispose()


async def bare(benv: common.BenchEnv) -> dict[str, Any]:
    """Re-insert the stored orders, lines and purchase events as plain bulk INSERTs."""
    from sqlalchemy import insert, select

    from domain.db import Database
    from domain.events.models import Event
    from domain.orders.models import Order, OrderLine
    from domain.sql import table

    db = Database(benv.settings())
    orders_t, lines_t, events_t = table(Order), table(OrderLine), table(Event)
    try:
        async with db.read_only() as session:
            orders = [dict(r._mapping) for r in await session.execute(select(orders_t))]
            lines = [dict(r._mapping) for r in await session.execute(select(lines_t))]
            events = [
                dict(r._mapping)
                for r in await session.execute(
                    select(events_t).where(events_t.c.type == "purchase")
                )
            ]
        lines_by: dict[int, list[dict[str, Any]]] = {}
        for line in lines:
            lines_by.setdefault(line["order_id"], []).append(line)
        event_by = {e["order_id"]: e for e in events}
        started = time.perf_counter()
        for start in range(0, len(orders), 100):
            chunk = orders[start : start + 100]
            async with db.unit_of_work() as session:
                rows = [
                    {k: v for k, v in o.items() if k != "id"}
                    | {"external_id": f"b-{o['external_id']}"}
                    for o in chunk
                ]
                result = await session.execute(
                    insert(orders_t).returning(orders_t.c.id, orders_t.c.external_id), rows
                )
                ids = {ext: pk for pk, ext in result.all()}
                new_lines = [
                    line | {"order_id": ids[f"b-{o['external_id']}"]}
                    for o in chunk
                    for line in lines_by.get(o["id"], [])
                ]
                new_events = [
                    {k: v for k, v in event_by[o["id"]].items() if k != "id"}
                    | {
                        "client_event_id": f"b-{event_by[o['id']]['client_event_id']}",
                        "order_id": ids[f"b-{o['external_id']}"],
                    }
                    for o in chunk
                    if o["id"] in event_by
                ]
                if new_lines:
                    await session.execute(insert(lines_t), new_lines)
                if new_events:
                    await session.execute(insert(events_t), new_events)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "orders": len(orders), "lines": len(lines)}
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.log(common.machine())
    with tempfile.TemporaryDirectory() as tmp, common.bench_env(args.database, env="dev") as benv:
        path = slice_file(args.file, args.rows, Path(tmp))
        result = asyncio.run(run(benv, path))
        baseline = asyncio.run(bare(benv))
    rows, seconds = result["rows"], result["wall_seconds"]
    print(
        common.table(
            [
                "backend",
                "rows",
                "orders",
                "import s",
                "rows/s",
                "bare INSERT s",
                "bare rows/s",
                "ratio",
            ],
            [
                [
                    args.database,
                    rows,
                    result["orders"],
                    round(seconds, 2),
                    round(rows / seconds),
                    round(baseline["seconds"], 2),
                    round(rows / baseline["seconds"]),
                    round(baseline["seconds"] / seconds, 2),
                ]
            ],
        )
    )
    print(
        f"ratio import/bare: {baseline['seconds'] / seconds:.2f} "
        f"({result['accepted']} orders stored, {result['rejected']} rejected, "
        f"returns matched {result['returns']['matched_rows']} of {result['returns']['rows']})"
    )


if __name__ == "__main__":
    main()
