"""A shopper token can never reach another customer: every root field, checked.

Every root Query and Mutation field must be classified below, with the reason. Fields not meant for
shoppers are called with a real shopper token and valid arguments aimed at another customer; each must
answer FORBIDDEN and change nothing (every table's content is compared before and after). Fields meant
for shoppers get hand-written attacks through every argument that names a user. A new root field fails
``test_every_root_field_is_classified`` until someone decides which kind it is; a new argument that names
a user anywhere under ``me`` fails ``test_nothing_under_me_takes_a_user``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
)
from sqlalchemy import text

from api.ids import encode_cursor
from domain.models import metadata
from domain.settings import Settings
from tests.conftest import Api, error_codes
from tests.me.helpers import make_customers, shopper_token, user_id

NOT_FOR_SHOPPERS = "needs a server scope a shopper token never carries"

# Root fields a shopper token must be refused (FORBIDDEN, nothing changed), and why.
FORBIDDEN_QUERIES: dict[str, str] = {
    "node": "any object by id: needs the scope of its type (users:read, catalog:read, ...)",
    "user": "another shopper by id or external id: users:read",
    "users": "every shopper: users:read",
    "product": "catalog: catalog:read (storefronts read the catalog with their own token)",
    "products": "catalog: catalog:read",
    "categories": "catalog: catalog:read",
    "task": "background tasks of server clients: jobs:read",
    "auditLog": "the audit log names every shopper: audit:read",
    "privacyRequests": "privacy requests of every shopper: privacy:manage",
    "privacyRequest": "privacy:manage",
    "dataExport": "exports are fetched by the requesting server client: privacy:manage",
    "events": "every shopper's events: users:read (a shopper reads its own via me.user.events)",
    "order": "any order: users:read (a shopper reads its own via me.user.orders)",
    "orders": "every shopper's orders: users:read",
    "previewSegment": "segments are marketing's view of shoppers: segments:read",
    "segment": "segments:read (a shopper does not see its own segments, not even through me)",
    "segments": "segments:read",
    "recommendationModels": "model versions and metrics are an operator's view: models:write",
    "experiments": "A/B experiments are an operator's view: models:write",
    "experimentReport": "per-arm figures of an experiment: models:write",
}
FORBIDDEN_MUTATIONS: dict[str, str] = {
    "upsertUsers": "creates and changes shoppers: users:write",
    "updateUser": "users:write",
    "tagUsers": "users:write",
    "untagUsers": "users:write",
    "upsertProducts": "catalog:write",
    "archiveProduct": "catalog:write",
    "setConsents": "names the shopper: users:write (a shopper uses me.setConsents)",
    "createPrivacyRequest": "privacy:manage",
    "updatePrivacyRequest": "privacy:manage",
    "requestDataExport": "privacy:manage",
    "eraseUser": "privacy:manage",
    "recordOrders": "orders come from the store's back end, not the shopper's device",
    "refundOrder": "store back end only (events:write and no shopper token)",
    "cancelOrder": "store back end only (events:write and no shopper token)",
    "createSegment": "segments:write",
    "updateSegment": "segments:write",
    "archiveSegment": "segments:write",
    "addUsersToSegment": "names shoppers: segments:write",
    "removeUsersFromSegment": "names shoppers: segments:write",
    "importSegmentUsers": "names shoppers: segments:write",
    "refreshSegment": "segments:write",
    "trainModel": "models:write",
    "promoteModel": "models:write",
    "startExperiment": "models:write",
    "stopExperiment": "models:write",
}
# Root fields a shopper token may use, and how they stay on the token's own customer.
SHOPPER_QUERIES: dict[str, str] = {
    "me": "the token's own customer; no argument names a user (see test_nothing_under_me...)",
    "recommendations": "for the token's own customer only: another userId or an anonymousId is "
    "a FORBIDDEN error and nothing served (tests/recommend/test_serving_api.py)",
    "similarProducts": "about a product; no argument names a user",
    "boughtTogether": "about products; no argument names a user",
    "trendingProducts": "about a category; no argument names a user",
}
SHOPPER_MUTATIONS: dict[str, str] = {
    "me": "changes to the token's own customer; no argument names a user",
    "trackEvents": "events without a user go to the token's customer; naming another is refused",
    "identify": "only into the token's own customer; another shopper's anonymous id is refused",
}
# Arguments under `me` whose names look like they address a user but do not (name -> reason).
ME_ARGUMENTS_ALLOWED: dict[str, str] = {}

USER_ARGUMENT = re.compile(r"(^id$|ids?$|user|customer|externalId|subject)", re.IGNORECASE)
SCALARS: dict[str, Any] = {
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "DateTime": "2026-01-01T00:00:00+00:00",
    "Date": "2000-01-01",
    "JSON": {},
    "Decimal": "1.00",
}


def graphql_schema() -> GraphQLSchema:
    from api.schema import build_schema

    return build_schema(Settings(_env_file=None))._schema  # type: ignore[call-arg]


def test_every_root_field_is_classified() -> None:
    schema = graphql_schema()
    assert schema.mutation_type is not None
    for root, forbidden, allowed in (
        (schema.query_type, FORBIDDEN_QUERIES, SHOPPER_QUERIES),
        (schema.mutation_type, FORBIDDEN_MUTATIONS, SHOPPER_MUTATIONS),
    ):
        assert root is not None
        unclassified = sorted(set(root.fields) - set(forbidden) - set(allowed))
        assert not unclassified, (
            f"new {root.name} field(s) {unclassified}: add each to tests/me/test_isolation.py "
            "as forbidden for shopper tokens or as a shopper field with its isolation tests"
        )
        assert not set(forbidden) & set(allowed)


def _walk_types(start: GraphQLObjectType) -> list[tuple[str, str, GraphQLField]]:
    """Every (type, field, definition) reachable from ``start`` through output types."""
    seen: set[str] = set()
    out: list[tuple[str, str, GraphQLField]] = []
    todo: list[Any] = [start]
    while todo:
        t = todo.pop()
        if t.name in seen:
            continue
        seen.add(t.name)
        if isinstance(t, GraphQLUnionType):
            todo.extend(t.types)
            continue
        if not isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            continue
        for name, f in t.fields.items():
            out.append((t.name, name, f))
            todo.append(get_named_type(f.type))
    return out


def test_nothing_under_me_takes_a_user() -> None:
    """Everything reachable from ``me`` resolves from the token's customer: no argument anywhere
    below it may address a user (an id, an external id, a customer)."""
    schema = graphql_schema()
    assert schema.query_type is not None and schema.mutation_type is not None
    starts = [
        get_named_type(schema.query_type.fields["me"].type),
        get_named_type(schema.mutation_type.fields["me"].type),
    ]
    offending = []
    for start in starts:
        for type_name, field_name, f in _walk_types(start):
            for arg_name, arg in f.args.items():
                for path in _input_paths(arg_name, arg.type):
                    leaf = path.split(".")[-1]
                    if USER_ARGUMENT.search(leaf) and path not in ME_ARGUMENTS_ALLOWED:
                        offending.append(f"{type_name}.{field_name}({path})")
    assert not offending, "arguments under `me` that may name a user: " + ", ".join(
        sorted(set(offending))
    )


def _input_paths(name: str, t: Any, depth: int = 0) -> list[str]:
    named = get_named_type(t)
    if isinstance(named, GraphQLInputObjectType) and depth < 4:
        paths: list[str] = []
        for field_name, f in named.fields.items():
            paths.extend(f"{name}.{p}" for p in _input_paths(field_name, f.type, depth + 1))
        return paths
    return [name]


# Calling every field that is not for shoppers ---------------------------------------------------


class Target:
    """Argument values aimed at another customer (``victim``)."""

    def __init__(self, victim_pk: int, victim_external_id: str) -> None:
        self.user_id = user_id(victim_pk)
        self.external_id = victim_external_id

    def value(self, name: str, t: GraphQLInputType, depth: int = 0) -> Any:
        if isinstance(t, GraphQLNonNull):
            return self.value(name, t.of_type, depth)
        if isinstance(t, GraphQLList):
            return [self.value(name, t.of_type, depth)]
        if isinstance(t, GraphQLEnumType):
            return next(iter(t.values))
        if isinstance(t, GraphQLInputObjectType) and _one_of(t):
            # exactly one field; the first one that does not nest the type again
            for field_name, f in t.fields.items():
                if get_named_type(f.type) is not t:
                    return {field_name: self.value(field_name, f.type, depth + 1)}
        if isinstance(t, GraphQLInputObjectType):
            assert depth < 6, f"input nesting too deep at {name}"
            return {
                field_name: self.value(field_name, f.type, depth + 1)
                for field_name, f in t.fields.items()
                # every required field, and every field that can name a user
                if (isinstance(f.type, GraphQLNonNull) and f.default_value is _undefined())
                or USER_ARGUMENT.search(field_name)
            }
        assert isinstance(t, GraphQLScalarType)
        if t.name == "ID":
            return self.user_id
        if t.name == "String":
            return self.external_id
        assert t.name in SCALARS, f"add a sample value for scalar {t.name} to SCALARS"
        return SCALARS[t.name]

    def call(self, kind: str, name: str, f: GraphQLField) -> tuple[str, dict[str, Any]]:
        """A document calling root field ``name`` with every argument filled in."""
        params, args, variables = [], [], {}
        for arg_name, arg in f.args.items():
            params.append(f"${arg_name}: {arg.type}")
            args.append(f"{arg_name}: ${arg_name}")
            variables[arg_name] = self.value(arg_name, arg.type)
        named = get_named_type(f.type)
        selection = (
            " { __typename }"
            if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
            else ""
        )
        head = f"{kind}({', '.join(params)})" if params else kind
        call = f"{name}({', '.join(args)})" if args else name
        return f"{head} {{ {call}{selection} }}", variables


def _one_of(t: GraphQLInputObjectType) -> bool:
    """A ``@oneOf`` input (Strawberry checks it itself, so graphql-core's flag is not set)."""
    from strawberry.schema.schema_converter import GraphQLCoreConverter

    definition = (t.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return bool(t.is_one_of or getattr(definition, "is_one_of", False))


def _undefined() -> Any:
    from graphql.pyutils import Undefined

    return Undefined


async def fingerprint(api: Api, *, audit: bool = True) -> dict[str, list[str]]:
    """Every row of every table, as text: any insert, update or delete shows. ``audit=False``
    leaves out the audit log (a refused call may be recorded as an attempt; see
    ``no_audit_names``)."""
    out = {}
    async with api.db.read_only() as session:
        for table in metadata.sorted_tables:
            if not audit and table.name == "audit_entry":
                continue
            rows = (await session.execute(text(f'SELECT * FROM "{table.name}"'))).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows)
    return out


async def no_audit_names(api: Api, pk: int, since: int) -> None:
    """No audit entry after entry ``since`` is about customer ``pk``."""
    async with api.db.read_only() as session:
        rows = (
            await session.execute(
                text("SELECT action, resource_id FROM audit_entry WHERE id > :n"), {"n": since}
            )
        ).all()
    assert all(r[1] != str(pk) for r in rows), rows


async def last_audit_id(api: Api) -> int:
    async with api.db.read_only() as session:
        return int((await session.execute(text("SELECT MAX(id) FROM audit_entry"))).scalar() or 0)


async def seed_victim(api: Api) -> dict[str, int]:
    """Alice (the shopper) and Bob (the victim) with data of their own."""
    pks = await make_customers(api, "alice", "bob")
    body = await api.gql(
        """mutation($c: [ConsentInput!]!) { setConsents(input: {userExternalId: "bob",
        consents: $c}) { errors { code } } }""",
        {"c": [{"purpose": "ANALYTICS", "granted": True, "source": "t", "policyVersion": "1"}]},
        scopes="users:write users:read",
    )
    assert body["data"]["setConsents"]["errors"] == [], body
    return pks


@pytest.mark.parametrize("kind", ["query", "mutation"])
async def test_fields_not_for_shoppers_are_forbidden_and_change_nothing(
    api: Api, kind: str
) -> None:
    pks = await seed_victim(api)
    token = await shopper_token(api, "alice")
    target = Target(pks["bob"], "bob")
    schema = graphql_schema()
    root = schema.query_type if kind == "query" else schema.mutation_type
    forbidden = FORBIDDEN_QUERIES if kind == "query" else FORBIDDEN_MUTATIONS
    assert root is not None
    called = 0
    for name, f in root.fields.items():
        if name not in forbidden:
            continue
        document, variables = target.call(kind, name, f)
        before = await fingerprint(api)
        body = await api.gql(document, variables, token=token)
        assert error_codes(body) == ["FORBIDDEN"], (name, document, variables, body)
        assert (body.get("data") or {}).get(name) is None, (name, body)
        assert await fingerprint(api) == before, f"{name} changed data for a shopper token"
        called += 1
    assert called == len(set(forbidden) & set(root.fields))
    assert called > 0


# The fields meant for shoppers, attacked through every argument that names a user ---------------

TRACK = """mutation($events: [EventInput!]!) { trackEvents(input: {events: $events}) {
  accepted duplicates rejected errors { code field index } } }"""
IDENTIFY = """mutation($input: IdentifyInput!) { identify(input: $input) {
  user { id externalId email } created eventsMoved errors { code field } } }"""


def view(event_id: str, **extra: Any) -> dict[str, Any]:
    return {"clientEventId": event_id, "type": "custom:app_open", **extra}


async def event_owners(api: Api) -> dict[str, int | None]:
    async with api.db.read_only() as session:
        rows = await session.execute(text("SELECT client_event_id, customer_id FROM event"))
        return {r[0]: r[1] for r in rows}


async def test_track_events_stays_on_the_shoppers_own_customer(api: Api) -> None:
    pks = await seed_victim(api)
    token = await shopper_token(api, "alice")
    # Bob's anonymous id, merged into Bob by the store's back end
    server = "events:write users:read"
    body = await api.gql(
        IDENTIFY, {"input": {"anonymousId": "anon-bob", "userExternalId": "bob"}}, scopes=server
    )
    assert body["data"]["identify"]["errors"] == [], body
    before = await fingerprint(api, audit=False)
    mark = await last_audit_id(api)

    # every way of naming Bob, hidden in a batch of good events: the call is refused and nothing
    # stored; with contradictory ids (Alice's and Bob's) at least that event is refused
    attacks = [
        ({"userExternalId": "bob"}, True),
        ({"userId": user_id(pks["bob"])}, True),
        ({"userExternalId": "alice", "userId": user_id(pks["bob"])}, False),
        ({"userExternalId": "bob", "userId": user_id(pks["alice"])}, False),
    ]
    for i, (attack, whole_call) in enumerate(attacks):
        batch = [
            view(f"ok-{i}-1"),
            view(f"evil-{i}", **attack),
            view(f"ok-{i}-2", userExternalId="alice"),
        ]
        body = await api.gql(TRACK, {"events": batch}, token=token)
        payload = (body.get("data") or {}).get("trackEvents")
        owners = await event_owners(api)
        assert f"evil-{i}" not in owners, (attack, body)
        assert pks["bob"] not in owners.values(), (attack, body)
        if whole_call:
            assert payload is None or payload["accepted"] == 0, (attack, body)
            assert await fingerprint(api, audit=False) == before, attack
    before = await fingerprint(api, audit=False)

    # an unknown user is refused the same way: nothing tells Alice whether Bob exists
    codes = []
    for who in ({"userExternalId": "bob"}, {"userExternalId": "nobody-at-all"}):
        body = await api.gql(TRACK, {"events": [view("probe", **who)]}, token=token)
        codes.append((error_codes(body), body["data"] and body["data"]["trackEvents"]["errors"]))
    assert codes[0] == codes[1]
    assert await fingerprint(api, audit=False) == before
    await no_audit_names(api, pks["bob"], mark)

    # her own events, and events naming no user or Bob's anonymous id, land on Alice only
    mine = [
        view("a-1"),
        view("a-2", userExternalId="alice"),
        view("a-3", userId=user_id(pks["alice"])),
        view("a-4", anonymousId="anon-bob"),
    ]
    body = await api.gql(TRACK, {"events": mine}, token=token)
    assert "errors" not in body, body
    assert body["data"]["trackEvents"]["accepted"] == 4, body
    owners = await event_owners(api)
    assert {k: v for k, v in owners.items() if k.startswith("a-")} == {
        f"a-{i}": pks["alice"] for i in range(1, 5)
    }
    assert pks["bob"] not in owners.values()


async def test_identify_stays_on_the_shoppers_own_customer(api: Api) -> None:
    pks = await seed_victim(api)
    token = await shopper_token(api, "alice")
    server = "events:write users:read"
    anon = {"anonymousId": "anon-bob", "userExternalId": "bob"}
    assert (await api.gql(IDENTIFY, {"input": anon}, scopes=server))["data"]["identify"][
        "errors"
    ] == []
    before = await fingerprint(api, audit=False)
    mark = await last_audit_id(api)

    attacks = [
        {"anonymousId": "anon-x", "userExternalId": "bob"},
        {"anonymousId": "anon-x", "userId": user_id(pks["bob"])},
        {"anonymousId": "anon-bob"},  # claiming Bob's merged visitor for herself
        {"anonymousId": "anon-bob", "userExternalId": "alice"},
    ]
    results = []
    for attack in attacks:
        body = await api.gql(IDENTIFY, {"input": attack}, token=token)
        payload = (body.get("data") or {}).get("identify")
        assert payload is None or (payload["user"] is None and payload["errors"]), (attack, body)
        assert "bob" not in str(body).lower() or "anon-bob" in str(attack), (attack, body)
        assert await fingerprint(api, audit=False) == before, attack
        results.append(body)
    await no_audit_names(api, pks["bob"], mark)
    # an unknown user answers like Bob: no way to probe which customers exist
    unknown = await api.gql(
        IDENTIFY, {"input": {"anonymousId": "anon-x", "userExternalId": "nobody"}}, token=token
    )
    assert error_codes(unknown) == error_codes(results[0])
    assert (unknown["data"] or {}).get("identify", {}) == (results[0]["data"] or {}).get(
        "identify", {}
    )

    # into herself: fine, and the payload shows her own user
    body = await api.gql(IDENTIFY, {"input": {"anonymousId": "anon-alice"}}, token=token)
    assert body["data"]["identify"]["errors"] == [], body
    assert body["data"]["identify"]["user"]["id"] == user_id(pks["alice"])


def _selection(t: Any, depth: int, seen: tuple[str, ...] = (), after: str | None = None) -> str:
    """Every field of ``t`` that needs no argument, to ``depth`` levels (connections included).
    With ``after``, every paged field is asked for ``first: 100`` rows after that cursor."""
    named = get_named_type(t)
    if isinstance(named, GraphQLUnionType):
        parts = [f"... on {m.name} {_selection(m, depth, seen, after)}" for m in named.types]
        return "{ __typename " + " ".join(parts) + " }"
    if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        return ""
    parts = ["__typename"]
    for name, f in named.fields.items():
        if any(
            isinstance(a.type, GraphQLNonNull) and a.default_value is _undefined()
            for a in f.args.values()
        ):
            continue
        sub = get_named_type(f.type)
        if isinstance(sub, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            if depth <= 0 or sub.name in seen:
                continue
            inner = _selection(sub, depth - 1, (*seen, named.name), after)
            paged = after is not None and {"first", "after"} <= set(f.args)
            args = f'(first: 100, after: "{after}")' if paged else ""
            parts.append(f"{name}{args} {inner}")
        else:
            parts.append(name)
    return "{ " + " ".join(parts) + " }"


def _users_in(value: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(value, dict):
        if value.get("__typename") == "User":
            found.append(value)
        for v in value.values():
            found.extend(_users_in(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_users_in(v))
    return found


async def test_everything_under_me_is_the_shoppers_own(api: Api) -> None:
    """Walk every argument-free field under ``me`` (new sub-fields included automatically) while
    Bob has data of every kind: every User in the answer is Alice, nothing of Bob appears."""
    pks = await seed_victim(api)
    server = "events:write users:read"
    body = await api.gql(
        """mutation { upsertProducts(input: {products: [{externalId: "p-1", title: "Shoe",
        price: "10.00", currency: "EUR", brand: "Acme"}]}) { errors { code } } }""",
        scopes="catalog:write catalog:read",
    )
    assert body["data"]["upsertProducts"]["errors"] == [], body
    for who in ("alice", "bob"):
        order = {
            "externalId": f"o-{who}",
            "userExternalId": who,
            "currency": "EUR",
            "placedAt": "2026-11-01T10:00:00+00:00",
            "lines": [{"productExternalId": "p-1", "quantity": 1, "unitPrice": "10.00"}],
        }
        body = await api.gql(
            """mutation($o: [OrderInput!]!) { recordOrders(input: {orders: $o}) {
            errors { code field message } } }""",
            {"o": [order]},
            scopes=server,
        )
        assert "errors" not in body and body["data"]["recordOrders"]["errors"] == [], body
        body = await api.gql(
            TRACK,
            {"events": [view(f"{who}-{i}", userExternalId=who) for i in range(3)]},
            scopes=server,
        )
        assert "errors" not in body, body
    token = await shopper_token(api, "alice")
    schema = graphql_schema()
    assert schema.query_type is not None
    me_type = schema.query_type.fields["me"].type
    # every paged field, one User field per request, with cursors of one's own making: before,
    # after and amid Bob's rows (his events' ids among them). A cursor is a position, never a
    # way in: the answer holds nothing of Bob, and a cursor naming Bob's row answers like a
    # missing one.
    async with api.db.read_only() as session:
        bob_rows = [
            int(r[0])
            for r in await session.execute(
                text("SELECT id FROM event WHERE customer_id = :c"), {"c": pks["bob"]}
            )
        ]
    cursors = [encode_cursor(n) for n in (1, 2**62, pks["bob"], *bob_rows)]
    user_type = get_named_type(schema.get_type("User"))
    assert isinstance(user_type, GraphQLObjectType)
    for field_name, f in user_type.fields.items():
        selection = _selection(f.type, 3, after="CURSOR")
        if "CURSOR" not in selection and not {"first", "after"} <= set(f.args):
            continue
        for cursor in cursors:
            args = f'(first: 100, after: "{cursor}")' if {"first", "after"} <= set(f.args) else ""
            inner = selection.replace("CURSOR", cursor)
            body = await api.gql(
                "{ me { user { " + field_name + args + " " + inner + " } } }", token=token
            )
            assert set(error_codes(body)) <= {"FORBIDDEN", "BAD_USER_INPUT"}, body
            text_of = str(body["data"])
            assert "bob" not in text_of.lower(), (field_name, cursor, body)
            assert user_id(pks["bob"]) not in text_of, (field_name, cursor, body)
            assert all(u.get("id") == user_id(pks["alice"]) for u in _users_in(body["data"]))
        if field_name == "events":
            answers = []
            for cursor in (encode_cursor(10**9), *(encode_cursor(n) for n in bob_rows)):
                doc = '{ me { user { events(first: 5, after: "' + cursor + '") { totalCount } } } }'
                answers.append(error_codes(await api.gql(doc, token=token)))
            assert all(a == answers[0] for a in answers), answers

    document = "{ me " + _selection(me_type, 4) + " }"
    body = await api.gql(document, token=token)
    # a sub-field may need a scope shoppers lack (FORBIDDEN); nothing else may go wrong
    assert set(error_codes(body)) <= {"FORBIDDEN"}, body
    me = body["data"]["me"]
    assert [o["externalId"] for o in me["user"]["orders"]["nodes"]] == ["o-alice"], me
    assert {e["clientEventId"] for e in me["user"]["events"]["nodes"]} >= {
        "alice-0",
        "alice-1",
        "alice-2",
    }
    users = _users_in(me)
    assert users and all(u.get("id") == user_id(pks["alice"]) for u in users), users
    text_of = str(me)
    assert "bob" not in text_of.lower(), text_of
    assert user_id(pks["bob"]) not in text_of


async def test_rest_routes_refuse_shopper_tokens(api: Api) -> None:
    """Outside GraphQL: a shopper token neither downloads another shopper's data export nor its own
    (exports go to the privacy:manage client that asked), nor manages tokens it did not mint."""
    await seed_victim(api)
    admin = await api.token("privacy:manage")
    made = await api.gql(
        'mutation { requestDataExport(input: {userExternalId: "bob"}) { dataExport { id } } }',
        token=admin,
    )
    export_id = made["data"]["requestDataExport"]["dataExport"]["id"]
    await api.app.state.services.queue.drain()  # the export job
    ok = await api.client.get(
        f"/privacy/exports/{export_id}", headers={"Authorization": f"Bearer {admin}"}
    )
    assert ok.status_code == 200
    for who in ("bob", "alice"):
        token = await shopper_token(api, who)
        response = await api.client.get(
            f"/privacy/exports/{export_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code in (401, 403, 404), response.text
        assert b"bob" not in response.content
    # a shopper token is not client authentication at the OAuth endpoints
    token = await shopper_token(api, "alice")
    for path in ("/oauth/token", "/oauth/introspect", "/oauth/revoke"):
        response = await api.client.post(
            path,
            data={"grant_type": "client_credentials", "token": admin},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401, (path, response.text)
    assert "errors" not in await api.gql(
        "{ privacyRequests(first: 1) { totalCount } }", token=admin
    )
