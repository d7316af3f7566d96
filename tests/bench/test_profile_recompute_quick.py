"""``bench/profile_recompute.py --quick`` keeps working on both databases (no timing asserted)."""

from __future__ import annotations

import re

import pytest

from tests.bench.test_bench_quick import need, quick


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_profile_recompute_quick(database: str, postgres_url: str | None) -> None:
    need(database, postgres_url)
    out = quick("profile_recompute.py", "--database", database, "--no-clv")
    assert re.search(r"^customers: 500, buyers: \d+, events: 5000$", out, re.M), out
    assert re.search(rf"^recompute seconds \({database}\): \d+\.\d+", out, re.M), out
    assert re.search(rf"^customers per second \({database}\): [\d,]+", out, re.M), out
