"""The real app plus raw baseline routes, for benchmarks only (never part of ``api.app``).

``uvicorn --factory bench.app:create_bench_app`` serves exactly what ``precis serve`` serves, plus:

* ``GET /raw/users?first=N``: the same SQL statement as ``users(first: N)`` (``repository.page``)
  through the same ``Database`` and session factory, returning the same 8 fields as JSON (orjson);
* ``GET /raw/user/{id}``: the same for ``user(id:)`` (``repository.by_ids``), ``id`` being the
  global id.

No token is checked on these routes: they are the floor a GraphQL request is compared with.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.app import create_app
from api.ids import decode_id, encode_id
from domain.db import Database
from domain.users import repository

FIELDS = ("id", "externalId", "firstName", "lastName", "country", "locale", "timezone", "createdAt")


def row_json(row: Any) -> dict[str, Any]:
    """The 8 benchmark fields of a customer row, spelt and formatted as GraphQL returns them."""
    return {
        "id": encode_id("User", row.id),
        "externalId": row.external_id,
        "firstName": row.first_name,
        "lastName": row.last_name,
        "country": row.country,
        "locale": row.locale,
        "timezone": row.timezone,
        "createdAt": row.created_at.isoformat(),
    }


def create_bench_app() -> Starlette:
    app = create_app()
    db: Database = app.state.db
    no_filter = repository.UserFilter()

    async def raw_users(request: Request) -> Response:
        first = int(request.query_params.get("first", "100"))
        async with db.sessions() as session:
            rows = await repository.page(session, no_filter, first=first, after=None)
        body = orjson.dumps({"users": [row_json(r) for r in rows[:first]]})
        return Response(body, media_type="application/json")

    async def raw_user(request: Request) -> Response:
        _, pk = decode_id(request.path_params["id"], "User")
        async with db.sessions() as session:
            found = await repository.by_ids(session, [pk])
        row = found.get(pk)
        body = orjson.dumps({"user": row_json(row) if row is not None else None})
        return Response(body, media_type="application/json")

    app.router.routes.extend(
        [
            Route("/raw/users", raw_users, methods=["GET"]),
            Route("/raw/user/{id}", raw_user, methods=["GET"]),
        ]
    )
    return app
