"""What consent allows: one rule per use of the data, read from the append-only consent records.

The latest record of a purpose (highest id) wins. A shopper with no record for a purpose is treated
as ``settings.analytics_consent_default`` says (default: allowed; set it to false where the law or
the store's policy wants opt-in).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.consents.models import Consent
from domain.settings import Settings
from domain.sql import among, table

ANALYTICS = "analytics"


async def latest(
    session: AsyncSession, customer_ids: Iterable[int], purpose: str
) -> dict[int, bool]:
    """``{customer id: granted}`` from the latest record of ``purpose``; customers without a
    record are absent."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    t = table(Consent)
    newest = (
        select(func.max(t.c.id))
        .where(t.c.purpose == purpose, among(session, t.c.customer_id, ids))
        .group_by(t.c.customer_id)
    )
    rows = await session.execute(select(t.c.customer_id, t.c.granted).where(t.c.id.in_(newest)))
    return {customer_id: bool(granted) for customer_id, granted in rows}


async def analytics_withheld(
    session: AsyncSession, customer_ids: set[int], settings: Settings
) -> set[int]:
    """The customers among ``customer_ids`` whose behaviour may not be linked to them."""
    if not customer_ids:
        return set()
    found = await latest(session, customer_ids, ANALYTICS)
    default = settings.analytics_consent_default
    return {c for c in customer_ids if not found.get(c, default)}
