"""Shared benchmark helpers: a throw-away database and var dir, seeding, tokens, a server in a
subprocess, a load generator in another process (wrk, or a Python fallback) and result tables.

Numbers from a noisy 2-core machine are only meaningful as ratios against a baseline measured in
the same run, interleaved with the thing measured; the scripts report those ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "PRECIS_BENCH_POSTGRES_URL",
    os.environ.get("PRECIS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
)
COUNTRIES = ("AT", "DE", "CH", "FR", "IT", "NL", "SE", "US")
LOCALES = ("de-AT", "de-DE", "de-CH", "fr-FR", "it-IT", "nl-NL", "sv-SE", "en-US")
ZONES = (
    "Europe/Vienna",
    "Europe/Berlin",
    "Europe/Zurich",
    "Europe/Paris",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "America/New_York",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- environment -----------------------------------------------------------------------------


@dataclass
class BenchEnv:
    """A temporary var dir and database, migrated, with settings for this process and a server."""

    database: str
    var_dir: Path
    database_url: str
    env: str
    secrets: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Any:
        from domain.settings import Settings

        return Settings(
            env=self.env,  # type: ignore[arg-type]
            var_dir=self.var_dir,
            database_url=self.database_url,
            redis_url=None,
            _env_file=None,  # type: ignore[call-arg]
            **self.secrets,  # type: ignore[arg-type]
        )

    def server_environ(self, app_dir: Path = REPO) -> dict[str, str]:
        """The environment of the server process: this run's settings and nothing inherited."""
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PRECIS_") and k not in ("DATABASE_URL", "REDIS_URL")
        }
        environ.update(
            PRECIS_ENV=self.env,
            PRECIS_VAR_DIR=str(self.var_dir),
            PRECIS_DATABASE_URL=self.database_url,
            PYTHONPATH=os.pathsep.join(filter(None, [str(app_dir), os.environ.get("PYTHONPATH")])),
        )
        environ.update({f"PRECIS_{k.upper()}": v for k, v in self.secrets.items()})
        return environ


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def bench_env(database: str, *, env: str = "prod") -> Iterator[BenchEnv]:
    """A migrated database (SQLite file or a fresh PostgreSQL database, dropped at the end)."""
    from domain.keys import build_keys
    from domain.migrations import upgrade
    from domain.settings import Settings

    var_dir = Path(tempfile.mkdtemp(prefix="precis-bench-"))
    pg_name: str | None = None
    try:
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{var_dir}/precis.db"
        elif database == "postgres":
            pg_name = f"precis_bench_{secrets.token_hex(5)}"
            asyncio.run(_pg_admin(f'CREATE DATABASE "{pg_name}"'))
            url = _with_db(PG_ADMIN_URL, pg_name)
        else:
            raise ValueError(f"unknown database {database!r}")
        upgrade(url)
        # Dev keys generated in the temp dir; in prod mode they are passed as real settings.
        dev = Settings(env="dev", var_dir=var_dir, database_url=url, _env_file=None)  # type: ignore[call-arg]
        build_keys(dev)
        stored = json.loads((var_dir / "keys.json").read_text())
        extra = {}
        if env == "prod":
            extra = {
                "signing_keys": json.dumps(stored["signing_keys"]),
                "encryption_keys": stored["encryption_keys"],
                "lookup_key": stored["lookup_key"],
            }
        yield BenchEnv(database, var_dir, url, env, extra)
    finally:
        if pg_name is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        shutil.rmtree(var_dir, ignore_errors=True)


def user_item(n: int, prefix: str = "bench") -> dict[str, Any]:
    """One upsert item (service spelling: snake_case keys) for user number ``n``."""
    return {
        "external_id": f"{prefix}-{n:07d}",
        "email": f"shopper{n}@example.com",
        "first_name": f"First{n}",
        "last_name": f"Last{n}",
        "country": COUNTRIES[n % len(COUNTRIES)],
        "locale": LOCALES[n % len(LOCALES)],
        "timezone": ZONES[n % len(ZONES)],
        "tags": ["bench", f"cohort-{n % 5}"],
        "attributes": {"tier": n % 3},
    }


def graphql_item(item: dict[str, Any]) -> dict[str, Any]:
    camel = {
        "external_id": "externalId",
        "first_name": "firstName",
        "last_name": "lastName",
    }
    return {camel.get(k, k): v for k, v in item.items()}


async def seed_users(benv: BenchEnv, count: int, *, batch: int = 100) -> None:
    from domain.db import Database
    from domain.keys import build_keys
    from domain.users import service

    settings = benv.settings()
    keys = build_keys(settings)
    db = Database(settings)
    try:
        for start in range(0, count, batch):
            items = [user_item(n) for n in range(start, min(start + batch, count))]
            async with db.unit_of_work() as session:
                await service.upsert_users(session, keys, items)
    finally:
        await db.dispose()


async def analyze(benv: BenchEnv) -> None:
    """Refresh the planner's statistics, as a long-running database has them. Right after a bulk
    load PostgreSQL still believes the tables empty and plans sequential scans (the cached plans of
    prepared statements keep them) until autovacuum gets round to it."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(benv.database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def mint_token(benv: BenchEnv, scopes: str) -> str:
    from domain.auth.tokens import mint_dev_token
    from domain.db import Database

    settings = benv.settings()
    db = Database(settings)
    try:
        return await mint_dev_token(db, settings, scopes=scopes, ttl=3600)
    finally:
        await db.dispose()


# --- server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def server(
    benv: BenchEnv,
    *,
    app: str = "bench.app:create_bench_app",
    app_dir: Path = REPO,
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[Server]:
    """uvicorn in a subprocess as ``precis serve`` runs it (factory, no access log, uvloop and
    httptools picked automatically), on a free port; stopped at the end. ``app_dir`` serves the
    code of another checkout (for A/B comparisons)."""
    import httpx

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        app,
        "--app-dir",
        str(app_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]
    environ = benv.server_environ(app_dir)
    environ.update(extra_env or {})
    # cwd is the temp dir so no stray .env file is read.
    process = subprocess.Popen(cmd, env=environ, cwd=benv.var_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 60 s")
            time.sleep(0.1)
        yield Server(url, process)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- load generation -------------------------------------------------------------------------


@dataclass
class Load:
    """Results of one load run."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int


