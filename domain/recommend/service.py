"""Training, listing and promoting recommendation model versions.

Training (``train``) reads the interactions in a read-only session, fits and evaluates the hybrid
outside any transaction (in a thread), then writes the new version's row in a unit of work of its
own at the end: a crash on the way writes nothing, and the active version keeps serving. Data that
cannot be trained on writes a ``failed`` row with the error and raises :class:`TrainingError`.

Interactions: behaviour events (view, favourite, add to cart, purchase naming a product, review with
its rating) of customers, plus the lines of their orders (not cancelled, quantity not all refunded)
as purchases with the order as the basket, read column-wise (:func:`read_interactions`) and weighted
by ``recommend.data.from_columns``. Events of
anonymous visitors and of erased shoppers (their events carry no customer) do not count, and neither
do shoppers whose latest ``personalization`` consent is a refusal (no record: as
``analytics_consent_default`` says).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    String,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from domain.audit import service as audit
from domain.audit.service import Actor
from domain.catalog.models import Category, Product
from domain.columns import utcnow
from domain.consents.models import Consent
from domain.db import Database
from domain.errors import DomainError, FieldError
from domain.events.models import Event
from domain.orders.models import Order, OrderLine
from domain.recommend.models import ModelVersion
from domain.settings import Settings
from domain.sql import table
from domain.tasks.models import TaskRun

PERSONALIZATION = "personalization"
EVENT_KINDS = ("view", "favorite", "add_to_cart", "purchase", "review")
METRIC = "ndcg@10"
K = 10
READ_TIMEOUT = "30min"
CHUNK_ROWS = 100_000  # interaction rows fetched and turned into arrays at a time

Progress = Callable[[str, int, int], None]


class TrainingError(DomainError):
    """Training could not produce a candidate (codes EMPTY_DATA, TOO_SMALL, INVALID_CONFIG)."""


def _training_error(code: str, message: str) -> TrainingError:
    return TrainingError([FieldError(code, message)])


@dataclass
class Promotion:
    version: ModelVersion
    previous: ModelVersion | None
    forced: bool


def algorithms(settings: Settings) -> list[str]:
    from recommend.components import DEFAULT_ALGORITHMS, split_specs

    text = settings.recommend_algorithms.strip()
    return split_specs(text) if text else list(DEFAULT_ALGORITHMS)


async def refused_personalization(session: AsyncSession, settings: Settings) -> set[int] | None:
    """Customers who may not get personal models: the latest personalization record refuses
    (default allowed), or, when the default is "no", everyone but those whose latest grants
    (returned as the complement: ``None`` means "use ``granted_only``")."""
    t = table(Consent)
    newest = (
        select(func.max(t.c.id)).where(t.c.purpose == PERSONALIZATION).group_by(t.c.customer_id)
    )
    rows = await session.execute(select(t.c.customer_id, t.c.granted).where(t.c.id.in_(newest)))
    latest = {int(c): bool(g) for c, g in rows}
    if settings.analytics_consent_default:
        return {c for c, g in latest.items() if not g}
    return {c for c, g in latest.items() if g}  # the only ones allowed


@dataclass
class InteractionColumns:
    """Interactions as read from the database, one array per column (row ``i`` of each is one
    event or order line): customer and product ids, the kind (an index into ``EVENT_KINDS``), the time
    (``datetime64[us]``, UTC), the review rating (NaN: none) and the order id (0: none)."""

    user: np.ndarray
    item: np.ndarray
    kind: np.ndarray
    time: np.ndarray
    rating: np.ndarray
    order: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def baskets(self) -> pd.Categorical:
        """``o<order id>`` where there is an order, else missing (each distinct text made once)."""
        codes, uniques = pd.factorize(
            np.where(self.order > 0, self.order, -1), use_na_sentinel=True
        )
        ids = uniques.tolist()
        names = [f"o{o}" for o in ids if o > 0]
        if -1 in ids:  # no order: code -1 (missing)
            gone = ids.index(-1)
            codes = np.where(codes == gone, -1, codes - (codes > gone))
        return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))

    def kinds(self) -> pd.Categorical:
        return pd.Categorical.from_codes(self.kind, categories=pd.Index(EVENT_KINDS, dtype=object))


def personalization_allowed(customer: Any, settings: Settings) -> Any:
    """SQL condition: ``customer`` may get personal models. The latest ``personalization`` record
    of a customer wins; no record: as ``analytics_consent_default`` says."""
    t = table(Consent)
    newest = (
        select(func.max(t.c.id)).where(t.c.purpose == PERSONALIZATION).group_by(t.c.customer_id)
    )
    if settings.analytics_consent_default:
        refused = select(t.c.customer_id).where(t.c.id.in_(newest), t.c.granted.is_(False))
        return customer.not_in(refused)
    granted = select(t.c.customer_id).where(t.c.id.in_(newest), t.c.granted.is_(True))
    return customer.in_(granted)


def _epoch_us(column: Any, dialect: str) -> Any:
    """The time as microseconds since the epoch (PostgreSQL), or the stored text (SQLite keeps
    ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC), parsed per chunk by numpy."""
    if dialect == "postgresql":
        return cast(extract("epoch", column) * 1_000_000, BigInteger)
    return type_coerce(column, String)


def _times(values: tuple[Any, ...], dialect: str) -> np.ndarray:
    if dialect == "postgresql":
        return np.array(values, dtype=np.int64).view("datetime64[us]")
    return np.array(values, dtype="datetime64[us]")


def _review_ratings(values: tuple[Any, ...]) -> np.ndarray:
    """A review's ``properties.rating`` when it is a whole number (as events store it), else NaN;
    only reviews carry their properties here."""
    raw = np.empty(len(values), dtype=object)
    raw[:] = values
    out = np.full(len(raw), np.nan)
    for i in np.flatnonzero(raw != None):  # noqa: E711 (elementwise)
        v = (raw[i] or {}).get("rating")
        if isinstance(v, int) and not isinstance(v, bool):
            out[i] = float(v)
    return out


# PostgreSQL: a review's rating when it is a whole number, as ``isinstance(rating, int)`` sees the
# JSON (jsonb prints numbers without exponents; "4.0" stays a float).
_PG_RATING: Any = literal_column(
    "CASE WHEN event.type = 'review' AND jsonb_typeof(event.properties -> 'rating') = 'number' "
    "AND (event.properties ->> 'rating') ~ '^-?[0-9]+$' "
    "THEN CAST(event.properties ->> 'rating' AS DOUBLE PRECISION) END"
)
_CSV_COLUMNS = {
    "user": np.int64,
    "item": np.int64,
    "kind": np.int8,
    "time": np.int64,
    "rating": np.float64,
    "order": np.int64,
}


async def _copy_columns(
    session: AsyncSession,
    queries: tuple[Any, ...],
    chunk: int,
    progress: Callable[[int], None] | None,
) -> list[list[np.ndarray]]:
    """PostgreSQL: each query as ``COPY (...) TO STDOUT`` CSV through asyncpg, in the session's
    transaction; about ``chunk`` rows of text at a time are parsed into arrays by pandas (in a
    thread) while the rest streams in."""
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    dialect = conn.dialect
    parts: list[list[np.ndarray]] = []
    buffer = bytearray()
    total = 0
    limit = chunk * 48  # bytes: a row is about 40-50 characters of CSV

    def parse(data: bytes) -> list[np.ndarray]:
        frame = pd.read_csv(
            io.BytesIO(data), header=None, names=list(_CSV_COLUMNS), dtype=_CSV_COLUMNS
        )
        cols = [frame[c].to_numpy() for c in _CSV_COLUMNS]
        cols[3] = cols[3].view("datetime64[us]")
        return cols

    async def flush(final: bool) -> None:
        nonlocal total
        end = len(buffer) if final else buffer.rfind(b"\n") + 1
        if end <= 0:
            return
        data = bytes(buffer[:end])
        del buffer[:end]
        cols = await asyncio.to_thread(parse, data)
        parts.append(cols)
        total += len(cols[0])
        if progress is not None:
            progress(total)

    async def take(data: bytes) -> None:
        buffer.extend(data)
        if len(buffer) >= limit:
            await flush(False)

    for query in queries:
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        await raw.copy_from_query(sql, output=take, format="csv")
        await flush(True)
    return parts


async def interaction_columns(
    session: AsyncSession,
    settings: Settings,
    *,
    chunk: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> InteractionColumns:
    """Events (view, favourite, add to cart, purchase naming a product, review) and order lines
    (not cancelled, not all refunded) of customers allowed personalization, in chunks of about
    ``chunk`` rows: the consent rule is applied in SQL and each chunk becomes numpy arrays at once
    (no ORM objects, no dict per row). PostgreSQL streams ``COPY ... TO STDOUT`` CSV parsed by
    pandas; SQLite a server-side cursor. ``progress(rows)`` after each chunk."""
    dialect = session.get_bind().dialect.name
    pg = dialect == "postgresql"
    e = table(Event)
    code = case({k: i for i, k in enumerate(EVENT_KINDS)}, value=e.c.type)
    events = select(
        e.c.customer_id,
        e.c.product_id,
        code,
        _epoch_us(e.c.occurred_at, dialect),
        _PG_RATING if pg else case((e.c.type == "review", e.c.properties)),
        func.coalesce(e.c.order_id, 0),
    ).where(
        e.c.customer_id.is_not(None),
        e.c.product_id.is_not(None),
        e.c.type.in_(EVENT_KINDS),
        personalization_allowed(e.c.customer_id, settings),
    )
    o, line = table(Order), table(OrderLine)
    lines = (
        select(
            o.c.customer_id,
            line.c.product_id,
            literal(EVENT_KINDS.index("purchase")),
            _epoch_us(o.c.placed_at, dialect),
            null(),
            o.c.id,
        )
        .select_from(line.join(o, o.c.id == line.c.order_id))
        .where(
            o.c.customer_id.is_not(None),
            line.c.product_id.is_not(None),
            o.c.status != "cancelled",
            line.c.quantity > line.c.refunded_quantity,
            personalization_allowed(o.c.customer_id, settings),
        )
    )
    parts: list[list[np.ndarray]] = []
    total = 0
    if pg:
        parts = await _copy_columns(session, (events, lines), chunk, progress)
    for query in () if pg else (events, lines):
        result = await session.stream(query.execution_options(yield_per=chunk))
        async for rows in result.partitions():
            user, item, kind, at, rating, order = zip(*rows, strict=True)
            parts.append(
                [
                    np.array(user, dtype=np.int64),
                    np.array(item, dtype=np.int64),
                    np.array(kind, dtype=np.int8),
                    _times(at, dialect),
                    _review_ratings(rating),
                    np.array(order, dtype=np.int64),
                ]
            )
            total += len(rows)
            if progress is not None:
                progress(total)
    empty: list[np.ndarray] = [
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0, np.int8),
        np.empty(0, "datetime64[us]"),
        np.empty(0, np.float64),
        np.empty(0, np.int64),
    ]
    cols: list[np.ndarray] = [
        np.concatenate([p[i] for p in parts]) if parts else empty[i] for i in range(6)
    ]
    return InteractionColumns(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])


async def read_interactions(
    session: AsyncSession,
    settings: Settings,
    *,
    now: datetime,
    weights: Any = None,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """The training interactions (``recommend.data.Interactions``, items are product ids):
    :func:`interaction_columns` weighted by ``recommend.data.from_columns`` (in a thread)."""
    from recommend.data import WeightSettings, from_columns

    c = await interaction_columns(session, settings, progress=progress)
    return await asyncio.to_thread(
        lambda: from_columns(
            c.user,
            c.item,
            c.kinds(),
            c.time,
            c.rating,
            c.baskets(),
            now=now,
            settings=weights or WeightSettings(),
        )
    )


async def interaction_rows(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
    """The same interactions as one dict per row (user, item, type, occurred_at, rating, basket),
    for tests and tools; training reads :func:`read_interactions`."""
    c = await interaction_columns(session, settings)
    times = c.time.astype("datetime64[us]").astype(object)
    baskets = np.asarray(c.baskets().astype(object))
    return [
        {
            "user": int(u),
            "item": int(i),
            "type": str(k),
            "occurred_at": at.replace(tzinfo=UTC),
            "rating": None if np.isnan(r) else int(r),
            "basket": None if pd.isna(basket) else basket,
        }
        for u, i, k, at, r, basket in zip(
            c.user, c.item, c.kinds().astype(object), times, c.rating, baskets, strict=True
        )
        if k != "review" or not np.isnan(r)  # a review without a whole-number rating
    ]


async def item_texts(session: AsyncSession) -> tuple[dict[str, str], dict[str, str]]:
    """Product text (title, brand, category path, description) and category for content
    similarity and diversity, keyed like the interactions (product id)."""
    p, c = table(Product), table(Category)
    rows = await session.execute(
        select(p.c.id, p.c.title, p.c.brand, p.c.description, c.c.path).select_from(
            p.outerjoin(c, c.c.id == p.c.category_id)
        )
    )
    text: dict[str, str] = {}
    category: dict[str, str] = {}
    for pid, title, brand, description, path in rows:
        text[str(pid)] = " ".join(x for x in (title, brand, path, (description or "")[:500]) if x)
        if path:
            category[str(pid)] = path
    return text, category


def _clean(value: Any) -> Any:
    """JSON-safe metrics: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


