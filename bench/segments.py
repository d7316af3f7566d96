"""Segments at scale (issue 5): full refresh, preview count and per-shopper re-evaluation.

A store is generated inside the database, one ``INSERT ... SELECT`` per table over a number series
(PostgreSQL ``generate_series``, SQLite a recursive CTE); every value comes from a hash of the row
number, so every build with the same sizes holds the same rows (only the times move: they are
relative to the moment of the build). Default scale: 1,000,000 shoppers and 10,000,000 events.

* shoppers: countries skewed like a German-speaking store (DE 28 %, AT 8 %, CH 6 %, FR, IT, NL, GB,
  ES, PL, SE, US, 3 % unknown), locale and time zone to match, gender, birth date, custom
  attributes (tier, points, newsletter, nested preferences.shoeSize), tags (vip, newsletter, b2b);
* a category tree of 8 roots, 40 sub-categories and 160 leaves, among them
  "Sports > Shoes > Running shoes" with four sub-categories; 20,000 products, 3 % of them running
  shoes (10 brands), the others skewed towards popular products;
* orders (6 % of the events): 40 % of shoppers buy, skewed (a few often, most once); 8 % of the
  shoppers are runners, who place a third of the orders, running shoes 60 % of the time (others
  3 %); 30 % of the
  orders have two lines; 3 % cancelled, 4 % partly and 2 % fully refunded; 5 % in USD; each order
  has its purchase event as ``recordOrders`` writes it (``order:<external id>``, value = net
  total, no ``product_id``: the products are the order's lines);
* the other events: views 58 %, add to cart 10 %, searches 9 %, message opens 10 %, clicks 3 %,
  favourites, removals, reviews, shares; 8 % anonymous; skewed towards active shoppers; spread over
  400 days;
* consents: push granted for 45 % of the shoppers, 5 % of whom revoked it later (a later record),
  10 % refused it; email 55 %; analytics left to the default (allowed);
* profiles for every buyer (orders, revenue, RFM scores, lifecycle stage, spend level) from the
  orders.

Then VACUUM ANALYZE. The PostgreSQL store lives in its own database (``--db-name``, default
``precis_bench_segments``), migrated with the project's migrations; with ``--reuse`` it is kept
after the run and used again by the next run with the same sizes (a changed segments migration is
re-applied: segment tables and the indexes it added are dropped and it runs again).

Measured (each repeated, interleaved with its baseline, medians reported):

1. full refresh of the example segment ("shoppers in Germany or Austria who bought running shoes
   at least twice in the last 90 days, spent over 200 EUR, have push consent and did not open a
   message in 30 days") through ``domain.segments.membership.refresh_segment``: from empty
   membership and in steady state, against a hand-written SQL query for the same definition, both
   as a count and as a hand-written refresh writing the same member and transition rows;
2. the preview count (``domain.segments.preview.preview``), at least 7 runs;
3. 50 segments refreshed, then for random shoppers: one event through
   ``domain.events.service.track_events`` and ``reevaluate_customer`` for that shopper timed.

    .venv/bin/python bench/segments.py --reuse                    # 1M shoppers / 10M events, PG
    .venv/bin/python bench/segments.py --reuse --only build       # just build the store
    .venv/bin/python bench/segments.py --users 100000 --events 1000000
    .venv/bin/python bench/segments.py --quick --database sqlite  # tiny, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import common

console = Console(stderr=True)
GENERATOR_VERSION = 3
PRIME = 2_147_483_647  # 2^31 - 1: hashes are (n * multiplier) mod PRIME, a permutation of n
DAY = 86_400
HISTORY_DAYS = 400
RUNNING = "Sports > Shoes > Running shoes"
RUNNER_EVERY, RUNNER_AT = 12, 5  # runners: shopper ids 5 modulo 12
# (country, share in percent, locale, time zone); None: unknown country.
COUNTRIES: tuple[tuple[str | None, int, str, str], ...] = (
    ("DE", 28, "de-DE", "Europe/Berlin"),
    ("AT", 8, "de-AT", "Europe/Vienna"),
    ("CH", 6, "de-CH", "Europe/Zurich"),
    ("FR", 12, "fr-FR", "Europe/Paris"),
    ("IT", 9, "it-IT", "Europe/Rome"),
    ("NL", 6, "nl-NL", "Europe/Amsterdam"),
    ("GB", 8, "en-GB", "Europe/London"),
    ("ES", 5, "es-ES", "Europe/Madrid"),
    ("PL", 4, "pl-PL", "Europe/Warsaw"),
    ("SE", 3, "sv-SE", "Europe/Stockholm"),
    ("US", 8, "en-US", "America/New_York"),
    (None, 3, "en", "UTC"),
)
# Non-purchase event types and their shares in per mille (purchases come from the orders).
EVENT_TYPES = (
    ("view", 580),
    ("add_to_cart", 100),
    ("search", 90),
    ("message_open", 100),
    ("message_click", 30),
    ("favorite", 40),
    ("remove_from_cart", 20),
    ("review", 20),
    ("share", 20),
)
PRODUCT_TYPES = ("view", "add_to_cart", "favorite", "remove_from_cart", "review", "share")
RUN_BRANDS = (
    "Asics",
    "Brooks",
    "Hoka",
    "Nike",
    "Adidas",
    "Saucony",
    "New Balance",
    "On",
    "Mizuno",
    "Puma",
)
ROOTS = {
    "Sports": {
        "Shoes": ["Running shoes", "Football boots", "Tennis shoes", "Hiking boots"],
        "Apparel": ["Jackets", "Shirts", "Shorts", "Socks"],
        "Equipment": ["Balls", "Rackets", "Fitness", "Swimming"],
        "Outdoor": ["Tents", "Backpacks", "Climbing", "Camping kitchen"],
        "Cycling": ["Bikes", "Helmets", "Bike parts", "Cycling apparel"],
    },
    "Fashion": {
        "Women": ["Dresses", "Tops", "Trousers", "Skirts"],
        "Men": ["Shirts", "Trousers", "Suits", "Knitwear"],
        "Kids": ["Baby", "Girls", "Boys", "School"],
        "Shoes": ["Sneakers", "Boots", "Sandals", "Heels"],
        "Accessories": ["Bags", "Belts", "Hats", "Jewellery"],
    },
    "Home & Garden": {
        "Kitchen": ["Cookware", "Knives", "Small appliances", "Tableware"],
        "Living": ["Sofas", "Lamps", "Rugs", "Decoration"],
        "Bedroom": ["Beds", "Bedding", "Mattresses", "Wardrobes"],
        "Garden": ["Tools", "Furniture", "Plants", "Grills"],
        "Bathroom": ["Towels", "Storage", "Mirrors", "Cabinets"],
    },
    "Electronics": {
        "Phones": ["Smartphones", "Cases", "Chargers", "Headsets"],
        "Computers": ["Laptops", "Monitors", "Keyboards", "Storage"],
        "Audio": ["Headphones", "Speakers", "Hi-fi", "Microphones"],
        "TV": ["Televisions", "Streaming", "Projectors", "Mounts"],
        "Cameras": ["Compact", "Mirrorless", "Lenses", "Drones"],
    },
    "Beauty": {
        "Skin care": ["Cleansers", "Moisturisers", "Sun care", "Masks"],
        "Hair": ["Shampoo", "Styling", "Colour", "Tools"],
        "Make-up": ["Face", "Eyes", "Lips", "Nails"],
        "Fragrance": ["Women", "Men", "Unisex", "Gift sets"],
        "Men's care": ["Shaving", "Beard", "Body", "Deodorant"],
    },
    "Toys": {
        "Games": ["Board games", "Puzzles", "Card games", "Outdoor games"],
        "Building": ["Bricks", "Construction", "Models", "Marble runs"],
        "Dolls": ["Fashion dolls", "Baby dolls", "Doll houses", "Accessories"],
        "Learning": ["Science", "Music", "Art", "Coding"],
        "Baby toys": ["Rattles", "Soft toys", "Activity", "Bath"],
    },
    "Books": {
        "Fiction": ["Crime", "Fantasy", "Romance", "Classics"],
        "Non-fiction": ["History", "Science", "Biography", "Travel"],
        "Children": ["Picture books", "First readers", "Teen", "Comics"],
        "Cooking": ["Baking", "Vegetarian", "World", "Quick"],
        "Sports": ["Running", "Football", "Fitness", "Cycling"],
    },
    "Food": {
        "Drinks": ["Coffee", "Tea", "Juice", "Water"],
        "Snacks": ["Chocolate", "Crisps", "Nuts", "Bars"],
        "Sports nutrition": ["Protein", "Gels", "Electrolytes", "Recovery"],
        "Pantry": ["Pasta", "Rice", "Oils", "Spices"],
        "Organic": ["Fruit", "Vegetables", "Dairy", "Bread"],
    },
}
RUNNING_SUBS = ("Road running shoes", "Trail running shoes", "Racing flats", "Kids running shoes")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--users", type=int, help="shoppers (default 1,000,000; 2,000 with --quick)")
    p.add_argument("--events", type=int, help="events (default 10,000,000; 20,000 with --quick)")
    p.add_argument("--products", type=int, help="products (default 20,000; 400 with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny run for CI (a throw-away database)")
    p.add_argument(
        "--db-name",
        default="precis_bench_segments",
        help="PostgreSQL database for the full-scale store (default precis_bench_segments)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the PostgreSQL store after the run and reuse it if its sizes match",
    )
    p.add_argument(
        "--only",
        choices=["build", "refresh", "preview", "incremental"],
        action="append",
        help="run only these parts (repeatable; default all)",
    )
    p.add_argument("--repeat", type=int, help="full refresh rounds (default 11; 2 with --quick)")
    p.add_argument("--preview-runs", type=int, help="preview rounds (default 9; 3 with --quick)")
    p.add_argument("--shoppers", type=int, help="incremental shoppers (default 200; 20 quick)")
    p.add_argument("--segments", type=int, default=50, help="segments for the incremental part")
    p.add_argument("--seed", type=int, default=5, help="random seed for picking shoppers")
    p.add_argument(
        "--refresh-limit",
        type=float,
        default=180,
        help="PostgreSQL: cancel a refresh of one of the 50 segments after this many seconds "
        "(reported as failed; default 180, 0 = never)",
    )
    p.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the queries")
    args = p.parse_args(argv)
    q = args.quick
    args.users = args.users or (2_000 if q else 1_000_000)
    args.events = args.events or (20_000 if q else 10_000_000)
    args.products = args.products or (400 if q else 20_000)
    args.repeat = args.repeat or (2 if q else 11)
    args.preview_runs = args.preview_runs or (3 if q else 9)
    args.shoppers = args.shoppers or (20 if q else 200)
    args.parts = set(args.only or ["build", "refresh", "preview", "incremental"])
    if args.quick and args.reuse:
        p.error("--quick builds a throw-away database; --reuse is for the full-scale store")
    return args


# --- SQL building blocks ---------------------------------------------------------------------


class Dialect:
    """The few spellings that differ between PostgreSQL and SQLite."""

    def __init__(self, database: str, now: datetime) -> None:
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
        """The build time minus ``seconds`` (an integer expression)."""
        if self.pg:
            return f"({self.now()} - ({seconds}) * INTERVAL '1 second')"
        return f"(datetime('{self.now_text}', '-' || ({seconds}) || ' seconds') || '.000000')"

    def days_since(self, expr: str) -> str:
        if self.pg:
            return f"CAST(EXTRACT(EPOCH FROM {self.now()} - {expr}) / {DAY} AS INTEGER)"
        return f"CAST(julianday('{self.now_text}') - julianday({expr}) AS INTEGER)"

    def date_plus(self, base: str, days: str) -> str:
        if self.pg:
            return f"(DATE '{base}' + CAST({days} AS INTEGER))"
        return f"date('{base}', '+' || ({days}) || ' days')"

    def money(self, expr: str) -> str:
        return f"CAST({expr} AS NUMERIC(14, 2))" if self.pg else f"ROUND({expr}, 2)"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS TEXT)"

    def obj(self, *pairs: tuple[str, str]) -> str:
        fn = "jsonb_build_object" if self.pg else "json_object"
        return f"{fn}(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    def arr(self, *items: str) -> str:
        fn = "jsonb_build_array" if self.pg else "json_array"
        return f"{fn}(" + ", ".join(items) + ")"

    def boolean(self, cond: str) -> str:
        """A JSON boolean from an SQL condition."""
        if self.pg:
            return f"({cond})"
        return f"json(CASE WHEN {cond} THEN 'true' ELSE 'false' END)"


SALTS = {
    name: mult
    for name, mult in zip(
        (
            "country",
            "gender",
            "birth",
            "created",
            "tier",
            "points",
            "news",
            "size",
            "vip",
            "b2b",
            "push",
            "pushrev",
            "pushday",
            "email",
            "runner",
            "buyer",
            "pick",
            "p1",
            "p2",
            "price1",
            "price2",
            "lines",
            "status",
            "usd",
            "placed",
            "type",
            "who",
            "anon",
            "rp",
            "prod",
            "when",
            "chan",
            "camp",
            "cat",
            "brand",
            "pprice",
            "pick2",
        ),
        (
            2654435761,
            2246822519,
            3266489917,
            668265263,
            374761393,
            1103515245,
            2024237689,
            1597334677,
            3812015801,
            2971215073,
            1140671485,
            1416461579,
            1203923483,
            1777330307,
            1566083941,
            1812433253,
            1181783497,
            1073741827,
            1500450271,
            1879048201,
            1610612741,
            1342177283,
            1717986919,
            1431655763,
            1288490189,
            1952257861,
            1234567891,
            1999999973,
            1010101013,
            1473452443,
            1867351957,
            1325467913,
            1000000007,
            1500000001,
            1900000043,
            1777777777,
            1122334457,
        ),
        strict=True,
    )
}


def u(expr: str, salt: str) -> str:
    """A pseudo-random integer in [0, PRIME) from an integer expression."""
    return f"((CAST({expr} AS BIGINT) * {SALTS[salt]}) % {PRIME})"


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pct(expr: str, salt: str) -> str:
    return f"({u(expr, salt)} % 100)"


@dataclass
class Store:
    """What the generator built, for the measures: ids and sizes."""

    users: int
    events: int
    products: int
    run_products: int
    running_category_id: int
    running_category_ids: list[int]
    category_ids: dict[str, int]
    orders: int = 0
    built_seconds: float = 0.0
    built_at: str = ""
    rows: dict[str, int] = field(default_factory=dict)


def categories() -> tuple[list[tuple[int, int | None, str, str, int]], int, list[int]]:
    """(id, parent id, name, path, depth) rows. Leaves and the running-shoe subtree get
    contiguous ids: the running-shoe subtree first, then every other leaf."""
    rows: list[tuple[int, int | None, str, str, int]] = []
    ids: dict[str, int] = {}
    next_id = 1

    def add(parent: str | None, name: str) -> None:
        nonlocal next_id
        path = f"{parent} > {name}" if parent else name
        ids[path] = next_id
        rows.append((next_id, ids[parent] if parent else None, name, path, path.count(" > ")))
        next_id += 1

    for root, mids in ROOTS.items():
        add(None, root)
        for mid in mids:
            add(root, mid)
    add("Sports > Shoes", "Running shoes")
    for sub in RUNNING_SUBS:
        add(RUNNING, sub)
    for root, mids in ROOTS.items():
        for mid, leaves in mids.items():
            for leaf in leaves:
                if f"{root} > {mid} > {leaf}" != RUNNING:
                    add(f"{root} > {mid}", leaf)
    running = [ids[RUNNING]] + [ids[f"{RUNNING} > {s}"] for s in RUNNING_SUBS]
    return rows, ids[RUNNING], running


def plan(d: Dialect, users: int, events: int, products: int) -> list[tuple[str, str, int]]:
    """(label, SQL, rows) in order. Events are inserted in chunks so progress can be shown."""
    cats, _running_id, running_ids = categories()
    first_leaf = running_ids[-1] + 1
    leaves = len(cats) - first_leaf + 1
    run_products = max(products * 3 // 100, len(running_ids))
    other_products = products - run_products
    buyers = max(users * 4 // 10, 1)
    orders = max(events * 6 // 100, 1)
    others = events - orders
    now = d.now()
    out: list[tuple[str, str, int]] = []

    values = ", ".join(
        f"({cid}, {'NULL' if parent is None else parent}, {sql_str(name)}, {sql_str(path)}, "
        f"{depth})"
        for cid, parent, name, path, depth in cats
    )
    out.append(
        (
            "categories",
            f"INSERT INTO category (id, parent_id, name, path, depth) VALUES {values}",
            len(cats),
        )
    )

    def case(bucket: str, column: int) -> str:
        acc, parts = 0, []
        for row in COUNTRIES:
            acc += row[1]
            value = row[column]
            parts.append(f"WHEN {bucket} < {acc} THEN {'NULL' if value is None else repr(value)}")
        return "CASE " + " ".join(parts) + " END"

    bucket = pct("n", "country")
    run_brand = (
        "CASE "
        + " ".join(f"WHEN n % {len(RUN_BRANDS)} = {i} THEN '{b}'" for i, b in enumerate(RUN_BRANDS))
        + " END"
    )
    pp = u("n", "pprice")
    price = f"CASE WHEN n <= {run_products} THEN 60 + {pp} % 160 ELSE 5 + {pp} % 300 END"
    out.append(
        (
            "products",
            "INSERT INTO product (id, external_id, title, description, category_id, brand, price, "
            "currency, active, attributes, created_at, updated_at) "
            f"SELECT n, 'p' || n, 'Product ' || n, '', "
            f"CASE WHEN n <= {run_products} THEN {running_ids[0]} + n % {len(running_ids)} "
            f"ELSE {first_leaf} + {u('n', 'cat')} % {leaves} END, "
            f"CASE WHEN n <= {run_products} THEN {run_brand} "
            f"ELSE 'Brand ' || ({u('n', 'brand')} % 400) END, "
            f"{d.money(price)}, "
            f"'EUR', TRUE, '{{}}', {now}, {now} FROM {d.series(1, products)}",
            products,
        )
    )
    attrs = d.obj(
        (
            "tier",
            f"CASE {u('n', 'tier')} % 3 WHEN 0 THEN 'bronze' WHEN 1 THEN 'silver' ELSE 'gold' END",
        ),
        ("points", f"{u('n', 'points')} % 5000"),
        ("newsletter", d.boolean(f"{pct('n', 'news')} < 30")),
        ("preferences", d.obj(("shoeSize", f"36 + {u('n', 'size')} % 12"))),
    )
    out.append(
        (
            "shoppers",
            "INSERT INTO customer (id, external_id, first_name, last_name, locale, timezone, "
            "country, gender, birth_date, attributes, created_at, updated_at) "
            f"SELECT n, 'c' || n, 'First' || n, 'Last' || n, {case(bucket, 2)}, {case(bucket, 3)}, "
            f"{case(bucket, 0)}, CASE {u('n', 'gender')} % 3 WHEN 0 THEN 'female' "
            f"WHEN 1 THEN 'male' END, {d.date_plus('1950-01-01', u('n', 'birth') + ' % 20000')}, "
            f"{attrs}, {d.ago(u('n', 'created') + f' % ({3 * 365} * {DAY})')}, {now} "
            f"FROM {d.series(1, users)}",
            users,
        )
    )
    for tag, salt, share in (("vip", "vip", 3), ("newsletter", "news", 30), ("b2b", "b2b", 2)):
        out.append(
            (
                f"tag {tag}",
                f"INSERT INTO customer_tag (customer_id, tag) SELECT n, '{tag}' "
                f"FROM {d.series(1, users)} WHERE {pct('n', salt)} < {share}",
                users * share // 100,
            )
        )
    consent = (
        "INSERT INTO consent (customer_id, purpose, granted, source, policy_version, "
        "actor_client_id, recorded_at) "
    )
    day = u("n", "pushday")
    out += [
        (
            "consents push",
            consent + f"SELECT n, 'push', {pct('n', 'push')} < 45, 'app', 'v1', 'bench', "
            f"{d.ago(f'(60 + {day} % 300) * {DAY}')} "
            f"FROM {d.series(1, users)} WHERE {pct('n', 'push')} < 55",
            users * 55 // 100,
        ),
        (
            "consents push revoked",
            consent + "SELECT n, 'push', FALSE, 'app', 'v1', 'bench', "
            f"{d.ago(f'({day} % 50) * {DAY}')} "
            f"FROM {d.series(1, users)} WHERE {pct('n', 'push')} < 45 "
            f"AND {pct('n', 'pushrev')} < 11",
            users * 5 // 100,
        ),
        (
            "consents email",
            consent + f"SELECT n, 'email', TRUE, 'web', 'v1', 'bench', "
            f"{d.ago(f'({day} % 400) * {DAY}')} "
            f"FROM {d.series(1, users)} WHERE {pct('n', 'email')} < 55",
            users * 55 // 100,
        ),
    ]

    # Orders: one subquery computes every order's fields; orders, lines and purchase events are
    # three INSERTs over it (the same hashes give the same values each time).
    x = f"({u('n', 'buyer')} % {buyers})"
    # Runners are the shoppers whose id is 5 modulo 12 (8 %); a third of the orders go to them.
    runners = max(buyers // RUNNER_EVERY, 1)
    k = f"({u('n', 'runner')} % {runners})"
    buyer = (
        f"CASE WHEN {pct('n', 'pick2')} < 35 THEN {RUNNER_AT} + {RUNNER_EVERY} * ({k} * {k} / {runners}) "
        f"ELSE 1 + {x} * {x} / {buyers} END"
    )
    runner = f"(cid % {RUNNER_EVERY} = {RUNNER_AT})"
    run_pick = f"({pct('n', 'pick')} < CASE WHEN {runner} THEN 60 ELSE 3 END)"
    run_product = f"(1 + {u('n', 'p1')} % {run_products})"
    y = f"({u('n', 'p2')} % {other_products})"
    other = f"({run_products} + 1 + {y} * {y} / {other_products})"
    price1 = f"CASE WHEN {run_pick} THEN 60 + {u('n', 'price1')} % 16000 / 100.0 ELSE 5 + {u('n', 'price1')} % 20000 / 100.0 END"
    price2 = f"(3 + {u('n', 'price2')} % 6000 / 100.0)"
    y2 = f"({u('n', 'price2')} % {other_products})"
    src = (
        f"(SELECT n AS oid, cid, "
        f"CASE WHEN {run_pick} THEN {run_product} ELSE {other} END AS p1, "
        f"{d.money(price1)} AS price1, "
        f"CASE WHEN {pct('n', 'lines')} < 30 THEN 1 ELSE 0 END AS two, "
        f"{run_products} + 1 + {y2} * {y2} / {other_products} AS p2, "
        f"{d.money(price2)} AS price2, {pct('n', 'status')} AS sb, "
        f"CASE WHEN {pct('n', 'usd')} < 5 THEN 'USD' ELSE 'EUR' END AS cur, "
        f"{d.ago(u('n', 'placed') + f' % ({HISTORY_DAYS} * {DAY})')} AS placed "
        f"FROM (SELECT n, {buyer} AS cid FROM {d.series(1, orders)}) s) o"
    )
    total = "(price1 + two * price2)"
    status = (
        "CASE WHEN sb < 3 THEN 'cancelled' WHEN sb < 7 THEN 'partially_refunded' "
        "WHEN sb < 9 THEN 'refunded' WHEN sb < 60 THEN 'fulfilled' ELSE 'paid' END"
    )
    refunded = (
        f"CASE WHEN sb BETWEEN 3 AND 6 THEN {d.money('price1 / 2')} "
        f"WHEN sb BETWEEN 7 AND 8 THEN {total} ELSE 0 END"
    )
    net = f"CASE WHEN sb < 3 OR sb BETWEEN 7 AND 8 THEN 0 WHEN sb < 7 THEN {total} - {d.money('price1 / 2')} ELSE {total} END"
    out.append(
        (
            "orders",
            "INSERT INTO orders (id, external_id, customer_id, status, currency, subtotal, "
            "discount_total, shipping_total, tax_total, total, refunded_total, source_client_id, "
            "placed_at, cancelled_at, created_at, updated_at) "
            f"SELECT oid, 'o' || oid, cid, {status}, cur, {total}, 0, 0, 0, {total}, {refunded}, "
            f"'bench', placed, CASE WHEN sb < 3 THEN placed END, placed, placed FROM {src}",
            orders,
        )
    )
    line = (
        "INSERT INTO order_line (order_id, line_no, product_id, product_external_id, quantity, "
        "unit_price, total, refunded_quantity) "
    )
    out.append(
        (
            "order lines",
            line + f"SELECT oid, 1, p1, 'p' || p1, 1, price1, price1, "
            f"CASE WHEN sb BETWEEN 7 AND 8 THEN 1 ELSE 0 END FROM {src} "
            "UNION ALL "
            f"SELECT oid, 2, p2, 'p' || p2, 1, price2, price2, "
            f"CASE WHEN sb BETWEEN 7 AND 8 THEN 1 ELSE 0 END FROM {src} WHERE two = 1",
            orders * 13 // 10,
        )
    )
    props = d.obj(
        ("order_external_id", "'o' || oid"),
        ("product_ids", f"CASE WHEN two = 1 THEN {d.arr('p1', 'p2')} ELSE {d.arr('p1')} END"),
        ("items", "1 + two"),
    )
    event_cols = (
        "INSERT INTO event (client_event_id, customer_id, anonymous_id, type, product_id, "
        "properties, value, currency, channel, campaign_id, message_id, order_id, "
        "source_client_id, occurred_at, received_at) "
    )
    out.append(
        (
            "purchase events",
            event_cols + f"SELECT 'order:o' || oid, cid, NULL, 'purchase', NULL, {props}, {net}, "
            f"cur, NULL, NULL, NULL, oid, 'bench', placed, placed FROM {src}",
            orders,
        )
    )

    acc, kinds = 0, []
    for t, share in EVENT_TYPES:
        acc += share
        kinds.append(f"WHEN {u('n', 'type')} % 1000 < {acc} THEN '{t}'")
    kind = "CASE " + " ".join(kinds) + " END"
    w = f"({u('n', 'who')} % {users})"
    chunk = 1_000_000 if d.pg else 50_000
    product_types = ", ".join(f"'{t}'" for t in PRODUCT_TYPES)
    rp = f"(1 + {u('n', 'rp')} % {run_products})"
    yo = f"({u('n', 'prod')} % {other_products})"
    op = f"({run_products} + 1 + {yo} * {yo} / {other_products})"
    runner_e = f"(cid % {RUNNER_EVERY} = {RUNNER_AT})"
    for first in range(1, others + 1, chunk):
        last = min(first + chunk - 1, others)
        sub = (
            f"(SELECT n, {kind} AS t, CASE WHEN {pct('n', 'anon')} < 8 THEN NULL "
            f"ELSE 1 + {w} * {w} / {users} END AS cid FROM {d.series(first, last)}) e"
        )
        out.append(
            (
                "events",
                event_cols + f"SELECT 'e' || n, cid, CASE WHEN cid IS NULL THEN 'anon-' || "
                f"({u('n', 'who')} % {max(users // 10, 1)}) END, t, "
                f"CASE WHEN t IN ({product_types}) THEN CASE WHEN cid IS NOT NULL AND {runner_e} "
                f"AND {pct('n', 'rp')} < 40 THEN {rp} ELSE {op} END END, '{{}}', NULL, NULL, "
                f"CASE WHEN t IN ('message_open', 'message_click') THEN "
                f"CASE WHEN {pct('n', 'chan')} < 60 THEN 'push' ELSE 'email' END END, "
                f"CASE WHEN t IN ('message_open', 'message_click') THEN "
                f"1 + {u('n', 'camp')} % 50 END, "
                f"CASE WHEN t IN ('message_open', 'message_click') THEN n END, NULL, 'bench', "
                f"{d.ago(u('n', 'when') + f' % ({HISTORY_DAYS} * {DAY})')}, {now} FROM {sub}",
                last - first + 1,
            )
        )

    r = "CASE WHEN rec <= 30 THEN 5 WHEN rec <= 90 THEN 4 WHEN rec <= 180 THEN 3 WHEN rec <= 365 THEN 2 ELSE 1 END"
    f_ = "CASE WHEN k >= 5 THEN 5 ELSE k END"
    m = "CASE WHEN rev >= 1000 THEN 5 WHEN rev >= 500 THEN 4 WHEN rev >= 250 THEN 3 WHEN rev >= 100 THEN 2 ELSE 1 END"
    stage = (
        "CASE WHEN rec > 365 THEN 'churned' WHEN rec > 180 THEN 'at_risk' WHEN k >= 4 "
        "THEN 'loyal' WHEN k >= 2 THEN 'active' ELSE 'new' END"
    )
    spend = (
        "CASE WHEN rev >= 1000 THEN 'top' WHEN rev >= 500 THEN 'high' WHEN rev >= 200 "
        "THEN 'medium' WHEN rev > 0 THEN 'low' ELSE 'none' END"
    )
    out.append(
        (
            "profiles",
            "INSERT INTO customer_profile (customer_id, first_seen_at, last_seen_at, event_count, "
            "orders_count, revenue, currency, first_order_at, last_order_at, recency_days, "
            "rfm_frequency, rfm_monetary, r_score, f_score, m_score, lifecycle_stage, "
            "average_order_value, clv_historical, clv_predicted, probability_alive, "
            "expected_purchases, spend_level, top_categories, top_brands, active_hours, "
            "computed_at, updated_at) "
            f"SELECT customer_id, fo, lo, 10 * k, k, rev, 'EUR', fo, lo, rec, k, rev, {r}, {f_}, "
            f"{m}, {stage}, {d.money('rev / k')}, rev, {d.money('rev * 1.3')}, "
            f"CASE WHEN rec > 365 THEN 0.2 ELSE 0.8 END, 1.0, {spend}, '[]', '[]', '[]', "
            f"{now}, {now} FROM (SELECT customer_id, COUNT(*) AS k, "
            f"SUM(total - refunded_total) AS rev, MIN(placed_at) AS fo, MAX(placed_at) AS lo, "
            f"{d.days_since('MAX(placed_at)')} AS rec FROM orders "
            "WHERE status NOT IN ('cancelled', 'refunded') GROUP BY customer_id) a",
            buyers * 7 // 10,
        )
    )
    return out


def store_info(users: int, events: int, products: int) -> Store:
    cats, running_id, running_ids = categories()
    return Store(
        users=users,
        events=events,
        products=products,
        run_products=max(products * 3 // 100, len(running_ids)),
        running_category_id=running_id,
        running_category_ids=running_ids,
        category_ids={path: cid for cid, _p, _n, path, _d in cats},
        orders=max(events * 6 // 100, 1),
    )


# --- building the store ----------------------------------------------------------------------

# Tables whose secondary indexes are dropped during the bulk load and built afterwards (PostgreSQL):
# building an index once is far cheaper than keeping it up to date row by row.
BULK_TABLES = ("event", "orders", "order_line", "consent", "customer", "customer_tag", "product")


async def _pg_bulk_indexes(engine: AsyncEngine) -> list[tuple[str, str]]:
    names = ", ".join(f"'{t}'" for t in BULK_TABLES)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' "
                f"AND i.tablename IN ({names}) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conname = i.indexname)"
            )
        )
        return [(r[0], r[1]) for r in rows]


async def generate(url: str, database: str, store: Store, now: datetime) -> dict[str, float]:
    """Fill the migrated, empty database at ``url``; returns seconds per stage."""
    d = Dialect(database, now)
    steps = plan(d, store.users, store.events, store.products)
    engine = create_async_engine(url)
    timings: dict[str, float] = {}
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
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            tasks = {
                label: progress.add_task(label, total=total) for label, total in totals.items()
            }
            for label, sql, rows in steps:
                started = time.perf_counter()
                async with engine.begin() as conn:
                    if d.pg:
                        # The rows are consistent by construction: skip the per-row foreign key
                        # triggers during the load (superuser only; the bench runs as postgres).
                        await conn.execute(text("SET LOCAL session_replication_role = replica"))
                        await conn.execute(text("SET LOCAL synchronous_commit = off"))
                    result = await conn.execute(text(sql))
                done = result.rowcount if result.rowcount and result.rowcount > 0 else rows
                timings[label] = timings.get(label, 0.0) + time.perf_counter() - started
                store.rows[label] = store.rows.get(label, 0) + done
                progress.update(tasks[label], advance=rows)
            if d.pg:
                task = progress.add_task("indexes", total=len(indexes))
                started = time.perf_counter()
                async with engine.connect() as conn:
                    await conn.execute(text("SET maintenance_work_mem = '512MB'"))
                    for _name, ddl in indexes:
                        await conn.execute(text(ddl))
                        await conn.commit()
                        progress.advance(task)
                timings["indexes"] = time.perf_counter() - started
        if d.pg:
            async with engine.begin() as conn:
                for t in ("category", "product", "customer", "orders"):
                    await conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT MAX(id) FROM {t}))"
                        )
                    )
    finally:
        await engine.dispose()
    started = time.perf_counter()
    await vacuum_analyze(url, database)
    timings["vacuum analyze"] = time.perf_counter() - started
    return timings


async def vacuum_analyze(url: str, database: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("VACUUM ANALYZE" if database == "postgres" else "ANALYZE"))
    finally:
        await engine.dispose()


def migration_fingerprint() -> str:
    """A hash of the migrations after 0002 (the segments migration is regenerated while issue 5
    is in progress: a reused store re-applies it when it changed)."""
    digest = hashlib.sha256()
    for path in sorted((common.REPO / "migrations" / "versions").glob("*.py")):
        if path.name[:4].isdigit() and int(path.name[:4]) > 2:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


async def _admin(sql: str) -> Any:
    engine = create_async_engine(common.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql))
            return result.all() if result.returns_rows else None
    finally:
        await engine.dispose()


async def _db_comment(name: str) -> dict[str, Any] | None:
    rows = await _admin(
        f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{name}'"
    )
    if not rows:
        return None
    try:
        return dict(json.loads(rows[0][0] or "{}"))
    except ValueError:
        return {}


async def _set_comment(name: str, meta: dict[str, Any]) -> None:
    body = json.dumps(meta).replace("'", "''")
    await _admin(f"COMMENT ON DATABASE \"{name}\" IS '{body}'")


async def _reapply_segments_migration(url: str, base_indexes: list[str]) -> None:
    """Back to revision 0002 by hand (the new 0003 file may not match what the old one built):
    drop the segment tables and every index not present at 0002, then upgrade again."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            tables = [
                r[0]
                for r in await conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename LIKE 'segment%'"
                    )
                )
            ]
            for t in tables:
                await conn.execute(text(f'DROP TABLE IF EXISTS "{t}" CASCADE'))
            rows = await conn.execute(
                text(
                    "SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = 'public' AND "
                    "NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
                )
            )
            for (name,) in rows.all():
                if name not in base_indexes:
                    console.log(f"dropping index {name} (added after 0002)")
                    await conn.execute(text(f'DROP INDEX "{name}"'))
            await conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    finally:
        await engine.dispose()


