"""The UCI "Online Retail" layout as orders, purchase events and refunds.

Data set: Daqing Chen, "Online Retail", UCI Machine Learning Repository (2015), DOI 10.24432/C5BW33,
licensed CC BY 4.0 (keep this attribution wherever the data or anything derived from it ships).

Columns: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country.
How rows map (the rules are repeated in docs/orders.md):

- An invoice is an order (``external_id`` = InvoiceNo, currency GBP, ``placed_at`` = the invoice's
  earliest InvoiceDate read as Europe/London local time). Its rows are its lines, in file order.
- Postage and carriage codes (POST, DOT, C2) become ``shipping_total``; a Discount row (D) in a sale
  invoice becomes ``discount_total``. Other non-product codes (M manual, S samples, B bad debt, BANK
  CHARGES, AMAZONFEE, CRUK, gift vouchers) stay order lines without a catalog product, so totals stay
  faithful and no fee ever becomes a recommendable product. When an invoice has nothing else, its
  postage rows stay lines too (an order needs a line).
- Stock codes are kept, with spaces turned into ``-`` (``BANK CHARGES`` -> ``BANK-CHARGES``), since
  external ids have no spaces. Unit prices with more than two decimals are rounded half-up to the
  penny (counted as ``rounded_prices``).
- Customers (by CustomerID, with the country mapped to ISO 3166) and products (title =
  Description, price = UnitPrice, GBP) that do not exist yet are created from the file; existing
  ones are left as they are. Rows without CustomerID are guest orders with the anonymous id
  ``guest:<InvoiceNo>`` (guests cannot be told apart, so each invoice is its own guest).
- Rows with a negative quantity outside a cancellation invoice (stock write-offs: no customer,
  price 0) are not sales: skipped and counted. A negative unit price (bad-debt adjustments) is
  rejected with its line.
- Invoices starting with ``C`` are cancellations and returns, applied after every sale: each row is
  matched to the same customer's earlier, not yet refunded lines of the same stock code, newest
  first, and refunded by line (``refundOrder`` rules: the order's status, refunded total and
  purchase event value follow). What cannot be matched (guest rows, non-product codes, returns of
  sales outside the file; the provided file is a row sample, so most originals are missing) is not
  applied and is counted as ``returns.unmatched_rows``: with both the sale and its return absent,
  leaving both out keeps net revenue right. An import records which cancellation invoices it
  applied (audit entries), so re-running an interrupted import never refunds twice.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pycountry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain import validation as v
from domain.audit.models import AuditEntry
from domain.catalog.models import Product
from domain.errors import DomainError
from domain.orders.models import Order, OrderLine
from domain.users.models import Customer

if TYPE_CHECKING:
    from domain.imports.service import OrderUnit, _Run

HEADER = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
LONDON = ZoneInfo("Europe/London")
CURRENCY = "GBP"
SHIPPING = frozenset({"POST", "DOT", "C2"})
DISCOUNT = frozenset({"D"})
NOT_PRODUCTS = frozenset({"M", "S", "B", "BANK-CHARGES", "AMAZONFEE", "CRUK", "CRUK-COMMISSION"})
COUNTRIES = {
    "EIRE": "IE",
    "RSA": "ZA",
    "USA": "US",
    "Czech Republic": "CZ",
    "Channel Islands": None,  # Jersey and Guernsey are two codes; the file does not say which
    "European Community": None,
    "Unspecified": None,
}
CENT = Decimal("0.01")
MAX_PRICE = Decimal("9999999999.99")
RETURN_CHUNK = 50
REASON = "online-retail return {invoice}"


def is_product(code: str) -> bool:
    return not (
        code in SHIPPING
        or code in DISCOUNT
        or code in NOT_PRODUCTS
        or code.lower().startswith("gift_")
    )


def country_code(name: str) -> str | None:
    name = name.strip()
    if name in COUNTRIES:
        return COUNTRIES[name]
    try:
        return str(pycountry.countries.lookup(name).alpha_2)
    except LookupError:
        return None


@dataclass(slots=True)
class Item:
    line: int
    invoice: str
    code: str
    description: str
    quantity: int
    price: Decimal
    at: datetime
    customer: str | None
    country: str


@dataclass
class Parsed:
    sales: dict[str, list[Item]] = field(default_factory=dict)
    returns: dict[str, list[Item]] = field(default_factory=dict)


def _customer(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    return value[:-2] if value.endswith(".0") else value


def _parse(run: _Run, path: Path) -> Parsed:
    from domain.imports.service import ImportError_

    parsed = Parsed()
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportError_("the file is empty") from None
        if tuple(h.strip() for h in header) != HEADER:
            raise ImportError_(
                "not the Online Retail layout: the header must be " + ",".join(HEADER)
            )
        for cells in reader:
            line = reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            run.rows += 1
            if len(cells) != len(HEADER):
                run.reject(line, [(f"expected 8 columns, found {len(cells)}", None)])
                continue
            invoice, code, description, quantity, when, price, customer, country = cells
            code = code.strip().replace(" ", "-")
            try:
                qty = int(quantity)
                amount = Decimal(price.strip())
                at = datetime.fromisoformat(when.strip())
            except (ValueError, InvalidOperation) as exc:
                run.reject(line, [(f"unreadable row: {exc}", None)])
                continue
            if not amount.is_finite():
                run.reject(line, [("UnitPrice is not a number", "unit_price")])
                continue
            checks = [(code, "product_external_id"), (invoice.strip(), "external_id")]
            if _customer(customer) is not None:
                checks.append((str(_customer(customer)), "user_external_id"))
            problem = None
            for value, name in checks:
                try:
                    v.external_id(value)
                except v.Invalid as exc:
                    problem = (str(exc), name)
                    break
            if problem is None and abs(amount) > MAX_PRICE:
                problem = (f"UnitPrice is above {MAX_PRICE:,}", "unit_price")
            if problem is not None:
                # Checked per row here, since one bad customer or product would otherwise fail
                # the creation step of a whole batch of orders.
                run.reject(line, [problem])
                continue
            item = Item(
                line=line,
                invoice=invoice.strip(),
                code=code,
                description=description.replace("\x00", "").strip(),
                quantity=qty,
                price=amount,
                at=at.replace(tzinfo=LONDON) if at.tzinfo is None else at,
                customer=_customer(customer),
                country=country,
            )
            if item.invoice.startswith("C"):
                parsed.returns.setdefault(item.invoice, []).append(item)
            elif qty <= 0:
                run.add("skipped_adjustments")
            elif amount < 0:
                run.reject(
                    line, [("negative unit price (an adjustment, not a sale)", "unit_price")]
                )
            else:
                parsed.sales.setdefault(item.invoice, []).append(item)
    return parsed


def _penny(run: _Run, amount: Decimal) -> Decimal:
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if rounded != amount:
        run.add("rounded_prices")
    return rounded


def _order(run: _Run, invoice: str, items: list[Item]) -> OrderUnit:
    from domain.imports.service import OrderUnit

    first = items[0]
    products = [i for i in items if i.code not in SHIPPING and i.code not in DISCOUNT]
    kept = products or items
    folded = [i for i in items if i not in kept]
    lines = [
        {
            "product_external_id": i.code,
            "title": (i.description or i.code)[:300],
            "quantity": i.quantity,
            "unit_price": _penny(run, i.price),
        }
        for i in kept
    ]
    shipping = sum(
        (i.quantity * _penny(run, i.price) for i in folded if i.code in SHIPPING), Decimal(0)
    )
    discount = sum(
        (i.quantity * _penny(run, i.price) for i in folded if i.code in DISCOUNT), Decimal(0)
    )
    item: dict[str, Any] = {
        "external_id": invoice,
        "currency": CURRENCY,
        "placed_at": min(i.at for i in items),
        "lines": lines,
        "shipping_total": shipping,
        "discount_total": discount,
        "channel": "online",
    }
    if first.customer is not None:
        item["user_external_id"] = first.customer
    else:
        item["anonymous_id"] = f"guest:{invoice}"
    return OrderUnit([i.line for i in kept], item)


async def _create_missing(
    run: _Run, session: AsyncSession, units: list[tuple[OrderUnit, list[Item]]]
) -> None:
    """Customers and products of a batch that do not exist yet, through their services."""
    from domain.audit import service as audit
    from domain.catalog.service import upsert_products
    from domain.imports.service import audit_upserts, import_actor
    from domain.keys import build_keys
    from domain.users.service import upsert_users

    actor = import_actor(run.task_id)

    customers: dict[str, str | None] = {}
    products: dict[str, Item] = {}
    for _, items in units:
        for i in items:
            if i.customer is not None:
                customers.setdefault(i.customer, country_code(i.country))
            if is_product(i.code):
                products.setdefault(i.code, i)
    if customers:
        known = set(
            await session.scalars(
                select(col(Customer.external_id)).where(col(Customer.external_id).in_(customers))
            )
        )
        new = [
            {"external_id": ext, **({"country": c} if c else {})}
            for ext, c in customers.items()
            if ext not in known
        ]
        keys = run.cache.get("keys") or build_keys(run.db.settings)
        run.cache["keys"] = keys  # building keys loads the RSA signing keys: once per import
        for start in range(0, len(new), 100):
            part = new[start : start + 100]
            rows = await upsert_users(session, keys, part)
            await audit.record_many(session, audit_upserts(actor, "users", rows, part))
        run.add("customers_created", len(new))
    if products:
        known = set(
            await session.scalars(
                select(col(Product.external_id)).where(col(Product.external_id).in_(products))
            )
        )
        fresh = [
            {
                "external_id": code,
                "title": (i.description or code)[:300],
                "price": str(i.price.quantize(CENT, rounding=ROUND_HALF_UP)),
                "currency": CURRENCY,
            }
            for code, i in products.items()
            if code not in known
        ]
        for start in range(0, len(fresh), 100):
            part = fresh[start : start + 100]
            made = await upsert_products(session, part)
            await audit.record_many(session, audit_upserts(actor, "products", made, part))
        run.add("products_created", len(fresh))


async def import_file(
    run: _Run, path: Path, total: int | None, progress: Callable[[int, int | None], None] | None
) -> None:
    """Sales first, in batches of orders, then cancellation invoices in time order."""
    from domain.imports.service import ORDER_BATCH, _report, flush_orders

    run.extra.update(
        orders=0,
        updated=0,
        duplicates=0,
        customers_created=0,
        products_created=0,
        guest_orders=0,
        skipped_adjustments=0,
        rounded_prices=0,
    )
    parsed = _parse(run, path)
    rows_read = run.rows
    run.rows = 0
    done_rows = 0
    batch: list[tuple[OrderUnit, list[Item]]] = []

    async def flush() -> None:
        nonlocal done_rows

        async def before(session: AsyncSession) -> None:
            await _create_missing(run, session, batch)

        outcomes = await flush_orders(run, [u for u, _ in batch], before)
        run.add(
            "guest_orders",
            sum(
                1
                for (u, _), o in zip(batch, outcomes, strict=True)
                if o == "created" and u.item and "anonymous_id" in u.item
            ),
        )
        done_rows += sum(len(items) for _, items in batch)
        batch.clear()
        run.rows = done_rows
        await _report(run, total, progress)

    for invoice, items in parsed.sales.items():
        run.add("orders")
        batch.append((_order(run, invoice, items), items))
        if len(batch) >= ORDER_BATCH:
            await flush()
    if batch:
        await flush()
    await _apply_returns(run, parsed.returns)
    run.rows = rows_read
    await _report(run, total, progress)


async def _applied(run: _Run) -> set[str]:
    """Cancellation invoices this task applied before (a re-run after a crash skips them)."""
    async with run.db.read_only() as session:
        details = await session.scalars(
            select(col(AuditEntry.details)).where(
                col(AuditEntry.action) == "orders.refund",
                col(AuditEntry.client_id) == "precis-import",
                col(AuditEntry.subject) == run.task_id[:128],
            )
        )
        prefix = REASON.format(invoice="")
        return {
            str(d.get("reason", ""))[len(prefix) :]
            for d in details
            if isinstance(d, dict) and str(d.get("reason", "")).startswith(prefix)
        }


async def _apply_returns(run: _Run, returns: dict[str, list[Item]]) -> None:
    from domain.imports.service import import_actor
    from domain.orders.service import RefundLine, refund_order

    stats: dict[str, Any] = {
        "rows": 0,
        "matched_rows": 0,
        "refunded_units": 0,
        "refunded_amount": "0.00",
        "unmatched_rows": 0,
    }
    run.extra["returns"] = stats
    ordered = sorted(returns.items(), key=lambda kv: min(i.at for i in kv[1]))
    stats["rows"] = sum(len(items) for _, items in ordered)
    applied = await _applied(run)
    amount = Decimal(0)
    actor = import_actor(run.task_id)
    for start in range(0, len(ordered), RETURN_CHUNK):
        chunk = [(inv, items) for inv, items in ordered[start : start + RETURN_CHUNK]]
        pending = [(inv, items) for inv, items in chunk if inv not in applied]
        skipped = [(inv, items) for inv, items in chunk if inv in applied]
        for _, items in skipped:
            stats["matched_rows"] += len(items)  # applied by an earlier run of this task
        if not pending:
            continue
        matched = unmatched = units = 0
        async with run.db.unit_of_work() as session:
            candidates = await _candidates(session, pending)
            for invoice, items in pending:
                per_order: dict[int, dict[int, int]] = defaultdict(dict)
                for item in items:
                    want = -item.quantity
                    options = candidates.get((item.customer, item.code), [])
                    for cand in options:
                        if want <= 0:
                            break
                        if cand.placed_at > item.at or cand.left <= 0:
                            continue
                        take = min(cand.left, want)
                        cand.left -= take
                        want -= take
                        lines = per_order[cand.order_id]
                        lines[cand.line_no] = lines.get(cand.line_no, 0) + take
                    if want < -item.quantity:
                        matched += 1
                    else:
                        unmatched += 1
                for order_id, lines in per_order.items():
                    before = await session.scalar(
                        select(col(Order.refunded_total)).where(col(Order.id) == order_id)
                    )
                    try:
                        order = await refund_order(
                            session,
                            actor,
                            order_id=order_id,
                            lines=[RefundLine(n, q) for n, q in sorted(lines.items())],
                            reason=REASON.format(invoice=invoice),
                        )
                    except DomainError:
                        continue  # e.g. nothing left to refund in money terms
                    units += sum(lines.values())
                    amount += Decimal(order.refunded_total) - Decimal(before or 0)
        stats["matched_rows"] += matched
        stats["unmatched_rows"] += unmatched
        stats["refunded_units"] += units
        stats["refunded_amount"] = f"{amount:.2f}"


@dataclass(slots=True)
class _Candidate:
    order_id: int
    line_no: int
    placed_at: datetime
    left: int
    unit_price: Decimal


async def _candidates(
    session: AsyncSession, pending: list[tuple[str, list[Item]]]
) -> dict[tuple[str | None, str], list[_Candidate]]:
    """The customers' earlier, unrefunded lines for the returned codes, newest first."""
    wanted = {(i.customer, i.code) for _, items in pending for i in items if i.customer}
    if not wanted:
        return {}
    customers = {c for c, _ in wanted}
    codes = {code for _, code in wanted}
    stmt = (
        select(
            col(Customer.external_id),
            col(OrderLine.product_external_id),
            col(OrderLine.order_id),
            col(OrderLine.line_no),
            col(Order.placed_at),
            col(OrderLine.quantity),
            col(OrderLine.refunded_quantity),
            col(OrderLine.unit_price),
        )
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .join(Customer, col(Customer.id) == col(Order.customer_id))
        .where(
            col(Customer.external_id).in_(customers),
            col(OrderLine.product_external_id).in_(codes),
            col(Order.status) != "cancelled",
        )
        .order_by(
            col(Order.placed_at).desc(), col(OrderLine.order_id).desc(), col(OrderLine.line_no)
        )
    )
    found: dict[tuple[str | None, str], list[_Candidate]] = defaultdict(list)
    for ext, code, order_id, line_no, placed_at, qty, refunded, price in await session.execute(
        stmt
    ):
        if (ext, code) in wanted and qty > refunded:
            found[(ext, code)].append(
                _Candidate(order_id, line_no, placed_at, qty - refunded, Decimal(str(price)))
            )
    return found
