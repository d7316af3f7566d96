"""recordOrders, refundOrder, cancelOrder, order/orders/User.orders over GraphQL on both backends:
idempotency, status updates, refunds and cancellations (and the purchase event following them),
mixed batches, and every denial with nothing changed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.audit.service import SYSTEM
from domain.errors import DomainError
from domain.orders import service
from tests.conftest import Api, count_rows, error_codes
from tests.me.helpers import shopper_token
from tests.orders.helpers import RECORD, W, order, record, rows, seed, snapshot

REFUND = """
mutation($input: RefundOrderInput!) {
  refundOrder(input: $input) {
    order { status refundedTotal { amount } netTotal { amount } lines { lineNo refundedQuantity } }
    errors { code field message }
  }
}"""
CANCEL = """
mutation($input: CancelOrderInput!) {
  cancelOrder(input: $input) {
    order { status cancelledAt netTotal { amount } refundedTotal { amount } }
    errors { code field message }
  }
}"""


def money(value: Any) -> Decimal:
    """A NUMERIC read through raw SQL (a float on SQLite) as a two-place decimal."""
    return Decimal(str(value)).quantize(Decimal("0.01"))


async def purchase_event(api: Api, external_id: str) -> tuple[Any, ...]:
    found = await rows(
        api,
        "SELECT e.type, e.value, e.currency, e.customer_id, e.order_id, e.occurred_at, o.id "
        "FROM event e JOIN orders o ON o.id = e.order_id WHERE e.client_event_id = :cid",
        cid=f"order:{external_id}",
    )
    assert len(found) == 1
    return found[0]


async def test_record_stores_order_lines_and_purchase_event_once(api: Api) -> None:
    # given a customer and two products
    await seed(api)

    # when an order is recorded
    first = await record(api, [order()])

    # then it is stored with its lines, totals and a purchase event worth its total
    assert first["errors"] == []
    assert (first["created"], first["updated"], first["unchanged"], first["rejected"]) == (
        1,
        0,
        0,
        0,
    )
    stored = first["orders"][0]
    assert stored["externalId"] == "o-1"
    assert stored["status"] == "PLACED"
    assert stored["total"] == {"amount": "37.03", "currency": "EUR"}
    assert stored["netTotal"] == {"amount": "37.03"}
    assert stored["user"] == {"externalId": "u-1"}
    assert stored["couponCode"] == "WELCOME10"
    assert [
        (ln["lineNo"], ln["quantity"], ln["unitPrice"]["amount"], ln["total"]["amount"])
        for ln in stored["lines"]
    ] == [(1, 2, "12.50", "25.00"), (2, 1, "5.00", "5.00")]
    kind, value, currency, customer_id, order_id, _at, oid = await purchase_event(api, "o-1")
    assert (kind, money(value), currency, order_id) == ("purchase", Decimal("37.03"), "EUR", oid)
    assert customer_id is not None
    props = await rows(api, "SELECT properties FROM event WHERE client_event_id = 'order:o-1'")
    assert "p-1" in str(props[0][0]) and "p-2" in str(props[0][0])

    # when the same order is sent again, unchanged
    before = await snapshot(api)
    again = await record(api, [order()])

    # then nothing changes and it is reported unchanged
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 1)
    assert again["orders"][0]["id"] == stored["id"]
    assert await snapshot(api) == before
    assert await count_rows(api.db, "orders") == 1
    assert await count_rows(api.db, "event") == 1
    assert before[3] == [("orders.record",)]


async def test_resend_with_new_status_or_refund_updates_order_and_event(api: Api) -> None:
    await seed(api)
    await record(api, [order()])

    paid = await record(api, [order(status="PAID")])
    assert (paid["updated"], paid["orders"][0]["status"]) == (1, "PAID")

    partly = await record(api, [order(status="PARTIALLY_REFUNDED", refundedTotal="10.00")])
    assert partly["orders"][0]["status"] == "PARTIALLY_REFUNDED"
    assert partly["orders"][0]["netTotal"] == {"amount": "27.03"}
    assert money((await purchase_event(api, "o-1"))[1]) == Decimal("27.03")

    # a late fulfilment update does not hide the refund
    late = await record(api, [order(status="FULFILLED")])
    assert late["unchanged"] == 1 and late["orders"][0]["status"] == "PARTIALLY_REFUNDED"

    # a refund cannot be undone by a re-send; nothing changes
    before = await snapshot(api)
    lower = await record(api, [order(status="PARTIALLY_REFUNDED", refundedTotal="5.00")])
    assert [e["code"] for e in lower["errors"]] == ["REFUND_DECREASE"]
    assert await snapshot(api) == before

    full = await record(api, [order(status="REFUNDED")])
    assert full["orders"][0]["status"] == "REFUNDED"
    assert full["orders"][0]["netTotal"] == {"amount": "0.00"}
    assert [ln["refundedQuantity"] for ln in full["orders"][0]["lines"]] == [2, 1]
    assert money((await purchase_event(api, "o-1"))[1]) == Decimal("0")

    cancelled = await record(api, [order("o-2", status="CANCELLED")])
    assert cancelled["orders"][0]["status"] == "CANCELLED"
    assert money((await purchase_event(api, "o-2"))[1]) == Decimal("0")
    actions = await rows(api, "SELECT action FROM audit_entry WHERE action LIKE 'orders.%'")
    assert actions == [("orders.record",)] * 5


async def test_changing_what_was_bought_is_a_conflict(api: Api) -> None:
    await seed(api)
    await record(api, [order()])
    before = await snapshot(api)
    changed_line = order()
    changed_line["lines"][0]["title"] = "Big mug"
    moved = await record(api, [order(placedAt="2026-11-03T10:15:00+01:00")])
    assert [(e["code"], e["index"], e["field"]) for e in moved["errors"]] == [
        ("ORDER_CONFLICT", 0, ["orders", "0", "placedAt"])
    ]
    more = await record(api, [changed_line])
    assert [(e["code"], e["field"]) for e in more["errors"]] == [
        ("ORDER_CONFLICT", ["orders", "0", "lines"])
    ]
    assert more["orders"] == [None]
    assert await snapshot(api) == before


async def test_mixed_batch_stores_exactly_the_valid_orders(api: Api) -> None:
    await seed(api)
    bad_line = order("o-5")
    bad_line["lines"][1]["quantity"] = 0
    batch = [
        order("o-1"),
        order("o-2", currency="EUX"),
        order("o-3", total="37.04"),
        order("o-4", subtotal="31.00"),
        bad_line,
        order("o-6", userExternalId="nobody"),
        order("o-7", anonymousId="anon-7", userExternalId=None, discountTotal="3.001"),
        order("o-1"),
        order("o-9", userExternalId=None, anonymousId="anon-9"),
        order("o-10", placedAt="2999-01-01T00:00:00Z"),
        order("o-11", placedAt="0001-01-01T00:00:00+01:00"),
    ]
    result = await record(api, batch)
    assert [(e["index"], e["code"], e["field"][-1]) for e in result["errors"]] == [
        (1, "INVALID_CURRENCY", "currency"),
        (2, "TOTALS_MISMATCH", "total"),
        (3, "TOTALS_MISMATCH", "subtotal"),
        (3, "TOTALS_MISMATCH", "total"),  # the total no longer adds up either
        (4, "INVALID_QUANTITY", "quantity"),
        (5, "UNKNOWN_USER", "userExternalId"),
        (6, "INVALID_MONEY", "discountTotal"),
        (7, "DUPLICATE", "externalId"),
        (9, "INVALID_TIME", "placedAt"),
        (10, "INVALID_TIME", "placedAt"),
    ]
    assert (result["created"], result["rejected"]) == (2, 9)
    assert [o and o["externalId"] for o in result["orders"]] == [
        "o-1",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        "o-9",
        None,
        None,
    ]
    guest = result["orders"][8]
    assert guest["user"] is None and guest["anonymousId"] == "anon-9"
    assert await rows(api, "SELECT external_id FROM orders ORDER BY external_id") == [
        ("o-1",),
        ("o-9",),
    ]
    assert await rows(api, "SELECT client_event_id FROM event ORDER BY 1") == [
        ("order:o-1",),
        ("order:o-9",),
    ]
    assert await count_rows(api.db, "order_line") == 4


async def test_unknown_product_is_kept_on_the_line_without_a_product(api: Api) -> None:
    await seed(api)
    new = order(subtotal=None, total=None, discountTotal=None, shippingTotal=None, taxTotal=None)
    new["lines"][1]["productExternalId"] = "not-in-catalog"
    result = await record(api, [new])
    assert result["errors"] == []
    assert result["orders"][0]["total"]["amount"] == "30.00"  # computed when omitted
    assert await rows(
        api, "SELECT line_no, product_id IS NULL, product_external_id FROM order_line ORDER BY 1"
    ) == [(1, False, "p-1"), (2, True, "not-in-catalog")]


async def test_refunds_partial_by_line_then_over_refund_then_full(api: Api) -> None:
    await seed(api)
    await record(api, [order()])

    # when one mug is refunded by line
    body = await api.gql(
        REFUND,
        {
            "input": {
                "externalId": "o-1",
                "lines": [{"lineNo": 1, "quantity": 1}],
                "reason": "broken",
            }
        },
        scopes=W,
    )
    result = body["data"]["refundOrder"]
    assert result["errors"] == []
    assert result["order"]["status"] == "PARTIALLY_REFUNDED"
    assert result["order"]["refundedTotal"] == {"amount": "12.50"}
    assert result["order"]["netTotal"] == {"amount": "24.53"}
    assert [ln["refundedQuantity"] for ln in result["order"]["lines"]] == [1, 0]
    assert money((await purchase_event(api, "o-1"))[1]) == Decimal("24.53")

    # then refunding more than is left, or more units than were bought, changes nothing
    before = await snapshot(api)
    for payload, code in [
        ({"externalId": "o-1", "amount": "24.54"}, "OVER_REFUND"),
        ({"externalId": "o-1", "lines": [{"lineNo": 1, "quantity": 2}]}, "OVER_REFUND"),
        ({"externalId": "o-1", "lines": [{"lineNo": 9, "quantity": 1}]}, "LINE_NOT_FOUND"),
        ({"externalId": "o-1", "amount": "-1.00"}, "INVALID_MONEY"),
        ({"externalId": "nope"}, "ORDER_NOT_FOUND"),
    ]:
        refused = await api.gql(REFUND, {"input": payload}, scopes=W)
        assert "errors" not in refused, refused
        assert [e["code"] for e in refused["data"]["refundOrder"]["errors"]] == [code], payload
        assert refused["data"]["refundOrder"]["order"] is None
    assert await snapshot(api) == before

    # when the rest is refunded (no lines, no amount)
    body = await api.gql(REFUND, {"input": {"externalId": "o-1"}}, scopes=W)
    full = body["data"]["refundOrder"]["order"]
    assert full["status"] == "REFUNDED"
    assert full["refundedTotal"] == {"amount": "37.03"}
    assert full["netTotal"] == {"amount": "0.00"}
    assert [ln["refundedQuantity"] for ln in full["lines"]] == [2, 1]
    assert money((await purchase_event(api, "o-1"))[1]) == Decimal("0")
    again = await api.gql(REFUND, {"input": {"externalId": "o-1", "amount": "0.01"}}, scopes=W)
    assert [e["code"] for e in again["data"]["refundOrder"]["errors"]] == ["OVER_REFUND"]
    audit = await rows(
        api, "SELECT action, details FROM audit_entry WHERE action = 'orders.refund' ORDER BY id"
    )
    assert len(audit) == 2 and "12.50" in str(audit[0][1]) and "broken" in str(audit[0][1])


async def test_cancel_zeroes_the_event_and_blocks_refunds(api: Api) -> None:
    await seed(api)
    recorded = await record(api, [order()])
    body = await api.gql(CANCEL, {"input": {"orderId": recorded["orders"][0]["id"]}}, scopes=W)
    result = body["data"]["cancelOrder"]
    assert result["errors"] == []
    assert result["order"]["status"] == "CANCELLED"
    assert result["order"]["cancelledAt"] is not None
    assert result["order"]["netTotal"] == {"amount": "0.00"}
    assert money((await purchase_event(api, "o-1"))[1]) == Decimal("0")

    before = await snapshot(api)
    refund = await api.gql(REFUND, {"input": {"externalId": "o-1", "amount": "1.00"}}, scopes=W)
    assert [e["code"] for e in refund["data"]["refundOrder"]["errors"]] == ["ORDER_CANCELLED"]
    twice = await api.gql(CANCEL, {"input": {"externalId": "o-1"}}, scopes=W)
    assert [e["code"] for e in twice["data"]["cancelOrder"]["errors"]] == ["ORDER_CANCELLED"]
    resend = await record(api, [order(status="PAID")])
    assert [e["code"] for e in resend["errors"]] == ["ORDER_CANCELLED"]
    unchanged = await record(api, [order(status="CANCELLED")])
    assert unchanged["unchanged"] == 1
    assert await snapshot(api) == before
    assert await rows(api, "SELECT action FROM audit_entry WHERE action = 'orders.cancel'") == [
        ("orders.cancel",)
    ]


async def test_without_scope_forbidden_and_nothing_stored(api: Api) -> None:
    await seed(api)
    for scopes in ("users:read", "catalog:write"):
        body = await api.gql(
            "mutation($o: [OrderInput!]!) { recordOrders(input: {orders: $o}) { created } }",
            {"o": [order()]},
            scopes=scopes,
        )
        assert error_codes(body) == ["FORBIDDEN"]
        assert body["data"] is None
    anonymous = await api.gql(
        "mutation($o: [OrderInput!]!) { recordOrders(input: {orders: $o}) { created } }",
        {"o": [order()]},
    )
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    await record(api, [order("o-9")])
    before = await snapshot(api)
    for query in (
        'mutation { refundOrder(input: {externalId: "o-9"}) { errors { code } } }',
        'mutation { cancelOrder(input: {externalId: "o-9"}) { errors { code } } }',
    ):
        assert error_codes(await api.gql(query, scopes="users:read")) == ["FORBIDDEN"]
    assert await snapshot(api) == before
    assert await count_rows(api.db, "orders") == 1


async def test_shopper_token_cannot_record_refund_or_cancel(api: Api) -> None:
    await seed(api)
    await record(api, [order("o-9")])
    before = await snapshot(api)
    token = await shopper_token(api, "u-1")
    body = await api.gql(
        "mutation($o: [OrderInput!]!) { recordOrders(input: {orders: $o}) { created } }",
        {"o": [order("o-10")]},
        token=token,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    for query in (
        'mutation { refundOrder(input: {externalId: "o-9"}) { errors { code } } }',
        'mutation { cancelOrder(input: {externalId: "o-9"}) { errors { code } } }',
    ):
        assert error_codes(await api.gql(query, token=token)) == ["FORBIDDEN"]
    assert await snapshot(api) == before


async def test_queries_newest_first_with_filters_and_paging(api: Api) -> None:
    await seed(api)
    await record(
        api,
        [
            order("o-1", placedAt="2026-11-01T10:00:00Z"),
            order("o-2", placedAt="2026-11-03T10:00:00Z", userExternalId="u-2"),
            order("o-3", placedAt="2026-11-02T10:00:00Z", status="PAID"),
        ],
    )
    q = """query($f: OrderFilter, $after: String) {
      orders(first: 2, filter: $f, after: $after) {
        nodes { externalId placedAt } pageInfo { hasNextPage endCursor } totalCount } }"""
    page1 = (await api.gql(q, {}, scopes="users:read"))["data"]["orders"]
    assert [n["externalId"] for n in page1["nodes"]] == ["o-2", "o-3"]
    assert page1["nodes"][0]["placedAt"] == "2026-11-03T10:00:00+00:00"
    assert page1["pageInfo"]["hasNextPage"] and page1["totalCount"] == 3
    page2 = (await api.gql(q, {"after": page1["pageInfo"]["endCursor"]}, scopes="users:read"))[
        "data"
    ]["orders"]
    assert [n["externalId"] for n in page2["nodes"]] == ["o-1"]
    paid = (await api.gql(q, {"f": {"status": "PAID"}}, scopes="users:read"))["data"]["orders"]
    assert [n["externalId"] for n in paid["nodes"]] == ["o-3"]
    since = (
        await api.gql(
            q,
            {"f": {"since": "2026-11-02T10:00:00Z", "until": "2026-11-03T00:00:00Z"}},
            scopes="users:read",
        )
    )["data"]["orders"]
    assert [n["externalId"] for n in since["nodes"]] == ["o-3"]

    user = """query { user(externalId: "u-1") { orders(first: 10) {
      nodes { externalId lines { lineNo } } } } }"""
    mine = (await api.gql(user, scopes="users:read"))["data"]["user"]["orders"]["nodes"]
    assert [n["externalId"] for n in mine] == ["o-3", "o-1"]
    one = await api.gql(
        'query { order(externalId: "o-2") { externalId user { externalId } } }', scopes="users:read"
    )
    assert one["data"]["order"] == {"externalId": "o-2", "user": {"externalId": "u-2"}}
    denied = await api.gql(
        'query { order(externalId: "o-2") { externalId } }', scopes="events:write"
    )
    assert error_codes(denied) == ["FORBIDDEN"]


async def test_refund_amount_overrides_the_value_of_its_lines(api: Api) -> None:
    await seed(api)
    await record(api, [order()])
    body = await api.gql(
        REFUND,
        {"input": {"externalId": "o-1", "amount": "4.00", "lines": [{"lineNo": 2, "quantity": 1}]}},
        scopes=W,
    )
    refunded = body["data"]["refundOrder"]["order"]
    assert refunded["refundedTotal"] == {"amount": "4.00"}  # a 1.00 restocking fee kept
    assert [ln["refundedQuantity"] for ln in refunded["lines"]] == [0, 1]
    assert refunded["status"] == "PARTIALLY_REFUNDED"
    assert money((await purchase_event(api, "o-1"))[1]) == Decimal("33.03")


async def test_purchase_event_stays_linked_without_analytics_consent(api: Api) -> None:
    # given u-1 refused analytics, so its behaviour events are stored unlinked
    await seed(api)
    body = await api.gql(
        """mutation($c: [ConsentInput!]!) { setConsents(input: {userExternalId: "u-1",
        consents: $c}) { errors { code } } }""",
        {"c": [{"purpose": "ANALYTICS", "granted": False, "source": "t", "policyVersion": "1"}]},
        scopes="users:write users:read",
    )
    assert body["data"]["setConsents"]["errors"] == [], body
    tracked = await api.gql(
        """mutation { trackEvents(input: {events: [{clientEventId: "v-1", type: "view",
            userExternalId: "u-1", productExternalId: "p-1"}]}) { accepted unlinked } }""",
        scopes="events:write",
    )
    assert tracked["data"]["trackEvents"] == {"accepted": 1, "unlinked": 1}

    # when an order of u-1 is recorded, its purchase event is still linked: orders are contractual
    await record(api, [order()])
    linked = await rows(
        api,
        "SELECT e.client_event_id, e.customer_id IS NOT NULL FROM event e ORDER BY 1",
    )
    assert [(cid, bool(known)) for cid, known in linked] == [("order:o-1", True), ("v-1", False)]


IDENTIFY = """mutation($a: String!) { identify(input: {anonymousId: $a, userExternalId: "u-1"}) {
  ordersMoved errors { code } } }"""


async def test_guest_orders_follow_identify(api: Api) -> None:
    await seed(api)
    guest = order("g-1", userExternalId=None, anonymousId="browser-1")
    first = await record(api, [guest])
    assert first["orders"][0]["user"] is None

    # when the browser is merged into u-1, the guest order moves, and a re-send of it is unchanged
    merged = await api.gql(IDENTIFY, {"a": "browser-1"}, scopes="events:write")
    assert merged["data"]["identify"] == {"ordersMoved": 1, "errors": []}, merged
    again = await record(api, [guest])
    assert (again["unchanged"], again["errors"]) == (1, [])
    assert again["orders"][0]["user"] == {"externalId": "u-1"}

    # and a new guest order from that browser belongs to u-1 from the start, event included
    later = await record(api, [order("g-2", userExternalId=None, anonymousId="browser-1")])
    assert later["orders"][0]["user"] == {"externalId": "u-1"}
    linked = await rows(
        api, "SELECT customer_id IS NOT NULL FROM event WHERE client_event_id = 'order:g-2'"
    )
    assert [bool(x) for (x,) in linked] == [True]


async def test_amounts_too_large_for_the_columns_are_refused(api: Api) -> None:
    await seed(api)
    huge_line = order("o-1", subtotal=None, total=None)
    huge_line["lines"][0] = {
        "productExternalId": "p-1",
        "quantity": 1_000_000,
        "unitPrice": "9999999.99",
    }
    many = order(
        "o-2", subtotal=None, total=None, discountTotal=None, shippingTotal=None, taxTotal=None
    )
    many["lines"] = [
        {"productExternalId": "p-1", "quantity": 1, "unitPrice": "9999999999.99"} for _ in range(3)
    ]
    shipping = order("o-3", shippingTotal="9999999999.99", total=None)
    result = await record(api, [huge_line, many, shipping])
    assert [(e["index"], e["code"], e["field"][-1]) for e in result["errors"]] == [
        (0, "INVALID_MONEY", "quantity"),
        (1, "INVALID_MONEY", "subtotal"),
        (2, "INVALID_MONEY", "total"),
    ]
    assert await count_rows(api.db, "orders") == 0


async def test_limits_and_bad_arguments(api: Api) -> None:
    await seed(api)
    too_many = await record(api, [order(f"o-{i}") for i in range(101)])
    assert [e["code"] for e in too_many["errors"]] == ["TOO_MANY"]
    assert too_many["rejected"] == 101
    assert await count_rows(api.db, "orders") == 0
    for query in (
        "{ orders(first: 101) { nodes { id } } }",
        '{ orders(after: "nope") { nodes { id } } }',
        '{ orders(filter: {userId: "nope"}) { nodes { id } } }',
        '{ order(id: "nope") { id } }',
        "{ order { id } }",
    ):
        body = await api.gql(query, scopes="users:read")
        assert error_codes(body) == ["BAD_USER_INPUT"], (query, body)
    unknown = await api.gql(
        "{ orders(filter: {status: LOST}) { nodes { id } } }", scopes="users:read"
    )
    assert unknown["data"] is None
    assert "OrderStatus" in unknown["errors"][0]["message"]  # a validation error
    bad_id = await api.gql(
        'mutation { cancelOrder(input: {orderId: "nope"}) { errors { code } } }', scopes=W
    )
    assert bad_id["data"]["cancelOrder"]["errors"] == [{"code": "INVALID"}]


async def test_nul_characters_are_refused_not_database_failures(api: Api) -> None:
    # through the API a NUL anywhere in the request is refused before any resolver runs
    await seed(api)
    body = await api.gql(RECORD, {"orders": [order("o-1", couponCode="A\u0000B")]}, scopes=W)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    for query in (
        'query { order(externalId: "o\\u0000") { id } }',
        'mutation { refundOrder(input: {externalId: "o\\u0000"}) { errors { code } } }',
    ):
        refused = await api.gql(query, scopes=W + " users:read")
        assert error_codes(refused) == ["BAD_USER_INPUT"], refused  # also in literals
    # and the service (imports call it directly) reports them as typed errors per order
    bad_title = service_order("o-2")
    bad_title["lines"][0]["title"] = "Mu\u0000g"
    async with api.db.unit_of_work() as session:
        result = await service.record_orders(
            session,
            SYSTEM,
            [
                service_order("o-1", coupon_code="A\u0000B"),
                bad_title,
                service_order("o-3", anonymous_id="x\u0000"),
            ],
            api.db.settings,
        )
        with pytest.raises(DomainError) as refused_refund:
            await service.refund_order(session, SYSTEM, external_id="o\u0000")
    assert [(e.index, e.code, e.field[-1]) for e in result.errors] == [
        (0, "INVALID", "couponCode"),
        (1, "INVALID", "title"),
        (2, "INVALID", "anonymousId"),
    ]
    assert [e.code for e in refused_refund.value.errors] == ["ORDER_NOT_FOUND"]
    assert await count_rows(api.db, "orders") == 0


def service_order(external_id: str, **extra: Any) -> dict[str, Any]:
    """An order as the service takes it (snake_case keys)."""
    return {
        "external_id": external_id,
        "user_external_id": "u-1",
        "currency": "EUR",
        "lines": [
            {"product_external_id": "p-1", "title": "Mug", "quantity": 2, "unit_price": "12.50"}
        ],
        "placed_at": "2026-11-02T10:15:00+01:00",
        **extra,
    }


async def test_identify_without_analytics_consent_keeps_guest_order_events_with_the_order(
    api: Api,
) -> None:
    # given a guest order and a guest view from browser-1, and u-1 who refused analytics
    await seed(api)
    await record(api, [order("g-1", userExternalId=None, anonymousId="browser-1")])
    await api.gql(
        """mutation { trackEvents(input: {events: [{clientEventId: "v-1", type: "view",
            anonymousId: "browser-1", productExternalId: "p-1", properties: {page: "/p"}}]}) {
            accepted } }""",
        scopes="events:write",
    )
    body = await api.gql(
        """mutation($c: [ConsentInput!]!) { setConsents(input: {userExternalId: "u-1",
        consents: $c}) { errors { code } } }""",
        {"c": [{"purpose": "ANALYTICS", "granted": False, "source": "t", "policyVersion": "1"}]},
        scopes="users:write users:read",
    )
    assert body["data"]["setConsents"]["errors"] == [], body

    # when the browser is merged into u-1
    merged = await api.gql(IDENTIFY, {"a": "browser-1"}, scopes="events:write")
    assert merged["data"]["identify"] == {"ordersMoved": 1, "errors": []}, merged

    # then the view is unlinked, but the order's purchase event follows the order, properties kept
    found = await rows(
        api,
        "SELECT client_event_id, customer_id IS NOT NULL, anonymous_id, properties"
        " FROM event ORDER BY 1",
    )
    (order_event, view_event) = found
    assert (order_event[0], bool(order_event[1])) == ("order:g-1", True)
    assert order_event[3] not in ({}, "{}", None)
    assert (view_event[0], bool(view_event[1]), view_event[2]) == ("v-1", False, None)
