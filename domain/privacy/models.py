"""Privacy requests (GDPR articles 15-21 and complaints) and the data exports they produce."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from domain.columns import BigId, UTCDateTime, utcnow

REQUEST_TYPES = ("access", "erasure", "rectification", "objection", "complaint")
REQUEST_STATUSES = ("open", "in_progress", "completed", "rejected")


class PrivacyRequest(SQLModel, table=True):
    __tablename__ = "privacy_request"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    type: str = Field(max_length=16, index=True)
    status: str = Field(default="open", max_length=16, index=True)
    # A plain number, not a foreign key: the request outlives the erasure it may ask for.
    customer_id: int | None = Field(default=None, sa_type=BigId, index=True)
    customer_external_id: str | None = Field(default=None, max_length=128)
    details: str = Field(default="")
    resolution: str | None = Field(default=None)
    requested_by_client_id: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class DataExport(SQLModel, table=True):
    """A complete JSON export of one shopper, gzip-compressed, fetchable by the requesting client
    until it expires."""

    __tablename__ = "data_export"

    id: str = Field(primary_key=True, max_length=64)
    customer_id: int = Field(sa_type=BigId, index=True)
    privacy_request_id: int | None = Field(default=None, sa_type=BigId)
    requested_by_client_id: str = Field(max_length=64)
    status: str = Field(default="queued", max_length=16)  # queued, running, ready, failed
    content_gzip: bytes | None = Field(default=None, sa_type=LargeBinary)
    size_bytes: int | None = Field(default=None)
    sha256: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    ready_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
