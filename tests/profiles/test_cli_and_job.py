"""``precis profiles recompute`` (all, some, unknown customer) and the ``recompute_profiles`` job."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlalchemy import select

from domain.audit.models import AuditEntry
from domain.db import Database
from domain.settings import Settings
from jobs.tasks import recompute_profiles
from tests.conftest import Precis, count_rows
from tests.profiles.test_profiles import seed


def _customers(database: Path, *external_ids: str) -> None:
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO customer (external_id, attributes, created_at, updated_at) "
            "VALUES (?, '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            [(e,) for e in external_ids],
        )


def _profiles(database: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(database) as conn:
        return list(
            conn.execute(
                "SELECT c.external_id, p.lifecycle_stage, p.orders_count FROM customer_profile p "
                "JOIN customer c ON c.id = p.customer_id ORDER BY c.external_id"
            )
        )


def test_cli_recomputes_all_or_the_named_customers(precis: Precis, database: Path) -> None:
    _customers(database, "x1", "x2", "x3")
    some = precis("profiles", "recompute", "--customer", "x2", "--json")
    assert some.returncode == 0, some.stderr
    assert json.loads(some.stdout.splitlines()[-1])["customers"] == 1
    assert _profiles(database) == [("x2", "new", 0)]
    with sqlite3.connect(database) as conn:
        audited = list(conn.execute("SELECT action, client_id, details FROM audit_entry"))
    assert [(a, c, json.loads(d)["all_customers"]) for a, c, d in audited] == [
        ("profiles.recompute", "precis-cli", False)
    ]

    everyone = precis("profiles", "recompute")
    assert everyone.returncode == 0, everyone.stderr
    assert "recomputed 3 profiles" in everyone.stderr
    assert [p[0] for p in _profiles(database)] == ["x1", "x2", "x3"]


def test_cli_refuses_an_unknown_customer_and_changes_nothing(
    precis: Precis, database: Path
) -> None:
    _customers(database, "x1")
    result = precis("profiles", "recompute", "--customer", "x1", "--customer", "nobody")
    assert result.returncode == 1
    assert "unknown customer: nobody" in result.stderr
    assert _profiles(database) == []
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit_entry").fetchone() == (0,)


def test_cli_help(precis: Precis) -> None:
    result = precis("profiles", "recompute", "--help")
    assert result.returncode == 0
    assert "--customer" in result.stdout


async def test_job_recomputes_every_profile_and_returns_the_summary(
    db: Database, settings: Settings
) -> None:
    await seed(db)
    off = settings.model_copy(update={"profile_clv_model": "off"})
    summary = await recompute_profiles({"db": db, "settings": off})
    assert summary["customers"] == 8
    assert summary["stages"]["new"] >= 1
    assert summary["clv"] == {"model": "off"}
    assert await count_rows(db, "customer_profile") == 8
    async with db.read_only() as session:
        [entry] = list(await session.scalars(select(AuditEntry)))
    assert (entry.action, entry.client_id, entry.subject, entry.resource_type) == (
        "profiles.recompute",
        "precis",
        "system",
        "CustomerProfile",
    )
    assert entry.details["customers"] == 8
    assert entry.details["all_customers"] is True
