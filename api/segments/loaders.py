"""Per-request DataLoaders for segments, their history and a user's memberships."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from domain.segments import repository, service
from domain.segments.models import Segment, SegmentVersion

if TYPE_CHECKING:
    from api.context import Context


def segment_loader(ctx: Context) -> DataLoader[int, Segment | None]:
    async def load(ids: Sequence[int]) -> list[Segment | None]:
        found = await service.get_segments(ctx.session, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


def history_loader(ctx: Context) -> DataLoader[int, list[SegmentVersion]]:
    async def load(ids: Sequence[int]) -> list[list[SegmentVersion]]:
        found = await repository.history_for(ctx.session, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)


def memberships_loader(ctx: Context) -> DataLoader[int, list[tuple[Segment, datetime]]]:
    async def load(ids: Sequence[int]) -> list[list[tuple[Segment, datetime]]]:
        found = await service.customers_segments(ctx.session, ids)
        return [found.get(i, []) for i in ids]

    return DataLoader(load_fn=load)
