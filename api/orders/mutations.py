"""Order mutations: recordOrders (a batch, per-item errors), refundOrder and cancelOrder."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.types import Info

from api.auth.permissions import Forbidden, RequireScopes, Unauthenticated
from api.errors import error_type, to_errors
from api.ids import BadId, decode_id
from api.inputs import provided
from api.orders.types import Order, OrderStatus
from domain.errors import DomainError
from domain.orders import service
from domain.segments.membership import ORDER_CHANGES, queue_reevaluation

COMMON = [
    "INVALID",
    "REQUIRED",
    "TOO_LONG",
    "TOO_MANY",
    "UNKNOWN_FIELD",
    "INVALID_MONEY",
    "INVALID_QUANTITY",
    "OVER_REFUND",
    "ORDER_CANCELLED",
    "FORBIDDEN",
]
RecordOrdersError, RecordOrdersErrorCode = error_type(
    "RecordOrders",
    [
        *COMMON,
        "INVALID_EXTERNAL_ID",
        "INVALID_CURRENCY",
        "INVALID_TIME",
        "INVALID_STATUS",
        "TOTALS_MISMATCH",
        "DUPLICATE",
        "UNKNOWN_USER",
        "ORDER_CONFLICT",
        "REFUND_DECREASE",
    ],
    "Why an order of recordOrders was refused; `index` is its position. Other orders of the "
    "batch are stored.",
)
RefundOrderError, RefundOrderErrorCode = error_type(
    "RefundOrder",
    [*COMMON, "ORDER_NOT_FOUND", "LINE_NOT_FOUND", "DUPLICATE"],
    "Why refundOrder was refused; nothing was changed.",
)
CancelOrderError, CancelOrderErrorCode = error_type(
    "CancelOrder",
    [*COMMON, "ORDER_NOT_FOUND", "ORDER_REFUNDED"],
    "Why cancelOrder was refused; nothing was changed.",
)


class NoShopperTokens(BasePermission):
    """Orders come from the store's back end: a shopper token (which carries events:write) may not
    record, refund or cancel them. List it after ``RequireScopes``."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated(info.context.auth_error or "a valid access token is required")
        if principal.customer_id is not None:
            raise Forbidden("shopper tokens cannot record or change orders")
        return True


@strawberry.input(description="One order line.")
class OrderLineInput:
    product_external_id: str = strawberry.field(
        description="The store's product id; a line whose product is not in the catalog is "
        "stored with this id and no product."
    )
    title: str | None = None
    quantity: int = strawberry.field(description="At least 1.")
    unit_price: str = strawberry.field(description='Decimal string, two places at most: "19.90".')


@strawberry.input(description="An order, matched on externalId. Money is a decimal string.")
class OrderInput:
    external_id: str = strawberry.field(description="The store's order id (idempotency key).")
    user_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="The shopper (give this or userExternalId)."
    )
    user_external_id: str | None = strawberry.UNSET
    anonymous_id: str | None = strawberry.field(
        default=strawberry.UNSET, description="A guest shopper's device or browser id."
    )
    status: OrderStatus | None = strawberry.field(
        default=strawberry.UNSET, description="PLACED when omitted."
    )
    currency: str = strawberry.field(description="ISO 4217.")
    lines: list[OrderLineInput] = strawberry.field(description="1 to 500 lines.")
    subtotal: str | None = strawberry.field(
        default=strawberry.UNSET, description="Sum of line totals; computed when omitted."
    )
    discount_total: str | None = strawberry.UNSET
    shipping_total: str | None = strawberry.UNSET
    tax_total: str | None = strawberry.UNSET
    total: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="subtotal - discount + shipping + tax; computed when omitted.",
    )
    refunded_total: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Refunds so far (with status partially_refunded or refunded); never lower "
        "than what is recorded.",
    )
    coupon_code: str | None = strawberry.UNSET
    channel: str | None = strawberry.UNSET
    campaign_id: strawberry.ID | None = strawberry.UNSET
    placed_at: datetime = strawberry.field(description="ISO 8601 with an offset.")


@strawberry.input
class RecordOrdersInput:
    orders: list[OrderInput] = strawberry.field(description="At most 100.")


@strawberry.type
class RecordOrdersPayload:
    orders: list[Order | None] = strawberry.field(
        description="Per input position: the stored order, or null when it was refused."
    )
    created: int
    updated: int
    unchanged: int = strawberry.field(description="Sent before with the same content.")
    rejected: int
    errors: list[RecordOrdersError]  # type: ignore[valid-type]


@strawberry.input
class RefundLineInput:
    line_no: int
    quantity: int


