"""A deterministic demo storefront: shoppers from thirteen countries and a three-level catalog.

The same seed gives the same shoppers and products (ids, names, e-mails, phones, prices). Only the
sign-up times move with the clock: they are spread over the two years before the load. Everything goes
through the users and catalog services, so demo rows are validated and encrypted like real ones.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import phonenumbers
from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain import demo_data as data
from domain import validation
from domain.db import Database
from domain.keys import Keys
from domain.users.models import Customer

BATCH = 100
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
TWO_YEARS = timedelta(days=730)
GERMAN = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
LETTERS = {"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "ł": "l", "Ł": "L", "đ": "d"}


async def is_empty(session: AsyncSession) -> bool:
    """True when no customer exists yet."""
    return not await session.scalar(select(exists().where(col(Customer.id).is_not(None))))


def _names(text: str) -> list[tuple[str, str]]:
    """``display/ascii`` pairs from a space-separated list (``_`` is a space inside a name)."""
    pairs = []
    for word in text.split():
        display, _, ascii_name = word.replace("_", " ").partition("/")
        pairs.append((display, ascii_name or display))
    return pairs


def ascii_slug(name: str, country: str) -> str:
    """The e-mail spelling of a name: Müller -> mueller (in German-speaking countries), José -> jose."""
    if country in ("DE", "AT", "CH"):
        name = "".join(GERMAN.get(ch, ch) for ch in name)
    name = "".join(LETTERS.get(ch, ch) for ch in name)
    decomposed = unicodedata.normalize("NFKD", name)
    return re.sub(r"[^a-z]", "", decomposed.encode("ascii", "ignore").decode().lower())


@cache
def _country_table() -> list[tuple[str, int, Any, Any, Any, Any]]:
    return [
        (code, weight, _names(female), _names(male), _names(last), regions)
        for code, (weight, female, male, last, regions) in data.COUNTRIES.items()
    ]


def _phone(rng: random.Random, country: str) -> str | None:
    """A valid mobile number for ``country``: the library's example with its last six digits varied."""
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return None
    national = str(example.national_number)
    for _ in range(10):
        digits = national[:-6] + f"{rng.randrange(1_000_000):06d}"
        number = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(digits)
        )
        if phonenumbers.is_valid_number(number):
            return validation.phone(
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            )
    return validation.phone(
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    )


def demo_users(count: int, seed: int) -> list[dict[str, Any]]:
    """Shopper inputs for ``upsert_users`` plus ``created_ago`` (seconds before the load)."""
    rng = random.Random(f"users:{seed}")
    table = _country_table()
    weights = [w for _, w, *_ in table]
    users: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        code, _, female, male, last_names, regions = rng.choices(table, weights)[0]
        roll = rng.random()
        gender: str | None = "female" if roll < 0.48 else "male" if roll < 0.96 else None
        if gender is None and rng.random() < 0.5:
            gender = "diverse"
        names = {"female": female, "male": male}.get(gender or "") or rng.choice((female, male))
        first, first_ascii = rng.choice(names)
        last, last_ascii = rng.choice(last_names)
        region, zone, locale = rng.choice(regions)
        local = f"{ascii_slug(first_ascii, code)}.{ascii_slug(last_ascii, code)}{n}"
        user: dict[str, Any] = {
            "external_id": f"demo-u-{n:05d}",
            "first_name": first,
            "last_name": last,
            "locale": locale,
            "timezone": zone,
            "country": code,
            "region": region,
            "gender": gender,
            "birth_date": date(1948, 1, 1) + timedelta(days=int(rng.triangular(0, 21184, 13000))),
            "occupation": rng.choice(data.OCCUPATIONS) if rng.random() < 0.7 else None,
            "tags": sorted(t for t, share in data.USER_TAGS.items() if rng.random() < share),
            "attributes": {
                "loyalty_points": rng.randrange(0, 5000, 10),
                "preferred_channel": rng.choice(data.CHANNELS),
                "acquisition": rng.choice(data.ACQUISITION),
            },
        }
        if rng.random() < 0.97:
            user["email"] = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        if rng.random() < 0.6:
            user["phone"] = _phone(rng, code)
        # Sign-ups grow over time: more recent days are likelier.
        user["created_ago"] = int(TWO_YEARS.total_seconds() * (1 - rng.random() ** 0.7))
        users.append(user)
    return users


def category_tree() -> list[list[str]]:
    """Every leaf path of the demo category tree, root first."""
    return [
        [top, middle, leaf]
        for top, middles in data.CATEGORIES.items()
        for middle, leaves in middles.items()
        for leaf in leaves
    ]


def demo_products(count: int, seed: int) -> list[dict[str, Any]]:
    """Product inputs for ``upsert_products``, prices in EUR."""
    rng = random.Random(f"products:{seed}")
    leaves = category_tree()
    products: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        top, middle, leaf = (
            leaves[(n - 1) % len(leaves)] if n <= len(leaves) else rng.choice(leaves)
        )
        noun, low, high = data.CATEGORIES[top][middle][leaf]
        brand = rng.choice(data.BRANDS[top])
        color = rng.choice(data.COLORS)
        material = rng.choice(data.MATERIALS[top])
        title = f"{brand} {rng.choice(data.MODELS)} {noun}"
        if top == "Apparel":
            title += f", {color}"
        cents = rng.choice(("99", "95", "90", "00"))
        price = Decimal(f"{int(rng.uniform(low, high))}.{cents}")
        roll = rng.random()
        stock = None if roll < 0.12 else 0 if roll < 0.20 else rng.randint(1, 250)
        products.append(
            {
                "external_id": f"demo-p-{n:05d}",
                "title": title,
                "description": (
                    f"{noun} by {brand} in {color.lower()}, made of {material}. {data.PITCH[top]}"
                ),
                "category_path": [top, middle, leaf],
                "brand": brand,
                "tags": sorted(t for t, share in data.PRODUCT_TAGS.items() if rng.random() < share),
                "price": price,
                "currency": "EUR",
                "stock": stock,
                "active": rng.random() < 0.95,
                "attributes": {"color": color, "material": material},
            }
        )
    return products


async def load_demo(
    db: Database,
    keys: Keys,
    *,
    users: int,
    products: int,
    seed: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Upsert the demo shoppers and products for ``seed`` (loading twice changes nothing)."""
    from domain.catalog.service import upsert_products
    from domain.users.service import upsert_users

    table = Customer.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC).replace(microsecond=0)
    shoppers = demo_users(users, seed)
    for start in range(0, len(shoppers), BATCH):
        chunk = shoppers[start : start + BATCH]
        items = [{k: v for k, v in u.items() if k != "created_ago"} for u in chunk]
        async with db.unit_of_work() as session:
            await upsert_users(session, keys, items)
            await session.execute(
                update(table)
                .where(table.c.external_id == bindparam("ext"))
                .values(created_at=bindparam("created")),
                [
                    {"ext": u["external_id"], "created": now - timedelta(seconds=u["created_ago"])}
                    for u in chunk
                ],
            )
        if progress is not None:
            progress("users", start + len(chunk), len(shoppers))

    catalog = demo_products(products, seed)
    for start in range(0, len(catalog), BATCH):
        chunk = catalog[start : start + BATCH]
        async with db.unit_of_work() as session:
            await upsert_products(session, chunk)
        if progress is not None:
            progress("products", start + len(chunk), len(catalog))

    categories = {tuple(p["category_path"][: i + 1]) for p in catalog for i in range(3)}
    return {"users": len(shoppers), "products": len(catalog), "categories": len(categories)}
