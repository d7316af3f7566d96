"""The audit log: every read of unmasked PII and every write."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from domain.columns import BigId, JsonDoc, UTCDateTime, utcnow


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_at_id", "at", "id"),
        Index("ix_audit_entry_resource", "resource_type", "resource_id"),
        Index("ix_audit_entry_request_id", "request_id"),  # auditLog(filter: {requestId})
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    client_id: str = Field(max_length=64, index=True)
    subject: str = Field(max_length=128)
    action: str = Field(max_length=64, index=True)
    resource_type: str = Field(max_length=32)
    resource_id: str | None = Field(default=None, max_length=128)
    # Names of the fields read (PII) or written; never their values.
    fields: list[str] = Field(default_factory=list, sa_type=JsonDoc, nullable=False)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    request_id: str | None = Field(default=None, max_length=64)
