"""Orders and their lines: the source of revenue, AOV, repurchase and CLV."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, ForeignKey, Index, Numeric
from sqlmodel import Field, SQLModel

from domain.columns import BigId, UTCDateTime, utcnow

ORDER_STATUSES = ("placed", "paid", "fulfilled", "cancelled", "refunded", "partially_refunded")


class Order(SQLModel, table=True):
    __tablename__ = "orders"  # "order" is an SQL keyword
    __table_args__ = (
        Index("ix_orders_customer_id_placed_at", "customer_id", "placed_at"),
        Index("ix_orders_placed_at", "placed_at"),
        # identify and erasure find guest orders by the anonymous id.
        Index("ix_orders_anonymous_id", "anonymous_id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    external_id: str = Field(max_length=128, unique=True)
    customer_id: int | None = Field(
        default=None, sa_column=Column(BigId, ForeignKey("customer.id", ondelete="SET NULL"))
    )
    anonymous_id: str | None = Field(default=None, max_length=128)
    status: str = Field(default="placed", max_length=24)
    currency: str = Field(max_length=3)
    subtotal: Decimal = Field(sa_type=Numeric(14, 2), nullable=False)
    discount_total: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2), nullable=False)
    shipping_total: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2), nullable=False)
    tax_total: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2), nullable=False)
    total: Decimal = Field(sa_type=Numeric(14, 2), nullable=False)
    refunded_total: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2), nullable=False)
    coupon_code: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=32)
    campaign_id: int | None = Field(default=None, sa_type=BigId)
    source_client_id: str = Field(max_length=64)
    placed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"

    order_id: int = Field(
        sa_column=Column(BigId, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    )
    line_no: int = Field(primary_key=True)
    product_id: int | None = Field(
        default=None,
        sa_column=Column(BigId, ForeignKey("product.id", ondelete="SET NULL"), index=True),
    )
    product_external_id: str = Field(max_length=128)
    title: str | None = Field(default=None, max_length=300)
    quantity: int
    unit_price: Decimal = Field(sa_type=Numeric(14, 2), nullable=False)
    total: Decimal = Field(sa_type=Numeric(14, 2), nullable=False)
    refunded_quantity: int = Field(default=0)
