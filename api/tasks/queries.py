"""Background task status: progress and result of imports and other long operations."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from domain.tasks.models import TaskRun


@strawberry.type(description="A background task (an import, a model refresh, ...).")
class Task:
    id: strawberry.ID
    kind: str
    status: str = strawberry.field(description="queued, running, done or failed.")
    total: int | None
    done: int
    result: JSON
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@strawberry.type
class TaskQueries:
    @strawberry.field(permission_classes=[RequireScopes("jobs:read")])
    async def task(self, info: Info, id: strawberry.ID) -> Task | None:
        row = await info.context.session.get(TaskRun, str(id)[:128])
        return row  # type: ignore[return-value]
