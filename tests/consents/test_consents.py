"""Consents over GraphQL: append-only history, current state per purpose, denials change nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import col

from domain.audit.models import AuditEntry
from domain.audit.service import Actor
from domain.consents import service
from domain.errors import DomainError
from tests.conftest import Api, count_rows, error_codes

SET = """
mutation($input: SetConsentsInput!) {
  setConsents(input: $input) {
    consents { id purpose granted source policyVersion recordedByClientId }
    state { current { purpose recorded granted source policyVersion since } }
    errors { code field message index }
  }
}"""
READ = """
query($ext: String!, $purpose: ConsentPurpose, $after: String) {
  user(externalId: $ext) {
    consents {
      current { purpose recorded granted source policyVersion since }
      email: granted(purpose: EMAIL)
      history(first: 2, purpose: $purpose, after: $after) {
        totalCount
        nodes { purpose granted source policyVersion recordedAt }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}"""
W = "users:write users:read"


async def make_users(api: Api, *ext: str) -> None:
    body = await api.gql(
        "mutation($u: [UserUpsertInput!]!) { upsertUsers(input: {users: $u}) { errors { code } } }",
        {"u": [{"externalId": e} for e in ext]},
        scopes=W,
    )
    assert body["data"]["upsertUsers"]["errors"] == []


def item(purpose: str, granted: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "purpose": purpose,
        "granted": granted,
        "source": "checkout",
        "policyVersion": "2026-01",
        **extra,
    }


async def set_consents(
    api: Api, consents: list[dict[str, Any]], ext: str = "c-1", scopes: str = W
) -> dict[str, Any]:
    body = await api.gql(
        SET, {"input": {"userExternalId": ext, "consents": consents}}, scopes=scopes
    )
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["setConsents"]
    return result


def by_purpose(states: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["purpose"]: s for s in states}


async def test_history_is_appended_and_latest_record_wins(api: Api) -> None:
    await make_users(api, "c-1", "c-2")
    first = await set_consents(api, [item("EMAIL"), item("ANALYTICS", granted=False)])
    assert first["errors"] == []
    assert [c["purpose"] for c in first["consents"]] == ["EMAIL", "ANALYTICS"]
    state = by_purpose(first["state"]["current"])
    assert state["EMAIL"]["granted"] is True and state["EMAIL"]["recorded"] is True
    assert state["ANALYTICS"] == {
        **state["ANALYTICS"],
        "granted": False,
        "recorded": True,
        "source": "checkout",
        "policyVersion": "2026-01",
    }
    assert state["SMS"] == {
        "purpose": "SMS",
        "recorded": False,
        "granted": False,
        "source": None,
        "policyVersion": None,
        "since": None,
    }
    await set_consents(api, [item("EMAIL", granted=False, source="app_settings")])
    await set_consents(api, [item("EMAIL", policyVersion="2026-02")])
    await set_consents(api, [item("PUSH")], ext="c-2")

    body = await api.gql(READ, {"ext": "c-1"}, scopes="users:read")
    consents = body["data"]["user"]["consents"]
    current = by_purpose(consents["current"])
    assert current["EMAIL"]["granted"] is True
    assert current["EMAIL"]["policyVersion"] == "2026-02"
    assert current["PUSH"]["recorded"] is False  # c-2's consent is not c-1's
    assert consents["email"] is True
    history = consents["history"]
    assert history["totalCount"] == 4
    assert [(n["purpose"], n["granted"]) for n in history["nodes"]] == [
        ("EMAIL", True),
        ("EMAIL", False),
    ]
    assert history["pageInfo"]["hasNextPage"] is True
    rest = await api.gql(
        READ, {"ext": "c-1", "after": history["pageInfo"]["endCursor"]}, scopes="users:read"
    )
    rest_nodes = rest["data"]["user"]["consents"]["history"]["nodes"]
    assert [(n["purpose"], n["granted"]) for n in rest_nodes] == [
        ("ANALYTICS", False),
        ("EMAIL", True),
    ]
    only_email = await api.gql(READ, {"ext": "c-1", "purpose": "EMAIL"}, scopes="users:read")
    assert only_email["data"]["user"]["consents"]["history"]["totalCount"] == 3
    assert await count_rows(api.db, "consent") == 5

    async with api.db.read_only() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(col(AuditEntry.action) == "consents.set")
            )
        )
    assert len(entries) == 4
    assert entries[0].resource_type == "User"
    assert entries[0].fields == ["consents.analytics", "consents.email"]
    assert entries[0].request_id


async def test_current_state_for_many_customers_in_one_query(api: Api) -> None:
    await make_users(api, "c-1", "c-2", "c-3")
    await set_consents(api, [item("EMAIL")], ext="c-1")
    await set_consents(api, [item("EMAIL", granted=False)], ext="c-1")
    await set_consents(api, [item("EMAIL"), item("SMS")], ext="c-2")
    body = await api.gql(
        "{ users(first: 10) { nodes { externalId consents { current { purpose granted } } } } }",
        scopes="users:read",
    )
    got = {
        n["externalId"]: {s["purpose"] for s in n["consents"]["current"] if s["granted"]}
        for n in body["data"]["users"]["nodes"]
    }
    assert got == {"c-1": set(), "c-2": {"EMAIL", "SMS"}, "c-3": set()}
    async with api.db.read_only() as session:
        ids = {
            c.customer_id for c in (await service.current(session, [1, 2, 3])).get(2, {}).values()
        }
        assert ids == {2}
        assert await service.granted(session, [1, 2, 3], "email") == {2}


async def test_invalid_items_are_refused_with_index_and_nothing_is_written(api: Api) -> None:
    await make_users(api, "c-1")
    result = await set_consents(
        api,
        [
            item("EMAIL"),
            item("SMS", source="  "),
            item("PUSH", policyVersion="x" * 65),
            item("EMAIL"),
        ],
    )
    assert result["consents"] == [] and result["state"] is None
    got = {(e["code"], e["index"], tuple(e["field"])) for e in result["errors"]}
    assert got == {
        ("REQUIRED", 1, ("consents", "1", "source")),
        ("TOO_LONG", 2, ("consents", "2", "policyVersion")),
        ("DUPLICATE", 3, ("consents", "3", "purpose")),
    }
    empty = await set_consents(api, [])
    assert [e["code"] for e in empty["errors"]] == ["REQUIRED"]
    many = await set_consents(api, [item("EMAIL")] * 21)
    assert [e["code"] for e in many["errors"]] == ["TOO_MANY"]
    unknown = await set_consents(api, [item("EMAIL")], ext="nobody")
    assert [e["code"] for e in unknown["errors"]] == ["NOT_FOUND"]
    bad_enum = await api.gql(
        SET,
        {"input": {"userExternalId": "c-1", "consents": [item("MARKETING")]}},
        scopes=W,
    )
    assert bad_enum.get("data") is None and bad_enum["errors"]  # a variable validation error
    both = await api.gql(
        SET,
        {"input": {"userExternalId": "c-1", "userId": "VXNlcjox", "consents": [item("EMAIL")]}},
        scopes=W,
    )
    assert error_codes(both) == ["BAD_USER_INPUT"]
    denied = await api.gql(
        SET, {"input": {"userExternalId": "c-1", "consents": [item("EMAIL")]}}, scopes="users:read"
    )
    assert error_codes(denied) == ["FORBIDDEN"]
    anonymous = await api.gql(
        SET, {"input": {"userExternalId": "c-1", "consents": [item("EMAIL")]}}
    )
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert await count_rows(api.db, "consent") == 0
    async with api.db.read_only() as session:
        actions = list(await session.scalars(select(col(AuditEntry.action))))
    assert "consents.set" not in actions


async def test_a_shopper_actor_sets_only_its_own_consents(api: Api) -> None:
    await make_users(api, "c-1", "c-2")
    shopper = Actor(client_id="store", subject="shopper:1", request_id="r1", customer_id=1)
    async with api.db.unit_of_work() as session:
        rows = await service.set_consents(
            session,
            shopper,
            1,
            [{"purpose": "push", "granted": True, "source": "app", "policy_version": "1"}],
        )
        assert [r.customer_id for r in rows] == [1]
    async with api.db.unit_of_work() as session:
        try:
            await service.set_consents(
                session,
                shopper,
                2,
                [{"purpose": "push", "granted": True, "source": "app", "policy_version": "1"}],
            )
        except DomainError as exc:
            assert [e.code for e in exc.errors] == ["NOT_FOUND"]
        else:
            raise AssertionError("a shopper set another shopper's consent")
    assert await count_rows(api.db, "consent") == 1
