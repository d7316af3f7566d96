"""SQL shared by services: dialect-aware INSERT ... ON CONFLICT for SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, Table, bindparam, cast, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel


def table(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def insert_for(session: AsyncSession) -> Any:
    """The dialect's ``insert`` (both have ``on_conflict_do_update``/``_do_nothing``)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def among(session: AsyncSession, column: Any, values: Iterable[Any]) -> Any:
    """``column IN (values)``. On PostgreSQL the values travel as one array parameter
    (``column IN (SELECT unnest(:values))``), so the statement text, and asyncpg's prepared
    statement and plan, stay the same whatever the number of values (an expanding IN renders new
    SQL for every distinct count), and the planner can hash the values instead of comparing each
    row with every element as ``= ANY(:values)`` does."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, values, type_=ARRAY(column.type))
        return column.in_(select(func.unnest(array)).scalar_subquery())
    return column.in_(values)


def unnest_rows(
    t: Table,
    columns: Sequence[str],
    *,
    element_types: dict[str, Any] | None = None,
    **constants: Any,
) -> Select[Any]:
    """PostgreSQL: ``SELECT ... FROM unnest(:u_a, :u_b, ...)``, the rows of an INSERT ... SELECT
    sent as one array per column (see ``unnest_params``). A statement with a few array parameters
    is prepared once and binds far less per row than an executemany or a multi-row VALUES list.
    ``element_types`` overrides a column's array element type (e.g. ``Text`` for JSON the caller
    serialises itself; the value is cast back to the column's type); ``constants`` are SQL
    expressions added as further columns."""
    types = element_types or {}
    arrays = [bindparam(f"u_{c}", type_=ARRAY(types.get(c, t.c[c].type))) for c in columns]
    rows = func.unnest(*arrays).table_valued(*columns).render_derived()
    values = [cast(rows.c[c], t.c[c].type) if c in types else rows.c[c] for c in columns]
    return select(*values, *constants.values())


def unnest_params(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    return {f"u_{c}": [row[c] for row in rows] for c in columns}


async def upsert_returning_ids(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: str,
    keep: Iterable[str] = (),
) -> dict[Any, int]:
    """Insert or update ``rows`` on the unique column ``key``; returns ``{key value: id}``.

    Columns in ``keep`` are written on insert only. The statement runs once with many parameter
    sets, so SQLAlchemy compiles it once and caches it (a multi-VALUES statement is compiled anew
    for every batch, which cost more than the database work).
    """
    if not rows:
        return {}
    stmt = insert_for(session)(table)
    frozen = {key, *keep}
    stmt = stmt.on_conflict_do_update(
        index_elements=[key],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in frozen},
    ).returning(table.c.id, table.c[key])
    result = await session.execute(stmt, list(rows))
    return {value: pk for pk, value in result.all()}


async def insert_ignoring_conflicts(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str] | None = None,
) -> None:
    """Insert rows, skipping those that already exist (on ``key`` or any unique constraint)."""
    if rows:
        stmt = insert_for(session)(table).on_conflict_do_nothing(index_elements=key)
        await session.execute(stmt, list(rows))


async def keyset_page(
    session: AsyncSession, stmt: Select[Any], id_column: Any, *, first: int, after: int | None
) -> list[Any]:
    """A page ordered by id after the cursor id, with ``first + 1`` rows so callers see if more exist."""
    if after is not None:
        stmt = stmt.where(id_column > after)
    return list(await session.scalars(stmt.order_by(id_column).limit(first + 1)))


async def count_matching(session: AsyncSession, stmt: Select[Any], id_column: Any) -> int:
    sub = stmt.with_only_columns(id_column).subquery()
    return int(await session.scalar(select(func.count()).select_from(sub)) or 0)


async def replace_tags(
    session: AsyncSession,
    tag_model: type[SQLModel],
    owner: str,
    tagged: Sequence[tuple[int, list[str]]],
) -> None:
    """Make each owner's tags exactly the given list (owners not listed are untouched)."""
    if not tagged:
        return
    tags_table = table(tag_model)
    await session.execute(
        delete(tags_table).where(tags_table.c[owner].in_([pk for pk, _ in tagged]))
    )
    rows = [{owner: pk, "tag": t} for pk, tags in tagged for t in tags]
    await insert_ignoring_conflicts(session, tags_table, rows)


async def rows_by(session: AsyncSession, column: Any, values: Sequence[Any]) -> dict[Any, Any]:
    """Entities whose ``column`` is in ``values``, keyed by that column's value."""
    if not values:
        return {}
    model = column.class_
    rows = await session.scalars(select(model).where(column.in_(values)))
    return {getattr(row, column.key): row for row in rows}


async def tags_by_owner(
    session: AsyncSession, tag_model: type[SQLModel], owner: str, ids: Sequence[int]
) -> dict[int, list[str]]:
    """Each owner's tags, sorted in Python (the same order whatever the database collation)."""
    result: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return result
    tags_table = table(tag_model)
    rows = await session.execute(
        select(tags_table.c[owner], tags_table.c.tag).where(tags_table.c[owner].in_(ids))
    )
    for owner_id, tag in rows:
        result[owner_id].append(tag)
    for tags in result.values():
        tags.sort()
    return result
