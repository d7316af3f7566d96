"""Reading interactions for training (issue 6): the column-wise read against the row-wise one.

A store is generated inside the database, one ``INSERT ... SELECT`` per table over a number series
(PostgreSQL ``generate_series``, SQLite a recursive CTE; every value a hash of the row number, as
``bench/segments.py`` builds its store): customers, products (popularity skewed), behaviour events
(80 % of the interactions: views 70 %, add to cart 10 %, favourites 6 %, purchases 6 %, reviews
3 % with a rating, searches 5 % which do not count; 2 % anonymous; spread over 400 days, so some
are older than the 395-day maximum age; half the purchases name an order), orders with four
lines each (the other 20 %; 3 % cancelled, 2 % of the lines fully refunded) and personalization
consents (3 % of the shoppers refused it, a third of them granted it again later). Default scale:
100,000 shoppers, 20,000 products, 5,000,000 interactions (events + order lines).

The PostgreSQL store lives in its own database ``precis_bench_recommend_read`` (``--db-name``),
created if absent and migrated; ``--reuse`` keeps it after the run and uses it again when the sizes
match. ``--quick`` builds a tiny throw-away store (SQLite by default) for CI.

Then, in the same process, alternating (``--repeat`` times each):

* baseline: the read as it was before (kept below as ``old_interaction_rows`` and
  ``old_from_events``): the consent set read first and applied per row in Python, one dict per
  event or order line with a ``datetime``, then a Python loop computing each weight;
* new: ``domain.recommend.service.read_interactions``: the consent rule in SQL, a tight select
  streamed through a server-side cursor in chunks that become numpy arrays at once, weights and
  decay vectorised in ``recommend.data.from_columns``.

Reported per path: seconds (median), rows per second, the peak resident set during the read
(VmHWM, reset before each run through /proc/self/clear_refs) and its rise over the resident set
before the run; the ratios old / new. The two frames are compared: users, items, times, ratings
and baskets must be equal and weights equal to 1e-12 relative (the old loop took ``0.5 ** x``
from libm, the new path numpy's power: they may differ in the last bit).

    .venv/bin/python bench/recommend_read.py --reuse               # 5M interactions, PostgreSQL
    .venv/bin/python bench/recommend_read.py --quick               # tiny, SQLite (CI)
    .venv/bin/python bench/recommend_read.py --quick --database postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench import common
from bench.segments import (
    DAY,
    Dialect,
    _admin,
    _db_comment,
    _pg_bulk_indexes,
    _set_comment,
    migrate,
    pct,
    u,
    vacuum_analyze,
)

console = Console(stderr=True)
FULL = {"users": 100_000, "products": 20_000, "interactions": 5_000_000}
QUICK = {"users": 300, "products": 120, "interactions": 6_000}
GENERATOR_VERSION = 1
DB_NAME = "precis_bench_recommend_read"
PRIME = 2_147_483_647


def log(message: str) -> None:
    console.log(message)


# --- memory --------------------------------------------------------------------------------------


def _status(key: str) -> int:
    """A VmXXX line of /proc/self/status in bytes (0 where there is no /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


# --- the baseline: the read as it was before (domain/recommend/service.py, recommend/data.py) ----


async def old_refused_personalization(session: AsyncSession, settings: Any) -> set[int] | None:
    from domain.consents.models import Consent
    from domain.sql import table

    t = table(Consent)
    newest = (
        select(func.max(t.c.id)).where(t.c.purpose == "personalization").group_by(t.c.customer_id)
    )
    rows = await session.execute(select(t.c.customer_id, t.c.granted).where(t.c.id.in_(newest)))
    latest = {int(c): bool(g) for c, g in rows}
    if settings.analytics_consent_default:
        return {c for c, g in latest.items() if not g}
    return {c for c, g in latest.items() if g}


async def old_interaction_rows(
    session: AsyncSession, settings: Any, progress: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    from domain.events.models import Event
    from domain.orders.models import Order, OrderLine
    from domain.recommend.service import EVENT_KINDS
    from domain.sql import table

    listed = await old_refused_personalization(session, settings)
    opt_in = not settings.analytics_consent_default

    def allowed(customer: int) -> bool:
        return (customer in listed) if opt_in else (customer not in listed)  # type: ignore[operator]

    e = table(Event)
    out: list[dict[str, Any]] = []
    seen = 0
    result = await session.stream(
        select(
            e.c.customer_id,
            e.c.product_id,
            e.c.type,
            e.c.occurred_at,
            e.c.order_id,
            e.c.properties,
        ).where(
            e.c.customer_id.is_not(None),
            e.c.product_id.is_not(None),
            e.c.type.in_(EVENT_KINDS),
        )
    )
    async for customer, product, kind, at, order_id, props in result:
        seen += 1
        if progress is not None and seen % 250_000 == 0:
            progress(seen)
        if not allowed(customer):
            continue
        rating = None
        if kind == "review":
            raw = (props or {}).get("rating")
            if not isinstance(raw, int) or isinstance(raw, bool):
                continue
            rating = raw
        out.append(
            {
                "user": customer,
                "item": product,
                "type": kind,
                "occurred_at": at,
                "rating": rating,
                "basket": f"o{order_id}" if order_id else None,
            }
        )
    o, line = table(Order), table(OrderLine)
    lines = await session.stream(
        select(o.c.customer_id, line.c.product_id, o.c.placed_at, o.c.id)
        .select_from(line.join(o, o.c.id == line.c.order_id))
        .where(
            o.c.customer_id.is_not(None),
            line.c.product_id.is_not(None),
            o.c.status != "cancelled",
            line.c.quantity > line.c.refunded_quantity,
        )
    )
    async for customer, product, at, order_id in lines:
        seen += 1
        if progress is not None and seen % 250_000 == 0:
            progress(seen)
        if not allowed(customer):
            continue
        out.append(
            {
                "user": customer,
                "item": product,
                "type": "purchase",
                "occurred_at": at,
                "rating": None,
                "basket": f"o{order_id}",
            }
        )
    return out


def old_event_weight(kind: str, *, age_days: float, rating: float | None, s: Any) -> float | None:
    if age_days > s.max_age_days:
        return None
    if rating is not None:
        return float(rating)
    w = s.kind_weight(kind)
    if w is None:
        return None
    decay = 1.0 if s.half_life_days <= 0 else 0.5 ** (max(age_days, 0.0) / s.half_life_days)
    return float(w * decay)


def old_from_events(rows: Iterable[Mapping[str, object]], *, now: datetime, settings: Any) -> Any:
    from recommend.data import make_interactions

    s = settings
    users: list[str] = []
    items: list[str] = []
    times: list[float] = []
    weights: list[float] = []
    ratings: list[float] = []
    baskets: list[str] = []
    for r in rows:
        at = r["occurred_at"]
        assert isinstance(at, datetime)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        age = (now - at).total_seconds() / 86400
        rating = r.get("rating")
        w = old_event_weight(
            str(r["type"]),
            age_days=age,
            rating=float(rating) if isinstance(rating, int | float) else None,
            s=s,
        )
        if w is None or r.get("item") is None or r.get("user") is None:
            continue
        users.append(str(r["user"]))
        items.append(str(r["item"]))
        times.append(at.timestamp())
        weights.append(w)
        ratings.append(float(rating) if isinstance(rating, int | float) else np.nan)
        baskets.append(str(r.get("basket") or f"{r['user']}@{int(at.timestamp() // 86400)}"))
    return make_interactions(
        users,
        items,
        times,
        weights,
        ratings if any(not math.isnan(x) for x in ratings) else None,
        baskets,
        source="events",
    )


# --- the store -----------------------------------------------------------------------------------


@dataclass
class Sizes:
    users: int
    products: int
    interactions: int

    @property
    def events(self) -> int:
        return self.interactions - 4 * self.orders

    @property
    def orders(self) -> int:
        return max(1, self.interactions // 20)  # four lines each: 20 % of the interactions


def _ifloor(d: Dialect, expr: str) -> str:
    return f"CAST(floor({expr}) AS BIGINT)" if d.pg else f"CAST({expr} AS INTEGER)"


def _skewed(d: Dialect, n: str, salt: str, count: int) -> str:
    """1..count, skewed towards small ids (the cube of a uniform number)."""
    x = f"({u(n, salt)} / {float(PRIME)})"
    return f"(1 + {_ifloor(d, f'{count} * {x} * {x} * {x}')})"


def plan(d: Dialect, s: Sizes, chunk: int) -> list[tuple[str, str, int]]:
    """(label, SQL, rows) statements filling an empty, migrated store."""
    empty = "CAST('{}' AS JSONB)" if d.pg else "'{}'"
    true = "TRUE" if d.pg else "1"
    steps: list[tuple[str, str, int]] = []

    def chunks(label: str, total: int, sql: Callable[[int, int], str]) -> None:
        for first in range(1, total + 1, chunk):
            last = min(total, first + chunk - 1)
            steps.append((label, sql(first, last), last - first + 1))

    chunks(
        "customers",
        s.users,
        lambda a, b: (
            "INSERT INTO customer (id, external_id, attributes, created_at, updated_at) "
            f"SELECT n, 'c' || n, {empty}, {d.now()}, {d.now()} FROM {d.series(a, b)}"
        ),
    )
    chunks(
        "products",
        s.products,
        lambda a, b: (
            "INSERT INTO product (id, external_id, title, description, price, currency, active, "
            "attributes, created_at, updated_at) "
            f"SELECT n, 'p' || n, 'Product ' || n, '', 9.90, 'EUR', {true}, {empty}, {d.now()}, "
            f"{d.now()} FROM {d.series(a, b)}"
        ),
    )
    kind = (
        f"CASE WHEN {pct('n', 'type')} < 70 THEN 'view' WHEN {pct('n', 'type')} < 80 "
        f"THEN 'add_to_cart' WHEN {pct('n', 'type')} < 86 THEN 'favorite' "
        f"WHEN {pct('n', 'type')} < 92 THEN 'purchase' WHEN {pct('n', 'type')} < 95 "
        "THEN 'review' ELSE 'search' END"
    )
    review = f"{pct('n', 'type')} >= 92 AND {pct('n', 'type')} < 95"
    purchase = f"{pct('n', 'type')} >= 86 AND {pct('n', 'type')} < 92"
    rating = d.obj(("rating", f"1 + {u('n', 'rp')} % 5"))
    when = d.ago(f"{u('n', 'when')} % {400 * DAY}")
    placed = d.ago(f"{u('n', 'placed')} % {400 * DAY}")
    chunks(
        "events",
        s.events,
        lambda a, b: (
            "INSERT INTO event (client_event_id, customer_id, type, product_id, properties, "
            "order_id, source_client_id, occurred_at, received_at) "
            f"SELECT 'e' || n, CASE WHEN {pct('n', 'anon')} < 2 THEN NULL "
            f"ELSE 1 + {u('n', 'who')} % {s.users} END, {kind}, "
            f"CASE WHEN {pct('n', 'type')} >= 95 THEN NULL "
            f"ELSE {_skewed(d, 'n', 'prod', s.products)} END, "
            f"CASE WHEN {review} THEN {rating} ELSE {empty} END, "
            f"CASE WHEN {purchase} AND {pct('n', 'pick')} < 50 "
            f"THEN 1 + {u('n', 'pick2')} % {s.orders} ELSE NULL END, "
            f"'bench', {when}, {when} FROM {d.series(a, b)}"
        ),
    )
    chunks(
        "orders",
        s.orders,
        lambda a, b: (
            "INSERT INTO orders (id, external_id, customer_id, status, currency, subtotal, "
            "discount_total, shipping_total, tax_total, total, refunded_total, source_client_id, "
            "placed_at, created_at, updated_at) "
            f"SELECT n, 'o' || n, 1 + {u('n', 'buyer')} % {s.users}, "
            f"CASE WHEN {pct('n', 'status')} < 3 THEN 'cancelled' ELSE 'paid' END, 'EUR', "
            "39.60, 0, 0, 0, 39.60, 0, 'bench', "
            f"{placed}, {d.now()}, {d.now()} "
            f"FROM {d.series(a, b)}"
        ),
    )
    chunks(
        "order lines",
        4 * s.orders,
        lambda a, b: (
            "INSERT INTO order_line (order_id, line_no, product_id, product_external_id, "
            "quantity, unit_price, total, refunded_quantity) "
            f"SELECT 1 + (n - 1) / 4, 1 + (n - 1) % 4, {_skewed(d, 'n', 'p1', s.products)}, "
            f"'p', 1 + n % 3, 9.90, 9.90, "
            f"CASE WHEN {pct('n', 'price2')} < 2 THEN 1 + n % 3 ELSE 0 END FROM {d.series(a, b)}"
        ),
    )
    consent = (
        "INSERT INTO consent (customer_id, purpose, granted, source, policy_version, "
        "actor_client_id, recorded_at) "
    )
    f, t = ("FALSE", "TRUE") if d.pg else ("0", "1")
    steps.append(
        (
            "consents",
            consent + f"SELECT n, 'personalization', {f}, 'bench', 'v1', 'bench', "
            f"{d.ago('86400 * 30')} FROM {d.series(1, s.users)} WHERE {pct('n', 'push')} < 3",
            s.users * 3 // 100,
        )
    )
    steps.append(
        (
            "consents",
            consent + f"SELECT n, 'personalization', {t}, 'bench', 'v1', 'bench', "
            f"{d.ago('86400')} FROM {d.series(1, s.users)} WHERE {pct('n', 'push')} < 1",
            s.users // 100,
        )
    )
    return steps


async def generate(url: str, database: str, sizes: Sizes, now: datetime) -> dict[str, int]:
    """Fill the migrated, empty database at ``url``; returns rows per table."""
    d = Dialect(database, now)
    steps = plan(d, sizes, 1_000_000 if d.pg else 50_000)
    engine = create_async_engine(url)
    done: dict[str, int] = {}
    try:
        indexes: list[tuple[str, str]] = []
        if d.pg:
            indexes = await _pg_bulk_indexes(engine)
            async with engine.begin() as conn:
                for name, _ in indexes:
                    await conn.execute(text(f'DROP INDEX "{name}"'))
        totals: dict[str, int] = {}
        for label, _sql, rows in steps:
            totals[label] = totals.get(label, 0) + rows
        with Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            tasks = {label: progress.add_task(label, total=n) for label, n in totals.items()}
            for label, sql, rows in steps:
                async with engine.begin() as conn:
                    if d.pg:
                        await conn.execute(text("SET LOCAL session_replication_role = replica"))
                        await conn.execute(text("SET LOCAL synchronous_commit = off"))
                    result = await conn.execute(text(sql))
                done[label] = done.get(label, 0) + max(0, result.rowcount or 0)
                progress.update(tasks[label], advance=rows)
            if d.pg:
                task = progress.add_task("indexes", total=len(indexes))
                async with engine.connect() as conn:
                    await conn.execute(text("SET maintenance_work_mem = '512MB'"))
                    for _name, ddl in indexes:
                        await conn.execute(text(ddl))
                        await conn.commit()
                        progress.advance(task)
        if d.pg:
            async with engine.begin() as conn:
                for t in ("product", "customer", "orders"):
                    await conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT MAX(id) FROM {t}))"
                        )
                    )
    finally:
        await engine.dispose()
    await vacuum_analyze(url, database)
    return done


