"""Ingesting behaviour events and merging anonymous visitors into customers.

``track_events`` takes up to ``MAX_BATCH`` items. Unlike user upserts, a batch is NOT all-or-nothing:
each valid item is stored, each invalid one is rejected with its index, because events are a
stream a client cannot easily resend in part. Only a batch that breaks a rule of the whole call
(too many items, a shopper token naming another user) is refused outright, with nothing stored.

A repeated ``client_event_id`` (from an earlier call, earlier in the same batch, or a concurrent
call) is counted as a duplicate and stored once: the insert is ``ON CONFLICT DO NOTHING``.

Per call the work is a fixed number of statements, whatever the batch size: customers, products
and identity links looked up as sets, one consent query, one insert with many parameter sets, one
profile upsert and one audit entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson
import pycountry
from sqlalchemy import (
    JSON,
    TIMESTAMP,
    BigInteger,
    Integer,
    Numeric,
    Text,
    and_,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.audit.service import Actor
from domain.catalog.models import Product
from domain.columns import utcnow
from domain.consents.policy import analytics_withheld
from domain.errors import DomainError, FieldError
from domain.events.models import BUILTIN_TYPES, CUSTOM_TYPE, Event, IdentityLink
from domain.orders.models import Order
from domain.profiles import live
from domain.settings import Settings
from domain.sql import among, insert_for, table
from domain.users.models import Customer

MAX_BATCH = 500
MAX_ID = 2**63 - 1
MAX_QUERY = 256
# The id of the recommendation answer an event follows (uuid4 hex, as recommendations return it).
RECOMMENDATION_ID = re.compile(r"[0-9a-f]{32}")
BUILTIN = frozenset(BUILTIN_TYPES)
NEEDS_PRODUCT = frozenset({"view", "add_to_cart", "remove_from_cart", "favorite", "review"})
MESSAGE_TYPES = frozenset({"message_open", "message_click"})

FIELDS = {
    "client_event_id": "clientEventId",
    "type": "type",
    "user_id": "userId",
    "user_external_id": "userExternalId",
    "anonymous_id": "anonymousId",
    "product_external_id": "productExternalId",
    "properties": "properties",
    "value": "value",
    "currency": "currency",
    "channel": "channel",
    "campaign_id": "campaignId",
    "message_id": "messageId",
    "rating": "rating",
    "query": "query",
    "recommendation_id": "recommendationId",
    "occurred_at": "occurredAt",
    # For internal callers (orders yield purchase events); not in the GraphQL input.
    "order_id": "orderId",
}
FIELD_NAMES = frozenset(FIELDS)
PK_FIELDS = ("user_id", "campaign_id", "message_id", "order_id")
CENT = Decimal("0.01")
MAX_VALUE = Decimal("10000000000")


@dataclass(slots=True)
class TrackResult:
    """``accepted`` events were stored now; ``duplicates`` were valid but already stored (or
    repeated in the batch); ``rejected`` items are invalid (see ``errors``); ``unlinked`` counts the
    accepted events stored without a link to their shopper (no analytics consent).
    ``accepted + duplicates + rejected`` is the number of items."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unlinked: int = 0
    errors: list[FieldError] = field(default_factory=list)


@dataclass(slots=True)
class IdentifyResult:
    customer_id: int
    anonymous_id: str
    created: bool
    events_moved: int = 0
    events_unlinked: int = 0
    orders_moved: int = 0


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


