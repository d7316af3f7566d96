"""Imports of users and products from CSV or JSON Lines (filled in by the import work)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import Database
from domain.tasks.models import TaskRun


class ImportError_(Exception):
    pass


async def create_import(
    session: AsyncSession, *, kind: str, path: Path, fmt: str | None
) -> TaskRun:
    raise NotImplementedError


async def run_import(
    db: Database, task_id: str, progress: Callable[[int, int | None], None] | None = None
) -> dict[str, Any]:
    raise NotImplementedError
