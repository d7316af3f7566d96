"""``auditLog``: who did what, when, through which client and request (needs ``audit:read``)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.ids import encode_id
from api.relay import Connection, check_first, connection, parse_after
from api.users.queries import bad_input
from domain.audit import service
from domain.audit.models import AuditEntry as AuditRow


@strawberry.type(description="One audited action: a write, or a read of unmasked PII.")
class AuditEntry:
    at: datetime
    client_id: str = strawberry.field(description="The OAuth client that acted.")
    subject: str = strawberry.field(description="The token subject (client, shopper, CLI user).")
    action: str = strawberry.field(description='e.g. "user.erase", "consents.set", "pii.read".')
    resource_type: str
    resource_id: str | None
    fields: list[str] = strawberry.field(description="Names of the fields read or written.")
    details: JSON = strawberry.field(description="Counts and ids; never personal data.")
    request_id: str | None

    @strawberry.field
    @staticmethod
    def id(root: AuditRow) -> strawberry.ID:
        return strawberry.ID(encode_id("AuditEntry", root.id or 0))


@strawberry.input(description="Filters on the audit log; all given filters must match.")
class AuditLogFilter:
    client_id: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    request_id: str | None = None
    since: datetime | None = strawberry.field(default=None, description="Inclusive.")
    until: datetime | None = strawberry.field(default=None, description="Exclusive.")


def _filter(flt: AuditLogFilter | None) -> service.AuditFilter:
    if flt is None:
        return service.AuditFilter()
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value is not None and value.tzinfo is None:
            raise bad_input(f"{name} needs a time zone offset")
    for name in ("client_id", "action", "resource_type", "resource_id", "request_id"):
        value = getattr(flt, name)
        if value is not None and "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise bad_input(f"{name} contains a NUL character")
    return service.AuditFilter(
        client_id=flt.client_id,
        action=flt.action,
        resource_type=flt.resource_type,
        resource_id=flt.resource_id,
        request_id=flt.request_id,
        since=flt.since,
        until=flt.until,
    )


@strawberry.type
class AuditQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("audit:read")],
        description="The audit log, newest first.",
    )
    async def audit_log(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: AuditLogFilter | None = None,
    ) -> Connection[AuditEntry]:
        check_first(first)
        cursor = parse_after(after)
        flt = _filter(filter)
        session = info.context.session
        rows = await service.page(session, flt, first=first, after=cursor)
        return connection(
            rows, first=first, after=cursor, count=lambda: service.count(session, flt)
        )