async def _failed(
    db: Database,
    specs: list[str],
    error: TrainingError,
    task_id: str | None,
    counts: dict[str, Any],
) -> ModelVersion:
    async with db.unit_of_work() as session:
        row = ModelVersion(
            algorithm=",".join(specs)[:500],
            parameters={"algorithms": specs},
            status="failed",
            error=str(error),
            task_id=task_id,
            **counts,
        )
        session.add(row)
        await session.flush()
        await audit.record(
            session,
            audit.SYSTEM,
            "model.train_failed",
            "ModelVersion",
            row.id,
            details={"error": str(error)[:500], "task_id": task_id},
        )
    return row


def _fit(
    data: Any, specs: list[str], progress: Progress
) -> tuple[Any, bytes, str, dict[str, Any], dict[str, Any], bytes, str]:
    """CPU work (runs in a thread): evaluate under the protocol, then refit the tuned components
    on all the data for the artifact, and build the serving bundle API processes load from it
    (precomputed lists, step "precomputing lists")."""
    from recommend import evaluate, protocol
    from recommend.hybrid import MAGIC, Hybrid
    from recommend.serving import Bundle

    report = evaluate.run(data, specs, k=K, keep_model=True, resamples=1000, progress=progress)
    assert report.model is not None
    progress("training on all data", 0, 1)
    full = protocol.build(data)
    components = {
        name: type(c)(**c.params).fit(full) for name, c in report.model.components.items()
    }
    model = Hybrid(full, components, report.model.weights)
    blob = model.dumps()
    sha = blob[len(MAGIC) : len(MAGIC) + 64].decode()
    serving = Bundle.build(model, progress=progress).dumps()
    hyb = report.result("hybrid")
    metrics = {**{k: v for k, v in hyb.row().items() if k not in ("algorithm", "seconds")}}
    metrics["components"] = [r.row() for r in report.results if r.name != "hybrid"]
    metrics["best_single"] = report.best_single
    body = report.to_json()
    metrics["bootstrap"] = body["bootstrap"]
    metrics["evaluated_users"] = report.evaluated_users
    params = {
        "algorithms": specs,
        "weights": report.model.weights,
        "tuned": body["tuned_params"],
        "k": K,
    }
    return report, blob, sha, _clean(metrics), _clean(params), serving, Bundle.sha256_of(serving)


