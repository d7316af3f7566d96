"""Imports of users, products, orders and events from CSV or JSON Lines, run as idempotent
background tasks.

A task's id comes from the file's bytes, so importing the same file twice is one task. Rows are
validated one by one and upserted in batches through the users and catalog services, each batch in its
own unit of work. The services are all-or-nothing per batch, so a rejected batch is sent again without
its invalid rows: every valid row lands and every invalid row is reported with its line number.

Formats: a CSV file has a header row naming its columns (``external_id`` or ``externalId``); an empty
cell means "not given". A JSON Lines file has one object per line with the same keys; a key that is
absent means "not given" and ``null`` clears the field.

Orders and events go through ``record_orders`` and ``track_events``, which store the valid items of
a batch and report the others by index (no resending needed). An orders CSV has one row per order
line; adjacent rows with the same ``external_id`` are one order, whose order-level columns come from
its first row (later rows may leave them empty). An orders JSON Lines file has one order per line
with a ``lines`` array. ``--format online-retail`` reads the UCI Online Retail layout (see
``domain.imports.online_retail``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import Actor
from domain.columns import utcnow
from domain.db import Database
from domain.errors import DomainError, FieldError
from domain.orders.service import LINE_FIELDS, ORDER_FIELDS
from domain.tasks.models import TaskRun

KINDS = ("users", "products", "orders", "events")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
BATCH = 100
ORDER_BATCH = 500  # orders per unit of work (record_orders is called per 100)
EVENT_BATCH = 500  # track_events takes at most 500 events per call
MAX_ERRORS = 1000
MAX_LINE_BYTES = 1_000_000

USER_COLUMNS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "timezone",
    "country",
    "region",
    "gender",
    "birth_date",
    "occupation",
    "tags",
    "attributes",
)
PRODUCT_COLUMNS = (
    "external_id",
    "title",
    "description",
    "category_path",
    "brand",
    "tags",
    "price",
    "currency",
    "stock",
    "active",
    "attributes",
)
# The orders service's own keys: an order's columns, then one line's (CSV: one row per line).
ORDER_LINE_COLUMNS = LINE_FIELDS
ORDER_COLUMNS = (
    *ORDER_FIELDS,
    *ORDER_LINE_COLUMNS,
    "lines",  # JSON Lines only: the order's lines as an array of objects
)
EVENT_COLUMNS = (
    "client_event_id",
    "type",
    "user_external_id",
    "anonymous_id",
    "product_external_id",
    "properties",
    "value",
    "currency",
    "channel",
    "rating",
    "query",
    "occurred_at",
)
COLUMNS = {
    "users": USER_COLUMNS,
    "products": PRODUCT_COLUMNS,
    "orders": ORDER_COLUMNS,
    "events": EVENT_COLUMNS,
}
KEY_COLUMN = {"events": "client_event_id"}  # the others: external_id
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}


class ImportError_(Exception):
    """The import cannot start or the whole file cannot be read (single rows are rejected instead)."""


class RowError(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def snake(name: str) -> str:
    """``externalId`` and ``external_id`` name the same column."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip()).lower()


def import_job_id(task: TaskRun) -> str:
    """The queue job id for a task: a new one per attempt, since ARQ remembers finished job ids."""
    attempt = int(task.params.get("attempt", 1))
    return task.id if attempt == 1 else f"{task.id}-attempt{attempt}"


def _format(path: Path, fmt: str | None, kind: str = "users") -> str:
    if fmt is not None:
        fmt = fmt.lower()
        if fmt == "ndjson":
            fmt = "jsonl"
        if fmt == "online-retail":
            if kind != "orders":
                raise ImportError_("--format online-retail is for orders only")
            return fmt
        if fmt not in ("csv", "jsonl"):
            raise ImportError_(f"unknown format {fmt!r}: use csv or jsonl")
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ImportError_(
            f"cannot tell the format of {path.name!r} from its extension "
            "(.csv, .jsonl or .ndjson); pass --format csv or --format jsonl"
        )
    return found


