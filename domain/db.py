"""Database engine and the unit of work.

Services take an ``AsyncSession`` and never commit; the request or job boundary does (``unit_of_work``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from domain.settings import Settings


def make_engine(settings: Settings, *, pool: bool = True) -> AsyncEngine:
    url = make_url(settings.database_url)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
        memory = not url.database or url.database == ":memory:"
        if pool and not memory:
            # As many kept connections as on PostgreSQL: with the default (5) a busier process
            # closes and reopens overflow connections (a thread and four PRAGMAs each) all the time.
            kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
        elif not pool:
            kwargs["poolclass"] = NullPool
    else:
        kwargs["connect_args"] = _pg_connect_args(settings, url)
        if pool:
            kwargs.update(
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_pre_ping=False,
            )
        else:
            kwargs["poolclass"] = NullPool
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _pg_connect_args(settings: Settings, url: URL) -> dict[str, Any]:
    """What every PostgreSQL connection gets besides the URL: the statement timeout, the
    application name, and no TLS to this machine unless the URL asks for it."""
    connect_args: dict[str, Any] = {
        "server_settings": {
            "statement_timeout": str(settings.statement_timeout_ms),
            "application_name": "precis",
        }
    }
    if _loopback(url.host) and not ({"ssl", "sslmode"} & set(url.query)):
        # asyncpg's default (prefer) builds an SSL context and asks the server for TLS on
        # every new connection; on this host there is nothing to protect. The URL's
        # ?ssl=... / ?sslmode=... still decides when given.
        connect_args["ssl"] = False
    return connect_args


def asyncpg_connect_args(engine: AsyncEngine, settings: Settings) -> dict[str, Any]:
    """``asyncpg.connect`` keyword arguments for a connection like the engine's own (its URL,
    query options and connect arguments), for code that keeps asyncpg connections of its own
    (``domain.recommend.serving.ShopperReads``)."""
    _args, params = engine.dialect.create_connect_args(engine.url)
    # SQLAlchemy's asyncpg adapter takes these itself; asyncpg calls the first one differently.
    cache = params.pop("prepared_statement_cache_size", None)
    if cache is not None:
        params["statement_cache_size"] = int(cache)
    params.pop("prepared_statement_name_func", None)
    params.pop("async_creator_fn", None)
    return {**params, **_pg_connect_args(settings, engine.url)}


def _loopback(host: str | None) -> bool:
    """A TCP connection to this machine (not a Unix socket or a host from the environment)."""
    return host in ("localhost", "127.0.0.1", "::1") or bool(host and host.startswith("127."))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Database:
    """One engine and session factory per process (API worker, job worker or CLI command)."""

    def __init__(self, settings: Settings, *, pool: bool = True) -> None:
        self.settings = settings
        self.engine = make_engine(settings, pool=pool)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """Commit on success, roll back on any error."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @contextlib.asynccontextmanager
    async def read_only(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
