"""Catalog: a category tree and products with brands, tags, prices and stock."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Numeric
from sqlmodel import Field, SQLModel

from domain.columns import BigId, JsonDoc, UTCDateTime, utcnow


class Category(SQLModel, table=True):
    __tablename__ = "category"

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    parent_id: int | None = Field(
        default=None,
        sa_column=Column(BigId, ForeignKey("category.id", ondelete="RESTRICT"), index=True),
    )
    name: str = Field(max_length=100)
    # Full path joined with " > ", unique: the natural key used by imports and upserts.
    path: str = Field(max_length=500, unique=True)
    depth: int = Field(default=0)


class Product(SQLModel, table=True):
    __tablename__ = "product"
    __table_args__ = (
        Index("ix_product_category_id_id", "category_id", "id"),
        Index("ix_product_brand_id", "brand", "id"),
        # API processes re-read the products changed in the last seconds (recommendations).
        Index("ix_product_updated_at", "updated_at"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    external_id: str = Field(max_length=128, unique=True)
    title: str = Field(max_length=300)
    description: str = Field(default="")
    category_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("category.id", ondelete="SET NULL"))
    )
    brand: str | None = Field(default=None, max_length=100)
    price: Decimal = Field(sa_type=Numeric(12, 2), nullable=False)
    currency: str = Field(max_length=3)
    # None means stock is not tracked (always in stock).
    stock: int | None = Field(default=None)
    active: bool = Field(default=True)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JsonDoc, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class ProductTag(SQLModel, table=True):
    __tablename__ = "product_tag"

    product_id: int = Field(
        sa_column=Column(BigId, ForeignKey("product.id", ondelete="CASCADE"), primary_key=True)
    )
    tag: str = Field(max_length=64, primary_key=True, index=True)
