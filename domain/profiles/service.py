"""The profile recompute: RFM, lifecycle stage, historical and predictive CLV, spend level, top
categories and brands, active hours, first and last seen, for every customer (or a given few).

Set-based SQL on SQLite and PostgreSQL: one pass over orders with window functions ranks every
buyer; then customers are taken in chunks of ids, each chunk read with one statement (its events
read once, plus its order lines) and upserted with one more. The rules and formulas are in
docs/profiles.md; the constants below are the ones it names.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.audit import service as audit
from domain.columns import UTCDateTime, utcnow
from domain.db import Database
from domain.profiles import clv
from domain.profiles.models import CustomerProfile
from domain.settings import Settings
from domain.sql import insert_for, table
from domain.users.models import Customer

# Interest weights per event type for top categories and brands. Purchase events that came from an
# order (order_id set) are skipped: the order's lines count instead, ORDER_LINE_WEIGHT each.
EVENT_WEIGHTS = {
    "view": 1,
    "search": 0,
    "add_to_cart": 3,
    "remove_from_cart": -1,
    "favorite": 2,
    "share": 2,
    "review": 2,
    "purchase": 5,
}
ORDER_LINE_WEIGHT = 5
TOP_N = 5
# Spend level by the share of paying customers with at most this revenue (cumulative distribution).
SPEND_LEVEL_CUTS = ((0.95, "top"), (0.80, "high"), (0.50, "medium"))
MIN_REPEAT_FOR_TYPICAL_GAP = 10
CENT = Decimal("0.01")
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class RecomputeResult:
    customers: int = 0
    buyers: int = 0
    ranked_buyers: int = 0
    chunks: int = 0
    typical_interpurchase_days: float = 0.0
    clv: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    computed_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "buyers": self.buyers,
            "ranked_buyers": self.ranked_buyers,
            "chunks": self.chunks,
            "typical_interpurchase_days": round(self.typical_interpurchase_days, 3),
            "stages": dict(sorted(self.stages.items())),
            "clv": self.clv,
            "computed_at": self.computed_at.isoformat() if self.computed_at else None,
        }


@dataclass(slots=True)
class _Buyer:
    orders: int
    revenue: Decimal
    currency: str | None
    first_at: datetime
    last_at: datetime
    orders_w: int
    revenue_w: Decimal
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    spend_level: str = "none"


# --- SQL --------------------------------------------------------------------------------------

# Orders that count: not cancelled, with something left after refunds, placed up to ``now``.
# Net value = total - refunded_total. Scores rank buyers with an order in the window; RANK gives
# tied values the same (lowest) rank, so ties share a score.
_BUYERS_SQL = """
WITH o AS (
    SELECT customer_id, placed_at, currency, total - refunded_total AS net
    FROM orders
    WHERE customer_id IS NOT NULL AND status <> 'cancelled' AND cancelled_at IS NULL
      AND total - refunded_total > 0 AND placed_at <= :now
),
s AS (
    SELECT customer_id,
           COUNT(*) AS orders_all,
           SUM(net) AS revenue_all,
           MAX(currency) AS currency,
           MIN(placed_at) AS first_at,
           MAX(placed_at) AS last_at,
           SUM(CASE WHEN placed_at >= :since THEN 1 ELSE 0 END) AS orders_w,
           SUM(CASE WHEN placed_at >= :since THEN net ELSE 0 END) AS revenue_w,
           MAX(CASE WHEN placed_at >= :since THEN placed_at END) AS last_w
    FROM o GROUP BY customer_id
),
w AS (
    SELECT customer_id,
           RANK() OVER (ORDER BY last_w) AS r_rank,
           RANK() OVER (ORDER BY orders_w) AS f_rank,
           RANK() OVER (ORDER BY revenue_w) AS m_rank,
           CUME_DIST() OVER (ORDER BY revenue_w) AS m_cume,
           COUNT(*) OVER () AS ranked
    FROM s WHERE orders_w > 0
)
SELECT s.customer_id, s.orders_all, s.revenue_all, s.currency, s.first_at, s.last_at,
       s.orders_w, s.revenue_w, w.r_rank, w.f_rank, w.m_rank, w.m_cume, w.ranked
