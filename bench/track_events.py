"""Ingest throughput of ``trackEvents`` in batches of 500 from 4 concurrent clients, against a bare
bulk INSERT of the same rows through the same engine, measured in the same run.

Three ways to write the same kind of events, interleaved in every round (the order rotates):

* ``bare``: ``insert(event)`` executed with the list of finished row dicts (customer and product
  ids already resolved), one transaction per batch, 4 concurrent writers on one engine: the floor;
* ``service``: ``domain.events.service.track_events`` in a unit of work, 4 concurrent callers in
  this process (validation, look-ups, consent, the ON CONFLICT insert, profiles, audit);
* ``graphql``: the ``trackEvents`` mutation over HTTP (uvicorn in a subprocess), 4 concurrent
  clients in this process, request bodies serialised before the clock starts.

Every event is new (a unique clientEventId); each batch mixes views, add-to-carts, searches,
purchases and a custom type across ``--users`` customers and ``--products`` products. Reported:
events per second (median over rounds) and the median of the per-round ratios to ``bare``.

    .venv/bin/python bench/track_events.py                      # SQLite
    .venv/bin/python bench/track_events.py --database postgres
    .venv/bin/python bench/track_events.py --quick              # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson

from bench import common

MUTATION = (
    "mutation Track($input: TrackEventsInput!) { trackEvents(input: $input) "
    "{ accepted duplicates rejected errors { code index } } }"
)
METHODS = ("bare", "service", "graphql")
CAMEL = {
    "client_event_id": "clientEventId",
    "user_external_id": "userExternalId",
    "product_external_id": "productExternalId",
    "occurred_at": "occurredAt",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--quick", action="store_true", help="tiny run (1 round, 1 batch) for CI")
    p.add_argument("--rounds", type=int, help="rounds (default 5; 1 with --quick)")
    p.add_argument(
        "--batches", type=int, help="batches per client per way per round (default 10; 1 quick)"
    )
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--batch-size", type=int, default=500, help="events per batch (at most 500)")
    p.add_argument("--users", type=int, help="customers (default 2000; 100 quick)")
    p.add_argument("--products", type=int, help="products (default 500; 50 quick)")
    p.add_argument(
        "--env", choices=["prod", "dev"], default="prod", help="PRECIS_ENV of the server"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (precis serve --workers)"
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="after the rounds, sample the server with py-spy (collapsed stacks, .txt) during one "
        "more GraphQL round and print the leaf functions taking the most samples",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for the server process, e.g. PRECIS_PROFILE_TOUCH_FLUSH_MS=0 "
        "(repeatable)",
    )
    p.add_argument(
        "--sql",
        action="append",
        default=[],
        metavar="STATEMENT",
        help="SQL to run after seeding, before the server starts (experiments such as "
        "'ALTER TABLE customer_profile SET (fillfactor = 70)'; repeatable)",
    )
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.batches = args.batches or (1 if args.quick else 10)
    args.users = args.users if args.users is not None else (100 if args.quick else 2000)
    args.products = args.products if args.products is not None else (50 if args.quick else 500)
    if not 1 <= args.batch_size <= 500:
        p.error("--batch-size must be between 1 and 500")
    return args


async def seed_products(benv: common.BenchEnv, count: int) -> None:
    from domain.catalog import service
    from domain.db import Database

    db = Database(benv.settings())
    try:
        for start in range(0, count, 100):
            items = [
                {
                    "external_id": f"prod-{n:06d}",
                    "title": f"Product {n}",
                    "price": f"{5 + n % 95}.99",
                    "currency": "EUR",
                }
                for n in range(start, min(start + 100, count))
            ]
            async with db.unit_of_work() as session:
                await service.upsert_products(session, items)
    finally:
        await db.dispose()


def event_item(n: int, users: int, products: int, now: dt.datetime) -> dict[str, Any]:
    """Event number ``n`` (service spelling): a realistic mix of types."""
    kind = ("view", "view", "view", "add_to_cart", "view", "search", "view", "purchase",
            "view", "custom:wishlist_share")[n % 10]  # fmt: skip
    item: dict[str, Any] = {
        "client_event_id": f"bench-{n:09d}",
        "type": kind,
        "user_external_id": f"bench-{(n * 7919) % users:07d}",
        "occurred_at": now - dt.timedelta(seconds=n % 3600),
        "channel": "web",
    }
    if kind in ("view", "add_to_cart"):
        item["product_external_id"] = f"prod-{(n * 104729) % products:06d}"
        item["properties"] = {"page": f"/p/{n % products}"}
    elif kind == "search":
        item["query"] = f"red shoes {n % 50}"
    elif kind == "purchase":
        item["value"] = f"{10 + n % 90}.50"
        item["currency"] = "EUR"
    return item


def graphql_item(item: dict[str, Any]) -> dict[str, Any]:
    out = {CAMEL.get(k, k): v for k, v in item.items()}
    out["occurredAt"] = item["occurred_at"].isoformat()
    return out


class Ways:
    """The three ways to write a batch, sharing one engine (and one server for GraphQL)."""

    def __init__(self, benv: common.BenchEnv, url: str, token: str) -> None:
        from domain.audit.service import Actor
        from domain.db import Database

        self.settings = benv.settings()
        self.db = Database(self.settings)
        self.actor = Actor(client_id="bench", subject="bench")
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.client = httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=16))
        self.users: dict[str, int] = {}
        self.products: dict[str, int] = {}

    async def load_ids(self) -> None:
        from sqlalchemy import select

        from domain.catalog.models import Product
        from domain.users.models import Customer

        async with self.db.read_only() as session:
            c = Customer.__table__  # type: ignore[attr-defined]
            p = Product.__table__  # type: ignore[attr-defined]
            self.users = dict((await session.execute(select(c.c.external_id, c.c.id))).all())
            self.products = dict((await session.execute(select(p.c.external_id, p.c.id))).all())

    async def close(self) -> None:
        await self.client.aclose()
        await self.db.dispose()

    def rows(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The finished rows the service would write, for the bare INSERT (built untimed)."""
        from decimal import Decimal

        from domain.columns import utcnow

        now = utcnow()
        rows = []
        for item in items:
            props = dict(item.get("properties") or {})
            if "query" in item:
                props["query"] = item["query"]
            value = item.get("value")
            rows.append(
                {
                    "client_event_id": item["client_event_id"],
                    "customer_id": self.users[item["user_external_id"]],
                    "anonymous_id": None,
                    "type": item["type"],
                    "product_id": self.products.get(item.get("product_external_id", "")),
                    "properties": props,
                    "value": None if value is None else Decimal(value),
                    "currency": item.get("currency"),
                    "channel": item["channel"],
                    "campaign_id": None,
                    "message_id": None,
                    "order_id": None,
                    "source_client_id": "bench-bare",  # not counted in profiles (check_profiles)
                    "occurred_at": item["occurred_at"],
                    "received_at": now,
                }
            )
        return rows

    async def bare(self, rows: list[dict[str, Any]]) -> None:
        from sqlalchemy import insert

        from domain.events.models import Event

        async with self.db.unit_of_work() as session:
            await session.execute(insert(Event.__table__), rows)  # type: ignore[attr-defined]

    async def service(self, items: list[dict[str, Any]]) -> None:
        from domain.events.service import track_events

        async with self.db.unit_of_work() as session:
            result = await track_events(session, self.actor, items, self.settings)
        if result.accepted != len(items):
            raise RuntimeError(f"track_events: {result}")

    def body(self, items: list[dict[str, Any]]) -> bytes:
        return orjson.dumps(
            {
                "query": MUTATION,
                "variables": {"input": {"events": [graphql_item(i) for i in items]}},
            }
        )

    async def graphql(self, body: bytes) -> None:
        response = await self.client.post(f"{self.url}/graphql", content=body, headers=self.headers)
        response.raise_for_status()
        data = response.json()
        payload = (data.get("data") or {}).get("trackEvents") or {}
        if data.get("errors") or payload.get("errors") or payload.get("duplicates"):
            raise RuntimeError(f"trackEvents failed: {str(data)[:500]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (uvicorn workers) so far (``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        total += sum(cpu_seconds(int(child)) for child in children)
    return total


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def is_process(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


class PgCpu:
    """CPU time of the PostgreSQL backends serving this run's database (PostgreSQL on this
    machine: read from ``/proc``; ``None`` elsewhere and on SQLite)."""

    def __init__(self, ways: Ways) -> None:
        self.ways = ways
        self.enabled = ways.db.engine.dialect.name == "postgresql"
        self.start: dict[int, float] = {}

    async def _pids(self) -> list[int]:
        from sqlalchemy import text

        async with self.ways.db.read_only() as session:
            rows = await session.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
            return [int(pid) for (pid,) in rows]

    async def begin(self) -> None:
        if self.enabled:
            pids = await self._pids()
            self.enabled = all(is_process(pid) for pid in pids)
            self.start = {pid: proc_cpu(pid) for pid in pids}

    async def seconds(self) -> float | None:
        """CPU seconds since ``begin`` (backends started meanwhile count from 0)."""
        if not self.enabled:
            return None
        pids = set(await self._pids()) | set(self.start)
        return sum(proc_cpu(pid) - self.start.get(pid, 0.0) for pid in pids)


async def run(
    args: argparse.Namespace, benv: common.BenchEnv, url: str, token: str, server_pid: int
) -> tuple[dict[str, list[float]], list[float], dict[str, dict[str, list[float]]]]:
    ways = Ways(benv, url, token)
    await ways.load_ids()
    size, clients = args.batch_size, args.clients
    counter = itertools.count()
    now = dt.datetime.now(dt.UTC)

    def batch() -> list[dict[str, Any]]:
        start = next(counter) * size
        return [event_item(k, args.users, args.products, now) for k in range(start, start + size)]

    async def timed(write: Callable[[Any], Awaitable[None]], payloads: list[list[Any]]) -> float:
        """``payloads[c]`` are client c's batches; the clients run concurrently."""

        async def client(mine: list[Any]) -> None:
            for payload in mine:
                await write(payload)

        started = time.perf_counter()
        await asyncio.gather(*(client(mine) for mine in payloads))
        return size * sum(len(m) for m in payloads) / (time.perf_counter() - started)

    def prepared(method: str) -> list[list[Any]]:
        per_client = [[batch() for _ in range(args.batches)] for _ in range(clients)]
        if method == "bare":
            return [[ways.rows(b) for b in mine] for mine in per_client]
        if method == "graphql":
            return [[ways.body(b) for b in mine] for mine in per_client]
        return per_client

    writers: dict[str, Callable[[Any], Awaitable[None]]] = {
        "bare": ways.bare,
        "service": ways.service,
        "graphql": ways.graphql,
    }
    results: dict[str, list[float]] = {m: [] for m in METHODS}
    server_cpu: list[float] = []
    # CPU milliseconds per batch of each way, by process: this one (the clients, and for
    # ``service`` the service itself), the server, PostgreSQL's backends of this database.
    cpu_ms: dict[str, dict[str, list[float]]] = {
        m: {"bench": [], "server": [], "postgres": []} for m in METHODS
    }
    pg = PgCpu(ways)
    try:
        # Warm up every path once (connections, statement caches, the server's first request).
        for method in METHODS:
            await timed(writers[method], [[p[0]] for p in prepared(method)])
        for r in range(args.rounds):
            await common.analyze(benv)  # current statistics as the table grows (untimed)
            order = list(METHODS[r % 3 :] + METHODS[: r % 3])
            for method in order:
                payloads = prepared(method)
                await pg.begin()
                cpu, own = cpu_seconds(server_pid), time.process_time()
                rate = await timed(writers[method], payloads)
                own, server = time.process_time() - own, cpu_seconds(server_pid) - cpu
                postgres = await pg.seconds()
                per_batch = 1000 / (clients * args.batches)
                if method == "graphql":
                    server_cpu.append(server * per_batch)
                cpu_ms[method]["bench"].append(own * per_batch)
                cpu_ms[method]["server"].append(server * per_batch)
                if postgres is not None:
                    cpu_ms[method]["postgres"].append(postgres * per_batch)
                results[method].append(rate)
                common.log(f"round {r + 1}/{args.rounds} {method:8} {rate:8.0f} events/s")
        if args.profile:
            await profile(
                server_pid, args.profile, lambda: timed(ways.graphql, prepared("graphql"))
            )
    finally:
        await ways.close()
    return results, server_cpu, cpu_ms


def start_spy(pid: int, path: str) -> Any:
    import subprocess

    spy_bin = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy_bin) if spy_bin.exists() else "py-spy", "record", "--pid", str(pid), "--rate",
         "250", "--format", "raw", "--output", path, "--nonblocking"]
    )  # fmt: skip


