"""``bench/recommend_serving.py --tiny`` keeps working on both databases: it builds a tiny store and
model version, exchanges shopper tokens, checks a sample of the ``recommendations`` requests and
drives the GraphQL server and the plain Starlette baseline in turn. Only the output's shape is
asserted, never a timing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.bench.test_bench_quick import ROOT, need

SCRIPT = ROOT / "bench" / "recommend_serving.py"


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_tiny_run(postgres_url: str | None, tmp_path: Path) -> None:
    """On PostgreSQL, the bench's database (the store code is the same on SQLite, which
    ``--tiny --database sqlite`` runs; one run keeps the suite fast), with wrk where installed and
    the Python load generator otherwise."""
    database = "postgres"
    need(database, postgres_url)
    out_json = tmp_path / "serving.json"
    proc = run("--tiny", "--database", database, "--json", str(out_json))
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    assert re.search(
        rf"^Serving recommendations under load: {database}, 600 shoppers, 300 products, "
        r"12,000 interactions; model trending,itemknn,als,content,together; 40 shopper tokens",
        out,
        re.M,
    ), out
    assert re.search(
        r"^round +target +req/s +p50 ms +p99 ms +server CPU % +CPU ms/req +db CPU ms/req$",
        out,
        re.M,
    ), out
    for target in ("graphql", "plain", "floor", "reference"):
        assert re.search(rf"^1 +{target}( +[\d,.]+){{6}}$", out, re.M), out
    assert re.search(
        r"^ratio recommendations graphql/plain: \d+\.\d{3} \(target >= 0\.4", out, re.M
    )
    assert re.search(r"^latency recommendations graphql: p50 [\d.]+ ms", out, re.M), out
    # The sample of requests was checked before the load: answers with items, no errors.
    assert re.search(r"checked 20 requests: items per answer \{", proc.stderr), proc.stderr
    data = json.loads(out_json.read_text())
    assert data["size"] == {"users": 600, "products": 300, "interactions": 12_000, "shoppers": 40}
    assert data["session_events"] == 120
    assert re.search(r"^floor \{ __typename \} graphql/plain: \d+\.\d{3}", out, re.M), out
    assert re.search(
        r"^reference \(token \+ cached list\)/plain: \d+\.\d{3} \(medians\); "
        r"recommendations graphql/reference: \d+\.\d{3}",
        out,
        re.M,
    ), out
    assert [r["target"] for r in data["runs"]] == ["graphql", "plain", "floor", "reference"]
    assert all(r["requests"] > 0 and r["bad"] == 0 for r in data["runs"])
    assert data["ratio"] > 0


def test_help_and_bad_arguments() -> None:
    proc = run("--help", timeout=60)
    assert proc.returncode == 0
    for flag in ("--tiny", "--reuse", "--profile", "--loadgen"):
        assert flag in proc.stdout
    for bad in (
        ["--tiny", "--reuse"],
        ["--database", "sqlite"],
        ["--tiny", "--components", "nope"],
        ["--tiny", "--users", "10", "--shoppers", "20"],
        ["--tiny", "--products", "10"],
    ):
        proc = run(*bad, timeout=60)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "Traceback" not in proc.stderr and "error:" in proc.stderr, proc.stderr
