"""Users over GraphQL: upserts, lookups, filters, pagination, PII, tags, and every denial."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from tests.conftest import Api, count_rows, error_codes

UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) {
    users { id externalId email phone firstName country locale timezone tags attributes }
    errors { code field message index }
  }
}"""
W = "users:write users:read"
R = "users:read"
PII = "users:read users:pii"


def alice(**extra: Any) -> dict[str, Any]:
    return {
        "externalId": "c-1",
        "email": "Alice.Smith@Example.COM",
        "phone": "+4915112345678",
        "firstName": "Alice",
        "country": "de",
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "tags": ["vip", "newsletter"],
        "attributes": {"shoeSize": 39},
        **extra,
    }


async def upsert(api: Api, users: list[dict[str, Any]], scopes: str = W) -> dict[str, Any]:
    body = await api.gql(UPSERT, {"users": users}, scopes=scopes)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["upsertUsers"]
    return result


async def test_upsert_creates_then_updates_idempotently(api: Api) -> None:
    first = await upsert(api, [alice()])
    assert first["errors"] == []
    user = first["users"][0]
    assert user["externalId"] == "c-1"
    assert user["email"] == "a***@example.com"  # masked without users:pii
    assert user["phone"] == "+49*********78"
    assert user["country"] == "DE"
    assert user["tags"] == ["newsletter", "vip"]
    assert user["attributes"] == {"shoeSize": 39}

    again = await upsert(api, [alice()])
    assert again["users"][0]["id"] == user["id"]
    assert await count_rows(api.db, "customer") == 1

    changed = await upsert(api, [{"externalId": "c-1", "firstName": "Alicia"}])
    row = changed["users"][0]
    assert row["firstName"] == "Alicia"
    assert row["country"] == "DE"  # omitted fields are kept
    assert row["tags"] == ["newsletter", "vip"]  # tags untouched when not given
    assert await count_rows(api.db, "customer") == 1


async def test_pii_is_encrypted_at_rest_and_unmasked_only_with_scope(api: Api) -> None:
    await upsert(api, [alice()])
    async with api.db.read_only() as session:
        raw = (
            await session.execute(
                text("SELECT email_encrypted, email_hash, phone_encrypted FROM customer")
            )
        ).one()
    assert "alice" not in raw[0].lower() and "example" not in raw[0].lower()
    assert len(raw[1]) == 64
    assert "4915112345678" not in raw[2]
    q = '{ user(externalId: "c-1") { email phone } }'
    assert (await api.gql(q, scopes=R))["data"]["user"] == {
        "email": "a***@example.com",
        "phone": "+49*********78",
    }
    assert (await api.gql(q, scopes=PII))["data"]["user"] == {
        "email": "alice.smith@example.com",
        "phone": "+4915112345678",
    }


async def test_lookup_by_id_external_id_and_email(api: Api) -> None:
    created = (
        await upsert(api, [alice(), alice(externalId="c-2", email="bob@example.org", tags=[])])
    )["users"]
    by_id = await api.gql(
        "query($id: ID!) { user(id: $id) { externalId } }", {"id": created[1]["id"]}, scopes=R
    )
    assert by_id["data"]["user"] == {"externalId": "c-2"}
    by_ext = await api.gql('{ user(externalId: "c-1") { id } }', scopes=R)
    assert by_ext["data"]["user"]["id"] == created[0]["id"]
    missing = await api.gql('{ user(externalId: "nope") { id } }', scopes=R)
    assert missing["data"]["user"] is None
    by_email = await api.gql(
        '{ users(filter: {email: "ALICE.smith@example.com"}) { nodes { externalId } } }', scopes=R
    )
    assert by_email["data"]["users"]["nodes"] == [{"externalId": "c-1"}]
    node = await api.gql(
        "query($id: ID!) { node(id: $id) { id ... on User { externalId } } }",
        {"id": created[0]["id"]},
        scopes=R,
    )
    assert node["data"]["node"]["externalId"] == "c-1"
    for bad in (
        "{ user { id } }",
        '{ user(id: "x", externalId: "c-1") { id } }',
        '{ user(id: "not-an-id") { id } }',
    ):
        body = await api.gql(bad, scopes=R)
        assert error_codes(body) == ["BAD_USER_INPUT"], bad


