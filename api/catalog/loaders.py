"""Per-request DataLoaders for the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from strawberry.dataloader import DataLoader

from domain.catalog import repository
from domain.catalog.models import Category, Product

if TYPE_CHECKING:
    from api.context import Context


def product_loader(ctx: Context) -> DataLoader[int, Any]:
    async def load(ids: Sequence[int]) -> list[Product | None]:
        found = await repository.by_ids(ctx.session, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


def category_loader(ctx: Context) -> DataLoader[int, Any]:
    async def load(ids: Sequence[int]) -> list[Category | None]:
        found = await repository.categories_by_ids(ctx.session, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


def tags_loader(ctx: Context) -> DataLoader[int, list[str]]:
    async def load(ids: Sequence[int]) -> list[list[str]]:
        found = await repository.tags_for(ctx.session, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)


def children_loader(ctx: Context) -> DataLoader[int, list[Category]]:
    async def load(ids: Sequence[int]) -> list[list[Category]]:
        found = await repository.children_of(ctx.session, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)
