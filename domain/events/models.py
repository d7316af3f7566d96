"""Behaviour events, anonymous-id links and the daily aggregates kept after raw events are purged."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Numeric
from sqlmodel import Field, SQLModel

from domain.columns import BigId, JsonDoc, UTCDateTime, utcnow

# The built-in types of DESIGN section 2; any other name matching CUSTOM_TYPE is a custom type.
BUILTIN_TYPES = (
    "view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "review",
    "favorite",
    "share",
    "message_open",
    "message_click",
)
# Custom types are namespaced, so a misspelt built-in ("veiw") is refused instead of becoming a
# custom type silently: "custom:" then 1-57 lowercase letters, digits or _ . -
CUSTOM_TYPE = re.compile(r"^custom:[a-z0-9][a-z0-9_.-]{0,56}$")


class Event(SQLModel, table=True):
    """One behaviour event. ``client_event_id`` makes ingestion idempotent; ``customer_id`` is null
    for anonymous visitors (until ``identify``), for shoppers without analytics consent (stored
    unlinked) and after erasure."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_customer_id_occurred_at", "customer_id", "occurred_at"),
        Index("ix_event_occurred_at", "occurred_at"),
        Index("ix_event_anonymous_id", "anonymous_id"),
        Index("ix_event_product_id", "product_id"),
        # Segments: "did <type> (for these products) in the last N days, with count/value bounds"
        # reads only this index on PostgreSQL (index-only scan); docs/segments.md.
        Index(
            "ix_event_type_occurred_at_customer_id",
            "type",
            "occurred_at",
            "customer_id",
            postgresql_include=["product_id", "value", "currency", "order_id"],
        ),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    client_event_id: str = Field(max_length=128, unique=True)
    customer_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("customer.id", ondelete="SET NULL"))
    )
    anonymous_id: str | None = Field(default=None, max_length=128)
    type: str = Field(max_length=64)
    product_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("product.id", ondelete="SET NULL"))
    )
    properties: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    value: Decimal | None = Field(default=None, sa_type=Numeric(14, 2))
    currency: str | None = Field(default=None, max_length=3)
    channel: str | None = Field(default=None, max_length=32)
    campaign_id: int | None = Field(default=None, sa_type=BigId)
    message_id: int | None = Field(default=None, sa_type=BigId)
    order_id: int | None = Field(default=None, sa_type=BigId)
    source_client_id: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class IdentityLink(SQLModel, table=True):
    """An anonymous id (device or browser) merged into a customer by ``identify``."""

    __tablename__ = "identity_link"

    anonymous_id: str = Field(primary_key=True, max_length=128)
    customer_id: int = Field(
        sa_column=Column(
            BigId, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    source_client_id: str = Field(max_length=64)
    events_moved: int = Field(default=0)
    linked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class EventDaily(SQLModel, table=True):
    """Counts and value per day, type, product and channel: what remains of purged raw events."""

    __tablename__ = "event_daily"

    day: date = Field(primary_key=True)
    type: str = Field(primary_key=True, max_length=64)
    # 0 stands for "no product" and "" for "no channel"/"no currency", so the key has no nulls.
    product_id: int = Field(default=0, sa_type=BigId, primary_key=True)
    channel: str = Field(default="", primary_key=True, max_length=32)
    currency: str = Field(default="", primary_key=True, max_length=3)
    events: int = Field(default=0)
    customers: int = Field(default=0)
    value: Decimal = Field(default=Decimal(0), sa_type=Numeric(16, 2), nullable=False)
