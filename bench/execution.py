"""GraphQL execution alone: ``users(first: N)`` on preloaded rows, no HTTP and no SQL.

``schema.execute`` of the list query with ``Customer`` rows built in memory (``repository.page`` is
replaced for the run) and a stub context holding a ``users:read`` principal, in one process. Prints
the time per operation for 100 rows x 8 fields, 100 rows x 1 field, 1 row x 8 and 1 row x 1, and
from them the cost of each extra field, each extra row and the fixed cost of the operation.

    .venv/bin/python bench/execution.py
    ROOT=/path/to/other/checkout .venv/bin/python bench/execution.py   # another checkout's code
    .venv/bin/python bench/execution.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("ROOT") or str(Path(__file__).resolve().parents[1]))

FIELDS = "id externalId firstName lastName country locale timezone createdAt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny run to check it works")
    p.add_argument("--repeat", type=int, help="executions per sample (default 100; 3 quick)")
    p.add_argument("--samples", type=int, help="samples, median reported (default 7; 1 quick)")
    args = p.parse_args(argv)
    args.repeat = args.repeat or (3 if args.quick else 100)
    args.samples = args.samples or (1 if args.quick else 7)
    return args


async def run(args: argparse.Namespace) -> dict[str, float]:
    from api.auth.principal import Principal
    from api.schema import build_schema
    from domain.settings import Settings
    from domain.users import repository
    from domain.users.models import Customer

    now = dt.datetime.now(dt.UTC)
    rows = [
        Customer(
            id=i,
            external_id=f"bench-{i:07d}",
            first_name=f"First{i}",
            last_name=f"Last{i}",
            country="AT",
            locale="de-AT",
            timezone="Europe/Vienna",
            created_at=now,
            updated_at=now,
            attributes={},
        )
        for i in range(1, 102)
    ]

    async def page(session: Any, flt: Any, *, first: int, after: int | None) -> list[Customer]:
        return rows[: first + 1]

    repository.page = page  # type: ignore[assignment]

    class Context:
        principal = Principal("bench", "bench", frozenset({"users:read"}), "jti", 2**40)
        auth_error = None
        session = None

        def has(self, *scopes: str) -> bool:
            return self.principal.has(*scopes)

        async def finish(self, commit: bool) -> None:
            return None

    schema = build_schema(
        Settings(
            env="prod",
            signing_keys="-",
            encryption_keys="-",
            lookup_key="-",
            _env_file=None,  # type: ignore[call-arg]
        )
    )

    async def timed(fields: str, first: int) -> float:
        query = "query($first: Int!) { users(first: $first) { nodes { %s } } }" % fields  # noqa: UP031
        for _ in range(5):
            result = await schema.execute(
                query, variable_values={"first": first}, context_value=Context()
            )
            assert not result.errors, result.errors
        samples = []
        for _ in range(args.samples):
            started = time.perf_counter()
            for _ in range(args.repeat):
                await schema.execute(
                    query, variable_values={"first": first}, context_value=Context()
                )
            samples.append((time.perf_counter() - started) / args.repeat * 1e6)
        return statistics.median(samples)

    return {
        "100x8": await timed(FIELDS, 100),
        "100x1": await timed("externalId", 100),
        "1x8": await timed(FIELDS, 1),
        "1x1": await timed("externalId", 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t = asyncio.run(run(args))
    print(f"code: {os.environ.get('ROOT') or Path(__file__).resolve().parents[1]}")
    print(
        f"users(first: 100) x 8 fields {t['100x8']:.0f} us; x 1 field {t['100x1']:.0f} us; "
        f"first: 1 x 8 fields {t['1x8']:.0f} us; x 1 field {t['1x1']:.0f} us"
    )
    print(
        f"per extra field {(t['100x8'] - t['100x1']) / 700:.2f} us; "
        f"per extra row {(t['100x1'] - t['1x1']) / 99:.2f} us; "
        f"fixed (1 row x 1 field) {t['1x1']:.0f} us"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
