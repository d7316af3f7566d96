"""``precis segments ...`` run as a user would (a subprocess), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from domain.db import Database
from domain.segments import service
from domain.settings import Settings
from tests.segments.members_world import DE, log_of, members_of, segment, shoppers

PRECIS = str(Path(sys.executable).parent / "precis")
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(settings: Settings, tmp_path: Path) -> Run:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PRECIS_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(PRECIS_DATABASE_URL=settings.database_url, PRECIS_VAR_DIR=str(settings.var_dir))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PRECIS, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    return run


async def test_every_command_has_help(cli: Run) -> None:
    for args in ([], ["list"], ["seed"], ["refresh"], ["preview"], ["import"]):
        done = cli("segments", *args, "--help")
        assert done.returncode == 0, done.stderr
        assert "Usage" in done.stdout


async def test_migrate_seeds_builtins_and_refresh_runs(
    cli: Run, db: Database, settings: Settings
) -> None:
    a, b = await shoppers(db, settings, ["DE", "FR"])
    done = cli("migrate")
    assert done.returncode == 0, done.stderr
    assert "built-in segments: 8 created" in done.stderr
    done = cli("segments", "seed")
    assert "0 created, 0 updated, 8 unchanged" in done.stderr

    sid = await segment(db, DE, name="Germans")
    done = cli("segments", "refresh", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["segments"] == 9 and summary["failed"] == {}
    assert await members_of(db, sid) == {a}
    done = cli("segments", "refresh", "--id", str(sid))
    assert done.returncode == 0 and "0 entered, 0 exited" in done.stderr

    done = cli("segments", "list", "--json")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 9
    germans = rows[-1]
    assert (germans["name"], germans["members"], germans["refreshed_version"]) == (
        "Germans",
        1,
        1,
    )
    assert cli("segments", "list").returncode == 0
    done = cli("segments", "refresh", "--id", "999")
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr
    _ = b


async def test_preview_a_definition_file(
    cli: Run, db: Database, settings: Settings, tmp_path: Path
) -> None:
    await shoppers(db, settings, ["DE", "DE", "FR"])
    good = tmp_path / "de.json"
    good.write_text(json.dumps({"definition": DE}))
    done = cli("segments", "preview", str(good))
    assert done.returncode == 0, done.stderr
    assert "2 matching shoppers" in done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"and": []}))
    done = cli("segments", "preview", str(bad))
    assert done.returncode == 1
    assert "EMPTY" in done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert cli("segments", "preview", str(broken)).returncode == 1


async def test_import_members_all_or_nothing(
    cli: Run, db: Database, settings: Settings, tmp_path: Path
) -> None:
    a, b = await shoppers(db, settings, [None, None])
    sid = await segment(db, None, kind="static", name="List")
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id\ns-0\nghost\n")
    done = cli("segments", "import", str(sid), str(bad))
    assert done.returncode == 1
    assert "line 3" in done.stderr
    assert await members_of(db, sid) == set() and await log_of(db) == []

    good = tmp_path / "good.csv"
    good.write_text("external_id\ns-0\ns-1\n")
    done = cli("segments", "import", str(sid), str(good))
    assert done.returncode == 0, done.stderr
    assert "2 added" in done.stderr
    assert await members_of(db, sid) == {a, b}
    one = tmp_path / "one.csv"
    one.write_text("external_id\ns-1\n")
    done = cli("segments", "import", str(sid), str(one), "--mode", "replace")
    assert done.returncode == 0 and "1 removed" in done.stderr
    assert await members_of(db, sid) == {b}
    done = cli("segments", "import", "no-such-key", str(one))
    assert done.returncode == 1 and "NOT_FOUND" in done.stderr
    async with db.read_only() as session:
        seg = await service.get_segment(session, sid)
    assert seg is not None and seg.member_count == 1
