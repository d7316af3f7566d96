"""Imports of users and products from CSV and JSON Lines: row-level rejections with line numbers,
batches larger than the service limit, idempotent re-imports, and whole-file failures."""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from domain.catalog import repository as catalog_repository
from domain.db import Database
from domain.imports.service import (
    ImportError_,
    create_import,
    import_job_id,
    run_import,
)
from domain.keys import build_keys
from domain.settings import Settings
from domain.tasks.models import TaskRun
from domain.users import repository as users_repository
from tests.conftest import count_rows

USER_HEADER = (
    "external_id,email,phone,first_name,last_name,locale,timezone,country,region,gender,"
    "birth_date,occupation,tags,attributes"
)


async def start(db: Database, kind: str, path: Path, fmt: str | None = None) -> TaskRun:
    async with db.unit_of_work() as session:
        return await create_import(session, kind=kind, path=path, fmt=fmt)


async def task_row(db: Database, task_id: str) -> TaskRun:
    async with db.read_only() as session:
        row = await session.get(TaskRun, task_id)
    assert row is not None
    return row


async def users(db: Database, *ids: str) -> dict[str, Any]:
    async with db.read_only() as session:
        found = await users_repository.by_external_ids(session, list(ids))
        tags = await users_repository.tags_for(session, [c.id for c in found.values() if c.id])
    return {ext: (c, tags.get(c.id or 0, [])) for ext, c in found.items()}


def lines_of(result: dict[str, Any]) -> list[int]:
    return [e["line"] for e in result["errors"]]


