"""Per-request DataLoaders for customers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from domain.users import repository
from domain.users.models import Customer

if TYPE_CHECKING:
    from api.context import Context


def tags_loader(ctx: Context) -> DataLoader[int, list[str]]:
    async def load(ids: Sequence[int]) -> list[list[str]]:
        found = await repository.tags_for(ctx.session, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)


def user_loader(ctx: Context) -> DataLoader[int, Customer | None]:
    async def load(ids: Sequence[int]) -> list[Customer | None]:
        found = await repository.by_ids(ctx.session, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)
