"""User mutations: one input, a payload with the result and typed errors."""

from __future__ import annotations

from datetime import date

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.errors import error_type, to_errors
from api.inputs import provided
from api.users.queries import find_user, user_pk
from api.users.types import User
from domain.audit import service as audit
from domain.errors import DomainError
from domain.segments.membership import USER_CHANGES, queue_reevaluation
from domain.users import service

COMMON = [
    "INVALID",
    "REQUIRED",
    "TOO_LONG",
    "UNKNOWN_FIELD",
    "INVALID_EMAIL",
    "INVALID_PHONE",
    "INVALID_TIMEZONE",
    "INVALID_COUNTRY",
    "INVALID_LOCALE",
    "INVALID_TAG",
    "INVALID_DATE",
    "INVALID_ATTRIBUTES",
    "TOO_MANY",
]

UpsertUsersError, UpsertUsersErrorCode = error_type(
    "UpsertUsers",
    [*COMMON, "INVALID_EXTERNAL_ID", "DUPLICATE"],
    "Why an item of upsertUsers was refused; `index` is the item's position.",
)
UpdateUserError, UpdateUserErrorCode = error_type(
    "UpdateUser", [*COMMON, "NOT_FOUND", "IMMUTABLE"], "Why updateUser was refused."
)
TagUsersError, TagUsersErrorCode = error_type(
    "TagUsers",
    ["INVALID", "REQUIRED", "TOO_MANY", "INVALID_TAG", "NOT_FOUND"],
    "Why tagUsers or untagUsers was refused.",
)


def _written(fields: dict[str, object]) -> list[str]:
    """The names of the fields a write sets (the audit log never holds values)."""
    return [name for name in fields if name != "external_id"]


@strawberry.input
class UserFields:
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.field(default=strawberry.UNSET, description="E.164.")
    first_name: str | None = strawberry.UNSET
    last_name: str | None = strawberry.UNSET
    locale: str | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    country: str | None = strawberry.UNSET
    region: str | None = strawberry.UNSET
    gender: str | None = strawberry.UNSET
    birth_date: date | None = strawberry.UNSET
    occupation: str | None = strawberry.UNSET
    attributes: JSON | None = strawberry.UNSET
    tags: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces all tags when given."
    )


@strawberry.input(description="A user to create or update, matched on externalId.")
class UserUpsertInput(UserFields):
    external_id: str


@strawberry.input
class UpsertUsersInput:
    users: list[UserUpsertInput] = strawberry.field(description="At most 100.")


@strawberry.type
class UpsertUsersPayload:
    users: list[User] = strawberry.field(description="In input order; empty if any item failed.")
    errors: list[UpsertUsersError]  # type: ignore[valid-type]


@strawberry.input(description="Fields to change; omitted fields stay, null clears.")
class UpdateUserInput(UserFields):
    id: strawberry.ID | None = None
    external_id: str | None = None


@strawberry.type
class UpdateUserPayload:
    user: User | None
    errors: list[UpdateUserError]  # type: ignore[valid-type]


@strawberry.input
class TagUsersInput:
    user_ids: list[strawberry.ID] = strawberry.field(description="At most 100.")
    tags: list[str]


@strawberry.type
class TagUsersPayload:
    users: list[User]
    errors: list[TagUsersError]  # type: ignore[valid-type]


def segments_after_users(info: Info, what: str, customer_ids: list[int | None]) -> None:
    """Re-evaluate the attribute and tag segments of these users once the request commits."""
    ctx = info.context
    queue_reevaluation(
        ctx.jobs, f"{ctx.request_id}:{what}", USER_CHANGES, customer_ids=customer_ids
    )


async def _tag(info: Info, input: TagUsersInput, *, add: bool) -> TagUsersPayload:
    try:
        if len(input.user_ids) > service.MAX_BATCH:
            raise DomainError.one(
                "TOO_MANY", f"at most {service.MAX_BATCH} users", "input", "userIds"
            )
        ids = [user_pk(i) for i in input.user_ids]
        found = await service.change_tags(info.context.session, ids, input.tags, add=add)
    except DomainError as exc:
        return TagUsersPayload(users=[], errors=to_errors(TagUsersError, TagUsersErrorCode, exc))
    from domain.users import repository

    actor = info.context.actor
    await audit.record_many(
        info.context.session,
        [
            audit.entry(
                actor, "user.tag" if add else "user.untag", "User", pk, details={"tags": input.tags}
            )
            for pk in found
        ],
    )
    segments_after_users(info, "tags", [*found])
    rows = await repository.by_ids(info.context.session, found)
    return TagUsersPayload(users=[rows[i] for i in found], errors=[])  # type: ignore[misc]


@strawberry.type
class UserMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes("users:write")],
        description="Create or update up to 100 users by externalId; all-or-nothing.",
    )
    async def upsert_users(self, info: Info, input: UpsertUsersInput) -> UpsertUsersPayload:
        items = [provided(u) for u in input.users]
        try:
            rows = await service.upsert_users(
                info.context.session, info.context.services.keys, items
            )
        except DomainError as exc:
            return UpsertUsersPayload(
                users=[], errors=to_errors(UpsertUsersError, UpsertUsersErrorCode, exc)
            )
        actor = info.context.actor
        await audit.record_many(
            info.context.session,
            [
                audit.entry(actor, "user.upsert", "User", row.id, fields=_written(item))
                for row, item in zip(rows, items, strict=True)
            ],
        )
        segments_after_users(info, "upsert", [row.id for row in rows])
        return UpsertUsersPayload(users=rows, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(permission_classes=[RequireScopes("users:write")])
    async def update_user(self, info: Info, input: UpdateUserInput) -> UpdateUserPayload:
        try:
            target = await find_user(info, input.id, input.external_id)
            if target is None or target.id is None:
                raise DomainError.one("NOT_FOUND", "no such user", "input", "id")
            fields = provided(input, skip=("id", "external_id"))
            row = await service.update_user(
                info.context.session, info.context.services.keys, target.id, fields
            )
        except DomainError as exc:
            return UpdateUserPayload(
                user=None, errors=to_errors(UpdateUserError, UpdateUserErrorCode, exc)
            )
        await audit.record(
            info.context.session,
            info.context.actor,
            "user.update",
            "User",
            row.id,
            fields=_written(fields),
        )
        segments_after_users(info, "update", [row.id])
        return UpdateUserPayload(user=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(permission_classes=[RequireScopes("users:write")])
    async def tag_users(self, info: Info, input: TagUsersInput) -> TagUsersPayload:
        return await _tag(info, input, add=True)

    @strawberry.mutation(permission_classes=[RequireScopes("users:write")])
    async def untag_users(self, info: Info, input: TagUsersInput) -> TagUsersPayload:
        return await _tag(info, input, add=False)
