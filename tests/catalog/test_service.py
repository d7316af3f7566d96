"""The catalog service as importers and the demo loader call it: plain dicts with snake_case keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.catalog import repository, service
from domain.db import Database
from domain.errors import DomainError
from tests.conftest import count_rows


def item(**extra: Any) -> dict[str, Any]:
    return {
        "external_id": "sku-1",
        "title": "Linen Shirt",
        "description": "Breathable.",
        "category_path": ["Apparel", "Shirts"],
        "brand": "Loom",
        "tags": ["summer"],
        "price": Decimal("49.00"),
        "currency": "EUR",
        "stock": 12,
        "active": True,
        "attributes": {"size": ["S", "M"]},
        **extra,
    }


async def test_upsert_with_every_key(db: Database) -> None:
    async with db.unit_of_work() as session:
        [row] = await service.upsert_products(session, [item()])
        assert row.id is not None
        assert (row.external_id, row.title, row.brand, row.price, row.currency, row.stock) == (
            "sku-1",
            "Linen Shirt",
            "Loom",
            Decimal("49.00"),
            "EUR",
            12,
        )
        assert row.attributes == {"size": ["S", "M"]}
        assert (await repository.tags_for(session, [row.id]))[row.id] == ["summer"]
    async with db.unit_of_work() as session:
        [same] = await service.upsert_products(
            session, [item(price=12, active=False, tags=None, brand="", description=None)]
        )
        assert same.id == row.id
        assert (same.price, same.active, same.brand, same.description) == (
            Decimal("12.00"),
            False,
            None,
            "",
        )
        assert (await repository.tags_for(session, [row.id])).get(row.id, []) == []
    assert await count_rows(db, "product") == 1
    assert await count_rows(db, "category") == 2
    async with db.unit_of_work() as session:
        assert await service.upsert_products(session, []) == []


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("colour", "red", "UNKNOWN_FIELD"),
        ("stock", "5", "INVALID_STOCK"),
        ("stock", True, "INVALID_STOCK"),
        ("stock", 2**31, "INVALID_STOCK"),
        ("price", 1.005, "INVALID_PRICE"),
        ("price", True, "INVALID_PRICE"),
        ("price", None, "REQUIRED"),
        ("currency", 978, "INVALID_CURRENCY"),
        ("title", 5, "INVALID"),
        ("active", "yes", "INVALID"),
        ("active", None, "REQUIRED"),
        ("tags", "summer", "INVALID_TAG"),
        ("tags", [f"t{i}" for i in range(51)], "TOO_MANY"),
        ("category_path", "Apparel > Shirts", "INVALID_CATEGORY"),
        ("category_path", ["A", "B", "C", "D", "E", "F", "G"], "INVALID_CATEGORY"),
        ("category_path", ["A > B"], "INVALID_CATEGORY"),
        ("category_path", ["x" * 100] * 5 + ["y"], "TOO_LONG"),
        ("attributes", {"blob": "x" * 9000}, "INVALID_ATTRIBUTES"),
        ("external_id", None, "REQUIRED"),
    ],
)
async def test_invalid_items_raise_and_write_nothing(
    db: Database, key: str, value: Any, code: str
) -> None:
    async with db.unit_of_work() as session:
        await service.upsert_products(session, [item(external_id="sku-0")])
    with pytest.raises(DomainError) as caught:
        async with db.unit_of_work() as session:
            await service.upsert_products(
                session, [item(external_id="sku-2"), item(**{key: value})]
            )
    assert [(e.code, e.index) for e in caught.value.errors] == [(code, 1)]
    assert await count_rows(db, "product") == 1
    assert await count_rows(db, "category") == 2


async def test_six_levels_are_allowed(db: Database) -> None:
    async with db.unit_of_work() as session:
        [row] = await service.upsert_products(session, [item(category_path=list("ABCDEF"))])
        cats = await repository.categories(session)
    assert [(c.path, c.depth) for c in cats][-1] == ("A > B > C > D > E > F", 5)
    assert row.category_id == cats[-1].id


async def test_archive(db: Database) -> None:
    async with db.unit_of_work() as session:
        [row] = await service.upsert_products(session, [item()])
    async with db.unit_of_work() as session:
        archived = await service.archive_product(session, row.id)  # type: ignore[arg-type]
        first = archived.archived_at
        assert first is not None and archived.active is False
    async with db.unit_of_work() as session:
        again = await service.archive_product(session, row.id)  # type: ignore[arg-type]
        assert again.archived_at == first
    with pytest.raises(DomainError) as caught:
        async with db.unit_of_work() as session:
            await service.archive_product(session, 999)
    assert [e.code for e in caught.value.errors] == ["NOT_FOUND"]
