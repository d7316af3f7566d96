"""``setConsents``: a partner or the store's back end records consent decisions for a shopper."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.consents.types import (
    ConsentInput,
    SetConsentsPayload,
    record_consents,
    refused_consents,
)
from api.privacy.common import target_user
from domain.errors import DomainError


@strawberry.input
class SetConsentsInput:
    user_id: strawberry.ID | None = None
    user_external_id: str | None = None
    consents: list[ConsentInput] = strawberry.field(description="At most 20, one per purpose.")


@strawberry.type
class ConsentMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes("users:write")],
        description="Append consent decisions for one shopper (all-or-nothing).",
    )
    async def set_consents(self, info: Info, input: SetConsentsInput) -> SetConsentsPayload:
        try:
            customer_id = await target_user(info, input.user_id, input.user_external_id)
        except DomainError as exc:
            return refused_consents(exc)
        return await record_consents(info, customer_id, input.consents)
