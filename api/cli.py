"""The ``precis`` command line. Every command has ``--help``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import api.recommend.cli  # noqa: F401  (adds train, models and promote to recommend_app)
from api.privacy.cli import privacy_app
from api.segments_cli import segments_app
from domain.audit import service as audit
from domain.audit.service import Actor
from domain.settings import ConfigurationError, get_settings
from recommend.cli import recommend_app

T = TypeVar("T")

app = typer.Typer(
    help="Precis: headless GraphQL API for precision marketing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
clients_app = typer.Typer(help="OAuth clients.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo storefront data.", no_args_is_help=True)


def _cli_actor() -> Actor:
    """Audit identity of whoever runs the CLI on the server (the OS user)."""
    import getpass

    try:
        who = getpass.getuser()
    except Exception:  # no user name in some containers
        who = "unknown"
    return Actor(client_id="precis-cli", subject=f"os:{who}")


import_app = typer.Typer(
    help="Import users or products from CSV or JSON Lines.", no_args_is_help=True
)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
events_app = typer.Typer(help="Behaviour events.", no_args_is_help=True)
profiles_app = typer.Typer(help="Shopper profiles.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(demo_app, name="demo")
app.add_typer(import_app, name="import")
app.add_typer(schema_app, name="schema")
app.add_typer(keys_app, name="keys")
app.add_typer(events_app, name="events")
app.add_typer(profiles_app, name="profiles")
app.add_typer(privacy_app, name="privacy")
app.add_typer(recommend_app, name="recommend")
app.add_typer(segments_app, name="segments")

err = Console(stderr=True)
out = Console()

DEV_CLIENT_ID = "precis-cli"


def _run(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(fn())
    except ConfigurationError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _db() -> Any:
    from domain.db import Database

    return Database(get_settings(), pool=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the API (GraphQL at /graphql, GraphiQL in dev)."""
    import uvicorn

    from domain.keys import build_keys

    settings = get_settings()
    try:
        build_keys(settings)  # fail fast with a clear message before forking workers
    except ConfigurationError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
) -> None:
    """Run an ARQ worker (needs PRECIS_REDIS_URL / REDIS_URL)."""
    from arq.worker import run_worker

    from jobs.worker import WorkerSettings

    if not get_settings().redis_url:
        err.print("[red]no Redis configured:[/red] set REDIS_URL; without it jobs run in-process")
        raise typer.Exit(2)
    run_worker(WorkerSettings, burst=burst)  # type: ignore[arg-type]


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (Alembic) up to REVISION."""
    from domain.migrations import upgrade

    upgrade(get_settings().database_url, revision)
    err.print(f"database migrated to {revision}")
    if revision == "head":
        from api.segments_cli import seed_builtins

        async def seed() -> dict[str, list[str]]:
            db = _db()
            try:
                return await seed_builtins(db)
            finally:
                await db.dispose()

        seeded = _run(seed)
        if seeded["created"] or seeded["updated"]:
            err.print(
                f"built-in segments: {len(seeded['created'])} created, "
                f"{len(seeded['updated'])} updated"
            )


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="A name for the client.")],
    scopes: Annotated[str, typer.Option(help='Space-separated scopes, e.g. "users:read".')],
    token_exchange: Annotated[
        bool,
        typer.Option(
            help="Also allow token exchange (RFC 8693): mint shopper tokens; needs the "
            "shoppers:delegate scope too."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Last line is JSON.")] = False,
) -> None:
    """Create a client; prints its id and secret once (the secret is stored hashed)."""
    from domain.auth import service

    grants = ["client_credentials"]
    if token_exchange:
        grants.append("urn:ietf:params:oauth:grant-type:token-exchange")

    async def go() -> service.NewClient:
        db = _db()
        try:
            async with db.unit_of_work() as session:
                made = await service.create_client(
                    session, name=name, scopes=scopes, grant_types=grants
                )
                await audit.record(
                    session,
                    _cli_actor(),
                    "client.create",
                    "OAuthClient",
                    made.client.id,
                    details={"scopes": made.client.scopes, "grant_types": grants},
                )
                return made
        finally:
            await db.dispose()

    try:
        created = _run(go)
    except service.ClientError as exc:
        err.print(f"[red]{exc.code}:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps({"client_id": created.client.id, "client_secret": created.secret}))
    else:
        out.print(f"client_id:     {created.client.id}")
        out.print(f"client_secret: {created.secret}")
        out.print(f"scopes:        {created.client.scopes}")
        out.print(f"grant types:   {created.client.grant_types}")
        err.print("Store the secret now: it is not shown again.")
    if token_exchange and "shoppers:delegate" not in created.client.scopes.split():
        err.print("[yellow]note:[/yellow] token exchange also needs the shoppers:delegate scope")


@clients_app.command("list")
def clients_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List clients (never their secrets)."""
    from domain.auth import service

    async def go() -> list[Any]:
        db = _db()
        try:
            async with db.read_only() as session:
                return await service.list_clients(session)
        finally:
            await db.dispose()

    rows = _run(go)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "client_id": r.id,
                        "name": r.name,
                        "scopes": r.scopes.split(),
                        "grant_types": r.grant_types.split(),
                        "disabled": r.disabled_at is not None,
                    }
                    for r in rows
                ]
            )
        )
        return
    table = Table("client_id", "name", "scopes", "grant types", "status")
    for r in rows:
        grants = r.grant_types.replace("urn:ietf:params:oauth:grant-type:", "")
        table.add_row(r.id, r.name, r.scopes, grants, "disabled" if r.disabled_at else "active")
    out.print(table)


