"""What ``RecommendationServer.answer()`` costs outside the ranking (issue 6, serving under load).

In-process, no HTTP: a ``domain.recommend.serving.RecommendationServer`` over the store of
``bench/recommend_serving.py`` (its PostgreSQL database ``precis_bench_recommend_serving``, built by
``bench/recommend_serving.py --reuse``; ``--tiny`` builds a small throw-away one with the same
helpers) answers that bench's request mix (shopper ``i`` asks for HOME with 2 recent product ids,
first 10 and one of four filters) at ``--concurrency`` (50) tasks. Three phases, alternated
(the order rotates every round), each ``--answers`` requests:

* **answer**: ``await server.answer(ask)`` as the API calls it, with the impression buffer
  flushing behind (the last flush of the phase counted in it); the process CPU per answer, and of
  it ``Bundle.rank`` (timed inside, by a wrapper on the loaded bundle);
* **read**: the shopper read alone (``server._read_shopper``), CPU per read;
* **baseline**: the least an answer can cost: a bare asyncpg prepared statement (the same shopper
  statement, on ``--baseline-connections`` connections held by their tasks, no pool) and
  ``Bundle.rank`` with the very inputs ``answer()`` gave it (recorded in the warm-up).

Printed: CPU ms per answer / read / baseline request (median of the rounds and the range), the
split of the answer (``Bundle.rank``, the shopper read, the rest), and the ratio answer /
baseline (the median of the per-round ratios: both in the same process, so the machine's noise
mostly cancels). ``--app-dir`` times another checkout's ``domain`` and ``recommend`` packages
(e.g. ``git archive <commit>`` unpacked) with this script, for before/after. The stored session
events are minutes to hours old: the session window is widened to a day
(``recommend_session_minutes=1440``) so the shoppers' stored events count as they do in the HTTP
bench; nothing is written to the store but impressions.

    .venv/bin/python bench/recommend_answer.py                      # the full-size store
    .venv/bin/python bench/recommend_answer.py --app-dir /tmp/before # another checkout's code
    .venv/bin/python bench/recommend_answer.py --tiny                # seconds, CI
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.recommend_serving import log


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--tiny",
        "--quick",
        dest="tiny",
        action="store_true",
        help="a tiny throw-away store (600 shoppers, 300 products), 1 round: checks that it works",
    )
    p.add_argument(
        "--db-name",
        default="precis_bench_recommend_serving",
        help="the full-size store (built by bench/recommend_serving.py --reuse)",
    )
    p.add_argument("--concurrency", type=int, default=50, help="tasks answering at once (50)")
    p.add_argument("--answers", type=int, help="requests per phase and round (default 6,000)")
    p.add_argument("--rounds", type=int, help="rounds of the three phases (default 5)")
    p.add_argument(
        "--baseline-connections",
        type=int,
        default=20,
        help="connections of the baseline's bare statement, one per task (default 20)",
    )
    p.add_argument(
        "--app-dir",
        type=Path,
        help="time the domain/ and recommend/ packages of another checkout (git archive unpacked)",
    )
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Settings field for the server, e.g. db_pool_size=50 (repeatable)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = p.parse_args(argv)
    args.answers = args.answers or (200 if args.tiny else 6000)
    args.rounds = args.rounds or (1 if args.tiny else 5)
    if args.concurrency < 1 or args.answers < 1 or args.baseline_connections < 1:
        p.error("--concurrency, --answers and --baseline-connections must be at least 1")
    try:
        args.settings = dict(item.split("=", 1) for item in args.setting)
    except ValueError:
        p.error("--setting takes NAME=VALUE")
    return args


# --- the store -------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_store(args: argparse.Namespace) -> Iterator[tuple[str, argparse.Namespace]]:
    """(database URL, the serving bench's arguments): the tiny store built now and dropped at the
    end, or the full-size one as bench/recommend_serving.py left it (never rebuilt here)."""
    from bench import common
    from bench import recommend_serving as rs

    if args.tiny:
        sargs = rs.parse_args(["--tiny", "--components", "trending,itemknn,content,together"])
        with rs.store(sargs) as st:
            ts = rs.generate(sargs)
            asyncio.run(rs.build_store(st, sargs, ts.__dict__["_groups"]))
            blob, _ = rs.train(ts, sargs)
            asyncio.run(rs.store_version(st, blob, sargs))
            shoppers = rs.load_shoppers(sargs)
            asyncio.run(rs.session_events(st, shoppers, rs.recent_products(sargs, shoppers)))
            asyncio.run(common.analyze(st.benv))
            yield st.url, sargs
        return
    from bench.segments import _db_comment

    sargs = rs.parse_args(["--db-name", args.db_name])
    meta = asyncio.run(_db_comment(args.db_name))
    wanted = rs.wanted_meta(sargs)
    if not meta or any(meta.get(k) != v for k, v in wanted.items()):
        raise SystemExit(
            f"{args.db_name} is not the full-size serving store ({meta}); build it with "
            "bench/recommend_serving.py --reuse"
        )
    yield common._with_db(common.PG_ADMIN_URL, args.db_name), sargs


def asks(sargs: argparse.Namespace) -> list[Any]:
    """The serving bench's requests (``bodies``) as the API layer turns them into ``Ask``s."""
    from api.ids import decode_id
    from bench import recommend_serving as rs
    from domain.recommend.serving import Ask, Filter

    shoppers = rs.load_shoppers(sargs)
    out = []
    for cid, (body, _headers) in zip(
        shoppers, rs.bodies(sargs, shoppers, dict.fromkeys(shoppers, "")), strict=True
    ):
        data = json.loads(body)["variables"]["input"]
        flt = data.get("filter") or {}
        price = flt.get("priceRange") or {}
        categories = flt.get("categories")
        out.append(
            Ask(
                surface="recommendations",
                scenario=data["scenario"],
                customer_id=cid,
                recent=tuple(decode_id(r, "Product")[1] for r in data["recentProductIds"]),
                first=data["first"],
                filter=Filter(
                    categories=None
                    if categories is None
                    else tuple(decode_id(c, "Category")[1] for c in categories),
                    price_min=None if price.get("min") is None else Decimal(price["min"]),
                    price_max=None if price.get("max") is None else Decimal(price["max"]),
                    in_stock_only=bool(flt.get("inStockOnly")),
                ),
            )
        )
    return out


# --- timing ----------------------------------------------------------------------------------


class RankTimer:
    """Wraps a loaded bundle's ``rank``: the time spent in it, and (while ``record`` is set) the
    inputs ``answer()`` gave it, for the baseline."""

    def __init__(self, bundle: Any) -> None:
        self.bundle = bundle
        self.original = bundle.rank
        self.seconds = 0.0
        self.calls = 0
        self.record: list[tuple[Any, Any]] | None = None
        bundle.rank = self

    def __call__(self, request: Any, view: Any) -> Any:
        if self.record is not None:
            self.record.append((request, view))
        started = time.thread_time()  # CPU time, as the phases count: not other processes'
        try:
            return self.original(request, view)
        finally:
            self.seconds += time.thread_time() - started
            self.calls += 1


async def drive(n: int, workers: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """``one(i)`` for i in 0..n-1 on ``workers`` tasks; the process CPU seconds it took."""
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            await one(i)

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.process_time() - started


def connect_kwargs(url: str) -> dict[str, Any]:
    """asyncpg.connect arguments for a SQLAlchemy URL, as the engine connects (no TLS to
    loopback)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return {
        "host": u.host,
        "port": u.port or 5432,
        "user": u.username,
        "password": u.password,
        "database": u.database,
        "ssl": False,
    }


async def measure(url: str, sargs: argparse.Namespace, args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg

    from domain.columns import utcnow
    from domain.db import Database
    from domain.recommend.serving import RecommendationServer, _compiled
    from domain.settings import Settings

    values: dict[str, Any] = {"recommend_session_minutes": 1440, **args.settings}
    settings = Settings(
        database_url=url,
        var_dir=Path(tempfile.mkdtemp(prefix="precis-bench-answer-")),
        redis_url=None,
        _env_file=None,  # type: ignore[call-arg]
        **values,
    )
    requests = asks(sargs)
    db = Database(settings)
    server = RecommendationServer(db, settings)
    server.start(warm=False)
    baseline_conns: list[Any] = []
    try:
        first = await server.answer(requests[0])
        if server.active is None:
            raise SystemExit(f"no model serves: {server.health()}")
        timer = RankTimer(server.active.bundle)
        timer.record = []
        personal = items = 0
        for ask in requests:  # the warm-up, one at a time: records rank's inputs per request
            before = len(timer.record)
            answer = await server.answer(ask)
            personal += answer.personal
            items += len(answer.items)
            if len(timer.record) != before + 1 or answer.model_version is None:
                raise SystemExit(f"{ask}: not ranked once by the model ({answer.fallback})")
        inputs, timer.record = timer.record, None
        log(
            f"{len(requests):,} distinct requests: {items / len(requests):.1f} items per answer, "
            f"{personal:,} personal; model version {first.model_version}"
        )
        await server.impressions.flush()
        sql, order, constants = _compiled(db.engine.dialect, True, False)
        since = utcnow()
        for _ in range(args.baseline_connections):
            con = await asyncpg.connect(**connect_kwargs(url))
            baseline_conns.append((con, await con.prepare(sql)))
        gc.collect()
        gc.freeze()  # as the API process does after start-up (api/app.py)
        if settings.gc_threshold > 0:
            gc.set_threshold(settings.gc_threshold, *gc.get_threshold()[1:])

        n = args.answers
        rank = timer.original

        async def answer_one(i: int) -> None:
            await server.answer(requests[i % len(requests)])

        async def read_one(i: int) -> None:
            await server._read_shopper(requests[i % len(requests)], utcnow())

        async def phase_answer() -> dict[str, float]:
            timer.seconds, timer.calls = 0.0, 0
            cpu = await drive(n, args.concurrency, answer_one)
            started = time.process_time()
            await server.impressions.flush()
            cpu += time.process_time() - started
            return {"cpu": cpu / n, "rank": timer.seconds / max(timer.calls, 1)}

        async def phase_read() -> dict[str, float]:
            return {"cpu": await drive(n, args.concurrency, read_one) / n}

        async def phase_baseline() -> dict[str, float]:
            todo = iter(range(n))
            ranked = 0.0

            async def worker(stmt: Any) -> None:
                nonlocal ranked
                for i in todo:
                    ask = requests[i % len(requests)]
                    params = {"cid": ask.customer_id, "since": since}
                    await stmt.fetch(*(params.get(k, constants.get(k)) for k in order))
                    request, view = inputs[i % len(inputs)]
                    started = time.thread_time()
                    rank(request, view)
                    ranked += time.thread_time() - started

            started = time.process_time()
            await asyncio.gather(*(worker(stmt) for _con, stmt in baseline_conns))
            return {"cpu": (time.process_time() - started) / n, "rank": ranked / n}

        phases: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {
            "answer": phase_answer,
            "read": phase_read,
            "baseline": phase_baseline,
        }
        rounds: list[dict[str, dict[str, float]]] = []
        names = list(phases)
        for r in range(args.rounds):
            order_ = names[r % 3 :] + names[: r % 3]
            got = {name: await phases[name]() for name in order_}
            rounds.append(got)
            log(
                f"round {r + 1}/{args.rounds} ({', '.join(order_)}): answer "
                f"{1000 * got['answer']['cpu']:.3f} ms (rank {1000 * got['answer']['rank']:.3f}), "
                f"read {1000 * got['read']['cpu']:.3f} ms, baseline "
                f"{1000 * got['baseline']['cpu']:.3f} ms (rank {1000 * got['baseline']['rank']:.3f})"
                f"; load {os.getloadavg()[0]:.2f}"
            )
        return {"rounds": rounds, "requests": len(requests), "personal": personal}
    finally:
        for con, _stmt in baseline_conns:
            await con.close()
        await server.stop()
        await db.dispose()


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    rounds = result["rounds"]

    def ms(phase: str, key: str) -> list[float]:
        return [1000 * r[phase][key] for r in rounds]

    def line(label: str, values: list[float]) -> str:
        return (
            f"{label:32} {statistics.median(values):7.3f} ms  ({min(values):.3f}-{max(values):.3f})"
        )

    answer, read, base = ms("answer", "cpu"), ms("read", "cpu"), ms("baseline", "cpu")
    answer_rank, base_rank = ms("answer", "rank"), ms("baseline", "rank")
    rest = [a - r - s for a, r, s in zip(answer, answer_rank, read, strict=True)]
    ratios = [a / b for a, b in zip(answer, base, strict=True)]
    print(
        f"CPU per request, {args.concurrency} concurrent, {args.answers:,} requests a phase, "
        f"{args.rounds} rounds (median, range):"
    )
    print(line("answer()", answer))
    print(line("  of it Bundle.rank", answer_rank))
    print(line("  the shopper read (alone)", read))
    print(line("  the rest", rest))
    print(line("baseline: statement + rank", base))
    print(line("  of it Bundle.rank", base_rank))
    print(line("  the bare statement", [b - r for b, r in zip(base, base_rank, strict=True)]))
    print(f"ratio answer / baseline: {statistics.median(ratios):.2f}")
    print(f"ratios per round: {', '.join(f'{x:.2f}' for x in ratios)}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"args": vars(args) | {"app_dir": str(args.app_dir)}, **result},
                indent=2,
                default=str,
            )
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.app_dir is not None:
        # Before any project import: domain/ and recommend/ from there, bench/ from here.
        sys.path.insert(0, str(args.app_dir.resolve()))
        import bench

        bench.__path__.insert(0, str(Path(__file__).resolve().parent))
    log(f"load average {os.getloadavg()[0]:.2f}; code from {args.app_dir or 'this checkout'}")
    with bench_store(args) as (url, sargs):
        result = asyncio.run(measure(url, sargs, args))
    report(args, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
