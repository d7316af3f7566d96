"""The ``Order`` and ``OrderLine`` types, wrapping rows directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.catalog.loaders import product_loader
from api.catalog.types import Money, Product
from api.ids import encode_id
from api.orders.loaders import lines_loader
from api.relay import Node
from api.users.loaders import user_loader
from domain.orders.models import Order as OrderRow
from domain.orders.models import OrderLine as OrderLineRow
from domain.orders.service import net_value

if TYPE_CHECKING:
    from api.users.types import User


@dataclass(frozen=True, slots=True)
class LineView:
    """A line row with its order's currency (lines carry no currency of their own)."""

    row: OrderLineRow
    currency: str


@strawberry.type(description="One line of an order.")
class OrderLine:
    @strawberry.field(description="1-based position in the order.")
    @staticmethod
    def line_no(root: LineView) -> int:
        return root.row.line_no

    @strawberry.field(
        description="The store's product id as sent, kept even when the catalog lacks it."
    )
    @staticmethod
    def product_external_id(root: LineView) -> str:
        return root.row.product_external_id

    @strawberry.field
    @staticmethod
    def title(root: LineView) -> str | None:
        return root.row.title

    @strawberry.field
    @staticmethod
    def quantity(root: LineView) -> int:
        return root.row.quantity

    @strawberry.field(description="Units refunded so far.")
    @staticmethod
    def refunded_quantity(root: LineView) -> int:
        return root.row.refunded_quantity

    @strawberry.field(description="Price of one unit.")
    @staticmethod
    def unit_price(root: LineView) -> Money:
        return Money.of(root.row.unit_price, root.currency)

    @strawberry.field(description="quantity x unitPrice.")
    @staticmethod
    def total(root: LineView) -> Money:
        return Money.of(root.row.total, root.currency)

    @strawberry.field(
        permission_classes=[RequireScopes("catalog:read")],
        description="The catalog product; null when no product has productExternalId.",
    )
    @staticmethod
    async def product(root: LineView, info: Info) -> Product | None:
        if root.row.product_id is None:
            return None
        found: Any = await info.context.loader("product", product_loader).load(root.row.product_id)
        return found  # type: ignore[no-any-return]


def _money(root: OrderRow, amount: Decimal) -> Money:
    return Money.of(amount, root.currency)


@strawberry.enum(description="Where an order stands. Refund states follow refundedTotal.")
class OrderStatus(Enum):
    PLACED = "placed"
    PAID = "paid"
    FULFILLED = "fulfilled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


@strawberry.type(description="A purchase: lines, totals, currency, coupon; the source of revenue.")
class Order(Node):
    external_id: str = strawberry.field(description="The store's own order id.")
    anonymous_id: str | None = strawberry.field(description="Set for guest orders.")
    currency: str = strawberry.field(description="ISO 4217 code.")
    coupon_code: str | None
    channel: str | None
    placed_at: datetime
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]
    @staticmethod
    def id(root: OrderRow) -> strawberry.ID:
        return strawberry.ID(encode_id("Order", root.id or 0))

    @strawberry.field
    @staticmethod
    def status(root: OrderRow) -> OrderStatus:
        return OrderStatus(root.status)

    @strawberry.field(description="Sum of the line totals.")
    @staticmethod
    def subtotal(root: OrderRow) -> Money:
        return _money(root, root.subtotal)

    @strawberry.field
    @staticmethod
    def discount_total(root: OrderRow) -> Money:
        return _money(root, root.discount_total)

    @strawberry.field
    @staticmethod
    def shipping_total(root: OrderRow) -> Money:
        return _money(root, root.shipping_total)

    @strawberry.field
    @staticmethod
    def tax_total(root: OrderRow) -> Money:
        return _money(root, root.tax_total)

    @strawberry.field(description="subtotal - discount + shipping + tax, as charged.")
    @staticmethod
    def total(root: OrderRow) -> Money:
        return _money(root, root.total)

    @strawberry.field(description="Sum of all refunds so far.")
    @staticmethod
    def refunded_total(root: OrderRow) -> Money:
        return _money(root, root.refunded_total)

    @strawberry.field(
        description="What the order is worth now: total - refundedTotal, or 0 when cancelled. "
        "Revenue, AOV and CLV use this."
    )
    @staticmethod
    def net_total(root: OrderRow) -> Money:
        return _money(root, net_value(root))

    @strawberry.field(description="The campaign credited with the order, if any.")
    @staticmethod
    def campaign_id(root: OrderRow) -> strawberry.ID | None:
        return None if root.campaign_id is None else strawberry.ID(str(root.campaign_id))

    @strawberry.field(description="The shopper; null for guest orders and after erasure.")
    @staticmethod
    async def user(
        root: OrderRow, info: Info
    ) -> Annotated[User, strawberry.lazy("api.users.types")] | None:
        if root.customer_id is None:
            return None
        found: Any = await info.context.loader("user", user_loader).load(root.customer_id)
        return found  # type: ignore[no-any-return]

    @strawberry.field(description="Lines in order.")
    @staticmethod
    async def lines(root: OrderRow, info: Info) -> list[OrderLine]:
        rows: list[OrderLineRow] = await info.context.loader("order_lines", lines_loader).load(
            root.id
        )
        return [LineView(row, root.currency) for row in rows]  # type: ignore[misc]

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, OrderRow)
