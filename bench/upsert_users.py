"""Write throughput of ``upsertUsers`` in batches of 100, against a bare bulk INSERT.

Three ways to write the same users, interleaved in every round (the order rotates):

* ``bare``: a bulk INSERT of the finished rows (email already encrypted and hashed, tags as rows)
  through the same engine, one transaction per batch: the floor;
* ``service``: ``domain.users.service.upsert_users`` in a unit of work (validation, encryption,
  the upsert statement, tags, reading the rows back);
* ``graphql``: the ``upsertUsers`` mutation over HTTP (uvicorn in a subprocess, one client sending
  batches one after another).

The table starts with ``--users`` customers; every batch is new users (an insert), and
``service (update)`` and ``graphql (update)`` send batches of users that exist already. Planner
statistics are refreshed (ANALYZE, untimed) before each round, as a long-running database has
them. Reported: users per second (median over rounds) and the median of the per-round ratios to
``bare``.

    .venv/bin/python bench/upsert_users.py                      # SQLite
    .venv/bin/python bench/upsert_users.py --database postgres
    .venv/bin/python bench/upsert_users.py --quick              # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
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
    "mutation Upsert($input: UpsertUsersInput!) { upsertUsers(input: $input) "
    "{ users { id externalId } errors { code message index } } }"
)
METHODS = ("bare", "service", "graphql", "service (update)", "graphql (update)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--quick", action="store_true", help="tiny run (1 round, 2 batches) for CI")
    p.add_argument("--rounds", type=int, help="rounds (default 5; 1 with --quick)")
    p.add_argument("--batches", type=int, help="batches per way per round (default 10; 2 quick)")
    p.add_argument("--batch-size", type=int, default=100, help="users per batch (at most 100)")
    p.add_argument("--users", type=int, help="customers before the run (default 2000; 200 quick)")
    p.add_argument(
        "--env", choices=["prod", "dev"], default="prod", help="PRECIS_ENV of the server"
    )
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.batches = args.batches or (2 if args.quick else 10)
    args.users = args.users if args.users is not None else (200 if args.quick else 2000)
    if not 1 <= args.batch_size <= 100:
        p.error("--batch-size must be between 1 and 100")
    return args


class Ways:
    """The three ways to write a batch, sharing one engine (and one server for GraphQL)."""

    def __init__(self, benv: common.BenchEnv, url: str, token: str) -> None:
        from domain.db import Database
        from domain.keys import build_keys

        self.benv = benv
        self.settings = benv.settings()
        self.keys = build_keys(self.settings)
        self.db = Database(self.settings)
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.client = httpx.AsyncClient(timeout=60)

    async def close(self) -> None:
        await self.client.aclose()
        await self.db.dispose()

    def rows(
        self, items: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The finished rows the service would write, for the bare INSERT (built untimed)."""
        from domain.columns import utcnow

        now = utcnow()
        customers, tags = [], []
        for item in items:
            email = item["email"]
            customers.append(
                {
                    "external_id": item["external_id"],
                    "email_encrypted": self.keys.encrypt(email),
                    "email_hash": self.keys.lookup_hash("email", email),
                    "first_name": item["first_name"],
                    "last_name": item["last_name"],
                    "country": item["country"],
                    "locale": item["locale"],
                    "timezone": item["timezone"],
                    "attributes": item["attributes"],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            tags.append(item["tags"])
        return customers, [
            {"external_id": c["external_id"], "tags": t}
            for c, t in zip(customers, tags, strict=True)
        ]

    async def bare(self, prepared: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
        from sqlalchemy import insert

        from domain.users.models import Customer, CustomerTag

        customer = Customer.__table__  # type: ignore[attr-defined]
        customers, tags = prepared
        async with self.db.unit_of_work() as session:
            result = await session.execute(
                insert(customer).returning(customer.c.id, customer.c.external_id), customers
            )
            ids = {ext: pk for pk, ext in result.all()}
            tag_rows = [
                {"customer_id": ids[t["external_id"]], "tag": tag}
                for t in tags
                for tag in t["tags"]
            ]
            await session.execute(insert(CustomerTag.__table__), tag_rows)  # type: ignore[attr-defined]

    async def service(self, items: list[dict[str, Any]]) -> None:
        from domain.users import service

        async with self.db.unit_of_work() as session:
            await service.upsert_users(session, self.keys, items)

    async def graphql(self, items: list[dict[str, Any]]) -> None:
        body = orjson.dumps(
            {
                "query": MUTATION,
                "variables": {"input": {"users": [common.graphql_item(i) for i in items]}},
            }
        )
        response = await self.client.post(f"{self.url}/graphql", content=body, headers=self.headers)
        response.raise_for_status()
        data = response.json()
        payload = (data.get("data") or {}).get("upsertUsers") or {}
        if data.get("errors") or payload.get("errors") or len(payload["users"]) != len(items):
            raise RuntimeError(f"upsertUsers failed: {str(data)[:500]}")


async def run(
    args: argparse.Namespace, benv: common.BenchEnv, url: str, token: str
) -> dict[str, list[float]]:
    ways = Ways(benv, url, token)
    size, n = args.batch_size, args.batches
    counter = iter(range(10**9))

    def batch(prefix: str) -> list[dict[str, Any]]:
        start = next(counter) * size
        return [common.user_item(k, prefix=prefix) for k in range(start, start + size)]

    async def timed(write: Callable[[Any], Awaitable[None]], payloads: list[Any]) -> float:
        started = time.perf_counter()
        for payload in payloads:
            await write(payload)
        return size * len(payloads) / (time.perf_counter() - started)

    results: dict[str, list[float]] = {m: [] for m in METHODS}
    try:
        # Warm up every path once (connections, statement caches, the server's first request).
        await ways.bare(ways.rows(batch("warm")))
        await ways.service(batch("warm"))
        await ways.graphql(batch("warm"))
        for r in range(args.rounds):
            await common.analyze(ways.benv)  # current statistics as the table grows (untimed)
            inserted: dict[str, list[list[dict[str, Any]]]] = {}
            order = list(METHODS[:3])
            order = order[r % 3 :] + order[: r % 3]
            for method in order:
                batches = [batch(f"{method}-{r}") for _ in range(n)]
                inserted[method] = batches
                if method == "bare":
                    rate = await timed(ways.bare, [ways.rows(b) for b in batches])
                elif method == "service":
                    rate = await timed(ways.service, batches)
                else:
                    rate = await timed(ways.graphql, batches)
                results[method].append(rate)
                common.log(f"round {r + 1}/{args.rounds} {method:8} {rate:8.0f} users/s")
            # Updates: the same users again (the service's batches through the service, the
            # GraphQL ones through GraphQL), with a changed field.
            for method, source in (
                ("service (update)", "service"),
                ("graphql (update)", "graphql"),
            ):
                batches = [[dict(u, first_name="Renamed") for u in b] for b in inserted[source]]
                write = ways.service if source == "service" else ways.graphql
                rate = await timed(write, batches)
                results[method].append(rate)
                common.log(f"round {r + 1}/{args.rounds} {method:16} {rate:8.0f} users/s")
    finally:
        await ways.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    with common.bench_env(args.database, env=args.env) as benv:
        asyncio.run(common.seed_users(benv, args.users))
        token = asyncio.run(common.mint_token(benv, "users:read users:write"))
        with common.server(benv) as srv:
            results = asyncio.run(run(args, benv, srv.url, token))
    print()
    print(
        f"upsertUsers, {args.database}, batches of {args.batch_size}, {args.rounds} rounds x "
        f"{args.batches} batches per way, {args.users} users before, env={args.env}, "
        f"{started:%Y-%m-%d %H:%M} UTC"
    )
    print(f"machine: {common.machine()}")
    bare = results["bare"]
    rows = []
    ratios: dict[str, float] = {}
    for method in METHODS:
        rates = results[method]
        ratios[method] = common.median([x / b for x, b in zip(rates, bare, strict=True)])
        users_s = common.median(rates)
        rows.append([method, users_s, 1000 * args.batch_size / users_s, ratios[method]])
    print(common.table(["way", "users/s", "ms/batch", "ratio to bare"], rows))
    print()
    for method in METHODS[1:]:
        print(f"ratio {method} / bare insert ({args.database}): {ratios[method]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
