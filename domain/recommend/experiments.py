"""Online A/B experiments: traffic split between model versions by a stable hash of the shopper.

Assignment (``arm_for``): the shopper's key is ``c:<customer id>`` for a known customer, else
``a:<anonymous id>``. ``sha256(f"{experiment_id}:{key}")``, its first 8 bytes read as a big-endian
unsigned integer and divided by 2**64, is a number ``u`` uniform in [0, 1); the arm is the first
whose cumulative normalised weight exceeds ``u``. Nothing is stored per shopper and nothing
depends on the process, the Python hash seed or the time, so every API process answers the same
for the same shopper for the life of the experiment; a new experiment (a new id) reshuffles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.recommend.models import Experiment

_SCALE = float(1 << 64)


def unit(experiment_id: int, key: str) -> float:
    """The shopper's stable point in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_for(experiment_id: int, arms: Sequence[dict[str, Any]], key: str) -> int:
    """The model version id this shopper is served under the experiment (see module docstring).
    ``arms`` is the experiment's ``[{"version_id", "weight"}]`` in stored order."""
    if not arms:
        raise ValueError("an experiment has at least one arm")
    total = sum(float(a["weight"]) for a in arms)
    point = unit(experiment_id, key) * total
    running = 0.0
    for arm in arms:
        running += float(arm["weight"])
        if point < running:
            return int(arm["version_id"])
    return int(arms[-1]["version_id"])  # float rounding at the very top


async def running(session: AsyncSession) -> Experiment | None:
    """The experiment now running, if any (at most one: a partial unique index)."""
    q = select(Experiment).where(col(Experiment.status) == "running").limit(1)
    return (await session.execute(q)).scalars().first()
