"""Preview a definition: how many shoppers match and which (a sample ordered by id), within a time
budget, optionally with the database's plan and cost.

The budget is enforced by the database, not by abandoning a running query: on PostgreSQL each
statement runs in a SAVEPOINT with ``statement_timeout`` set locally to the time left (the savepoint
is rolled back on timeout, so the caller's transaction stays usable); on SQLite a progress handler
interrupts the statement once the deadline has passed. Either way the caller gets a DomainError
with code TIMEOUT.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from domain.columns import utcnow
from domain.errors import DomainError
from domain.segments.compiler import compile_members
from domain.segments.definition import Resolved

MAX_SAMPLE = 100
QUERY_CANCELED = "57014"  # PostgreSQL: statement_timeout (or a cancel request)


@dataclass(frozen=True)
class Preview:
    count: int
    sample_ids: list[int]
    elapsed_ms: float
    cost: float | None = None  # PostgreSQL's estimated total cost of the count statement
    plan: str | None = None


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt


@compiles(_Explain, "postgresql")
def _explain_pg(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.stmt, **kw))


@compiles(_Explain)
def _explain_sqlite(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN QUERY PLAN " + str(compiler.process(element.stmt, **kw))


def _timeout(budget_ms: int) -> DomainError:
    return DomainError.one(
        "TIMEOUT",
        f"the preview took longer than its budget of {budget_ms} ms; narrow the definition",
        "definition",
    )


class _Budget:
    """Runs statements so that together they finish by a deadline."""

    def __init__(self, session: AsyncSession, budget_ms: int) -> None:
        self.session = session
        self.budget_ms = budget_ms
        self.deadline = time.monotonic() + budget_ms / 1000
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def left_ms(self) -> int:
        left = int((self.deadline - time.monotonic()) * 1000)
        if left <= 0:
            raise _timeout(self.budget_ms)
        return left

    async def run(self, stmt: Any) -> Any:
        if self.postgres:
            return await self._run_pg(stmt)
        return await self._run_sqlite(stmt)

    async def _run_pg(self, stmt: Any) -> Any:
        left = self.left_ms()
        try:
            async with self.session.begin_nested():
                previous, jit = (
                    await self.session.execute(
                        select(
                            func.current_setting("statement_timeout"), func.current_setting("jit")
                        )
                    )
                ).one()
                # JIT off: compiling a segment statement's expressions cost more than it saved
                # (1.1 s of 2.0 s on 10M events; docs/benchmarks.md), as in the refresh.
                await self.session.execute(
                    select(
                        func.set_config("statement_timeout", str(left), True),
                        func.set_config("jit", "off", True),
                    )
                )
                rows = (await self.session.execute(stmt)).all()
                # SET LOCAL outlives a released savepoint: put the caller's settings back.
                await self.session.execute(
                    select(
                        func.set_config("statement_timeout", previous, True),
                        func.set_config("jit", jit, True),
                    )
                )
            return rows
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
                raise _timeout(self.budget_ms) from exc
            raise

    async def _run_sqlite(self, stmt: Any) -> Any:
        left = self.left_ms()
        deadline = time.monotonic() + left / 1000
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection

        def over() -> int:
            return 1 if time.monotonic() > deadline else 0

        await driver.set_progress_handler(over, 1000)
        try:
            return (await self.session.execute(stmt)).all()
        except OperationalError as exc:
            if "interrupted" in str(exc.orig):
                raise _timeout(self.budget_ms) from exc
            raise
        finally:
            await driver.set_progress_handler(None, 0)


@contextlib.asynccontextmanager
async def _timed() -> AsyncIterator[list[float]]:
    started = time.perf_counter()
    box = [0.0]
    try:
        yield box
    finally:
        box[0] = (time.perf_counter() - started) * 1000


def _pg_plan_text(node: dict[str, Any], depth: int = 0) -> list[str]:
    what = node.get("Node Type", "?")
    if node.get("Relation Name"):
        what += f" on {node['Relation Name']}"
    if node.get("Index Name"):
        what += f" using {node['Index Name']}"
    line = (
        f"{'  ' * depth}{what}  (cost={node.get('Startup Cost')}..{node.get('Total Cost')} "
        f"rows={node.get('Plan Rows')})"
    )
    lines = [line]
    for child in node.get("Plans", []):
        lines += _pg_plan_text(child, depth + 1)
    return lines


async def explain_plan(session: AsyncSession, stmt: Select[Any]) -> tuple[float | None, str]:
    """PostgreSQL: (estimated total cost, plan tree); SQLite: (None, EXPLAIN QUERY PLAN text)."""
    rows = (await session.execute(_Explain(stmt))).all()
    if session.get_bind().dialect.name == "postgresql":
        doc = rows[0][0]
        if isinstance(doc, str):
            doc = json.loads(doc)
        plan = doc[0]["Plan"]
        return float(plan["Total Cost"]), "\n".join(_pg_plan_text(plan))
    depth: dict[int, int] = {0: -1}
    lines = []
    for node_id, parent, _, detail in rows:
        depth[node_id] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node_id] + str(detail))
    return None, "\n".join(lines)


async def preview(
    session: AsyncSession,
    resolved: Resolved,
    *,
    sample: int = 10,
    budget_ms: int = 1000,
    explain: bool = False,
    now: datetime | None = None,
) -> Preview:
    """Count and a sample of ids (ascending) of the shoppers a definition matches now."""
    sample = max(0, min(sample, MAX_SAMPLE))
    members = compile_members(resolved, now=now or utcnow())
    count_stmt = select(func.count()).select_from(members.subquery())
    budget = _Budget(session, budget_ms)
    async with _timed() as elapsed:
        count = int((await budget.run(count_stmt))[0][0])
        ids: list[int] = []
        if sample and count:
            rows = await budget.run(members.order_by(members.selected_columns[0]).limit(sample))
            ids = [int(r[0]) for r in rows]
    cost: float | None = None
    plan: str | None = None
    if explain:
        cost, plan = await explain_plan(session, count_stmt)
    return Preview(count, ids, round(elapsed[0], 3), cost, plan)
