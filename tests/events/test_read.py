"""Reading events: User.events and the admin events list, newest first, filtered and paged; who
may read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api, error_codes
from tests.events.helpers import gid, seed, track, view

USER_EVENTS = """
query($ext: String!, $first: Int!, $after: String, $type: String) {
  user(externalId: $ext) {
    events(first: $first, after: $after, type: $type) {
      nodes { id clientEventId type value currency channel properties occurredAt receivedAt
              product { externalId } }
      pageInfo { hasNextPage endCursor }
      totalCount
    }
  }
}"""
EVENTS = """
query($filter: EventFilter, $first: Int!, $after: String) {
  events(filter: $filter, first: $first, after: $after) {
    nodes { clientEventId } pageInfo { hasNextPage endCursor } edges { cursor }
  }
}"""
R = "users:read"
BASE = datetime.now(UTC) - timedelta(days=1)


async def five(api: Api) -> None:
    # Sent in an order unlike their occurrence; e-3 and e-4 happen at the same instant.
    at = {1: 1, 2: 5, 3: 3, 4: 3, 5: 2}
    events = [view(n, occurredAt=(BASE + timedelta(hours=h)).isoformat()) for n, h in at.items()]
    events.append(
        {
            "clientEventId": "e-6",
            "type": "purchase",
            "userExternalId": "c-2",
            "value": "12.5",
            "currency": "EUR",
            "occurredAt": BASE.isoformat(),
        }
    )
    assert (await track(api, events))["accepted"] == 6


async def test_user_events_newest_first_with_paging(api: Api, settings: Any) -> None:
    await seed(api.db, settings)
    await five(api)
    got: list[str] = []
    after = None
    while True:
        body = await api.gql(USER_EVENTS, {"ext": "c-1", "first": 2, "after": after}, scopes=R)
        assert "errors" not in body, body
        page = body["data"]["user"]["events"]
        assert page["totalCount"] == 5
        got += [n["clientEventId"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert got == ["e-2", "e-4", "e-3", "e-5", "e-1"]
    first = (await api.gql(USER_EVENTS, {"ext": "c-1", "first": 1}, scopes=R))["data"]
    node = first["user"]["events"]["nodes"][0]
    assert node["product"] == {"externalId": "p-1"}
    assert node["type"] == "view" and node["value"] is None and node["properties"] == {}
    purchase = await api.gql(USER_EVENTS, {"ext": "c-2", "first": 5, "type": "purchase"}, scopes=R)
    node = purchase["data"]["user"]["events"]["nodes"][0]
    assert (node["value"], node["currency"], node["product"]) == ("12.50", "EUR", None)


async def test_admin_events_filters(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    await five(api)

    async def names(flt: dict[str, Any]) -> list[str]:
        body = await api.gql(EVENTS, {"filter": flt, "first": 50}, scopes=R)
        assert "errors" not in body, body
        return [n["clientEventId"] for n in body["data"]["events"]["nodes"]]

    assert await names({}) == ["e-2", "e-4", "e-3", "e-5", "e-1", "e-6"]
    assert await names({"type": "purchase"}) == ["e-6"]
    assert await names({"userId": gid("User", ids["c-2"])}) == ["e-6"]
    assert await names({"productId": gid("Product", ids["p-1"])}) == [
        "e-2",
        "e-4",
        "e-3",
        "e-5",
        "e-1",
    ]
    since = (BASE + timedelta(hours=2)).isoformat()
    until = (BASE + timedelta(hours=5)).isoformat()
    assert await names({"since": since, "until": until}) == ["e-4", "e-3", "e-5"]
    bad = await api.gql(EVENTS, {"filter": {"userId": "nope"}, "first": 5}, scopes=R)
    assert error_codes(bad) == ["BAD_USER_INPUT"]
    too_many = await api.gql(EVENTS, {"first": 101}, scopes=R)
    assert error_codes(too_many) == ["BAD_USER_INPUT"]
    cursor = (await api.gql(EVENTS, {"first": 1}, scopes=R))["data"]["events"]["edges"][0]
    rest = await api.gql(EVENTS, {"first": 50, "after": cursor["cursor"]}, scopes=R)
    assert next(n["clientEventId"] for n in rest["data"]["events"]["nodes"]) == "e-4"


async def test_reading_events_needs_users_read(api: Api, settings: Any) -> None:
    await seed(api.db, settings)
    await five(api)
    for scopes in ("events:write", "catalog:read"):
        body = await api.gql(EVENTS, {"first": 5}, scopes=scopes)
        assert error_codes(body) == ["FORBIDDEN"] and body["data"] is None
    body = await api.gql(EVENTS, {"first": 5})
    assert error_codes(body) == ["UNAUTHENTICATED"]


async def test_a_shopper_reads_only_its_own_events_through_me(api: Api, settings: Any) -> None:
    from tests.me.helpers import shopper_token

    await seed(api.db, settings)
    await five(api)
    token = await shopper_token(api, "c-2")
    body = await api.gql(
        "{ me { user { externalId events(first: 10) { nodes { clientEventId } } } } }",
        token=token,
    )
    assert "errors" not in body, body
    assert body["data"]["me"]["user"]["events"]["nodes"] == [{"clientEventId": "e-6"}]
    for query in (
        '{ user(externalId: "c-1") { events(first: 5) { nodes { id } } } }',
        "{ events(first: 5) { nodes { id } } }",
    ):
        denied = await api.gql(query, token=token)
        assert error_codes(denied) == ["FORBIDDEN"], query
