"""Imports of orders and events from CSV and JSON Lines, and of the real Online Retail file: valid
items stored through the recordOrders and trackEvents rules, bad ones reported with their line
numbers, re-imports changing nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bench.data import retail_sample
from domain.catalog.service import upsert_products
from domain.db import Database
from domain.imports.service import ImportError_, create_import, run_import
from domain.keys import build_keys
from domain.settings import Settings
from domain.users.service import upsert_users
from tests.conftest import count_rows

ORDER_HEADER = (
    "external_id,user_external_id,anonymous_id,status,currency,discount_total,shipping_total,"
    "coupon_code,placed_at,product_external_id,title,quantity,unit_price"
)
RETAIL = retail_sample()


async def seed(db: Database, settings: Settings) -> None:
    async with db.unit_of_work() as session:
        await upsert_users(session, build_keys(settings), [{"external_id": "u-1"}])
        await upsert_products(
            session,
            [
                {"external_id": "p-1", "title": "Mug", "price": "12.50", "currency": "EUR"},
                {"external_id": "p-2", "title": "Tea", "price": "5.00", "currency": "EUR"},
            ],
        )


async def run(db: Database, path: Path, kind: str = "orders", fmt: str | None = None) -> Any:
    async with db.unit_of_work() as session:
        task = await create_import(session, kind=kind, path=path, fmt=fmt)
    seen: list[int] = []
    result = await run_import(db, task.id, progress=lambda done, total: seen.append(done))
    assert seen and seen[-1] == result["rows"]
    return result


async def query(db: Database, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with db.read_only() as session:
        return [tuple(r) for r in (await session.execute(text(sql), params)).all()]


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def where(result: dict[str, Any]) -> list[tuple[int, str | None]]:
    return [(e["line"], e["field"]) for e in result["errors"]]


async def test_orders_csv_groups_rows_and_reports_bad_orders_by_line(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    # given a CSV of five orders, one row per line, three of them bad
    await seed(db, settings)
    path = tmp_path / "orders.csv"
    t = "2026-11-02T10:15:00+01:00"
    path.write_text(
        "\n".join(
            [
                ORDER_HEADER,
                f"o-1,u-1,,paid,EUR,3.00,4.90,WELCOME,{t},p-1,Mug,2,12.50",
                "o-1,,,,,,,,,p-2,Tea,1,5.00",
                f"o-2,,guest-7,,EUR,,,,{t},p-2,Tea,3,5.00",
                f"o-3,u-1,,,EUR,,,,{t},p-1,Mug,1,12.50",
                "o-3,,,,,,,,,p-2,Tea,0,5.00",
                f"o-4,nobody,,,EUR,,,,{t},p-1,Mug,1,12.50",
                f"o-5,u-1,,,EUR,,,,{t},p-1,Mug,1,12.50",
                "o-5,,,,USD,,,,,p-2,Tea,1,5.00",
                f"o-6,u-1,,,EUR,,,,{t},unknown-sku,Thing,1,1.99",
            ]
        )
        + "\n"
    )

    # when it is imported
    result = await run(db, path)

    # then the good orders are stored and each bad one is reported once, at the faulty line
    assert (result["rows"], result["orders"], result["accepted"], result["rejected"]) == (
        9,
        6,
        3,
        3,
    )
    assert result["duplicates"] == 0
    assert where(result) == [(6, "quantity"), (7, "user_external_id"), (9, "currency")]
    assert await query(
        db, "SELECT external_id, status, customer_id IS NULL, anonymous_id FROM orders ORDER BY 1"
    ) == [
        ("o-1", "paid", False, None),
        ("o-2", "placed", True, "guest-7"),
        ("o-6", "placed", False, None),
    ]
    totals = await query(
        db,
        "SELECT subtotal, discount_total, shipping_total, total FROM orders WHERE external_id = 'o-1'",
    )
    assert [money(x) for x in totals[0]] == [
        Decimal("30.00"),
        Decimal("3.00"),
        Decimal("4.90"),
        Decimal("31.90"),
    ]
    assert await count_rows(db, "order_line") == 4
    assert await query(db, "SELECT client_event_id FROM event ORDER BY 1") == [
        ("order:o-1",),
        ("order:o-2",),
        ("order:o-6",),
    ]

    # when a file with the same orders (one now cancelled) is imported
    again = tmp_path / "again.csv"
    again.write_text(
        ORDER_HEADER
        + "\n"
        + f"o-1,u-1,,paid,EUR,3.00,4.90,WELCOME,{t},p-1,Mug,2,12.50\n"
        + "o-1,,,,,,,,,p-2,Tea,1,5.00\n"
        + f"o-2,,guest-7,cancelled,EUR,,,,{t},p-2,Tea,3,5.00\n"
    )
    second = await run(db, again)

    # then the unchanged one is a duplicate and the cancelled one is updated, with its event at 0
    assert (second["accepted"], second["updated"], second["duplicates"], second["rejected"]) == (
        1,
        1,
        1,
        0,
    )
    assert await count_rows(db, "orders") == 3
    event = await query(db, "SELECT value FROM event WHERE client_event_id = 'order:o-2'")
    assert money(event[0][0]) == Decimal("0.00")


async def test_orders_jsonl_with_lines_and_a_later_status(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    await seed(db, settings)
    order = {
        "externalId": "o-1",
        "userExternalId": "u-1",
        "currency": "EUR",
        "placedAt": "2026-11-02T10:15:00Z",
        "lines": [{"productExternalId": "p-1", "quantity": 2, "unitPrice": "12.50"}],
    }
    path = tmp_path / "orders.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(order),
                "{not json",
                json.dumps({**order, "externalId": "o-2", "total": "99.00"}),
                json.dumps({**order, "status": "refunded"}),
                json.dumps({"externalId": "o-3", "productExternalId": "p-1"}),
            ]
        )
        + "\n"
    )
    result = await run(db, path)
    assert (result["orders"], result["accepted"], result["updated"], result["rejected"]) == (
        5,
        2,
        1,
        3,
    )
    assert where(result) == [(2, None), (3, "total"), (5, "product_external_id")]
    stored = await query(db, "SELECT external_id, status, refunded_total FROM orders")
    assert [(x, s, money(r)) for x, s, r in stored] == [("o-1", "refunded", Decimal("25.00"))]


async def test_orders_csv_header_problems_fail_the_whole_file(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("external_id,lines\no-1,[]\n")
    with pytest.raises(ImportError_, match="one row per line"):
        await run(db, path)
    other = tmp_path / "users.csv"
    other.write_text("external_id\nu-1\n")
    async with db.unit_of_work() as session:
        with pytest.raises(ImportError_, match="for orders only"):
            await create_import(session, kind="users", path=other, fmt="online-retail")
    assert await count_rows(db, "orders") == 0


async def test_events_csv_and_jsonl_through_track_events(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    await seed(db, settings)
    at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    path = tmp_path / "events.csv"
    path.write_text(
        "client_event_id,type,user_external_id,anonymous_id,product_external_id,value,currency,"
        "rating,occurred_at\n"
        f"e-1,view,u-1,,p-1,,,,{at}\n"
        f"e-2,purchase,u-1,,,12.50,EUR,,{at}\n"
        f"e-1,view,u-1,,p-1,,,,{at}\n"
        f"e-3,review,u-1,,p-2,,,9,{at}\n"
        f"e-4,teleport,,a-1,,,,,{at}\n"
        f"e-5,view,,a-1,p-2,,,,{at}\n"
        "e-6,view,,a-1,p-2,,,,yesterday\n"
    )
    result = await run(db, path, kind="events")
    assert (result["rows"], result["accepted"], result["duplicates"], result["rejected"]) == (
        7,
        3,
        1,
        3,
    )
    assert where(result) == [(5, "rating"), (6, "type"), (8, "occurred_at")]
    assert await query(db, "SELECT client_event_id FROM event ORDER BY 1") == [
        ("e-1",),
        ("e-2",),
        ("e-5",),
    ]

    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "clientEventId": "e-1",
                "type": "view",
                "userExternalId": "u-1",
                "productExternalId": "p-1",
                "occurredAt": at,
            }
        )
        + "\n"
        + json.dumps(
            {
                "clientEventId": "e-9",
                "type": "search",
                "anonymousId": "a-2",
                "query": "mugs",
                "properties": {"page": 2},
                "occurredAt": at,
            }
        )
        + "\n"
        + "[1, 2]\n"
    )
    second = await run(db, jsonl, kind="events")
    assert (second["accepted"], second["duplicates"], second["rejected"]) == (1, 1, 1)
    assert where(second) == [(3, None)]
    assert await count_rows(db, "event") == 4


def retail_slice(rows: int) -> tuple[str, list[list[str]]]:
    """The header and the first ``rows`` data rows of the real Online Retail sample."""
    with RETAIL.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        data = [row for _, row in zip(range(rows), reader, strict=False)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(data)
    return out.getvalue(), data


def sales(data: list[list[str]]) -> Iterator[list[str]]:
    return (r for r in data if not r[0].startswith("C") and int(r[3]) > 0)


async def test_online_retail_slice_is_imported_faithfully(db: Database, tmp_path: Path) -> None:
    # given the first 1,000 rows of the real file: sales, guests, postage, stock write-offs and
    # cancellations, one of which (C537408, line 980) returns 12 spoons bought in 537216
    content, data = retail_slice(1000)
    path = tmp_path / "retail.csv"
    path.write_text(content)

    result = await run(db, path, fmt="online-retail")

    sale_rows = list(sales(data))
    invoices = {r[0] for r in sale_rows}
    returns = [r for r in data if r[0].startswith("C")]
    write_offs = [r for r in data if not r[0].startswith("C") and int(r[3]) <= 0]
    assert result["rows"] == 1000
    assert (result["orders"], result["accepted"], result["rejected"]) == (
        len(invoices),
        len(invoices),
        0,
    )
    assert result["customers_created"] == len({r[6] for r in sale_rows if r[6]})
    assert result["guest_orders"] == len({r[0] for r in sale_rows if not r[6]})
    assert result["skipped_adjustments"] == len(write_offs) == 4
    assert result["returns"] == {
        "rows": len(returns),
        "matched_rows": 1,
        "refunded_units": 12,
        "refunded_amount": "10.20",
        "unmatched_rows": len(returns) - 1,
    }
    assert result["errors"] == []

    # revenue is exactly the file's: quantity x unit price over the sale rows
    expected = sum((int(r[3]) * Decimal(r[5]) for r in sale_rows), Decimal(0))
    total = await query(db, "SELECT SUM(total), SUM(refunded_total) FROM orders")
    assert (money(total[0][0]), money(total[0][1])) == (
        expected.quantize(Decimal("0.01")),
        Decimal("10.20"),
    )
    net = await query(db, "SELECT SUM(value) FROM event WHERE type = 'purchase'")
    assert money(net[0][0]) == expected - Decimal("10.20")

    # the return is a refund of the matching line, and the purchase event follows it
    refunded = await query(
        db,
        "SELECT o.status, o.total, o.refunded_total, l.quantity, l.refunded_quantity, e.value "
        "FROM orders o JOIN order_line l ON l.order_id = o.id JOIN event e ON e.order_id = o.id "
        "WHERE o.external_id = '537216' AND l.product_external_id = '22196'",
    )
    status, order_total, refunded_total, qty, refunded_qty, value = refunded[0]
    assert (status, money(refunded_total), qty, refunded_qty) == (
        "partially_refunded",
        Decimal("10.20"),
        12,
        12,
    )
    assert money(value) == money(order_total) - Decimal("10.20")

    # postage is shipping, not a product; customers carry ISO countries; guests are anonymous
    post = await query(db, "SELECT shipping_total FROM orders WHERE external_id = '536974'")
    assert money(post[0][0]) == Decimal("36.00")
    assert await query(db, "SELECT COUNT(*) FROM product WHERE external_id = 'POST'") == [(0,)]
    assert await query(db, "SELECT country FROM customer WHERE external_id = '12472'") == [("DE",)]
    guests = await query(db, "SELECT COUNT(*) FROM orders WHERE anonymous_id LIKE 'guest:%'")
    assert guests == [(result["guest_orders"],)]
    spoons = await query(
        db, "SELECT title, price, currency FROM product WHERE external_id = '22196'"
    )
    assert (spoons[0][0], money(spoons[0][1]), spoons[0][2]) == (
        "SMALL HEART MEASURING SPOONS",
        Decimal("0.85"),
        "GBP",
    )

    # every write is audited: created users and products, recorded orders, applied refunds
    actions = dict(
        await query(db, "SELECT action, COUNT(*) FROM audit_entry GROUP BY action ORDER BY action")
    )
    assert actions == {
        "orders.record": len(invoices),
        "orders.refund": 1,
        "product.upsert": result["products_created"],
        "user.upsert": result["customers_created"],
    }

    # when an overlapping slice is imported, nothing is stored twice and no return is re-applied
    smaller, _ = retail_slice(990)
    overlap = tmp_path / "retail-990.csv"
    overlap.write_text(smaller)
    before = await query(db, "SELECT external_id, status, refunded_total FROM orders ORDER BY 1")
    again = await run(db, overlap, fmt="online-retail")
    assert again["accepted"] == 0 and again["duplicates"] == again["orders"]
    assert again["customers_created"] == again["products_created"] == 0
    assert again["returns"]["refunded_units"] == 0  # 537216's spoons are all refunded already
    assert (
        await query(db, "SELECT external_id, status, refunded_total FROM orders ORDER BY 1")
        == before
    )


async def test_online_retail_bad_rows_do_not_fail_their_batch(db: Database, tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    path = tmp_path / "retail.csv"
    path.write_text(
        header
        + "536365,85123A,WHITE HANGING HEART,6,2010-12-01T08:26:00,2.55,17850,United Kingdom\n"
        + "536366,22633,HAND WARMER,6,2010-12-01T08:28:00,1.85,bad id!,United Kingdom\n"
        + "536367,84879,BIRD ORNAMENT,32,2010-12-01T08:34:00,99999999999.00,13047,United Kingdom\n"
        + "536368,22960,JAM MAKING SET,6,2010-12-01T08:34:00,-4.25,13047,United Kingdom\n"
        + "536369,21756,BATH BUILDING BLOCK,3,not a date,5.95,13047,United Kingdom\n"
        + "536370,22728,ALARM CLOCK\u0000,24,2010-12-01T08:45:00,3.75,12583,France\n"
    )
    result = await run(db, path, fmt="online-retail")
    assert (result["accepted"], result["rejected"]) == (2, 4)
    assert where(result) == [
        (3, "user_external_id"),
        (4, "unit_price"),
        (5, "unit_price"),
        (6, None),
    ]
    assert await query(db, "SELECT external_id FROM orders ORDER BY 1") == [
        ("536365",),
        ("536370",),
    ]
    assert await query(db, "SELECT title FROM product WHERE external_id = '22728'") == [
        ("ALARM CLOCK",)
    ]
