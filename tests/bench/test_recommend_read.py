"""``bench/recommend_read.py --quick`` keeps working: it builds a tiny SQLite store, reads it the
old row-wise way and the new column-wise way, and the two give the same interactions (the script
exits 1 otherwise). No timing is asserted. Both reads on PostgreSQL (the COPY path) are compared in
tests/recommend/test_interaction_read.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_quick import ROOT, quick


def test_quick_run(tmp_path: Path) -> None:
    database = "sqlite"
    out_json = tmp_path / "read.json"
    out = quick("recommend_read.py", "--database", database, "--json", str(out_json))
    assert re.search(r"^ratio seconds old/new: \d+\.\d+", out, re.M), out
    assert re.search(r"^\| column-wise \| [\d.]+ \| [\d,]+ \|", out, re.M), out
    assert re.search(r"^frames: equal", out, re.M), out
    data = json.loads(out_json.read_text())
    assert data["database"] == database
    assert data["size"] == {"users": 300, "products": 120, "interactions": 6000}
    # 6,000 generated; searches, anonymous events, cancelled orders, refunded lines, old
    # events and refused consents drop some.
    assert 4000 < data["rows"] < 6000
    assert data["frames"].startswith("equal")


@pytest.mark.parametrize(
    "args",
    [
        ["--users", "0"],
        ["--repeat", "0"],
        ["--reuse", "--database", "sqlite"],
    ],
)
def test_bad_arguments_fail_clearly(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "recommend_read.py"), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "store:" not in proc.stderr  # refused before building anything