async def _index_names(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
            )
            return sorted(r[0] for r in rows)
    finally:
        await engine.dispose()


def migrate(url: str, revision: str = "head") -> None:
    """The project's migrations, without the API's statement timeout (migrations/env.py takes the
    settings' 15 s, which building an index over 10M events exceeds)."""
    from domain.migrations import upgrade

    old = os.environ.get("PRECIS_STATEMENT_TIMEOUT_MS")
    os.environ["PRECIS_STATEMENT_TIMEOUT_MS"] = "0"
    try:
        upgrade(url, revision)
    finally:
        if old is None:
            os.environ.pop("PRECIS_STATEMENT_TIMEOUT_MS", None)
        else:
            os.environ["PRECIS_STATEMENT_TIMEOUT_MS"] = old


@dataclass
class Env:
    database: str
    url: str
    var_dir: Path
    store: Store
    reused: bool


@contextlib.contextmanager
def environment(args: argparse.Namespace) -> Iterator[Env]:
    """The migrated, filled database: a throw-away one (``--quick`` or SQLite), else the dedicated
    PostgreSQL database (dropped at the end unless ``--reuse``)."""
    store = store_info(args.users, args.events, args.products)
    if args.quick or args.database == "sqlite":
        with common.bench_env(args.database, env="dev") as benv:
            started = time.perf_counter()
            now = datetime.now(UTC).replace(microsecond=0)
            timings = asyncio.run(generate(benv.database_url, args.database, store, now))
            store.built_seconds = time.perf_counter() - started
            store.built_at = now.isoformat()
            report_build(store, timings)
            yield Env(args.database, benv.database_url, benv.var_dir, store, False)
        return

    name = args.db_name
    url = common._with_db(common.PG_ADMIN_URL, name)
    wanted = {
        "generator": GENERATOR_VERSION,
        "users": args.users,
        "events": args.events,
        "products": args.products,
    }
    var_dir = Path(tempfile.mkdtemp(prefix="precis-bench-segments-"))
    try:
        meta = asyncio.run(_db_comment(name)) if args.reuse else None
        reused = bool(meta) and all(meta.get(k) == v for k, v in wanted.items())  # type: ignore[union-attr]
        if reused:
            assert meta is not None
            console.log(
                f"reusing {name} built {meta.get('built_at')} in {meta.get('built_seconds')} s"
            )
            store.built_seconds = float(meta.get("built_seconds", 0))
            store.built_at = str(meta.get("built_at", ""))
            store.rows = dict(meta.get("rows", {}))
            fingerprint = migration_fingerprint()  # before upgrading: the file may change
            if meta.get("migrations") != fingerprint:
                console.log("the segments migration changed: re-applying it")
                asyncio.run(_reapply_segments_migration(url, list(meta.get("base_indexes", []))))
            migrate(url)
            meta["migrations"] = fingerprint
            asyncio.run(_set_comment(name, meta))
            asyncio.run(vacuum_analyze(url, "postgres"))
        else:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            started = time.perf_counter()
            migrate(url, "0002")
            base_indexes = asyncio.run(_index_names(url))
            fingerprint = migration_fingerprint()
            migrate(url)
            now = datetime.now(UTC).replace(microsecond=0)
            timings = asyncio.run(generate(url, "postgres", store, now))
            store.built_seconds = time.perf_counter() - started
            store.built_at = now.isoformat()
            report_build(store, timings)
            meta = {
                **wanted,
                "built_at": store.built_at,
                "built_seconds": round(store.built_seconds, 1),
                "rows": store.rows,
                "base_indexes": base_indexes,
                "migrations": fingerprint,
            }
            asyncio.run(_set_comment(name, meta))
        yield Env("postgres", url, var_dir, store, reused)
    finally:
        if not args.reuse:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(var_dir, ignore_errors=True)


