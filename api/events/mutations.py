"""Event mutations: ``trackEvents`` (batches of up to 500) and ``identify``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.errors import convert, error_type, to_errors
from api.ids import BadId, decode_id
from api.users.queries import find_user
from api.users.types import User
from domain.errors import DomainError
from domain.events import service
from domain.segments.membership import EVERYTHING, queue_after_events, queue_reevaluation

TRACK_CODES = [
    "INVALID",
    "REQUIRED",
    "UNKNOWN_FIELD",
    "TOO_MANY",
    "TOO_LARGE",
    "INVALID_TYPE",
    "INVALID_ID",
    "INVALID_VALUE",
    "INVALID_CURRENCY",
    "INVALID_RATING",
    "INVALID_PROPERTIES",
    "INVALID_TIME",
    "TOO_OLD",
    "TOO_NEW",
    "UNKNOWN_USER",
    "UNKNOWN_PRODUCT",
    "FORBIDDEN_USER",
]
TrackEventsError, TrackEventsErrorCode = error_type(
    "TrackEvents",
    TRACK_CODES,
    "Why an event was rejected (`index` is its position), or why the whole call was refused "
    "(no `index`: TOO_MANY, FORBIDDEN_USER; then nothing was stored).",
)
IdentifyError, IdentifyErrorCode = error_type(
    "Identify",
    ["INVALID", "REQUIRED", "NOT_FOUND", "ALREADY_LINKED", "FORBIDDEN_USER"],
    "Why identify was refused; nothing was changed.",
)


@strawberry.input(
    description="One behaviour event. Name the user (userId or userExternalId) or send an "
    "anonymousId; a shopper token's events are always its own."
)
class EventInput:
    client_event_id: str = strawberry.field(
        description="Your unique id for this event (1-128 characters); resending it is harmless."
    )
    type: str = strawberry.field(
        description="view, search, add_to_cart, remove_from_cart, purchase, review, favorite, "
        "share, message_open, message_click, or custom:<name>."
    )
    user_id: strawberry.ID | None = strawberry.UNSET
    user_external_id: str | None = strawberry.UNSET
    anonymous_id: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Device or browser id of a visitor not (yet) identified.",
    )
    product_external_id: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Needed by view, add_to_cart, remove_from_cart, favorite, review.",
    )
    properties: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="A JSON object, at most 4 KiB by default."
    )
    value: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Decimal amount; a purchase needs value and currency."
    )
    currency: str | None = strawberry.field(default=strawberry.UNSET, description="ISO 4217 code.")
    channel: str | None = strawberry.UNSET
    campaign_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="message_open/message_click need campaignId or messageId.",
    )
    message_id: strawberry.ID | None = strawberry.UNSET
    rating: int | None = strawberry.field(
        default=strawberry.UNSET, description="1-5; a review needs it."
    )
    query: str | None = strawberry.field(default=strawberry.UNSET, description="A search needs it.")
    recommendation_id: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The recommendationId of the recommendation answer this event follows (send "
        "it with the view of a recommended product you clicked and with the purchase): online "
        "A/B experiments attribute clicks and conversions with it. 32 lowercase hex characters.",
    )
    occurred_at: datetime | None = strawberry.field(
        default=strawberry.UNSET,
        description="With offset; defaults to the time the server receives it.",
    )


@strawberry.input
class TrackEventsInput:
    events: list[EventInput] = strawberry.field(description="At most 500.")


@strawberry.type
class TrackEventsPayload:
    accepted: int = strawberry.field(description="Events stored by this call.")
    duplicates: int = strawberry.field(
        description="Valid events already stored (or repeated in the batch); not stored again."
    )
    rejected: int = strawberry.field(description="Invalid events; see errors.")
    unlinked: int = strawberry.field(
        description="Accepted events stored without a link to their shopper (no analytics consent)."
    )
    errors: list[TrackEventsError]  # type: ignore[valid-type]


@strawberry.input(description="Merge an anonymous visitor into a user.")
class IdentifyInput:
    anonymous_id: str
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="Give userId or userExternalId; a shopper token may omit both."
    )
    user_external_id: str | None = None


@strawberry.type
class IdentifyPayload:
    user: User | None
    created: bool = strawberry.field(description="False if the link already existed.")
    events_moved: int
    orders_moved: int
    errors: list[IdentifyError]  # type: ignore[valid-type]


def _id_pk(value: str, kind: str | None) -> Any:
    """A global id to its primary key. Campaign and message ids (``kind`` None) may also be plain
    numbers. A malformed id goes on as a string the service refuses for that event alone."""
    if kind is None and value.isdigit():
        return int(value)
    try:
        return decode_id(value, kind)[1]
    except BadId:
        return value if not value.isdigit() else f"#{value}"


def items_of(events: list[EventInput]) -> list[dict[str, Any]]:
    """The service's items from Strawberry's ``EventInput`` objects (the path taken when the fast
    path below is not installed): the same conversion as from graphql-core's coerced values."""
    camel = {snake: camel for camel, snake in _GRAPHQL_NAMES}
    camel.update(user_id="userId", campaign_id="campaignId", message_id="messageId")
    return items_of_coerced(
        [
            {camel[k]: v for k, v in vars(e).items() if v is not strawberry.UNSET and k in camel}
            for e in events
        ]
    )


