"""Per-request DataLoaders for orders and their lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from domain.orders import repository
from domain.orders.models import Order, OrderLine

if TYPE_CHECKING:
    from api.context import Context


def lines_loader(ctx: Context) -> DataLoader[int, list[OrderLine]]:
    async def load(ids: Sequence[int]) -> list[list[OrderLine]]:
        found = await repository.lines_for(ctx.session, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)


def order_loader(ctx: Context) -> DataLoader[int, Order | None]:
    async def load(ids: Sequence[int]) -> list[Order | None]:
        found = await repository.by_ids(ctx.session, ctx.actor, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)