def report_build(store: Store, timings: dict[str, float]) -> None:
    rows = [[label, store.rows.get(label, 0), seconds] for label, seconds in timings.items()]
    console.print(common.table(["stage", "rows", "seconds"], rows))
    print(f"store: {store.users:,} shoppers, {store.events:,} events, {store.products:,} products")
    print(f"build seconds: {store.built_seconds:.1f}")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "-"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"load average at start: {load_average()}")
    with environment(args) as env:
        print(f"database: {env.database} ({'reused' if env.reused else 'built'} store)")
        measure = {p for p in args.parts if p != "build"}
        if measure:
            asyncio.run(run_measures(env, args, measure))
    print(f"load average at end: {load_average()}")
    return 0


# --- the segments measured --------------------------------------------------------------------

BENCH_PREFIX = "bench: "
ACTOR_ID = "bench-segments"


def example(store: Store) -> dict[str, Any]:
    """The issue's example: shoppers in Germany or Austria who bought running shoes at least twice
    in the last 90 days, spent over 200 EUR (on them), have push consent and did not open a
    message in 30 days."""
    return {
        "and": [
            {"attribute": {"field": "country", "op": "in", "values": ["DE", "AT"]}},
            {
                "behavior": {
                    "eventType": "purchase",
                    "categoryId": store.running_category_id,
                    "count": {"min": 2},
                    "value": {"min": "200.01", "currency": "EUR"},
                    "window": {"lastDays": 90},
                }
            },
            {"consent": {"purpose": "push", "granted": True}},
            {"behavior": {"did": False, "eventType": "message_open", "window": {"lastDays": 30}}},
        ]
    }


