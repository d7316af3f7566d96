"""GraphQL against raw without HTTP: the ASGI app called directly in this process, one request at a
time, in short interleaved chunks; for quick before/after checks of a change.

Same app, data, queries and raw routes as ``graphql_users.py``, without the network, uvicorn or a
load generator, so small changes in per-request cost show with less noise. Reports the median time
per request of each target over the chunks and the median of the per-chunk ratios (raw / GraphQL
time, i.e. the same sense as the throughput ratio of ``graphql_users.py``).

    .venv/bin/python bench/inprocess.py
    .venv/bin/python bench/inprocess.py --scenario single --database postgres
    .venv/bin/python bench/inprocess.py --quick

For a before/after comparison run it in both checkouts (copy ``bench/`` into the older one),
alternating, a few times each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from bench import common
from bench.graphql_users import LIST_QUERY, SINGLE_QUERY

Request = tuple[str, str, bytes, list[tuple[str, str]]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--quick", action="store_true", help="tiny run to check it works")
    p.add_argument("--users", type=int, help="users to seed (default 2000; 300 with --quick)")
    p.add_argument("--chunks", type=int, help="chunks per target (default 60; 2 with --quick)")
    p.add_argument("--chunk", type=int, default=5, help="requests per chunk")
    p.add_argument("--scenario", choices=["list", "single", "all"], default="all")
    args = p.parse_args(argv)
    args.users = args.users or (300 if args.quick else 2000)
    args.chunks = args.chunks or (2 if args.quick else 60)
    return args


async def call(
    app: Any, method: str, path: str, body: bytes, headers: list[tuple[str, str]]
) -> tuple[int, bytes]:
    path, _, query = path.partition("?")
    raw_headers = [(b"host", b"bench")] + [(k.encode(), v.encode()) for k, v in headers]
    if body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw_headers,
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    status = messages[0]["status"]
    return status, b"".join(
        m.get("body", b"") for m in messages if m["type"] == "http.response.body"
    )


async def run(args: argparse.Namespace, benv: common.BenchEnv) -> dict[str, list[float]]:
    os.environ.update(benv.server_environ())
    from domain.settings import get_settings

    get_settings.cache_clear()
    from bench.app import create_bench_app

    app = create_bench_app()
    token = await common.mint_token(benv, "users:read")
    auth = [("content-type", "application/json"), ("authorization", f"Bearer {token}")]
    list_body = orjson.dumps({"query": LIST_QUERY, "variables": {"first": 100}})
    async with app.router.lifespan_context(app):
        status, body = await call(app, "POST", "/graphql", list_body, auth)
        some_id = orjson.loads(body)["data"]["users"]["nodes"][-1]["id"]
        one_body = orjson.dumps({"query": SINGLE_QUERY, "variables": {"id": some_id}})
        targets: dict[str, Request] = {}
        if args.scenario in ("list", "all"):
            targets["list graphql"] = ("POST", "/graphql", list_body, auth)
            targets["list raw"] = ("GET", "/raw/users?first=100", b"", [])
        if args.scenario in ("single", "all"):
            targets["single graphql"] = ("POST", "/graphql", one_body, auth)
            targets["single raw"] = ("GET", f"/raw/user/{some_id}", b"", [])
        for name, target in targets.items():
            status, body = await call(app, *target)
            if status != 200 or b'"errors"' in body:
                raise SystemExit(f"{name}: {status} {body[:300]!r}")
            for _ in range(10):
                await call(app, *target)
        times: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.chunks):
            for name, target in targets.items():
                started = time.perf_counter()
                for _ in range(args.chunk):
                    await call(app, *target)
                times[name].append((time.perf_counter() - started) / args.chunk * 1e6)
    return times


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with common.bench_env(args.database) as benv:
        asyncio.run(common.seed_users(benv, args.users))
        asyncio.run(common.analyze(benv))
        times = asyncio.run(run(args, benv))
    print(f"in-process, {args.database}, {args.chunks} chunks x {args.chunk} requests per target")
    print(
        common.table(
            ["target", "us/request"], [[name, statistics.median(t)] for name, t in times.items()]
        )
    )
    for scenario, label in (("list", "users(first: 100)"), ("single", "user(id)")):
        if f"{scenario} graphql" in times:
            ratios = [
                r / g
                for g, r in zip(times[f"{scenario} graphql"], times[f"{scenario} raw"], strict=True)
            ]
            print(f"ratio {label} graphql/raw (in-process): {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
