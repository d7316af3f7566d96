"""Every query on customers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.sql import count_matching, keyset_page
from domain.users.models import Customer, CustomerTag


@dataclass(frozen=True)
class UserFilter:
    email_hash: str | None = None
    country: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def filtered(flt: UserFilter) -> Select[Customer]:
    stmt = select(Customer)
    if flt.email_hash is not None:
        stmt = stmt.where(col(Customer.email_hash) == flt.email_hash)
    if flt.country is not None:
        stmt = stmt.where(col(Customer.country) == flt.country)
    if flt.tag is not None:
        stmt = stmt.where(
            exists().where(
                col(CustomerTag.customer_id) == col(Customer.id), col(CustomerTag.tag) == flt.tag
            )
        )
    if flt.created_after is not None:
        stmt = stmt.where(col(Customer.created_at) >= flt.created_after)
    if flt.created_before is not None:
        stmt = stmt.where(col(Customer.created_at) < flt.created_before)
    return stmt


async def page(
    session: AsyncSession, flt: UserFilter, *, first: int, after: int | None
) -> list[Customer]:
    """Keyset page ordered by id; ``first + 1`` rows so the caller knows if more exist."""
    return await keyset_page(session, filtered(flt), col(Customer.id), first=first, after=after)


async def count(session: AsyncSession, flt: UserFilter) -> int:
    return await count_matching(session, filtered(flt), col(Customer.id))


async def by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Customer]:
    if not ids:
        return {}
    rows = await session.scalars(select(Customer).where(Customer.id.in_(ids)))  # type: ignore[union-attr]
    return {row.id: row for row in rows if row.id is not None}


async def by_external_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Customer]:
    if not ids:
        return {}
    rows = await session.scalars(select(Customer).where(Customer.external_id.in_(ids)))  # type: ignore[attr-defined]
    return {row.external_id: row for row in rows}


async def tags_for(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return result
    rows = await session.execute(
        select(col(CustomerTag.customer_id), col(CustomerTag.tag))
        .where(col(CustomerTag.customer_id).in_(ids))
        .order_by(col(CustomerTag.customer_id), col(CustomerTag.tag))
    )
    for customer_id, tag in rows:
        result[customer_id].append(tag)
    return result
