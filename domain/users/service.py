"""Rules for customers: validation, PII encryption, idempotent upserts, tags.

Batches are all-or-nothing: if any item is invalid, every item's errors are returned (with its index)
and nothing is written, so a partner can fix the batch and resend it unchanged apart from the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain import validation as v
from domain.columns import utcnow
from domain.errors import DomainError, FieldError
from domain.keys import Keys
from domain.sql import insert_ignoring_conflicts, replace_tags, table, upsert_returning_ids
from domain.users import repository
from domain.users.models import Customer, CustomerTag

MAX_BATCH = 100
MAX_TAGS = 50

# Fields a caller may set, with the check for each (None value clears the field where allowed).
PLAIN_FIELDS: dict[str, Any] = {
    "first_name": lambda x: v.text(x, field_name="firstName", max_length=100),
    "last_name": lambda x: v.text(x, field_name="lastName", max_length=100),
    "locale": v.locale,
    "timezone": v.timezone,
    "country": v.country,
    "region": lambda x: v.text(x, field_name="region", max_length=100),
    "gender": lambda x: v.text(x, field_name="gender", max_length=32),
    "occupation": lambda x: v.text(x, field_name="occupation", max_length=100),
    "attributes": v.attributes,
}
CAMEL = {
    "external_id": "externalId",
    "first_name": "firstName",
    "last_name": "lastName",
    "birth_date": "birthDate",
}


def _camel(name: str) -> str:
    return CAMEL.get(name, name)


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str) -> str:
    return value[:3] + "*" * max(len(value) - 5, 0) + value[-2:]


def _clean(
    keys: Keys, fields: Mapping[str, Any], index: int | None, prefix: tuple[str, ...]
) -> tuple[dict[str, Any], list[str] | None, list[FieldError]]:
    """Validate one input; returns column values, tags (None when not given) and errors."""
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    tags: list[str] | None = None
    for name, raw in fields.items():
        path = (*prefix, _camel(name))
        if name == "external_id":
            values[name] = v.check(errors, index, path, v.external_id, raw)
        elif name == "email":
            if raw is None:
                values["email_encrypted"] = values["email_hash"] = None
            else:
                norm = v.check(errors, index, path, v.email, raw)
                if norm is not None:
                    values["email_encrypted"] = keys.encrypt(norm)
                    values["email_hash"] = keys.lookup_hash("email", norm)
        elif name == "phone":
            if raw is None:
                values["phone_encrypted"] = values["phone_hash"] = None
            else:
                norm = v.check(errors, index, path, v.phone, raw)
                if norm is not None:
                    values["phone_encrypted"] = keys.encrypt(norm)
                    values["phone_hash"] = keys.lookup_hash("phone", norm)
        elif name == "birth_date":
            if raw is not None and (
                not isinstance(raw, date) or raw > date.today() or raw.year < 1900
            ):
                errors.append(
                    FieldError(
                        "INVALID_DATE", "birth date must be between 1900 and today", path, index
                    )
                )
            values[name] = raw
        elif name == "tags":
            if raw is None:
                raw = []
            if len(raw) > MAX_TAGS:
                errors.append(FieldError("TOO_MANY", f"at most {MAX_TAGS} tags", path, index))
            else:
                checked = [v.check(errors, index, path, v.tag, t) for t in raw]
                tags = sorted({t for t in checked if t is not None})
        elif name in PLAIN_FIELDS:
            if name == "attributes" and raw is None:
                raw = {}
            values[name] = (
                None if raw is None else v.check(errors, index, path, PLAIN_FIELDS[name], raw)
            )
        else:
            errors.append(FieldError("UNKNOWN_FIELD", f"unknown field {name}", path, index))
    for key in ("first_name", "last_name", "region", "gender", "occupation"):
        if values.get(key) == "":
            values[key] = None
    return values, tags, errors


async def upsert_users(
    session: AsyncSession, keys: Keys, items: Sequence[Mapping[str, Any]]
) -> list[Customer]:
    """Create or update by ``external_id``; returns the customers in input order."""
    if not items:
        return []
    if len(items) > MAX_BATCH:
        raise DomainError.one("TOO_MANY", f"at most {MAX_BATCH} users per call", "users")
    errors: list[FieldError] = []
    cleaned: list[tuple[dict[str, Any], list[str] | None]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not item.get("external_id"):
            errors.append(
                FieldError(
                    "REQUIRED", "externalId is required", ("users", str(index), "externalId"), index
                )
            )
        values, tags, item_errors = _clean(keys, item, index, ("users", str(index)))
        errors.extend(item_errors)
        ext = values.get("external_id")
        if ext is not None:
            if ext in seen:
                errors.append(
                    FieldError(
                        "DUPLICATE",
                        f"externalId {ext!r} also appears at index {seen[ext]}",
                        ("users", str(index), "externalId"),
                        index,
                    )
                )
            seen.setdefault(ext, index)
        cleaned.append((values, tags))
    if errors:
        raise DomainError(errors)

    now = utcnow()
    existing = await repository.by_external_ids(
        session, [vals["external_id"] for vals, _ in cleaned]
    )
    columns = [c.name for c in table(Customer).columns if c.name != "id"]
    rows: list[dict[str, Any]] = []
    for values, _ in cleaned:
        current = existing.get(values["external_id"])
        row: dict[str, Any]
        if current is None:
            row = {c: None for c in columns}
            row.update({"attributes": {}, "created_at": now})
        else:
            row = {c: getattr(current, c) for c in columns}
        row.update(values)
        row["updated_at"] = now
        rows.append(row)
    ids = await upsert_returning_ids(
        session,
        table(Customer),
        rows,
        key="external_id",
        keep=("created_at",),
    )

    tagged = [(ids[vals["external_id"]], tags) for vals, tags in cleaned if tags is not None]
    await replace_tags(session, CustomerTag, "customer_id", tagged)
    session.expunge_all()
    fresh = await repository.by_ids(session, list(ids.values()))
    return [fresh[ids[vals["external_id"]]] for vals, _ in cleaned]


async def update_user(
    session: AsyncSession, keys: Keys, customer_id: int, fields: Mapping[str, Any]
) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise DomainError.one("NOT_FOUND", "no such user", "id")
    if "external_id" in fields:
        raise DomainError.one("IMMUTABLE", "externalId cannot be changed", "input", "externalId")
    values, tags, errors = _clean(keys, fields, None, ("input",))
    if errors:
        raise DomainError(errors)
    for name, value in values.items():
        setattr(customer, name, value)
    customer.updated_at = utcnow()
    if tags is not None:
        await replace_tags(session, CustomerTag, "customer_id", [(customer_id, tags)])
    await session.flush()
    return customer


async def change_tags(
    session: AsyncSession, customer_ids: Sequence[int], tags: Sequence[str], *, add: bool
) -> list[int]:
    """Add or remove tags on up to ``MAX_BATCH`` users; returns the ids that exist."""
    errors: list[FieldError] = []
    if not customer_ids:
        errors.append(FieldError("REQUIRED", "give at least one user", ("input", "userIds")))
    if len(customer_ids) > MAX_BATCH:
        errors.append(FieldError("TOO_MANY", f"at most {MAX_BATCH} users", ("input", "userIds")))
    if not tags or len(tags) > MAX_TAGS:
        errors.append(FieldError("INVALID_TAG", f"give 1 to {MAX_TAGS} tags", ("input", "tags")))
    checked = [v.check(errors, None, ("input", "tags"), v.tag, t) for t in tags]
    if errors:
        raise DomainError(errors)
    existing = set(
        await session.scalars(select(col(Customer.id)).where(col(Customer.id).in_(customer_ids)))
    )
    found = list(dict.fromkeys(i for i in customer_ids if i in existing))  # input order, no repeats
    missing = sorted(set(customer_ids) - set(found))
    if missing:
        raise DomainError.one("NOT_FOUND", f"{len(missing)} user(s) not found", "input", "userIds")
    unique_tags = sorted({t for t in checked if t})
    if add:
        rows = [{"customer_id": pk, "tag": t} for pk in found for t in unique_tags]
        await insert_ignoring_conflicts(session, table(CustomerTag), rows)
    else:
        await session.execute(
            delete(CustomerTag).where(
                col(CustomerTag.customer_id).in_(found),
                col(CustomerTag.tag).in_(unique_tags),
            )
        )
    await session.execute(
        update(Customer).where(col(Customer.id).in_(found)).values(updated_at=utcnow())
    )
    return found
