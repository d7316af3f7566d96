"""``precis import orders|events`` as a user runs them: a subprocess on a migrated SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Precis
from tests.imports.test_orders_events_import import retail_slice


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as conn:
        return list(conn.execute(sql))


def test_import_orders_online_retail_prints_a_summary(
    precis: Precis, database: Path, tmp_path: Path
) -> None:
    content, data = retail_slice(200)
    path = tmp_path / "retail.csv"
    path.write_text(content)

    done = precis("import", "orders", str(path), "--format", "online-retail")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    invoices = {r[0] for r in data if not r[0].startswith("C") and int(r[3]) > 0}
    assert (summary["kind"], summary["rows"], summary["orders"]) == ("orders", 200, len(invoices))
    assert f"{len(invoices)} orders in 200 rows: {len(invoices)} stored, 0 unchanged" in done.stderr
    assert rows(database, "SELECT COUNT(*) FROM orders") == [(len(invoices),)]
    assert rows(database, "SELECT COUNT(*) FROM event WHERE type = 'purchase'") == [
        (len(invoices),)
    ]


def test_import_events_reports_bad_lines(precis: Precis, database: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"client_event_id": "e-1", "type": "search", "anonymous_id": "a-1", "query": "tea"}\n'
        '{"client_event_id": "e-2", "type": "nope!", "anonymous_id": "a-1"}\n'
    )
    done = precis("import", "events", str(path))
    assert done.returncode == 0, done.stderr
    assert "1 accepted, 0 duplicates, 1 rejected of 2 rows" in done.stderr
    assert "line 2:" in done.stderr
    assert rows(database, "SELECT client_event_id FROM event") == [("e-1",)]


def test_import_orders_and_events_have_help(precis: Precis) -> None:
    for kind in ("orders", "events"):
        done = precis("import", kind, "--help")
        assert done.returncode == 0
        assert "--format" in done.stdout
    assert "online-retail" in precis("import", "orders", "--help").stdout