def _scan(path: Path) -> tuple[str, int]:
    """The file's sha256 and its number of non-blank lines, in one streaming pass."""
    digest = hashlib.sha256()
    lines = 0
    pending = False  # bytes seen since the last newline that are not whitespace
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            parts = chunk.split(b"\n")
            for part in parts[:-1]:
                if pending or part.strip():
                    lines += 1
                pending = False
            if parts[-1].strip():
                pending = True
    if pending:
        lines += 1
    return digest.hexdigest(), lines


def _open_checked(path: Path) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise ImportError_(f"file not found: {path}")
    if not path.is_file():
        raise ImportError_(f"not a file: {path}")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc
    return path.resolve()


async def create_import(
    session: AsyncSession, *, kind: str, path: Path, fmt: str | None
) -> TaskRun:
    """Record an import task for a file; the same file (by content) is always the same task."""
    if kind not in KINDS:
        raise ImportError_(f"unknown import kind {kind!r}: use {', '.join(KINDS)}")
    path = _open_checked(Path(path))
    fmt = _format(path, fmt, kind)
    try:
        digest, lines = _scan(path)
    except OSError as exc:
        raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc
    total = max(lines - 1, 0) if fmt in ("csv", "online-retail") else lines
    task_id = f"import-{kind}-{digest[:16]}"
    params = {"kind": kind, "path": str(path), "format": fmt, "sha256": digest}

    task = await session.get(TaskRun, task_id)
    if task is None:
        task = TaskRun(
            id=task_id, kind=f"import_{kind}", status="queued", params=params, total=total
        )
        session.add(task)
    elif task.status == "failed":
        attempt = int(task.params.get("attempt", 1)) + 1
        task.params = {**params, "attempt": attempt}
        task.status = "queued"
        task.total = total
        task.done = 0
        task.result = {}
        task.error = None
        task.started_at = task.finished_at = None
    elif task.status == "queued" and task.params.get("path") != str(path):
        # Same bytes under another name: read from the path that exists now.
        task.params = {**task.params, "path": str(path), "format": fmt}
    await session.flush()
    return task


# ---- reading rows -------------------------------------------------------------------------------


@dataclass
class Row:
    line: int
    item: dict[str, Any] | None = None
    errors: list[tuple[str, str | None]] = field(default_factory=list)


def _split(value: str, sep: str) -> list[str]:
    return [part.strip() for part in value.split(sep) if part.strip()]


