"""``precis recommend train|models|promote`` run as a user would (a subprocess), on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from domain.db import Database
from domain.settings import Settings
from tests.recommend.models_world import FAST, seed

PRECIS = str(Path(sys.executable).parent / "precis")
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(settings: Settings, tmp_path: Path) -> Run:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PRECIS_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        PRECIS_DATABASE_URL=settings.database_url,
        PRECIS_VAR_DIR=str(settings.var_dir),
        PRECIS_RECOMMEND_ALGORITHMS=FAST,
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PRECIS, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )

    return run


async def test_train_list_promote(cli: Run, db: Database) -> None:
    for args in (["train"], ["models"], ["promote"]):
        done = cli("recommend", *args, "--help")
        assert done.returncode == 0 and "Usage" in done.stdout, done.stderr
    # Nothing to train on: a typed error, exit 1, a failed version listed.
    done = cli("recommend", "train")
    assert done.returncode == 1 and "EMPTY_DATA" in done.stderr, done.stderr
    await seed(db)
    done = cli("recommend", "train", "--json")
    assert done.returncode == 0, done.stderr
    version = json.loads(done.stdout)
    assert version["status"] == "candidate" and version["ndcg@10"] > 0
    done = cli("recommend", "models", "--json")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["candidate", "failed"]
    done = cli("recommend", "promote", str(version["number"]))
    assert done.returncode == 0 and "is active" in done.stdout, done.stderr
    done = cli("recommend", "promote", str(version["number"]))
    assert done.returncode == 1 and "NOT_CANDIDATE" in done.stderr
    done = cli("recommend", "models", "--status", "nonsense")
    assert done.returncode == 2
    done = cli("recommend", "models", "--status", "active")
    assert done.returncode == 0 and str(version["number"]) in done.stdout