@dataclass
class Target:
    """One request to repeat: method, url, body and headers."""

    name: str
    method: str
    url: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def _wrk(target: Target, *, duration: float, connections: int, workdir: Path) -> Load:
    lines = [f"wrk.method = {_lua_string(target.method)}"]
    if target.body is not None:
        body_file = workdir / f"{target.name}.body"
        body_file.write_bytes(target.body)
        lines += [
            f"local f = assert(io.open({_lua_string(str(body_file))}, 'rb'))",
            "wrk.body = f:read('*a')",
            "f:close()",
        ]
    for name, value in target.headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    script = workdir / f"{target.name}.lua"
    script.write_text("\n".join(lines) + "\n")
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(round(duration), 1)}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        target.url,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return _parse_wrk(out)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(f"cannot read wrk time {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _parse_wrk(out: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    bad = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?(\d+) timeout"):
        found = re.search(pattern, out)
        if found:
            bad += int(found.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", out)
    if errors:
        bad += sum(int(g) for g in errors.groups())
    return Load(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)), bad)


def _python_load(target: Target, *, duration: float, connections: int, workdir: Path) -> Load:
    spec = workdir / f"{target.name}.json"
    spec.write_text(
        json.dumps(
            {
                "method": target.method,
                "url": target.url,
                "body": target.body.decode() if target.body is not None else None,
                "headers": target.headers,
                "duration": duration,
                "connections": connections,
            }
        )
    )
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "loadgen.py"), str(spec)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    return Load(data["rps"], data["p50_ms"], data["p99_ms"], data["requests"], data["bad"])


def run_load(
    target: Target, *, duration: float, connections: int, loadgen: str, workdir: Path
) -> Load:
    """Drive ``target`` from another process for ``duration`` seconds."""
    if loadgen == "wrk":
        result = _wrk(target, duration=duration, connections=connections, workdir=workdir)
    else:
        result = _python_load(target, duration=duration, connections=connections, workdir=workdir)
    if result.bad:
        raise RuntimeError(f"{target.name}: {result.bad} failed requests of {result.requests}")
    return result


def pick_loadgen(choice: str) -> str:
    if choice == "auto":
        return "wrk" if have_wrk() else "python"
    if choice == "wrk" and not have_wrk():
        raise SystemExit("wrk is not installed (apt-get install -y wrk); use --loadgen python")
    return choice


# --- reporting -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


# --- profiles --------------------------------------------------------------------------------

# Leaf-first: a sample belongs to the first frame (from the innermost) that matches a rule.
PHASE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("JSON parse (request body)", ("decode_json",)),
    ("serialisation (JSON response)", ("encode_json", "row_json", "create_response")),
    ("auth (token check)", ("api/auth/verifier.py",)),
    (
        "SQL (SQLAlchemy, driver)",
        ("sqlalchemy/", "asyncpg/", "aiosqlite/", "greenlet", "domain/users/repository.py"),
    ),
    (
        "GraphQL execution (graphql-core, resolvers, fields)",
        (
            "graphql/execution/",
            "graphql/type/",
            "api/execution.py",
            "strawberry/schema/schema_converter.py",
            "strawberry/types/",
            "strawberry/permission.py",
            "strawberry/dataloader.py",
            "strawberry/execution/",
            "api/users/",
            "api/relay.py",
            "api/ids.py",
        ),
    ),
    (
        "parse + validate (cache lookups)",
        ("graphql/language/", "graphql/validation/", "api/limits.py"),
    ),
    (
        "Strawberry operation pipeline (extensions, context)",
        (
            "strawberry/schema/",
            "strawberry/extensions/",
            "strawberry/utils/",
            "api/schema.py",
            "api/context.py",
        ),
    ),
    (
        "HTTP / ASGI (uvicorn, Starlette, Strawberry view)",
        (
            "uvicorn/protocols/",
            "uvicorn/middleware/",
            "starlette/",
            "strawberry/http/",
            "strawberry/asgi/",
            "cross_web/",
            "api/app.py",
            "bench/app.py",
            "httptools",
        ),
    ),
]


def phases(collapsed: Path) -> list[list[Any]]:
    """Share of the server's busy samples per phase, from py-spy ``--threads --format raw``."""
    main: dict[str, int] = {}
    workers = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and "MainThread" not in frames[0]:
            workers += count
            continue
        phase = "event loop (uvloop: socket I/O, callbacks, thread wake-ups)"
        for frame in reversed(frames[1:]):
            found = next(
                (name for name, keys in PHASE_RULES if any(k in frame for k in keys)), None
            )
            if found is not None:
                phase = found
                break
        main[phase] = main.get(phase, 0) + count
    total = sum(main.values()) or 1
    rows: list[list[Any]] = [
        [name, f"{100 * n / total:.1f}%"] for name, n in sorted(main.items(), key=lambda kv: -kv[1])
    ]
    rows.append(
        ["(driver threads, e.g. aiosqlite, vs main thread)", f"{100 * workers / total:.1f}%"]
    )
    return rows
