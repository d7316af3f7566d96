"""``bench/import_orders.py --quick`` keeps working (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_import_orders_bench_quick(database: str, postgres_url: str | None) -> None:
    if database == "postgres" and postgres_url is None:
        unavailable("PostgreSQL at " + PG_ADMIN_URL, "connection failed")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "import_orders.py"),
            "--quick",
            "--database",
            database,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ratio import/bare:" in proc.stdout
    assert "0 rejected" in proc.stdout