@clients_app.command("disable")
def clients_disable(
    client_id: Annotated[str, typer.Argument(help="The client to disable.")],
) -> None:
    """Disable a client: its tokens stop working at once and it can get no new ones."""
    from domain.auth import service

    async def go() -> None:
        db = _db()
        try:
            async with db.unit_of_work() as session:
                await service.disable_client(session, client_id)
                await audit.record(
                    session, _cli_actor(), "client.disable", "OAuthClient", client_id
                )
        finally:
            await db.dispose()

    try:
        _run(go)
    except service.ClientError as exc:
        err.print(f"[red]{exc.code}:[/red] {exc}")
        raise typer.Exit(1) from exc
    out.print(f"disabled {client_id}")


@app.command()
def token(
    scopes: Annotated[
        str | None, typer.Option(help="Space-separated scopes; default: every client scope.")
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds (max 86400).")] = 8 * 3600,
    header: Annotated[bool, typer.Option(help="Print as an Authorization header.")] = False,
) -> None:
    """Mint a short-lived access token for development (refused when PRECIS_ENV=prod)."""
    from domain.auth.tokens import mint_dev_token

    settings = get_settings()
    if settings.is_prod:
        err.print("[red]refused:[/red] dev tokens are not minted in prod; use /oauth/token")
        raise typer.Exit(2)
    if not 60 <= ttl <= 86400:
        err.print("[red]--ttl must be between 60 and 86400 seconds[/red]")
        raise typer.Exit(2)

    async def go() -> str:
        db = _db()
        try:
            return await mint_dev_token(db, settings, scopes=scopes, ttl=ttl)
        finally:
            await db.dispose()

    try:
        value = _run(go)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if header:
        err.print(f"Authorization: Bearer {value}", soft_wrap=True, highlight=False)
        err.print("GraphiQL at http://127.0.0.1:8000/graphql: paste the next line into Headers")
        print(json.dumps({"Authorization": f"Bearer {value}"}))
    else:
        print(value)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key (dev key store); older keys stay published in the JWKS."""
    from domain.keys import rotate_dev_signing_key

    settings = get_settings()
    if settings.is_prod:
        err.print("[red]in prod, put the new key first in PRECIS_SIGNING_KEYS[/red]")
        raise typer.Exit(2)
    out.print(f"new signing key {rotate_dev_signing_key(settings)}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not sys.stderr.isatty() and False,
    )


@demo_app.command("load")
def demo_load(
    users: Annotated[int, typer.Option(help="How many shoppers.")] = 2000,
    products: Annotated[int, typer.Option(help="How many products.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    if_empty: Annotated[bool, typer.Option(help="Skip if any user exists already.")] = False,
    activity: Annotated[
        bool,
        typer.Option(help="Also consents, events and orders, then compute profiles."),
    ] = True,
    model: Annotated[
        bool,
        typer.Option(
            help="Also train a recommendation model on the activity and make it the active "
            "version (about 10-20 s), so recommendations are personal from the start."
        ),
    ] = True,
) -> None:
    """Load a deterministic demo storefront (shoppers, categories, products) and its activity."""
    from domain.demo import is_empty, load_demo
    from domain.demo_activity import load_activity
    from domain.keys import build_keys

    settings = get_settings()

    async def go() -> dict[str, int] | None:
        db = _db()
        keys = build_keys(settings)
        try:
            async with db.read_only() as session:
                if if_empty and not await is_empty(session):
                    return None
            with _progress() as progress:
                bars: dict[str, Any] = {}

                def report(kind: str, done: int, total: int) -> None:
                    if kind not in bars:
                        bars[kind] = progress.add_task(kind, total=total)
                    progress.update(bars[kind], completed=done)

                loaded = await load_demo(
                    db, keys, users=users, products=products, seed=seed, progress=report
                )
                if activity:
                    loaded |= await load_activity(db, settings, seed=seed, progress=report)
            # Built-in segments, then every dynamic segment refreshed (with its own progress).
            from api.segments_cli import refresh_with_progress, seed_builtins

            await seed_builtins(db)
            loaded["segments refreshed"] = (await refresh_with_progress(db))["segments"]
            if activity and model and await _demo_model(db):
                loaded["recommendation model trained and promoted"] = 1
            return loaded
        finally:
            await db.dispose()

    result = _run(go)
    if result is None:
        err.print("demo data already present; skipped")
    else:
        err.print("loaded " + ", ".join(f"{v} {k}" for k, v in result.items()))


async def _demo_model(db: Any) -> bool:
    """Train the configured hybrid on the demo activity and promote it (as the system); a data
    set too small to train on (a tiny demo) is reported, not an error."""
    from domain.audit.service import SYSTEM
    from domain.recommend import service

    settings = get_settings()
    with _progress() as bar:
        task = bar.add_task("recommendation model", total=None)

        def tell(step: str, done: int, total: int) -> None:
            bar.update(task, description=f"model: {step}", completed=done, total=total or None)

        try:
            row = await service.train(db, settings, progress=tell)
        except service.TrainingError as exc:
            err.print(f"no recommendation model: {exc}")
            return False
    async with db.unit_of_work() as session:
        await service.promote(session, SYSTEM, settings, row.id or 0)
    return True


def _import(kind: str, path: Path, fmt: str | None, wait: bool) -> None:
    from domain.imports.service import ImportError_, create_import, import_job_id, run_import
    from domain.tasks.models import TaskRun
    from jobs.queue import ArqQueue

    settings = get_settings()

    async def go() -> dict[str, Any] | None:
        db = _db()
        try:
            async with db.unit_of_work() as session:
                task = await create_import(session, kind=kind, path=path, fmt=fmt)
            task_id = task.id
            if task.status == "done":
                err.print(f"{path} was imported before (task {task_id}); nothing to do")
                return dict(task.result)
            with _progress() as progress:
                bar = progress.add_task(f"import {kind}", total=task.total)

                def report(done: int, total: int | None) -> None:
                    progress.update(bar, completed=done, total=total)

                if not settings.redis_url:
                    return await run_import(db, task_id, progress=report)
                queue = await ArqQueue.connect(settings)
                try:
                    fresh = await queue.enqueue("import_file", task_id, job_id=import_job_id(task))
                finally:
                    await queue.close()
                err.print(f"{'queued' if fresh else 'already queued:'} task {task_id}")
                if not wait:
                    return None
                while True:
                    await asyncio.sleep(0.5)
                    async with db.read_only() as session:
                        row = await session.get(TaskRun, task_id)
                    assert row is not None
                    report(row.done, row.total)
                    if row.status in ("done", "failed"):
                        if row.status == "failed":
                            raise ImportError_(row.error or "import failed")
                        return row.result
        finally:
            await db.dispose()

    try:
        summary = _run(go)
    except ImportError_ as exc:
        err.print(f"[red]import failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if summary is None:
        return
    if "orders" in summary:
        err.print(
            f"{summary['orders']} orders in {summary['rows']} rows: {summary['accepted']} stored, "
            f"{summary['duplicates']} unchanged, {summary['rejected']} rejected"
        )
    elif "duplicates" in summary:
        err.print(
            f"{summary['accepted']} accepted, {summary['duplicates']} duplicates, "
            f"{summary['rejected']} rejected of {summary['rows']} rows"
        )
    else:
        err.print(
            f"{summary['accepted']} accepted, {summary['rejected']} rejected of "
            f"{summary['rows']} rows"
        )
    for item in summary.get("errors", [])[:20]:
        err.print(f"  line {item['line']}: {item['message']}")
    if summary["rejected"] > 20:
        err.print(
            f"  ... {summary['rejected'] - 20} more rejected rows (see task {summary['task_id']})"
        )
    print(json.dumps(summary))


FormatOpt = Annotated[
    str | None, typer.Option("--format", help="csv or jsonl (default: from the file name).")
]
WaitOpt = Annotated[bool, typer.Option(help="With Redis: wait for the worker and show progress.")]


@import_app.command("users")
def import_users(
    file: Annotated[Path, typer.Argument(help="CSV with a header, or JSON Lines.")],
    fmt: FormatOpt = None,
    wait: WaitOpt = True,
) -> None:
    """Import users, validated row by row, upserted on externalId."""
    _import("users", file, fmt, wait)


@import_app.command("products")
def import_products(
    file: Annotated[Path, typer.Argument(help="CSV with a header, or JSON Lines.")],
    fmt: FormatOpt = None,
    wait: WaitOpt = True,
) -> None:
    """Import products, validated row by row, upserted on externalId."""
    _import("products", file, fmt, wait)


@import_app.command("orders")
def import_orders(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (one row per order line, rows of one order adjacent), JSON Lines (one "
            "order per line with a lines array), or the UCI Online Retail CSV."
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv, jsonl or online-retail (default: csv or jsonl from the file name).",
        ),
    ] = None,
    wait: WaitOpt = True,
) -> None:
    """Import orders through recordOrders rules: valid orders stored, each with its purchase
    event; a re-imported order is unchanged; bad orders reported with their line numbers."""
    _import("orders", file, fmt, wait)


@import_app.command("events")
def import_events(
    file: Annotated[Path, typer.Argument(help="CSV with a header, or JSON Lines.")],
    fmt: FormatOpt = None,
    wait: WaitOpt = True,
) -> None:
    """Import behaviour events through trackEvents rules, 500 per batch; a repeated
    client_event_id is counted as a duplicate and stored once."""
    _import("events", file, fmt, wait)


@events_app.command("purge")
def events_purge(
    older_than_days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Purge events older than this many days (default: the retention setting)."
        ),
    ] = None,
) -> None:
    """Roll raw events past retention up into daily aggregates and delete them, one day per
    transaction (safe to interrupt and to run again)."""
    from domain.events.retention import purge

    settings = get_settings()

    async def go() -> Any:
        db = _db()
        try:
            with _progress() as progress:
                bar = progress.add_task("purge events", total=None)

                def report(done: int, total: int) -> None:
                    progress.update(bar, completed=done, total=total)

                return await purge(
                    db,
                    settings,
                    older_than_days=older_than_days,
                    progress=report,
                    actor=_cli_actor(),
                )
        finally:
            await db.dispose()

    result = _run(go)
    err.print(
        f"purged {result.events} events on {len(result.days)} days older than "
        f"{result.cutoff:%Y-%m-%d %H:%M} UTC into daily aggregates"
    )


@schema_app.command("export")
def schema_export() -> None:
    """Print the GraphQL SDL (schema.graphql must equal it)."""
    from api.schema import build_schema
    from domain.settings import Settings

    print(build_schema(Settings(env="dev")).as_str())


def main() -> None:
    app()


if __name__ == "__main__":
    main()


@profiles_app.command("recompute")
def profiles_recompute(
    customer: Annotated[
        list[str] | None,
        typer.Option(
            "--customer", help="External id of a customer to recompute (repeatable; default: all)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Recompute shopper profiles: RFM, lifecycle, CLV (with the model fit), interests, active
    hours. Each chunk of customers commits on its own (safe to interrupt and to run again)."""
    from sqlalchemy import select
    from sqlmodel import col

    from domain.profiles.service import recompute
    from domain.users.models import Customer

    settings = get_settings()

    async def go() -> Any:
        db = _db()
        try:
            ids = None
            if customer:
                async with db.read_only() as session:
                    found = dict(
                        (
                            await session.execute(
                                select(col(Customer.external_id), col(Customer.id)).where(
                                    col(Customer.external_id).in_(customer)
                                )
                            )
                        ).all()
                    )
                missing = sorted(set(customer) - set(found))
                if missing:
                    err.print(f"[red]unknown customer:[/red] {', '.join(missing)}")
                    raise typer.Exit(1)
                ids = list(found.values())
            with _progress() as progress:
                bar = progress.add_task("recompute profiles", total=None)

                def report(done: int, total: int) -> None:
                    progress.update(bar, completed=done, total=total)

                result = await recompute(
                    db, settings, customer_ids=ids, progress=report, actor=_cli_actor()
                )
            # Segments on profile values follow the new profiles (as after the scheduled job).
            from api.segments_cli import refresh_with_progress

            await refresh_with_progress(db, profile_only=True)
            return result
        finally:
            await db.dispose()

    summary = _run(go).summary()
    if as_json:
        print(json.dumps(summary))
        return
    clv = summary["clv"]
    err.print(
        f"recomputed {summary['customers']} profiles ({summary['buyers']} buyers); stages "
        f"{summary['stages']}; CLV model {clv.get('model')}"
        + (f" skipped: {clv['skipped']}" if clv.get("skipped") else "")
    )
