"""Shared set-up for the segment API tests: shoppers, products, events, orders and consents sent
through the real GraphQL API, and the segment operations as documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from api.ids import decode_id
from tests.conftest import Api

R = "segments:read"
W = "segments:write segments:read"
RU = "segments:read users:read"
WU = "segments:write segments:read users:read"
ADMIN = "clients:manage segments:read users:read"
SEED = "users:write users:read catalog:write catalog:read events:write"

SEGMENT_FIELDS = """id key name description kind status builtin version definition memberCount
  refreshedAt createdAt updatedAt archivedAt"""
CREATE = f"""mutation($input: CreateSegmentInput!) {{ createSegment(input: $input) {{
  segment {{ {SEGMENT_FIELDS} }} errors {{ code field message index }} }} }}"""
UPDATE = f"""mutation($input: UpdateSegmentInput!) {{ updateSegment(input: $input) {{
  segment {{ {SEGMENT_FIELDS} }} errors {{ code field message index }} }} }}"""
ARCHIVE = """mutation($input: ArchiveSegmentInput!) { archiveSegment(input: $input) {
  segment { id status archivedAt } errors { code field message index } } }"""
ADD = """mutation($input: SegmentUsersInput!) { addUsersToSegment(input: $input) {
  segment { id memberCount } changed errors { code field message index } } }"""
REMOVE = """mutation($input: SegmentUsersInput!) { removeUsersFromSegment(input: $input) {
  segment { id memberCount } changed errors { code field message index } } }"""
IMPORT = """mutation($input: ImportSegmentUsersInput!) { importSegmentUsers(input: $input) {
  segment { id memberCount } rows added removed unchanged errors { code field message index } } }"""
REFRESH = """mutation($input: RefreshSegmentInput!) { refreshSegment(input: $input) {
  segment { id memberCount refreshedAt } entered exited members
  errors { code field message index } } }"""
PREVIEW = """query($d: SegmentCondition!, $sample: Int, $budget: Int) {
  previewSegment(definition: $d, sample: $sample, budgetMs: $budget) {
    preview { count elapsedMs sample { externalId } sqlCost plan }
    errors { code field message } } }"""
PREVIEW_COUNT = """query($d: SegmentCondition!) { previewSegment(definition: $d) {
  preview { count } errors { code field message } } }"""

USERS = """mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { users { id externalId } errors { code message } } }"""
PRODUCTS = """mutation($products: [ProductUpsertInput!]!) {
  upsertProducts(input: {products: $products}) { products { id externalId } errors { code message } } }"""
TRACK = """mutation($events: [EventInput!]!) { trackEvents(input: {events: $events}) {
  accepted errors { code field message index } } }"""
ORDERS = """mutation($orders: [OrderInput!]!) { recordOrders(input: {orders: $orders}) {
  created errors { code field message index } } }"""
CONSENTS = (
    """mutation($input: SetConsentsInput!) { setConsents(input: $input) { errors { code } } }"""
)


async def ok(api: Api, query: str, variables: dict[str, Any], scopes: str) -> dict[str, Any]:
    """Run ``query`` and return its only root field's value; no errors allowed."""
    body = await api.gql(query, variables, scopes=scopes)
    assert "errors" not in body, body
    (value,) = body["data"].values()
    assert value.get("errors", []) == [], body
    # jobs the call queued (segment re-evaluation after a shopper's change) run in this process:
    # let them finish, so that what follows sees a settled state
    await api.app.state.services.queue.drain()
    result: dict[str, Any] = value
    return result


async def users(api: Api, *rows: dict[str, Any]) -> dict[str, str]:
    """Shoppers by external id -> global id."""
    body = await ok(api, USERS, {"users": list(rows)}, SEED)
    return {u["externalId"]: u["id"] for u in body["users"]}


async def products(api: Api, *rows: dict[str, Any]) -> dict[str, str]:
    body = await ok(api, PRODUCTS, {"products": list(rows)}, SEED)
    return {p["externalId"]: p["id"] for p in body["products"]}


def ago(days: float = 0, hours: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days, hours=hours)).isoformat()


async def track(api: Api, *events: dict[str, Any]) -> None:
    body = await ok(api, TRACK, {"events": list(events)}, SEED)
    assert body["accepted"] == len(events), body


async def consent(api: Api, user: str, purpose: str, granted: bool) -> None:
    item = {"purpose": purpose, "granted": granted, "source": "test", "policyVersion": "1"}
    await ok(api, CONSENTS, {"input": {"userExternalId": user, "consents": [item]}}, SEED)


async def create(api: Api, **input: Any) -> dict[str, Any]:
    body = await ok(api, CREATE, {"input": input}, W)
    segment: dict[str, Any] = body["segment"]
    return segment


def pk(global_id: str) -> int:
    return decode_id(global_id)[1]


async def table_rows(api: Api, *tables: str) -> dict[str, list[str]]:
    """Every row of the given tables, as text (what a refused call must leave as it was)."""
    out = {}
    async with api.db.read_only() as session:
        for name in tables:
            rows = (await session.execute(text(f'SELECT * FROM "{name}"'))).all()
            out[name] = sorted(repr(tuple(r)) for r in rows)
    return out


SEGMENT_TABLES = ("segment", "segment_version", "segment_member", "segment_transition")


async def segment_state(api: Api) -> dict[str, list[str]]:
    return await table_rows(api, *SEGMENT_TABLES, "audit_entry")
