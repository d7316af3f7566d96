"""Order queries: thin resolvers over the orders repository."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.ids import BadId, decode_id
from api.orders.loaders import order_loader
from api.orders.types import Order, OrderStatus
from api.relay import Connection, check_first, connection, parse_after
from domain.orders import repository
from domain.orders.models import Order as OrderRow


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def order_pk(id: str) -> int:
    try:
        return decode_id(id, "Order")[1]
    except BadId as exc:
        raise bad_input(str(exc)) from exc


@strawberry.input(description="Filters on orders; all given filters must match.")
class OrderFilter:
    user_id: strawberry.ID | None = None
    status: OrderStatus | None = None
    since: datetime | None = strawberry.field(default=None, description="placedAt, inclusive.")
    until: datetime | None = strawberry.field(default=None, description="placedAt, exclusive.")


def _filter(flt: OrderFilter | None) -> repository.OrderFilter:
    if flt is None:
        return repository.OrderFilter()
    customer_id = None
    if flt.user_id is not None:
        try:
            customer_id = decode_id(flt.user_id, "User")[1]
        except BadId as exc:
            raise bad_input(str(exc)) from exc
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value is not None and value.tzinfo is None:
            raise bad_input(f"{name} needs a time zone offset")
    return repository.OrderFilter(
        customer_id=customer_id,
        status=None if flt.status is None else flt.status.value,
        since=flt.since,
        until=flt.until,
    )


async def orders_page(
    info: Info, flt: repository.OrderFilter, first: int, after: str | None
) -> Connection[Order]:
    """Newest first (placedAt, then id); shared by ``orders`` and ``User.orders``."""
    check_first(first)
    cursor = parse_after(after)
    session = info.context.session
    actor = info.context.actor
    rows = await repository.page_newest_first(session, actor, flt, first=first, after=cursor)
    return connection(  # type: ignore[return-value]
        rows, first=first, after=cursor, count=lambda: repository.count(session, actor, flt)
    )


@strawberry.type
class OrderQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("users:read")],
        description="One order by id or by the store's external id.",
    )
    async def order(
        self, info: Info, id: strawberry.ID | None = None, external_id: str | None = None
    ) -> Order | None:
        if (id is None) == (external_id is None):
            raise bad_input("give exactly one of `id` and `externalId`")
        if external_id is not None and "\x00" in external_id:  # PostgreSQL text cannot hold NUL
            return None
        if id is not None:
            found: OrderRow | None = await info.context.loader("order", order_loader).load(
                order_pk(id)
            )
            return found  # type: ignore[return-value]
        rows = await repository.by_external_ids(info.context.session, [external_id or ""])
        row = rows.get(external_id or "")
        actor = info.context.actor
        if row is None or (actor.customer_id is not None and row.customer_id != actor.customer_id):
            return None
        return row  # type: ignore[return-value]

    @strawberry.field(
        permission_classes=[RequireScopes("users:read")],
        description="Orders, newest first (placedAt), filtered.",
    )
    async def orders(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: OrderFilter | None = None,
    ) -> Connection[Order]:
        return await orders_page(info, _filter(filter), first, after)
