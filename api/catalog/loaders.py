"""Per-request DataLoaders for the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from domain.catalog.models import Category, Product

if TYPE_CHECKING:
    from api.context import Context


def product_loader(ctx: Context) -> DataLoader[int, Any]:
    async def load(ids: Sequence[int]) -> list[Product | None]:
        rows = await ctx.session.scalars(select(Product).where(Product.id.in_(ids)))  # type: ignore[union-attr]
        found = {r.id: r for r in rows}
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


def category_loader(ctx: Context) -> DataLoader[int, Any]:
    async def load(ids: Sequence[int]) -> list[Category | None]:
        rows = await ctx.session.scalars(select(Category).where(Category.id.in_(ids)))  # type: ignore[union-attr]
        found = {r.id: r for r in rows}
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)