def variations(store: Store, example_id: int) -> list[tuple[str, dict[str, Any]]]:
    """49 more definitions over countries, categories, windows, consents, tags, attributes,
    profiles, orders and a segment reference: with the example, the 50 of the incremental part."""
    run = store.running_category_id
    cats = store.category_ids

    def beh(event: str, **more: Any) -> dict[str, Any]:
        return {"behavior": {"eventType": event, **more}}

    def attr(name: str, op: str, **more: Any) -> dict[str, Any]:
        return {"attribute": {"field": name, "op": op, **more}}

    def key(name: str, op: str, **more: Any) -> dict[str, Any]:
        return {"attribute": {"key": name, "op": op, **more}}

    def prof(name: str, op: str, **more: Any) -> dict[str, Any]:
        return {"profile": {"field": name, "op": op, **more}}

    def consent(purpose: str, granted: bool = True) -> dict[str, Any]:
        return {"consent": {"purpose": purpose, "granted": granted}}

    def last(days: int) -> dict[str, Any]:
        return {"lastDays": days}

    out: list[tuple[str, dict[str, Any]]] = [
        (
            "runners in DACH viewing",
            {
                "and": [
                    attr("country", "in", values=["DE", "AT", "CH"]),
                    beh("view", categoryId=run, count={"min": 3}, window=last(30)),
                ]
            },
        ),
        (
            "cart abandoners 24 h",
            {
                "and": [
                    beh("add_to_cart", window={"lastHours": 24}),
                    beh("purchase", did=False, window={"lastHours": 24}),
                ]
            },
        ),
        (
            "at risk with email consent",
            {"and": [prof("lifecycleStage", "eq", value="at_risk"), consent("email")]},
        ),
        ("champions", prof("rfmGroup", "eq", value="champions")),
        (
            "top spenders in Germany",
            {"and": [prof("spendLevel", "eq", value="top"), attr("country", "eq", value="DE")]},
        ),
        ("vip", {"tag": {"tags": ["vip"], "match": "any"}}),
        (
            "gold tier with points",
            {"and": [key("tier", "eq", value="gold"), key("points", "gte", value=2000)]},
        ),
        (
            "repeat buyers",
            {"order": {"count": {"min": 3}, "totalValue": {"min": "500"}, "window": last(365)}},
        ),
        ("engaged openers", beh("message_open", count={"min": 3}, window=last(30))),
        (
            "push, no opens in 90 days",
            {"and": [consent("push"), beh("message_open", did=False, window=last(90))]},
        ),
        ("Hoka fans", beh("view", brand="Hoka", count={"min": 2}, window=last(60))),
        ("first purchase this month", beh("purchase", occurrence="first", window=last(30))),
        ("not seen for half a year", prof("lastSeenAt", "more_than_days_ago", value=180)),
        (
            "newsletter tag without email consent",
            {"and": [{"tag": {"tags": ["newsletter"], "match": "any"}}, consent("email", False)]},
        ),
        (
            "big feet runners",
            {
                "and": [
                    key("preferences.shoeSize", "gte", value=44),
                    beh("view", categoryId=run, window=last(90)),
                ]
            },
        ),
        (
            "bought before, not in 180 days",
            {
                "and": [
                    beh("purchase", window={"olderThanDays": 180}),
                    beh("purchase", did=False, window=last(180)),
                ]
            },
        ),
        ("high historical CLV", prof("clvHistorical", "gte", value="1000")),
        (
            "orders over 100 EUR this year",
            {"order": {"orderValue": {"min": "100"}, "currency": "EUR", "window": last(365)}},
        ),
        (
            "women in France or Italy",
            {
                "and": [
                    attr("gender", "eq", value="female"),
                    attr("country", "in", values=["FR", "IT"]),
                ]
            },
        ),
        (
            "example or vip, not b2b",
            {
                "and": [
                    {
                        "or": [
                            {"segment": {"segmentId": example_id, "member": True}},
                            {"tag": {"tags": ["vip"], "match": "any"}},
                        ]
                    },
                    {"not": {"tag": {"tags": ["b2b"], "match": "any"}}},
                ]
            },
        ),
    ]
    for root in list(ROOTS)[:8]:
        for days in (30, 90):
            out.append(
                (
                    f"viewed {root} twice in {days} days",
                    beh("view", categoryId=cats[root], count={"min": 2}, window=last(days)),
                )
            )
    for country in ("DE", "AT", "CH", "FR", "IT", "NL", "GB", "ES"):
        out.append(
            (
                f"buyers in {country} with email consent",
                {
                    "and": [
                        attr("country", "eq", value=country),
                        beh("purchase", window=last(365)),
                        consent("email"),
                    ]
                },
            )
        )
    out += [
        (
            "recent frequent (R>=4, F>=3)",
            {"and": [prof("rScore", "gte", value=4), prof("fScore", "gte", value=3)]},
        ),
        ("five orders or more", prof("ordersCount", "gte", value=5)),
        ("bought within 30 days", prof("recencyDays", "lte", value=30)),
        ("probably lapsing", prof("probabilityAlive", "lt", value=0.5)),
        ("big baskets", prof("averageOrderValue", "gt", value="150")),
    ]
    return out


