"""The ``precis`` commands as a user runs them (subprocesses on a migrated SQLite file)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import Precis

COMMANDS = [
    [],
    ["serve"],
    ["worker"],
    ["migrate"],
    ["clients"],
    ["clients", "create"],
    ["clients", "list"],
    ["clients", "disable"],
    ["token"],
    ["keys", "rotate"],
    ["demo", "load"],
    ["import", "users"],
    ["import", "products"],
    ["schema", "export"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "precis")
def test_every_command_has_help(command: list[str]) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    done = CliRunner().invoke(app, [*command, "--help"])
    assert done.exit_code == 0, done.output
    assert "Usage:" in done.output


def test_clients_lifecycle(precis: Precis, database: Path) -> None:
    created = precis(
        "clients", "create", "--name", "crm", "--scopes", "users:read users:write", "--json"
    )
    assert created.returncode == 0, created.stderr
    last = json.loads(created.stdout.strip().splitlines()[-1])
    assert set(last) == {"client_id", "client_secret"}
    with sqlite3.connect(database) as conn:
        stored = conn.execute(
            "SELECT secret_hash, scopes FROM oauth_client WHERE id = ?", (last["client_id"],)
        ).fetchone()
    assert stored[1] == "users:read users:write"
    assert last["client_secret"] not in stored[0]  # only a hash is kept

    plain = precis("clients", "create", "--name", "shop", "--scopes", "catalog:read")
    assert "client_secret:" in plain.stdout
    listed = json.loads(precis("clients", "list", "--json").stdout)
    assert [c["name"] for c in listed] == ["crm", "shop"]
    assert all("secret" not in json.dumps(c) for c in listed)

    disabled = precis("clients", "disable", last["client_id"])
    assert disabled.returncode == 0
    listed = {
        c["name"]: c["disabled"] for c in json.loads(precis("clients", "list", "--json").stdout)
    }
    assert listed == {"crm": True, "shop": False}


def test_clients_create_refuses_bad_input(precis: Precis, database: Path) -> None:
    for args in (
        ["--name", "x", "--scopes", "users:read bogus:scope"],
        ["--name", "x", "--scopes", "me:read"],
        ["--name", " ", "--scopes", "users:read"],
    ):
        done = precis("clients", "create", *args)
        assert done.returncode == 1
        assert "INVALID" in done.stderr
    assert precis("clients", "disable", "pc_missing").returncode == 1
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM oauth_client").fetchone() == (0,)


def test_dev_token(precis: Precis, keys_dir: Path) -> None:
    done = precis("token", "--scopes", "users:read catalog:read", "--ttl", "120")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    keys = json.loads((keys_dir / "keys.json").read_text())["signing_keys"]
    claims = jwt.decode(token, KeySet.import_key_set(keys)).claims
    assert claims["scope"] == "catalog:read users:read"
    assert claims["client_id"] == "precis-cli"
    assert 110 <= claims["exp"] - time.time() <= 121
    header = precis("token", "--header")
    payload = json.loads(header.stdout.strip())
    assert payload["Authorization"].startswith("Bearer ")
    assert (
        "users:pii"
        in jwt.decode(payload["Authorization"][7:], KeySet.import_key_set(keys)).claims["scope"]
    )
    assert precis("token", "--scopes", "nope:nope").returncode == 2
    assert precis("token", "--ttl", "5").returncode == 2
    assert precis("token", PRECIS_ENV="prod").returncode == 2


def test_schema_export_matches_the_checked_in_sdl(precis: Precis) -> None:
    done = precis("schema", "export")
    assert done.returncode == 0
    checked_in = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
    assert done.stdout == checked_in


def test_migrate_creates_the_database(precis: Precis, tmp_path: Path) -> None:
    target = tmp_path / "fresh" / "new.db"
    done = precis("migrate", PRECIS_DATABASE_URL=f"sqlite+aiosqlite:///{target}")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(target) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "customer",
        "product",
        "category",
        "oauth_client",
        "revoked_token",
        "task_run",
    } <= tables


def test_serve_refuses_prod_without_secrets(precis: Precis) -> None:
    done = precis("serve", "--port", "1", PRECIS_ENV="prod")
    assert done.returncode == 2
    assert "PRECIS_SIGNING_KEYS" in done.stderr


def test_worker_needs_redis(precis: Precis) -> None:
    done = precis("worker")
    assert done.returncode == 2
    assert "REDIS_URL" in done.stderr


def test_keys_rotate_keeps_old_keys_published(precis: Precis, tmp_path: Path) -> None:
    var = tmp_path / "var"
    before = precis("token", PRECIS_VAR_DIR=str(var)).stdout.strip()
    done = precis("keys", "rotate", PRECIS_VAR_DIR=str(var))
    assert done.returncode == 0
    keys = json.loads((var / "keys.json").read_text())["signing_keys"]["keys"]
    assert len(keys) == 2
    jwt.decode(before, KeySet.import_key_set({"keys": keys}))  # still verifiable