@strawberry.type
class EventMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes("events:write")],
        description="Record up to 500 behaviour events. Valid events are stored, invalid ones "
        "rejected with their index; a repeated clientEventId is counted as a duplicate.",
    )
    async def track_events(self, info: Info, input: TrackEventsInput) -> TrackEventsPayload:
        ctx = info.context
        items = items_of(input.events)
        try:
            result = await service.track_events(
                ctx.session,
                ctx.actor,
                items,
                ctx.services.settings,
                touch=None if ctx.services.touch is None else ctx.services.touch.add,
            )
        except DomainError as exc:
            return TrackEventsPayload(
                accepted=0,
                duplicates=0,
                rejected=len(input.events),
                unlinked=0,
                errors=to_errors(TrackEventsError, TrackEventsErrorCode, exc),
            )
        if result.accepted:
            queue_after_events(ctx.jobs, f"{ctx.request_id}:events", items, ctx.actor.customer_id)
        return TrackEventsPayload(
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=result.rejected,
            unlinked=result.unlinked,
            errors=[convert(TrackEventsError, TrackEventsErrorCode, e) for e in result.errors],
        )

    @strawberry.mutation(
        permission_classes=[RequireScopes("events:write")],
        description="Merge an anonymous visitor into a user: past events and orders follow. An "
        "anonymous id already merged into another user is refused (users are never merged).",
    )
    async def identify(self, info: Info, input: IdentifyInput) -> IdentifyPayload:
        ctx = info.context
        actor = ctx.actor
        try:
            if input.user_id is None and input.user_external_id is None:
                if actor.customer_id is None:
                    raise DomainError.one(
                        "REQUIRED", "give userId or userExternalId", "input", "userId"
                    )
                customer_id = actor.customer_id
            else:
                found = await find_user(info, input.user_id, input.user_external_id)
                customer_id = found.id if found is not None and found.id is not None else 0
            result = await service.identify(
                ctx.session, actor, input.anonymous_id, customer_id, settings=ctx.services.settings
            )
        except DomainError as exc:
            return IdentifyPayload(
                user=None,
                created=False,
                events_moved=0,
                orders_moved=0,
                errors=to_errors(IdentifyError, IdentifyErrorCode, exc),
            )
        queue_reevaluation(
            ctx.jobs, f"{ctx.request_id}:identify", EVERYTHING, customer_ids=[result.customer_id]
        )
        from api.users.loaders import user_loader

        user = await ctx.loader("user", user_loader).load(result.customer_id)
        return IdentifyPayload(
            user=user,
            created=result.created,
            events_moved=result.events_moved,
            orders_moved=result.orders_moved,
            errors=[],
        )


# --- the trackEvents fast path ----------------------------------------------------------------
#
# Strawberry turns the coerced ``input`` of a call into 500 ``EventInput`` dataclasses, walking
# every field of every event through its type machinery: measured at about 3/4 of a 500-event
# request's server time (docs/benchmarks.md). graphql-core has by then already validated and
# coerced the variables against the typed schema (``EventInput`` with its scalars: DateTime,
# Decimal, JSON, ID), so the resolver below takes graphql-core's coerced dicts directly. The
# schema, its validation and the field's permission classes are unchanged: the permissions are
# read from the Strawberry field and run first, exactly as Strawberry would.

_GRAPHQL_NAMES = tuple(
    (camel, snake)
    for snake, camel in (
        ("client_event_id", "clientEventId"),
        ("type", "type"),
        ("user_external_id", "userExternalId"),
        ("anonymous_id", "anonymousId"),
        ("product_external_id", "productExternalId"),
        ("properties", "properties"),
        ("value", "value"),
        ("currency", "currency"),
        ("channel", "channel"),
        ("rating", "rating"),
        ("query", "query"),
        ("recommendation_id", "recommendationId"),
        ("occurred_at", "occurredAt"),
    )
)


def items_of_coerced(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The service's items from graphql-core's coerced ``EventInput`` values (GraphQL names)."""
    items = []
    for event in events:
        get = event.get
        item = {snake: event[camel] for camel, snake in _GRAPHQL_NAMES if get(camel) is not None}
        if get("userId") is not None:
            item["user_id"] = _id_pk(event["userId"], "User")
        if get("campaignId") is not None:
            item["campaign_id"] = _id_pk(event["campaignId"], None)
        if get("messageId") is not None:
            item["message_id"] = _id_pk(event["messageId"], None)
        items.append(item)
    return items


def install_fast_path(schema: Any) -> None:
    """Resolve ``Mutation.trackEvents`` from graphql-core's coerced input (see above)."""
    from strawberry.permission import PermissionExtension
    from strawberry.schema.schema_converter import GraphQLCoreConverter
    from strawberry.types.field import StrawberryField

    field = schema.mutation_type.fields["trackEvents"]
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or any(
        not isinstance(e, PermissionExtension) for e in definition.extensions
    ):
        raise RuntimeError("trackEvents is not the plain Strawberry field the fast path expects")
    permissions = [cls() for cls in definition.permission_classes]

    async def resolve(root: Any, info: Any, input: dict[str, Any]) -> TrackEventsPayload:
        for permission in permissions:
            if not permission.has_permission(root, info):  # ours raise UNAUTHENTICATED/FORBIDDEN
                permission.on_unauthorized()
        ctx = info.context
        events = input["events"]
        items = items_of_coerced(events)
        try:
            result = await service.track_events(
                ctx.session,
                ctx.actor,
                items,
                ctx.services.settings,
                touch=None if ctx.services.touch is None else ctx.services.touch.add,
            )
        except DomainError as exc:
            return TrackEventsPayload(
                accepted=0,
                duplicates=0,
                rejected=len(events),
                unlinked=0,
                errors=to_errors(TrackEventsError, TrackEventsErrorCode, exc),
            )
        if result.accepted:
            queue_after_events(ctx.jobs, f"{ctx.request_id}:events", items, ctx.actor.customer_id)
        return TrackEventsPayload(
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=result.rejected,
            unlinked=result.unlinked,
            errors=[convert(TrackEventsError, TrackEventsErrorCode, e) for e in result.errors],
        )

    field.resolve = resolve