HANDWRITTEN = """
WITH running AS (
    SELECT p.id FROM product p JOIN category k ON k.id = p.category_id
    WHERE k.path = :path OR k.path LIKE :path_below),
purchases AS (
    SELECT e.customer_id, e.value FROM event e
    WHERE e.type = 'purchase' AND e.currency = 'EUR' AND e.occurred_at >= :since_90
      AND e.product_id IN (SELECT id FROM running)
    UNION ALL
    SELECT e.customer_id, e.value FROM event e
    WHERE e.type = 'purchase' AND e.currency = 'EUR' AND e.occurred_at >= :since_90
      AND e.product_id IS NULL
      AND EXISTS (SELECT 1 FROM order_line l
                  WHERE l.order_id = e.order_id AND l.product_id IN (SELECT id FROM running))),
buyers AS (
    SELECT customer_id FROM purchases WHERE customer_id IS NOT NULL
    GROUP BY customer_id
    HAVING COUNT(*) >= 2 AND SUM(value) >= 200.01)
SELECT c.id AS customer_id FROM buyers b JOIN customer c ON c.id = b.customer_id
WHERE c.country IN ('DE', 'AT')
  AND (SELECT k.granted FROM consent k WHERE k.customer_id = c.id AND k.purpose = 'push'
       ORDER BY k.id DESC LIMIT 1)
  AND NOT EXISTS (
      SELECT 1 FROM event m WHERE m.customer_id = c.id AND m.type = 'message_open'
        AND m.occurred_at >= :since_30)
"""


