"""Serving recommendations under load (issue 6, Performance, second bullet).

``recommendations(input: {me: true, scenario: HOME, recentProductIds, first: 10, filter})`` through
GraphQL with shopper tokens, at 50 concurrent connections, against a plain Starlette endpoint
returning a cached JSON answer of the same shape, both served by uvicorn the same way, driven
alternately (A/B/A/B, which goes first alternates) by ``wrk`` (or ``bench/loadgen.py``) from another
process. Reported per round: requests/s, p50, p99, the server's CPU (and CPU ms per request; all
its worker processes) and the CPU ms per request of the bench database's PostgreSQL backends; then the medians and the median of the per-round ratios rps(graphql) / rps(plain) (target
>= 0.4; p50 < 15 ms, p99 < 50 ms). A third target, for scale, is the GraphQL floor: ``{ __typename }``
through the same server with the same tokens (auth, parse, validate, execute, HTTP; no resolver).
A fourth, the reference (``--no-reference`` leaves it out), is the least real work of the answer in
plain Starlette: the shopper token verified by the app's ``TokenVerifier``, the shopper's
precomputed list looked up in the loaded bundle and its products in a dict, JSON of the same shape
(``create_reference_app``); reported as recommendations/reference next to the other ratios.

The store (PostgreSQL database ``precis_bench_recommend_serving``, migrated with the project's
migrations; created if absent, kept and reused with ``--reuse``):

* 100,000 customers (``c<n>``); ``personalization`` consent refused by 4 % of them, granted by 36 %,
  no record for the rest (the default applies);
* a category tree of 5 roots, 10 sub-categories and 50 leaves; 20,000 products (``p<n>``), each in
  the leaf of its taste group, 200 brands, prices 5-305 EUR, stock untracked for 30 %, 0 for 8 %,
  2 % inactive and 2 % archived;
* for the shoppers the load uses, 3 product events each (views and an add to cart) of the last
  few minutes: the stored session signals (re-written on every run, so a reused store has them
  within the session window);
* a model version: 5,000,000 interactions generated with ``bench/recommend_scale.generate`` (50
  taste groups, Zipf popularity; user row ``i`` is customer ``i + 1``, item column ``j`` product
  ``j + 1``), the components of ``--components`` fitted on all of it with fixed blend weights (no
  tuning: the serving cost does not depend on them), ``recommend.serving.Bundle.build``, stored as
  the ``active`` ``model_version`` row (``serving`` + ``serving_sha256``; no pickled artifact). The
  built bundle is cached on disk (``--cache-dir``, keyed by the database name, the sizes, the
  components and the bundle format), so ``--reuse`` skips the training (``--retrain`` does not).

The request mix: shopper ``i`` of ``--shoppers`` (each with its own token from a real token exchange
at ``/oauth/token``) asks for HOME with 2 recent product ids and one of four filters: a category
(a root or a sub-category), a price range, ``inStockOnly``, a category and ``inStockOnly``. Every
distinct request is sent in turn (``wrk`` Lua ``request()`` cycling through them; the Python
generator the same way). Before measuring, a sample of them is sent once: any error stops the
bench, and the items per answer and how many were personal are logged.

    .venv/bin/python bench/recommend_serving.py --reuse              # full size, PostgreSQL
    .venv/bin/python bench/recommend_serving.py --reuse --profile /tmp/serving.txt  # + py-spy
    .venv/bin/python bench/recommend_serving.py --tiny               # seconds, for CI
    .venv/bin/python bench/recommend_serving.py --reuse --workers 2 --server-env PRECIS_DB_POOL_SIZE=55
    .venv/bin/python bench/recommend_serving.py --reuse --app-dir /tmp/head  # git archive HEAD there
    .venv/bin/python bench/recommend_serving.py --tiny --database sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.common import Load

GENERATOR_VERSION = 1
DB_NAME = "precis_bench_recommend_serving"
FULL = {"users": 100_000, "products": 20_000, "interactions": 5_000_000, "shoppers": 2_000}
TINY = {"users": 600, "products": 300, "interactions": 12_000, "shoppers": 40}
GROUPS = 50  # taste groups of the generator = leaf categories
ROOTS = ("Home", "Garden", "Kitchen", "Fashion", "Sports")
PRIME = 2_147_483_647
DEFAULT_COMPONENTS = "trending,itemknn,als,content,together"
HOME_WEIGHTS = {"als": 1.0, "itemknn": 1.0, "trending": 0.25, "content": 0.25, "popularity": 0.25}
SESSION_KINDS = ("view", "view", "add_to_cart")
TARGET_RATIO, TARGET_P50, TARGET_P99 = 0.4, 15.0, 50.0
# The GraphQL floor: the same server, token and HTTP path, an operation that does nothing.
FLOOR_BODY = b'{"query":"query Floor { __typename }"}'
LABELS = {
    "graphql": "recommendations graphql",
    "plain": "plain Starlette (cached)",
    "floor": "{ __typename } graphql (floor)",
    "reference": "reference: token + cached list (Starlette)",
}
QUERY = (
    "query Recs($input: RecommendationsInput!) { recommendations(input: $input) { "
    "recommendationId modelVersion personal fallback "
    "items { product { id title brand price { amount currency } inStock } score reason } "
    "errors { code message } } }"
)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--tiny",
        "--quick",
        dest="tiny",
        action="store_true",
        help="tiny store (600 shoppers, 300 products) in a throw-away database, 1 round of 1 s: "
        "checks that it works",
    )
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument(
        "--reuse",
        action="store_true",
        help=f"keep the database (--db-name, default {DB_NAME}) and reuse it and the cached "
        "bundle when the sizes match",
    )
    p.add_argument(
        "--retrain", action="store_true", help="with --reuse: train again, ignore the cache"
    )
    p.add_argument("--db-name", default=DB_NAME, help="PostgreSQL database of the full-size store")
    p.add_argument("--users", type=int, help="customers (default 100,000)")
    p.add_argument("--products", type=int, help="products (default 20,000)")
    p.add_argument("--interactions", type=int, help="training interactions (default 5,000,000)")
    p.add_argument(
        "--shoppers", type=int, help="shoppers in the load, one token each (default 2,000)"
    )
    p.add_argument(
        "--components",
        default=DEFAULT_COMPONENTS,
        help=f"hybrid components (default {DEFAULT_COMPONENTS})",
    )
    p.add_argument("--connections", type=int, help="concurrent connections (default 50; 4 tiny)")
    p.add_argument("--rounds", type=int, help="A/B rounds (default 5; 1 tiny)")
    p.add_argument("--duration", type=float, help="seconds per run (default 10; 1 tiny)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per target (default 5; 0 tiny)")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "precis-bench",
        help="where the built bundle is cached (default $TMPDIR/precis-bench)",
    )
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="after the rounds, sample the server with py-spy during one more 15 s GraphQL run "
        "(raw collapsed stacks) and print the phases and the functions taking the most samples",
    )
    p.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="leave out the third target, `{ __typename }` through the same GraphQL server with "
        "the same tokens (what any GraphQL request costs here, for scale)",
    )
    p.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="leave out the reference target: a plain Starlette endpoint doing the least real "
        "work of the answer (verify the shopper token with the app's TokenVerifier, look up the "
        "shopper's precomputed list in the loaded bundle and its products in a dict, JSON)",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the GraphQL server, e.g. PRECIS_DB_POOL_SIZE=50 (repeatable)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes of both servers (precis serve --workers; default 1)",
    )
    p.add_argument(
        "--app-dir",
        type=Path,
        default=common.REPO,
        help="serve the code of another checkout (e.g. `git archive HEAD` unpacked, to measure a "
        "commit while the working tree changes)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = p.parse_args(argv)
    sizes = TINY if args.tiny else FULL
    for key in ("users", "products", "interactions", "shoppers"):
        value = getattr(args, key)
        if value is None:
            setattr(args, key, sizes[key])
        elif value < 1:
            p.error(f"--{key} must be at least 1")
    if args.products < GROUPS:
        p.error(f"--products must be at least {GROUPS} (one per taste group)")
    if args.interactions < args.users:
        p.error("--interactions must be at least --users")
    if args.shoppers > args.users:
        p.error("--shoppers must not be more than --users")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    args.connections = args.connections or (4 if args.tiny else 50)
    args.rounds = args.rounds or (1 if args.tiny else 5)
    args.duration = args.duration or (1.0 if args.tiny else 10.0)
    if args.warmup is None:
        args.warmup = 0.0 if args.tiny else 5.0
    if args.database == "sqlite" and not args.tiny:
        p.error("the full-size store is PostgreSQL only; --database sqlite needs --tiny")
    try:
        args.server_environ = dict(item.split("=", 1) for item in args.server_env)
    except ValueError:
        p.error("--server-env takes NAME=VALUE")
    if args.tiny and args.reuse:
        p.error("--tiny builds a throw-away database; --reuse is for the full-size store")
    from recommend.components import SpecError, make, split_specs

    try:
        args.specs = split_specs(args.components)
        for spec in args.specs:
            make(spec)
    except SpecError as exc:
        p.error(f"--components: {exc}")
    return args


# --- SQL -------------------------------------------------------------------------------------


class Dialect:
    def __init__(self, database: str, now: dt.datetime) -> None:
        self.pg = database == "postgres"
        self.now_text = now.strftime("%Y-%m-%d %H:%M:%S")

    def series(self, first: int, last: int) -> str:
        if self.pg:
            return f"generate_series({first}, {last}) AS s(n)"
        return (
            f"(WITH RECURSIVE r(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM r "
            f"WHERE n < {last}) SELECT n FROM r) AS s"
        )

    def now(self) -> str:
        return f"TIMESTAMPTZ '{self.now_text}+00'" if self.pg else f"'{self.now_text}.000000'"

    def ago(self, seconds: str) -> str:
        if self.pg:
            return f"({self.now()} - ({seconds}) * INTERVAL '1 second')"
        return f"(datetime('{self.now_text}', '-' || ({seconds}) || ' seconds') || '.000000')"


def h(expr: str, mult: int) -> str:
    """A pseudo-random integer in [0, PRIME) from an integer expression."""
    return f"((CAST({expr} AS BIGINT) * {mult}) % {PRIME})"


def categories() -> list[tuple[int, int | None, str, str, int]]:
    """(id, parent, name, path, depth): 5 roots, 2 sub-categories each, 5 leaves each; leaf ``g``
    (0-based, in id order) is taste group ``g``."""
    rows: list[tuple[int, int | None, str, str, int]] = []
    next_id = 1
    mids: list[tuple[int, str]] = []
    for root in ROOTS:
        rows.append((next_id, None, root, root, 0))
        root_id = next_id
        next_id += 1
        for m in ("A", "B"):
            path = f"{root} > {m}"
            rows.append((next_id, root_id, m, path, 1))
            mids.append((next_id, path))
            next_id += 1
    for mid_id, mid_path in mids:
        for leaf in range(5):
            name = f"Leaf {leaf}"
            rows.append((next_id, mid_id, name, f"{mid_path} > {name}", 2))
            next_id += 1
    return rows


def leaf_ids() -> list[int]:
    return [cid for cid, _p, _n, _path, depth in categories() if depth == 2]


# --- the store -------------------------------------------------------------------------------


@dataclasses.dataclass
class Store:
    database: str
    url: str
    benv: common.BenchEnv
    reused: bool
    meta: dict[str, Any]


def _keys_env(database: str, url: str, var_dir: Path) -> common.BenchEnv:
    """Production settings with keys generated in ``var_dir`` (as ``common.bench_env`` does)."""
    from domain.keys import build_keys
    from domain.settings import Settings

    dev = Settings(env="dev", var_dir=var_dir, database_url=url, _env_file=None)  # type: ignore[call-arg]
    build_keys(dev)
    stored = json.loads((var_dir / "keys.json").read_text())
    extra = {
        "signing_keys": json.dumps(stored["signing_keys"]),
        "encryption_keys": stored["encryption_keys"],
        "lookup_key": stored["lookup_key"],
    }
    return common.BenchEnv(database, var_dir, url, "prod", extra)


def wanted_meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "generator": GENERATOR_VERSION,
        "users": args.users,
        "products": args.products,
        "interactions": args.interactions,
    }


@contextlib.contextmanager
def store(args: argparse.Namespace) -> Iterator[Store]:
    """The migrated database: throw-away for --tiny, else the dedicated PostgreSQL database (built
    when absent or of other sizes; dropped at the end unless --reuse)."""
    from bench.segments import _admin, _db_comment, migrate

    if args.tiny:
        with common.bench_env(args.database, env="prod") as benv:
            yield Store(args.database, benv.database_url, benv, False, {})
        return
    name = args.db_name
    url = common._with_db(common.PG_ADMIN_URL, name)
    var_dir = Path(tempfile.mkdtemp(prefix="precis-bench-serving-"))
    try:
        meta = asyncio.run(_db_comment(name)) if args.reuse else None
        wanted = wanted_meta(args)
        reused = bool(meta) and all((meta or {}).get(k) == v for k, v in wanted.items())
        if reused:
            log(f"reusing {name} (built {(meta or {}).get('built_at')})")
        else:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            meta = {}
        migrate(url)
        yield Store("postgres", url, _keys_env("postgres", url, var_dir), reused, meta or {})
    finally:
        if not args.reuse:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(var_dir, ignore_errors=True)


async def build_store(st: Store, args: argparse.Namespace, item_leaf: list[int]) -> None:
    """Categories, products, customers and consents (one statement each, in the database)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    d = Dialect(st.database, dt.datetime.now(dt.UTC))
    now = d.now()
    cats = categories()
    leaves = leaf_ids()
    values = ", ".join(
        f"({cid}, {'NULL' if parent is None else parent}, '{name}', '{path}', {depth})"
        for cid, parent, name, path, depth in cats
    )
    leaf_case = "CASE " + " ".join(f"WHEN g = {g} THEN {leaves[g]}" for g in range(GROUPS)) + " END"
    # The taste group of every product (from the generator), as a series of its own.
    groups_sql = ", ".join(f"({j + 1}, {g})" for j, g in enumerate(item_leaf))
    stock = (
        f"CASE WHEN {h('n', 2654435761)} % 100 < 30 THEN NULL "
        f"WHEN {h('n', 2654435761)} % 100 < 38 THEN 0 ELSE 1 + {h('n', 2246822519)} % 100 END"
    )
    days_ago = f"86400 * (1 + {h('n', 1597334677)} % 60)"
    steps: list[tuple[str, str]] = [
        ("categories", f"INSERT INTO category (id, parent_id, name, path, depth) VALUES {values}"),
        (
            "products",
            "INSERT INTO product (id, external_id, title, description, category_id, brand, price, "
            "currency, stock, active, archived_at, attributes, created_at, updated_at) "
            f"SELECT n, 'p' || n, 'Product ' || n, 'Generated product ' || n, {leaf_case}, "
            f"'Brand ' || ({h('n', 3266489917)} % 200), "
            f"CAST(5 + {h('n', 668265263)} % 30000 / 100.0 AS NUMERIC(12, 2)), 'EUR', {stock}, "
            f"{h('n', 374761393)} % 100 >= 2, "
            f"CASE WHEN {h('n', 1103515245)} % 100 < 2 THEN {now} END, '{{}}', {now}, {now} "
            f"FROM (SELECT column1 AS n, column2 AS g FROM (VALUES {groups_sql}) AS v) AS pg",
        ),
        (
            "customers",
            "INSERT INTO customer (id, external_id, first_name, last_name, locale, timezone, "
            "country, attributes, created_at, updated_at) "
            f"SELECT n, 'c' || n, 'First' || n, 'Last' || n, 'de-DE', 'Europe/Berlin', 'DE', "
            f"'{{}}', {now}, {now} FROM {d.series(1, args.users)}",
        ),
        (
            "consents",
            "INSERT INTO consent (customer_id, purpose, granted, source, policy_version, "
            "actor_client_id, recorded_at) "
            f"SELECT n, 'personalization', {h('n', 2024237689)} % 100 >= 4, 'web', 'v1', "
            f"'bench', {d.ago(days_ago)} "
            f"FROM {d.series(1, args.users)} WHERE {h('n', 2024237689)} % 100 < 40",
        ),
    ]
    engine = create_async_engine(st.url)
    try:
        for label, sql in steps:
            started = time.perf_counter()
            async with engine.begin() as conn:
                if d.pg:
                    await conn.execute(text("SET LOCAL synchronous_commit = off"))
                result = await conn.execute(text(sql))
            log(f"  {label}: {result.rowcount:,} rows in {time.perf_counter() - started:.1f} s")
        if d.pg:
            async with engine.begin() as conn:
                for t in ("category", "product", "customer"):
                    await conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT MAX(id) FROM {t}))"
                        )
                    )
    finally:
        await engine.dispose()


