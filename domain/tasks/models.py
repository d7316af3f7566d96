"""A row per background task run: status, progress and result, readable from any process."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from domain.columns import JsonDoc, UTCDateTime, utcnow


class TaskRun(SQLModel, table=True):
    __tablename__ = "task_run"

    id: str = Field(primary_key=True, max_length=128)
    kind: str = Field(max_length=64, index=True)
    status: str = Field(default="queued", max_length=16)  # queued, running, done, failed
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    total: int | None = Field(default=None)
    done: int = Field(default=0)
    result: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    error: str | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
