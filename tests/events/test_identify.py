"""identify: an anonymous visitor's past events and orders follow the merge; a link to another
user is refused with nothing changed; identifying again is harmless; shopper tokens only merge
into their own customer."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from domain.audit.models import AuditEntry
from domain.events.models import IdentityLink
from domain.orders.models import Order
from tests.conftest import Api, count_rows, error_codes
from tests.events.helpers import W, gid, profile, seed, stored, track

IDENTIFY = """
mutation($input: IdentifyInput!) {
  identify(input: $input) {
    user { externalId } created eventsMoved ordersMoved
    errors { code field message }
  }
}"""


async def identify(api: Api, token: str | None = None, **input: Any) -> dict[str, Any]:
    body = await api.gql(IDENTIFY, {"input": input}, scopes=None if token else W, token=token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["identify"]
    return result


def anon(n: int, anonymous_id: str = "browser-1") -> dict[str, Any]:
    return {"clientEventId": f"a-{n}", "type": "share", "anonymousId": anonymous_id}


async def links(api: Api) -> list[tuple[str, int]]:
    async with api.db.read_only() as session:
        rows = await session.scalars(select(IdentityLink))
        return [(r.anonymous_id, r.customer_id) for r in rows]


async def anonymous_order(api: Api, anonymous_id: str) -> None:
    now = datetime.now(UTC)
    async with api.db.unit_of_work() as session:
        await session.execute(
            insert(Order.__table__),  # type: ignore[attr-defined]
            [
                {
                    "external_id": "o-1",
                    "anonymous_id": anonymous_id,
                    "status": "placed",
                    "currency": "EUR",
                    "subtotal": Decimal("5.00"),
                    "discount_total": Decimal(0),
                    "shipping_total": Decimal(0),
                    "tax_total": Decimal(0),
                    "total": Decimal("5.00"),
                    "refunded_total": Decimal(0),
                    "source_client_id": "test",
                    "placed_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )


async def test_past_events_and_orders_follow_the_merge(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    await track(api, [anon(1), anon(2), anon(3, "browser-2")])
    await anonymous_order(api, "browser-1")
    result = await identify(api, anonymousId="browser-1", userExternalId="c-1")
    assert result == {
        "user": {"externalId": "c-1"},
        "created": True,
        "eventsMoved": 2,
        "ordersMoved": 1,
        "errors": [],
    }
    owners = {e.client_event_id: e.customer_id for e in await stored(api.db)}
    assert owners == {"a-1": ids["c-1"], "a-2": ids["c-1"], "a-3": None}
    assert (await profile(api.db, ids["c-1"]) or (0,))[0] == 2
    async with api.db.read_only() as session:
        order = (await session.scalars(select(Order))).one()
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "identity.link"))  # type: ignore[arg-type]
        ).one()
    assert order.customer_id == ids["c-1"]
    assert entry.resource_id == str(ids["c-1"])
    assert entry.details["events_moved"] == 2

    # Later events of that anonymous id are attributed at ingestion.
    await track(api, [anon(4)])
    assert {e.client_event_id: e.customer_id for e in await stored(api.db)}["a-4"] == ids["c-1"]


async def test_identify_again_is_idempotent(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    await track(api, [anon(1)])
    first = await identify(api, anonymousId="browser-1", userId=gid("User", ids["c-1"]))
    again = await identify(api, anonymousId="browser-1", userExternalId="c-1")
    assert (first["created"], first["eventsMoved"]) == (True, 1)
    assert (again["created"], again["eventsMoved"], again["errors"]) == (False, 0, [])
    assert await links(api) == [("browser-1", ids["c-1"])]
    assert (await profile(api.db, ids["c-1"]) or (0,))[0] == 1


async def test_an_anonymous_id_of_another_user_is_refused(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    await track(api, [anon(1)])
    await identify(api, anonymousId="browser-1", userExternalId="c-1")
    await track(api, [{"clientEventId": "x", "type": "share", "userExternalId": "c-2"}])
    audits = await count_rows(api.db, "audit_entry")
    refused = await identify(api, anonymousId="browser-1", userExternalId="c-2")
    assert refused["user"] is None
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [
        ("ALREADY_LINKED", ["input", "anonymousId"])
    ]
    assert await links(api) == [("browser-1", ids["c-1"])]
    assert {e.client_event_id: e.customer_id for e in await stored(api.db)} == {
        "a-1": ids["c-1"],
        "x": ids["c-2"],
    }
    assert await count_rows(api.db, "audit_entry") == audits


async def test_identify_denials_change_nothing(api: Api, settings: Any) -> None:
    await seed(api.db, settings)
    await track(api, [anon(1)])
    unknown = await identify(api, anonymousId="browser-1", userExternalId="nobody")
    assert [e["code"] for e in unknown["errors"]] == ["NOT_FOUND"]
    empty = await identify(api, anonymousId="", userExternalId="c-1")
    assert [e["code"] for e in empty["errors"]] == ["INVALID"]
    neither = await identify(api, anonymousId="browser-1")
    assert [e["code"] for e in neither["errors"]] == ["REQUIRED"]
    body = await api.gql(
        IDENTIFY,
        {"input": {"anonymousId": "browser-1", "userExternalId": "c-1"}},
        scopes="users:read users:write",
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert await links(api) == []
    assert [e.customer_id for e in await stored(api.db)] == [None]


async def test_shopper_token_identifies_only_into_itself(api: Api, settings: Any) -> None:
    from tests.me.helpers import shopper_token

    ids = await seed(api.db, settings)
    await track(api, [anon(1), anon(2, "browser-2")])
    token = await shopper_token(api, "c-1")
    own = await identify(api, token=token, anonymousId="browser-1")
    assert (own["user"], own["eventsMoved"]) == ({"externalId": "c-1"}, 1)
    for other in (
        {"userExternalId": "c-2"},
        {"userId": gid("User", ids["c-2"])},
        {"userExternalId": "nobody"},
    ):
        refused = await identify(api, token=token, anonymousId="browser-2", **other)
        assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN_USER"], other
    assert await links(api) == [("browser-1", ids["c-1"])]
    owners = {e.client_event_id: e.customer_id for e in await stored(api.db)}
    assert owners == {"a-1": ids["c-1"], "a-2": None}