async def session_events(st: Store, shoppers: list[int], recent: dict[int, list[int]]) -> int:
    """The load's shoppers' stored session signals: their last product events, minutes old.
    Earlier runs' are deleted first (they would have aged out of the session window)."""
    from sqlalchemy import insert, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from domain.events.models import Event

    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%d%H%M%S")
    rows = []
    for cid in shoppers:
        for k, pid in enumerate(recent[cid]):
            at = now - dt.timedelta(seconds=60 * (len(recent[cid]) - k) + 5)
            rows.append(
                {
                    "client_event_id": f"bench-sess-{stamp}-{cid}-{k}",
                    "customer_id": cid,
                    "type": SESSION_KINDS[k % len(SESSION_KINDS)],
                    "product_id": pid,
                    "properties": {},
                    "source_client_id": "bench",
                    "occurred_at": at,
                    "received_at": now,
                }
            )
    engine = create_async_engine(st.url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM event WHERE client_event_id LIKE 'bench-sess-%'"))
            await conn.execute(text("DELETE FROM recommendation_impression"))
            for start in range(0, len(rows), 5000):
                await conn.execute(insert(Event), rows[start : start + 5000])
    finally:
        await engine.dispose()
    return len(rows)


# --- the model -------------------------------------------------------------------------------


def bundle_path(args: argparse.Namespace) -> Path:
    """Where the bundle of these sizes and components is cached. The key holds the bundle
    format's magic, not the recommender's source: a cached bundle that no longer loads is rebuilt,
    one that loads is served by the current ranking code (``--retrain`` rebuilds it anyway)."""
    from recommend.serving import MAGIC

    key = hashlib.sha256(
        json.dumps(
            {
                **{k: getattr(args, k) for k in ("users", "products", "interactions")},
                "components": args.specs,
                "weights": HOME_WEIGHTS,
                "generator": GENERATOR_VERSION,
                "format": MAGIC.decode().strip(),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    return args.cache_dir / f"{args.db_name}-{key}.bundle"


def generate(args: argparse.Namespace) -> Any:
    """The training set, keyed by customer and product ids (strings, as the service trains)."""
    import numpy as np

    from bench.recommend_scale import generate as scale_generate

    started = time.perf_counter()
    ts = scale_generate(args.users, args.products, args.interactions, groups=GROUPS, seed=0)
    paths = {cid: path for cid, _p, _n, path, depth in categories() if depth == 2}
    leaves = leaf_ids()
    groups = [int(c[1:]) for c in (ts.item_category or [])]
    users = np.array([str(i + 1) for i in range(ts.n_users)], dtype=object)
    items = np.array([str(j + 1) for j in range(ts.n_items)], dtype=object)
    ts = dataclasses.replace(
        ts,
        users=users,
        items=items,
        item_category=[paths[leaves[g]] for g in groups],
        user_index={u: i for i, u in enumerate(users.tolist())},
        item_index={it: j for j, it in enumerate(items.tolist())},
    )
    ts.__dict__["_groups"] = groups
    log(
        f"generated {args.interactions:,} interactions in {time.perf_counter() - started:.1f} s "
        f"({ts.matrix.nnz:,} distinct shopper-product pairs)"
    )
    return ts


def train(ts: Any, args: argparse.Namespace) -> tuple[bytes, dict[str, float]]:
    """Fit the components, blend, build and serialise the serving bundle."""
    from recommend.components import make
    from recommend.hybrid import Hybrid, default_weights
    from recommend.serving import Bundle

    seconds: dict[str, float] = {}
    components = {}
    for spec in args.specs:
        started = time.perf_counter()
        comp = make(spec).fit(ts)
        components[comp.name] = comp
        seconds[f"fit {comp.name}"] = time.perf_counter() - started
        log(f"  fit {spec}: {seconds[f'fit {comp.name}']:.1f} s")
    home = {n: w for n, w in HOME_WEIGHTS.items() if n in components}
    if not home:
        home = {next(iter(components)): 1.0}
    hybrid = Hybrid(ts, components, default_weights(home))
    started = time.perf_counter()
    bundle = Bundle.build(hybrid)
    seconds["bundle build"] = time.perf_counter() - started
    log(f"  Bundle.build: {seconds['bundle build']:.1f} s")
    started = time.perf_counter()
    blob = bundle.dumps()
    seconds["dumps"] = time.perf_counter() - started
    started = time.perf_counter()
    Bundle.loads(blob)
    seconds["loads"] = time.perf_counter() - started
    log(f"  bundle {len(blob) / 2**20:.1f} MB, loads {seconds['loads']:.2f} s")
    return blob, seconds


async def store_version(st: Store, blob: bytes, args: argparse.Namespace) -> tuple[int, bool]:
    """The bundle as the active model version (earlier bench versions retired); an active
    version with the same checksum is kept as it is."""
    from sqlalchemy import select, update
    from sqlmodel import col

    from domain.db import Database
    from domain.recommend.models import ModelVersion
    from recommend.serving import Bundle

    sha = Bundle.sha256_of(blob)
    db = Database(st.benv.settings())
    try:
        async with db.unit_of_work() as session:
            active = (
                await session.execute(
                    select(col(ModelVersion.id), col(ModelVersion.serving_sha256)).where(
                        col(ModelVersion.status) == "active"
                    )
                )
            ).first()
            if active is not None and active.serving_sha256 == sha:
                return int(active.id), False
            await session.execute(
                update(ModelVersion)
                .where(col(ModelVersion.status) == "active")
                .values(status="retired")
            )
            await session.flush()
            row = ModelVersion(
                algorithm=",".join(args.specs)[:500],
                parameters={"algorithms": args.specs, "home_weights": HOME_WEIGHTS, "bench": True},
                interactions=args.interactions,
                users=args.users,
                items=args.products,
                metrics={},
                status="active",
                serving=blob,
                serving_sha256=sha,
                promoted_by="bench/recommend_serving.py",
                promoted_at=dt.datetime.now(dt.UTC),
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            return int(row.id), True
    finally:
        await db.dispose()


# --- requests --------------------------------------------------------------------------------


def load_shoppers(args: argparse.Namespace) -> list[int]:
    """Customer ids of the load: spread over all shoppers, deterministic."""
    rng = random.Random(7)
    return sorted(rng.sample(range(1, args.users + 1), args.shoppers))


def recent_products(args: argparse.Namespace, shoppers: list[int]) -> dict[int, list[int]]:
    """Three products per shopper for the stored session, from the first half of the catalogue."""
    rng = random.Random(11)
    pool = max(args.products // 2, 1)
    return {cid: [rng.randint(1, pool) for _ in range(3)] for cid in shoppers}


async def exchange_tokens(url: str, st: Store, shoppers: list[int]) -> dict[int, str]:
    """A shopper token per customer, from the token endpoint (RFC 8693 exchange by a delegate
    client holding ``shoppers:delegate``)."""
    import httpx

    from domain.auth import service
    from domain.auth.shoppers import EXTERNAL_ID_TYPE, TOKEN_EXCHANGE
    from domain.db import Database

    db = Database(st.benv.settings())
    try:
        async with db.unit_of_work() as session:
            made = await service.create_client(
                session,
                name=f"bench storefront {time.time():.0f}",
                scopes="shoppers:delegate",
                grant_types=["client_credentials", TOKEN_EXCHANGE],
            )
    finally:
        await db.dispose()
    auth = (made.client.id, made.secret)
    tokens: dict[int, str] = {}
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(cid: int) -> None:
            async with sem:
                response = await client.post(
                    "/oauth/token",
                    data={
                        "grant_type": TOKEN_EXCHANGE,
                        "subject_token": f"c{cid}",
                        "subject_token_type": EXTERNAL_ID_TYPE,
                        "scope": "recommendations:read",
                    },
                    auth=auth,
                )
            if response.status_code != 200:
                raise RuntimeError(f"token exchange for c{cid}: {response.text}")
            tokens[cid] = response.json()["access_token"]

        await asyncio.gather(*(one(cid) for cid in shoppers))
    return tokens


def bodies(
    args: argparse.Namespace, shoppers: list[int], tokens: dict[int, str]
) -> list[tuple[bytes, dict[str, str]]]:
    """One request per shopper: HOME, 2 recent products, first 10, one of four filters."""
    import orjson

    from api.ids import encode_id

    rng = random.Random(13)
    tops = [cid for cid, parent, _n, _p, depth in categories() if depth < 2]
    out = []
    for i, cid in enumerate(shoppers):
        recent = [encode_id("Product", rng.randint(1, args.products)) for _ in range(2)]
        kind = i % 4
        flt: dict[str, Any]
        if kind == 0:
            flt = {"categories": [encode_id("Category", rng.choice(tops))]}
        elif kind == 1:
            low = rng.choice((0, 20, 50))
            flt = {"priceRange": {"min": str(low), "max": str(low + 150)}}
        elif kind == 2:
            flt = {"inStockOnly": True}
        else:
            flt = {"categories": [encode_id("Category", rng.choice(tops))], "inStockOnly": True}
        variables = {
            "input": {
                "me": True,
                "scenario": "HOME",
                "recentProductIds": recent,
                "first": 10,
                "filter": flt,
            }
        }
        body = orjson.dumps({"query": QUERY, "variables": variables})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tokens[cid]}"}
        out.append((body, headers))
    return out


def check(url: str, requests: list[tuple[bytes, dict[str, str]]], sample: int) -> bytes:
    """Send a sample of the requests once: each must answer without errors; returns the body of
    the first full answer (10 items), the plain endpoint's cached answer."""
    import httpx

    rng = random.Random(17)
    picked = rng.sample(requests, min(sample, len(requests)))
    full: bytes | None = None
    counts: dict[int, int] = {}
    personal = 0
    with httpx.Client(timeout=30) as client:
        for body, headers in picked:
            response = client.post(f"{url}/graphql", content=body, headers=headers)
            data = response.json()
            if response.status_code != 200 or data.get("errors"):
                raise SystemExit(f"recommendations failed: {response.status_code} {data!r:.800}")
            payload = data["data"]["recommendations"]
            if payload.get("errors"):
                raise SystemExit(f"recommendations errors: {payload['errors']!r:.800}")
            n = len(payload["items"])
            counts[n] = counts.get(n, 0) + 1
            personal += bool(payload.get("personal"))
            if n == 10 and full is None:
                full = response.content
    log(f"checked {len(picked)} requests: items per answer {counts}, personal {personal}")
    if full is None:
        raise SystemExit("no answer in the sample had 10 items")
    return full


# --- the plain baseline ----------------------------------------------------------------------


def check_reference(url: str, requests: list[tuple[bytes, dict[str, str]]]) -> None:
    """The reference answers the load's shoppers with their lists (stops the bench if not)."""
    import httpx

    with httpx.Client(timeout=30) as client:
        counts: dict[int, int] = {}
        for body, headers in requests[:20]:
            data = client.post(f"{url}/graphql", content=body, headers=headers).json()
            if data.get("errors"):
                raise SystemExit(f"reference failed: {data!r:.500}")
            n = len(data["data"]["recommendations"]["items"])
            counts[n] = counts.get(n, 0) + 1
    log(f"reference checked 20 requests: items per answer {counts}")


def create_plain_app() -> Any:
    """The baseline: a plain Starlette app whose one route reads the request body and returns a
    cached JSON answer (a real ``recommendations`` answer, same shape and size), served by uvicorn
    exactly as the real app is. ``PRECIS_BENCH_PLAIN_BODY`` names the file holding it."""
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route

    cached = Path(os.environ["PRECIS_BENCH_PLAIN_BODY"]).read_bytes()

    async def answer(request: Request) -> Response:
        try:
            await request.body()
        except ClientDisconnect:  # the load generator stopping mid-request
            return Response(b"", status_code=499)
        return Response(cached, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/graphql", answer, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def create_reference_app() -> Any:
    """The reference: the least real work of "return the cached list" for the asking shopper,
    served by uvicorn like the others. Per request: read the body, verify the bearer token with
    the app's ``TokenVerifier`` (signature cached per token, revocations re-read as in the app),
    look up the shopper's precomputed HOME list (``Bundle.user_top_ids`` of the active model
    version, loaded at start-up) and its first 10 products in a dict of ready-made JSON objects
    (read at start-up), and return JSON of the same shape as the GraphQL answer. No filter,
    session signals, consent, explanation, impression or GraphQL."""
    import uuid

    import orjson
    from authlib.oauth2.rfc6750.errors import InvalidTokenError
    from sqlalchemy import select
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route

    from api.auth.verifier import TokenVerifier
    from api.ids import encode_id
    from domain.catalog.models import Product
    from domain.db import Database
    from domain.keys import build_keys
    from domain.recommend.models import ModelVersion
    from domain.settings import get_settings
    from domain.sql import table
    from recommend.serving import Bundle

    settings = get_settings()
    db = Database(settings)
    verifier = TokenVerifier(settings, build_keys(settings), db)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        mv, p = table(ModelVersion), table(Product)
        async with db.read_only() as session:
            blob = (
                await session.execute(select(mv.c.serving).where(mv.c.status == "active"))
            ).scalar_one()
            rows = (
                await session.execute(
                    select(p.c.id, p.c.title, p.c.brand, p.c.price, p.c.currency, p.c.stock)
                )
            ).all()
        bundle = await asyncio.to_thread(Bundle.loads, bytes(blob))
        products = {
            str(r.id): {
                "id": encode_id("Product", r.id),
                "title": r.title,
                "brand": r.brand,
                "price": {"amount": str(r.price), "currency": r.currency},
                "inStock": r.stock is None or r.stock > 0,
            }
            for r in rows
        }
        state.update(
            top=bundle.user_top_ids,
            scores=bundle.user_top_scores,
            users=bundle.user_index,
            keys=[str(k) for k in bundle.items.tolist()],
            products=products,
        )
        try:
            yield
        finally:
            await db.dispose()

    def refused(message: str) -> Response:
        body = {"data": None, "errors": [{"message": message}]}
        return Response(orjson.dumps(body), status_code=200, media_type="application/json")

    async def answer(request: Request) -> Response:
        try:
            await request.body()
        except ClientDisconnect:
            return Response(b"", status_code=499)
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return refused("use `Authorization: Bearer <access token>`")
        try:
            principal = await verifier.verify(token.strip())
        except InvalidTokenError:
            return refused("the access token is invalid, expired or revoked")
        if "recommendations:read" not in principal.scopes or principal.customer_id is None:
            return refused("a shopper token with recommendations:read")
        row = state["users"].get(str(principal.customer_id))
        items = []
        if row is not None:
            keys, products = state["keys"], state["products"]
            for j, score in zip(state["top"][row], state["scores"][row], strict=True):
                product = products.get(keys[j]) if j >= 0 else None
                if product is not None:
                    items.append(
                        {"product": product, "score": float(score), "reason": "Recommended for you"}
                    )
                    if len(items) == 10:
                        break
        payload = {
            "recommendationId": uuid.uuid4().hex,
            "modelVersion": None,
            "personal": row is not None,
            "fallback": None,
            "items": items,
            "errors": [],
        }
        body = orjson.dumps({"data": {"recommendations": payload}})
        return Response(body, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/graphql", answer, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


# --- load ------------------------------------------------------------------------------------


def _lua(value: str) -> str:
    return json.dumps(value)


def wrk_script(
    path: str, requests: list[tuple[bytes, dict[str, str]]], workdir: Path, name: str
) -> Path:
    """A wrk script sending every request in turn (formatted once in ``init``)."""
    lines = ["local reqs = {}", "local i = 0", "function init(args)"]
    for body, headers in requests:
        hdrs = ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in headers.items())
        lines.append(
            f'  reqs[#reqs + 1] = wrk.format("POST", {_lua(path)}, {{{hdrs}}}, '
            f"{_lua(body.decode())})"
        )
    lines += [
        "end",
        "function request()",
        "  i = i % #reqs + 1",
        "  return reqs[i]",
        "end",
    ]
    script = workdir / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def run_load(
    url: str,
    requests: list[tuple[bytes, dict[str, str]]],
    *,
    name: str,
    duration: float,
    connections: int,
    loadgen: str,
    workdir: Path,
) -> Load:
    if loadgen == "wrk":
        script = wrk_script("/graphql", requests, workdir, name)
        cmd = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(round(duration), 1)}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            f"{url}/graphql",
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = common._parse_wrk(out)
    else:
        spec = workdir / f"{name}.json"
        spec.write_text(
            json.dumps(
                {
                    "method": "POST",
                    "url": f"{url}/graphql",
                    "requests": [{"body": b.decode(), "headers": hd} for b, hd in requests],
                    "duration": duration,
                    "connections": connections,
                }
            )
        )
        out = subprocess.run(
            [sys.executable, str(common.REPO / "bench" / "loadgen.py"), str(spec)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        data = json.loads(out)
        result = Load(data["rps"], data["p50_ms"], data["p99_ms"], data["requests"], data["bad"])
    if result.bad:
        raise RuntimeError(f"{name}: {result.bad} failed requests of {result.requests}")
    return result


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live descendants (uvicorn's worker processes)."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += cpu_seconds(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``database`` (by its process title)."""
    out: dict[int, float] = {}
    marker = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and marker in title + b" ":
            out[int(entry.name)] = cpu_seconds(int(entry.name))
    return out


def db_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends used between two readings (backends that ended in between are
    not counted; new ones count from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclasses.dataclass
class Run:
    round: int
    target: str
    load: Load
    cpu_pct: float
    db_cpu_pct: float = float("nan")

    @property
    def cpu_ms(self) -> float:
        """Server CPU milliseconds per request."""
        return self.cpu_pct * 10 / self.load.rps if self.load.rps else float("nan")

    @property
    def db_cpu_ms(self) -> float:
        """PostgreSQL CPU milliseconds per request (the backends of the bench database)."""
        return self.db_cpu_pct * 10 / self.load.rps if self.load.rps else float("nan")


# --- profile ---------------------------------------------------------------------------------


def profile(
    pid: int, drive: Callable[[float], Load], path: str, workers: int = 1
) -> list[list[Any]]:
    """py-spy samples the server while the GraphQL load runs; prints phases and top functions."""
    duration = 15
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
            "200",
            "--format",
            "raw",
            "--output",
            path,
            "--nonblocking",
            "--threads",
            *(["--subprocesses"] if workers > 1 else []),
        ]
    )
    drive(duration + 1)
    spy.wait()
    log(f"profile written to {path}")
    return top_functions(Path(path))


WRAPPERS = (
    "<frozen runpy>",
    "click/",
    "uvicorn/",
    "_compat.py",
    "asyncio/runners.py",
    "starlette/",
    "middleware/",
    "asgi/__init__.py",
    "http/async_base_view.py",
    "http/httptools_impl.py:RequestResponseCycle.run_asgi",
    "api/app.py:BodyLimit",
    "api/app.py:PrecisGraphQL.execute_single",
    "schema/schema.py:Schema.execute",
    "schema/schema.py:Schema._execute_operation",
    "await_result",
    "get_results",
    "complete_awaitable_value",
    "await_maybe",
    "with_abort_signal",
)


def top_functions(collapsed: Path, n: int = 40) -> list[list[Any]]:
    """Inclusive and self share of the main thread's samples per function (file:function)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        if frames and "MainThread" not in frames[0]:
            continue
        count = int(count_text)
        total += count
        names = []
        for frame in frames[1:]:
            fn, _, rest = frame.partition(" (")
            file = rest.rsplit(":", 1)[0].rstrip(")")
            repo = str(common.REPO) + "/"
            short = file[len(repo) :] if file.startswith(repo) else "/".join(file.split("/")[-2:])
            names.append(f"{short}:{fn}")
        for name in set(names):
            inclusive[name] = inclusive.get(name, 0) + count
        if names:
            own[names[-1]] = own.get(names[-1], 0) + count
    total = total or 1
    # The frames every request passes through (server loop, middleware, the HTTP view, the
    # executor's awaiting wrappers) say nothing: listed are the others, then the top self times.
    rows = [
        [name, f"{100 * c / total:.1f}%", f"{100 * own.get(name, 0) / total:.1f}%"]
        for name, c in sorted(inclusive.items(), key=lambda kv: -kv[1])
        if c / total >= 0.01 and not any(w in name for w in WRAPPERS)
    ][:n]
    listed = {r[0] for r in rows}
    rows += [
        [name, f"{100 * inclusive[name] / total:.1f}%", f"{100 * c / total:.1f}%"]
        for name, c in sorted(own.items(), key=lambda kv: -kv[1])[:15]
        if name not in listed
    ]
    return rows


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loadgen = common.pick_loadgen(args.loadgen)
    started_at = dt.datetime.now(dt.UTC)
    log(f"machine: {common.machine()}; load generator: {loadgen}")
    build_seconds: dict[str, float] = {}
    with store(args) as st, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cache = bundle_path(args)
        ts = None
        if not st.reused:
            log(f"building the store ({args.users:,} shoppers, {args.products:,} products) ...")
            ts = generate(args)
            started = time.perf_counter()
            asyncio.run(build_store(st, args, ts.__dict__["_groups"]))
            build_seconds["store"] = time.perf_counter() - started
            if not args.tiny:
                from bench.segments import _set_comment

                meta = {**wanted_meta(args), "built_at": started_at.isoformat()}
                asyncio.run(_set_comment(args.db_name, meta))
        blob: bytes | None = None
        if args.reuse and cache.exists() and not args.retrain:
            from recommend.hybrid import ArtifactError
            from recommend.serving import Bundle

            blob = cache.read_bytes()
            try:
                Bundle.loads(blob)
                log(f"reusing the bundle cached in {cache}")
            except ArtifactError as exc:
                log(f"cached bundle unusable ({exc}): training again")
                blob = None
        if blob is None:
            log(f"training {','.join(args.specs)} on {args.interactions:,} interactions ...")
            if ts is None:
                ts = generate(args)
            blob, train_seconds = train(ts, args)
            build_seconds.update(train_seconds)
            if args.reuse:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp_file = cache.with_suffix(".tmp")
                tmp_file.write_bytes(blob)
                tmp_file.replace(cache)
        del ts
        version, inserted = asyncio.run(store_version(st, blob, args))
        log(f"model version {version} active ({'stored now' if inserted else 'already stored'})")
        shoppers = load_shoppers(args)
        recent = recent_products(args, shoppers)
        n_events = asyncio.run(session_events(st, shoppers, recent))
        log(f"{n_events:,} session events for {len(shoppers):,} shoppers")
        asyncio.run(common.analyze(st.benv))
        with common.server(
            st.benv, app_dir=args.app_dir, extra_env=args.server_environ, workers=args.workers
        ) as srv:
            started = time.perf_counter()
            tokens = asyncio.run(exchange_tokens(srv.url, st, shoppers))
            log(f"{len(tokens):,} shopper tokens in {time.perf_counter() - started:.1f} s")
            requests = bodies(args, shoppers, tokens)
            cached = check(srv.url, requests, 20 if args.tiny else 200)
            if args.floor:
                import httpx

                floor = httpx.post(
                    f"{srv.url}/graphql", content=FLOOR_BODY, headers=requests[0][1], timeout=30
                )
                if floor.status_code != 200 or floor.json().get("errors"):
                    raise SystemExit(f"{{ __typename }} failed: {floor.text:.500}")
            body_file = workdir / "plain.json"
            body_file.write_bytes(cached)
            with contextlib.ExitStack() as stack:
                plain = stack.enter_context(
                    common.server(
                        st.benv,
                        app="bench.recommend_serving:create_plain_app",
                        app_dir=args.app_dir,
                        workers=args.workers,
                        extra_env={"PRECIS_BENCH_PLAIN_BODY": str(body_file)},
                    )
                )
                servers = {"graphql": srv, "plain": plain}
                db_name = st.url.rpartition("/")[2] if st.database == "postgres" else ""
                sent = {"graphql": requests, "plain": requests}
                if args.floor:
                    servers["floor"] = srv
                    sent["floor"] = [(FLOOR_BODY, headers) for _body, headers in requests]
                if args.reference:
                    # The bench module is imported from this checkout whatever --app-dir serves.
                    servers["reference"] = stack.enter_context(
                        common.server(
                            st.benv,
                            app="bench.recommend_serving:create_reference_app",
                            app_dir=common.REPO,
                            workers=args.workers,
                            extra_env=args.server_environ,
                        )
                    )
                    sent["reference"] = requests
                    check_reference(servers["reference"].url, requests)

                def drive(target: str, duration: float) -> Load:
                    return run_load(
                        servers[target].url,
                        sent[target],
                        name=target,
                        duration=duration,
                        connections=args.connections,
                        loadgen=loadgen,
                        workdir=workdir,
                    )

                if args.warmup:
                    for target in servers:
                        drive(target, args.warmup)
                runs: list[Run] = []
                for r in range(args.rounds):
                    order = list(servers) if r % 2 == 0 else list(reversed(servers))
                    for target in order:
                        pid = servers[target].pid
                        db0 = backend_cpu_seconds(db_name) if db_name else {}
                        cpu0, t0 = tree_cpu_seconds(pid), time.perf_counter()
                        res = drive(target, args.duration)
                        elapsed = time.perf_counter() - t0
                        cpu = 100 * (tree_cpu_seconds(pid) - cpu0) / elapsed
                        db_cpu = float("nan")
                        if db_name:
                            used = db_cpu_delta(db0, backend_cpu_seconds(db_name))
                            db_cpu = 100 * used / elapsed
                        runs.append(Run(r + 1, target, res, cpu, db_cpu))
                        log(
                            f"round {r + 1}/{args.rounds} {target:7} {res.rps:8.0f} req/s  "
                            f"p50 {res.p50_ms:6.2f} ms  p99 {res.p99_ms:6.2f} ms  "
                            f"server CPU {cpu:4.0f} %"
                        )
                top: list[list[Any]] = []
                if args.profile:
                    top = profile(
                        srv.pid, lambda d: drive("graphql", d), args.profile, args.workers
                    )
    return report(args, loadgen, started_at, build_seconds, runs, top, n_events)


def report(
    args: argparse.Namespace,
    loadgen: str,
    started_at: dt.datetime,
    build_seconds: dict[str, float],
    runs: list[Run],
    top: list[list[Any]],
    n_events: int,
) -> int:
    by = {t: [x for x in runs if x.target == t] for t in LABELS}
    by = {t: xs for t, xs in by.items() if xs}
    per_round = [g.load.rps / p.load.rps for g, p in zip(by["graphql"], by["plain"], strict=True)]
    ratio = common.median(per_round)
    print()
    print(
        f"Serving recommendations under load: {args.database}, {args.users:,} shoppers, "
        f"{args.products:,} products, {args.interactions:,} interactions; model "
        f"{','.join(args.specs)}; {args.shoppers:,} shopper tokens; {args.connections} "
        f"connections; {args.rounds} x {args.duration:g} s; {loadgen}; "
        f"{started_at:%Y-%m-%d %H:%M} UTC"
        + ("" if args.workers == 1 else f"; {args.workers} workers each")
        + "".join(f"; {k}={v}" for k, v in args.server_environ.items())
        + ("" if args.app_dir == common.REPO else f"; serving {args.app_dir}")
    )
    print(f"machine: {common.machine()}; load average {os.getloadavg()[0]:.2f}")
    if build_seconds:
        print("build: " + ", ".join(f"{k} {v:.1f} s" for k, v in build_seconds.items()))
    print()
    print(
        common.table(
            [
                "round",
                "target",
                "req/s",
                "p50 ms",
                "p99 ms",
                "server CPU %",
                "CPU ms/req",
                "db CPU ms/req",
            ],
            [
                [
                    x.round,
                    x.target,
                    x.load.rps,
                    x.load.p50_ms,
                    x.load.p99_ms,
                    x.cpu_pct,
                    x.cpu_ms,
                    x.db_cpu_ms,
                ]
                for x in runs
            ],
        )
    )
    print()
    summary = {}
    rows = []
    for target, xs in by.items():
        summary[target] = {
            "rps": common.median([x.load.rps for x in xs]),
            "p50_ms": common.median([x.load.p50_ms for x in xs]),
            "p99_ms": common.median([x.load.p99_ms for x in xs]),
            "cpu_pct": common.median([x.cpu_pct for x in xs]),
            "cpu_ms": common.median([x.cpu_ms for x in xs]),
            "db_cpu_ms": common.median([x.db_cpu_ms for x in xs]),
        }
        s = summary[target]
        ratio_t = common.median(
            [x.load.rps / p.load.rps for x, p in zip(xs, by["plain"], strict=True)]
        )
        rows.append(
            [
                LABELS[target],
                s["rps"],
                s["p50_ms"],
                s["p99_ms"],
                s["cpu_pct"],
                s["cpu_ms"],
                s["db_cpu_ms"],
                ratio_t,
            ]
        )
    print(
        common.table(
            [
                "target",
                "req/s",
                "p50 ms",
                "p99 ms",
                "server CPU %",
                "CPU ms/req",
                "db CPU ms/req",
                "ratio",
            ],
            rows,
        )
    )
    print()
    g = summary["graphql"]
    print(
        f"ratio recommendations graphql/plain: {ratio:.3f} (target >= {TARGET_RATIO}; per round "
        f"{[round(x, 3) for x in per_round]})"
    )
    print(
        f"latency recommendations graphql: p50 {g['p50_ms']:.2f} ms (target < {TARGET_P50:g}), "
        f"p99 {g['p99_ms']:.2f} ms (target < {TARGET_P99:g})"
    )
    if "floor" in by:
        f = summary["floor"]
        print(
            f"floor {{ __typename }} graphql/plain: {f['rps'] / summary['plain']['rps']:.3f} "
            f"(medians); recommendations / floor: {g['rps'] / f['rps']:.3f}"
        )
    if "reference" in by:
        ref = summary["reference"]
        to_ref = common.median(
            [x.load.rps / r.load.rps for x, r in zip(by["graphql"], by["reference"], strict=True)]
        )
        print(
            f"reference (token + cached list)/plain: {ref['rps'] / summary['plain']['rps']:.3f} "
            f"(medians); recommendations graphql/reference: {to_ref:.3f} (median of the rounds)"
        )
    if top:
        print()
        print("top functions of the GraphQL server (py-spy, share of main-thread samples):")
        print(common.table(["function", "inclusive", "self"], top))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "size": {
                        k: getattr(args, k)
                        for k in ("users", "products", "interactions", "shoppers")
                    },
                    "components": args.specs,
                    "connections": args.connections,
                    "loadgen": loadgen,
                    "session_events": n_events,
                    "build_seconds": build_seconds,
                    "runs": [
                        {
                            "round": x.round,
                            "target": x.target,
                            **dataclasses.asdict(x.load),
                            "cpu_pct": x.cpu_pct,
                            "cpu_ms": x.cpu_ms,
                            "db_cpu_ms": x.db_cpu_ms,
                        }
                        for x in runs
                    ],
                    "summary": summary,
                    "ratio": ratio,
                    "per_round": per_round,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
