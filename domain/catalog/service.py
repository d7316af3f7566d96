"""Rules for the catalog: validated, idempotent product upserts, the category tree, archiving.

Batches are all-or-nothing: if any item is invalid, every item's errors are returned (with its index)
and nothing is written. Categories are addressed by their path (``["Shoes", "Running"]``); missing
levels are created. Upserts never touch ``archived_at``: an archived product stays archived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain import validation as v
from domain.catalog import repository
from domain.catalog.models import Category, Product, ProductTag
from domain.columns import utcnow
from domain.errors import DomainError, FieldError
from domain.sql import insert_ignoring_conflicts, replace_tags, table, upsert_returning_ids

MAX_BATCH = 100
MAX_TAGS = 50
MAX_CATEGORY_DEPTH = 6
MAX_CATEGORY_NAME = 100
MAX_CATEGORY_PATH = 500
MAX_DESCRIPTION = 20_000
MAX_STOCK = 2**31 - 1
REQUIRED_ON_CREATE = ("title", "price", "currency")
CAMEL = {"external_id": "externalId", "category_path": "categoryPath"}


def _camel(name: str) -> str:
    return CAMEL.get(name, name)


def _text(value: Any, *, field_name: str, max_length: int, required: bool = False) -> str:
    if not isinstance(value, str):
        raise v.Invalid("INVALID", f"{field_name} must be a string")
    return v.text(value, field_name=field_name, max_length=max_length, required=required)


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise v.Invalid("INVALID_CURRENCY", "currency must be an ISO 4217 code such as EUR")
    return v.currency(value)


def _money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise v.Invalid("INVALID_PRICE", f"not a decimal amount: {value!r}")
    return v.money(value)


def _stock(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STOCK:
        raise v.Invalid("INVALID_STOCK", f"stock must be a whole number from 0 to {MAX_STOCK}")
    return value


def _active(value: Any) -> bool:
    if not isinstance(value, bool):
        raise v.Invalid("INVALID", "active must be true or false")
    return value


def category_path(value: Any) -> list[str]:
    """Normalise a category path given as a list of names, root first."""
    if not isinstance(value, list | tuple) or not all(isinstance(n, str) for n in value):
        raise v.Invalid("INVALID_CATEGORY", "categoryPath must be a list of names, root first")
    if len(value) > MAX_CATEGORY_DEPTH:
        raise v.Invalid(
            "INVALID_CATEGORY", f"categoryPath has more than {MAX_CATEGORY_DEPTH} levels"
        )
    names = [n.strip() for n in value]
    for name in names:
        if not name:
            raise v.Invalid("INVALID_CATEGORY", "category names must not be empty")
        if ">" in name:
            raise v.Invalid("INVALID_CATEGORY", f"category name {name!r} must not contain '>'")
        if len(name) > MAX_CATEGORY_NAME:
            raise v.Invalid(
                "TOO_LONG", f"category name is longer than {MAX_CATEGORY_NAME} characters"
            )
    if len(repository.PATH_SEPARATOR.join(names)) > MAX_CATEGORY_PATH:
        raise v.Invalid("TOO_LONG", f"category path is longer than {MAX_CATEGORY_PATH} characters")
    return names


# Fields a caller may set, with the check for each; None is handled in ``_clean``.
CHECKS: dict[str, Any] = {
    "external_id": v.external_id,
    "title": lambda x: _text(x, field_name="title", max_length=300, required=True),
    "description": lambda x: _text(x, field_name="description", max_length=MAX_DESCRIPTION),
    "brand": lambda x: _text(x, field_name="brand", max_length=100),
    "price": _money,
    "currency": _currency,
    "stock": _stock,
    "active": _active,
    "attributes": v.attributes,
    "category_path": category_path,
}
# What None means for a field that may be cleared; fields absent here refuse None.
CLEARED: dict[str, Any] = {"description": "", "brand": None, "stock": None, "attributes": {}}


def _clean(
    fields: Mapping[str, Any], index: int, prefix: tuple[str, ...]
) -> tuple[dict[str, Any], list[str] | None, list[FieldError]]:
    """Validate one item; returns column values (``category_path`` as a list), tags, errors."""
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    tags: list[str] | None = None
    for name, raw in fields.items():
        path = (*prefix, _camel(name))
        if name == "tags":
            raw = [] if raw is None else raw
            if not isinstance(raw, list | tuple) or not all(isinstance(t, str) for t in raw):
                errors.append(
                    FieldError("INVALID_TAG", "tags must be a list of strings", path, index)
                )
            elif len(raw) > MAX_TAGS:
                errors.append(FieldError("TOO_MANY", f"at most {MAX_TAGS} tags", path, index))
            else:
                checked = [v.check(errors, index, path, v.tag, t) for t in raw]
                tags = sorted({t for t in checked if t is not None})
        elif name == "category_path":
            values[name] = [] if raw is None else v.check(errors, index, path, category_path, raw)
        elif name in CHECKS:
            if raw is None:
                if name in CLEARED:
                    values[name] = CLEARED[name]
                else:
                    errors.append(
                        FieldError("REQUIRED", f"{_camel(name)} cannot be null", path, index)
                    )
            else:
                values[name] = v.check(errors, index, path, CHECKS[name], raw)
        else:
            errors.append(FieldError("UNKNOWN_FIELD", f"unknown field {name}", path, index))
    if values.get("brand") == "":
        values["brand"] = None
    return values, tags, errors


async def ensure_categories(
    session: AsyncSession, paths: Sequence[Sequence[str]]
) -> dict[str, int]:
    """Create every missing level of ``paths``; returns ids keyed by joined path."""
    sep = repository.PATH_SEPARATOR
    wanted: dict[str, tuple[int, str, str | None]] = {}  # path -> (depth, name, parent path)
    for names in paths:
        for depth in range(len(names)):
            joined = sep.join(names[: depth + 1])
            parent = sep.join(names[:depth]) if depth else None
            wanted.setdefault(joined, (depth, names[depth], parent))
    if not wanted:
        return {}
    ids = {
        p: c.id for p, c in (await repository.categories_by_paths(session, list(wanted))).items()
    }
    missing = [p for p in wanted if p not in ids]
    # Level by level, so each parent exists (and has an id) before its children.
    for depth in sorted({wanted[p][0] for p in missing}):
        level = [p for p in missing if wanted[p][0] == depth]
        rows = [
            {
                "name": wanted[p][1],
                "path": p,
                "depth": depth,
                "parent_id": ids[wanted[p][2]] if wanted[p][2] is not None else None,  # type: ignore[index]
            }
            for p in level
        ]
        # A concurrent request may create the same path: keep theirs, then read all ids back.
        await insert_ignoring_conflicts(session, table(Category), rows, key=["path"])
        found = await repository.categories_by_paths(session, level)
        ids.update({p: c.id for p, c in found.items()})
    return ids  # type: ignore[return-value]


async def upsert_products(
    session: AsyncSession, items: Sequence[Mapping[str, Any]]
) -> list[Product]:
    """Create or update by ``external_id``; returns the products in input order."""
    if not items:
        return []
    if len(items) > MAX_BATCH:
        raise DomainError.one("TOO_MANY", f"at most {MAX_BATCH} products per call", "products")
    errors: list[FieldError] = []
    cleaned: list[tuple[int, dict[str, Any], list[str] | None]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        prefix = ("products", str(index))
        if "external_id" not in item:
            errors.append(
                FieldError("REQUIRED", "externalId is required", (*prefix, "externalId"), index)
            )
        values, tags, item_errors = _clean(item, index, prefix)
        errors.extend(item_errors)
        ext = values.get("external_id")
        if ext is not None:
            if ext in seen:
                errors.append(
                    FieldError(
                        "DUPLICATE",
                        f"externalId {ext!r} also appears at index {seen[ext]}",
                        (*prefix, "externalId"),
                        index,
                    )
                )
            seen.setdefault(ext, index)
        cleaned.append((index, values, tags))

    existing = await repository.by_external_ids(session, list(seen))
    for index, values, _ in cleaned:
        ext = values.get("external_id")
        if ext is None or ext in existing:
            continue
        for name in REQUIRED_ON_CREATE:
            if name not in items[index]:
                errors.append(
                    FieldError(
                        "REQUIRED",
                        f"{name} is required for a new product",
                        ("products", str(index), name),
                        index,
                    )
                )
    if errors:
        raise DomainError(sorted(errors, key=lambda e: (e.index or 0, e.field)))

    category_ids = await ensure_categories(
        session, [vals["category_path"] for _, vals, _ in cleaned if vals.get("category_path")]
    )
    now = utcnow()
    columns = [c.name for c in table(Product).columns if c.name != "id"]
    rows: list[dict[str, Any]] = []
    for _, values, _ in cleaned:
        current = existing.get(values["external_id"])
        row: dict[str, Any]
        if current is None:
            row = {c: None for c in columns}
            row.update({"description": "", "attributes": {}, "active": True, "created_at": now})
        else:
            row = {c: getattr(current, c) for c in columns}
        names = values.pop("category_path", None)
        if names is not None:
            row["category_id"] = (
                category_ids[repository.PATH_SEPARATOR.join(names)] if names else None
            )
        row.update(values)
        row["updated_at"] = now
        rows.append(row)
    ids = await upsert_returning_ids(
        session,
        table(Product),
        rows,
        key="external_id",
        keep=("created_at", "archived_at"),
    )

    tagged = [(ids[vals["external_id"]], tags) for _, vals, tags in cleaned if tags is not None]
    await replace_tags(session, ProductTag, "product_id", tagged)
    session.expunge_all()
    fresh = await repository.by_ids(session, list(ids.values()))
    return [fresh[ids[vals["external_id"]]] for _, vals, _ in cleaned]


async def archive_product(session: AsyncSession, product_id: int) -> Product:
    """Hide a product from default lists and deactivate it; archiving twice keeps the first time."""
    product = await session.get(Product, product_id)
    if product is None:
        raise DomainError.one("NOT_FOUND", "no such product", "id")
    now = utcnow()
    if product.archived_at is None:
        product.archived_at = now
    product.active = False
    product.updated_at = now
    await session.flush()
    return product