def hand_params(now: datetime, pg: bool) -> dict[str, Any]:
    def at(delta: timedelta) -> Any:
        moment = now - delta
        return moment if pg else moment.replace(tzinfo=None).isoformat(sep=" ")

    return {
        "since_90": at(timedelta(days=90)),
        "since_30": at(timedelta(days=30)),
        "path": RUNNING,
        "path_below": RUNNING + " > %",
    }


# --- measuring --------------------------------------------------------------------------------


def settings_for(env: Env) -> Any:
    from domain.settings import Settings

    return Settings(
        env="dev",
        var_dir=env.var_dir,
        database_url=env.url,
        redis_url=None,
        statement_timeout_ms=1_800_000,
        _env_file=None,  # type: ignore[call-arg]
    )


def ms(seconds: float) -> float:
    return seconds * 1000.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await fn()
    return time.perf_counter() - started, value


async def clean(db: Any) -> None:
    """Drop what earlier runs left (segments named "bench: ...", their members and transitions,
    and the incremental part's events)."""
    async with db.unit_of_work() as session:
        await session.execute(
            text("DELETE FROM segment WHERE name LIKE :p"), {"p": BENCH_PREFIX + "%"}
        )
        await session.execute(text("DELETE FROM event WHERE client_event_id LIKE 'bench-inc-%'"))


async def create(db: Any, name: str, definition: dict[str, Any] | None) -> int:
    from domain.audit.service import Actor
    from domain.segments import service

    actor = Actor(client_id=ACTOR_ID, subject=ACTOR_ID)
    async with db.unit_of_work() as session:
        seg = await service.create_segment(
            session,
            actor,
            name=BENCH_PREFIX + name,
            kind="dynamic" if definition is not None else "static",
            definition=definition,
        )
        assert seg.id is not None
        return seg.id


async def hand_refresh(session: Any, segment_id: int, now: datetime, pg: bool) -> int:
    """The hand-written refresh: the hand-written query into a temporary table, then the same
    writes as ``refresh_segment`` (exit transitions, deletes, enter transitions, inserts, count)."""
    params = hand_params(now, pg)
    at = now if pg else now.replace(tzinfo=None).isoformat(sep=" ")
    if pg:
        await session.execute(text("SET LOCAL statement_timeout = '30min'"))
        await session.execute(
            text(
                "CREATE TEMPORARY TABLE hand_members (customer_id BIGINT PRIMARY KEY) ON COMMIT DROP"
            )
        )
    else:
        await session.execute(text("DROP TABLE IF EXISTS hand_members"))
        await session.execute(
            text("CREATE TEMPORARY TABLE hand_members (customer_id INTEGER PRIMARY KEY)")
        )
    await session.execute(text(f"INSERT INTO hand_members (customer_id) {HANDWRITTEN}"), params)
    if pg:
        await session.execute(text("ANALYZE hand_members"))
    p = {"sid": segment_id, "at": at}
    await session.execute(
        text(
            "INSERT INTO segment_transition (segment_id, customer_id, kind, version, occurred_at) "
            "SELECT :sid, m.customer_id, 'exit', 1, :at FROM segment_member m "
            "WHERE m.segment_id = :sid AND NOT EXISTS (SELECT 1 FROM hand_members t "
            "WHERE t.customer_id = m.customer_id) ORDER BY m.customer_id"
        ),
        p,
    )
    await session.execute(
        text(
            "DELETE FROM segment_member WHERE segment_id = :sid AND NOT EXISTS (SELECT 1 "
            "FROM hand_members t WHERE t.customer_id = segment_member.customer_id)"
        ),
        p,
    )
    await session.execute(
        text(
            "INSERT INTO segment_transition (segment_id, customer_id, kind, version, occurred_at) "
            "SELECT :sid, t.customer_id, 'enter', 1, :at FROM hand_members t WHERE NOT EXISTS "
            "(SELECT 1 FROM segment_member m WHERE m.segment_id = :sid "
            "AND m.customer_id = t.customer_id) ORDER BY t.customer_id"
        ),
        p,
    )
    await session.execute(
        text(
            "INSERT INTO segment_member (segment_id, customer_id, entered_at) "
            "SELECT :sid, t.customer_id, :at FROM hand_members t WHERE NOT EXISTS "
            "(SELECT 1 FROM segment_member m WHERE m.segment_id = :sid "
            "AND m.customer_id = t.customer_id)"
        ),
        p,
    )
    count = int(await session.scalar(text("SELECT COUNT(*) FROM hand_members")) or 0)
    await session.execute(
        text("UPDATE segment SET member_count = :n, refreshed_at = :at WHERE id = :sid"),
        {**p, "n": count},
    )
    if not pg:
        await session.execute(text("DROP TABLE hand_members"))
    return count


