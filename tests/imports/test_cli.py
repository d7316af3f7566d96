"""``precis import`` and ``precis demo load`` as a user runs them: a subprocess on a migrated SQLite
file, jobs in-process (no Redis)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Precis


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as conn:
        return list(conn.execute(sql))


def test_import_users_prints_a_json_summary(precis: Precis, database: Path, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("external_id,email,country\nc-1,c1@example.com,DE\nc-2,oops,DE\nc-3,,AT\n")

    done = precis("import", "users", str(path))

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["task_id"].startswith("import-users-")
    assert (summary["kind"], summary["rows"], summary["accepted"], summary["rejected"]) == (
        "users",
        3,
        2,
        1,
    )
    assert summary["errors"][0]["line"] == 3 and summary["errors"][0]["field"] == "email"
    assert "2 accepted, 1 rejected of 3 rows" in done.stderr
    assert "line 3: invalid email" in done.stderr
    assert rows(database, "SELECT external_id, country FROM customer ORDER BY 1") == [
        ("c-1", "DE"),
        ("c-3", "AT"),
    ]
    assert rows(database, "SELECT status FROM task_run") == [("done",)]

    again = precis("import", "users", str(path))
    assert again.returncode == 0
    assert json.loads(again.stdout.strip().splitlines()[-1]) == summary
    assert rows(database, "SELECT COUNT(*) FROM customer") == [(2,)]


def test_import_products_jsonl(precis: Precis, database: Path, tmp_path: Path) -> None:
    path = tmp_path / "products.jsonl"
    path.write_text(
        '{"external_id": "k-1", "title": "Kettle", "price": "29.99", "currency": "EUR",'
        ' "category_path": "Home > Kitchen"}\n'
    )
    done = precis("import", "products", str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["accepted"] == 1
    assert rows(database, "SELECT path FROM category ORDER BY depth") == [
        ("Home",),
        ("Home > Kitchen",),
    ]


def test_import_missing_file_fails_clearly(precis: Precis, database: Path) -> None:
    done = precis("import", "users", "missing.csv")
    assert done.returncode == 1
    assert "import failed: file not found:" in done.stderr
    assert "missing.csv" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert rows(database, "SELECT COUNT(*) FROM task_run") == [(0,)]


def test_import_unknown_format_fails_clearly(precis: Precis, tmp_path: Path) -> None:
    (tmp_path / "users.xml").write_text("<users/>")
    done = precis("import", "users", str(tmp_path / "users.xml"))
    assert done.returncode == 1
    assert "cannot tell the format" in done.stderr


def test_demo_load_and_if_empty(precis: Precis, database: Path) -> None:
    loaded = precis("demo", "load", "--users", "40", "--products", "12", "--seed", "5")
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 40 users, 12 products" in loaded.stderr
    assert rows(database, "SELECT COUNT(*) FROM customer") == [(40,)]
    assert rows(database, "SELECT COUNT(*) FROM product") == [(12,)]
    # a recommendation model trained on the demo activity is the active version, with a bundle
    assert "1 recommendation model trained and promoted" in loaded.stderr.replace("\n", " ")
    assert rows(database, "SELECT status, serving IS NOT NULL FROM model_version ORDER BY id") == [
        ("active", 1)
    ]

    skipped = precis("demo", "load", "--if-empty", "--users", "80")
    assert skipped.returncode == 0, skipped.stderr
    assert "already present; skipped" in skipped.stderr
    assert rows(database, "SELECT COUNT(*) FROM customer") == [(40,)]
