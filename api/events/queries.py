"""Event queries: a user's events and the admin ``events`` list, newest first."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.events.types import Event
from api.ids import BadId, decode_id
from api.relay import Connection, check_first, connection, parse_after
from domain.events import repository
from domain.events.repository import EventFilter as Filter


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _pk(value: strawberry.ID, kind: str) -> int:
    try:
        return decode_id(value, kind)[1]
    except BadId as exc:
        raise bad_input(str(exc)) from exc


@strawberry.input(description="Filters on events; all given filters must match.")
class EventFilter:
    type: str | None = None
    user_id: strawberry.ID | None = None
    product_id: strawberry.ID | None = None
    since: datetime | None = strawberry.field(default=None, description="occurredAt, inclusive.")
    until: datetime | None = strawberry.field(default=None, description="occurredAt, exclusive.")


def _filter(flt: EventFilter | None, *, customer_id: int | None = None) -> Filter:
    if flt is None:
        return Filter(customer_id=customer_id)
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value is not None and value.tzinfo is None:
            raise bad_input(f"{name} needs a time zone offset")
    return Filter(
        type=flt.type,
        customer_id=customer_id if flt.user_id is None else _pk(flt.user_id, "User"),
        product_id=None if flt.product_id is None else _pk(flt.product_id, "Product"),
        since=flt.since,
        until=flt.until,
    )


async def event_page(info: Info, flt: Filter, first: int, after: str | None) -> Connection[Event]:
    check_first(first)
    cursor = parse_after(after)
    session = info.context.session
    try:
        rows = await repository.page(session, flt, first=first, after=cursor)
    except repository.CursorGone as exc:
        raise bad_input("the cursor's event no longer exists; start again") from exc
    return connection(rows, first=first, after=cursor, count=lambda: repository.count(session, flt))


async def user_events(
    info: Info, customer_id: int, first: int, after: str | None, type: str | None
) -> Connection[Event]:
    return await event_page(info, Filter(customer_id=customer_id, type=type), first, after)


@strawberry.type
class EventQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("users:read")],
        description="Behaviour events, newest first (by occurredAt), filtered.",
    )
    async def events(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: EventFilter | None = None,
    ) -> Connection[Event]:
        return await event_page(info, _filter(filter), first, after)
