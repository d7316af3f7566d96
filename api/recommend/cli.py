"""``precis recommend train|models|promote``: model versions in the database (the offline
``evaluate`` lives in ``recommend.cli``; these commands are added to the same sub-app)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from api.segments_cli import _actor, _db, _errors, _progress, _run, err, out
from domain.errors import DomainError
from domain.settings import get_settings
from recommend.cli import recommend_app

STATUSES = ("candidate", "active", "retired", "failed")


def _summary(row: Any) -> dict[str, Any]:
    return {
        "number": row.id,
        "status": row.status,
        "algorithm": row.algorithm,
        "interactions": row.interactions,
        "users": row.users,
        "items": row.items,
        "ndcg@10": (row.metrics or {}).get("ndcg@10"),
        "created_at": row.created_at.isoformat(),
        "trained_seconds": row.trained_seconds,
        "promoted_at": row.promoted_at.isoformat() if row.promoted_at else None,
        "error": row.error,
    }


@recommend_app.command("train")
def train_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the version as JSON.")] = False,
) -> None:
    """Train and evaluate a candidate model from the database now (what the refresh_model job
    does), with a progress bar; promote it with `precis recommend promote N`."""
    from domain.recommend import service

    settings = get_settings()

    async def go() -> Any:
        db = _db()
        try:
            with _progress() as bar:
                task = bar.add_task("starting", total=None)

                def tell(step: str, done: int, total: int) -> None:
                    bar.update(task, description=step, completed=done, total=total or None)

                return await service.train(db, settings, progress=tell)
        finally:
            await db.dispose()

    try:
        row = _run(go())
    except DomainError as exc:
        _errors(exc)
        raise typer.Exit(1) from exc
    summary = _summary(row)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"candidate {row.id}: ndcg@10 {summary['ndcg@10']:.4f} on {row.interactions} "
            f"interactions ({row.users} shoppers, {row.items} products) in "
            f"{row.trained_seconds:.1f} s"
        )


@recommend_app.command("models")
def models_command(
    status: Annotated[
        str | None, typer.Option(help="candidate, active, retired or failed (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List model versions, newest first, with NDCG@10."""
    from domain.recommend import service

    if status is not None and status not in STATUSES:
        err.print(f"[red]error:[/red] unknown status {status!r}: use {', '.join(STATUSES)}")
        raise typer.Exit(2)

    async def go() -> list[Any]:
        db = _db()
        try:
            async with db.read_only() as session:
                return await service.list_versions(session, status=status, after=None, first=1000)
        finally:
            await db.dispose()

    rows = [_summary(r) for r in _run(go())]
    if as_json:
        for r in rows:
            out.print(json.dumps(r), highlight=False, soft_wrap=True)
        return
    table = Table("number", "status", "ndcg@10", "interactions", "created", "error")
    for r in rows:
        ndcg = r["ndcg@10"]
        table.add_row(
            str(r["number"]),
            r["status"],
            "-" if ndcg is None else f"{ndcg:.4f}",
            str(r["interactions"]),
            r["created_at"][:19],
            (r["error"] or "")[:60],
        )
    out.print(table)


@recommend_app.command("promote")
def promote_command(
    number: Annotated[int, typer.Argument(help="The version's number (see `models`).")],
    force: Annotated[
        bool, typer.Option(help="Promote even if worse than the active version.")
    ] = False,
) -> None:
    """Make a candidate the active model (the previous one is retired)."""
    from domain.recommend import service

    settings = get_settings()

    async def go() -> Any:
        db = _db()
        try:
            async with db.unit_of_work() as session:
                return await service.promote(session, _actor(), settings, number, force=force)
        finally:
            await db.dispose()

    try:
        done = _run(go())
    except DomainError as exc:
        _errors(exc)
        raise typer.Exit(1) from exc
    previous = f" (version {done.previous.id} retired)" if done.previous else ""
    forced = " [yellow]forced: worse than the previous one[/yellow]" if done.forced else ""
    out.print(f"version {done.version.id} is active{previous}{forced}")
