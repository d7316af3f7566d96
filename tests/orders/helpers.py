"""Order test helpers: real customers and products through GraphQL, orders through recordOrders."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.conftest import Api

W = "events:write users:read"
RECORD = """
mutation($orders: [OrderInput!]!) {
  recordOrders(input: {orders: $orders}) {
    orders { id externalId status total { amount currency } refundedTotal { amount }
             netTotal { amount } user { externalId } anonymousId couponCode
             lines { lineNo productExternalId title quantity refundedQuantity
                     unitPrice { amount currency } total { amount } } }
    created updated unchanged rejected
    errors { code field message index }
  }
}"""
PRODUCTS = """
mutation($products: [ProductUpsertInput!]!) {
  upsertProducts(input: {products: $products}) { errors { code message } }
}"""
USERS = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { users { id } errors { code message } }
}"""


async def seed(api: Api) -> None:
    """Users u-1 and u-2; products p-1 (12.50 EUR) and p-2 (5.00 EUR)."""
    body = await api.gql(
        USERS,
        {"users": [{"externalId": "u-1"}, {"externalId": "u-2"}]},
        scopes="users:write users:read",
    )
    assert body["data"]["upsertUsers"]["errors"] == [], body
    body = await api.gql(
        PRODUCTS,
        {
            "products": [
                {"externalId": "p-1", "title": "Mug", "price": "12.50", "currency": "EUR"},
                {"externalId": "p-2", "title": "Tea", "price": "5.00", "currency": "EUR"},
            ]
        },
        scopes="catalog:write catalog:read",
    )
    assert body["data"]["upsertProducts"]["errors"] == [], body


def order(external_id: str = "o-1", **extra: Any) -> dict[str, Any]:
    """2 x 12.50 + 1 x 5.00 = 30.00, minus 3.00 discount, plus 4.90 shipping and 5.13 tax."""
    return {
        "externalId": external_id,
        "userExternalId": "u-1",
        "currency": "EUR",
        "lines": [
            {"productExternalId": "p-1", "title": "Mug", "quantity": 2, "unitPrice": "12.50"},
            {"productExternalId": "p-2", "title": "Tea", "quantity": 1, "unitPrice": "5.00"},
        ],
        "subtotal": "30.00",
        "discountTotal": "3.00",
        "shippingTotal": "4.90",
        "taxTotal": "5.13",
        "total": "37.03",
        "couponCode": "WELCOME10",
        "placedAt": "2026-11-02T10:15:00+01:00",
        **extra,
    }


async def record(api: Api, orders: list[dict[str, Any]], scopes: str = W) -> dict[str, Any]:
    body = await api.gql(RECORD, {"orders": orders}, scopes=scopes)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["recordOrders"]
    return result


async def rows(api: Api, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with api.db.read_only() as session:
        return [tuple(r) for r in (await session.execute(text(sql), params)).all()]


async def snapshot(api: Api) -> list[Any]:
    """Everything an order write may touch, to prove that a refusal changed nothing."""
    return [
        await rows(api, "SELECT * FROM orders ORDER BY id"),
        await rows(api, "SELECT * FROM order_line ORDER BY order_id, line_no"),
        await rows(
            api, "SELECT client_event_id, value, customer_id, order_id FROM event ORDER BY id"
        ),
        await rows(api, "SELECT action FROM audit_entry WHERE action LIKE 'orders.%' ORDER BY id"),
    ]
