"""``setConsents``: a partner or the store's back end records consent decisions for a shopper."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.consents.types import (
    ConsentInput,
    SetConsentsError,
    SetConsentsErrorCode,
    SetConsentsPayload,
    UserConsents,
    consent_items,
)
from api.errors import to_errors
from api.privacy.common import target_user
from domain.consents import service
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
            rows = await service.set_consents(
                info.context.session, info.context.actor, customer_id, consent_items(input.consents)
            )
        except DomainError as exc:
            return SetConsentsPayload(
                consents=[],
                state=None,
                errors=to_errors(SetConsentsError, SetConsentsErrorCode, exc),
            )
        return SetConsentsPayload(
            consents=rows,  # type: ignore[arg-type]
            state=UserConsents(customer_id=customer_id),
            errors=[],
        )
