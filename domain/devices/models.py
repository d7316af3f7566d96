"""Push devices registered by apps (registration arrives with the delivery issue; the table is here
so exports and erasure cover it from the start)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey
from sqlmodel import Field, SQLModel

from domain.columns import BigId, UTCDateTime, utcnow


class Device(SQLModel, table=True):
    __tablename__ = "device"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    customer_id: int = Field(
        sa_column=Column(
            BigId, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    platform: str = Field(max_length=16)  # ios, android, web
    token_encrypted: str
    token_hash: str = Field(max_length=64, unique=True)
    app_version: str | None = Field(default=None, max_length=32)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    invalidated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
