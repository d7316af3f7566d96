"""Segments through the API: create, update with versions, archive, static lists, refresh,
members, history, listing and User.segments. Every refusal is a typed error with the exact path
and changes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from api.ids import decode_id, encode_id
from tests.conftest import Api, count_rows, error_codes
from tests.segments.api_helpers import (
    ADD,
    ARCHIVE,
    CREATE,
    IMPORT,
    REFRESH,
    REMOVE,
    RU,
    UPDATE,
    W,
    create,
    ok,
    pk,
    segment_state,
    users,
)

VIP = {"tag": {"tags": ["vip"], "match": "ANY"}}
GERMANS = {"attribute": {"field": "COUNTRY", "op": "EQ", "value": "DE"}}


def errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    assert "errors" not in body, body
    (value,) = body["data"].values()
    found: list[dict[str, Any]] = value["errors"]
    return found


def codes_and_fields(body: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(e["code"], e["field"]) for e in errors_of(body)]


async def test_create_read_update_and_history(api: Api) -> None:
    # given a dynamic segment
    made = await create(api, name="VIP", description="tagged vip", definition=VIP)
    assert made["kind"] == "DYNAMIC" and made["status"] == "ACTIVE" and made["version"] == 1
    assert made["builtin"] is False and made["memberCount"] == 0
    # its definition reads back in the input form
    assert made["definition"] == {"tag": {"tags": ["vip"], "match": "ANY"}}

    # when it is updated twice, the second time with the version it was based on
    first = await ok(api, UPDATE, {"input": {"id": made["id"], "definition": GERMANS}}, W)
    assert first["segment"]["version"] == 2
    second = await ok(
        api, UPDATE, {"input": {"id": made["id"], "name": "VIP DE", "expectedVersion": 2}}, W
    )
    assert second["segment"]["version"] == 3
    assert second["segment"]["definition"] == GERMANS

    # then a stale expectedVersion is a CONFLICT and changes nothing
    before = await segment_state(api)
    body = await api.gql(
        UPDATE, {"input": {"id": made["id"], "name": "late", "expectedVersion": 2}}, scopes=W
    )
    assert codes_and_fields(body) == [("CONFLICT", ["input", "expectedVersion"])]
    assert body["data"]["updateSegment"]["segment"] is None
    assert await segment_state(api) == before

    # and the history lists every version, newest first, with who changed it
    body = await api.gql(
        """query($id: ID!) { segment(id: $id) { name version
          history { version name description definition changedBy changedAt } } }""",
        {"id": made["id"]},
        scopes="segments:read",
    )
    seg = body["data"]["segment"]
    assert seg["name"] == "VIP DE" and seg["version"] == 3
    assert [(h["version"], h["name"], h["definition"]) for h in seg["history"]] == [
        (3, "VIP DE", GERMANS),
        (2, "VIP", GERMANS),
        (1, "VIP", VIP),
    ]
    assert all(h["changedBy"] and h["changedAt"] for h in seg["history"])
    assert seg["history"][2]["description"] == "tagged vip"


async def test_definition_round_trips_through_the_input_form(api: Api) -> None:
    # given a definition using every kind of leaf, ids and enums
    made_products = await api.gql(
        """mutation { upsertProducts(input: {products: [{externalId: "shoe", title: "Shoe",
          price: "80.00", currency: "EUR", categoryPath: ["Shoes", "Running"]}]}) {
          products { id } errors { code } } }""",
        scopes="catalog:write catalog:read",
    )
    product_id = made_products["data"]["upsertProducts"]["products"][0]["id"]
    other = await create(api, name="other", definition=VIP)
    definition = {
        "and": [
            {"attribute": {"field": "COUNTRY", "op": "IN", "values": ["DE", "AT"]}},
            {"attribute": {"key": "plan.tier", "op": "EQ", "value": "gold"}},
            {"tag": {"tags": ["a", "b"], "match": "ALL"}},
            {"consent": {"purpose": "PUSH", "granted": True}},
            {"segment": {"segmentId": other["id"], "member": False}},
            {"profile": {"field": "RFM_GROUP", "op": "IN", "values": ["champions"]}},
            {
                "behavior": {
                    "did": True,
                    "eventType": "purchase",
                    "productId": product_id,
                    "count": {"min": 2},
                    "value": {"min": "10.5", "currency": "EUR"},
                    "window": {"lastDays": 90},
                    "occurrence": "ANY",
                }
            },
            {
                "or": [
                    {
                        "order": {
                            "did": True,
                            "totalValue": {"min": "200.01"},
                            "window": {"lastDays": 90},
                            "includeRefunded": False,
                        }
                    },
                    {
                        "not": {
                            "behavior": {
                                "did": True,
                                "eventType": "message_open",
                                "window": {"lastDays": 30},
                                "occurrence": "LAST",
                            }
                        }
                    },
                ]
            },
        ]
    }
    made = await create(api, name="all leaves", definition=definition)
    # then what is read back is what was sent, and can be sent back as is
    assert made["definition"] == definition
    again = await ok(
        api, UPDATE, {"input": {"id": made["id"], "definition": made["definition"]}}, W
    )
    assert again["segment"]["definition"] == definition
    # and a product's external id or a category path is stored as the id
    by_external = await create(
        api,
        name="by external id",
        definition={
            "or": [
                {"behavior": {"eventType": "view", "productExternalId": "shoe"}},
                {"behavior": {"eventType": "view", "categoryPath": ["Shoes", "Running"]}},
            ]
        },
    )
    leaves = [c["behavior"] for c in by_external["definition"]["or"]]
    assert leaves[0]["productId"] == product_id and "productExternalId" not in leaves[0]
    assert decode_id(leaves[1]["categoryId"])[0] == "Category" and "categoryPath" not in leaves[1]


async def test_invalid_definitions_are_typed_errors_at_their_path(api: Api) -> None:
    other = await create(api, name="other", definition=VIP)
    before = await segment_state(api)
    cases: list[tuple[dict[str, Any], list[tuple[str, list[str]]]]] = [
        (
            {"and": [VIP, {"segment": {"segmentId": "not-an-id"}}]},
            [("INVALID_VALUE", ["input", "definition", "and", "1", "segment", "segmentId"])],
        ),
        (
            {"and": [VIP, {"segment": {"segmentId": encode_id("Segment", 99999)}}]},
            [("NOT_FOUND", ["input", "definition", "and", "1", "segment", "segmentId"])],
        ),
        (
            {"or": [VIP, {"behavior": {"eventType": "view", "productExternalId": "nope"}}]},
            [("NOT_FOUND", ["input", "definition", "or", "1", "behavior", "productExternalId"])],
        ),
        (
            {"or": [VIP, {"behavior": {"eventType": "view", "productId": other["id"]}}]},
            [("INVALID_VALUE", ["input", "definition", "or", "1", "behavior", "productId"])],
        ),
        (
            {
                "not": {
                    "behavior": {"eventType": "view", "window": {"lastDays": 1, "olderThanDays": 2}}
                }
            },
            [("IMPOSSIBLE_WINDOW", ["input", "definition", "not", "behavior", "window"])],
        ),
        (
            {"attribute": {"field": "COUNTRY", "op": "GT", "value": "DE"}},
            [("INVALID_OPERATOR", ["input", "definition", "attribute", "op"])],
        ),
        ({"and": []}, [("EMPTY", ["input", "definition", "and"])]),
        (
            {"attribute": {"field": "COUNTRY", "op": "EQ", "value": "x" * 257}},
            [("TOO_LONG", ["input", "definition", "attribute", "value"])],
        ),
        (
            {"tag": {"tags": [f"t{i}" for i in range(1001)]}},
            [("TOO_MANY", ["input", "definition", "tag", "tags"])],
        ),
    ]
    for definition, expected in cases:
        body = await api.gql(CREATE, {"input": {"name": "bad", "definition": definition}}, scopes=W)
        found = codes_and_fields(body)
        # the code and path of the first error are exact (some checks add detail errors after)
        assert found[: len(expected)] == expected, (definition, body)
        assert body["data"]["createSegment"]["segment"] is None
    # and the segment's own fields
    body = await api.gql(CREATE, {"input": {"name": " ", "definition": VIP}}, scopes=W)
    assert codes_and_fields(body) == [("REQUIRED", ["input", "name"])]
    body = await api.gql(CREATE, {"input": {"name": "no definition"}}, scopes=W)
    assert codes_and_fields(body) == [("REQUIRED", ["input", "definition"])]
    body = await api.gql(
        CREATE, {"input": {"name": "static", "kind": "STATIC", "definition": VIP}}, scopes=W
    )
    assert codes_and_fields(body) == [("INVALID", ["input", "definition"])]
    assert await segment_state(api) == before


async def test_cycles_are_refused(api: Api) -> None:
    # given a -> b -> c
    c = await create(api, name="c", definition=VIP)
    b = await create(api, name="b", definition={"segment": {"segmentId": c["id"]}})
    a = await create(api, name="a", definition={"segment": {"segmentId": b["id"]}})
    before = await segment_state(api)
    # when c is made to reference a (three steps), or itself
    for target in (a["id"], c["id"]):
        body = await api.gql(
            UPDATE,
            {
                "input": {
                    "id": c["id"],
                    "definition": {"and": [VIP, {"segment": {"segmentId": target}}]},
                }
            },
            scopes=W,
        )
        # then CYCLE at the reference, and nothing changed
        assert codes_and_fields(body)[:1] == [
            ("CYCLE", ["input", "definition", "and", "1", "segment", "segmentId"])
        ] or codes_and_fields(body)[:1] == [
            ("CYCLE", ["input", "definition", "and", "1", "segment"])
        ], body
    assert await segment_state(api) == before


async def test_archive(api: Api) -> None:
    used = await create(api, name="used", definition=VIP)
    user = await create(api, name="user", definition={"segment": {"segmentId": used["id"]}})
    before = await segment_state(api)
    # a referenced segment cannot be archived
    body = await api.gql(ARCHIVE, {"input": {"id": used["id"]}}, scopes=W)
    assert codes_and_fields(body) == [("IN_USE", ["input", "id"])]
    body = await api.gql(ARCHIVE, {"input": {"id": "junk"}}, scopes=W)
    assert codes_and_fields(body) == [("INVALID_VALUE", ["input", "id"])]
    body = await api.gql(ARCHIVE, {"input": {"id": encode_id("Segment", 999)}}, scopes=W)
    assert codes_and_fields(body) == [("NOT_FOUND", ["input", "id"])]
    assert await segment_state(api) == before
    # a stored definition that went bad (its reference archived behind the API's back): the
    # refresh is refused at input.id, naming the definition path in the message
    async with api.db.unit_of_work() as session:
        await session.execute(
            text("UPDATE segment SET status = 'archived' WHERE id = :id"), {"id": pk(used["id"])}
        )
    body = await api.gql(REFRESH, {"input": {"id": user["id"]}}, scopes=W)
    errors = errors_of(body)
    assert [(e["code"], e["field"]) for e in errors] == [("NOT_FOUND", ["input", "id"])], body
    assert "definition.segment.segmentId" in errors[0]["message"]
    async with api.db.unit_of_work() as session:
        await session.execute(
            text("UPDATE segment SET status = 'active' WHERE id = :id"), {"id": pk(used["id"])}
        )
    # the referencing one can; then the other
    for seg in (user, used):
        done = await ok(api, ARCHIVE, {"input": {"id": seg["id"]}}, W)
        assert done["segment"]["status"] == "ARCHIVED" and done["segment"]["archivedAt"]
    # an archived segment is not listed (unless asked for), cannot be changed or referenced
    listed = await api.gql("{ segments { nodes { name } totalCount } }", scopes="segments:read")
    assert listed["data"]["segments"] == {"nodes": [], "totalCount": 0}
    archived = await api.gql(
        "{ segments(filter: {status: ARCHIVED}) { nodes { name } } }", scopes="segments:read"
    )
    assert [n["name"] for n in archived["data"]["segments"]["nodes"]] == ["used", "user"]
    body = await api.gql(UPDATE, {"input": {"id": used["id"], "name": "x"}}, scopes=W)
    assert codes_and_fields(body) == [("ARCHIVED", ["input", "id"])]
    body = await api.gql(
        CREATE,
        {"input": {"name": "x", "definition": {"segment": {"segmentId": used["id"]}}}},
        scopes=W,
    )
    assert codes_and_fields(body) == [
        ("NOT_FOUND", ["input", "definition", "segment", "segmentId"])
    ]


async def test_static_segments(api: Api) -> None:
    ids = await users(api, *({"externalId": f"u{i}"} for i in range(5)))
    static = await create(api, name="List", kind="STATIC")
    assert static["definition"] is None
    dynamic = await create(api, name="Dyn", definition=VIP)

    # add by id and by external id
    added = await ok(
        api,
        ADD,
        {
            "input": {
                "segmentId": static["id"],
                "userIds": [ids["u0"], ids["u1"]],
                "userExternalIds": ["u2", "u1"],
            }
        },
        W,
    )
    assert added["changed"] == 3 and added["segment"]["memberCount"] == 3

    # refused batches change nothing: an unknown external id, a bad id, an id of no user,
    # a dynamic segment, none given, too many
    before = await segment_state(api)
    refusals: list[tuple[dict[str, Any], list[tuple[str, list[str], int | None]]]] = [
        (
            {"segmentId": static["id"], "userExternalIds": ["u3", "ghost"]},
            [("NOT_FOUND", ["input", "userExternalIds", "1"], 1)],
        ),
        (
            {"segmentId": static["id"], "userIds": [ids["u3"], "junk"]},
            [("INVALID_VALUE", ["input", "userIds", "1"], 1)],
        ),
        (
            {"segmentId": static["id"], "userIds": [ids["u3"], encode_id("User", 99999)]},
            [("NOT_FOUND", ["input", "userIds", "1"], 1)],
        ),
        (
            {"segmentId": dynamic["id"], "userIds": [ids["u3"]]},
            [("NOT_STATIC", ["input", "segmentId"], None)],
        ),
        ({"segmentId": static["id"]}, [("REQUIRED", ["input", "userIds"], None)]),
        (
            {"segmentId": static["id"], "userExternalIds": [f"x{i}" for i in range(1001)]},
            [("TOO_MANY", ["input", "userIds"], None)],
        ),
        (
            {"segmentId": "junk", "userIds": [ids["u3"]]},
            [("INVALID_VALUE", ["input", "segmentId"], None)],
        ),
    ]
    for input, expected in refusals:
        body = await api.gql(ADD, {"input": input}, scopes=W)
        got = [(e["code"], e["field"], e["index"]) for e in errors_of(body)]
        assert got == expected, (input, body)
        assert body["data"]["addUsersToSegment"]["segment"] is None
    assert await segment_state(api) == before

    # remove
    removed = await ok(
        api, REMOVE, {"input": {"segmentId": static["id"], "userExternalIds": ["u0", "u4"]}}, W
    )
    assert removed["changed"] == 1 and removed["segment"]["memberCount"] == 2

    # import: a bad row refuses the file, naming its line
    body = await api.gql(
        IMPORT,
        {"input": {"segmentId": static["id"], "csv": "external_id,name\nu3,x\nghost,y\n"}},
        scopes=W,
    )
    assert [(e["code"], e["field"], e["index"]) for e in errors_of(body)] == [
        ("NOT_FOUND", ["input", "csv", "3"], 3)
    ], body
    body = await api.gql(
        IMPORT, {"input": {"segmentId": static["id"], "csv": "nobody\nu3\n"}}, scopes=W
    )
    assert [(e["code"], e["field"]) for e in errors_of(body)] == [
        ("INVALID_HEADER", ["input", "csv", "1"])
    ], body
    # replace: u3 and u4 become the members
    imported = await ok(
        api,
        IMPORT,
        {
            "input": {
                "segmentId": static["id"],
                "csv": f"user_id\n{ids['u3']}\n{ids['u4']}\n",
                "mode": "REPLACE",
            }
        },
        W,
    )
    assert (imported["rows"], imported["added"], imported["removed"]) == (2, 2, 2)
    body = await api.gql(
        """query($id: ID!) { segment(id: $id) { memberCount
          members { edges { node { externalId } } } } }""",
        {"id": static["id"]},
        scopes=RU,
    )
    assert [e["node"]["externalId"] for e in body["data"]["segment"]["members"]["edges"]] == [
        "u3",
        "u4",
    ]
    # every entry and exit was recorded: 3 in, 1 out, then 2 out and 2 in, read in pages
    assert await count_rows(api.db, "segment_transition") == 8
    query = """query($id: ID!, $after: String) { segment(id: $id) { transitions(first: 5,
      after: $after) { totalCount nodes { kind version occurredAt user { externalId } }
      pageInfo { hasNextPage endCursor } } } }"""
    log: list[tuple[str, str]] = []
    after = None
    while True:
        body = await api.gql(query, {"id": static["id"], "after": after}, scopes=RU)
        page = body["data"]["segment"]["transitions"]
        assert page["totalCount"] == 8
        log += [(n["kind"], n["user"]["externalId"]) for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert log == [
        ("ENTER", "u0"),
        ("ENTER", "u1"),
        ("ENTER", "u2"),
        ("EXIT", "u0"),
        ("EXIT", "u1"),
        ("EXIT", "u2"),
        ("ENTER", "u3"),
        ("ENTER", "u4"),
    ]
    body = await api.gql(query, {"id": static["id"], "after": None}, scopes="segments:read")
    assert error_codes(body) == ["FORBIDDEN"], body


async def test_refresh_members_pagination_and_user_segments(api: Api) -> None:
    # given 7 vip shoppers and 2 others
    await users(
        api,
        *({"externalId": f"v{i}", "tags": ["vip"]} for i in range(7)),
        {"externalId": "n1"},
        {"externalId": "n2", "tags": ["other"]},
    )
    seg = await create(api, name="VIP", definition=VIP)
    static = await create(api, name="List", kind="STATIC")

    # the refresh job queued by createSegment has computed the members
    body = await api.gql(
        "query($id: ID!) { segment(id: $id) { memberCount refreshedAt } }",
        {"id": seg["id"]},
        scopes="segments:read",
    )
    assert body["data"]["segment"]["memberCount"] == 7 and body["data"]["segment"]["refreshedAt"]
    # when two members lose the tag behind the API's back (no re-evaluation), and two shoppers
    # are taken out of the segment, a refresh puts it right
    async with api.db.unit_of_work() as session:
        await session.execute(
            text(
                "DELETE FROM customer_tag WHERE customer_id IN "
                "(SELECT id FROM customer WHERE external_id IN ('v5', 'v6'))"
            )
        )
        await session.execute(
            text(
                "DELETE FROM segment_member WHERE segment_id = :s AND customer_id IN "
                "(SELECT id FROM customer WHERE external_id IN ('v0', 'v1'))"
            ),
            {"s": pk(seg["id"])},
        )
    done = await ok(api, REFRESH, {"input": {"id": seg["id"]}}, W)
    assert (done["entered"], done["exited"], done["members"]) == (2, 2, 5)
    assert done["segment"]["memberCount"] == 5 and done["segment"]["refreshedAt"]
    again = await ok(api, REFRESH, {"input": {"id": seg["id"]}}, W)
    assert (again["entered"], again["exited"], again["members"]) == (0, 0, 5)
    body = await api.gql(REFRESH, {"input": {"id": static["id"]}}, scopes=W)
    assert codes_and_fields(body) == [("NOT_DYNAMIC", ["input", "id"])]

    # then members come in pages of user id order, with their entry time
    query = """query($id: ID!, $after: String) { segment(id: $id) {
      members(first: 3, after: $after) { totalCount edges { cursor enteredAt node { externalId } }
        nodes { externalId } pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await api.gql(query, {"id": seg["id"], "after": after}, scopes=RU)
        page = body["data"]["segment"]["members"]
        assert page["totalCount"] == 5
        assert [e["node"]["externalId"] for e in page["edges"]] == [
            n["externalId"] for n in page["nodes"]
        ]
        assert all(e["enteredAt"] for e in page["edges"])
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        seen += [n["externalId"] for n in page["nodes"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"v{i}" for i in range(5)] and pages == 2
    body = await api.gql(
        "query($id: ID!) { segment(id: $id) { members(first: 101) { nodes { id } } } }",
        {"id": seg["id"]},
        scopes=RU,
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body

    # and User.segments lists the user's current segments with the entry time
    await ok(api, ADD, {"input": {"segmentId": static["id"], "userExternalIds": ["v1"]}}, W)
    body = await api.gql(
        """{ users(first: 20) { nodes { externalId segments { enteredAt
          segment { name kind } } } } }""",
        scopes=RU,
    )
    found = {
        u["externalId"]: [s["segment"]["name"] for s in u["segments"]]
        for u in body["data"]["users"]["nodes"]
    }
    assert found == {
        **{f"v{i}": ["VIP"] for i in range(5)},
        "v1": ["List", "VIP"],
        "v5": [],
        "v6": [],
        "n1": [],
        "n2": [],
    }


async def test_user_segments_and_history_have_no_n_plus_one(api: Api) -> None:
    await users(api, *({"externalId": f"v{i}", "tags": ["vip"]} for i in range(30)))
    for i in range(3):
        seg = await create(api, name=f"VIP {i}", definition=VIP)
        await ok(api, REFRESH, {"input": {"id": seg["id"]}}, W)
        await ok(api, UPDATE, {"input": {"id": seg["id"], "description": "d"}}, W)
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = api.app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        counts = []
        for first in (5, 30, 5, 30):
            statements.clear()
            body = await api.gql(
                f"""{{ users(first: {first}) {{ nodes {{ segments {{ segment {{ name
                  history {{ version }} }} }} }} }} }}""",
                scopes=RU,
            )
            assert "errors" not in body, body
            assert all(len(u["segments"]) == 3 for u in body["data"]["users"]["nodes"])
            counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
    finally:
        event.remove(engine, "before_cursor_execute", note)
    # (the first request of a new token reads the client once)
    assert counts[1] == counts[2] == counts[3], counts


async def test_listing_filters_and_pages(api: Api) -> None:
    for name in ("Alpha", "beta", "Gamma", "alphabet"):
        await create(api, name=name, definition=VIP)
    await create(api, name="Alpha list", kind="STATIC")
    query = """query($f: SegmentFilter, $after: String) { segments(first: 2, filter: $f,
      after: $after) { totalCount nodes { name } pageInfo { hasNextPage endCursor } } }"""
    body = await api.gql(query, {"f": {"search": "ALPHA"}}, scopes="segments:read")
    page = body["data"]["segments"]
    assert page["totalCount"] == 3 and [n["name"] for n in page["nodes"]] == ["Alpha", "alphabet"]
    body = await api.gql(
        query,
        {"f": {"search": "ALPHA"}, "after": page["pageInfo"]["endCursor"]},
        scopes="segments:read",
    )
    assert [n["name"] for n in body["data"]["segments"]["nodes"]] == ["Alpha list"]
    body = await api.gql(query, {"f": {"kind": "STATIC"}}, scopes="segments:read")
    assert [n["name"] for n in body["data"]["segments"]["nodes"]] == ["Alpha list"]
    body = await api.gql(query, {"f": {"builtin": True}}, scopes="segments:read")
    assert body["data"]["segments"]["totalCount"] == 0
    # wildcards in the search are literal
    body = await api.gql(query, {"f": {"search": "%"}}, scopes="segments:read")
    assert body["data"]["segments"]["totalCount"] == 0


async def test_audit_entries_for_every_write(api: Api) -> None:
    await users(api, {"externalId": "u0"})
    seg = await create(api, name="VIP", definition=VIP)
    static = await create(api, name="List", kind="STATIC")
    await ok(api, UPDATE, {"input": {"id": seg["id"], "name": "VIP2"}}, W)
    await ok(api, REFRESH, {"input": {"id": seg["id"]}}, W)
    await ok(api, ADD, {"input": {"segmentId": static["id"], "userExternalIds": ["u0"]}}, W)
    await ok(api, REMOVE, {"input": {"segmentId": static["id"], "userExternalIds": ["u0"]}}, W)
    await ok(api, IMPORT, {"input": {"segmentId": static["id"], "csv": "external_id\nu0\n"}}, W)
    await ok(api, ARCHIVE, {"input": {"id": seg["id"]}}, W)
    body = await api.gql(
        '{ auditLog(first: 50, filter: {resourceType: "Segment"}) { nodes { action resourceId } } }',
        scopes="audit:read",
    )
    assert "errors" not in body, body
    actions = sorted((n["action"], n["resourceId"]) for n in body["data"]["auditLog"]["nodes"])
    s, t = str(pk(seg["id"])), str(pk(static["id"]))
    assert actions == sorted(
        [
            ("segment.create", s),
            ("segment.create", t),
            ("segment.update", s),
            ("segment.refresh", s),
            ("segment.members.add", t),
            ("segment.members.remove", t),
            ("segment.members.import", t),
            ("segment.archive", s),
        ]
    )


async def test_import_by_email_and_bad_files(api: Api) -> None:
    await users(
        api,
        {"externalId": "a", "email": "anna@example.com"},
        {"externalId": "b", "email": "ben@example.com"},
    )
    static = await create(api, name="Newsletter", kind="STATIC")
    # emails are found through their keyed hash, in any case; other columns are ignored
    done = await ok(
        api,
        IMPORT,
        {
            "input": {
                "segmentId": static["id"],
                "csv": "Name,Email\nA,ANNA@example.com\nB,ben@example.com\n",
            }
        },
        W,
    )
    assert (done["rows"], done["added"], done["segment"]["memberCount"]) == (2, 2, 2)
    before = await segment_state(api)
    for csv, expected in (
        ("", [("REQUIRED", ["input", "csv"])]),
        ("email\nnot-an-email\n", [("INVALID", ["input", "csv", "2"])]),
        ("email,external_id\na,b\n", [("INVALID_HEADER", ["input", "csv", "1"])]),
        ("x" * 900_001, [("TOO_LONG", ["input", "csv"])]),
    ):
        body = await api.gql(IMPORT, {"input": {"segmentId": static["id"], "csv": csv}}, scopes=W)
        assert codes_and_fields(body) == expected, (csv[:40], body)
    assert await segment_state(api) == before
    body = await api.gql(
        '{ segments(filter: {search: "%s"}) { totalCount } }' % ("x" * 101),
        scopes="segments:read",
    )
    assert error_codes(body) == ["BAD_USER_INPUT"], body


async def test_builtin_segments_are_read_only_and_round_trip(api: Api) -> None:
    from domain.segments import builtins

    async with api.db.unit_of_work() as session:
        await builtins.seed(session)
    body = await api.gql(
        """{ segments(first: 50, filter: {builtin: true}) { totalCount nodes { id key name
          builtin kind definition } } }""",
        scopes="segments:read",
    )
    nodes = body["data"]["segments"]["nodes"]
    assert body["data"]["segments"]["totalCount"] == len(builtins.BUILTINS) == len(nodes)
    assert all(
        n["builtin"] and n["kind"] == "DYNAMIC" and n["key"].startswith("builtin:") for n in nodes
    )
    before = await segment_state(api)
    for n in nodes:
        # each definition, read back in the input form, is a valid input again
        body = await api.gql(
            "query($d: SegmentCondition!) { previewSegment(definition: $d) { errors { code } } }",
            {"d": n["definition"]},
            scopes="segments:read",
        )
        assert body["data"]["previewSegment"]["errors"] == [], (n["key"], body)
        # and the segment cannot be changed or archived
        body = await api.gql(UPDATE, {"input": {"id": n["id"], "name": "mine now"}}, scopes=W)
        assert codes_and_fields(body) == [("BUILTIN", ["input", "id"])], body
        body = await api.gql(ARCHIVE, {"input": {"id": n["id"]}}, scopes=W)
        assert codes_and_fields(body) == [("BUILTIN", ["input", "id"])], body
    assert await segment_state(api) == before


async def test_saving_a_definition_queues_its_refresh(api: Api) -> None:
    await users(
        api,
        {"externalId": "de-vip", "country": "DE", "tags": ["vip"]},
        {"externalId": "at-vip", "country": "AT", "tags": ["vip"]},
        {"externalId": "de", "country": "DE"},
    )
    members = """query($id: ID!) { segment(id: $id) { version memberCount
      members { nodes { externalId } } } }"""
    seg = await create(api, name="VIP", definition=VIP)
    body = await api.gql(members, {"id": seg["id"]}, scopes=RU)
    assert body["data"]["segment"]["memberCount"] == 2
    # a changed definition is recomputed too; a renaming is not a reason to
    await ok(api, UPDATE, {"input": {"id": seg["id"], "definition": GERMANS}}, W)
    body = await api.gql(members, {"id": seg["id"]}, scopes=RU)
    assert [n["externalId"] for n in body["data"]["segment"]["members"]["nodes"]] == [
        "de-vip",
        "de",
    ]
    async with api.db.read_only() as session:
        refreshed = await session.scalar(
            text("SELECT refreshed_version FROM segment WHERE id = :id"), {"id": pk(seg["id"])}
        )
    assert refreshed == 2
    await ok(api, UPDATE, {"input": {"id": seg["id"], "name": "Germans"}}, W)
    async with api.db.read_only() as session:
        refreshed = await session.scalar(
            text("SELECT refreshed_version FROM segment WHERE id = :id"), {"id": pk(seg["id"])}
        )
    assert refreshed == 2


async def test_reference_by_key(api: Api) -> None:
    from domain.segments import builtins

    async with api.db.unit_of_work() as session:
        await builtins.seed(session)
    made = await create(
        api,
        name="at risk VIPs",
        definition={"and": [VIP, {"segment": {"segmentKey": "builtin:at_risk"}}]},
    )
    ref = made["definition"]["and"][1]["segment"]
    assert "segmentKey" not in ref and decode_id(ref["segmentId"])[0] == "Segment"
    before = await segment_state(api)
    for segment, expected in (
        ({"segmentKey": "builtin:nope"}, ("NOT_FOUND", ["segmentKey"])),
        ({"segmentKey": "builtin:at_risk", "segmentId": ref["segmentId"]}, ("INVALID", [])),
        ({"member": False}, ("INVALID", [])),
    ):
        body = await api.gql(
            CREATE, {"input": {"name": "x", "definition": {"segment": segment}}}, scopes=W
        )
        assert codes_and_fields(body) == [
            (expected[0], ["input", "definition", "segment", *expected[1]])
        ], body
    assert await segment_state(api) == before