async def test_filters_and_pagination(api: Api) -> None:
    users = [
        {
            "externalId": f"u-{i:03d}",
            "country": "AT" if i % 3 == 0 else "DE",
            "tags": ["even"] if i % 2 == 0 else [],
        }
        for i in range(45)
    ]
    await upsert(api, users)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await api.gql(
            "query($after: String) { users(first: 20, after: $after) { totalCount edges { cursor node { externalId } } pageInfo { hasNextPage hasPreviousPage endCursor } } }",
            {"after": after},
            scopes=R,
        )
        conn = body["data"]["users"]
        assert conn["totalCount"] == 45
        seen += [e["node"]["externalId"] for e in conn["edges"]]
        pages += 1
        assert conn["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == [u["externalId"] for u in users]

    at = await api.gql('{ users(first: 100, filter: {country: "at"}) { totalCount } }', scopes=R)
    assert at["data"]["users"]["totalCount"] == 15
    both = await api.gql(
        '{ users(first: 100, filter: {country: "AT", tag: "even"}) { nodes { externalId } } }',
        scopes=R,
    )
    assert [n["externalId"] for n in both["data"]["users"]["nodes"]] == [
        f"u-{i:03d}" for i in range(0, 45, 6)
    ]
    future = await api.gql(
        '{ users(filter: {createdAfter: "2100-01-01T00:00:00+00:00"}) { totalCount } }', scopes=R
    )
    assert future["data"]["users"]["totalCount"] == 0
    past = await api.gql(
        '{ users(filter: {createdBefore: "2100-01-01T00:00:00Z", createdAfter: "2000-01-01T00:00:00Z"}) { totalCount } }',
        scopes=R,
    )
    assert past["data"]["users"]["totalCount"] == 45
    for bad in (
        "{ users(first: 101) { totalCount } }",
        "{ users(first: -1) { totalCount } }",
        '{ users(after: "garbage!") { totalCount } }',
        '{ users(filter: {country: "XX"}) { totalCount } }',
        '{ users(filter: {email: "not an email"}) { totalCount } }',
        '{ users(filter: {createdAfter: "2020-01-01T00:00:00"}) { totalCount } }',
    ):
        assert error_codes(await api.gql(bad, scopes=R)) == ["BAD_USER_INPUT"], bad


async def test_update_user_and_tags(api: Api) -> None:
    created = (
        await upsert(api, [alice(), alice(externalId="c-2", email=None, phone=None, tags=[])])
    )["users"]
    upd = await api.gql(
        """mutation($input: UpdateUserInput!) { updateUser(input: $input) {
             user { externalId firstName phone timezone } errors { code field } } }""",
        {
            "input": {
                "externalId": "c-1",
                "firstName": "Ali",
                "phone": None,
                "timezone": "Europe/Vienna",
            }
        },
        scopes=W,
    )
    assert upd["data"]["updateUser"] == {
        "user": {
            "externalId": "c-1",
            "firstName": "Ali",
            "phone": None,
            "timezone": "Europe/Vienna",
        },
        "errors": [],
    }
    bad = await api.gql(
        'mutation { updateUser(input: {externalId: "c-1", timezone: "Mars/Base", email: "x@"}) { user { id } errors { code field } } }',
        scopes=W,
    )
    assert bad["data"]["updateUser"]["user"] is None
    assert sorted(e["code"] for e in bad["data"]["updateUser"]["errors"]) == [
        "INVALID_EMAIL",
        "INVALID_TIMEZONE",
    ]
    still = await api.gql('{ user(externalId: "c-1") { timezone email } }', scopes=PII)
    assert still["data"]["user"] == {
        "timezone": "Europe/Vienna",
        "email": "alice.smith@example.com",
    }
    missing = await api.gql(
        'mutation { updateUser(input: {externalId: "zz"}) { errors { code } } }', scopes=W
    )
    assert missing["data"]["updateUser"]["errors"] == [{"code": "NOT_FOUND"}]

    ids = [u["id"] for u in created]
    tag = "mutation($ids: [ID!]!, $tags: [String!]!) { tagUsers(input: {userIds: $ids, tags: $tags}) { users { externalId tags } errors { code field } } }"
    untag = tag.replace("tagUsers", "untagUsers")
    out = await api.gql(tag, {"ids": ids, "tags": ["promo", "vip"]}, scopes=W)
    assert out["data"]["tagUsers"]["users"] == [
        {"externalId": "c-1", "tags": ["newsletter", "promo", "vip"]},
        {"externalId": "c-2", "tags": ["promo", "vip"]},
    ]
    out = await api.gql(untag, {"ids": ids, "tags": ["vip"]}, scopes=W)
    assert [u["tags"] for u in out["data"]["untagUsers"]["users"]] == [
        ["newsletter", "promo"],
        ["promo"],
    ]
    tags_before = await count_rows(api.db, "customer_tag")
    for variables, code in (
        ({"ids": ids, "tags": ["Bad Tag"]}, "INVALID_TAG"),
        ({"ids": ids, "tags": []}, "INVALID_TAG"),
        ({"ids": [*ids, "VXNlcjo5OTk5"], "tags": ["x"]}, "NOT_FOUND"),
        ({"ids": [], "tags": ["x"]}, "REQUIRED"),
    ):
        body = await api.gql(tag, variables, scopes=W)
        assert code in [e["code"] for e in body["data"]["tagUsers"]["errors"]], variables
        assert body["data"]["tagUsers"]["users"] == []
    assert await count_rows(api.db, "customer_tag") == tags_before


async def test_batch_errors_are_per_item_and_write_nothing(api: Api) -> None:
    await upsert(api, [alice()])
    body = await api.gql(
        UPSERT,
        {
            "users": [
                {"externalId": "ok-1", "email": "fine@example.com"},
                {"externalId": "bad-1", "email": "not-an-email"},
                {"externalId": "ok-1", "country": "DE"},
                {"externalId": "bad 2", "timezone": "Nowhere/Town", "tags": ["UPPER"]},
                {
                    "externalId": "bad-3",
                    "phone": "12345",
                    "birthDate": "1800-01-01",
                    "locale": "!!",
                },
            ]
        },
        scopes=W,
    )
    result = body["data"]["upsertUsers"]
    assert result["users"] == []
    got = sorted((e["index"], e["code"], ".".join(e["field"])) for e in result["errors"])
    assert got == [
        (1, "INVALID_EMAIL", "users.1.email"),
        (2, "DUPLICATE", "users.2.externalId"),
        (3, "INVALID_EXTERNAL_ID", "users.3.externalId"),
        (3, "INVALID_TAG", "users.3.tags"),
        (3, "INVALID_TIMEZONE", "users.3.timezone"),
        (4, "INVALID_DATE", "users.4.birthDate"),
        (4, "INVALID_LOCALE", "users.4.locale"),
        (4, "INVALID_PHONE", "users.4.phone"),
    ]
    assert await count_rows(api.db, "customer") == 1

    too_many = await api.gql(
        UPSERT, {"users": [{"externalId": f"x-{i}"} for i in range(101)]}, scopes=W
    )
    assert [e["code"] for e in too_many["data"]["upsertUsers"]["errors"]] == ["TOO_MANY"]
    assert await count_rows(api.db, "customer") == 1


@pytest.mark.parametrize(
    "variables",
    [
        {"users": [{"externalId": "x", "unknownField": 1}]},
        {"users": [{"externalId": 5}]},
        {"users": [{"email": "a@example.com"}]},
        {"users": "nope"},
        {"users": [{"externalId": "x", "birthDate": "yesterday"}]},
    ],
)
async def test_malformed_input_is_rejected_by_graphql(api: Api, variables: dict[str, Any]) -> None:
    body = await api.gql(UPSERT, variables, scopes=W)
    assert body.get("data") is None
    assert body["errors"]
    assert await count_rows(api.db, "customer") == 0


OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("users:read", '{ user(externalId: "c-1") { id } }', {}),
    ("users:read", "{ users { totalCount } }", {}),
    ("users:write", UPSERT, {"users": [{"externalId": "new-1"}]}),
    (
        "users:write",
        'mutation { updateUser(input: {externalId: "c-1", firstName: "Z"}) { errors { code } } }',
        {},
    ),
    (
        "users:write",
        'mutation { tagUsers(input: {userIds: ["VXNlcjox"], tags: ["z"]}) { errors { code } } }',
        {},
    ),
    (
        "users:write",
        'mutation { untagUsers(input: {userIds: ["VXNlcjox"], tags: ["vip"]}) { errors { code } } }',
        {},
    ),
]


