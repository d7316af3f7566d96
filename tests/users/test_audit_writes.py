"""Writes to users and products, and reads of unmasked PII, leave audit entries; failures leave none."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from domain.audit.models import AuditEntry
from tests.conftest import Api, count_rows
from tests.users.test_users import UPSERT, alice

UPDATE = """
mutation($input: UpdateUserInput!) { updateUser(input: $input) { user { id } errors { code } } }"""
PRODUCTS = """
mutation($p: [ProductUpsertInput!]!) {
  upsertProducts(input: {products: $p}) { products { id } errors { code } }
}"""
READ = "query($id: ID!) { user(id: $id) { email phone firstName } }"


async def entries(api: Api) -> list[AuditEntry]:
    async with api.db.read_only() as session:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))  # type: ignore[arg-type]


async def test_user_writes_are_audited_with_fields_not_values(api: Api) -> None:
    body = await api.gql(UPSERT, {"users": [alice()]}, scopes="users:write users:read")
    uid = body["data"]["upsertUsers"]["users"][0]["id"]
    [created] = await entries(api)
    assert created.action == "user.upsert"
    assert created.resource_type == "User"
    assert "email" in created.fields and "phone" in created.fields
    assert created.request_id and created.client_id
    assert "Alice" not in repr(created.details) and "example" not in repr(created.fields)

    await api.gql(UPDATE, {"input": {"id": uid, "firstName": "Al"}}, scopes="users:write")
    update = (await entries(api))[-1]
    assert (update.action, update.fields, update.resource_id) == (
        "user.update",
        ["first_name"],
        created.resource_id,
    )


async def test_refused_write_leaves_no_entry(api: Api) -> None:
    body = await api.gql(
        UPSERT, {"users": [alice(email="not-an-email")]}, scopes="users:write users:read"
    )
    assert body["data"]["upsertUsers"]["errors"]
    assert await count_rows(api.db, "audit_entry") == 0
    denied = await api.gql(UPSERT, {"users": [alice()]}, scopes="users:read")
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await count_rows(api.db, "audit_entry") == 0


async def test_product_writes_are_audited(api: Api) -> None:
    product: dict[str, Any] = {
        "externalId": "sku-1",
        "title": "Shirt",
        "price": "10.00",
        "currency": "EUR",
    }
    body = await api.gql(PRODUCTS, {"p": [product]}, scopes="catalog:write catalog:read")
    assert body["data"]["upsertProducts"]["errors"] == []
    [entry] = await entries(api)
    assert (entry.action, entry.resource_type) == ("product.upsert", "Product")


async def test_unmasked_pii_reads_are_audited_and_masked_reads_are_not(api: Api) -> None:
    body = await api.gql(UPSERT, {"users": [alice()]}, scopes="users:write users:read")
    uid = body["data"]["upsertUsers"]["users"][0]["id"]
    before = await count_rows(api.db, "audit_entry")

    masked = await api.gql(READ, {"id": uid}, scopes="users:read")
    assert masked["data"]["user"]["email"] == "a***@example.com"
    assert await count_rows(api.db, "audit_entry") == before

    clear = await api.gql(READ, {"id": uid}, scopes="users:read users:pii")
    assert clear["data"]["user"]["email"] == "alice.smith@example.com"
    read = (await entries(api))[-1]
    assert read.action == "pii.read"
    assert read.fields == ["email", "phone"]
    assert read.resource_type == "User"
    assert read.request_id
