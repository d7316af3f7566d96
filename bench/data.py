"""Where the real order history lives: ``shared/data`` beside the repository (as in CI), else the
machine's ``/work/shared``; ``PRECIS_RETAIL_SAMPLE`` names the file explicitly."""

from __future__ import annotations

import os
from pathlib import Path

NAME = "online-retail-sample.csv"
ROOT = Path(__file__).resolve().parents[1]


def retail_sample() -> Path:
    """The Online Retail sample (licence: shared/data/README.md); the first candidate that exists,
    else the first candidate (so messages name the expected place)."""
    candidates = [ROOT.parent / "shared" / "data" / NAME, Path("/work/shared/data") / NAME]
    explicit = os.environ.get("PRECIS_RETAIL_SAMPLE")
    if explicit:
        candidates.insert(0, Path(explicit))
    return next((p for p in candidates if p.exists()), candidates[0])
