"""``Query.me``: only a shopper token, only its own customer."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes, ShopperOnly
from api.me.types import Me
from domain.auth import shoppers


@strawberry.type
class MeQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("me:read"), ShopperOnly],
        description="The shopper this shopper token is bound to (needs me:read; other tokens "
        "get FORBIDDEN). Null once the shopper has been erased.",
    )
    async def me(self, info: Info) -> Me | None:
        row = await shoppers.own_customer(info.context.session, info.context.actor)
        return None if row is None else Me(row=row)
