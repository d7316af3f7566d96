"""Test fixtures: real SQLite and PostgreSQL built by the migrations, real Redis, the real app over
HTTP (httpx through ASGI) and real OAuth tokens from /oauth/token.

Every database test runs on both SQLite and PostgreSQL. PostgreSQL and Redis tests skip with a message
when the service is absent, unless PRECIS_REQUIRE_SERVICES=1 (as in CI), where that is a failure.
Each run creates its own PostgreSQL database and Redis key prefix and removes them at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from domain.db import Database
from domain.migrations import upgrade
from domain.models import metadata
from domain.settings import Settings

RUN_ID = uuid.uuid4().hex[:10]
REQUIRE = os.environ.get("PRECIS_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get(
    "PRECIS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PRECIS_TEST_REDIS_URL") or os.environ.get(
    "REDIS_URL", "redis://127.0.0.1:6379/0"
)


def unavailable(what: str, why: Exception | str) -> None:
    message = f"{what} is not reachable ({why}); start it or unset PRECIS_REQUIRE_SERVICES"
    if REQUIRE:
        pytest.fail(f"PRECIS_REQUIRE_SERVICES=1 and {message}", pytrace=False)
    pytest.skip(message)


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("precis")


@pytest.fixture(scope="session")
def keys_dir(tmp_root: Path) -> Path:
    """One dev key store for the whole run (RSA key generation is slow)."""
    path = tmp_root / "keys"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_root: Path) -> Path:
    path = tmp_root / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest_asyncio.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str | None]:
    name = f"precis_test_{RUN_ID}"
    admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        await admin.dispose()
        yield None
        _ = exc
        return
    url = _with_db(PG_ADMIN_URL, name)
    await asyncio.to_thread(upgrade, url)
    try:
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


TABLES = ", ".join(f'"{t.name}"' for t in reversed(metadata.sorted_tables))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def database_url(
    backend: str, tmp_path: Path, sqlite_template: Path, postgres_url: str | None
) -> str:
    if backend == "sqlite":
        path = tmp_path / "precis.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    if postgres_url is None:
        unavailable("PostgreSQL at " + PG_ADMIN_URL, "connection failed")
    assert postgres_url is not None
    engine = create_async_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    await engine.dispose()
    return postgres_url


@pytest.fixture
def settings(database_url: str, keys_dir: Path) -> Settings:
    return Settings(
        env="dev",
        var_dir=keys_dir,
        database_url=database_url,
        redis_url=None,
        auth_cache_seconds=0,
        scheduler="off",
        # Profile counters written in each request (tests/events/test_profile_buffer.py turns the
        # write-behind buffer on).
        profile_touch_flush_ms=0,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest_asyncio.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@pytest_asyncio.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    from api.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


class Api:
    """GraphQL and OAuth helpers over the test client."""

    def __init__(self, client: httpx.AsyncClient, db: Database, app: Any) -> None:
        self.client = client
        self.db = db
        self.app = app
        self._tokens: dict[str, str] = {}

    async def new_client(self, scopes: str, name: str = "test") -> tuple[str, str]:
        from domain.auth import service

        async with self.db.unit_of_work() as session:
            created = await service.create_client(session, name=name, scopes=scopes)
        return created.client.id, created.secret

    async def token(self, scopes: str) -> str:
        """A real access token from /oauth/token for a new client holding exactly ``scopes``."""
        if scopes not in self._tokens:
            client_id, secret = await self.new_client(scopes)
            response = await self.client.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(client_id, secret),
            )
            assert response.status_code == 200, response.text
            self._tokens[scopes] = response.json()["access_token"]
        return self._tokens[scopes]

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        scopes: str | None = None,
        token: str | None = None,
        status: int = 200,
    ) -> dict[str, Any]:
        headers = {}
        if scopes is not None:
            token = await self.token(scopes)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest_asyncio.fixture
async def api(client: httpx.AsyncClient, db: Database, app: Any) -> Api:
    return Api(client, db, app)


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def count_rows(db: Database, table: str) -> int:
    async with db.read_only() as session:
        return int((await session.execute(text(f'SELECT COUNT(*) FROM "{table}"'))).scalar_one())


@pytest_asyncio.fixture(scope="session")
async def redis_url() -> AsyncIterator[str]:
    """A Redis URL plus a queue name unique to this run; keys are removed at the end."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        unavailable(f"Redis at {REDIS_URL}", exc)
    try:
        yield REDIS_URL
    finally:
        async for key in client.scan_iter(match=f"*precis-test-{RUN_ID}*"):
            await client.delete(key)
        await client.aclose()


@pytest.fixture
def queue_name() -> str:
    return f"precis-test-{RUN_ID}-{uuid.uuid4().hex[:6]}:queue"


Runner = Callable[..., Awaitable[Any]]


PRECIS = str(Path(sys.executable).parent / "precis")
Precis = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def database(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite file of this test's own, for commands run as subprocesses."""
    path = tmp_path / "precis.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
def precis(tmp_path: Path, database: Path, keys_dir: Path) -> Precis:
    """Run the ``precis`` console script as a user would, on ``database``, without Redis."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PRECIS_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(PRECIS_DATABASE_URL=f"sqlite+aiosqlite:///{database}", PRECIS_VAR_DIR=str(keys_dir))

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PRECIS, *args],
            env={**env, **extra_env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@contextlib.asynccontextmanager
async def serve(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second app with changed settings (prod mode, other limits, Redis), as its own process would be."""
    from api.app import create_app

    app = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            yield c
