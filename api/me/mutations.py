"""``Mutation.me``: changes a shopper token makes to its own customer. The customer always comes
from the token; no input names a user."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes, ShopperOnly
from api.consents.types import (
    ConsentInput,
    SetConsentsError,
    SetConsentsErrorCode,
    SetConsentsPayload,
    UserConsents,
    consent_items,
)
from api.errors import to_errors
from domain.consents import service as consents
from domain.errors import DomainError


@strawberry.input(description="The shopper's own consent decisions.")
class MeSetConsentsInput:
    consents: list[ConsentInput] = strawberry.field(description="At most 20, one per purpose.")


@strawberry.type(description="Changes a shopper makes to its own data.")
class MeMutations:
    @strawberry.mutation(
        description="Append the shopper's own consent decisions (all-or-nothing); NOT_FOUND "
        "once the shopper has been erased."
    )
    async def set_consents(self, info: Info, input: MeSetConsentsInput) -> SetConsentsPayload:
        actor = info.context.actor
        assert actor.customer_id is not None  # ShopperOnly on Mutation.me
        try:
            rows = await consents.set_consents(
                info.context.session, actor, actor.customer_id, consent_items(input.consents)
            )
        except DomainError as exc:
            return SetConsentsPayload(
                consents=[],
                state=None,
                errors=to_errors(SetConsentsError, SetConsentsErrorCode, exc),
            )
        return SetConsentsPayload(
            consents=rows,  # type: ignore[arg-type]
            state=UserConsents(customer_id=actor.customer_id),
            errors=[],
        )


@strawberry.type
class MeRootMutations:
    @strawberry.field(
        permission_classes=[RequireScopes("me:write"), ShopperOnly],
        description="Changes to the shopper's own data (needs me:write; shopper tokens only).",
    )
    def me(self) -> MeMutations:
        return MeMutations()
