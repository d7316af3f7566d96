"""``recommendationModels``: model versions with their metrics, newest first."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.recommend.types import ModelStatus, ModelVersion
from api.relay import Connection, check_first, connection, parse_after
from domain.recommend import service


@strawberry.type
class RecommendQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("models:write")],
        description="Recommendation model versions, newest first, with their offline metrics. "
        "Needs models:write (recommendations:read is what shopper tokens carry; model metrics are "
        "an operator's view).",
    )
    async def recommendation_models(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        status: ModelStatus | None = None,
    ) -> Connection[ModelVersion]:
        check_first(first)
        cursor = parse_after(after)
        value = None if status is None else status.value
        session = info.context.session
        rows = await service.list_versions(session, status=value, after=cursor, first=first + 1)
        return connection(  # type: ignore[return-value]
            rows,
            first=first,
            after=cursor,
            count=lambda: service.count_versions(session, status=value),
        )
