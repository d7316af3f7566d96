"""Consent per purpose: an append-only history; the latest record of a purpose is its current state.

Records are never updated or deleted (only erasure removes them, with the customer). A call is
all-or-nothing: every item is checked first and nothing is written if any item is invalid.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain import validation as v
from domain.audit import service as audit
from domain.audit.service import Actor
from domain.columns import utcnow
from domain.consents.models import PURPOSES, Consent
from domain.errors import DomainError, FieldError
from domain.sql import insert_for, table
from domain.users.models import Customer

MAX_ITEMS = 20
KEYS = ("purpose", "granted", "source", "policy_version")
CAMEL = {"policy_version": "policyVersion"}


def _check_item(index: int, item: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    errors: list[FieldError] = []
    prefix = ("consents", str(index))
    for name in item:
        if name not in KEYS:
            errors.append(
                FieldError("UNKNOWN_FIELD", f"unknown field {name}", (*prefix, name), index)
            )
    purpose = item.get("purpose")
    if purpose not in PURPOSES:
        errors.append(
            FieldError(
                "INVALID_PURPOSE",
                "purpose must be one of " + ", ".join(PURPOSES),
                (*prefix, "purpose"),
                index,
            )
        )
    granted = item.get("granted")
    if not isinstance(granted, bool):
        errors.append(
            FieldError("REQUIRED", "granted must be true or false", (*prefix, "granted"), index)
        )
    values: dict[str, Any] = {"purpose": purpose, "granted": granted}
    for name in ("source", "policy_version"):
        raw = item.get(name)
        path = (*prefix, CAMEL.get(name, name))
        if not isinstance(raw, str) or not raw.strip():
            errors.append(FieldError("REQUIRED", f"{path[-1]} is required", path, index))
            continue
        if "\x00" in raw:  # PostgreSQL text cannot hold NUL
            errors.append(
                FieldError("INVALID", f"{path[-1]} contains a NUL character", path, index)
            )
            continue
        values[name] = v.check(
            errors, index, path, v.text, raw, field_name=path[-1], max_length=64, required=True
        )
    return values, errors


async def set_consents(
    session: AsyncSession, actor: Actor, customer_id: int, items: Sequence[Mapping[str, Any]]
) -> list[Consent]:
    """Append one record per item for ``customer_id``; returns them in input order.

    A shopper actor may only set its own customer's consents (anything else is NOT_FOUND, so a
    shopper learns nothing about other customers)."""
    if actor.is_shopper and actor.customer_id != customer_id:
        raise DomainError.one("NOT_FOUND", "no such user", "input", "userId")
    errors: list[FieldError] = []
    if not items:
        errors.append(FieldError("REQUIRED", "give at least one consent", ("consents",)))
    if len(items) > MAX_ITEMS:
        raise DomainError.one("TOO_MANY", f"at most {MAX_ITEMS} consents per call", "consents")
    cleaned: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        values, item_errors = _check_item(index, item)
        errors.extend(item_errors)
        purpose = values["purpose"]
        if purpose in seen:
            errors.append(
                FieldError(
                    "DUPLICATE",
                    f"purpose {purpose} also appears at index {seen[purpose]}",
                    ("consents", str(index), "purpose"),
                    index,
                )
            )
        elif isinstance(purpose, str):
            seen[purpose] = index
        cleaned.append(values)
    if errors:
        raise DomainError(errors)
    exists = await session.scalar(select(col(Customer.id)).where(col(Customer.id) == customer_id))
    if exists is None:
        raise DomainError.one("NOT_FOUND", "no such user", "input", "userId")

    now = utcnow()
    rows = [
        {
            **values,
            "customer_id": customer_id,
            "actor_client_id": actor.client_id[:64],
            "request_id": actor.request_id,
            "recorded_at": now,
        }
        for values in cleaned
    ]
    stmt = insert_for(session)(table(Consent)).returning(table(Consent).c.id)
    ids: list[int] = []
    for row in rows:  # one statement per row keeps RETURNING order = input order on both backends
        ids.append(int((await session.execute(stmt, row)).scalar_one()))
    await audit.record(
        session,
        actor,
        "consents.set",
        "User",
        customer_id,
        fields=[f"consents.{r['purpose']}" for r in rows],
        details={"count": len(rows)},
    )
    found = {
        c.id: c for c in await session.scalars(select(Consent).where(col(Consent.id).in_(ids)))
    }
    return [found[i] for i in ids]


async def current(
    session: AsyncSession, customer_ids: Sequence[int]
) -> dict[int, dict[str, Consent]]:
    """The current record per purpose for each customer (latest id wins), in one query."""
    result: dict[int, dict[str, Consent]] = defaultdict(dict)
    if not customer_ids:
        return result
    latest = (
        select(func.max(col(Consent.id)))
        .where(col(Consent.customer_id).in_(customer_ids))
        .group_by(col(Consent.customer_id), col(Consent.purpose))
    )
    for row in await session.scalars(select(Consent).where(col(Consent.id).in_(latest))):
        result[row.customer_id][row.purpose] = row
    return result


async def granted(session: AsyncSession, customer_ids: Sequence[int], purpose: str) -> set[int]:
    """The customers among ``customer_ids`` whose current record for ``purpose`` grants it."""
    states = await current(session, customer_ids)
    return {cid for cid, by in states.items() if (c := by.get(purpose)) is not None and c.granted}


async def history_page(
    session: AsyncSession,
    customer_id: int,
    *,
    purpose: str | None = None,
    first: int,
    after: int | None,
) -> list[Consent]:
    """Records newest first; ``first + 1`` rows so the caller sees if more exist."""
    stmt = select(Consent).where(col(Consent.customer_id) == customer_id)
    if purpose is not None:
        stmt = stmt.where(col(Consent.purpose) == purpose)
    if after is not None:
        stmt = stmt.where(col(Consent.id) < after)
    return list(await session.scalars(stmt.order_by(col(Consent.id).desc()).limit(first + 1)))


async def history_count(session: AsyncSession, customer_id: int, purpose: str | None = None) -> int:
    stmt = select(func.count()).where(col(Consent.customer_id) == customer_id)
    if purpose is not None:
        stmt = stmt.where(col(Consent.purpose) == purpose)
    return int(await session.scalar(stmt.select_from(Consent)) or 0)


async def history(session: AsyncSession, customer_id: int) -> list[Consent]:
    """The whole history, oldest first (for exports)."""
    stmt = select(Consent).where(col(Consent.customer_id) == customer_id)
    return list(await session.scalars(stmt.order_by(col(Consent.id))))
