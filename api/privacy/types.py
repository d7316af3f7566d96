"""Privacy request and data export types."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from api.ids import encode_id
from domain.privacy import service
from domain.privacy.models import REQUEST_STATUSES, REQUEST_TYPES, DataExport, PrivacyRequest


@strawberry.enum(
    description="GDPR rights: access (art. 15), erasure (17), rectification (16), objection (21), "
    "and complaints."
)
class PrivacyRequestType(Enum):
    ACCESS = "access"
    ERASURE = "erasure"
    RECTIFICATION = "rectification"
    OBJECTION = "objection"
    COMPLAINT = "complaint"


@strawberry.enum(description="open -> in_progress -> completed | rejected (open may be rejected).")
class PrivacyRequestStatus(Enum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"


@strawberry.enum
class DataExportStatus(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


assert tuple(t.value for t in PrivacyRequestType) == REQUEST_TYPES
assert tuple(s.value for s in PrivacyRequestStatus) == REQUEST_STATUSES


@strawberry.type(
    name="PrivacyRequest", description="A privacy request from a shopper, tracked to its due date."
)
class PrivacyRequestNode:
    details: str
    resolution: str | None
    received_at: datetime
    due_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    requested_by_client_id: str

    @strawberry.field
    @staticmethod
    def id(root: PrivacyRequest) -> strawberry.ID:
        return strawberry.ID(encode_id("PrivacyRequest", root.id or 0))

    @strawberry.field
    @staticmethod
    def type(root: PrivacyRequest) -> PrivacyRequestType:
        return PrivacyRequestType(root.type)

    @strawberry.field
    @staticmethod
    def status(root: PrivacyRequest) -> PrivacyRequestStatus:
        return PrivacyRequestStatus(root.status)

    @strawberry.field(description="Unresolved (open or in progress) past the due date.")
    @staticmethod
    def overdue(root: PrivacyRequest) -> bool:
        return service.is_overdue(root)

    @strawberry.field(description="The shopper's global id (kept after erasure; resolves to null).")
    @staticmethod
    def user_id(root: PrivacyRequest) -> strawberry.ID | None:
        if root.customer_id is None:
            return None
        return strawberry.ID(encode_id("User", root.customer_id))

    @strawberry.field(description="The store's id for the shopper, as given when received.")
    @staticmethod
    def user_external_id(root: PrivacyRequest) -> str | None:
        return root.customer_external_id


@strawberry.type(name="DataExport", description="A complete JSON export of one shopper.")
class DataExportNode:
    created_at: datetime
    ready_at: datetime | None
    expires_at: datetime | None
    sha256: str | None = strawberry.field(description="SHA-256 (hex) of the JSON document.")

    @strawberry.field
    @staticmethod
    def id(root: DataExport) -> strawberry.ID:
        return strawberry.ID(root.id)

    @strawberry.field
    @staticmethod
    def status(root: DataExport) -> DataExportStatus:
        return DataExportStatus(root.status)

    @strawberry.field(description="Bytes of the JSON document (served gzip-encoded).")
    @staticmethod
    def size(root: DataExport) -> int | None:
        return root.size_bytes

    @strawberry.field(description="Why the export failed, if it did.")
    @staticmethod
    def error(root: DataExport) -> str | None:
        return root.error

    @strawberry.field(
        description="GET with a bearer token of the requesting client (privacy:manage); "
        "null until ready and after expiry."
    )
    @staticmethod
    def download_url(root: DataExport, info: Info) -> str | None:
        from domain.privacy.export import downloadable

        if not downloadable(root):
            return None
        request: Any = info.context.request
        return str(request.url_for("privacy_export", export_id=root.id))

    @strawberry.field
    @staticmethod
    def privacy_request_id(root: DataExport) -> strawberry.ID | None:
        if root.privacy_request_id is None:
            return None
        return strawberry.ID(encode_id("PrivacyRequest", root.privacy_request_id))
