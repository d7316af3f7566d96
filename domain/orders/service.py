"""Rules for orders: validated, idempotent recording, refunds and cancellations, and the purchase
event each order yields.

A batch stores exactly its valid orders; every invalid one is reported with its index and writes
nothing. An order is addressed by the store's own id (``external_id``): sending it again unchanged
changes nothing, sending it with a new status or refund updates it. What was bought (customer,
currency, lines, money, placement time, coupon, channel, campaign) is fixed once recorded: a re-send
that differs there is refused (``ORDER_CONFLICT``); cancel the order and record a new one.

Every order has one ``purchase`` event (``client_event_id`` ``order:<external id>``) written in the
same unit of work, whose ``value`` is the order's net amount: ``total - refunded_total``, or 0 once
cancelled, so every figure built on purchase events sees net revenue. Orders are contractual data,
so the event stays linked to the customer whatever their analytics consent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain import validation as v
from domain.audit import service as audit
from domain.audit.service import Actor
from domain.catalog.models import Product
from domain.columns import utcnow
from domain.errors import DomainError, FieldError
from domain.events.models import Event
from domain.events.service import links_for
from domain.orders import repository
from domain.orders.models import ORDER_STATUSES, Order, OrderLine
from domain.profiles import live
from domain.settings import Settings
from domain.sql import insert_for, table
from domain.users.models import Customer

MAX_BATCH = 100
MAX_LINES = 500
MAX_QUANTITY = 1_000_000
MAX_REASON = 500
# The largest amount anywhere on an order: a single amount's limit (domain.validation.money), so
# line totals and sums fit their NUMERIC(14, 2) columns on every backend.
MAX_AMOUNT = Decimal("9999999999.99")
FUTURE_SKEW = timedelta(minutes=10)
ZERO = Decimal("0.00")
REFUND_STATUSES = ("partially_refunded", "refunded")
# What was bought: fixed once an order is recorded.
FIXED = (
    "customer_id",
    "anonymous_id",
    "currency",
    "subtotal",
    "discount_total",
    "shipping_total",
    "tax_total",
    "total",
    "coupon_code",
    "channel",
    "campaign_id",
    "placed_at",
)
CAMEL = {
    "external_id": "externalId",
    "user_id": "userId",
    "user_external_id": "userExternalId",
    "anonymous_id": "anonymousId",
    "discount_total": "discountTotal",
    "shipping_total": "shippingTotal",
    "tax_total": "taxTotal",
    "refunded_total": "refundedTotal",
    "coupon_code": "couponCode",
    "campaign_id": "campaignId",
    "placed_at": "placedAt",
    "customer_id": "userId",
    "product_external_id": "productExternalId",
    "unit_price": "unitPrice",
    "line_no": "lineNo",
}
# The keys an order item may have (in the order imports list them), its lines' keys, and "lines".
ORDER_FIELDS = (
    "external_id",
    "user_id",
    "user_external_id",
    "anonymous_id",
    "status",
    "currency",
    "subtotal",
    "discount_total",
    "shipping_total",
    "tax_total",
    "total",
    "refunded_total",
    "coupon_code",
    "channel",
    "campaign_id",
    "placed_at",
)
LINE_FIELDS = ("product_external_id", "title", "quantity", "unit_price")
ITEM_KEYS = frozenset({*ORDER_FIELDS, "lines"})
LINE_KEYS = frozenset(LINE_FIELDS)


def _camel(name: str) -> str:
    return CAMEL.get(name, name)


def event_id(external_id: str) -> str:
    """The purchase event's client event id for an order."""
    return f"order:{external_id}"


def net_value(order: Order) -> Decimal:
    """What the order is worth now: 0 once cancelled, else total minus refunds."""
    if order.status == "cancelled":
        return ZERO
    return Decimal(order.total) - Decimal(order.refunded_total)


@dataclass
class RecordResult:
    """Per input index: the stored order (None if rejected) and its outcome."""

    orders: list[Order | None]
    outcomes: list[str | None]
    errors: list[FieldError] = field(default_factory=list)

    def count(self, outcome: str | None) -> int:
        return sum(1 for o in self.outcomes if o == outcome)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def updated(self) -> int:
        return self.count("updated")

    @property
    def unchanged(self) -> int:
        return self.count("unchanged")

    @property
    def rejected(self) -> int:
        return self.count(None)


# ---- checks ---------------------------------------------------------------------------------


