"""The ``Me`` type: the shopper a shopper token is bound to."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from api.users.types import User
from domain.users.models import Customer


@strawberry.type(description="The shopper this shopper token is bound to, and the token itself.")
class Me:
    row: strawberry.Private[Customer]

    @strawberry.field(
        description="The shopper's own User: profile, consents, events and orders. Email and "
        "phone are shown unmasked (to this shopper only) and each read is audited."
    )
    def user(self) -> User:
        return self.row  # type: ignore[return-value]

    @strawberry.field(description="The scopes this token carries.")
    def scopes(self, info: Info) -> list[str]:
        return sorted(info.context.principal.scopes)

    @strawberry.field(description="When this token expires; exchange again before then.")
    def expires_at(self, info: Info) -> datetime:
        return datetime.fromtimestamp(info.context.principal.expires_at, UTC)