@contextlib.contextmanager
def store(args: argparse.Namespace, sizes: Sizes) -> Iterator[str]:
    """The database URL of a filled store (see the module docstring)."""
    if args.quick and not args.reuse:
        with common.bench_env(args.database, env="dev") as benv:
            started = time.perf_counter()
            rows = asyncio.run(generate(benv.database_url, args.database, sizes, _now()))
            log(f"built in {time.perf_counter() - started:.1f} s: {rows}")
            yield benv.database_url
        return
    name = args.db_name
    url = common._with_db(common.PG_ADMIN_URL, name)
    wanted = {"generator": GENERATOR_VERSION, **sizes.__dict__}
    meta = asyncio.run(_db_comment(name))
    if args.reuse and meta and all(meta.get(k) == v for k, v in wanted.items()):
        log(f"reusing {name} built {meta.get('built_at')} in {meta.get('built_seconds')} s")
        migrate(url)
    else:
        if meta is not None:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        started = time.perf_counter()
        migrate(url)
        now = _now()
        rows = asyncio.run(generate(url, "postgres", sizes, now))
        seconds = time.perf_counter() - started
        log(f"built {name} in {seconds:.1f} s: {rows}")
        asyncio.run(
            _set_comment(
                name,
                {**wanted, "built_at": now.isoformat(), "built_seconds": round(seconds, 1)},
            )
        )
    try:
        yield url
    finally:
        if not args.reuse:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Run:
    path: str
    seconds: float
    rows: int
    peak_mb: float
    rise_mb: float
    frame: Any = None


