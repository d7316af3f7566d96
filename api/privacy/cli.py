"""``precis privacy ...``: privacy requests due and expired exports, for operators on the server."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from domain.settings import get_settings

privacy_app = typer.Typer(help="Privacy requests and data exports.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _db() -> Any:
    from domain.db import Database

    return Database(get_settings(), pool=False)


@privacy_app.command("requests")
def requests_list(
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only unresolved requests past their due date.")
    ] = False,
    status: Annotated[
        str | None, typer.Option(help="open, in_progress, completed or rejected.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 100,
) -> None:
    """List privacy requests, oldest first (the order they should be answered in)."""
    from domain.privacy import service
    from domain.privacy.models import REQUEST_STATUSES

    if status is not None and status not in REQUEST_STATUSES:
        err.print(f"[red]unknown status {status!r}[/red]; use one of {', '.join(REQUEST_STATUSES)}")
        raise typer.Exit(2)

    async def go() -> list[Any]:
        db = _db()
        try:
            async with db.read_only() as session:
                flt = service.RequestFilter(status=status, overdue=True if overdue else None)
                rows = await service.page(session, flt, first=limit, after=None)
                return rows[:limit]
        finally:
            await db.dispose()

    rows = asyncio.run(go())
    table = Table("id", "type", "status", "user", "received", "due", "overdue")
    for r in rows:
        table.add_row(
            str(r.id),
            r.type,
            r.status,
            r.customer_external_id or "",
            r.received_at.date().isoformat(),
            r.due_at.date().isoformat(),
            "yes" if service.is_overdue(r) else "",
        )
    out.print(table)


@privacy_app.command("purge-exports")
def purge_exports() -> None:
    """Delete data exports past their expiry now (the worker also does this daily)."""
    from domain.privacy.export import purge_expired

    async def go() -> int:
        db = _db()
        try:
            async with db.unit_of_work() as session:
                return await purge_expired(session)
        finally:
            await db.dispose()

    err.print(f"deleted {asyncio.run(go())} expired export(s)")
