"""The ``User`` type (a shopper), wrapping ``Customer`` rows directly."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.consents.types import UserConsents
from api.events.types import UsersReadOrSelf
from api.execution import fast_resolver
from api.ids import encode_id
from api.relay import Connection, Node
from api.users.loaders import tags_loader
from domain.keys import Keys
from domain.users.models import Customer
from domain.users.service import mask_email, mask_phone

if TYPE_CHECKING:
    from api.events.types import Event
    from api.orders.types import Order
    from api.profiles.types import Profile
    from api.segments.types import SegmentMembership


def _pii(info: Info, root: Customer, column: str, mask: Any) -> str | None:
    encrypted = getattr(root, column)
    if encrypted is None:
        return None
    keys: Keys = info.context.services.keys
    value = keys.decrypt(encrypted)
    ctx = info.context
    principal = ctx.principal
    # Unmasked for users:pii, and for a shopper token reading its own customer; both are audited.
    if ctx.has("users:pii") or (principal is not None and principal.customer_id == root.id):
        ctx.audit_read("User", root.id, column.removesuffix("_encrypted"))
        return value
    return mask(value)


@fast_resolver
def global_id(root: Any, info: Any = None) -> str:
    """``User.id``, also run by graphql-core directly (see ``FAST_RESOLVERS``)."""
    return encode_id("User", root.id)


@strawberry.type(description="A shopper known to the store.")
class User(Node):
    external_id: str = strawberry.field(description="The store's own id for this shopper.")
    first_name: str | None
    last_name: str | None
    locale: str | None = strawberry.field(description="BCP 47 language tag, e.g. de-AT.")
    timezone: str | None = strawberry.field(description="IANA time zone, e.g. Europe/Vienna.")
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 country code.")
    region: str | None
    gender: str | None
    birth_date: date | None
    occupation: str | None
    attributes: JSON = strawberry.field(description="Custom attributes (a JSON object).")
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]
    @staticmethod
    def id(root: Customer) -> strawberry.ID:
        return strawberry.ID(global_id(root))

    @strawberry.field(description="Email; masked (a***@example.com) without the users:pii scope.")
    @staticmethod
    def email(root: Customer, info: Info) -> str | None:
        return _pii(info, root, "email_encrypted", mask_email)

    @strawberry.field(description="Phone in E.164; masked without the users:pii scope.")
    @staticmethod
    def phone(root: Customer, info: Info) -> str | None:
        return _pii(info, root, "phone_encrypted", mask_phone)

    @strawberry.field(description="Tags, sorted.")
    @staticmethod
    async def tags(root: Customer, info: Info) -> list[str]:
        result: list[str] = await info.context.loader("user_tags", tags_loader).load(root.id)
        return result

    @strawberry.field(description="Consent per purpose: current state and history.")
    @staticmethod
    def consents(root: Customer) -> UserConsents:
        return UserConsents(customer_id=root.id or 0)

    @strawberry.field(
        permission_classes=[UsersReadOrSelf],
        description="The user's behaviour events, newest first (users:read, or the shopper's "
        "own token through `me`).",
    )
    @staticmethod
    async def events(
        root: Customer,
        info: Info,
        first: int = 20,
        after: str | None = None,
        type: str | None = None,
    ) -> Connection[Annotated[Event, strawberry.lazy("api.events.types")]]:
        from api.events.queries import user_events

        return await user_events(info, root.id or 0, first, after, type)

    @strawberry.field(
        permission_classes=[UsersReadOrSelf],
        description="The user's orders, newest first (users:read, or the shopper's own token "
        "through `me`).",
    )
    @staticmethod
    async def orders(
        root: Customer, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[Annotated[Order, strawberry.lazy("api.orders.types")]]:
        from api.orders.queries import orders_page
        from domain.orders.repository import OrderFilter

        return await orders_page(info, OrderFilter(customer_id=root.id or 0), first, after)

    @strawberry.field(
        description="Derived profile (RFM, lifecycle, CLV, interests, active hours); a default "
        "profile until the first recompute."
    )
    @staticmethod
    async def profile(
        root: Customer, info: Info
    ) -> Annotated[Profile, strawberry.lazy("api.profiles.types")]:
        from api.profiles.loaders import profile_loader
        from api.profiles.types import Profile

        row = await info.context.loader("user_profile", profile_loader).load(root.id)
        return Profile(row)

    @strawberry.field(
        permission_classes=[RequireScopes("segments:read")],
        description="The active segments the user is in now, with the time each was entered "
        "(needs segments:read, else null with a FORBIDDEN error; not for shopper tokens).",
    )
    @staticmethod
    async def segments(
        root: Customer, info: Info
    ) -> list[Annotated[SegmentMembership, strawberry.lazy("api.segments.types")]] | None:
        from api.segments.types import user_segments

        return await user_segments(info, root.id or 0)  # type: ignore[return-value]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, Customer)


# Resolvers graphql-core calls without Strawberry's per-call wrapping (an ``Info``, argument
# conversion, the extension chain): fields on every row of a list, with no arguments, permissions
# or extensions. The Strawberry resolver above still defines the field in the schema.
FAST_RESOLVERS = {("User", "id"): global_id}