async def _read(url: str, path: str, now: datetime) -> tuple[Any, float]:
    from domain.db import Database
    from domain.recommend.service import read_interactions
    from domain.settings import Settings
    from recommend.data import WeightSettings

    var_dir = Path(tempfile.mkdtemp(prefix="precis-bench-read-"))
    settings = Settings(
        env="dev",
        var_dir=var_dir,
        database_url=url,
        redis_url=None,
        statement_timeout_ms=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = Database(settings)

    def tell(n: int) -> None:
        log(f"  {path}: {n:,} rows read")

    try:
        started = time.perf_counter()
        async with db.read_only() as session:
            if path == "new":
                data = await read_interactions(
                    session, settings, now=now, progress=tell if n_progress() else None
                )
            else:
                rows = await old_interaction_rows(
                    session, settings, progress=tell if n_progress() else None
                )
                data = old_from_events(rows, now=now, settings=WeightSettings())
                del rows
        return data, time.perf_counter() - started
    finally:
        await db.dispose()
        shutil.rmtree(var_dir, ignore_errors=True)


_PROGRESS = {"on": True}


def n_progress() -> bool:
    return _PROGRESS["on"]


def measure(url: str, path: str, now: datetime) -> Run:
    gc.collect()
    before = _status("VmRSS")
    reset_peak()
    data, seconds = asyncio.run(_read(url, path, now))
    peak = _status("VmHWM")
    run = Run(path, seconds, len(data), peak / 2**20, max(0, peak - before) / 2**20, data.frame)
    log(
        f"{path}: {run.rows:,} interactions in {seconds:.2f} s "
        f"({run.rows / seconds:,.0f} rows/s), peak RSS {run.peak_mb:,.0f} MB "
        f"(+{run.rise_mb:,.0f} MB)"
    )
    return run


def compare(old: pd.DataFrame, new: pd.DataFrame) -> str:
    """'equal', 'equal (weights within 1e-12)', or what differs. Rows come in the database's
    order (no ORDER BY in either read): when the order differs, both are sorted first."""
    if len(old) != len(new):
        return f"different row counts: old {len(old)}, new {len(new)}"
    same_order = all((old[c].to_numpy() == new[c].to_numpy()).all() for c in ("user", "item"))
    if not same_order:
        keys = ["user", "item", "time", "basket", "weight"]
        old = old.sort_values(keys).reset_index(drop=True)
        new = new.sort_values(keys).reset_index(drop=True)
    for c in ("user", "item", "time", "basket"):
        if not (old[c].to_numpy() == new[c].to_numpy()).all():
            return f"column {c} differs"
    ro, rn = old["rating"].to_numpy(), new["rating"].to_numpy()
    if not ((ro == rn) | (np.isnan(ro) & np.isnan(rn))).all():
        return "column rating differs"
    wo, wn = old["weight"].to_numpy(), new["weight"].to_numpy()
    if (wo == wn).all():
        return "equal"
    if np.allclose(wo, wn, rtol=1e-12, atol=0):
        return f"equal (weights within 1e-12; {(wo != wn).mean():.1%} differ in the last bits)"
    return "column weight differs"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny throw-away store (CI: seconds)")
    p.add_argument("--database", choices=("sqlite", "postgres"), help="default: postgres")
    p.add_argument("--users", type=int)
    p.add_argument("--products", type=int)
    p.add_argument("--interactions", type=int, help="events + order lines")
    p.add_argument("--repeat", type=int, default=1, help="runs of each path, alternating")
    p.add_argument("--reuse", action="store_true", help="keep the PostgreSQL store for next time")
    p.add_argument("--db-name", default=DB_NAME)
    p.add_argument("--json", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.database is None:
        args.database = "sqlite" if args.quick else "postgres"
    if args.database == "sqlite" and not args.quick:
        p.error("the full-size store is PostgreSQL; use --quick for SQLite")
    if args.reuse and args.database != "postgres":
        p.error("--reuse keeps a PostgreSQL store")
    if min(args.users, args.products) < 1 or args.interactions < 20:
        p.error("--users and --products must be at least 1, --interactions at least 20")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes(args.users, args.products, args.interactions)
    log(
        f"store: {sizes.users:,} shoppers, {sizes.products:,} products, "
        f"{sizes.events:,} events + {4 * sizes.orders:,} order lines ({args.database})"
    )
    _PROGRESS["on"] = not args.quick
    with store(args, sizes) as url:
        now = datetime.now(UTC)
        runs: dict[str, list[Run]] = {"new": [], "old": []}
        verdict = ""
        for i in range(args.repeat):
            for path in ("new", "old") if i % 2 == 0 else ("old", "new"):
                log(f"run {i + 1}/{args.repeat}: {path}")
                runs[path].append(measure(url, path, now))
                if not verdict and runs["new"] and runs["old"]:
                    verdict = compare(runs["old"][0].frame, runs["new"][0].frame)
                    log(f"frames: {verdict}")
                # Only the first frame of each path is kept, until they are compared: later runs
                # start from the same resident set.
                for r in [r for rs in runs.values() for r in rs] if verdict else runs[path][1:]:
                    r.frame = None
    rows = runs["new"][0].rows
    med = {p: statistics.median(r.seconds for r in rs) for p, rs in runs.items()}
    peak = {p: max(r.peak_mb for r in rs) for p, rs in runs.items()}
    rise = {p: max(r.rise_mb for r in rs) for p, rs in runs.items()}
    print(
        f"| path | seconds (median of {args.repeat}) | rows/s | peak RSS MB | RSS rise MB (max) | "
        f" ({args.database}, {rows:,} rows)"
    )
    print("|---|---:|---:|---:|---:|")
    for p, label in (("old", "row-wise (before)"), ("new", "column-wise")):
        print(
            f"| {label} | {med[p]:.2f} | {rows / med[p]:,.0f} | {peak[p]:,.0f} | {rise[p]:,.0f} |"
        )
    print(f"ratio seconds old/new: {med['old'] / med['new']:.2f}")
    print(f"ratio peak RSS rise old/new: {rise['old'] / max(rise['new'], 1e-9):.2f}")
    print(f"frames: {verdict}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "database": args.database,
                    "size": sizes.__dict__,
                    "rows": rows,
                    "seconds": med,
                    "runs": {p: [r.seconds for r in rs] for p, rs in runs.items()},
                    "peak_rss_mb": peak,
                    "rss_rise_mb": rise,
                    "ratio_seconds": med["old"] / med["new"],
                    "frames": verdict,
                },
                indent=2,
            )
        )
    return 0 if verdict.startswith("equal") else 1


if __name__ == "__main__":
    sys.exit(main())