async def test_users_csv_keeps_valid_rows_and_rejects_invalid_ones_by_line(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    # given a CSV with six bad rows among three good ones and a blank line
    path = tmp_path / "users.csv"
    path.write_text(
        "\n".join(
            [
                USER_HEADER,
                'u-1,Ann@Example.com,+4915112345678,Ann,Lee,de-DE,Europe/Berlin,de,Bayern,female,1990-04-25,Nurse,vip|newsletter,"{""points"": 5}"',
                "u-2,not-an-email,,Bob,,,,,,,,,,",
                "u-3,c@example.com,,,,,,,,,1990-13-01,,,",
                "u-4,d@example.com",
                "u-5,,,Eve,,,,,,,,,,",
                "u-6,e@example.com,,,,,,XX,,,,,,",
                "",
                'u-7,,,,,,,,,,,,,"{not json"',
                'u-8,,,"Smith, Jr.",,,,,,,,,,',
                "u-9,,,,,,Mars/Olympus,,,,,,,",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    task = await start(db, "users", path)
    assert task.status == "queued"
    assert task.total == 9  # non-blank lines after the header (a cheap count)
    seen: list[tuple[int, int | None]] = []

    # when it is imported
    result = await run_import(db, task.id, progress=lambda done, total: seen.append((done, total)))

    # then good rows are stored and each bad one is reported with its line and field
    assert result["task_id"] == task.id
    assert result["kind"] == "users"
    assert (result["rows"], result["accepted"], result["rejected"]) == (9, 3, 6)
    assert [(e["line"], e["field"]) for e in result["errors"]] == [
        (3, "email"),
        (4, "birth_date"),
        (5, None),
        (7, "country"),
        (9, "attributes"),
        (11, "timezone"),
    ]
    assert result["errors"][2]["message"] == "expected 14 columns, found 2"
    assert "1990-13-01" in result["errors"][1]["message"]
    stored = await users(db, *[f"u-{n}" for n in range(1, 10)])
    assert sorted(stored) == ["u-1", "u-5", "u-8"]
    ann, ann_tags = stored["u-1"]
    keys = build_keys(settings)
    assert keys.decrypt(ann.email_encrypted) == "ann@example.com"
    assert keys.decrypt(ann.phone_encrypted) == "+4915112345678"
    assert (ann.first_name, ann.locale, ann.timezone, ann.country) == (
        "Ann",
        "de-DE",
        "Europe/Berlin",
        "DE",
    )
    assert ann.birth_date == date(1990, 4, 25)
    assert ann.attributes == {"points": 5}
    assert ann_tags == ["newsletter", "vip"]
    assert stored["u-8"][0].first_name == "Smith, Jr."
    assert stored["u-5"][0].email_encrypted is None
    row = await task_row(db, task.id)
    assert (row.status, row.done, row.total, row.error) == ("done", 9, 9, None)
    assert row.result == result
    assert row.started_at is not None and row.finished_at is not None
    assert seen[-1] == (9, 9)


async def test_users_jsonl_rows_with_malformed_lines(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "users.ndjson"
    rows = [
        json.dumps(
            {
                "externalId": "j-1",
                "email": "j1@example.com",
                "tags": ["vip"],
                "attributes": {"tier": "gold"},
                "birthDate": "1985-01-31",
                "region": None,
            }
        ),
        '{"external_id": "j-2", "email": ',  # bad JSON
        '["j-3"]',  # not an object
        json.dumps({"external_id": "j-4", "shoe_size": 44}),  # unknown field
        "   ",
        json.dumps({"external_id": "j-5", "tags": "a|b", "country": "fr", "locale": "fr-FR"}),
        json.dumps({"external_id": "j-6", "phone": "12345"}),  # invalid phone
        json.dumps({"external_id": "j-7", "birth_date": 19850131}),  # not a date string
        json.dumps({"external_id": 8, "first_name": "Eight"}),  # numeric ids are accepted
        json.dumps({"email": "noid@example.com"}),  # no external id
    ]
    path.write_text("\n".join(rows))  # no newline at the end
    task = await start(db, "users", path)
    assert task.params["format"] == "jsonl"
    assert task.total == 9

    result = await run_import(db, task.id)

    assert (result["rows"], result["accepted"], result["rejected"]) == (9, 3, 6)
    assert lines_of(result) == [2, 3, 4, 7, 8, 10]
    assert result["errors"][0]["message"].startswith("invalid JSON")
    assert result["errors"][1]["message"] == "each line must be a JSON object"
    assert result["errors"][2] == {
        "line": 4,
        "message": "unknown field 'shoe_size'",
        "field": "shoe_size",
    }
    assert result["errors"][3]["field"] == "phone"
    assert result["errors"][4]["field"] == "birth_date"
    assert result["errors"][5]["field"] == "external_id"
    stored = await users(db, "j-1", "j-5", "8")
    assert sorted(stored) == ["8", "j-1", "j-5"]
    assert stored["j-1"][1] == ["vip"]
    assert stored["j-1"][0].birth_date == date(1985, 1, 31)
    assert stored["j-5"][1] == ["a", "b"]
    assert stored["j-5"][0].country == "FR"
    assert stored["8"][0].first_name == "Eight"


async def test_reimport_is_one_task_and_writes_nothing_twice(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("external_id,email,tags\nr-1,r1@example.com,a|b\nr-2,r2@example.com,\n")
    first = await start(db, "users", path)
    result = await run_import(db, first.id)
    assert result["accepted"] == 2

    # the same bytes under another name are the same task, already done
    copy = tmp_path / "copy.csv"
    shutil.copyfile(path, copy)
    again = await start(db, "users", copy)
    assert again.id == first.id
    assert again.status == "done"
    assert await run_import(db, again.id) == result
    assert await count_rows(db, "customer") == 2
    assert await count_rows(db, "customer_tag") == 2
    assert await count_rows(db, "task_run") == 1
    assert first.id.startswith("import-users-") and len(first.id) == len("import-users-") + 16

    # changed bytes are a new task, and upserting the same ids adds no rows
    path.write_text("external_id,email,tags\nr-1,new@example.com,c\nr-2,r2@example.com,\n")
    changed = await start(db, "users", path)
    assert changed.id != first.id
    assert (await run_import(db, changed.id))["accepted"] == 2
    assert await count_rows(db, "customer") == 2
    stored = await users(db, "r-1")
    assert stored["r-1"][1] == ["c"]


async def test_batches_of_100_keep_going_past_invalid_rows(db: Database, tmp_path: Path) -> None:
    # 250 rows, every tenth with a bad email, and one id repeated (the later row wins)
    lines = ["external_id,email,first_name"]
    for n in range(250):
        email = "broken" if n % 10 == 9 else f"b{n}@example.com"
        lines.append(f"b-{n},{email},Name{n}")
    lines.append("b-0,b0@example.com,Renamed")
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    task = await start(db, "users", path)
    seen: list[int] = []

    result = await run_import(db, task.id, progress=lambda done, total: seen.append(done))

    assert (result["rows"], result["accepted"], result["rejected"]) == (251, 226, 25)
    assert lines_of(result) == [n + 2 for n in range(250) if n % 10 == 9]
    assert {e["field"] for e in result["errors"]} == {"email"}
    assert await count_rows(db, "customer") == 225
    assert seen == sorted(seen) and seen[-1] == 251 and len(seen) >= 3
    stored = await users(db, "b-0", "b-9", "b-248")
    assert sorted(stored) == ["b-0", "b-248"]
    assert stored["b-0"][0].first_name == "Renamed"


async def test_errors_are_kept_up_to_a_thousand(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n" * 1200)
    task = await start(db, "users", path)
    result = await run_import(db, task.id)
    assert (result["rows"], result["accepted"], result["rejected"]) == (1200, 0, 1200)
    assert len(result["errors"]) == 1000
    assert lines_of(result)[-1] == 1000


async def test_csv_cells_that_are_not_utf8_reject_only_their_row(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"\xef\xbb\xbfexternal_id,first_name\nx-1,J\xfcrgen\nx-2,J\xc3\xbcrgen\n"  # BOM, then a latin-1 line
    )
    result = await run_import(db, (await start(db, "users", path)).id)
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert result["errors"] == [
        {"line": 2, "message": "the line is not valid UTF-8", "field": None}
    ]
    assert (await users(db, "x-2"))["x-2"][0].first_name == "Jürgen"


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        ("users.txt", None, "cannot tell the format of 'users.txt'"),
        ("users.csv", "xml", "unknown format 'xml'"),
    ],
)
async def test_unknown_format_is_refused(
    db: Database, tmp_path: Path, name: str, fmt: str | None, message: str
) -> None:
    path = tmp_path / name
    path.write_text("external_id\nu-1\n")
    with pytest.raises(ImportError_, match=message):
        await start(db, "users", path, fmt)
    assert await count_rows(db, "task_run") == 0


async def test_format_option_overrides_the_extension(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text('{"external_id": "t-1"}\n')
    task = await start(db, "users", path, "ndjson")
    assert task.params["format"] == "jsonl"
    assert (await run_import(db, task.id))["accepted"] == 1


async def test_missing_file_unknown_kind_and_directory_are_refused(
    db: Database, tmp_path: Path
) -> None:
    with pytest.raises(ImportError_, match=r"file not found: .*missing\.csv"):
        await start(db, "users", tmp_path / "missing.csv")
    with pytest.raises(ImportError_, match="not a file"):
        await start(db, "users", tmp_path)
    (tmp_path / "o.csv").write_text("external_id\n")
    with pytest.raises(ImportError_, match="unknown import kind 'coupons'"):
        await start(db, "coupons", tmp_path / "o.csv")
    with pytest.raises(ImportError_, match="no import task 'import-users-nope'"):
        await run_import(db, "import-users-nope")
    assert await count_rows(db, "task_run") == 0


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", "the file is empty"),
        ("external_id,shoe_size\nu-1,44\n", "unknown column(s) 'shoe_size'"),
        ("email\na@example.com\n", "no external_id column"),
        ("external_id,externalId\nu-1,u-1\n", "names a column twice"),
    ],
)
async def test_unreadable_csv_fails_the_task(
    db: Database, tmp_path: Path, content: str, error: str
) -> None:
    path = tmp_path / "users.csv"
    path.write_text(content)
    task = await start(db, "users", path)
    with pytest.raises(ImportError_) as raised:
        await run_import(db, task.id)
    assert error in str(raised.value)
    row = await task_row(db, task.id)
    assert row.status == "failed"
    assert row.error is not None and error in row.error
    assert row.finished_at is not None
    assert await count_rows(db, "customer") == 0


async def test_failed_task_is_queued_again_with_a_new_job_id(db: Database, tmp_path: Path) -> None:
    # given a task whose file disappeared before it ran
    path = tmp_path / "users.csv"
    path.write_text("external_id\nf-1\n")
    task = await start(db, "users", path)
    assert import_job_id(task) == task.id
    path.unlink()
    with pytest.raises(ImportError_, match="cannot read"):
        await run_import(db, task.id)
    assert (await task_row(db, task.id)).status == "failed"

    # when the same file is imported again
    path.write_text("external_id\nf-1\n")
    retried = await start(db, "users", path)

    # then it is the same task, reset, under a job id ARQ has not seen
    assert retried.id == task.id
    assert (retried.status, retried.done, retried.error, retried.result) == ("queued", 0, None, {})
    assert import_job_id(retried) == f"{task.id}-attempt2"
    assert (await run_import(db, task.id))["accepted"] == 1


async def test_file_changed_after_the_task_was_created_fails(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("external_id\nc-1\n")
    task = await start(db, "users", path)
    path.write_text("external_id\nc-2\n")
    with pytest.raises(ImportError_, match="changed since the import was created"):
        await run_import(db, task.id)
    assert await count_rows(db, "customer") == 0


PRODUCT_HEADER = (
    "external_id,title,description,category_path,brand,tags,price,currency,stock,active"
)


async def products(db: Database, *ids: str) -> dict[str, Any]:
    async with db.read_only() as session:
        found = await catalog_repository.by_external_ids(session, list(ids))
        tags = await catalog_repository.tags_for(session, [p.id for p in found.values() if p.id])
        cats = await catalog_repository.categories_by_ids(
            session, [p.category_id for p in found.values() if p.category_id]
        )
    return {
        ext: (p, tags.get(p.id or 0, []), cats[p.category_id].path if p.category_id else None)
        for ext, p in found.items()
    }


async def test_products_csv(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_text(
        "\n".join(
            [
                PRODUCT_HEADER,
                "p-1,Trail Runner,Light shoe,Apparel > Shoes > Running,Acme,new|sale,89.90,eur,12,true",
                "p-2,Hoodie,,Apparel > Tops,,,39,EUR,,",
                "p-3,Cheap,,,,,12.345,EUR,,",  # three decimals
                "p-4,,,,,,10.00,EUR,,",  # no title for a new product
                "p-5,Pan,,,,,10.00,EUR,-1,",  # negative stock
                "p-6,Lamp,,,,,10.00,EUR,3,maybe",  # not a boolean
                "p-7,Mug,,,,,10.00,EUR,2.5,",  # not a whole number
                "p-8,Desk,,Home > Furniture > Desks,,,249.00,EUR,0,no",
            ]
        )
        + "\n"
    )
    result = await run_import(db, (await start(db, "products", path)).id)

    assert (result["rows"], result["accepted"], result["rejected"]) == (8, 3, 5)
    assert [(e["line"], e["field"]) for e in result["errors"]] == [
        (4, "price"),
        (5, "title"),
        (6, "stock"),
        (7, "active"),
        (8, "stock"),
    ]
    stored = await products(db, *[f"p-{n}" for n in range(1, 9)])
    assert sorted(stored) == ["p-1", "p-2", "p-8"]
    runner, runner_tags, runner_path = stored["p-1"]
    assert (runner.title, runner.brand, runner.price, runner.currency, runner.stock) == (
        "Trail Runner",
        "Acme",
        Decimal("89.90"),
        "EUR",
        12,
    )
    assert runner.active is True
    assert runner_tags == ["new", "sale"]
    assert runner_path == "Apparel > Shoes > Running"
    hoodie = stored["p-2"][0]
    assert (hoodie.stock, hoodie.active, stored["p-2"][2]) == (None, True, "Apparel > Tops")
    desk = stored["p-8"][0]
    assert (desk.stock, desk.active) == (0, False)


async def test_products_jsonl_with_lists(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "products.jsonl"
    items = [
        {
            "externalId": "q-1",
            "title": "Tent",
            "categoryPath": ["Outdoors", "Camping", "Tents"],
            "tags": ["eco"],
            "price": 199.5,
            "currency": "EUR",
            "stock": None,
            "active": True,
            "attributes": {"sleeps": 2},
        },
        {"external_id": "q-2", "title": "Bag", "price": "20.00", "currency": "EURO"},
        {"external_id": "q-3", "title": "Mat", "price": "20.00", "currency": "EUR", "active": "y"},
    ]
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n")
    result = await run_import(db, (await start(db, "products", path)).id)
    assert (result["accepted"], result["rejected"]) == (2, 1)
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(2, "currency")]
    stored = await products(db, "q-1", "q-3")
    tent, tags, category = stored["q-1"]
    assert (tent.price, tent.stock, tent.attributes) == (Decimal("199.50"), None, {"sleeps": 2})
    assert (tags, category) == (["eco"], "Outdoors > Camping > Tents")
    assert stored["q-3"][0].active is True


async def test_overlong_jsonl_line_is_rejected_and_reading_goes_on(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("domain.imports.service.MAX_LINE_BYTES", 64)
    path = tmp_path / "users.jsonl"
    long_line = json.dumps({"external_id": "l-1", "first_name": "x" * 300})
    path.write_text(f'{long_line}\n{{"external_id": "l-2"}}\n')
    result = await run_import(db, (await start(db, "users", path)).id)
    assert (result["rows"], result["accepted"], result["rejected"]) == (2, 1, 1)
    assert result["errors"] == [
        {"line": 1, "message": "line is longer than 64 bytes", "field": None}
    ]
    assert sorted(await users(db, "l-1", "l-2")) == ["l-2"]
