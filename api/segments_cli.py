"""``precis segments ...``: list, seed the built-ins, refresh, preview a definition, import members."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.audit.service import Actor
from domain.errors import DomainError
from domain.settings import ConfigurationError, get_settings

segments_app = typer.Typer(
    help="Segments: list, seed, refresh, preview, import.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)


def _db() -> Any:
    from domain.db import Database

    return Database(get_settings(), pool=False)


def _actor() -> Actor:
    import getpass

    try:
        who = getpass.getuser()
    except Exception:  # no user name in some containers
        who = "unknown"
    return Actor(client_id="precis-cli", subject=f"os:{who}")


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigurationError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _errors(exc: DomainError) -> None:
    for e in exc.errors:
        where = ".".join(e.field)
        err.print(f"[red]{e.code}[/red] {where + ': ' if where else ''}{e.message}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


@segments_app.command("list")
def segments_list(
    status: Annotated[str | None, typer.Option(help="active or archived (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List segments with their kind, version, member count and last refresh."""
    from domain.segments import service

    async def go() -> list[Any]:
        db = _db()
        try:
            rows: list[Any] = []
            after = None
            async with db.read_only() as session:
                while True:
                    page = await service.list_segments(
                        session, status=status, after=after, first=service.MAX_FIRST
                    )
                    rows.extend(page[: service.MAX_FIRST])
                    if len(page) <= service.MAX_FIRST:
                        return rows
                    after = page[service.MAX_FIRST - 1].id
        finally:
            await db.dispose()

    rows = _run(go())
    if as_json:
        for s in rows:
            print(
                json.dumps(
                    {
                        "id": s.id,
                        "key": s.key,
                        "name": s.name,
                        "kind": s.kind,
                        "status": s.status,
                        "version": s.version,
                        "members": s.member_count,
                        "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
                        "refreshed_version": s.refreshed_version,
                    }
                )
            )
        return
    table = Table("id", "key", "name", "kind", "status", "version", "members", "refreshed")
    for s in rows:
        table.add_row(
            str(s.id),
            s.key or "",
            s.name,
            s.kind,
            s.status,
            str(s.version),
            str(s.member_count),
            f"{s.refreshed_at:%Y-%m-%d %H:%M:%S} (v{s.refreshed_version})"
            if s.refreshed_at
            else "never",
        )
    out.print(table)


async def seed_builtins(db: Any, actor: Actor | None = None) -> dict[str, list[str]]:
    from domain.audit.service import SYSTEM
    from domain.segments.builtins import seed

    async with db.unit_of_work() as session:
        return (await seed(session, actor or SYSTEM)).as_dict()


@segments_app.command("seed")
def segments_seed(
    refresh: Annotated[bool, typer.Option(help="Also refresh the built-in segments.")] = False,
) -> None:
    """Create or update the built-in segments (builtin:<name>); safe to run again."""

    async def go() -> dict[str, Any]:
        db = _db()
        try:
            result: dict[str, Any] = await seed_builtins(db, _actor())
            if refresh:
                result["refresh"] = await refresh_with_progress(db, builtin_only=True)
            return result
        finally:
            await db.dispose()

    result = _run(go())
    err.print(
        f"built-in segments: {len(result['created'])} created, {len(result['updated'])} updated, "
        f"{len(result['unchanged'])} unchanged"
    )


async def refresh_with_progress(
    db: Any, *, ids: list[int] | None = None, builtin_only: bool = False, profile_only: bool = False
) -> dict[str, Any]:
    from domain.segments.membership import refresh_all

    builtin_ids: set[int] | None = None
    if builtin_only:
        from domain.segments import service

        async with db.read_only() as session:
            builtin_ids = {
                int(s.id or 0)
                for s in await service.list_segments(session, builtin=True, first=service.MAX_FIRST)
            }
    with _progress() as progress:
        bar = progress.add_task("refresh segments", total=None)

        def report(done: int, total: int, name: str) -> None:
            progress.update(bar, completed=done, total=total, description=f"refresh {name}".strip())

        summary = await refresh_all(
            db,
            progress=report,
            segment_ids=ids if ids is not None else builtin_ids,
            only=(lambda c: c.deps.profile) if profile_only else None,
        )
    return summary.as_dict()


