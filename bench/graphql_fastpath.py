"""CPU per ``recommendations`` request, the compiled fast path (api/fastpath.py) against the generic
path (Strawberry's view and graphql-core's executor), in one process, without sockets.

Two apps from ``api.app.create_app`` over the same store, one with ``PRECIS_GRAPHQL_FAST_PATH`` on
and one with it off, are called directly as ASGI apps (scope, receive, send: no HTTP server, no
load generator) with the request mix of ``bench/recommend_serving.py`` (shopper ``i`` asks for HOME
with 2 recent product ids, first 10 and one of four filters; the same document, real shopper tokens
from token exchanges at the app's ``/oauth/token``). Targets, in chunks that alternate (the order
rotates every round): **fast**, **generic**, **own** (the fast app with
``RecommendationServer.answer`` replaced by a lookup of the answers it gave in the check below: the
fast path's own cost, with the Starlette app and the token check around it), **shell** (the fast
app with ``FastGraphQL._answer`` replaced by a constant answer: the app, the body read and the
response; own - shell is ``_answer`` without ranking: token, plan, variables, ask, writing) and for
scale the GraphQL floor (``{ __typename }``, same tokens, generic app). Each chunk sends ``--chunk`` requests on ``--concurrency`` tasks and
takes the process CPU time (user + system, all threads) it used; printed per target: CPU ms a
request (median of the chunks, and the range), and the median of the per-round ratios fast /
generic (same process and data, alternating, so most of the machine's noise cancels). Before
timing, every request is sent to both apps once: the answers must be equal (``recommendationId``
aside) and the fast app must have answered all of them itself.

The store: ``bench/recommend_serving.py``'s PostgreSQL database ``precis_bench_recommend_serving``
(build it with ``bench/recommend_serving.py --reuse``; never rebuilt here: session events are
written by that bench and may be old, so the session window is widened to a day), or with
``--tiny``/``--quick`` a small throw-away store built with the same helpers.

    .venv/bin/python bench/graphql_fastpath.py                 # the full-size store
    .venv/bin/python bench/graphql_fastpath.py --rounds 10 --chunk 400
    .venv/bin/python bench/graphql_fastpath.py --quick         # seconds, CI (tests/bench)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from bench import common
from bench.inprocess import call
from bench.recommend_serving import log

FLOOR = b'{"query":"query Floor { __typename }"}'
Request = tuple[bytes, list[tuple[str, str]]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        "--tiny",
        dest="quick",
        action="store_true",
        help="a tiny throw-away store, 2 short rounds: checks that it works",
    )
    p.add_argument("--db-name", default="precis_bench_recommend_serving", help="the full store")
    p.add_argument("--shoppers", type=int, help="shopper tokens (default 200; 40 with --quick)")
    p.add_argument("--rounds", type=int, help="rounds of all targets (default 8; 2 with --quick)")
    p.add_argument("--chunk", type=int, help="requests per chunk (default 300; 40 with --quick)")
    p.add_argument("--concurrency", type=int, default=10, help="tasks sending at once (10)")
    p.add_argument("--no-floor", dest="floor", action="store_false", help="skip { __typename }")
    p.add_argument(
        "--no-own", dest="own", action="store_false", help="skip the own and shell targets"
    )
    args = p.parse_args(argv)
    args.shoppers = args.shoppers or (40 if args.quick else 200)
    args.rounds = args.rounds or (2 if args.quick else 8)
    args.chunk = args.chunk or (40 if args.quick else 300)
    return args


@contextlib.contextmanager
def bench_store(args: argparse.Namespace) -> Iterator[tuple[Any, argparse.Namespace]]:
    """(settings of the store, the serving bench's arguments)."""
    from bench import recommend_serving as rs

    if args.quick:
        sargs = rs.parse_args(["--tiny", "--components", "trending,itemknn,content,together"])
        with rs.store(sargs) as st:
            ts = rs.generate(sargs)
            asyncio.run(rs.build_store(st, sargs, ts.__dict__["_groups"]))
            blob, _ = rs.train(ts, sargs)
            asyncio.run(rs.store_version(st, blob, sargs))
            shoppers = rs.load_shoppers(sargs)
            asyncio.run(rs.session_events(st, shoppers, rs.recent_products(sargs, shoppers)))
            asyncio.run(common.analyze(st.benv))
            yield st.benv.settings(), sargs
        return
    from bench.segments import _db_comment

    sargs = rs.parse_args(["--db-name", args.db_name])
    meta = asyncio.run(_db_comment(args.db_name))
    if not meta or any(meta.get(k) != v for k, v in rs.wanted_meta(sargs).items()):
        raise SystemExit(
            f"{args.db_name} is not the full-size serving store ({meta}); build it with "
            "bench/recommend_serving.py --reuse"
        )
    url = common._with_db(common.PG_ADMIN_URL, args.db_name)
    with tempfile.TemporaryDirectory(prefix="precis-bench-fastpath-") as var_dir:
        yield rs._keys_env("postgres", url, Path(var_dir)).settings(), sargs


async def shopper_tokens(app: Any, settings: Any, shoppers: list[int]) -> dict[int, str]:
    """A token per shopper from a token exchange at the app's /oauth/token (in process)."""
    import httpx

    from domain.auth import service
    from domain.auth.shoppers import EXTERNAL_ID_TYPE, TOKEN_EXCHANGE
    from domain.db import Database

    db = Database(settings)
    try:
        async with db.unit_of_work() as session:
            made = await service.create_client(
                session,
                name=f"bench fast path {time.time():.0f}",
                scopes="shoppers:delegate",
                grant_types=["client_credentials", TOKEN_EXCHANGE],
            )
    finally:
        await db.dispose()
    tokens: dict[int, str] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for cid in shoppers:
            response = await client.post(
                "/oauth/token",
                data={
                    "grant_type": TOKEN_EXCHANGE,
                    "subject_token": f"c{cid}",
                    "subject_token_type": EXTERNAL_ID_TYPE,
                    "scope": "recommendations:read",
                },
                auth=(made.client.id, made.secret),
            )
            if response.status_code != 200:
                raise SystemExit(f"token exchange for c{cid}: {response.text}")
            tokens[cid] = response.json()["access_token"]
    return tokens


def comparable(body: bytes) -> Any:
    """The answer without its random ``recommendationId`` and its scores (time-decayed signals
    move them between two requests, in the last digit)."""
    data = orjson.loads(body)
    payload = data["data"]["recommendations"]
    payload["recommendationId"] = None
    for item in payload["items"]:
        item["score"] = None
    return data


async def send(app: Any, request: Request) -> bytes:
    status, body = await call(app, "POST", "/graphql", *request)
    data = orjson.loads(body) if status == 200 else {}
    if "errors" in data or (data.get("data") or {}).get("recommendations", {}).get("errors"):
        raise SystemExit(f"request failed: {status} {body[:500]!r}")
    return body


async def chunk(app: Any, requests: list[Request], start: int, n: int, tasks: int) -> float:
    """CPU seconds (this process, all threads) to answer ``n`` requests on ``tasks`` tasks."""
    todo = iter(range(start, start + n))

    async def worker() -> None:
        for i in todo:
            await call(app, "POST", "/graphql", *requests[i % len(requests)])

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.process_time() - started


async def measure(settings: Any, sargs: argparse.Namespace, args: argparse.Namespace) -> Any:
    from api.app import create_app
    from bench import recommend_serving as rs

    settings = settings.model_copy(update={"recommend_session_minutes": 1440})
    fast_app = create_app(settings)
    generic_app = create_app(settings.model_copy(update={"graphql_fast_path": False}))
    async with (
        fast_app.router.lifespan_context(fast_app),
        generic_app.router.lifespan_context(generic_app),
    ):
        shoppers = rs.load_shoppers(sargs)[: args.shoppers]
        started = time.perf_counter()
        tokens = await shopper_tokens(fast_app, settings, shoppers)
        log(f"{len(tokens)} shopper tokens in {time.perf_counter() - started:.1f} s")
        requests: list[Request] = [
            (body, [(k.lower(), v) for k, v in headers.items()])
            for body, headers in rs.bodies(sargs, shoppers, tokens)
        ]
        endpoint = fast_app.state.graphql
        server = endpoint.graphql.services.recommend
        ranked: dict[Any, Any] = {}  # ask -> the answer, for the "own" target

        async def recording(ask: Any) -> Any:
            answer = await answer_of(ask)
            ranked[ask] = answer
            return answer

        async def canned(ask: Any) -> Any:
            return ranked[ask]

        answer_of = server.answer
        server.answer = recording
        for request in requests:  # the same answers, and all of them from the fast path
            for attempt in (1, 2):  # twice: a near tie may swap two items between two requests
                fast, generic = await send(fast_app, request), await send(generic_app, request)
                if comparable(fast) == comparable(generic):
                    break
                if attempt == 2:
                    raise SystemExit(f"answers differ:\n{fast[:400]!r}\n{generic[:400]!r}")
        if endpoint.counts["fast"] < len(requests) or endpoint.counts["generic"]:
            raise SystemExit(f"the fast path did not answer every request: {endpoint.counts}")
        server.answer = answer_of
        items = len(orjson.loads(fast)["data"]["recommendations"]["items"])
        log(f"checked {len(requests)} requests on both paths ({items} items in the last)")
        floor = [(FLOOR, headers) for _body, headers in requests]
        targets: dict[str, tuple[Any, list[Request]]] = {
            "fast": (fast_app, requests),
            "generic": (generic_app, requests),
        }
        if args.own:
            targets["own"] = (fast_app, requests)
            targets["shell"] = (fast_app, requests)

        async def constant(*_: Any) -> bytes:
            return fast

        if args.floor:
            targets["floor"] = (generic_app, floor)

        async def timed(name: str, start: int, n: int) -> float:
            app, sent = targets[name]
            server.answer = canned if name == "own" else answer_of
            if name == "shell":
                endpoint._answer = constant
            try:
                return await chunk(app, sent, start, n, args.concurrency)
            finally:
                server.answer = answer_of
                endpoint.__dict__.pop("_answer", None)

        for name in targets:  # warm-up
            await timed(name, 0, min(args.chunk, 100))
        cpu: dict[str, list[float]] = {name: [] for name in targets}
        position = 0
        for r in range(args.rounds):
            names = list(targets)
            names = names[r % len(names) :] + names[: r % len(names)]
            for name in names:
                seconds = await timed(name, position, args.chunk)
                cpu[name].append(seconds / args.chunk * 1000)
            position += args.chunk
        return cpu


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"machine: {common.machine()}")
    with bench_store(args) as (settings, sargs):
        cpu = asyncio.run(measure(settings, sargs, args))
    print(
        f"in-process, {'tiny store' if args.quick else args.db_name}, {args.rounds} rounds x "
        f"{args.chunk} requests per target, {args.concurrency} tasks"
    )
    print(
        common.table(
            ["target", "CPU ms/request", "min", "max"],
            [[n, statistics.median(v), min(v), max(v)] for n, v in cpu.items()],
        )
    )
    ratios = [f / g for f, g in zip(cpu["fast"], cpu["generic"], strict=True)]
    print(
        f"ratio fast/generic CPU per request: {statistics.median(ratios):.3f} "
        f"(rounds {min(ratios):.3f}-{max(ratios):.3f})"
    )
    if "own" in cpu:
        own = [o / f for o, f in zip(cpu["own"], cpu["fast"], strict=True)]
        print(
            f"ratio own/fast CPU per request (the fast path without ranking): "
            f"{statistics.median(own):.3f} (rounds {min(own):.3f}-{max(own):.3f})"
        )
    if "shell" in cpu:
        inner = [o - s for o, s in zip(cpu["own"], cpu["shell"], strict=True)]
        print(
            f"own - shell (FastGraphQL._answer without ranking): {statistics.median(inner):.3f} "
            f"CPU ms/request (rounds {min(inner):.3f}-{max(inner):.3f})"
        )
    saved = [g - f for f, g in zip(cpu["fast"], cpu["generic"], strict=True)]
    print(f"saved per request: {statistics.median(saved):.3f} CPU ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
