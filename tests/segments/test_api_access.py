"""Who may read and change segments: segments:read for reads, segments:write for writes, users:read
for the shoppers in them; shopper tokens reach nothing. Every denial is a top-level error and
changes nothing."""

from __future__ import annotations

from typing import Any

from api.ids import encode_id
from tests.conftest import Api, error_codes
from tests.me.helpers import shopper_token
from tests.segments.api_helpers import (
    ADD,
    ARCHIVE,
    CREATE,
    IMPORT,
    PREVIEW,
    REFRESH,
    REMOVE,
    UPDATE,
    W,
    create,
    segment_state,
    users,
)

TAG = {"tag": {"tags": ["vip"], "match": "ANY"}}


def writes(segment_id: str, static_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (CREATE, {"input": {"name": "x", "definition": TAG}}),
        (UPDATE, {"input": {"id": segment_id, "name": "renamed"}}),
        (ARCHIVE, {"input": {"id": segment_id}}),
        (ADD, {"input": {"segmentId": static_id, "userExternalIds": ["a"]}}),
        (REMOVE, {"input": {"segmentId": static_id, "userExternalIds": ["a"]}}),
        (IMPORT, {"input": {"segmentId": static_id, "csv": "external_id\na\n"}}),
        (REFRESH, {"input": {"id": segment_id}}),
    ]


READS: list[tuple[str, dict[str, Any] | None]] = [
    ("{ segments { nodes { id } } }", {}),
    ("query($id: ID!) { segment(id: $id) { id name } }", None),
    (PREVIEW, {"d": TAG}),
]


async def setup(api: Api) -> tuple[str, str]:
    await users(api, {"externalId": "a", "tags": ["vip"]}, {"externalId": "b"})
    dynamic = await create(api, name="VIP", definition=TAG)
    static = await create(api, name="List", kind="STATIC")
    return dynamic["id"], static["id"]


async def test_writes_need_segments_write_and_change_nothing(api: Api) -> None:
    # given a dynamic and a static segment
    dynamic, static = await setup(api)
    before = await segment_state(api)
    # when every mutation is called without a token, and with tokens lacking segments:write
    for scopes, code in (
        (None, "UNAUTHENTICATED"),
        ("segments:read users:read users:write", "FORBIDDEN"),
        ("clients:manage", "FORBIDDEN"),
    ):
        for query, variables in writes(dynamic, static):
            body = await api.gql(query, variables, scopes=scopes)
            # then each is a top-level error with no data, and nothing changed
            assert error_codes(body) == [code], (scopes, query, body)
            assert body["data"] is None, body
    assert await segment_state(api) == before


async def test_reads_need_segments_read(api: Api) -> None:
    dynamic, _ = await setup(api)
    for query, variables in READS:
        variables = {"id": dynamic} if variables is None else variables
        for scopes, code in ((None, "UNAUTHENTICATED"), ("users:read", "FORBIDDEN")):
            body = await api.gql(query, variables, scopes=scopes)
            assert error_codes(body) == [code], (scopes, query, body)
        body = await api.gql(query, variables, scopes="segments:read")
        assert "errors" not in body or query == PREVIEW, body
    # the node interface needs segments:read too
    node = f'{{ node(id: "{dynamic}") {{ ... on Segment {{ name }} }} }}'
    assert error_codes(await api.gql(node, scopes="users:read")) == ["FORBIDDEN"]
    body = await api.gql(node, scopes="segments:read")
    assert body["data"]["node"] == {"name": "VIP"}, body


async def test_shoppers_need_users_read_too(api: Api) -> None:
    # given a segment with a member
    dynamic, _ = await setup(api)
    await api.gql(REFRESH, {"input": {"id": dynamic}}, scopes=W)
    # then segments:read alone sees the segment and the count, not who is in it
    member_query = """query($id: ID!) { segment(id: $id) { name memberCount
      members { edges { enteredAt node { externalId } } } } }"""
    body = await api.gql(member_query, {"id": dynamic}, scopes="segments:read")
    assert error_codes(body) == ["FORBIDDEN"], body
    assert body["errors"][0]["path"] == ["segment", "members"]
    assert body["data"]["segment"] == {"name": "VIP", "memberCount": 1, "members": None}
    body = await api.gql(
        "query($d: SegmentCondition!) { previewSegment(definition: $d) { preview { count } } }",
        {"d": TAG},
        scopes="segments:read",
    )
    assert body["data"]["previewSegment"]["preview"] == {"count": 1}, body
    body = await api.gql(
        """query($d: SegmentCondition!) { previewSegment(definition: $d) {
          preview { count sample { externalId } } } }""",
        {"d": TAG},
        scopes="segments:read",
    )
    assert error_codes(body) == ["FORBIDDEN"], body
    assert body["data"]["previewSegment"]["preview"] == {"count": 1, "sample": None}, body
    # and User.segments needs segments:read besides users:read
    body = await api.gql(
        '{ user(externalId: "a") { segments { segment { name } } } }', scopes="users:read"
    )
    assert error_codes(body) == ["FORBIDDEN"], body
    body = await api.gql(
        '{ user(externalId: "a") { segments { segment { name } } } }',
        scopes="users:read segments:read",
    )
    assert body["data"]["user"]["segments"] == [{"segment": {"name": "VIP"}}], body


async def test_shopper_tokens_reach_no_segment(api: Api) -> None:
    # given a segment that the shopper is in
    dynamic, static = await setup(api)
    await api.gql(REFRESH, {"input": {"id": dynamic}}, scopes=W)
    token = await shopper_token(api, "a")
    before = await segment_state(api)
    # then reads, writes and their own memberships through `me` are all refused
    for query, variables in [*READS, *writes(dynamic, static)]:
        variables = {"id": dynamic} if variables is None else variables
        body = await api.gql(query, variables, token=token)
        assert error_codes(body) == ["FORBIDDEN"], (query, body)
        assert body["data"] is None or "VIP" not in str(body["data"]), body
    body = await api.gql(
        "{ me { user { externalId segments { segment { name } } } } }", token=token
    )
    assert error_codes(body) == ["FORBIDDEN"], body
    assert "VIP" not in str(body["data"])
    assert await segment_state(api) == before


async def test_an_id_of_another_type_finds_no_segment(api: Api) -> None:
    await setup(api)
    body = await api.gql(
        "query($id: ID!) { segment(id: $id) { id } }",
        {"id": encode_id("User", 1)},
        scopes="segments:read",
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    body = await api.gql(
        "query($id: ID!) { segment(id: $id) { id } }",
        {"id": encode_id("Segment", 9999)},
        scopes="segments:read",
    )
    assert body == {"data": {"segment": None}}
