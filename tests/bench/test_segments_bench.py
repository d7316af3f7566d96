"""``bench/segments.py --quick`` keeps working on both databases: it builds a tiny store, refreshes
the example segment against the hand-written query (same members), previews it and re-evaluates
shoppers across 50 segments. No timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.bench.test_bench_quick import ROOT, need, quick


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_segments_quick(database: str, postgres_url: str | None) -> None:
    need(database, postgres_url)
    out = quick("segments.py", "--database", database, "--shoppers", "8")
    assert re.search(r"^store: 2,000 shoppers, 20,000 events, 400 products$", out, re.M), out
    found = re.search(
        r"^example members: (\d+) compiled, (\d+) hand-written, same set: yes$", out, re.M
    )
    assert found, out
    assert int(found.group(1)) > 0, "the tiny store should still have members in the example"
    for name in ("compiled/hand count", "refresh/hand refresh \\(empty\\)"):
        assert re.search(rf"^ratio {name} \({database}\): \d+\.\d+", out, re.M), out
    assert re.search(rf"^preview median ms \({database}\): \d+", out, re.M), out
    assert re.search(r"^50 segments refreshed in", out, re.M), out
    assert not re.search(r"^refresh failures", out, re.M), out
    assert re.search(rf"^incremental median ms \({database}\): \d+\.\d", out, re.M), out


def test_segments_help() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "segments.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--reuse" in proc.stdout
