"""Task functions shared by the ARQ worker and the in-process runner. Each takes ids, opens its
own unit of work and calls domain services; each is safe to run twice."""

from __future__ import annotations

from typing import Any

from domain.imports.service import run_import


async def import_file(ctx: dict[str, Any], task_id: str) -> dict[str, Any]:
    """Run an import task recorded in ``task_run`` (users or products from CSV / JSON Lines)."""
    return await run_import(ctx["db"], task_id)


TASKS = [import_file]
