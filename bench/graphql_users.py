"""GraphQL read throughput against a raw Starlette endpoint running the same SQL in the same server.

Scenarios (8 fields: id externalId firstName lastName country locale timezone createdAt):

* ``list``: ``users(first: 100) { nodes { ... } }`` vs ``GET /raw/users?first=100``;
* ``single``: ``user(id:) { ... }`` vs ``GET /raw/user/{id}``.

A temp database is migrated and seeded through the users service, a token minted, the app served by
uvicorn in a subprocess and driven by ``wrk`` (or ``bench/loadgen.py``) from another process,
alternating GraphQL and raw in every round (which goes first alternates too). The ratio reported is
the median of the per-round ratios of requests per second (GraphQL / raw): on a noisy machine short
adjacent windows compare better than long ones.

    .venv/bin/python bench/graphql_users.py                 # SQLite, 10 rounds x 5 s
    .venv/bin/python bench/graphql_users.py --database postgres
    .venv/bin/python bench/graphql_users.py --quick         # a few seconds, for CI
    .venv/bin/python bench/graphql_users.py --scenario list --profile /tmp/list.txt  # + py-spy
    .venv/bin/python bench/graphql_users.py --app-dir /tmp/baseline  # serve another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson

from bench import common
from bench.common import Load, Target

FIELDS = "id externalId firstName lastName country locale timezone createdAt"
LIST_QUERY = "query Users($first: Int!) { users(first: $first) { nodes { " + FIELDS + " } } }"
SINGLE_QUERY = "query User($id: ID!) { user(id: $id) { " + FIELDS + " } }"
TARGETS = {"list": 0.22, "single": 0.6}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny run (1 round, 0.5 s per run; wrk runs 1 s) to check it works",
    )
    p.add_argument("--users", type=int, help="users to seed (default 2000; 300 with --quick)")
    p.add_argument("--first", type=int, default=100, help="page size of the list scenario")
    p.add_argument("--rounds", type=int, help="alternating rounds (default 10; 1 with --quick)")
    p.add_argument("--duration", type=float, help="seconds per run (default 5; 0.5 with --quick)")
    p.add_argument("--connections", type=int, default=8, help="concurrent connections")
    p.add_argument(
        "--warmup", type=float, help="seconds of warm-up per target (default 2; 0 quick)"
    )
    p.add_argument("--scenario", choices=["list", "single", "all"], default="all")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument(
        "--env", choices=["prod", "dev"], default="prod", help="PRECIS_ENV of the server"
    )
    p.add_argument(
        "--app-dir",
        type=Path,
        default=common.REPO,
        help="serve the code of another checkout, e.g. a baseline for an A/B comparison",
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the server with py-spy during an extra 10 s GraphQL run of the first scenario: "
        ".txt (collapsed stacks, also printed per phase), .json (speedscope) or .svg",
    )
    args = p.parse_args(argv)
    args.users = args.users or (300 if args.quick else 2000)
    args.rounds = args.rounds or (1 if args.quick else 10)
    args.duration = args.duration or (0.5 if args.quick else 5.0)
    if args.warmup is None:
        args.warmup = 0.0 if args.quick else 2.0
    if args.users <= args.first:
        p.error("--users must be more than --first")
    return args


def gql_target(name: str, url: str, token: str, query: str, variables: dict[str, object]) -> Target:
    body = orjson.dumps({"query": query, "variables": variables})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return Target(name, "POST", f"{url}/graphql", body, headers)


def check_same(gql: Target, raw: Target, pick: str) -> None:
    """Both paths must return the same rows before anything is measured."""
    with httpx.Client(timeout=30) as client:
        g = client.post(gql.url, content=gql.body, headers=gql.headers)
        r = client.get(raw.url)
    g.raise_for_status()
    r.raise_for_status()
    body = g.json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL errors: {body['errors']}")
    got = body["data"]["users"]["nodes"] if pick == "users" else body["data"]["user"]
    want = r.json()[pick]
    if got != want:
        raise SystemExit(f"GraphQL and raw disagree:\n{got!r:.500}\n{want!r:.500}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loadgen = common.pick_loadgen(args.loadgen)
    scenarios = ["list", "single"] if args.scenario == "all" else [args.scenario]
    started = dt.datetime.now(dt.UTC)
    common.log(f"machine: {common.machine()}; load generator: {loadgen}")
    with (
        common.bench_env(args.database, env=args.env) as benv,
        tempfile.TemporaryDirectory() as tmp,
    ):
        workdir = Path(tmp)
        common.log(f"seeding {args.users} users on {args.database} ...")
        asyncio.run(common.seed_users(benv, args.users))
        asyncio.run(common.analyze(benv))
        token = asyncio.run(common.mint_token(benv, "users:read"))
        with common.server(benv, app_dir=args.app_dir) as srv:
            pairs: dict[str, tuple[Target, Target]] = {}
            gql_list = gql_target("gql_list", srv.url, token, LIST_QUERY, {"first": args.first})
            raw_list = Target("raw_list", "GET", f"{srv.url}/raw/users?first={args.first}")
            check_same(gql_list, raw_list, "users")
            nodes = httpx.post(gql_list.url, content=gql_list.body, headers=gql_list.headers).json()
            some_id = nodes["data"]["users"]["nodes"][-1]["id"]
            gql_one = gql_target("gql_single", srv.url, token, SINGLE_QUERY, {"id": some_id})
            raw_one = Target("raw_single", "GET", f"{srv.url}/raw/user/{some_id}")
            check_same(gql_one, raw_one, "user")
            pairs = {"list": (gql_list, raw_list), "single": (gql_one, raw_one)}

            def load(target: Target, duration: float) -> Load:
                return common.run_load(
                    target,
                    duration=duration,
                    connections=args.connections,
                    loadgen=loadgen,
                    workdir=workdir,
                )

            if args.warmup:
                for name in scenarios:
                    for target in pairs[name]:
                        load(target, args.warmup)
            results: dict[str, dict[str, list[Load]]] = {
                name: {"graphql": [], "raw": []} for name in scenarios
            }
            for r in range(args.rounds):
                for name in scenarios:
                    gql, raw = pairs[name]
                    order = [("graphql", gql), ("raw", raw)]
                    if r % 2:
                        order.reverse()
                    for kind, target in order:
                        res = load(target, args.duration)
                        results[name][kind].append(res)
                        common.log(
                            f"round {r + 1}/{args.rounds} {name:6} {kind:7} "
                            f"{res.rps:8.0f} req/s  p50 {res.p50_ms:6.2f} ms  p99 {res.p99_ms:6.2f} ms"
                        )
            if args.profile:
                profile(srv.pid, pairs[scenarios[0]][0], load, args.profile)

    print()
    print(
        f"GraphQL vs raw, {args.database}, {args.users} users, {args.connections} connections, "
        f"{args.rounds} x {args.duration:g} s, {loadgen}, env={args.env}, "
        f"{started:%Y-%m-%d %H:%M} UTC"
    )
    print(f"machine: {common.machine()}")
    rows = []
    ratios: dict[str, float] = {}
    for name in scenarios:
        per_round = [
            g.rps / r.rps
            for g, r in zip(results[name]["graphql"], results[name]["raw"], strict=True)
        ]
        ratios[name] = common.median(per_round)
        label = f"users(first: {args.first})" if name == "list" else "user(id)"
        for kind in ("graphql", "raw"):
            runs = results[name][kind]
            rows.append(
                [
                    f"{label} {kind}",
                    common.median([x.rps for x in runs]),
                    common.median([x.p50_ms for x in runs]),
                    common.median([x.p99_ms for x in runs]),
                    ratios[name] if kind == "graphql" else 1.0,
                ]
            )
    print(common.table(["scenario", "req/s", "p50 ms", "p99 ms", "ratio"], rows))
    print()
    for name in scenarios:
        label = f"users(first: {args.first})" if name == "list" else "user(id)"
        spread = [
            round(g.rps / r.rps, 3)
            for g, r in zip(results[name]["graphql"], results[name]["raw"], strict=True)
        ]
        print(
            f"ratio {label} graphql/raw: {ratios[name]:.3f} "
            f"(target >= {TARGETS[name]}; per round {spread})"
        )
    return 0


def profile(pid: int, target: Target, load: Callable[[Target, float], Load], path: str) -> None:
    """py-spy samples the server while ``target`` is driven; prints the time per phase."""
    duration = 10
    fmt = (
        "speedscope" if path.endswith(".json") else "flamegraph" if path.endswith(".svg") else "raw"
    )
    spy_bin = Path(sys.executable).with_name("py-spy")
    spy = subprocess.Popen(
        [
            str(spy_bin) if spy_bin.exists() else "py-spy",
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(duration),
            "--rate",
            "250",
            "--format",
            fmt,
            "--output",
            path,
            "--nonblocking",
            "--threads",
        ]
    )
    load(target, duration + 1)
    spy.wait()
    common.log(f"profile of {target.name} written to {path}")
    if fmt == "raw":
        print()
        print(f"where the time goes ({target.name}, py-spy, share of server samples):")
        print(common.table(["phase", "share"], common.phases(Path(path))))


if __name__ == "__main__":
    raise SystemExit(main())
