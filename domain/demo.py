"""A deterministic demo storefront (filled in by the demo work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import Database
from domain.keys import Keys


async def is_empty(session: AsyncSession) -> bool:
    raise NotImplementedError


async def load_demo(
    db: Database,
    keys: Keys,
    *,
    users: int,
    products: int,
    seed: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    raise NotImplementedError
