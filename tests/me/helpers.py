"""Shopper-token helpers shared by the token-exchange, ``me`` and isolation tests: real customers
through ``upsertUsers``, a real delegate client, real tokens from ``/oauth/token``."""

from __future__ import annotations

from typing import Any

import httpx

from api.ids import encode_id
from tests.conftest import Api

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
EXTERNAL_ID = "urn:precis:params:oauth:token-type:customer-external-id"
USER_ID = "urn:precis:params:oauth:token-type:user-id"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
SHOPPER_SCOPES = "events:write me:read me:write recommendations:read"

UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { users { id externalId } errors { code message } }
}"""


async def make_customers(api: Api, *external_ids: str) -> dict[str, int]:
    """Customers with an email and a phone each; returns external id -> primary key."""
    users = [
        {
            "externalId": x,
            "email": f"{x}@example.com",
            "phone": f"+4915112345{i:03d}",
            "firstName": x.title(),
        }
        for i, x in enumerate(external_ids)
    ]
    body = await api.gql(UPSERT, {"users": users}, scopes="users:write users:read")
    assert "errors" not in body and body["data"]["upsertUsers"]["errors"] == [], body
    from api.ids import decode_id

    return {u["externalId"]: decode_id(u["id"])[1] for u in body["data"]["upsertUsers"]["users"]}


async def delegate_client(
    api: Api,
    scopes: str = "shoppers:delegate",
    *,
    exchange: bool = True,
    name: str = "storefront back end",
) -> tuple[str, str]:
    from domain.auth import service

    grants = ["client_credentials"] + ([TOKEN_EXCHANGE] if exchange else [])
    async with api.db.unit_of_work() as session:
        made = await service.create_client(session, name=name, scopes=scopes, grant_types=grants)
    return made.client.id, made.secret


async def exchange(
    client: httpx.AsyncClient,
    auth: tuple[str, str],
    subject: str,
    subject_type: str = EXTERNAL_ID,
    **extra: str,
) -> httpx.Response:
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject,
        "subject_token_type": subject_type,
        **extra,
    }
    return await client.post("/oauth/token", data=data, auth=auth)


async def shopper_token(api: Api, external_id: str, scope: str | None = None) -> str:
    """A real shopper token for ``external_id`` from a new delegate client."""
    auth = await delegate_client(api)
    extra = {"scope": scope} if scope is not None else {}
    response = await exchange(api.client, auth, external_id, **extra)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def user_id(pk: int) -> str:
    return encode_id("User", pk)


def data_of(body: dict[str, Any], field: str) -> Any:
    return (body.get("data") or {}).get(field)