FROM s LEFT JOIN w ON w.customer_id = s.customer_id
"""


def _weight_case(column: str) -> str:
    whens = " ".join(f"WHEN '{t}' THEN {w}" for t, w in EVENT_WEIGHTS.items() if w)
    return f"CASE {column} {whens} ELSE 0 END"


# Counted per (customer, hour) first, then pivoted: the hour is computed once per event.
_HOUR_SUMS = ", ".join(f"SUM(CASE WHEN h.hour = {i} THEN h.n ELSE 0 END)" for i in range(24))
_NO_HOURS = ", ".join("NULL" for _ in range(24))


def _chunk_sql(dialect: str, chunk: str) -> str:
    """Everything a chunk needs from events and order lines, reading the chunk's events once.

    Rows by ``kind``: ``seen`` (count, first and last event, then 24 counts by local hour),
    ``category`` (``k`` = category id, ``name`` = its path, ``n`` = score) and ``brand``
    (``k`` = brand, ``n`` = score); top TOP_N per customer, ``rn`` 1 for the best. ``ev`` and ``interest`` are
    referenced twice, so both databases materialise them once.
    """
    zones = (
        "LEFT JOIN pg_timezone_names z ON z.name = c.timezone" if dialect == "postgresql" else ""
    )
    return f"""
WITH ev AS (
    SELECT e.customer_id, e.type, e.product_id, e.order_id, e.occurred_at
    FROM event e WHERE {chunk.format(c="e.customer_id")}
),
interest AS (
    SELECT customer_id, product_id, SUM({_weight_case("type")}) AS w
    FROM ev WHERE product_id IS NOT NULL AND NOT (type = 'purchase' AND order_id IS NOT NULL)
    GROUP BY customer_id, product_id
    UNION ALL
    SELECT o.customer_id, l.product_id, {ORDER_LINE_WEIGHT} * COUNT(*)
    FROM orders o JOIN order_line l ON l.order_id = o.id
    WHERE {chunk.format(c="o.customer_id")} AND l.product_id IS NOT NULL
      AND o.status <> 'cancelled' AND o.cancelled_at IS NULL
      AND l.quantity > l.refunded_quantity AND o.placed_at <= :now
    GROUP BY o.customer_id, l.product_id
),
categories AS (
    SELECT i.customer_id, p.category_id AS k, SUM(i.w) AS score,
           ROW_NUMBER() OVER (
               PARTITION BY i.customer_id ORDER BY SUM(i.w) DESC, p.category_id
           ) AS rn
    FROM interest i JOIN product p ON p.id = i.product_id
    WHERE p.category_id IS NOT NULL
    GROUP BY i.customer_id, p.category_id HAVING SUM(i.w) > 0
),
brands AS (
    SELECT i.customer_id, p.brand AS k, SUM(i.w) AS score,
           ROW_NUMBER() OVER (PARTITION BY i.customer_id ORDER BY SUM(i.w) DESC, p.brand) AS rn
    FROM interest i JOIN product p ON p.id = i.product_id
    WHERE p.brand IS NOT NULL
    GROUP BY i.customer_id, p.brand HAVING SUM(i.w) > 0
)
SELECT h.customer_id, 'seen' AS kind, CAST(NULL AS VARCHAR) AS k, CAST(NULL AS VARCHAR) AS name,
       SUM(h.n) AS n, MIN(h.first_at) AS first_at, MAX(h.last_at) AS last_at, 0 AS rn,
       {_HOUR_SUMS}
FROM (
    SELECT ev.customer_id, {_hour_expr(dialect)} AS hour, COUNT(*) AS n,
           MIN(ev.occurred_at) AS first_at, MAX(ev.occurred_at) AS last_at
    FROM ev JOIN customer c ON c.id = ev.customer_id {zones}
    GROUP BY ev.customer_id, {_hour_expr(dialect)}
) h GROUP BY h.customer_id
UNION ALL
SELECT t.customer_id, 'category', CAST(t.k AS VARCHAR), g.path, t.score, NULL, NULL, t.rn,
       {_NO_HOURS}
FROM categories t JOIN category g ON g.id = t.k WHERE t.rn <= {TOP_N}
UNION ALL
SELECT customer_id, 'brand', k, NULL, score, NULL, NULL, rn, {_NO_HOURS}
FROM brands WHERE rn <= {TOP_N}
"""


_MISSING_PROFILES_SQL = """
INSERT INTO customer_profile (customer_id, event_count, orders_count, revenue, rfm_frequency,
    rfm_monetary, lifecycle_stage, clv_historical, spend_level, top_categories, top_brands,
    active_hours, updated_at)
