"""Every query on customers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.sql import count_matching, keyset_page, rows_by, tags_by_owner
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
    return await rows_by(session, col(Customer.id), ids)


async def by_external_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Customer]:
    return await rows_by(session, col(Customer.external_id), ids)


async def tags_for(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    return await tags_by_owner(session, CustomerTag, "customer_id", ids)