class _Bad(Exception):
    def __init__(self, code: str, message: str, name: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


def _short_text(value: Any, name: str, max_length: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length or value.isspace():
        raise _Bad("INVALID", f"{FIELDS[name]} must be 1-{max_length} characters", name)
    return value


def _pk(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise _Bad("INVALID_ID", f"{FIELDS[name]} must be a positive integer id", name)
    return value


def _when(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad("INVALID_TIME", "occurredAt must be ISO 8601", "occurred_at") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _Bad("INVALID_TIME", "occurredAt needs a time zone offset", "occurred_at")
    return value.astimezone(UTC)


def _money(value: Any) -> Decimal:
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _Bad("INVALID_VALUE", f"not a decimal amount: {value!r}", "value") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_VALUE:
        raise _Bad("INVALID_VALUE", "value must be between 0 and 9,999,999,999.99", "value")
    quantized = amount.quantize(CENT)
    if quantized != amount:
        raise _Bad("INVALID_VALUE", "value has more than two decimal places", "value")
    return quantized


def _properties(value: Any, max_bytes: int) -> dict[str, Any]:
    if isinstance(value, str):  # importers read JSON from a text column
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _Bad(
                "INVALID_PROPERTIES", "properties must be a JSON object", "properties"
            ) from None
    if not isinstance(value, dict):
        raise _Bad("INVALID_PROPERTIES", "properties must be a JSON object", "properties")
    if not value:
        return {}
    try:
        size = len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        raise _Bad("INVALID_PROPERTIES", "properties must be plain JSON", "properties") from None
    if size > max_bytes:
        raise _Bad("TOO_LARGE", f"properties exceed {max_bytes} bytes as JSON", "properties")
    return value


@dataclass(slots=True)
class _Item:
    """One item that passed the checks that need no database."""

    index: int
    row: dict[str, Any]
    user_id: int | None
    user_external_id: str | None
    product_external_id: str | None
    rating: int | None


@dataclass(frozen=True, slots=True)
class _Window:
    """What every item of one call is checked against (computed once per call)."""

    now: datetime
    earliest: datetime
    latest: datetime
    max_age_days: int
    max_property_bytes: int
    source: str

    @classmethod
    def of(cls, settings: Settings, now: datetime, source: str) -> _Window:
        return cls(
            now=now,
            earliest=now - timedelta(days=settings.event_max_age_days),
            latest=now + timedelta(seconds=settings.event_max_future_seconds),
            max_age_days=settings.event_max_age_days,
            max_property_bytes=settings.event_properties_max_bytes,
            source=source,
        )


def _clean(
    index: int, item: Mapping[str, Any], window: _Window
) -> tuple[_Item | None, list[FieldError]]:
    """Check one item on its own; returns it (or None) and its errors."""
    errors: list[FieldError] = []

    def bad(code: str, message: str, name: str) -> None:
        errors.append(FieldError(code, message, ("events", str(index), FIELDS[name]), index))

    if not FIELD_NAMES.issuperset(item):
        for name in sorted(item.keys() - FIELD_NAMES):
            errors.append(
                FieldError(
                    "UNKNOWN_FIELD", f"unknown field {name}", ("events", str(index), name), index
                )
            )
    get = item.get
    row: dict[str, Any] = {
        "client_event_id": None,
        "customer_id": None,
        "anonymous_id": None,
        "type": None,
        "product_id": None,
        "properties": {},
        "value": None,
        "currency": None,
        "channel": None,
        "campaign_id": None,
        "message_id": None,
        "order_id": None,
        "source_client_id": window.source,
        "occurred_at": window.now,
        "received_at": window.now,
    }
    user_id = user_ext = product_ext = rating = query = None
    try:
        row["client_event_id"] = _short_text(get("client_event_id"), "client_event_id", 128)
    except _Bad as exc:
        bad("REQUIRED" if get("client_event_id") is None else exc.code, str(exc), exc.name)
    kind = get("type")
    if kind is None:
        bad("REQUIRED", "type is required", "type")
    elif not isinstance(kind, str) or (kind not in BUILTIN and not CUSTOM_TYPE.match(kind)):
        bad(
            "INVALID_TYPE",
            f"unknown event type {str(kind)[:64]!r}: a built-in type or custom:<name>",
            "type",
        )
        kind = None
    row["type"] = kind
    for name in PK_FIELDS:
        given = get(name)
        if given is None:
            continue
        try:
            pk = _pk(given, name)
        except _Bad as exc:
            bad(exc.code, str(exc), exc.name)
            continue
        if name == "user_id":
            user_id = pk
        else:
            row[name] = pk
    try:
        given = get("user_external_id")
        if given is not None:
            user_ext = _short_text(given, "user_external_id", 128)
        given = get("anonymous_id")
        if given is not None:
            row["anonymous_id"] = _short_text(given, "anonymous_id", 128)
    except _Bad as exc:
        bad(exc.code, str(exc), exc.name)
    if user_id is not None and user_ext is not None:
        bad("INVALID", "give userId or userExternalId, not both", "user_external_id")
    try:
        given = get("product_external_id")
        if given is not None:
            product_ext = _short_text(given, "product_external_id", 128)
    except _Bad as exc:
        bad(exc.code, str(exc), exc.name)
    raw_props = get("properties")
    if raw_props is not None:
        try:
            row["properties"] = _properties(raw_props, window.max_property_bytes)
        except _Bad as exc:
            bad(exc.code, str(exc), exc.name)
    value, currency = get("value"), get("currency")
    if value is not None:
        try:
            row["value"] = _money(value)
        except _Bad as exc:
            bad(exc.code, str(exc), exc.name)
    if currency is not None:
        code = currency.upper() if isinstance(currency, str) else None
        if code is None or code not in _currencies():
            bad("INVALID_CURRENCY", f"unknown ISO 4217 currency {str(currency)[:8]!r}", "currency")
        else:
            row["currency"] = code
    if (value is None) != (currency is None):
        missing = "currency" if currency is None else "value"
        bad("REQUIRED", "value and currency go together", missing)
    channel = get("channel")
    if channel is not None:
        try:
            row["channel"] = _short_text(channel, "channel", 32).lower()
        except _Bad as exc:
            bad(exc.code, str(exc), exc.name)
    raw_rating = get("rating")
    if raw_rating is not None:
        if isinstance(raw_rating, str) and raw_rating.isdigit():
            raw_rating = int(raw_rating)
        if (
            isinstance(raw_rating, bool)
            or not isinstance(raw_rating, int)
            or not 1 <= raw_rating <= 5
        ):
            bad("INVALID_RATING", "rating must be a whole number from 1 to 5", "rating")
        elif kind is not None and kind != "review":
            bad("INVALID", "rating is only for review events", "rating")
        else:
            rating = raw_rating
    raw_query = get("query")
    if raw_query is not None:
        if kind is not None and kind != "search":
            bad("INVALID", "query is only for search events", "query")
        else:
            try:
                query = _short_text(raw_query, "query", MAX_QUERY).strip()
            except _Bad as exc:
                bad(exc.code, str(exc), exc.name)
    recommendation = get("recommendation_id")
    if recommendation is not None and not (
        isinstance(recommendation, str) and RECOMMENDATION_ID.fullmatch(recommendation)
    ):
        bad(
            "INVALID_VALUE",
            "recommendationId must be the 32 lowercase hex characters a recommendation returned",
            "recommendation_id",
        )
        recommendation = None
    occurred = get("occurred_at")
    if occurred is not None:
        try:
            at = _when(occurred)
        except _Bad as exc:
            bad(exc.code, str(exc), exc.name)
        else:
            if at > window.latest:
                bad("TOO_NEW", "occurredAt is too far in the future", "occurred_at")
            elif at < window.earliest:
                bad(
                    "TOO_OLD", f"occurredAt is older than {window.max_age_days} days", "occurred_at"
                )
            row["occurred_at"] = at
    # What each type needs.
    if kind == "purchase" and (value is None or currency is None):
        if value is None and currency is None:
            bad("REQUIRED", "a purchase needs a value and a currency", "value")
    elif kind in NEEDS_PRODUCT and product_ext is None and get("product_external_id") is None:
        bad("REQUIRED", f"a {kind} event needs productExternalId", "product_external_id")
    elif kind == "search" and query is None and raw_query is None:
        bad("REQUIRED", "a search event needs a query", "query")
    elif kind in MESSAGE_TYPES and row["campaign_id"] is None and row["message_id"] is None:
        if get("campaign_id") is None and get("message_id") is None:
            bad("REQUIRED", f"a {kind} event needs campaignId or messageId", "campaign_id")
    if kind == "review" and rating is None and raw_rating is None:
        bad("REQUIRED", "a review needs a rating from 1 to 5", "rating")
    if errors:
        return None, errors
    if rating is not None or query is not None or recommendation is not None:
        props = dict(row["properties"])
        if rating is not None:
            props["rating"] = rating
        if query is not None:
            props["query"] = query
        if recommendation is not None:
            props["recommendation_id"] = recommendation
        row["properties"] = props
    return _Item(index, row, user_id, user_ext, product_ext, rating), errors


async def _ids_by(session: AsyncSession, column: Any, values: set[Any]) -> dict[Any, int]:
    """``{value: id}`` for the rows whose ``column`` is in ``values`` (ids only, no ORM rows)."""
    return (await _look_up(session, {"_": (column, column.table.c.id, values)}))["_"]


_LOOK_UPS: dict[tuple[Any, ...], Any] = {}


def _look_up_statement(session: AsyncSession, branches: tuple[tuple[str, Any, Any], ...]) -> Any:
    """The UNION ALL of ``_look_up`` for these (name, key column, id column) branches, built once
    per dialect and set of branches (SQLAlchemy then finds its compiled form without rebuilding
    and hashing the statement each call). Branch ``name`` takes its keys from parameter
    ``k_<name>``: on PostgreSQL one JSON array (``json_array_elements_text``: one parameter and
    one prepared statement whatever the number of keys, and no per-element encoding in Python),
    elsewhere an expanding ``IN`` list."""
    dialect = session.get_bind().dialect.name
    cache_key = (dialect, branches)
    stmt = _LOOK_UPS.get(cache_key)
    if stmt is None:
        selects = []
        for name, key, value in branches:
            if dialect == "postgresql":
                element = func.json_array_elements_text(
                    cast(bindparam(f"k_{name}", type_=Text()), JSON())
                )
                keys: Any = select(
                    cast(element, key.type) if isinstance(key.type, Integer) else element
                ).scalar_subquery()
            else:
                keys = bindparam(f"k_{name}", expanding=True)
            selects.append(
                select(
                    literal(name, Text).label("name"),
                    cast(key, Text).label("key"),
                    cast(value, BigInteger).label("id"),
                ).where(key.in_(keys))
            )
        stmt = selects[0] if len(selects) == 1 else union_all(*selects)
        _LOOK_UPS[cache_key] = stmt
    return stmt


async def _look_up(
    session: AsyncSession, wanted: dict[str, tuple[Any, Any, set[Any]]]
) -> dict[str, dict[Any, Any]]:
    """Several ``{key: id}`` look-ups in one round trip: ``wanted`` maps a name to (key column,
    id column, keys); each becomes a branch of one UNION ALL (keys come back as text)."""
    found: dict[str, dict[Any, Any]] = {name: {} for name in wanted}
    branches = tuple((name, key, value) for name, (key, value, keys) in wanted.items() if keys)
    if not branches:
        return found
    pg = session.get_bind().dialect.name == "postgresql"
    params = {
        f"k_{name}": orjson.dumps(list(keys)).decode() if pg else list(keys)
        for name, (_, _, keys) in wanted.items()
        if keys
    }
    stmt = _look_up_statement(session, branches)
    for name, key, value in (await session.execute(stmt, params)).all():  # one fetch
        found[name][key] = value
    for name, (key_column, _, _) in wanted.items():
        if isinstance(key_column.type, Integer):  # ids came back as text
            found[name] = {int(k): v for k, v in found[name].items()}
    return found


async def links_for(session: AsyncSession, anonymous_ids: set[str]) -> dict[str, int]:
    """``{anonymous id: customer id}`` for the anonymous ids already merged into a customer."""
    if not anonymous_ids:
        return {}
    t = table(IdentityLink)
    rows = await session.execute(
        select(t.c.anonymous_id, t.c.customer_id).where(
            among(session, t.c.anonymous_id, sorted(anonymous_ids))
        )
    )
    return {a: c for a, c in rows}


_INSERTS: dict[str, Any] = {}


# PostgreSQL: the rows arrive as ONE JSON document (``json_to_recordset``), typed by this record
# definition, instead of one array per column: asyncpg encodes each array element in Python (about
# 7,000 elements a batch), orjson writes the whole document in one C call. Strings are declared
# ``text`` so that a value too long for its column fails the INSERT (as a bound parameter does)
# instead of being cut by a cast.
PG_RECORD: dict[str, Any] = {
    "client_event_id": Text(),
    "customer_id": BigInteger(),
    "anonymous_id": Text(),
    "type": Text(),
    "product_id": BigInteger(),
    "properties": JSONB(),
    "value": Numeric(),
    "currency": Text(),
    "channel": Text(),
    "campaign_id": BigInteger(),
    "message_id": BigInteger(),
    "order_id": BigInteger(),
    "occurred_at": TIMESTAMP(timezone=True),
}


def _insert(session: AsyncSession) -> Any:
    """``INSERT ... ON CONFLICT (client_event_id) DO NOTHING RETURNING client_event_id``, built
    once per dialect so SQLAlchemy compiles it once. On PostgreSQL the rows arrive as one JSON
    document (``INSERT ... SELECT FROM json_to_recordset``) plus the columns every row shares as
    single parameters, elsewhere as many parameter sets."""
    dialect = session.get_bind().dialect.name
    stmt = _INSERTS.get(dialect)
    if stmt is None:
        t = table(Event)
        stmt = insert_for(session)(t)
        if dialect == "postgresql":
            doc = cast(bindparam("j_rows", type_=Text()), JSON())
            record = (
                func.json_to_recordset(doc)
                .table_valued(*(column(name, type_) for name, type_ in PG_RECORD.items()))
                .render_derived(name="r", with_types=True)
            )
            # The same for every row of a call: sent once as plain parameters.
            shared = {
                "source_client_id": bindparam("c_source_client_id", type_=Text()),
                "received_at": bindparam("c_received_at", type_=TIMESTAMP(timezone=True)),
            }
            stmt = stmt.from_select((*PG_RECORD, *shared), select(*record.c, *shared.values()))
        stmt = stmt.on_conflict_do_nothing(index_elements=[t.c.client_event_id]).returning(
            t.c.client_event_id
        )
        _INSERTS[dialect] = stmt
    return stmt


def _json_value(value: Any) -> str:
    """orjson's ``default`` for the rows document: amounts (``Decimal``) as exact strings."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} in the rows document")


async def _store(session: AsyncSession, rows: list[dict[str, Any]], window: _Window) -> list[str]:
    """Insert the rows, skipping known client event ids; returns the client event ids stored.
    (The rest of a stored row is what was sent: the caller has it, nothing else comes back.)"""
    params: Any = rows
    if session.get_bind().dialect.name == "postgresql":
        # The shared columns are in the rows too; json_to_recordset ignores keys it was not given.
        params = {
            "j_rows": orjson.dumps(rows, default=_json_value).decode(),
            "c_source_client_id": window.source,
            "c_received_at": window.now,
        }
    return list((await session.execute(_insert(session), params)).scalars().all())


def _unlink(row: dict[str, Any]) -> None:
    """Keep what counts (type, product, value, channel, campaign) and drop what ties the event to
    a person: the customer, the anonymous id and the free-form properties (a review's rating,
    which says nothing about who gave it, stays)."""
    row["customer_id"] = None
    row["anonymous_id"] = None
    rating = row["properties"].get("rating") if row["type"] == "review" else None
    row["properties"] = {} if rating is None else {"rating": rating}


async def track_events(
    session: AsyncSession,
    actor: Actor,
    items: Sequence[Mapping[str, Any]],
    settings: Settings,
    *,
    touch: live.Touch | None = None,
) -> TrackResult:
    """Validate and store up to ``MAX_BATCH`` events; see the module docstring for the rules.

    The profile counters of the stored events are upserted in ``session``, or, with ``touch``
    (the API's ``live.TouchBuffer.add``), handed to it once ``session`` commits (write-behind)."""
    if len(items) > MAX_BATCH:
        raise DomainError.one("TOO_MANY", f"at most {MAX_BATCH} events per call", "events")
    result = TrackResult()
    if not items:
        return result
    now = utcnow()
    source = actor.client_id[:64]
    shopper = actor.customer_id
    cleaned: list[_Item] = []
    window = _Window.of(settings, now, source)
    for index, raw in enumerate(items):
        one, errors = _clean(index, raw, window)
        if one is None:
            result.errors.extend(errors)
        else:
            cleaned.append(one)

    user_ids = {i.user_id for i in cleaned if i.user_id is not None}
    user_exts = {i.user_external_id for i in cleaned if i.user_external_id is not None}
    product_exts = {i.product_external_id for i in cleaned if i.product_external_id is not None}
    customers = table(Customer)
    if shopper is not None:
        # A shopper token sends events for its own customer only; naming anyone else refuses the
        # whole call (nothing is stored), and unknown ids are refused the same way, so the
        # answer says nothing about who exists.
        # The token outlives an erasure: its customer must still exist (else nothing is stored).
        own_ext = await session.scalar(
            select(customers.c.external_id).where(customers.c.id == shopper)
        )
        if own_ext is None or (user_ids - {shopper}) or (user_exts - {own_ext}):
            raise DomainError.one(
                "FORBIDDEN_USER",
                "a shopper token may only send events for its own user",
                "events",
            )
        by_id: set[int] = set()
        by_ext: dict[Any, Any] = {}
        links: dict[Any, Any] = {}
        products = await _ids_by(session, table(Product).c.external_id, product_exts)
    else:
        anonymous = {
            i.row["anonymous_id"]
            for i in cleaned
            if i.user_id is None and i.user_external_id is None and i.row["anonymous_id"]
        }
        links_t = table(IdentityLink)
        found = await _look_up(
            session,
            {
                "user_id": (customers.c.id, customers.c.id, user_ids),
                "user_ext": (customers.c.external_id, customers.c.id, user_exts),
                "link": (links_t.c.anonymous_id, links_t.c.customer_id, anonymous),
                "product": (table(Product).c.external_id, table(Product).c.id, product_exts),
            },
        )
        by_id = set(found["user_id"])
        by_ext, links, products = found["user_ext"], found["link"], found["product"]

    ready: list[dict[str, Any]] = []
    for item in cleaned:
        row = item.row
        path = ("events", str(item.index))
        problem: FieldError | None = None
        if shopper is not None:
            row["customer_id"] = shopper
        elif item.user_id is not None:
            if item.user_id in by_id:
                row["customer_id"] = item.user_id
            else:
                problem = FieldError("UNKNOWN_USER", "no such user", (*path, "userId"), item.index)
        elif item.user_external_id is not None:
            row["customer_id"] = by_ext.get(item.user_external_id)
            if row["customer_id"] is None:
                problem = FieldError(
                    "UNKNOWN_USER", "no such user", (*path, "userExternalId"), item.index
                )
        elif row["anonymous_id"] is not None:
            row["customer_id"] = links.get(row["anonymous_id"])
        else:
            problem = FieldError(
                "REQUIRED",
                "give userId, userExternalId or anonymousId",
                (*path, "userId"),
                item.index,
            )
        if problem is None and item.product_external_id is not None:
            row["product_id"] = products.get(item.product_external_id)
            if row["product_id"] is None:
                problem = FieldError(
                    "UNKNOWN_PRODUCT", "no such product", (*path, "productExternalId"), item.index
                )
        if problem is not None:
            result.errors.append(problem)
        else:
            ready.append(row)

    result.rejected = len({e.index for e in result.errors})
    withheld = await analytics_withheld(
        session, {r["customer_id"] for r in ready if r["customer_id"] is not None}, settings
    )
    unique: dict[str, dict[str, Any]] = {}
    unlinked: set[str] = set()
    for row in ready:
        key = row["client_event_id"]
        if key in unique:
            result.duplicates += 1
            continue
        if withheld and row["customer_id"] in withheld:
            _unlink(row)
            unlinked.add(key)
        unique[key] = row

    stored: list[Any] = []
    if unique:
        # Sorted: two concurrent calls with the same ids take the unique-index locks in one order.
        rows = [unique[k] for k in sorted(unique)]
        stored = await _store(session, rows, window)
        result.accepted = len(stored)
        result.duplicates += len(rows) - len(stored)
        if unlinked:
            result.unlinked = sum(1 for key in stored if key in unlinked)
    await audit.record(
        session,
        actor,
        "events.track",
        "Event",
        details={
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "unlinked": result.unlinked,
        },
    )
    # Last: the profile rows stay locked until commit, and concurrent batches for the same
    # shoppers wait on them, so they are taken as late as possible (or written behind: touch).
    # Each stored row is the one sent: its customer (None once unlinked) and time come from it.
    stored_rows = (unique[key] for key in stored)
    await live.apply(
        session, live.tally((r["customer_id"], r["occurred_at"]) for r in stored_rows), touch
    )
    return result


async def identify(
    session: AsyncSession,
    actor: Actor,
    anonymous_id: str,
    customer: int,
    *,
    settings: Settings,
) -> IdentifyResult:
    """Merge the anonymous visitor ``anonymous_id`` into the customer with id ``customer``.

    Past events of that anonymous id with no customer, and its orders with no customer, move to
    the customer (if the customer withholds analytics consent, the events are unlinked instead).
    An anonymous id already merged into another customer is refused: two known customers are never
    merged. Identifying again into the same customer is harmless (it moves what arrived since).
    """
    try:
        anonymous_id = _short_text(anonymous_id, "anonymous_id", 128)
    except _Bad as exc:
        raise DomainError.one("INVALID", str(exc), "input", "anonymousId") from None
    if actor.customer_id is not None and actor.customer_id != customer:
        raise DomainError.one(
            "FORBIDDEN_USER",
            "a shopper token may only identify into its own user",
            "input",
            "userId",
        )
    customers = table(Customer)
    exists = await session.scalar(select(customers.c.id).where(customers.c.id == customer))
    if exists is None:
        raise DomainError.one("NOT_FOUND", "no such user", "input", "userId")
    links = table(IdentityLink)
    now = utcnow()
    created = await session.scalar(
        insert_for(session)(links)
        .values(
            anonymous_id=anonymous_id,
            customer_id=customer,
            source_client_id=actor.client_id[:64],
            events_moved=0,
            linked_at=now,
        )
        .on_conflict_do_nothing(index_elements=[links.c.anonymous_id])
        .returning(links.c.customer_id)
    )
    if created is None:
        owner = await session.scalar(
            select(links.c.customer_id).where(links.c.anonymous_id == anonymous_id)
        )
        if owner != customer:
            raise DomainError.one(
                "ALREADY_LINKED",
                "this anonymous id belongs to another user; users are never merged",
                "input",
                "anonymousId",
            )
    result = IdentifyResult(
        customer_id=customer, anonymous_id=anonymous_id, created=created is not None
    )
    events = table(Event)
    orphan = and_(events.c.anonymous_id == anonymous_id, events.c.customer_id.is_(None))
    if await analytics_withheld(session, {customer}, settings):
        # Behaviour is stored unlinked; purchase events of guest orders are contractual data and
        # follow their order to the customer below, whatever the consent (docs/orders.md).
        moved = await session.execute(
            update(events)
            .where(orphan, events.c.order_id.is_(None))
            .values(anonymous_id=None, properties={})
        )
        result.events_unlinked = moved.rowcount or 0  # type: ignore[attr-defined]
    span = (
        await session.execute(
            select(
                func.min(events.c.occurred_at),
                func.max(events.c.occurred_at),
                func.count(),
            ).where(orphan)
        )
    ).one()
    if span[2]:
        moved = await session.execute(update(events).where(orphan).values(customer_id=customer))
        result.events_moved = moved.rowcount or 0  # type: ignore[attr-defined]
        await live.record_seen(
            session, {customer: live.Seen(span[0], span[1], result.events_moved)}
        )
        await session.execute(
            update(links)
            .where(links.c.anonymous_id == anonymous_id)
            .values(events_moved=links.c.events_moved + result.events_moved)
        )
    orders = table(Order)
    moved_orders = await session.execute(
        update(orders)
        .where(orders.c.anonymous_id == anonymous_id, orders.c.customer_id.is_(None))
        .values(customer_id=customer, updated_at=now)
    )
    result.orders_moved = moved_orders.rowcount or 0  # type: ignore[attr-defined]
    await audit.record(
        session,
        actor,
        "identity.link",
        "User",
        customer,
        fields=("anonymousId",),
        details={
            "created": result.created,
            "events_moved": result.events_moved,
            "events_unlinked": result.events_unlinked,
            "orders_moved": result.orders_moved,
        },
    )
    return result