def _string(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if name == "external_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RowError(f"{name} must be a string", name)


def _list(name: str, value: Any, sep: str) -> list[str]:
    if isinstance(value, str):
        return _split(value, sep)
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return [x.strip() for x in value if x.strip()]
    raise RowError(f"{name} must be a list of strings or a {sep.strip()!r}-separated string", name)


def _date(name: str, value: Any) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RowError(f"{name} must be a date like 1990-04-25, got {value!r}", name)


def _object(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RowError(f"{name} is not valid JSON: {exc}", name) from exc
    if not isinstance(value, dict):
        raise RowError(f"{name} must be a JSON object", name)
    return value


def _integer(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    raise RowError(f"{name} must be a whole number, got {value!r}", name)


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise RowError(f"{name} must be true or false, got {value!r}", name)


def _price(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RowError(f"{name} must be a decimal amount like 19.99", name)


def _lines(name: str, value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = _object_or_list(name, value)
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise RowError(f"{name} must be an array of line objects", name)
    lines = []
    for raw in value:
        line: dict[str, Any] = {}
        for key, cell in raw.items():
            sub = snake(key)
            if sub not in ORDER_LINE_COLUMNS:
                raise RowError(f"unknown line field {key!r}", name)
            line[sub] = cell if cell is None else CONVERT.get(sub, _string)(sub, cell)
        lines.append(line)
    return lines


def _object_or_list(name: str, value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RowError(f"{name} is not valid JSON: {exc}", name) from exc


CONVERT: dict[str, Callable[[str, Any], Any]] = {
    "birth_date": _date,
    "attributes": _object,
    "tags": lambda n, v: _list(n, v, "|"),
    "category_path": lambda n, v: _list(n, v, " > "),
    "stock": _integer,
    "active": _boolean,
    "price": _price,
    # orders and events
    "quantity": _integer,
    "unit_price": _price,
    "subtotal": _price,
    "discount_total": _price,
    "shipping_total": _price,
    "tax_total": _price,
    "total": _price,
    "refunded_total": _price,
    "value": _price,
    "user_id": _integer,
    "campaign_id": _integer,
    "rating": _integer,
    "properties": _object,
    "lines": _lines,
}


def _item(kind: str, raw: Mapping[str, Any], row: Row) -> None:
    """Turn raw values (CSV text or JSON values) into service input, collecting errors on ``row``."""
    allowed = COLUMNS[kind]
    item: dict[str, Any] = {}
    for key, value in raw.items():
        name = snake(key)
        if name not in allowed:
            row.errors.append((f"unknown field {key!r}", key))
            continue
        if value is None:
            item[name] = None
            continue
        try:
            item[name] = CONVERT.get(name, _string)(name, value)
        except RowError as exc:
            row.errors.append((str(exc), exc.field))
    if not row.errors:
        row.item = item


def _csv_rows(kind: str, fh: io.TextIOBase) -> Iterator[Row]:
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportError_("the file is empty: a CSV import needs a header row") from None
    except csv.Error as exc:
        raise ImportError_(f"cannot read the CSV header: {exc}") from exc
    names = [snake(h).lstrip("\ufeff") for h in header]
    allowed = COLUMNS[kind]
    unknown = [h for h, n in zip(header, names, strict=True) if n not in allowed]
    if unknown:
        raise ImportError_(
            f"unknown column(s) {', '.join(map(repr, unknown))} in the header; "
            f"{kind} columns are: {', '.join(allowed)}"
        )
    if len(set(names)) != len(names):
        raise ImportError_("the header names a column twice")
    key = KEY_COLUMN.get(kind, "external_id")
    if key not in names:
        raise ImportError_(f"the header has no {key} column")
    if kind == "orders" and "lines" in names:
        raise ImportError_("an orders CSV has one row per line: use the line columns, not lines")
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num < start:
                raise ImportError_(f"line {start}: cannot read the CSV: {exc}") from exc
            yield Row(start, errors=[(f"malformed CSV: {exc}", None)])
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        row = Row(start)
        if len(cells) != len(names):
            row.errors.append((f"expected {len(names)} columns, found {len(cells)}", None))
        elif any(_undecodable(c) for c in cells):
            row.errors.append(("the line is not valid UTF-8", None))
        else:
            _item(kind, {n: c for n, c in zip(names, cells, strict=True) if c.strip()}, row)
        yield row


def _undecodable(text: str) -> bool:
    # Bytes that are not UTF-8 arrive as lone surrogates (errors="surrogateescape").
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _jsonl_rows(kind: str, fh: io.BufferedReader) -> Iterator[Row]:
    number = 0
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := fh.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield Row(number, errors=[(f"line is longer than {MAX_LINE_BYTES} bytes", None)])
            continue
        if not line.strip():
            continue
        row = Row(number)
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            row.errors.append((f"invalid JSON: {exc}", None))
        else:
            if isinstance(value, dict):
                _item(kind, value, row)
            else:
                row.errors.append(("each line must be a JSON object", None))
        yield row


# ---- running ------------------------------------------------------------------------------------


Upsert = Callable[[AsyncSession, Sequence[Mapping[str, Any]]], Awaitable[Any]]


def _upsert_for(kind: str, db: Database, actor: Actor) -> Upsert:
    """The service upsert for users or products, each written row audited as the API does."""
    from domain.audit import service as audit

    if kind == "users":
        from domain.keys import build_keys
        from domain.users.service import upsert_users

        keys = build_keys(db.settings)

        async def users(session: AsyncSession, items: Sequence[Mapping[str, Any]]) -> Any:
            rows = await upsert_users(session, keys, items)
            await audit.record_many(session, audit_upserts(actor, "users", rows, items))
            return rows

        return users
    from domain.catalog.service import upsert_products

    async def products(session: AsyncSession, items: Sequence[Mapping[str, Any]]) -> Any:
        rows = await upsert_products(session, items)
        await audit.record_many(session, audit_upserts(actor, "products", rows, items))
        return rows

    return products


def audit_upserts(
    actor: Actor, kind: str, rows: Sequence[Any], items: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``user.upsert`` / ``product.upsert`` entries naming the fields written (never values)."""
    from domain.audit import service as audit

    action, resource = ("user.upsert", "User") if kind == "users" else ("product.upsert", "Product")
    return [
        audit.entry(actor, action, resource, row.id, fields=[k for k in item if k != "external_id"])
        for row, item in zip(rows, items, strict=True)
    ]


@dataclass
class _Run:
    task_id: str
    kind: str
    db: Database
    upsert: Upsert | None = None
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Orders and events: counts beyond accepted/rejected (duplicates, updated, unlinked...).
    extra: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # per-run objects, not reported

    def add(self, name: str, n: int | float = 1) -> None:
        self.extra[name] = self.extra.get(name, 0) + n

    def reject_lines(self, problems: Sequence[tuple[int, str, str | None]]) -> None:
        """One rejected item (an order) whose problems sit on several lines."""
        self.rejected += 1
        for line, message, name in problems:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append({"line": line, "message": message, "field": name})

    def reject(self, line: int, problems: Sequence[tuple[str, str | None]]) -> None:
        self.rejected += 1
        for message, name in problems or [("rejected", None)]:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append({"line": line, "message": message, "field": name})

    async def flush(self, batch: list[Row]) -> None:
        pending = batch
        assert self.upsert is not None
        while pending:
            try:
                async with self.db.unit_of_work() as session:
                    await self.upsert(session, [r.item or {} for r in pending])
            except DomainError as exc:
                by_index: dict[int, list[FieldError]] = defaultdict(list)
                for error in exc.errors:
                    if error.index is not None and 0 <= error.index < len(pending):
                        by_index[error.index].append(error)
                if not by_index:  # a batch-level refusal: no row can be told apart
                    problems = [(e.message, _field(e)) for e in exc.errors]
                    for r in pending:
                        self.reject(r.line, problems)
                    return
                for index in sorted(by_index):
                    self.reject(
                        pending[index].line, [(e.message, _field(e)) for e in by_index[index]]
                    )
                pending = [r for i, r in enumerate(pending) if i not in by_index]
                continue
            except (IntegrityError, DataError) as exc:
                # The database refused something the service let through: find the row by halving.
                if len(pending) == 1:
                    reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
                    self.reject(
                        pending[0].line, [(f"the database refused the row: {reason}", None)]
                    )
                    return
                middle = len(pending) // 2
                await self.flush(pending[:middle])
                await self.flush(pending[middle:])
                return
            self.accepted += len(pending)
            return

    def result(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "kind": self.kind,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            **self.extra,
            "errors": sorted(self.errors, key=lambda e: int(e["line"])),
        }


def _field(error: FieldError) -> str | None:
    return snake(error.field[-1]) if error.field else None


async def _set(db: Database, task_id: str, **values: Any) -> None:
    async with db.unit_of_work() as session:
        await session.execute(update(TaskRun).where(TaskRun.id == task_id).values(**values))  # type: ignore[arg-type]


async def run_import(
    db: Database, task_id: str, progress: Callable[[int, int | None], None] | None = None
) -> dict[str, Any]:
    """Run (or re-run after a crash) an import task; a finished task returns its stored result."""
    async with db.unit_of_work() as session:
        task = await session.get(TaskRun, task_id)
        if task is None:
            raise ImportError_(f"no import task {task_id!r}")
        if task.status == "done":
            return dict(task.result)
        task.status = "running"
        task.started_at = utcnow()
        task.finished_at = None
        task.done = 0
        task.error = None
        params = dict(task.params)
        total = task.total
    kind, path, fmt = params["kind"], Path(params["path"]), params["format"]
    run = _Run(task_id, kind, db)
    try:
        if kind in ("orders", "events"):
            await _read_stream(run, path, fmt, params.get("sha256"), total, progress)
        else:
            run.upsert = _upsert_for(kind, db, import_actor(task_id))
            await _read_all(run, path, fmt, params.get("sha256"), total, progress)
    except ImportError_ as exc:
        await _set(db, task_id, status="failed", error=str(exc), finished_at=utcnow())
        raise
    except Exception as exc:
        await _set(
            db, task_id, status="failed", error=f"unexpected error: {exc!r}", finished_at=utcnow()
        )
        raise
    result = run.result()
    await _set(
        db,
        task_id,
        status="done",
        result=result,
        done=run.rows,
        total=run.rows,
        finished_at=utcnow(),
    )
    if progress is not None:
        progress(run.rows, run.rows)
    return result


async def _read_all(
    run: _Run,
    path: Path,
    fmt: str,
    sha256: str | None,
    total: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    try:
        if sha256 is not None and _scan(path)[0] != sha256:
            raise ImportError_(f"{path} changed since the import was created; import it again")
        if fmt == "csv":
            fh: Any = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
            rows = _csv_rows(run.kind, fh)
        else:
            fh = path.open("rb")
            rows = _jsonl_rows(run.kind, fh)
    except OSError as exc:
        raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc
    batch: list[Row] = []
    in_batch: set[str] = set()

    async def flush() -> None:
        await run.flush(batch)
        batch.clear()
        in_batch.clear()
        await _set(run.db, run.task_id, done=run.rows)
        if progress is not None:
            progress(run.rows, total)

    with fh:
        try:
            for row in rows:
                run.rows += 1
                if row.item is None:
                    run.reject(row.line, row.errors)
                    continue
                ext = row.item.get("external_id")
                if isinstance(ext, str) and ext in in_batch:
                    # A later row for the same id wins, as if the rows were applied one by one.
                    await flush()
                batch.append(row)
                if isinstance(ext, str):
                    in_batch.add(ext)
                if len(batch) >= BATCH:
                    await flush()
        except OSError as exc:
            raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc
        if batch:
            await flush()


# ---- orders and events --------------------------------------------------------------------------


def import_actor(task_id: str) -> Actor:
    """Who an import acts as in the audit log."""
    return Actor(client_id="precis-import", subject=task_id[:128])


def _open_rows(kind: str, path: Path, fmt: str) -> tuple[Any, Iterator[Row]]:
    try:
        if fmt == "csv":
            fh: Any = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
            return fh, _csv_rows(kind, fh)
        fh = path.open("rb")
        return fh, _jsonl_rows(kind, fh)
    except OSError as exc:
        raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc


async def _read_stream(
    run: _Run,
    path: Path,
    fmt: str,
    sha256: str | None,
    total: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    try:
        if sha256 is not None and _scan(path)[0] != sha256:
            raise ImportError_(f"{path} changed since the import was created; import it again")
    except OSError as exc:
        raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc
    started = time.perf_counter()
    if fmt == "online-retail":
        from domain.imports import online_retail

        await online_retail.import_file(run, path, total, progress)
    else:
        fh, rows = _open_rows(run.kind, path, fmt)
        with fh:
            try:
                if run.kind == "events":
                    await _read_events(run, rows, total, progress)
                else:
                    await _read_orders(run, rows, fmt, total, progress)
            except OSError as exc:
                raise ImportError_(f"cannot read {path}: {exc.strerror or exc}") from exc
    seconds = time.perf_counter() - started
    run.extra["seconds"] = round(seconds, 3)
    run.extra["rows_per_second"] = round(run.rows / seconds, 1) if seconds > 0 else None


async def _report(
    run: _Run, total: int | None, progress: Callable[[int, int | None], None] | None
) -> None:
    await _set(run.db, run.task_id, done=run.rows)
    if progress is not None:
        progress(run.rows, total)


def _by_index(errors: Sequence[FieldError], size: int) -> dict[int, list[FieldError]]:
    found: dict[int, list[FieldError]] = defaultdict(list)
    for error in errors:
        if error.index is not None and 0 <= error.index < size:
            found[error.index].append(error)
    return found


async def _read_events(
    run: _Run,
    rows: Iterator[Row],
    total: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    run.extra.update(duplicates=0, unlinked=0)
    batch: list[Row] = []
    for row in rows:
        run.rows += 1
        if row.item is None:
            run.reject(row.line, row.errors)
            continue
        batch.append(row)
        if len(batch) >= EVENT_BATCH:
            await _flush_events(run, batch)
            batch = []
            await _report(run, total, progress)
    if batch:
        await _flush_events(run, batch)
    await _report(run, total, progress)


async def _flush_events(run: _Run, batch: list[Row]) -> None:
    from domain.events.service import track_events

    try:
        async with run.db.unit_of_work() as session:
            result = await track_events(
                session, import_actor(run.task_id), [r.item or {} for r in batch], run.db.settings
            )
    except DomainError as exc:  # a refusal of the whole call
        for r in batch:
            run.reject(r.line, [(e.message, _field(e)) for e in exc.errors])
        return
    except (IntegrityError, DataError) as exc:
        if len(batch) == 1:
            reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            run.reject(batch[0].line, [(f"the database refused the row: {reason}", None)])
            return
        middle = len(batch) // 2
        await _flush_events(run, batch[:middle])
        await _flush_events(run, batch[middle:])
        return
    run.accepted += result.accepted
    run.add("duplicates", result.duplicates)
    run.add("unlinked", result.unlinked)
    for index, errors in sorted(_by_index(result.errors, len(batch)).items()):
        run.reject(batch[index].line, [(e.message, _field(e)) for e in errors])


@dataclass
class OrderUnit:
    """One order read from a file: its file lines (the first row, then one per order line in a
    CSV) and the ``record_orders`` item, or the problems found while reading it."""

    lines: list[int]
    item: dict[str, Any] | None = None
    problems: list[tuple[int, str, str | None]] = field(default_factory=list)

    def line_of(self, error: FieldError) -> int:
        path = error.field
        if len(path) >= 4 and path[2] == "lines" and path[3].isdigit():
            n = int(path[3])
            if n < len(self.lines):
                return self.lines[n]
        return self.lines[0]


def _order_from_rows(group: list[Row]) -> OrderUnit:
    """Adjacent CSV rows with one external_id: order-level columns from the first row."""
    unit = OrderUnit([r.line for r in group])
    for r in group:
        for message, name in r.errors:
            unit.problems.append((r.line, message, name))
    if unit.problems:
        return unit
    order: dict[str, Any] = {}
    lines: list[dict[str, Any]] = []
    for r in group:
        item = r.item or {}
        lines.append({k: item[k] for k in ORDER_LINE_COLUMNS if k in item})
        for name, value in item.items():
            if name in ORDER_LINE_COLUMNS:
                continue
            if name in order and order[name] != value:
                unit.problems.append((r.line, f"{name} differs from the order's first row", name))
            order.setdefault(name, value)
    order["lines"] = lines
    if not unit.problems:
        unit.item = order
    return unit


def _order_from_object(row: Row) -> OrderUnit:
    unit = OrderUnit([row.line])
    if row.item is None:
        unit.problems = [(row.line, m, n) for m, n in row.errors]
        return unit
    stray = [k for k in row.item if k in ORDER_LINE_COLUMNS]
    if stray:
        unit.problems = [(row.line, f"put {stray[0]} inside lines", stray[0])]
        return unit
    unit.item = row.item
    return unit


def _order_units(rows: Iterator[Row], fmt: str, run: _Run) -> Iterator[OrderUnit]:
    if fmt != "csv":
        for row in rows:
            run.rows += 1
            yield _order_from_object(row)
        return
    group: list[Row] = []
    key: Any = None
    for row in rows:
        run.rows += 1
        ext = (row.item or {}).get("external_id")
        if group and (ext is None or ext != key):
            yield _order_from_rows(group)
            group = []
        group.append(row)
        key = ext
        if ext is None:
            yield _order_from_rows(group)
            group = []
    if group:
        yield _order_from_rows(group)


async def _read_orders(
    run: _Run,
    rows: Iterator[Row],
    fmt: str,
    total: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    run.extra.update(orders=0, updated=0, duplicates=0)
    batch: list[OrderUnit] = []
    in_batch: set[str] = set()
    for unit in _order_units(rows, fmt, run):
        run.add("orders")
        if unit.item is None:
            run.reject_lines(unit.problems)
            continue
        ext = unit.item.get("external_id")
        if isinstance(ext, str) and ext in in_batch:
            # A later copy of an order (say, with a new status) applies after the earlier one.
            await flush_orders(run, batch)
            batch, in_batch = [], set()
            await _report(run, total, progress)
        batch.append(unit)
        if isinstance(ext, str):
            in_batch.add(ext)
        if len(batch) >= ORDER_BATCH:
            await flush_orders(run, batch)
            batch, in_batch = [], set()
            await _report(run, total, progress)
    if batch:
        await flush_orders(run, batch)
    await _report(run, total, progress)


async def flush_orders(
    run: _Run,
    batch: list[OrderUnit],
    before: Callable[[AsyncSession], Awaitable[None]] | None = None,
) -> list[str | None]:
    """Record a batch of orders in one unit of work (after ``before``, in the same one), in calls
    of ``record_orders``' largest size; returns each unit's outcome: created, updated, unchanged,
    or None when rejected."""
    from domain.orders.service import MAX_BATCH, record_orders

    outcomes: list[str | None] = []
    errors: list[FieldError] = []
    try:
        async with run.db.unit_of_work() as session:
            if before is not None:
                await before(session)
            for start in range(0, len(batch), MAX_BATCH):
                part = await record_orders(
                    session,
                    import_actor(run.task_id),
                    [u.item or {} for u in batch[start : start + MAX_BATCH]],
                    run.db.settings,
                    load=False,
                )
                outcomes.extend(part.outcomes)
                errors.extend(
                    dataclasses.replace(e, index=e.index + start)
                    for e in part.errors
                    if e.index is not None
                )
    except DomainError as exc:
        for unit in batch:
            run.reject_lines([(unit.lines[0], e.message, _field(e)) for e in exc.errors])
        return [None] * len(batch)
    except (IntegrityError, DataError) as exc:
        if len(batch) == 1:
            reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            run.reject_lines(
                [(batch[0].lines[0], f"the database refused the order: {reason}", None)]
            )
            return [None]
        middle = len(batch) // 2
        return [
            *(await flush_orders(run, batch[:middle], before)),
            *(await flush_orders(run, batch[middle:])),
        ]
    run.accepted += outcomes.count("created") + outcomes.count("updated")
    run.add("updated", outcomes.count("updated"))
    run.add("duplicates", outcomes.count("unchanged"))
    for index, found in sorted(_by_index(errors, len(batch)).items()):
        unit = batch[index]
        run.reject_lines([(unit.line_of(e), e.message, _field(e)) for e in found])
    return outcomes