async def explain(session: Any, sql: str, params: dict[str, Any]) -> str:
    rows = await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params)
    return "\n".join(r[0] for r in rows)


def literal_sql(stmt: Any, dialect: Any) -> str:
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def plan_summary(plan: str) -> str:
    """The lines of an EXPLAIN ANALYZE that say where the time went: scans and joins with their
    actual times, and the execution time."""
    keep = []
    for line in plan.splitlines():
        s = line.strip().removeprefix("->").strip()
        if any(w in s for w in ("Scan", "Join", "Aggregate", "Nested Loop", "Execution Time")):
            if "actual time" in s or s.startswith("Execution"):
                keep.append(line.rstrip())
    return "\n".join(keep)


@dataclass
class Results:
    lines: list[str] = field(default_factory=list)

    def out(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)


async def measure_refresh(
    db: Any, env: Env, args: argparse.Namespace, res: Results, example_id: int, baseline_id: int
) -> None:
    from domain.segments import definition as definition_module
    from domain.segments.compiler import compile_members
    from domain.segments.membership import refresh_segment

    pg = env.database == "postgres"
    doc = example(env.store)
    counts: dict[str, list[float]] = {
        k: [] for k in ("hand count", "compiled count", "hand refresh", "refresh")
    }
    steady: dict[str, list[float]] = {"hand refresh": [], "refresh": []}
    ratios: dict[str, list[float]] = {
        "compiled/hand count": [],
        "refresh/hand count (empty)": [],
        "refresh/hand refresh (empty)": [],
        "refresh/hand refresh (steady)": [],
    }
    sizes: set[int] = set()

    async def hand_count() -> int:
        async with db.read_only() as session:
            now = datetime.now(UTC)
            sql = f"SELECT COUNT(*) FROM ({HANDWRITTEN}) x"
            return int(await session.scalar(text(sql), hand_params(now, pg)) or 0)

    async def compiled_count() -> int:
        async with db.read_only() as session:
            resolved = await definition_module.validate(session, doc)
            stmt = compile_members(resolved, now=datetime.now(UTC))
            from sqlalchemy import func, select

            return int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)

    async def empty(segment_id: int) -> None:
        async with db.unit_of_work() as session:
            await session.execute(
                text("DELETE FROM segment_member WHERE segment_id = :s"), {"s": segment_id}
            )

    async def hand_full() -> int:
        async with db.unit_of_work() as session:
            return await hand_refresh(session, baseline_id, datetime.now(UTC), pg)

    async def refresh() -> Any:
        return await refresh_segment(db, example_id)

    # The same members both ways (once, outside the timings).
    async with db.read_only() as session:
        now = datetime.now(UTC)
        hand_ids = {int(r) for r in await session.scalars(text(HANDWRITTEN), hand_params(now, pg))}
        resolved = await definition_module.validate(session, doc)
        compiled_ids = {int(r) for r in await session.scalars(compile_members(resolved, now=now))}
    same = hand_ids == compiled_ids
    res.out(
        f"example members: {len(compiled_ids)} compiled, {len(hand_ids)} hand-written, "
        f"same set: {'yes' if same else 'NO'}"
    )
    if not same:
        res.out(
            f"  only compiled: {sorted(compiled_ids - hand_ids)[:10]}, "
            f"only hand-written: {sorted(hand_ids - compiled_ids)[:10]}"
        )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("full refresh rounds", total=args.repeat)
        for round_no in range(args.repeat):
            flip = round_no % 2 == 1
            # Counts, interleaved.
            order = [("hand count", hand_count), ("compiled count", compiled_count)]
            got: dict[str, float] = {}
            for name, fn in reversed(order) if flip else order:
                seconds, n = await timed(fn)
                sizes.add(int(n))
                got[name] = seconds
                counts[name].append(seconds)
            ratios["compiled/hand count"].append(got["compiled count"] / got["hand count"])
            # Refreshes from empty membership, then again (steady state), interleaved.
            runs: dict[str, tuple[float, float]] = {}
            pairs = [("hand refresh", baseline_id, hand_full), ("refresh", example_id, refresh)]
            for name, sid, fn in reversed(pairs) if flip else pairs:
                await empty(sid)
                first, _ = await timed(fn)
                second, _ = await timed(fn)
                runs[name] = (first, second)
                counts[name].append(first)
                steady[name].append(second)
            ratios["refresh/hand count (empty)"].append(runs["refresh"][0] / got["hand count"])
            ratios["refresh/hand refresh (empty)"].append(
                runs["refresh"][0] / runs["hand refresh"][0]
            )
            ratios["refresh/hand refresh (steady)"].append(
                runs["refresh"][1] / runs["hand refresh"][1]
            )
            progress.advance(task)

    med = common.median
    res.out(f"example segment size: {sorted(sizes)} (counted each round)")
    rows = [[name, ms(med(v)), ms(min(v)), ms(max(v))] for name, v in counts.items()]
    rows += [[f"{name} (steady)", ms(med(v)), ms(min(v)), ms(max(v))] for name, v in steady.items()]
    res.out(common.table(["full refresh of the example", "median ms", "min ms", "max ms"], rows))
    of_medians = {
        "compiled/hand count": med(counts["compiled count"]) / med(counts["hand count"]),
        "refresh/hand count (empty)": med(counts["refresh"]) / med(counts["hand count"]),
        "refresh/hand refresh (empty)": med(counts["refresh"]) / med(counts["hand refresh"]),
        "refresh/hand refresh (steady)": med(steady["refresh"]) / med(steady["hand refresh"]),
    }
    for name, values in ratios.items():
        res.out(
            f"ratio {name} ({env.database}): {med(values):.2f} "
            f"(median of the rounds' ratios; ratio of the medians {of_medians[name]:.2f}; "
            f"rounds: {', '.join(f'{v:.2f}' for v in values)})"
        )
    res.out(f"refresh seconds ({env.database}): {med(counts['refresh']):.2f}")

    if pg:
        async with db.read_only() as session:
            now = datetime.now(UTC)
            resolved = await definition_module.validate(session, doc)
            stmt = compile_members(resolved, now=now)
            dialect = session.get_bind().dialect
            compiled_plan = await explain(session, literal_sql(stmt, dialect), {})
            hand_plan = await explain(session, HANDWRITTEN, hand_params(now, pg))
        res.out("EXPLAIN ANALYZE, compiled (summary):\n" + plan_summary(compiled_plan))
        res.out("EXPLAIN ANALYZE, hand-written (summary):\n" + plan_summary(hand_plan))
        if args.explain:
            res.out("compiled SQL:\n" + literal_sql(stmt, dialect))
            res.out("compiled plan:\n" + compiled_plan)
            res.out("hand-written plan:\n" + hand_plan)


async def measure_preview(db: Any, env: Env, args: argparse.Namespace, res: Results) -> None:
    from domain.segments import definition as definition_module
    from domain.segments.preview import preview

    pg = env.database == "postgres"
    doc = example(env.store)
    times: list[float] = []
    hand: list[float] = []
    ratios: list[float] = []
    counts: set[int] = set()
    cost: float | None = None
    for round_no in range(args.preview_runs):

        async def run_preview() -> Any:
            async with db.read_only() as session:
                resolved = await definition_module.validate(session, doc)
                return await preview(session, resolved, sample=10, budget_ms=60_000)

        async def run_hand() -> int:
            async with db.read_only() as session:
                sql = f"SELECT COUNT(*) FROM ({HANDWRITTEN}) x"
                return int(await session.scalar(text(sql), hand_params(datetime.now(UTC), pg)) or 0)

        pair: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("preview", run_preview),
            ("hand", run_hand),
        ]
        got: dict[str, float] = {}
        for name, fn in reversed(pair) if round_no % 2 else pair:
            seconds, value = await timed(fn)
            got[name] = seconds
            if name == "preview":
                counts.add(int(value.count))
        times.append(got["preview"])
        hand.append(got["hand"])
        ratios.append(got["preview"] / got["hand"])
    async with db.read_only() as session:
        resolved = await definition_module.validate(session, doc)
        p = await preview(session, resolved, sample=10, budget_ms=60_000, explain=True)
        cost = p.cost
    med = common.median
    res.out(
        f"preview count ({env.database}): {sorted(counts)}; median {ms(med(times)):.0f} ms "
        f"(min {ms(min(times)):.0f}, max {ms(max(times)):.0f}, {len(times)} runs); "
        f"hand-written count median {ms(med(hand)):.0f} ms; planner cost {cost}"
    )
    res.out(f"preview median ms ({env.database}): {ms(med(times)):.0f}")
    res.out(f"ratio preview/hand count ({env.database}): {med(ratios):.2f}")


