"""Batch reads of segments for the API's DataLoaders (the single-segment reads are in the
service): many ids, one query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.segments.models import SegmentVersion


async def history_for(
    session: AsyncSession, segment_ids: Sequence[int]
) -> dict[int, list[SegmentVersion]]:
    """Every saved version of each segment, newest first (as ``service.history``)."""
    out: dict[int, list[SegmentVersion]] = defaultdict(list)
    if not segment_ids:
        return out
    rows = await session.scalars(
        select(SegmentVersion)
        .where(col(SegmentVersion.segment_id).in_(segment_ids))
        .order_by(col(SegmentVersion.segment_id), col(SegmentVersion.version).desc())
    )
    for row in rows:
        out[row.segment_id].append(row)
    return out
