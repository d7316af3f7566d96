"""Recommendation model versions: what was trained on which data, how it scored, and its artifact.

The artifact (a pickled :class:`recommend.hybrid.Hybrid`, checksummed) lives in the database so
every API process can read it. At most one version is ``active``: a partial unique index enforces
it, and ``promote`` takes a row lock on the current active version before it switches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, String, text
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
    # What API processes load to serve (recommend.serving.Bundle, no pickle): precomputed top-N
    # lists, item neighbour lists, trending, session similarity; small next to ``artifact``.
    serving: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    serving_sha256: str | None = Field(default=None, max_length=64)


class RecommendationImpression(SQLModel, table=True):
    """One answer served (its id is the ``recommendationId`` events carry for attribution)."""

    __tablename__ = "recommendation_impression"
    __table_args__ = (
        Index("ix_recommendation_impression_experiment_id", "experiment_id", "served_at"),
        Index("ix_recommendation_impression_served_at", "served_at"),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    served_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # Erasure sets it to null (the count stays, the person goes).
    customer_id: int | None = Field(
        default=None,
        sa_column=Column(BigId, ForeignKey("customer.id", ondelete="SET NULL"), index=True),
    )
    anonymous_id: str | None = Field(default=None, max_length=128)
    surface: str = Field(max_length=32)  # recommendations, similar, together, trending
    scenario: str | None = Field(default=None, max_length=16)
    model_version_id: int | None = Field(default=None, sa_type=BigId)
    experiment_id: int | None = Field(default=None, sa_type=BigId)
    personal: bool = Field(default=False)
    fallback: str | None = Field(default=None, max_length=32)  # why not personal
    product_ids: list[int] = Field(default_factory=list, sa_type=JsonDoc, nullable=False)


EXPERIMENT_STATUSES = ("running", "stopped")


class Experiment(SQLModel, table=True):
    """An online A/B test: traffic split between model versions by a stable hash of the shopper.
    At most one runs at a time (partial unique index)."""

    __tablename__ = "experiment"
    __table_args__ = (
        Index(
            "uq_experiment_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    name: str = Field(max_length=200)
    status: str = Field(default="running", max_length=16)
    # [{"version_id": int, "weight": float}], weights summing to 1
    arms: list[dict[str, Any]] = Field(default_factory=list, sa_type=JsonDoc, nullable=False)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str | None = Field(default=None, max_length=200)