@contextlib.asynccontextmanager
async def watchdog(
    db: Any, env: Env, limit: float, current: dict[str, str]
) -> AsyncIterator[set[str]]:
    """Cancel (PostgreSQL ``pg_cancel_backend``) a segment refresh statement running longer than
    ``limit`` seconds, so one pathological plan does not stall the run; yields the names of the
    segments cancelled (``current["name"]`` is the one being refreshed; the refresh fails and is
    reported)."""
    cancelled: set[str] = set()
    if env.database != "postgres" or limit <= 0:
        yield cancelled
        return

    async def watch() -> None:
        while True:
            await asyncio.sleep(2)
            async with db.engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state = 'active' AND pid <> pg_backend_pid() "
                        "AND query LIKE 'INSERT INTO segment_refresh_members%' "
                        "AND now() - query_start > make_interval(secs => :limit)"
                    ),
                    {"limit": limit},
                )
                for (pid,) in rows.all():
                    busy = current.get("name", "?")
                    console.log(f"cancelling the refresh of {busy!r} (over {limit:.0f} s)")
                    await conn.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": pid})
                    cancelled.add(str(busy))
                await conn.commit()

    task = asyncio.create_task(watch())
    try:
        yield cancelled
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def pick_shoppers(users: int, n: int, seed: int) -> list[int]:
    """Half uniformly among all shoppers, half as the events were spread (towards active ones)."""
    rnd = random.Random(seed)
    out: list[int] = []
    while len(out) < n:
        if len(out) % 2 == 0:
            cid = rnd.randint(1, users)
        else:
            x = rnd.randrange(users)
            cid = 1 + x * x // users
        if cid not in out:
            out.append(cid)
    return out


async def measure_incremental(
    db: Any, env: Env, args: argparse.Namespace, res: Results, example_id: int
) -> None:
    from sqlalchemy import BigInteger, bindparam, exists, literal, select, union_all

    from domain.audit.service import Actor
    from domain.events.service import track_events
    from domain.segments.compiler import compile_members
    from domain.segments.membership import (
        EVERYTHING,
        Changes,
        active_definitions,
        affects,
        reevaluate_customer,
        refresh_all,
    )

    settings = settings_for(env)
    ids = [example_id]
    for name, doc in variations(env.store, example_id)[: args.segments - 1]:
        ids.append(await create(db, name, doc))
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("refresh the segments", total=len(ids))

        current: dict[str, str] = {}

        def step(done: int, total: int, name: str) -> None:
            current["name"] = name
            progress.update(task, completed=done, total=total)

        async with watchdog(db, env, args.refresh_limit, current) as cancelled:
            summary = await refresh_all(db, progress=step, segment_ids=ids)
    refresh_seconds = time.perf_counter() - started
    for sid, why in sorted(summary.failed.items()):
        res.out(f"refresh failed: segment #{sid}: {why.splitlines()[0][:160]}")
    for name in sorted(cancelled):
        res.out(f"refresh cancelled by the bench after {args.refresh_limit:.0f} s: {name!r}")
    members = sorted((r.members for r in summary.refreshed), reverse=True)
    res.out(
        f"{len(ids)} segments refreshed in {refresh_seconds:.1f} s; members per segment: "
        f"median {common.median(members):.0f}, largest {members[:3]}"
    )
    names = dict(
        zip(ids, ["example"] + [n for n, _ in variations(env.store, example_id)], strict=False)
    )
    by_time = sorted(summary.refreshed, key=lambda r: -r.seconds)
    res.out(
        common.table(
            ["segment (slowest refresh first)", "members", "refresh s"],
            [[names.get(r.segment_id, str(r.segment_id)), r.members, r.seconds] for r in by_time],
        )
    )

    async with db.read_only() as session:
        items = [c for c in await active_definitions(session) if c.segment_id in ids]
    bare_query = union_all(
        *(
            select(literal(c.segment_id, BigInteger()).label("segment_id")).where(
                exists(
                    compile_members(
                        c.resolved,
                        now=datetime.now(UTC),
                        customer_id=bindparam("customer_id", type_=BigInteger()),
                    )
                )
            )
            for c in items
        )
    )
    actor = Actor(client_id=ACTOR_ID, subject=ACTOR_ID)
    shoppers = pick_shoppers(env.store.users, args.shoppers, args.seed)
    stamp = int(time.time())
    run_product = f"p{1 + (stamp % env.store.run_products)}"
    kinds = ("view", "add_to_cart", "message_open", "purchase")
    hook: list[float] = []
    hook_commit: list[float] = []
    full: list[float] = []
    raw: list[float] = []
    track: list[float] = []
    evaluated_hook: list[int] = []
    moved = 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("shoppers", total=len(shoppers))
        for i, cid in enumerate(shoppers):
            kind = kinds[i % len(kinds)]
            item: dict[str, Any] = {
                "client_event_id": f"bench-inc-{stamp}-{i}",
                "type": kind,
                "user_id": cid,
            }
            if kind in ("view", "add_to_cart"):
                item["product_external_id"] = run_product
            elif kind == "message_open":
                item["campaign_id"] = 7
                item["channel"] = "push"
            else:
                item.update(product_external_id=run_product, value="129.90", currency="EUR")
            started = time.perf_counter()
            async with db.unit_of_work() as session:
                result = await track_events(session, actor, [item], settings)
            track.append(time.perf_counter() - started)
            if result.accepted != 1:
                raise RuntimeError(f"event not stored: {result}")
            changes = Changes(event_types=frozenset({kind}))

            async def as_hooked(cid: int = cid, changes: Changes = changes) -> None:
                nonlocal moved
                evaluated: list[int] = []
                async with db.unit_of_work() as session:
                    t0 = time.perf_counter()
                    found = await reevaluate_customer(session, cid, changes, evaluated=evaluated)
                    hook.append(time.perf_counter() - t0)
                hook_commit.append(time.perf_counter() - t0)
                evaluated_hook.append(len(evaluated))
                moved += len(found)

            async def everything(cid: int = cid) -> None:
                evaluated: list[int] = []
                async with db.unit_of_work() as session:
                    t0 = time.perf_counter()
                    await reevaluate_customer(session, cid, EVERYTHING, evaluated=evaluated)
                    full.append(time.perf_counter() - t0)

            async def bare(cid: int = cid) -> None:
                # Baseline: the same 50 per-shopper checks as one statement built beforehand.
                async with db.read_only() as session:
                    t0 = time.perf_counter()
                    list(await session.scalars(bare_query, {"customer_id": cid}))
                    raw.append(time.perf_counter() - t0)

            steps = [as_hooked, everything, bare]
            for fn in steps if i % 2 == 0 else [as_hooked, bare, everything]:
                await fn()
            progress.advance(task)
    async with db.read_only() as session:
        items = [c for c in await active_definitions(session) if c.segment_id in ids]
        per_kind = {
            k: sum(1 for c in items if affects(c.deps, Changes(event_types=frozenset({k}))))
            for k in kinds
        }
    med = common.median
    rows = [
        ["reevaluate_customer, changes of the event", ms(med(hook)), ms(percentile(hook, 0.95))],
        ["  the same, with its commit", ms(med(hook_commit)), ms(percentile(hook_commit, 0.95))],
        ["reevaluate_customer, all 50 segments", ms(med(full)), ms(percentile(full, 0.95))],
        [
            "the 50 checks alone (one statement, built once)",
            ms(med(raw)),
            ms(percentile(raw, 0.95)),
        ],
        [
            "track_events of the one event (commit incl.)",
            ms(med(track)),
            ms(percentile(track, 0.95)),
        ],
    ]
    res.out(common.table([f"per shopper ({len(shoppers)} shoppers)", "median ms", "p95 ms"], rows))
    res.out(
        f"segments evaluated per event: median {med(evaluated_hook):.0f} "
        f"(by event type: {per_kind}); transitions written: {moved}"
    )
    res.out(f"incremental median ms ({env.database}): {ms(med(hook)):.1f}")
    res.out(f"incremental all-segments median ms ({env.database}): {ms(med(full)):.1f}")
    res.out(f"ratio all-segments/bare SQL ({env.database}): {med(full) / med(raw):.2f}")


async def run_measures(env: Env, args: argparse.Namespace, parts: set[str]) -> None:
    from domain.db import Database

    db = Database(settings_for(env))
    res = Results()
    try:
        await clean(db)
        example_id = await create(db, "example", example(env.store))
        baseline_id = await create(db, "hand-written baseline", None)
        if "refresh" in parts:
            await measure_refresh(db, env, args, res, example_id, baseline_id)
        if "preview" in parts:
            await measure_preview(db, env, args, res)
        if "incremental" in parts:
            await measure_incremental(db, env, args, res, example_id)
    finally:
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
