"""Per-request DataLoader for shopper profiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from domain.profiles import service
from domain.profiles.models import CustomerProfile

if TYPE_CHECKING:
    from api.context import Context


def profile_loader(ctx: Context) -> DataLoader[int, CustomerProfile]:
    async def load(ids: Sequence[int]) -> list[CustomerProfile]:
        found = await service.profiles_for(ctx.session, ids)
        return [found.get(i) or service.default_profile(i) for i in ids]

    return DataLoader(load_fn=load)
