"""Recommendation model versions: what was trained on which data, how it scored, and its artifact.

The artifact (a pickled :class:`recommend.hybrid.Hybrid`, checksummed) lives in the database so
every API process can read it. At most one version is ``active``: a partial unique index enforces
it, and ``promote`` takes a row lock on the current active version before it switches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, text
from sqlmodel import Field, SQLModel

from domain.columns import BigId, JsonDoc, UTCDateTime, utcnow

STATUSES = ("candidate", "active", "retired", "failed")


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (
        Index("ix_model_version_status_id", "status", "id"),
        Index(
            "uq_model_version_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    algorithm: str = Field(max_length=500)  # the component specs, comma-separated
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    data_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    data_to: datetime | None = Field(default=None, sa_type=UTCDateTime)
    interactions: int = Field(default=0)
    users: int = Field(default=0)
    items: int = Field(default=0)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    status: str = Field(default="candidate", max_length=16)
    error: str | None = Field(default=None)
    artifact: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    sha256: str | None = Field(default=None, max_length=64)
    task_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    trained_seconds: float | None = Field(default=None)
    promoted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    promoted_by: str | None = Field(default=None, max_length=200)
