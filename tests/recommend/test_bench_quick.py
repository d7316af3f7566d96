"""``bench/recommend_quality.py --quick`` keeps working (tiny synthetic data, nothing asserted on
quality: the full run is recorded in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quality_bench_quick_mode_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "recommend_quality.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "## synthetic" in done.stdout and "| hybrid |" in done.stdout
