"""Every query on the catalog: categories, products and their tags."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.catalog.models import Category, Product, ProductTag
from domain.sql import count_matching, keyset_page, rows_by, tags_by_owner

PATH_SEPARATOR = " > "


@dataclass(frozen=True)
class ProductFilter:
    category_id: int | None = None
    brand: str | None = None
    tag: str | None = None
    in_stock: bool | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    include_archived: bool = False


def in_stock() -> Any:
    """Untracked stock (NULL) counts as in stock."""
    return or_(col(Product.stock).is_(None), col(Product.stock) > 0)


def subtree(category_id: int) -> Select[tuple[int]]:
    """Ids of a category and all of its descendants (a recursive CTE on ``parent_id``)."""
    tree = (
        select(col(Category.id))
        .where(col(Category.id) == category_id)
        .cte(name="category_tree", recursive=True)
    )
    tree = tree.union_all(select(col(Category.id)).where(col(Category.parent_id) == tree.c.id))
    return select(tree.c.id)


def filtered(flt: ProductFilter) -> Select[Product]:
    stmt = select(Product)
    if not flt.include_archived:
        stmt = stmt.where(col(Product.archived_at).is_(None))
    if flt.category_id is not None:
        stmt = stmt.where(col(Product.category_id).in_(subtree(flt.category_id)))
    if flt.brand is not None:
        stmt = stmt.where(col(Product.brand) == flt.brand)
    if flt.tag is not None:
        stmt = stmt.where(
            exists().where(
                col(ProductTag.product_id) == col(Product.id), col(ProductTag.tag) == flt.tag
            )
        )
    if flt.in_stock is True:
        stmt = stmt.where(in_stock())
    elif flt.in_stock is False:
        stmt = stmt.where(~in_stock())
    if flt.min_price is not None:
        stmt = stmt.where(col(Product.price) >= flt.min_price)
    if flt.max_price is not None:
        stmt = stmt.where(col(Product.price) <= flt.max_price)
    return stmt


async def page(
    session: AsyncSession, flt: ProductFilter, *, first: int, after: int | None
) -> list[Product]:
    """Keyset page ordered by id; ``first + 1`` rows so the caller knows if more exist."""
    return await keyset_page(session, filtered(flt), col(Product.id), first=first, after=after)


async def count(session: AsyncSession, flt: ProductFilter) -> int:
    return await count_matching(session, filtered(flt), col(Product.id))


async def by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Product]:
    return await rows_by(session, col(Product.id), ids)


async def by_external_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Product]:
    return await rows_by(session, col(Product.external_id), ids)


async def tags_for(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    return await tags_by_owner(session, ProductTag, "product_id", ids)


def _by_path(session: AsyncSession) -> Any:
    # Byte order keeps every category right before its sub-categories; PostgreSQL's default
    # collation may ignore spaces and punctuation, so ask for "C" there.
    if session.get_bind().dialect.name == "postgresql":
        return col(Category.path).collate("C")
    return col(Category.path)


async def categories(session: AsyncSession) -> list[Category]:
    """Every category, ordered by path (each one before its sub-categories)."""
    return list(await session.scalars(select(Category).order_by(_by_path(session))))


async def categories_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Category]:
    if not ids:
        return {}
    rows = await session.scalars(select(Category).where(col(Category.id).in_(ids)))
    return {row.id: row for row in rows if row.id is not None}


async def categories_by_paths(session: AsyncSession, paths: Sequence[str]) -> dict[str, Category]:
    if not paths:
        return {}
    rows = await session.scalars(select(Category).where(col(Category.path).in_(paths)))
    return {row.path: row for row in rows}


async def children_of(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[Category]]:
    """Direct sub-categories of each parent id, ordered by path."""
    result: dict[int, list[Category]] = defaultdict(list)
    if not ids:
        return result
    rows = await session.scalars(
        select(Category).where(col(Category.parent_id).in_(ids)).order_by(_by_path(session))
    )
    for row in rows:
        if row.parent_id is not None:
            result[row.parent_id].append(row)
    return result