def report_spy(spy: Any, path: str) -> None:
    """Stop py-spy and print the share of samples per innermost frame."""
    from collections import Counter

    spy.send_signal(2)
    spy.wait()
    own: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        own[stack.split(";")[-1][:100]] += int(count)
    print(f"\npy-spy, share of the server's busy samples by innermost frame ({total} samples):")
    rows = [[f, f"{100 * n / max(total, 1):.1f}%"] for f, n in own.most_common(25)]
    print(common.table(["frame", "share"], rows))


async def profile(pid: int, path: str, load: Callable[[], Awaitable[float]]) -> None:
    """py-spy samples the server while ``load`` runs."""
    spy = start_spy(pid, path)
    await asyncio.sleep(1)
    await load()
    report_spy(spy, path)


async def check_profiles(benv: common.BenchEnv) -> str:
    """After the server stopped (its last write-behind flush done): the profiles' event counts
    add up to the linked events stored by ``service`` and ``graphql`` (the bare INSERT skips
    profiles)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(benv.database_url)
    try:
        async with engine.connect() as conn:
            counted = await conn.scalar(
                text("SELECT coalesce(sum(event_count), 0) FROM customer_profile")
            )
            stored = await conn.scalar(
                text(
                    "SELECT count(*) FROM event WHERE customer_id IS NOT NULL "
                    "AND source_client_id <> 'bench-bare'"
                )
            )
    finally:
        await engine.dispose()
    if counted != stored:
        raise RuntimeError(f"profiles count {counted} events, {stored} were stored")
    return f"profile event counts add up: {counted} events"


async def execute(benv: common.BenchEnv, sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(benv.database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    with common.bench_env(args.database, env=args.env) as benv:
        asyncio.run(common.seed_users(benv, args.users))
        asyncio.run(seed_products(benv, args.products))
        token = asyncio.run(common.mint_token(benv, "events:write"))
        for sql in args.sql:
            asyncio.run(execute(benv, sql))
        # No recurring jobs in the server: the hourly profile recompute would take CPU in the
        # middle of a round (and count the bare rows into the profiles, see check_profiles).
        extra = {"PRECIS_SCHEDULER": "off"} | dict(p.split("=", 1) for p in args.server_env)
        with common.server(benv, workers=args.workers, extra_env=extra) as srv:
            results, server_cpu, cpu_ms = asyncio.run(run(args, benv, srv.url, token, srv.pid))
        checked = asyncio.run(check_profiles(benv))
    print()
    print(
        f"trackEvents, {args.database}, batches of {args.batch_size} from {args.clients} "
        f"concurrent clients, {args.rounds} rounds x {args.batches} batches per client per way, "
        f"{args.users} users, {args.products} products, env={args.env}, "
        f"{args.workers} server worker(s), "
        f"{started:%Y-%m-%d %H:%M} UTC"
    )
    print(f"machine: {common.machine()}")
    if args.server_env:
        print(f"server settings: {' '.join(args.server_env)}")
    if args.sql:
        print(f"after seeding: {'; '.join(args.sql)}")
    print(checked)
    bare = results["bare"]
    rows = []
    ratios: dict[str, float] = {}
    for method in METHODS:
        rates = results[method]
        ratios[method] = common.median([x / b for x, b in zip(rates, bare, strict=True)])
        events_s = common.median(rates)
        rows.append([method, events_s, 1000 * args.batch_size / events_s, ratios[method]])
    print(common.table(["way", "events/s", "ms/batch", "ratio to bare"], rows))
    print(f"server process CPU per trackEvents batch: {common.median(server_cpu):.1f} ms")
    print()
    print("CPU per batch, ms (median over rounds; this machine's cores are shared by all three):")
    cpu_rows = []
    for method in METHODS:
        parts = cpu_ms[method]
        medians = [common.median(parts[k]) if parts[k] else None for k in parts]
        total = None if None in medians else sum(m for m in medians if m is not None)
        shown = [*medians, total]
        cpu_rows.append([method, *("-" if m is None else f"{m:.1f}" for m in shown)])
    print(common.table(["way", "bench process", "server", "PostgreSQL", "total"], cpu_rows))
    print()
    for method in METHODS[1:]:
        print(
            f"{method} events/s ({args.database}): {common.median(results[method]):.0f}; "
            f"ratio {method} / bare insert: {ratios[method]:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
