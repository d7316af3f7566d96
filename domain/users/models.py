"""Customers (GraphQL ``User``) and their tags."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index
from sqlmodel import Field, SQLModel

from domain.columns import BigId, JsonDoc, UTCDateTime, utcnow


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = (Index("ix_customer_created_at_id", "created_at", "id"),)

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    external_id: str = Field(max_length=128, unique=True)
    email_encrypted: str | None = Field(default=None)
    email_hash: str | None = Field(default=None, max_length=64, index=True)
    phone_encrypted: str | None = Field(default=None)
    phone_hash: str | None = Field(default=None, max_length=64, index=True)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, max_length=2, index=True)
    region: str | None = Field(default=None, max_length=100)
    gender: str | None = Field(default=None, max_length=32)
    birth_date: date | None = Field(default=None)
    occupation: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class CustomerTag(SQLModel, table=True):
    __tablename__ = "customer_tag"

    customer_id: int = Field(
        sa_column=Column(BigId, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    tag: str = Field(max_length=64, primary_key=True, index=True)
