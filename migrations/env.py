"""Alembic environment: async engine from Precis settings (or the URL the caller put in the config)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from domain.db import make_engine
from domain.models import metadata
from domain.settings import get_settings

config = context.config


def _settings():  # type: ignore[no-untyped-def]
    settings = get_settings()
    url = config.get_main_option("sqlalchemy.url")
    if url:
        settings = settings.model_copy(update={"database_url": url})
    return settings


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # No statement timeout for schema changes: the API's (15 s) cancels an index build on a
        # large table (the event index of 0003 on 10M events takes longer).
        connection.exec_driver_sql("SET statement_timeout = 0")
        connection.commit()  # the session setting stays; the migrations get their own transaction
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(_settings(), pool=False)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_settings().database_url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
