"""The demo storefront: deterministic per seed, valid, and loaded through the services."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from domain import validation
from domain.catalog.models import Category, Product
from domain.db import Database
from domain.demo import ascii_slug, category_tree, demo_products, demo_users, is_empty, load_demo
from domain.keys import build_keys
from domain.settings import Settings
from domain.users.models import Customer
from tests.conftest import count_rows


def test_generators_are_deterministic_per_seed() -> None:
    assert demo_users(200, seed=7) == demo_users(200, seed=7)
    assert demo_products(60, seed=7) == demo_products(60, seed=7)
    assert demo_users(50, seed=7) != demo_users(50, seed=8)
    # a smaller load is a prefix of a larger one
    assert demo_users(50, seed=7) == demo_users(200, seed=7)[:50]


def test_generated_shoppers_and_products_are_plausible() -> None:
    shoppers = demo_users(2000, seed=42)
    emails = [u["email"] for u in shoppers if "email" in u]
    assert len(set(emails)) == len(emails) > 1900
    assert {e.rsplit("@", 1)[1] for e in emails} == {"example.com", "example.org", "example.net"}
    assert len({u["country"] for u in shoppers}) == 13
    for user in shoppers:
        assert validation.locale(user["locale"]) == user["locale"]
        assert validation.timezone(user["timezone"]) == user["timezone"]
        if "phone" in user:
            assert validation.phone(user["phone"]) == user["phone"]
            assert user["phone"].startswith("+")
        assert 0 <= user["created_ago"] <= 730 * 86400
        local = user.get("email", "a@b").split("@")[0]
        assert local.isascii()
    assert sum("phone" in u for u in shoppers) > 1000
    assert sum("vip" in u["tags"] for u in shoppers) > 50

    items = demo_products(300, seed=42)
    assert len({p["external_id"] for p in items}) == 300
    assert all(len(p["category_path"]) == 3 for p in items)
    assert all(p["currency"] == "EUR" and p["price"].as_tuple().exponent == -2 for p in items)
    assert any(p["stock"] is None for p in items)
    assert any(p["stock"] == 0 for p in items)


def test_ascii_slug() -> None:
    assert ascii_slug("Müller", "DE") == "mueller"
    assert ascii_slug("Müller", "CH") == "mueller"
    assert ascii_slug("Lindström", "SE") == "lindstrom"
    assert ascii_slug("Wiśniewski", "PL") == "wisniewski"
    assert ascii_slug("Michał", "PL") == "michal"
    assert ascii_slug("van den Berg", "NL") == "vandenberg"
    assert ascii_slug("De Luca", "IT") == "deluca"


async def test_load_demo_through_the_services(db: Database, settings: Settings) -> None:
    keys = build_keys(settings)
    async with db.read_only() as session:
        assert await is_empty(session)
    reports: list[tuple[str, int, int]] = []

    result = await load_demo(
        db, keys, users=120, products=30, seed=3, progress=lambda *r: reports.append(r)
    )

    # the first 30 products take the first 30 leaves, one each
    leaves = category_tree()[:30]
    nodes = {tuple(leaf[: i + 1]) for leaf in leaves for i in range(3)}
    assert result == {"users": 120, "products": 30, "categories": len(nodes)}
    assert reports == [("users", 100, 120), ("users", 120, 120), ("products", 30, 30)]
    async with db.read_only() as session:
        assert not await is_empty(session)
        customers = list(
            await session.scalars(select(Customer).order_by(col(Customer.external_id)))
        )
        items = list(await session.scalars(select(Product).order_by(col(Product.external_id))))
        paths = set(await session.scalars(select(col(Category.path))))
    assert len(customers) == 120 and len(items) == 30
    assert paths == {" > ".join(n) for n in nodes}
    assert {tuple(p.split(" > ")) for p in paths if p.count(" > ") == 2} == set(map(tuple, leaves))
    expected = demo_users(120, seed=3)
    now = datetime.now(UTC)
    for row, want in zip(customers, expected, strict=True):
        assert row.external_id == want["external_id"]
        if "email" in want:
            assert keys.decrypt(row.email_encrypted or "") == want["email"]
        else:
            assert row.email_encrypted is None
        assert row.country == want["country"]
        assert now - timedelta(days=731) <= row.created_at <= now
    assert len({c.created_at.date() for c in customers}) > 60
    assert [p.external_id for p in items] == [f"demo-p-{n:05d}" for n in range(1, 31)]

    # loading again changes nothing
    await load_demo(db, keys, users=120, products=30, seed=3, progress=None)
    assert await count_rows(db, "customer") == 120
    assert await count_rows(db, "product") == 30
    assert await count_rows(db, "category") == len(nodes)


async def test_same_seed_gives_same_data_in_two_fresh_databases(
    tmp_path: Path, sqlite_template: Path, keys_dir: Path
) -> None:
    snapshots = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.db"
        shutil.copyfile(sqlite_template, path)
        settings = Settings(
            env="dev",
            var_dir=keys_dir,
            database_url=f"sqlite+aiosqlite:///{path}",
            _env_file=None,  # type: ignore[call-arg]
        )
        keys = build_keys(settings)
        db = Database(settings)
        try:
            await load_demo(db, keys, users=120, products=30, seed=11)
            async with db.read_only() as session:
                customers = await session.scalars(select(Customer).order_by(col(Customer.id)))
                shoppers = [
                    (c.external_id, keys.decrypt(c.email_encrypted) if c.email_encrypted else None)
                    for c in customers
                ]
                products = [
                    (p.external_id, p.title, p.price, p.stock)
                    for p in await session.scalars(select(Product).order_by(col(Product.id)))
                ]
        finally:
            await db.dispose()
        snapshots.append((shoppers, products))
    assert snapshots[0] == snapshots[1]
    assert len(snapshots[0][0]) == 120 and len(snapshots[0][1]) == 30