@segments_app.command("refresh")
def segments_refresh(
    segment_id: Annotated[
        list[int] | None,
        typer.Option("--id", help="Refresh only this segment (repeatable; default: all active)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Recompute the membership of active dynamic segments, each in one transaction, recording
    who entered and left (the cron job ``refresh_segments`` does the same)."""
    from domain.segments.membership import refresh_segment

    async def go() -> dict[str, Any]:
        db = _db()
        try:
            if segment_id and len(segment_id) == 1:
                with _progress() as progress:
                    progress.add_task(f"refresh segment {segment_id[0]}", total=None)
                    r = await refresh_segment(db, segment_id[0])
                return {
                    "segments": 0 if r.skipped else 1,
                    "entered": r.entered,
                    "exited": r.exited,
                    "members": r.members,
                    "skipped": r.skipped,
                    "seconds": round(r.seconds, 3),
                }
            return await refresh_with_progress(db, ids=segment_id or None)
        finally:
            await db.dispose()

    try:
        result = _run(go())
    except DomainError as exc:
        _errors(exc)
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(result))
    else:
        err.print(
            f"refreshed {result['segments']} segment(s): {result['entered']} entered, "
            f"{result['exited']} exited in {result['seconds']} s"
            + (f"; skipped ({result['skipped']})" if result.get("skipped") else "")
        )
    if result.get("failed"):
        for sid, why in result["failed"].items():
            err.print(f"[red]segment {sid} failed:[/red] {why}")
        raise typer.Exit(1)


@segments_app.command("preview")
def segments_preview(
    file: Annotated[
        Path, typer.Argument(help='A definition as JSON (or {"definition": ...}); - for stdin.')
    ],
    sample: Annotated[int, typer.Option(help="How many member ids to show.")] = 10,
    explain: Annotated[bool, typer.Option(help="Also show the query plan and its cost.")] = False,
    budget_ms: Annotated[int, typer.Option(help="Give up after this many ms.")] = 10_000,
) -> None:
    """Validate a definition and count who matches it now, without saving anything."""
    from domain.segments.definition import validate
    from domain.segments.preview import preview

    raw = sys.stdin.read() if str(file) == "-" else file.read_text()
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        err.print(f"[red]not JSON:[/red] {exc}")
        raise typer.Exit(1) from exc
    if isinstance(doc, dict) and set(doc) == {"definition"}:
        doc = doc["definition"]

    async def go() -> Any:
        db = _db()
        try:
            async with db.read_only() as session:
                resolved = await validate(session, doc)
                return await preview(
                    session,
                    resolved,
                    sample=max(0, min(sample, 100)),
                    budget_ms=budget_ms,
                    explain=explain,
                )
        finally:
            await db.dispose()

    try:
        result = _run(go())
    except DomainError as exc:
        _errors(exc)
        raise typer.Exit(1) from exc
    out.print(f"{result.count} matching shoppers ({result.elapsed_ms:.1f} ms)")
    if result.sample_ids:
        out.print("sample: " + ", ".join(str(i) for i in result.sample_ids))
    if explain:
        if result.cost is not None:
            out.print(f"cost: {result.cost}")
        if result.plan:
            out.print(result.plan)


@segments_app.command("import")
def segments_import(
    segment: Annotated[str, typer.Argument(help="The static segment: its id or key.")],
    file: Annotated[
        Path, typer.Argument(help="CSV with a header naming external_id, user_id or email.")
    ],
    mode: Annotated[
        str, typer.Option(help="add (default) or replace (the file becomes the membership).")
    ] = "add",
) -> None:
    """Import a static segment's members from CSV (all or nothing: a bad row changes nothing)."""
    from domain.keys import build_keys
    from domain.segments import service

    text = file.read_text(encoding="utf-8-sig")
    settings = get_settings()

    async def go() -> Any:
        db = _db()
        try:
            async with db.unit_of_work() as session:
                seg = (
                    await service.get_segment(session, int(segment))
                    if segment.isdigit()
                    else await service.get_by_key(session, segment)
                )
                if seg is None or seg.id is None:
                    raise DomainError.one("NOT_FOUND", f"no segment {segment!r}", "segment")
                with _progress() as progress:
                    progress.add_task(f"import into {seg.name}", total=None)
                    return await service.import_members_csv(
                        session, _actor(), seg.id, text, mode=mode, keys=build_keys(settings)
                    )
        finally:
            await db.dispose()

    try:
        result = _run(go())
    except DomainError as exc:
        _errors(exc)
        raise typer.Exit(1) from exc
    err.print(
        f"{result.rows} rows: {result.added} added, {result.removed} removed, "
        f"{result.unchanged} already members; {result.members} members now"
    )
