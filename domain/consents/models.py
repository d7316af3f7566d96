"""Consent: an append-only record per purpose; the latest record of a purpose wins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from domain.columns import BigId, UTCDateTime, utcnow

PURPOSES = ("personalization", "analytics", "email", "push", "sms", "inapp", "third_party")


class Consent(SQLModel, table=True):
    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_customer_id_purpose_id", "customer_id", "purpose", "id"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    customer_id: int = Field(
        sa_column=Column(BigId, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    )
    purpose: str = Field(max_length=32)
    granted: bool
    source: str = Field(max_length=64)
    policy_version: str = Field(max_length=64)
    actor_client_id: str = Field(max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