SELECT id, 0, 0, 0, 0, 0, 'new', 0, 'none', '[]', '[]', '[]', :touched
FROM customer WHERE {c} ORDER BY id
ON CONFLICT (customer_id) {conflict}
"""
# PostgreSQL: inserting the missing rows and locking the existing ones in ONE pass in id order (a
# DO UPDATE whose WHERE is false still locks the row, and changes nothing). Two passes (insert the
# missing, then lock the rest) deadlocked with an ingestion batch upserting the same customers in id
# order: each held a row the other wanted next.
_LOCK_EXISTING = {
    "postgresql": "DO UPDATE SET updated_at = customer_profile.updated_at WHERE false",
    "sqlite": "DO NOTHING",  # one writer at a time: the insert takes the database's write lock
}


def _chunk_filter(ids: Sequence[int] | None) -> str:
    return "{c} IN :ids" if ids is not None else "{c} BETWEEN :lo AND :hi"


def _hour_expr(dialect: str) -> str:
    if dialect == "postgresql":
        # Unknown zone names (none pass validation, but older rows might) fall back to UTC.
        return (
            "CAST(EXTRACT(HOUR FROM ev.occurred_at AT TIME ZONE "
            "COALESCE(z.name, 'UTC')) AS INTEGER)"
        )
    return "precis_local_hour(ev.occurred_at, c.timezone)"


@lru_cache(maxsize=1024)
def _zone(name: str | None) -> ZoneInfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def _local_hour(stamp: str | None, zone: str | None) -> int | None:
    """SQLite function: the hour of a stored UTC timestamp in the zone (UTC when unknown)."""
    if stamp is None:
        return None
    at = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return at.astimezone(_zone(zone)).hour


async def _register_sqlite_functions(session: AsyncSession) -> None:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    await raw.driver_connection.create_function(  # type: ignore[union-attr]
        "precis_local_hour", 2, _local_hour, deterministic=True
    )


# --- rules --------------------------------------------------------------------------------------


def score(rank: int, ranked: int) -> int:
    """Quintile score 1..5 from a 1-based rank among ``ranked`` buyers: 1 + floor(5 (rank-1) / n)."""
    return 1 + (5 * (rank - 1)) // ranked


def spend_level(cume: float | None) -> str:
    if cume is None:
        return "none"
    for cut, level in SPEND_LEVEL_CUTS:
        if cume > cut:
            return level
    return "low"


def typical_gap(buyers: dict[int, _Buyer], default: float) -> float:
    """The median over repeat buyers of their mean days between orders (``default`` if too few)."""
    gaps = [
        (b.last_at - b.first_at).total_seconds() / 86400 / (b.orders - 1)
        for b in buyers.values()
        if b.orders > 1
    ]
    gaps = [g for g in gaps if g > 0]
    if len(gaps) < MIN_REPEAT_FOR_TYPICAL_GAP:
        return default
    return max(float(statistics.median(gaps)), 1.0)


def lifecycle(orders: int, recency_days: float | None, gap: float, settings: Settings) -> str:
    """new, active, loyal, at_risk or churned (first rule that matches, see docs/profiles.md)."""
    if orders == 0 or recency_days is None:
        return "new"
    if recency_days > settings.profile_churned_factor * gap:
        return "churned"
    if recency_days > settings.profile_at_risk_factor * gap:
        return "at_risk"
    if orders == 1:
        return "new"
    if orders >= settings.profile_loyal_min_orders:
        return "loyal"
    return "active"


def _ranked(items: list[tuple[int, dict[str, Any]]] | None) -> list[dict[str, Any]]:
    return [item for _, item in sorted(items or [], key=lambda pair: pair[0])]


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT, rounding=ROUND_HALF_UP)


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


# --- recompute ----------------------------------------------------------------------------------


async def _batch_settings(session: AsyncSession) -> None:
    """PostgreSQL settings for this job's transactions (``SET LOCAL``: they end with it). JIT
    compilation cost more than it saved (about 0.2 s a chunk); with more memory a chunk's events are
    not spilled to temporary files; and the API's statement timeout is for requests, not for a
    pass over every order."""
    for setting in ("jit = off", "work_mem = '64MB'", "statement_timeout = '10min'"):
        await session.execute(text(f"SET LOCAL {setting}"))


async def _buyers(session: AsyncSession, now: datetime, since: datetime) -> dict[int, _Buyer]:
    stmt = (
        text(_BUYERS_SQL)
        .bindparams(bindparam("now", type_=UTCDateTime()), bindparam("since", type_=UTCDateTime()))
        .columns(first_at=UTCDateTime(), last_at=UTCDateTime())
    )
    found: dict[int, _Buyer] = {}
    for row in await session.execute(stmt, {"now": now, "since": since}):
        b = _Buyer(
            orders=int(row.orders_all),
            revenue=_money(row.revenue_all),
            currency=row.currency,
            first_at=row.first_at,
            last_at=row.last_at,
            orders_w=int(row.orders_w or 0),
            revenue_w=_money(row.revenue_w),
        )
        if row.ranked:
            n = int(row.ranked)
            b.r_score = score(int(row.r_rank), n)
            b.f_score = score(int(row.f_rank), n)
            b.m_score = score(int(row.m_rank), n)
            b.spend_level = spend_level(float(row.m_cume))
        found[row.customer_id] = b
    return found


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


async def recompute(
    db: Database,
    settings: Settings,
    *,
    now: datetime | None = None,
    customer_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
    actor: audit.Actor = audit.SYSTEM,
) -> RecomputeResult:
    """Recompute the profiles of every customer (or of ``customer_ids``); one unit of work per chunk.

    Safe to run twice: every column it owns is overwritten from the orders and events tables.
    """
    now = (now or utcnow()).astimezone(UTC)
    since = now - timedelta(days=settings.profile_rfm_window_days)
    result = RecomputeResult(computed_at=now)

    async with db.read_only() as session:
        if session.get_bind().dialect.name == "postgresql":
            await _batch_settings(session)
        buyers = await _buyers(session, now, since)
        ids: list[int] = []
        if customer_ids is None:
            query = select(col(Customer.id)).order_by(col(Customer.id))
            ids = [int(i) for i in await session.scalars(query) if i is not None]
        else:
            for part in _chunks(sorted(set(customer_ids)), 10_000):
                query = select(col(Customer.id)).where(col(Customer.id).in_(part))
                ids += [int(i) for i in await session.scalars(query) if i is not None]
            ids.sort()
    result.buyers = len(buyers)
    result.ranked_buyers = sum(1 for b in buyers.values() if b.r_score is not None)
    gap = typical_gap(buyers, settings.profile_default_interpurchase_days)
    result.typical_interpurchase_days = gap

    predictions: dict[int, clv.Prediction] = {}
    if settings.profile_clv_model == "bgnbd":
        history = [
            clv.Buyer(
                customer_id=cid,
                frequency=b.orders - 1,
                recency=_days(b.last_at - b.first_at),
                age=_days(now - b.first_at),
                average_value=float(b.revenue / b.orders),
            )
            for cid, b in sorted(buyers.items())
        ]
        fit = await asyncio.to_thread(
            clv.fit_and_predict, history, horizon_days=settings.profile_clv_horizon_days
        )
        predictions = fit.predictions
        result.clv = fit.summary()
    else:
        result.clv = {"model": "off"}

    chunks = _chunks(ids, settings.profile_chunk_size)
    result.chunks = len(chunks)
    done = 0
    if progress:
        progress(0, len(ids))
    for chunk in chunks:
        async with db.unit_of_work() as session:
            rows = await _chunk_rows(session, chunk, buyers, predictions, gap, settings, now)
            await _upsert(session, rows)
        for row in rows:
            result.stages[row["lifecycle_stage"]] = result.stages.get(row["lifecycle_stage"], 0) + 1
        done += len(chunk)
        result.customers = done
        if progress:
            progress(done, len(ids))
    async with db.unit_of_work() as session:
        details = {k: v for k, v in result.summary().items() if k != "computed_at"}
        details["all_customers"] = customer_ids is None
        await audit.record(session, actor, "profiles.recompute", "CustomerProfile", details=details)
    return result


async def _chunk_rows(
    session: AsyncSession,
    chunk: list[int],
    buyers: dict[int, _Buyer],
    predictions: dict[int, clv.Prediction],
    gap: float,
    settings: Settings,
    now: datetime,
) -> list[dict[str, Any]]:
    dialect = session.get_bind().dialect.name
    contiguous = chunk[-1] - chunk[0] + 1 == len(chunk)
    # A contiguous id range reads with BETWEEN (index range scans); otherwise an IN list.
    params: dict[str, Any] = (
        {"lo": chunk[0], "hi": chunk[-1]} if contiguous else {"ids": list(chunk)}
    )
    flt = _chunk_filter(None if contiguous else chunk)

    def stmt(sql: str, *dates: str) -> Any:
        s = text(sql)
        if not contiguous:
            s = s.bindparams(bindparam("ids", expanding=True))
        if ":now" in sql:
            s = s.bindparams(bindparam("now", type_=UTCDateTime()))
            params["now"] = now
        return s.columns(**{d: UTCDateTime() for d in dates}) if dates else s

    if dialect == "sqlite":
        await _register_sqlite_functions(session)
    else:
        await _batch_settings(session)
    # Take the chunk's profile rows first, so an ingestion batch that commits while this chunk is
    # read adds its events on top of the count written here, never under it (live.py moves these
    # columns forward between recomputes): insert the missing rows (SQLite: this takes the write
    # lock; PostgreSQL: a batch inserting the same row waits for this transaction), then lock the
    # rest in id order (the order live.py locks them in).
    await session.execute(
        stmt(
            _MISSING_PROFILES_SQL.format(
                c=flt.format(c="id"), conflict=_LOCK_EXISTING.get(dialect, "DO NOTHING")
            )
        ).bindparams(bindparam("touched", type_=UTCDateTime())),
        {**params, "touched": utcnow()},
    )
    lock = "SELECT customer_id FROM customer_profile WHERE {c} ORDER BY customer_id"
    if dialect == "postgresql":
        lock += " FOR UPDATE"
    sql = stmt(lock.format(c=flt.format(c="customer_id")))
    # Customers erased since the recompute listed them have no row (and get none).
    present = set((await session.execute(sql, params)).scalars())

    seen: dict[int, tuple[int, datetime, datetime, list[int]]] = {}
    categories: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    brands: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    sql = stmt(_chunk_sql(dialect, flt), "first_at", "last_at")
    for cid, kind, k, name, n, first_at, last_at, rn, *hours in await session.execute(sql, params):
        if kind == "seen":
            seen[cid] = (int(n), first_at, last_at, [int(h) for h in hours])
        elif kind == "category":
            categories[cid].append((rn, {"id": int(k), "name": name, "score": int(n)}))
        else:
            brands[cid].append((rn, {"name": k, "score": int(n)}))

    rows = []
    for cid in chunk:
        if cid not in present:
            continue
        b = buyers.get(cid)
        s = seen.get(cid)
        p = predictions.get(cid)
        recency = _days(now - b.last_at) if b else None
        row: dict[str, Any] = {
            "customer_id": cid,
            "first_seen_at": s[1] if s else None,
            "last_seen_at": s[2] if s else None,
            "event_count": s[0] if s else 0,
            "orders_count": b.orders if b else 0,
            "revenue": b.revenue if b else Decimal(0),
            "currency": b.currency if b else None,
            "first_order_at": b.first_at if b else None,
            "last_order_at": b.last_at if b else None,
            "recency_days": int(recency) if recency is not None else None,
            "rfm_frequency": b.orders_w if b else 0,
            "rfm_monetary": b.revenue_w if b else Decimal(0),
            "r_score": b.r_score if b else None,
            "f_score": b.f_score if b else None,
            "m_score": b.m_score if b else None,
            "lifecycle_stage": lifecycle(b.orders if b else 0, recency, gap, settings),
            "average_order_value": _money(b.revenue / b.orders) if b else None,
            # DESIGN section 7: average order value x purchase count (= net revenue, all time).
            "clv_historical": _money((b.revenue / b.orders) * b.orders) if b else Decimal(0),
            "clv_predicted": _money(p.expected_value) if p else None,
            "probability_alive": round(p.probability_alive, 6) if p else None,
            "expected_purchases": round(p.expected_purchases, 6) if p else None,
            "spend_level": b.spend_level if b else "none",
            "top_categories": _ranked(categories.get(cid)),
            "top_brands": _ranked(brands.get(cid)),
            "active_hours": s[3] if s else [0] * 24,
            "computed_at": now,
            "updated_at": utcnow(),
        }
        rows.append(row)
    return rows


_UPSERTS: dict[str, Any] = {}


async def _upsert(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        t = table(CustomerProfile)
        stmt = insert_for(session)(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.customer_id],
            set_={c: stmt.excluded[c] for c in rows[0] if c != "customer_id"},
        )
        _UPSERTS[dialect] = stmt
    await session.execute(stmt, rows)


# --- reads ------------------------------------------------------------------------------------


async def profiles_for(session: AsyncSession, ids: Sequence[int]) -> dict[int, CustomerProfile]:
    """Stored profiles by customer id (customers without one get ``default_profile``)."""
    if not ids:
        return {}
    rows = await session.scalars(
        select(CustomerProfile).where(col(CustomerProfile.customer_id).in_(list(ids)))
    )
    return {r.customer_id: r for r in rows}


def default_profile(customer_id: int) -> CustomerProfile:
    """What a customer with no events and no orders looks like (before any recompute)."""
    return CustomerProfile(customer_id=customer_id, active_hours=[0] * 24)


async def count_profiles(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(CustomerProfile)) or 0)
