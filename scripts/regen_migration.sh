#!/usr/bin/env bash
# Regenerate the newest, not yet released migration from the models (used while it is in progress):
#   scripts/regen_migration.sh 0002 0001 shoppers
# Deterministic: the same models give the same file, so re-running it is safe.
set -euo pipefail
rev=$1 down=$2 slug=$3
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f migrations/versions/${rev}_*.py
db="sqlite+aiosqlite:///$tmp/base.db"
.venv/bin/python - "$db" "$down" <<'PY'
import sys
from alembic import command
from alembic.config import Config
cfg = Config("alembic.ini")
cfg.set_main_option("sqlalchemy.url", sys.argv[1])
command.upgrade(cfg, sys.argv[2])
PY
.venv/bin/python - "$db" "$rev" "$slug" <<'PY'
import sys
from alembic import command
from alembic.config import Config
cfg = Config("alembic.ini")
cfg.set_main_option("sqlalchemy.url", sys.argv[1])
command.revision(cfg, message=sys.argv[3], autogenerate=True, rev_id=sys.argv[2])
PY
f=$(ls migrations/versions/${rev}_*.py)
# Stable header (no creation date) and the imports autogenerate forgets.
sed -i -e '/^Create Date:/d' "$f"
grep -q '^from sqlalchemy import Text' "$f" || sed -i 's/^import sqlmodel$/import sqlmodel\nfrom sqlalchemy import Text/' "$f"
sed -i "s/^import sqlmodel$/import sqlmodel.sql.sqltypes/" "$f"
grep -q '^import domain.columns' "$f" || sed -i 's/^from alembic import op$/from alembic import op\n\nimport domain.columns/' "$f"
.venv/bin/ruff check --fix -q "$f" || true
.venv/bin/ruff format -q "$f"
echo "wrote $f"
