"""The ``Event`` type (a behaviour event), wrapping ``Event`` rows directly."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import Forbidden, Unauthenticated
from api.catalog.loaders import product_loader
from api.ids import encode_id
from api.relay import Node
from domain.events.models import Event as EventRow

if TYPE_CHECKING:
    from api.catalog.types import Product


class UsersReadOrSelf(BasePermission):
    """On ``User`` fields: the caller holds ``users:read``, or is a shopper token reading its own
    customer (reached through ``me``)."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated(info.context.auth_error or "a valid access token is required")
        if principal.has("users:read"):
            return True
        if principal.customer_id is not None and principal.customer_id == source.id:
            return True
        raise Forbidden("missing scope(s): users:read")


@strawberry.type(description="A behaviour event (a view, a purchase, a message click...).")
class Event(Node):
    client_event_id: str = strawberry.field(
        description="The sender's id; makes sending idempotent."
    )
    type: str = strawberry.field(description="A built-in type or custom:<name>.")
    channel: str | None
    currency: str | None = strawberry.field(description="ISO 4217, with `value`.")
    occurred_at: datetime
    received_at: datetime

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]
    @staticmethod
    def id(root: EventRow) -> strawberry.ID:
        return strawberry.ID(encode_id("Event", root.id or 0))

    @strawberry.field(description="Custom properties (a JSON object; rating and query included).")
    @staticmethod
    def properties(root: EventRow) -> JSON:
        return root.properties  # type: ignore[return-value]

    @strawberry.field(description="Monetary value as a decimal string, in `currency`.")
    @staticmethod
    def value(root: EventRow) -> str | None:
        return None if root.value is None else f"{root.value:.2f}"

    @strawberry.field(description="The product the event is about, if any.")
    @staticmethod
    async def product(
        root: EventRow, info: Info
    ) -> Annotated[Product, strawberry.lazy("api.catalog.types")] | None:
        if root.product_id is None:
            return None
        found: Any = await info.context.loader("product", product_loader).load(root.product_id)
        return found  # type: ignore[no-any-return]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, EventRow)
