"""``Mutation.me``: changes a shopper token makes to its own customer. The customer always comes
from the token; no input names a user."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes, ShopperOnly
from api.consents.types import (
    ConsentInput,
    SetConsentsPayload,
    record_consents,
)


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
        return await record_consents(info, actor.customer_id, input.consents)


@strawberry.type
class MeRootMutations:
    @strawberry.field(
        permission_classes=[RequireScopes("me:write"), ShopperOnly],
        description="Changes to the shopper's own data (needs me:write; shopper tokens only).",
    )
    def me(self) -> MeMutations:
        return MeMutations()