async def train(
    db: Database,
    settings: Settings,
    *,
    task_id: str | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ModelVersion:
    """Build the data set, train, evaluate and store a candidate version (see module docstring).
    Raises :class:`TrainingError` after storing a ``failed`` version when the data cannot do."""
    from recommend.components import SpecError, make
    from recommend.evaluate import EvaluationError

    tell = progress or (lambda step, done, total: None)
    try:
        specs = algorithms(settings)
        for spec in specs:
            make(spec)
    except SpecError as exc:
        err = _training_error("INVALID_CONFIG", f"PRECIS_RECOMMEND_ALGORITHMS: {exc}")
        await _failed(db, [settings.recommend_algorithms], err, task_id, {})
        raise err from exc
    now = now or utcnow()
    tell("reading interactions", 0, 1)
    async with db.read_only() as session:
        if session.get_bind().dialect.name == "postgresql":
            # Reading every interaction can outlast the API's statement timeout on a big store.
            await session.execute(text(f"SET LOCAL statement_timeout = '{READ_TIMEOUT}'"))
        data = await read_interactions(session, settings, now=now)
        texts, category = await item_texts(session)
    seen = set(data.frame["item"])
    data.item_text = {k: v for k, v in texts.items() if k in seen}
    data.item_category = category
    data.source = "database"
    counts: dict[str, Any] = {
        "interactions": len(data),
        "users": data.n_users if len(data) else 0,
        "items": data.n_items if len(data) else 0,
    }
    if len(data):
        counts["data_from"] = datetime.fromtimestamp(float(data.frame["time"].min()), UTC)
        counts["data_to"] = datetime.fromtimestamp(float(data.frame["time"].max()), UTC)
    tell("reading interactions", 1, 1)
    if len(data) == 0:
        err = _training_error("EMPTY_DATA", "no interactions to train on (events or orders)")
        await _failed(db, specs, err, task_id, counts)
        raise err
    if len(data) < settings.recommend_min_interactions:
        err = _training_error(
            "TOO_SMALL",
            f"only {len(data)} interactions; at least {settings.recommend_min_interactions} "
            "are needed (PRECIS_RECOMMEND_MIN_INTERACTIONS)",
        )
        await _failed(db, specs, err, task_id, counts)
        raise err
    started = time.perf_counter()
    try:
        _report, blob, sha, metrics, params, serving, serving_sha = await asyncio.to_thread(
            _fit, data, specs, tell
        )
    except (EvaluationError, ValueError) as exc:
        err = _training_error("TOO_SMALL", f"cannot evaluate this data: {exc}")
        await _failed(db, specs, err, task_id, counts)
        raise err from exc
    seconds = time.perf_counter() - started
    tell("saving the candidate", 0, 1)
    async with db.unit_of_work() as session:
        row = ModelVersion(
            algorithm=",".join(specs)[:500],
            parameters=params,
            metrics=metrics,
            status="candidate",
            artifact=blob,
            sha256=sha,
            serving=serving,
            serving_sha256=serving_sha,
            task_id=task_id,
            trained_seconds=round(seconds, 3),
            **counts,
        )
        session.add(row)
        await session.flush()
        await audit.record(
            session,
            audit.SYSTEM,
            "model.train",
            "ModelVersion",
            row.id,
            details={METRIC: metrics.get(METRIC), "task_id": task_id, "sha256": sha},
        )
    tell("saving the candidate", 1, 1)
    return row


# -- reading ---------------------------------------------------------------------------------------


def _listing() -> Any:
    return select(ModelVersion).options(
        defer(ModelVersion.artifact),  # type: ignore[arg-type]
        defer(ModelVersion.serving),  # type: ignore[arg-type]
    )


async def list_versions(
    session: AsyncSession, *, status: str | None, after: int | None, first: int
) -> list[ModelVersion]:
    """Newest first; ``after`` is the id of the last row of the previous page."""
    q = _listing()
    if status is not None:
        q = q.where(col(ModelVersion.status) == status)
    if after is not None:
        q = q.where(col(ModelVersion.id) < after)
    rows = await session.execute(q.order_by(col(ModelVersion.id).desc()).limit(first))
    return list(rows.scalars())


async def count_versions(session: AsyncSession, *, status: str | None) -> int:
    q = select(func.count()).select_from(table(ModelVersion))
    if status is not None:
        q = q.where(table(ModelVersion).c.status == status)
    return int((await session.execute(q)).scalar_one())


async def active_version(session: AsyncSession, *, lock: bool = False) -> ModelVersion | None:
    q = _listing().where(col(ModelVersion.status) == "active")
    if lock:
        q = q.with_for_update()
    return (await session.execute(q)).scalars().first()  # type: ignore[no-any-return]


def ndcg(row: ModelVersion) -> float | None:
    value = (row.metrics or {}).get(METRIC)
    return float(value) if isinstance(value, int | float) else None


# -- promotion -------------------------------------------------------------------------------------


async def promote(
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    version_id: int,
    *,
    force: bool = False,
) -> Promotion:
    """Make a candidate the active version; the previous active one is retired. Refused (nothing
    changed) for an unknown version (NOT_FOUND), one that is not a candidate (NOT_CANDIDATE), or one
    whose NDCG@10 is below the active version's by more than the tolerance unless ``force``
    (WORSE_THAN_ACTIVE)."""
    path = ("input", "versionId")
    # Lock the active row first, then the candidate: two promotions queue up here (PostgreSQL);
    # SQLite runs one writer at a time anyway. The partial unique index is the last word.
    current = await active_version(session, lock=True)
    row = (
        await session.execute(
            _listing().where(col(ModelVersion.id) == version_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise DomainError.one("NOT_FOUND", "no such model version", *path)
    if row.status != "candidate":
        raise DomainError.one(
            "NOT_CANDIDATE", f"version {version_id} is {row.status}, not a candidate", *path
        )
    new, old = ndcg(row), (ndcg(current) if current is not None else None)
    tolerance = settings.recommend_promote_tolerance
    worse = old is not None and (new is None or new < old - tolerance)
    if worse and not force:
        raise DomainError.one(
            "WORSE_THAN_ACTIVE",
            f"candidate {version_id} has {METRIC} {_fmt(new)}, below the active version "
            f"{current.id if current else '?'} ({_fmt(old)}) by more than the tolerance "
            f"{tolerance:g}; pass force: true to promote it anyway",
            *path,
        )
    at = utcnow()
    who = f"{actor.client_id}:{actor.subject}"[:200]
    if current is not None:
        await session.execute(
            update(table(ModelVersion))
            .where(table(ModelVersion).c.id == current.id)
            .values(status="retired")
        )
        set_committed_value(current, "status", "retired")
    try:
        async with session.begin_nested():
            await session.execute(
                update(table(ModelVersion))
                .where(
                    and_(
                        table(ModelVersion).c.id == row.id,
                        table(ModelVersion).c.status == "candidate",
                    )
                )
                .values(status="active", promoted_at=at, promoted_by=who)
            )
    except IntegrityError as exc:
        # Another promotion made a version active meanwhile (the partial unique index).
        raise DomainError.one(
            "CONFLICT", "another version was promoted at the same time; try again", *path
        ) from exc
    for name, value in (("status", "active"), ("promoted_at", at), ("promoted_by", who)):
        set_committed_value(row, name, value)
    await audit.record(
        session,
        actor,
        "model.promote",
        "ModelVersion",
        row.id,
        fields=["status"],
        details={
            "forced": bool(force and worse),
            "previous": current.id if current else None,
            METRIC: new,
            f"previous_{METRIC}": old,
        },
    )
    return Promotion(row, current, forced=bool(force and worse))


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


# -- the refresh task ------------------------------------------------------------------------------

TASK_KIND = "refresh_model"
STALE_SECONDS = 2 * 3600  # a queued or running refresh older than this no longer blocks a new one


async def request_training(
    session: AsyncSession, actor: Actor, *, reason: str | None = None
) -> tuple[TaskRun, bool]:
    """The task a ``trainModel`` call runs: a refresh already queued or running (less than two
    hours old) is returned as is (second value False); otherwise a new queued task."""
    since = utcnow() - timedelta(seconds=STALE_SECONDS)
    pending = (
        await session.execute(
            select(TaskRun)
            .where(
                col(TaskRun.kind) == TASK_KIND,
                col(TaskRun.status).in_(("queued", "running")),
                col(TaskRun.created_at) >= since,
            )
            .order_by(col(TaskRun.created_at).desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if pending is not None:
        return pending, False
    task = TaskRun(
        id=f"{TASK_KIND}:{uuid.uuid4().hex}",
        kind=TASK_KIND,
        status="queued",
        params={"requested_by": f"{actor.client_id}:{actor.subject}"[:200], "reason": reason},
    )
    session.add(task)
    await session.flush()
    await audit.record(
        session, actor, "model.train_requested", "Task", task.id, details={"reason": reason}
    )
    return task, True


async def _set_task(db: Database, task_id: str, **values: Any) -> None:
    async with db.unit_of_work() as session:
        await session.execute(
            update(table(TaskRun)).where(table(TaskRun).c.id == task_id).values(**values)
        )


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_refresh(
    db: Database, settings: Settings, task_id: str, *, flush_seconds: float = 0.5
) -> dict[str, Any]:
    """Run (or create, for the schedule) the refresh task ``task_id``: progress is written to its
    ``task_run`` row (``result.step`` names the step; ``done``/``total`` count within it), then
    the outcome (``result.versionId`` and the metric, or ``error``)."""
    async with db.unit_of_work() as session:
        task = await session.get(TaskRun, task_id)
        if task is None:
            task = TaskRun(id=task_id, kind=TASK_KIND, params={"requested_by": "schedule"})
            session.add(task)
        elif task.status == "done":
            return dict(task.result)
        task.status, task.started_at, task.finished_at, task.error = "running", utcnow(), None, None
    state: dict[str, Any] = {}
    written: dict[str, Any] = {}

    def tell(step: str, done: int, total: int) -> None:
        state.update(step=step, done=done, total=total)

    async def writer() -> None:
        while True:
            await asyncio.sleep(flush_seconds)
            if state and state != written:
                snapshot = dict(state)
                await _set_task(
                    db,
                    task_id,
                    done=snapshot["done"],
                    total=snapshot["total"],
                    result={"step": snapshot["step"]},
                )
                written.clear()
                written.update(snapshot)

    flusher = asyncio.create_task(writer())
    try:
        row = await train(db, settings, task_id=task_id, progress=tell)
    except TrainingError as exc:
        await _stop(flusher)
        failed = {"step": "failed", "code": exc.errors[0].code}
        await _set_task(
            db, task_id, status="failed", error=str(exc), result=failed, finished_at=utcnow()
        )
        return {**failed, "error": str(exc)}  # an expected outcome, not a job to retry
    except BaseException as exc:
        await _stop(flusher)
        await _set_task(
            db,
            task_id,
            status="failed",
            error=f"unexpected error: {exc!r}"[:2000],
            result={"step": "failed"},
            finished_at=utcnow(),
        )
        raise
    await _stop(flusher)
    result = {
        "step": "done",
        "versionId": row.id,
        "status": row.status,
        METRIC: (row.metrics or {}).get(METRIC),
        "interactions": row.interactions,
        "trainedSeconds": row.trained_seconds,
    }
    await _set_task(
        db, task_id, status="done", result=result, done=1, total=1, finished_at=utcnow()
    )
    return result
