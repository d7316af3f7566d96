"""User queries: thin resolvers over the users repository."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.ids import BadId, decode_id
from api.relay import Connection, check_first, connection, parse_after
from api.users.loaders import user_loader
from api.users.types import User
from domain import validation as v
from domain.users import repository
from domain.users.models import Customer


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


@strawberry.input(description="Filters on users; all given filters must match.")
class UserFilter:
    email: str | None = strawberry.field(default=None, description="Exact email (any case).")
    country: str | None = None
    tag: str | None = None
    created_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_before: datetime | None = strawberry.field(default=None, description="Exclusive.")


def user_pk(id: str) -> int:
    try:
        return decode_id(id, "User")[1]
    except BadId as exc:
        raise bad_input(str(exc)) from exc


async def find_user(
    info: Info, id: strawberry.ID | None, external_id: str | None
) -> Customer | None:
    if (id is None) == (external_id is None):
        raise bad_input("give exactly one of `id` and `externalId`")
    if id is not None:
        loaded: Customer | None = await info.context.loader("user", user_loader).load(user_pk(id))
        return loaded
    found = await repository.by_external_ids(info.context.session, [str(external_id)])
    return found.get(str(external_id))


def _filter(info: Info, flt: UserFilter | None) -> repository.UserFilter:
    if flt is None:
        return repository.UserFilter()
    email_hash = None
    try:
        if flt.email is not None:
            email_hash = info.context.services.keys.lookup_hash("email", v.email(flt.email))
        country = v.country(flt.country) if flt.country is not None else None
    except v.Invalid as exc:
        raise bad_input(str(exc)) from exc
    for name in ("created_after", "created_before"):
        value = getattr(flt, name)
        if value is not None and value.tzinfo is None:
            raise bad_input(f"{name} needs a time zone offset")
    return repository.UserFilter(
        email_hash=email_hash,
        country=country,
        tag=flt.tag,
        created_after=flt.created_after,
        created_before=flt.created_before,
    )


@strawberry.type
class UserQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("users:read")],
        description="One user by id or by the store's external id.",
    )
    async def user(
        self, info: Info, id: strawberry.ID | None = None, external_id: str | None = None
    ) -> User | None:
        return await find_user(info, id, external_id)  # type: ignore[return-value]

    @strawberry.field(
        permission_classes=[RequireScopes("users:read")],
        description="Users in creation order, filtered.",
    )
    async def users(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: UserFilter | None = None,
    ) -> Connection[User]:
        check_first(first)
        cursor = parse_after(after)
        flt = _filter(info, filter)
        session = info.context.session
        rows = await repository.page(session, flt, first=first, after=cursor)
        return connection(
            rows, first=first, after=cursor, count=lambda: repository.count(session, flt)
        )
