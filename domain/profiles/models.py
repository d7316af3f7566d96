"""Shopper profiles: derived per customer, kept current by ingestion (cheap parts) and a scheduled
recompute (the rest)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, ForeignKey, Numeric
from sqlmodel import Field, SQLModel

from domain.columns import BigId, JsonDoc, UTCDateTime, utcnow

LIFECYCLE_STAGES = ("new", "active", "loyal", "at_risk", "churned")
SPEND_LEVELS = ("none", "low", "medium", "high", "top")


class CustomerProfile(SQLModel, table=True):
    __tablename__ = "customer_profile"

    customer_id: int = Field(
        sa_column=Column(BigId, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    # Updated on ingestion.
    first_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    event_count: int = Field(default=0)
    # Recomputed by the profile job.
    orders_count: int = Field(default=0)
    revenue: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2), nullable=False)
    currency: str | None = Field(default=None, max_length=3)
    first_order_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_order_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recency_days: int | None = Field(default=None)
    # Frequency and monetary value within the RFM window (orders_count and revenue are all time).
    rfm_frequency: int = Field(default=0)
    rfm_monetary: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2), nullable=False)
    r_score: int | None = Field(default=None)
    f_score: int | None = Field(default=None)
    m_score: int | None = Field(default=None)
    lifecycle_stage: str = Field(default="new", max_length=16, index=True)
    average_order_value: Decimal | None = Field(default=None, sa_type=Numeric(14, 2))
    clv_historical: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2), nullable=False)
    clv_predicted: Decimal | None = Field(default=None, sa_type=Numeric(14, 2))
    probability_alive: float | None = Field(default=None)
    expected_purchases: float | None = Field(default=None)
    spend_level: str = Field(default="none", max_length=16)
    top_categories: list[Any] = Field(default_factory=list, sa_type=JsonDoc, nullable=False)
    top_brands: list[Any] = Field(default_factory=list, sa_type=JsonDoc, nullable=False)
    # 24 counts: events per hour of the shopper's local day (their time zone, else UTC).
    active_hours: list[int] = Field(default_factory=list, sa_type=JsonDoc, nullable=False)
    computed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
