"""Segment tables: the segment, its version history, current members and the transition log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from domain.columns import BigId, JsonDoc, UTCDateTime, utcnow

KINDS = ("dynamic", "static")
STATUSES = ("active", "archived")
TRANSITION_KINDS = ("enter", "exit")


class Segment(SQLModel, table=True):
    __tablename__ = "segment"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    # Built-in segments: "builtin:<name>"; user-made segments have none.
    key: str | None = Field(default=None, max_length=64, unique=True)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None)
    kind: str = Field(max_length=16)
    status: str = Field(default="active", max_length=16, index=True)
    builtin: bool = Field(default=False)
    # The definition JSON (see docs/segments.md); None for static segments.
    definition: dict[str, Any] | None = Field(default=None, sa_type=JsonDoc)
    version: int = Field(default=1)
    member_count: int = Field(default=0)
    refreshed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The definition version the current membership was computed from.
    refreshed_version: int | None = Field(default=None)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SegmentVersion(SQLModel, table=True):
    """One row per create or update: the segment's history."""

    __tablename__ = "segment_version"

    segment_id: int = Field(
        sa_column=Column(BigId, ForeignKey("segment.id", ondelete="CASCADE"), primary_key=True)
    )
    version: int = Field(primary_key=True)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None)
    definition: dict[str, Any] | None = Field(default=None, sa_type=JsonDoc)
    changed_by: str = Field(max_length=200)
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class SegmentMember(SQLModel, table=True):
    """Current members only; leaving deletes the row (the transition log keeps the history)."""

    __tablename__ = "segment_member"
    __table_args__ = (Index("ix_segment_member_customer_id", "customer_id"),)

    segment_id: int = Field(
        sa_column=Column(BigId, ForeignKey("segment.id", ondelete="CASCADE"), primary_key=True)
    )
    customer_id: int = Field(
        sa_column=Column(BigId, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    entered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class SegmentTransition(SQLModel, table=True):
    """Append-only log of shoppers entering and leaving segments, read by id cursor
    (``membership.transitions_since``): the event campaigns trigger on."""

    __tablename__ = "segment_transition"
    __table_args__ = (
        Index("ix_segment_transition_segment_id_id", "segment_id", "id"),
        Index("ix_segment_transition_customer_id", "customer_id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    segment_id: int = Field(
        sa_column=Column(BigId, ForeignKey("segment.id", ondelete="CASCADE"), nullable=False)
    )
    customer_id: int = Field(
        sa_column=Column(BigId, ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(max_length=8)
    # The segment version whose evaluation caused the transition (static segments: their version).
    version: int = Field(default=1)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
