"""``bench/clv_accuracy.py`` on the real Online Retail sample: the predictive CLV model beats the
naive baselines on the holdout (the numbers in docs/profiles.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data import retail_sample

ROOT = Path(__file__).resolve().parents[2]
DATA = retail_sample()


def test_clv_model_beats_the_baselines_on_the_holdout() -> None:
    if not DATA.exists():
        pytest.skip(f"{DATA} is not here (shared/ beside the repository)")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "clv_accuracy.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout

    def number(label: str) -> float:
        found = re.search(rf"^{re.escape(label)}: ([\d.]+)$", out, re.M)
        assert found, out
        return float(found.group(1))

    assert "calibration customers: 2696 (repeat: 1404); holdout 91 days" in out
    assert number("MAE orders model") < number("MAE orders zero") < number("MAE orders naive rate")
    assert number("MAE revenue model") < number("MAE revenue naive rate x AOV")
