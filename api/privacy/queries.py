"""Privacy queries: the request log and data export status (``privacy:manage``)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.ids import BadId, decode_id
from api.privacy.types import (
    DataExportNode,
    PrivacyRequestNode,
    PrivacyRequestStatus,
    PrivacyRequestType,
)
from api.relay import Connection, check_first, connection, parse_after
from api.users.queries import bad_input
from domain.privacy import service
from domain.privacy.export import for_client


def request_pk(id: str) -> int:
    try:
        return decode_id(id, "PrivacyRequest")[1]
    except BadId as exc:
        raise bad_input(str(exc)) from exc


@strawberry.input(description="Filters on privacy requests; all given filters must match.")
class PrivacyRequestFilter:
    status: PrivacyRequestStatus | None = None
    type: PrivacyRequestType | None = None
    overdue: bool | None = strawberry.field(
        default=None, description="true: unresolved past due; false: all others."
    )


@strawberry.type
class PrivacyQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("privacy:manage")],
        description="Privacy requests, oldest first.",
    )
    async def privacy_requests(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: PrivacyRequestFilter | None = None,
    ) -> Connection[PrivacyRequestNode]:
        check_first(first)
        cursor = parse_after(after)
        flt = service.RequestFilter(
            status=filter.status.value if filter and filter.status else None,
            type=filter.type.value if filter and filter.type else None,
            overdue=filter.overdue if filter else None,
        )
        session = info.context.session
        rows = await service.page(session, flt, first=first, after=cursor)
        return connection(
            rows, first=first, after=cursor, count=lambda: service.count(session, flt)
        )

    @strawberry.field(permission_classes=[RequireScopes("privacy:manage")])
    async def privacy_request(self, info: Info, id: strawberry.ID) -> PrivacyRequestNode | None:
        from domain.privacy.models import PrivacyRequest

        return await info.context.session.get(PrivacyRequest, request_pk(id))  # type: ignore[no-any-return]

    @strawberry.field(
        permission_classes=[RequireScopes("privacy:manage")],
        description="A data export this client requested (null for anyone else's).",
    )
    async def data_export(self, info: Info, id: strawberry.ID) -> DataExportNode | None:
        actor = info.context.actor
        return await for_client(info.context.session, str(id), actor.client_id)  # type: ignore[return-value]