@pytest.mark.parametrize(("scope", "query", "variables"), OPERATIONS)
async def test_scope_matrix(api: Api, scope: str, query: str, variables: dict[str, Any]) -> None:
    await upsert(api, [alice()])

    async def snapshot() -> tuple[Any, ...]:
        async with api.db.read_only() as session:
            users = (
                await session.execute(
                    text("SELECT external_id, first_name, updated_at FROM customer ORDER BY id")
                )
            ).all()
            tags = (
                await session.execute(
                    text("SELECT customer_id, tag FROM customer_tag ORDER BY 1, 2")
                )
            ).all()
        return tuple(users), tuple(tags)

    before = await snapshot()
    anonymous = await api.gql(query, variables)
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert not any((anonymous["data"] or {}).values())
    wrong = await api.gql(query, variables, scopes="catalog:read")
    assert error_codes(wrong) == ["FORBIDDEN"]
    assert scope in wrong["errors"][0]["message"]
    other_half = "users:read" if scope == "users:write" else "users:write"
    half = await api.gql(query, variables, scopes=other_half)
    assert error_codes(half) == ["FORBIDDEN"]
    assert await snapshot() == before
    allowed = await api.gql(query, variables, scopes=scope)
    assert "errors" not in allowed
    assert allowed["data"] is not None


async def test_user_list_has_no_n_plus_one(api: Api) -> None:
    await upsert(api, [{"externalId": f"n-{i}", "tags": ["a", "b"]} for i in range(60)])
    token = await api.token(R)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = api.app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for first in (5, 50):
            statements.clear()
            body = await api.gql(
                f"{{ users(first: {first}) {{ nodes {{ id email tags }} }} }}", token=token
            )
            assert len(body["data"]["users"]["nodes"]) == first
            queries = [
                s for s in statements if "revoked_token" not in s and "oauth_client" not in s
            ]
            assert len(queries) == 2, queries  # one page query, one batched tags query
    finally:
        event.remove(engine, "before_cursor_execute", record)
