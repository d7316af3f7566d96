"""``bench/privacy_export.py --quick`` keeps working (no timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_privacy_export_bench_quick() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "privacy_export.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        r"^sqlite +2000 +10 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+$", proc.stdout, re.M
    ), proc.stdout