def _money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise v.Invalid("INVALID_MONEY", f"not a decimal amount: {value!r}")
    try:
        return v.money(value)
    except v.Invalid as exc:
        raise v.Invalid("INVALID_MONEY", str(exc)) from exc


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise v.Invalid("INVALID_CURRENCY", "currency must be an ISO 4217 code such as EUR")
    return v.currency(value)


def _text(value: Any, name: str, max_length: int) -> str | None:
    if not isinstance(value, str):
        raise v.Invalid("INVALID", f"{name} must be a string")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise v.Invalid("INVALID", f"{name} contains a NUL character")
    return v.text(value, field_name=name, max_length=max_length) or None


def _quantity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUANTITY:
        raise v.Invalid(
            "INVALID_QUANTITY", f"quantity must be a whole number from 1 to {MAX_QUANTITY}"
        )
    return value


def _positive_id(value: Any, name: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise v.Invalid("INVALID", f"{name} must be a positive whole number")
    return value


def _placed_at(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise v.Invalid(
                "INVALID_TIME", f"placedAt is not an ISO 8601 time: {value!r}"
            ) from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise v.Invalid("INVALID_TIME", "placedAt must be an ISO 8601 time with an offset")
    if value.year < 1970 or value.year > 9998:  # before converting: year 1 at +01:00 overflows
        raise v.Invalid("INVALID_TIME", "placedAt must be after 1970")
    if value > utcnow() + FUTURE_SKEW:
        raise v.Invalid("INVALID_TIME", "placedAt is in the future")
    return value


def _status(value: Any) -> str:
    if value not in ORDER_STATUSES:
        raise v.Invalid("INVALID_STATUS", f"status must be one of {', '.join(ORDER_STATUSES)}")
    return str(value)


@dataclass
class _Clean:
    index: int
    values: dict[str, Any]
    lines: list[dict[str, Any]]
    user_id: int | None = None
    user_external_id: str | None = None
    refunded_total: Decimal | None = None


def _clean_lines(
    raw: Any, errors: list[FieldError], index: int, prefix: tuple[str, ...]
) -> list[dict[str, Any]]:
    path = (*prefix, "lines")
    if not isinstance(raw, list | tuple) or not raw:
        errors.append(FieldError("REQUIRED", "an order needs at least one line", path, index))
        return []
    if len(raw) > MAX_LINES:
        errors.append(FieldError("TOO_MANY", f"at most {MAX_LINES} lines", path, index))
        return []
    lines: list[dict[str, Any]] = []
    for n, line in enumerate(raw):
        lpath = (*path, str(n))
        if not isinstance(line, Mapping):
            errors.append(FieldError("INVALID", "a line must be an object", lpath, index))
            continue
        for key in line:
            if key not in LINE_KEYS:
                errors.append(
                    FieldError("UNKNOWN_FIELD", f"unknown field {key}", (*lpath, key), index)
                )
        before = len(errors)
        ext = v.check(
            errors,
            index,
            (*lpath, "productExternalId"),
            v.external_id,
            line.get("product_external_id"),
        )
        title = None
        if line.get("title") is not None:
            title = v.check(errors, index, (*lpath, "title"), _text, line["title"], "title", 300)
        qty = v.check(errors, index, (*lpath, "quantity"), _quantity, line.get("quantity"))
        if line.get("unit_price") is None:
            errors.append(
                FieldError("REQUIRED", "unitPrice is required", (*lpath, "unitPrice"), index)
            )
            price = None
        else:
            price = v.check(errors, index, (*lpath, "unitPrice"), _money, line["unit_price"])
        if len(errors) == before and Decimal(qty) * Decimal(str(price)) > MAX_AMOUNT:
            errors.append(
                FieldError(
                    "INVALID_MONEY",
                    f"the line total exceeds {MAX_AMOUNT:,}",
                    (*lpath, "quantity"),
                    index,
                )
            )
        if len(errors) == before:
            lines.append(
                {
                    "line_no": n + 1,
                    "product_external_id": ext,
                    "title": title,
                    "quantity": qty,
                    "unit_price": price,
                    "total": (Decimal(qty) * Decimal(str(price))).quantize(Decimal("0.01")),
                }
            )
    return lines


def _clean(
    item: Mapping[str, Any], index: int, tolerance: Decimal
) -> tuple[_Clean, list[FieldError]]:
    errors: list[FieldError] = []
    prefix = ("orders", str(index))

    def path(name: str) -> tuple[str, ...]:
        return (*prefix, _camel(name))

    for key in item:
        if key not in ITEM_KEYS:
            errors.append(FieldError("UNKNOWN_FIELD", f"unknown field {key}", path(key), index))
    values: dict[str, Any] = {}
    clean = _Clean(index, values, [])
    values["external_id"] = v.check(
        errors, index, path("external_id"), v.external_id, item.get("external_id")
    )
    if item.get("user_id") is not None and item.get("user_external_id") is not None:
        errors.append(
            FieldError("INVALID", "give userId or userExternalId, not both", path("user_id"), index)
        )
    if item.get("user_id") is not None:
        clean.user_id = v.check(
            errors, index, path("user_id"), _positive_id, item["user_id"], "userId"
        )
    if item.get("user_external_id") is not None:
        clean.user_external_id = v.check(
            errors, index, path("user_external_id"), v.external_id, item["user_external_id"]
        )
    values["anonymous_id"] = None
    if item.get("anonymous_id") is not None:
        values["anonymous_id"] = v.check(
            errors, index, path("anonymous_id"), _text, item["anonymous_id"], "anonymousId", 128
        )
    values["status"] = v.check(
        errors, index, path("status"), _status, item.get("status") or "placed"
    )
    values["currency"] = v.check(errors, index, path("currency"), _currency, item.get("currency"))
    clean.lines = _clean_lines(item.get("lines"), errors, index, prefix)
    for name in (
        "subtotal",
        "discount_total",
        "shipping_total",
        "tax_total",
        "total",
        "refunded_total",
    ):
        raw = item.get(name)
        if raw is not None:
            values[name] = v.check(errors, index, path(name), _money, raw)
    for name, limit in (("coupon_code", 64), ("channel", 32)):
        values[name] = None
        if item.get(name) is not None:
            values[name] = v.check(
                errors, index, path(name), _text, item[name], _camel(name), limit
            )
    values["campaign_id"] = None
    if item.get("campaign_id") is not None:
        values["campaign_id"] = v.check(
            errors, index, path("campaign_id"), _positive_id, item["campaign_id"], "campaignId"
        )
    if item.get("placed_at") is None:
        errors.append(FieldError("REQUIRED", "placedAt is required", path("placed_at"), index))
    else:
        values["placed_at"] = v.check(
            errors, index, path("placed_at"), _placed_at, item["placed_at"]
        )
    if errors:
        return clean, errors

    # Totals: sums of two-decimal amounts are exact, so by default they must match to the cent.
    lines_sum = sum((line["total"] for line in clean.lines), ZERO)
    if lines_sum > MAX_AMOUNT:
        errors.append(
            FieldError(
                "INVALID_MONEY",
                f"the lines add up to more than {MAX_AMOUNT:,}",
                path("subtotal"),
                index,
            )
        )
        return clean, errors
    subtotal = values.setdefault("subtotal", lines_sum)
    if abs(subtotal - lines_sum) > tolerance:
        errors.append(
            FieldError(
                "TOTALS_MISMATCH",
                f"subtotal {subtotal} is not the sum of the line totals ({lines_sum})",
                path("subtotal"),
                index,
            )
        )
    for name in ("discount_total", "shipping_total", "tax_total"):
        values.setdefault(name, ZERO)
    expected = subtotal - values["discount_total"] + values["shipping_total"] + values["tax_total"]
    if expected < 0:
        errors.append(
            FieldError(
                "TOTALS_MISMATCH",
                "the discount exceeds what is charged",
                path("discount_total"),
                index,
            )
        )
    if expected > MAX_AMOUNT:
        errors.append(
            FieldError("INVALID_MONEY", f"the total exceeds {MAX_AMOUNT:,}", path("total"), index)
        )
    total = values.setdefault("total", expected)
    if abs(total - expected) > tolerance:
        errors.append(
            FieldError(
                "TOTALS_MISMATCH",
                f"total {total} is not subtotal - discount + shipping + tax ({expected})",
                path("total"),
                index,
            )
        )
    clean.refunded_total = values.pop("refunded_total", None)
    if clean.refunded_total is not None and clean.refunded_total > total:
        errors.append(
            FieldError(
                "OVER_REFUND", "refundedTotal exceeds the total", path("refunded_total"), index
            )
        )
    if values["status"] == "partially_refunded" and clean.refunded_total is None:
        errors.append(
            FieldError(
                "REQUIRED",
                "a partially refunded order needs refundedTotal",
                path("refunded_total"),
                index,
            )
        )
    if (
        values["status"] == "refunded"
        and clean.refunded_total is not None
        and clean.refunded_total != total
    ):
        errors.append(
            FieldError(
                "INVALID",
                "a refunded order has refundedTotal equal to total",
                path("refunded_total"),
                index,
            )
        )
    return clean, errors


def _refund_state(
    status: str, given: Decimal | None, total: Decimal, current: Decimal
) -> tuple[str, Decimal]:
    """The effective (status, refunded_total) of a recorded order."""
    refunded = given if given is not None else (total if status == "refunded" else current)
    if status == "cancelled":
        return status, refunded
    if refunded > 0 and refunded >= total:
        return "refunded", refunded
    if refunded > 0:
        return "partially_refunded", refunded
    if status in REFUND_STATUSES:  # a zero-value order marked refunded
        return status, refunded
    return status, refunded


def _forbid_shopper(actor: Actor) -> None:
    if actor.is_shopper:
        raise DomainError.one(
            "FORBIDDEN",
            "shopper tokens cannot record or change orders: orders come from the store's back end",
            "input",
        )


# ---- recording ------------------------------------------------------------------------------


async def record_orders(
    session: AsyncSession,
    actor: Actor,
    items: Sequence[Mapping[str, Any]],
    settings: Settings,
    *,
    load: bool = True,
) -> RecordResult:
    """Create or update up to ``MAX_BATCH`` orders by external id; invalid ones are reported with
    their index and write nothing. With ``load=False`` the stored orders are not read back."""
    _forbid_shopper(actor)
    if len(items) > MAX_BATCH:
        raise DomainError.one("TOO_MANY", f"at most {MAX_BATCH} orders per call", "orders")
    tolerance = Decimal(str(settings.order_total_tolerance))
    errors: list[FieldError] = []
    valid: list[_Clean] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            errors.append(
                FieldError("INVALID", "an order must be an object", ("orders", str(index)), index)
            )
            continue
        clean, item_errors = _clean(item, index, tolerance)
        ext = clean.values.get("external_id")
        if ext is not None and ext in seen:
            item_errors.append(
                FieldError(
                    "DUPLICATE",
                    f"externalId {ext!r} also appears at index {seen[ext]}",
                    ("orders", str(index), "externalId"),
                    index,
                )
            )
        if ext is not None:
            seen.setdefault(ext, index)
        if item_errors:
            errors.extend(item_errors)
        else:
            valid.append(clean)

    await _resolve_users(session, valid, errors)
    valid = [c for c in valid if not any(e.index == c.index for e in errors)]
    product_ids = await _product_ids(
        session, {ln["product_external_id"] for c in valid for ln in c.lines}
    )
    now = utcnow()
    outcomes: dict[int, str] = {}
    # Insert first: a batch of new orders (the common case, and every bulk import) needs no
    # lookup, and a concurrent call that inserted the same order first is handled as a re-send.
    created_ids = await _create(session, actor, valid, product_ids, now)
    creates = [c for c in valid if c.values["external_id"] in created_ids]
    for clean in creates:
        outcomes[clean.index] = "created"
    rest = [c for c in valid if c.values["external_id"] not in created_ids]
    # Re-sends are decided on locked rows: a refund committing meanwhile is not overwritten.
    existing = await repository.by_external_ids_for_update(
        session, [c.values["external_id"] for c in rest]
    )
    existing_lines = await repository.lines_for(
        session, [o.id for o in existing.values() if o.id is not None]
    )
    changes: list[tuple[_Clean, Order, str, Decimal]] = []
    for clean in rest:
        values = clean.values
        current = existing.get(values["external_id"])
        if current is None:  # deleted between our insert and our read
            errors.append(
                FieldError(
                    "INVALID",
                    "the order changed concurrently; send it again",
                    ("orders", str(clean.index), "externalId"),
                    clean.index,
                )
            )
            continue
        problem = _conflict(clean, current, existing_lines.get(current.id or 0, []))
        if problem is not None:
            errors.append(problem)
            continue
        current_refunded = Decimal(current.refunded_total)
        if current.status == "cancelled":
            if values["status"] == "cancelled" and clean.refunded_total in (None, current_refunded):
                outcomes[clean.index] = "unchanged"
            else:
                errors.append(
                    FieldError(
                        "ORDER_CANCELLED",
                        "the order is cancelled and cannot change",
                        ("orders", str(clean.index), "status"),
                        clean.index,
                    )
                )
            continue
        status, refunded = _refund_state(
            values["status"], clean.refunded_total, Decimal(current.total), current_refunded
        )
        if refunded < current_refunded:
            errors.append(
                FieldError(
                    "REFUND_DECREASE",
                    f"refunds cannot be undone: {current_refunded} is already refunded",
                    ("orders", str(clean.index), "refundedTotal"),
                    clean.index,
                )
            )
            continue
        if current_refunded > 0 and status not in (*REFUND_STATUSES, "cancelled"):
            status = current.status  # a late fulfilment update does not hide a refund
        if status == current.status and refunded == current_refunded:
            outcomes[clean.index] = "unchanged"
            continue
        changes.append((clean, current, status, refunded))
        outcomes[clean.index] = "updated"

    audit_rows = [
        audit.entry(
            actor,
            "orders.record",
            "Order",
            created_ids[c.values["external_id"]],
            fields=["status", "lines", "totals"],
            details={"outcome": "created"},
            at=now,
        )
        for c in creates
        if c.values["external_id"] in created_ids
    ]
    for _item, current, status, refunded in changes:
        assert current.id is not None
        await _apply(session, current, status, refunded, now)
        audit_rows.append(
            audit.entry(
                actor,
                "orders.record",
                "Order",
                current.id,
                fields=["status", "refunded_total"],
                details={"outcome": "updated", "status": status},
                at=now,
            )
        )
    await audit.record_many(session, audit_rows)

    ids: dict[int, int] = {}
    for clean in valid:
        if clean.index in outcomes:
            ext = clean.values["external_id"]
            found = created_ids.get(ext) or (existing[ext].id if ext in existing else None)
            if found is not None:
                ids[clean.index] = found
    rows: dict[int, Order] = {}
    if load and ids:
        session.expunge_all()
        rows = await repository.by_ids(session, actor, list(ids.values()))
    errors.sort(key=lambda e: e.index if e.index is not None else -1)
    return RecordResult(
        orders=[rows.get(ids[i]) if i in ids else None for i in range(len(items))],
        outcomes=[outcomes.get(i) for i in range(len(items))],
        errors=errors,
    )


async def _resolve_users(
    session: AsyncSession, valid: list[_Clean], errors: list[FieldError]
) -> None:
    by_id = {c.user_id for c in valid if c.user_id is not None}
    by_ext = {c.user_external_id for c in valid if c.user_external_id is not None}
    ids: set[int] = set()
    exts: dict[str, int] = {}
    if by_id:
        ids = set(
            await session.scalars(select(col(Customer.id)).where(col(Customer.id).in_(by_id)))
        )
    if by_ext:
        result = await session.execute(
            select(col(Customer.external_id), col(Customer.id)).where(
                col(Customer.external_id).in_(by_ext)
            )
        )
        exts = {ext: pk for ext, pk in result.all() if pk is not None}
    # A guest order from an anonymous id already merged into a customer (identify) belongs to that
    # customer, as its earlier guest orders were moved there by the merge.
    links = await links_for(
        session,
        {
            str(c.values["anonymous_id"])
            for c in valid
            if c.user_id is None and c.user_external_id is None and c.values.get("anonymous_id")
        },
    )
    for clean in valid:
        clean.values["customer_id"] = None
        if clean.user_id is None and clean.user_external_id is None:
            clean.values["customer_id"] = links.get(clean.values.get("anonymous_id") or "")
        elif clean.user_id is not None:
            if clean.user_id in ids:
                clean.values["customer_id"] = clean.user_id
            else:
                errors.append(
                    FieldError(
                        "UNKNOWN_USER",
                        f"no user with id {clean.user_id}",
                        ("orders", str(clean.index), "userId"),
                        clean.index,
                    )
                )
        elif clean.user_external_id is not None:
            found = exts.get(clean.user_external_id)
            if found is not None:
                clean.values["customer_id"] = found
            else:
                errors.append(
                    FieldError(
                        "UNKNOWN_USER",
                        f"no user with externalId {clean.user_external_id!r}",
                        ("orders", str(clean.index), "userExternalId"),
                        clean.index,
                    )
                )


async def _product_ids(session: AsyncSession, externals: set[str]) -> dict[str, int]:
    if not externals:
        return {}
    result = await session.execute(
        select(col(Product.external_id), col(Product.id)).where(
            col(Product.external_id).in_(externals)
        )
    )
    return {ext: pk for ext, pk in result.all() if pk is not None}


def _conflict(clean: _Clean, current: Order, lines: list[OrderLine]) -> FieldError | None:
    """The first fixed field a re-send changes, as an error; None if none changes."""
    for name in FIXED:
        new, old = clean.values.get(name), getattr(current, name)
        if isinstance(old, Decimal) or isinstance(new, Decimal):
            same = new is not None and old is not None and Decimal(new) == Decimal(old)
        else:
            same = new == old
        if not same:
            return FieldError(
                "ORDER_CONFLICT",
                f"{_camel(name)} differs from the recorded order; only status and refunds can "
                "change (cancel the order and record a new one)",
                ("orders", str(clean.index), _camel(name)),
                clean.index,
            )
    old_lines = [
        (ln.product_external_id, ln.title, ln.quantity, Decimal(ln.unit_price)) for ln in lines
    ]
    new_lines = [
        (ln["product_external_id"], ln["title"], ln["quantity"], ln["unit_price"])
        for ln in clean.lines
    ]
    if old_lines != new_lines:
        return FieldError(
            "ORDER_CONFLICT",
            "lines differ from the recorded order; only status and refunds can change",
            ("orders", str(clean.index), "lines"),
            clean.index,
        )
    return None


async def _create(
    session: AsyncSession,
    actor: Actor,
    creates: list[_Clean],
    product_ids: dict[str, int],
    now: datetime,
) -> dict[str, int]:
    """Insert new orders, their lines and purchase events; returns ``{external id: id}`` of the
    orders this call inserted (a concurrent call may have inserted some first)."""
    if not creates:
        return {}
    orders = table(Order)
    rows = []
    states: dict[str, tuple[str, Decimal]] = {}
    # Sorted: two concurrent calls with the same orders take the unique-index locks in one order
    # (PostgreSQL would otherwise find a deadlock and fail one of them).
    creates = sorted(creates, key=lambda c: str(c.values["external_id"]))
    for clean in creates:
        values = clean.values
        status, refunded = states[values["external_id"]] = _refund_state(
            values["status"], clean.refunded_total, values["total"], ZERO
        )
        rows.append(
            {
                **{name: values[name] for name in FIXED},
                "external_id": values["external_id"],
                "status": status,
                "refunded_total": refunded,
                "source_client_id": actor.client_id[:64],
                "cancelled_at": now if status == "cancelled" else None,
                "created_at": now,
                "updated_at": now,
            }
        )
    stmt = (
        insert_for(session)(orders)
        .on_conflict_do_nothing(index_elements=["external_id"])
        .returning(orders.c.id, orders.c.external_id)
    )
    result = await session.execute(stmt, rows)
    created = {ext: pk for pk, ext in result.all()}
    lines: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for clean in creates:
        values = clean.values
        order_id = created.get(values["external_id"])
        if order_id is None:
            continue
        status, refunded = states[values["external_id"]]
        full = status == "refunded"
        known: list[int] = []
        for line in clean.lines:
            pid = product_ids.get(line["product_external_id"])
            if pid is not None and pid not in known:
                known.append(pid)
            lines.append(
                {
                    **line,
                    "order_id": order_id,
                    "product_id": pid,
                    "refunded_quantity": line["quantity"] if full else 0,
                }
            )
        net = ZERO if status == "cancelled" else values["total"] - refunded
        events.append(
            {
                "client_event_id": event_id(values["external_id"]),
                "customer_id": values["customer_id"],
                "anonymous_id": values["anonymous_id"],
                "type": "purchase",
                "product_id": None,
                "properties": {
                    "order_external_id": values["external_id"],
                    "product_ids": known,
                    "product_external_ids": list(
                        dict.fromkeys(ln["product_external_id"] for ln in clean.lines)
                    ),
                    "items": sum(ln["quantity"] for ln in clean.lines),
                },
                "value": net,
                "currency": values["currency"],
                "channel": values["channel"],
                "campaign_id": values["campaign_id"],
                "message_id": None,
                "order_id": order_id,
                "source_client_id": actor.client_id[:64],
                "occurred_at": values["placed_at"],
                "received_at": now,
            }
        )
    if lines:
        await session.execute(table(OrderLine).insert(), lines)
    events_table = table(Event)
    stored: list[Any] = []
    if events:
        insert = (
            insert_for(session)(events_table)
            .on_conflict_do_nothing(index_elements=["client_event_id"])
            .returning(events_table.c.customer_id, events_table.c.occurred_at)
        )
        stored = list((await session.execute(insert, events)).all())
    # The cheap profile parts (first and last seen, event count) follow, as for trackEvents.
    seen = live.tally((c, at) for c, at in stored)
    await live.record_seen(session, dict(sorted(seen.items())))
    if len(stored) < len(events):
        # A client sent its own event under the reserved id first: link that one to the order.
        await session.execute(
            update(events_table)
            .where(
                events_table.c.client_event_id == bindparam("cid"),
                events_table.c.order_id.is_(None),
            )
            .values(order_id=bindparam("oid"), value=bindparam("net"), type="purchase"),
            [
                {"cid": e["client_event_id"], "oid": e["order_id"], "net": e["value"]}
                for e in events
            ],
        )
    return created


async def _apply(
    session: AsyncSession, order: Order, status: str, refunded: Decimal, now: datetime
) -> None:
    """Write a new status and refunded total, and the purchase event's net value."""
    assert order.id is not None
    values: dict[str, Any] = {"status": status, "refunded_total": refunded, "updated_at": now}
    if status == "cancelled" and order.cancelled_at is None:
        values["cancelled_at"] = now
    await session.execute(
        update(table(Order)).where(table(Order).c.id == order.id).values(**values)
    )
    if status == "refunded":
        lines = table(OrderLine)
        await session.execute(
            update(lines)
            .where(lines.c.order_id == order.id)
            .values(refunded_quantity=lines.c.quantity)
        )
    net = ZERO if status == "cancelled" else Decimal(order.total) - refunded
    await _set_event_value(session, order, net)


async def _set_event_value(session: AsyncSession, order: Order, net: Decimal) -> None:
    """The order's purchase event, found by its unique client event id (indexed)."""
    events = table(Event)
    await session.execute(
        update(events)
        .where(
            events.c.client_event_id == event_id(order.external_id),
            events.c.order_id == order.id,
        )
        .values(value=net)
    )


# ---- refunds and cancellations --------------------------------------------------------------


async def find_for_update(
    session: AsyncSession, *, order_id: int | None = None, external_id: str | None = None
) -> Order:
    """The order by id or external id, locked until the unit of work ends (PostgreSQL)."""
    if (order_id is None) == (external_id is None):
        raise DomainError.one(
            "INVALID", "give exactly one of orderId and externalId", "input", "orderId"
        )
    if external_id is not None and "\x00" in external_id:  # PostgreSQL text cannot hold NUL
        raise DomainError.one("ORDER_NOT_FOUND", "no such order", "input", "externalId")
    stmt = select(Order).with_for_update()
    if order_id is not None:
        stmt = stmt.where(col(Order.id) == order_id)
    else:
        stmt = stmt.where(col(Order.external_id) == external_id)
    order = (await session.scalars(stmt)).first()
    if order is None:
        field_name = "orderId" if order_id is not None else "externalId"
        raise DomainError.one("ORDER_NOT_FOUND", "no such order", "input", field_name)
    return order


@dataclass(frozen=True)
class RefundLine:
    line_no: int
    quantity: int


async def refund_order(
    session: AsyncSession,
    actor: Actor,
    *,
    order_id: int | None = None,
    external_id: str | None = None,
    amount: Any = None,
    lines: Sequence[RefundLine] | None = None,
    reason: str | None = None,
) -> Order:
    """Refund part or all of an order. Lines given: their quantities are refunded and the amount
    defaults to their value; no lines and no amount: everything not yet refunded."""
    _forbid_shopper(actor)
    errors: list[FieldError] = []
    money: Decimal | None = None
    if amount is not None:
        money = v.check(errors, None, ("input", "amount"), _money, amount)
        if money is not None and money <= 0:
            errors.append(
                FieldError("INVALID_MONEY", "amount must be above 0", ("input", "amount"))
            )
    if reason is not None:
        v.check(errors, None, ("input", "reason"), _text, reason, "reason", MAX_REASON)
    if errors:
        raise DomainError(errors)
    order = await find_for_update(session, order_id=order_id, external_id=external_id)
    assert order.id is not None
    if order.status == "cancelled":
        raise DomainError.one("ORDER_CANCELLED", "a cancelled order cannot be refunded", "input")
    total, refunded = Decimal(order.total), Decimal(order.refunded_total)
    remaining = total - refunded
    current = (await repository.lines_for(session, [order.id])).get(order.id, [])
    by_no = {ln.line_no: ln for ln in current}
    quantities: dict[int, int] = {}
    line_value = ZERO
    for n, item in enumerate(lines or []):
        path = ("input", "lines", str(n))
        line = by_no.get(item.line_no)
        if line is None:
            errors.append(
                FieldError("LINE_NOT_FOUND", f"no line {item.line_no}", (*path, "lineNo"))
            )
            continue
        if item.line_no in quantities:
            errors.append(
                FieldError("DUPLICATE", f"line {item.line_no} is listed twice", (*path, "lineNo"))
            )
            continue
        left = line.quantity - line.refunded_quantity
        if isinstance(item.quantity, bool) or item.quantity < 1:
            errors.append(
                FieldError("INVALID_QUANTITY", "quantity must be at least 1", (*path, "quantity"))
            )
            continue
        if item.quantity > left:
            errors.append(
                FieldError(
                    "OVER_REFUND",
                    f"line {item.line_no} has {left} unrefunded unit(s), not {item.quantity}",
                    (*path, "quantity"),
                )
            )
            continue
        quantities[item.line_no] = item.quantity
        line_value += Decimal(item.quantity) * Decimal(line.unit_price)
    if errors:
        raise DomainError(errors)
    if money is None:
        money = min(line_value, remaining) if quantities else remaining
    if money <= 0:
        raise DomainError.one("OVER_REFUND", "nothing is left to refund", "input")
    if money > remaining:
        raise DomainError.one(
            "OVER_REFUND",
            f"refund of {money} exceeds what is left to refund ({remaining})",
            "input",
            "amount",
        )
    refunded += money
    full = refunded >= total
    now = utcnow()
    status = "refunded" if full else "partially_refunded"
    await session.execute(
        update(table(Order))
        .where(table(Order).c.id == order.id)
        .values(status=status, refunded_total=refunded, updated_at=now)
    )
    line_table = table(OrderLine)
    if full:
        await session.execute(
            update(line_table)
            .where(line_table.c.order_id == order.id)
            .values(refunded_quantity=line_table.c.quantity)
        )
    else:
        for line_no, qty in quantities.items():
            await session.execute(
                update(line_table)
                .where(line_table.c.order_id == order.id, line_table.c.line_no == line_no)
                .values(refunded_quantity=line_table.c.refunded_quantity + qty)
            )
    await _set_event_value(session, order, total - refunded)
    details: dict[str, Any] = {"amount": str(money), "status": status}
    if quantities:
        details["lines"] = {str(k): q for k, q in sorted(quantities.items())}
    if reason:
        details["reason"] = reason.strip()[:MAX_REASON]
    await audit.record(
        session,
        actor,
        "orders.refund",
        "Order",
        order.id,
        fields=[
            "refunded_total",
            "status",
            *(["lines.refunded_quantity"] if quantities or full else []),
        ],
        details=details,
    )
    session.expunge(order)
    fresh = await session.get(Order, order.id)
    assert fresh is not None
    return fresh


async def cancel_order(
    session: AsyncSession,
    actor: Actor,
    *,
    order_id: int | None = None,
    external_id: str | None = None,
    reason: str | None = None,
) -> Order:
    """Cancel an order: its purchase event's value becomes 0. Refunds made before stay recorded."""
    _forbid_shopper(actor)
    if reason is not None:
        errors: list[FieldError] = []
        v.check(errors, None, ("input", "reason"), _text, reason, "reason", MAX_REASON)
        if errors:
            raise DomainError(errors)
    order = await find_for_update(session, order_id=order_id, external_id=external_id)
    assert order.id is not None
    if order.status == "cancelled":
        raise DomainError.one("ORDER_CANCELLED", "the order is already cancelled", "input")
    if order.status == "refunded":
        raise DomainError.one(
            "ORDER_REFUNDED", "a fully refunded order cannot be cancelled", "input"
        )
    now = utcnow()
    await session.execute(
        update(table(Order))
        .where(table(Order).c.id == order.id)
        .values(status="cancelled", cancelled_at=now, updated_at=now)
    )
    await _set_event_value(session, order, ZERO)
    details = {"reason": reason.strip()[:MAX_REASON]} if reason else {}
    await audit.record(
        session,
        actor,
        "orders.cancel",
        "Order",
        order.id,
        fields=["status", "cancelled_at"],
        details=details,
    )
    session.expunge(order)
    fresh = await session.get(Order, order.id)
    assert fresh is not None
    return fresh
