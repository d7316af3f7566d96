"""The benchmark scripts keep working: each ``--quick`` run (a few seconds, tiny data) must exit 0
and print its ratio lines. No timing is asserted; full-scale runs stay out of CI (docs/benchmarks.md).

The SQLite run of ``graphql_users.py`` uses the Python load generator (CI has no ``wrk``); the
PostgreSQL run uses whichever is installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, unavailable

ROOT = Path(__file__).resolve().parents[2]


def quick(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def need(database: str, postgres_url: str | None) -> None:
    if database == "postgres" and postgres_url is None:
        unavailable("PostgreSQL at " + PG_ADMIN_URL, "connection failed")


@pytest.mark.parametrize(
    ("database", "loadgen"), [("sqlite", "python"), pytest.param("postgres", "auto")]
)
def test_graphql_users_quick(database: str, loadgen: str, postgres_url: str | None) -> None:
    need(database, postgres_url)
    out = quick("graphql_users.py", "--database", database, "--loadgen", loadgen)
    assert re.search(r"^ratio users\(first: 100\) graphql/raw: \d+\.\d+", out, re.M), out
    assert re.search(r"^ratio user\(id\) graphql/raw: \d+\.\d+", out, re.M), out
    assert re.search(r"^users\(first: 100\) graphql +[\d,.]+", out, re.M), out


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_upsert_users_quick(database: str, postgres_url: str | None) -> None:
    need(database, postgres_url)
    out = quick("upsert_users.py", "--database", database)
    for way in ("service", "graphql", "service \\(update\\)", "graphql \\(update\\)"):
        assert re.search(rf"^ratio {way} / bare insert \({database}\): \d+\.\d+", out, re.M), out


def test_inprocess_quick() -> None:
    out = quick("inprocess.py")
    assert re.search(r"^ratio users\(first: 100\) graphql/raw \(in-process\): \d+\.\d+", out, re.M)
    assert re.search(r"^ratio user\(id\) graphql/raw \(in-process\): \d+\.\d+", out, re.M)


def test_execution_quick() -> None:
    out = quick("execution.py")
    assert re.search(r"^per extra field \d+\.\d+ us; per extra row", out, re.M), out


def test_graphql_fastpath_quick(postgres_url: str | None) -> None:
    need("postgres", postgres_url)
    out = quick("graphql_fastpath.py")
    assert re.search(r"^ratio fast/generic CPU per request: \d+\.\d+", out, re.M), out
    assert re.search(r"^fast +\d+\.\d+", out, re.M), out


def test_recommend_answer_quick(postgres_url: str | None) -> None:
    need("postgres", postgres_url)
    out = quick("recommend_answer.py")
    assert re.search(r"^ratio answer / baseline: \d+\.\d+", out, re.M), out
    for part in ("answer\\(\\)", "  of it Bundle.rank", "  the shopper read \\(alone\\)"):
        assert re.search(rf"^{part} +\d+\.\d+ ms", out, re.M), out


def test_help() -> None:
    for script in (
        "graphql_users.py",
        "upsert_users.py",
        "inprocess.py",
        "execution.py",
        "graphql_fastpath.py",
        "recommend_answer.py",
    ):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert proc.returncode == 0 and "--quick" in proc.stdout, proc.stdout
