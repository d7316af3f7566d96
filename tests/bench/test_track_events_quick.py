"""``bench/track_events.py --quick`` keeps working on both databases: it must exit 0 and print
its rate and ratio lines. No timing is asserted (docs/benchmarks.md has the full-scale figures)."""

from __future__ import annotations

import re

import pytest

from tests.bench.test_bench_quick import need, quick


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_track_events_quick(database: str, postgres_url: str | None) -> None:
    need(database, postgres_url)
    out = quick("track_events.py", "--database", database)
    for way in ("service", "graphql"):
        pattern = rf"^{way} events/s \({database}\): \d+; ratio {way} / bare insert: \d+\.\d+"
        assert re.search(pattern, out, re.M), out
    assert re.search(r"^server process CPU per trackEvents batch: [\d.]+ ms", out, re.M), out
    assert "CPU per batch, ms" in out, out
    cpu = re.search(r"^graphql +([\d.]+) +([\d.]+) +(\S+) +(\S+)$", out, re.M)
    assert cpu is not None, out
    # PostgreSQL's own CPU is read from /proc for a local server; on SQLite there is none.
    assert (cpu.group(3) == "-") == (database == "sqlite"), out
