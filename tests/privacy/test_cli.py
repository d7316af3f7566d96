"""``precis privacy requests`` and ``precis privacy purge-exports`` as an operator runs them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from domain.columns import utcnow
from domain.db import Database
from domain.privacy.models import DataExport, PrivacyRequest
from domain.settings import Settings
from domain.users.models import Customer
from tests.conftest import Precis, count_rows


async def test_requests_and_purge_exports(precis: Precis, database: Path, keys_dir: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        var_dir=keys_dir,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = Database(settings)
    now = utcnow()
    try:
        async with db.unit_of_work() as session:
            session.add(Customer(id=1, external_id="c-late", attributes={}))
            session.add(Customer(id=2, external_id="c-fine", attributes={}))
            for cid, ext, due in ((1, "c-late", -3), (2, "c-fine", 20)):
                session.add(
                    PrivacyRequest(
                        type="access",
                        customer_id=cid,
                        customer_external_id=ext,
                        requested_by_client_id="t",
                        received_at=now - timedelta(days=30),
                        due_at=now + timedelta(days=due),
                    )
                )
            for export_id, days in (("old", -1), ("new", 5)):
                session.add(
                    DataExport(
                        id=export_id,
                        customer_id=1,
                        requested_by_client_id="t",
                        status="ready",
                        expires_at=now + timedelta(days=days),
                    )
                )

        listed = precis("privacy", "requests", "--overdue")
        assert listed.returncode == 0, listed.stderr
        assert "c-late" in listed.stdout and "c-fine" not in listed.stdout
        everything = precis("privacy", "requests")
        assert "c-late" in everything.stdout and "c-fine" in everything.stdout
        bad = precis("privacy", "requests", "--status", "done")
        assert bad.returncode == 2 and "unknown status" in bad.stderr

        purged = precis("privacy", "purge-exports")
        assert purged.returncode == 0, purged.stderr
        assert "deleted 1 expired export(s)" in purged.stderr
        assert await count_rows(db, "data_export") == 1
    finally:
        await db.dispose()
