"""Reads the API needs beside the service's: batches for DataLoaders (many ids, one query) and
counts for connections."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.segments.models import SegmentTransition, SegmentVersion


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


async def count_transitions(session: AsyncSession, segment_id: int) -> int:
    stmt = select(func.count()).where(col(SegmentTransition.segment_id) == segment_id)
    return int(await session.scalar(stmt) or 0)