@strawberry.input(description="Give orderId or externalId. Neither lines nor amount: refund all.")
class RefundOrderInput:
    order_id: strawberry.ID | None = None
    external_id: str | None = None
    amount: str | None = strawberry.field(
        default=None, description="Decimal string; defaults to the value of `lines`."
    )
    lines: list[RefundLineInput] | None = None
    reason: str | None = strawberry.field(
        default=None, description="Kept in the audit log; must not contain personal data."
    )


@strawberry.type
class RefundOrderPayload:
    order: Order | None
    errors: list[RefundOrderError]  # type: ignore[valid-type]


@strawberry.input(description="Give orderId or externalId.")
class CancelOrderInput:
    order_id: strawberry.ID | None = None
    external_id: str | None = None
    reason: str | None = None


@strawberry.type
class CancelOrderPayload:
    order: Order | None
    errors: list[CancelOrderError]  # type: ignore[valid-type]


def _item(order: OrderInput) -> dict[str, Any]:
    item = provided(order)
    item["lines"] = [provided(line) for line in order.lines]
    if isinstance(item.get("status"), OrderStatus):
        item["status"] = item["status"].value
    user_id = item.get("user_id")
    if user_id is not None:
        try:
            item["user_id"] = decode_id(str(user_id), "User")[1]
        except BadId:
            item["user_id"] = "invalid"  # reported as INVALID for this order only
    return item


def _order_pk(value: strawberry.ID | None) -> int | None:
    if value is None:
        return None
    try:
        return decode_id(str(value), "Order")[1]
    except BadId as exc:
        raise DomainError.one("INVALID", str(exc), "input", "orderId") from exc


def segments_after_orders(ctx: Any, what: str, customer_ids: list[int | None]) -> None:
    """Re-evaluate the order-based segments of these shoppers once the request commits."""
    queue_reevaluation(
        ctx.jobs, f"{ctx.request_id}:{what}", ORDER_CHANGES, customer_ids=customer_ids
    )


@strawberry.type
class OrderMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes("events:write"), NoShopperTokens],
        description="Record up to 100 orders by externalId; each yields a purchase event. Valid "
        "orders are stored, invalid ones reported by index; re-sending is safe.",
    )
    async def record_orders(self, info: Info, input: RecordOrdersInput) -> RecordOrdersPayload:
        ctx = info.context
        try:
            result = await service.record_orders(
                ctx.session, ctx.actor, [_item(o) for o in input.orders], ctx.services.settings
            )
        except DomainError as exc:
            return RecordOrdersPayload(
                orders=[None] * len(input.orders),
                created=0,
                updated=0,
                unchanged=0,
                rejected=len(input.orders),
                errors=to_errors(RecordOrdersError, RecordOrdersErrorCode, exc),
            )
        segments_after_orders(ctx, "orders", [o.customer_id for o in result.orders if o])
        return RecordOrdersPayload(
            orders=result.orders,  # type: ignore[arg-type]
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            rejected=result.rejected,
            errors=to_errors(RecordOrdersError, RecordOrdersErrorCode, DomainError(result.errors)),
        )

    @strawberry.mutation(
        permission_classes=[RequireScopes("events:write"), NoShopperTokens],
        description="Refund an order in part or in full; its purchase event's value becomes "
        "the net amount.",
    )
    async def refund_order(self, info: Info, input: RefundOrderInput) -> RefundOrderPayload:
        ctx = info.context
        try:
            row = await service.refund_order(
                ctx.session,
                ctx.actor,
                order_id=_order_pk(input.order_id),
                external_id=input.external_id,
                amount=input.amount,
                lines=[service.RefundLine(x.line_no, x.quantity) for x in input.lines or []],
                reason=input.reason,
            )
        except DomainError as exc:
            return RefundOrderPayload(
                order=None, errors=to_errors(RefundOrderError, RefundOrderErrorCode, exc)
            )
        segments_after_orders(ctx, "refund", [row.customer_id])
        return RefundOrderPayload(order=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes("events:write"), NoShopperTokens],
        description="Cancel an order; its purchase event's value becomes 0.",
    )
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> CancelOrderPayload:
        ctx = info.context
        try:
            row = await service.cancel_order(
                ctx.session,
                ctx.actor,
                order_id=_order_pk(input.order_id),
                external_id=input.external_id,
                reason=input.reason,
            )
        except DomainError as exc:
            return CancelOrderPayload(
                order=None, errors=to_errors(CancelOrderError, CancelOrderErrorCode, exc)
            )
        segments_after_orders(ctx, "cancel", [row.customer_id])
        return CancelOrderPayload(order=row, errors=[])  # type: ignore[arg-type]
