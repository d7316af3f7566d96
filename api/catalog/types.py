"""The ``Product`` and ``Category`` types, wrapping rows directly, and ``Money``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.catalog.loaders import category_loader, children_loader, tags_loader
from api.ids import encode_id
from api.relay import Node
from domain.catalog.models import Category as CategoryRow
from domain.catalog.models import Product as ProductRow


@strawberry.type(description="An amount of money: a decimal string and an ISO 4217 currency.")
class Money:
    amount: str = strawberry.field(description='Decimal with two places, e.g. "19.90".')
    currency: str = strawberry.field(description="ISO 4217 code, e.g. EUR.")

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> Money:
        return cls(amount=f"{Decimal(amount).quantize(Decimal('0.01')):f}", currency=currency)


@strawberry.type(description="A node of the category tree; `path` joins the names with ` > `.")
class Category(Node):
    name: str
    path: str = strawberry.field(description='Full path, e.g. "Shoes > Running".')
    depth: int = strawberry.field(description="0 for a top-level category.")

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]  # Node.id, resolved
    @staticmethod
    def id(root: CategoryRow) -> strawberry.ID:
        return strawberry.ID(encode_id("Category", root.id))  # type: ignore[arg-type]

    @strawberry.field(description="The parent category; null at the top level.")
    @staticmethod
    async def parent(root: CategoryRow, info: Info) -> Category | None:
        if root.parent_id is None:
            return None
        found: Category | None = await info.context.loader("category", category_loader).load(
            root.parent_id
        )
        return found

    @strawberry.field(description="Direct sub-categories, ordered by path.")
    @staticmethod
    async def children(root: CategoryRow, info: Info) -> list[Category]:
        found: list[Category] = await info.context.loader(
            "category_children", children_loader
        ).load(root.id)
        return found

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, CategoryRow)


@strawberry.type(description="A catalog item.")
class Product(Node):
    external_id: str = strawberry.field(description="The store's own id for this product.")
    title: str
    description: str
    brand: str | None
    stock: int | None = strawberry.field(description="Units in stock; null when not tracked.")
    active: bool
    archived_at: datetime | None = strawberry.field(
        description="When the product was archived; archived products are hidden by default."
    )
    attributes: JSON = strawberry.field(description="Custom attributes (a JSON object).")
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]  # Node.id, resolved
    @staticmethod
    def id(root: ProductRow) -> strawberry.ID:
        return strawberry.ID(encode_id("Product", root.id))  # type: ignore[arg-type]

    @strawberry.field(description="The current price.")
    @staticmethod
    def price(root: ProductRow) -> Money:
        return Money.of(root.price, root.currency)

    @strawberry.field(description="True when stock is untracked or above zero.")
    @staticmethod
    def in_stock(root: ProductRow) -> bool:
        return root.stock is None or root.stock > 0

    @strawberry.field(description="Tags, sorted.")
    @staticmethod
    async def tags(root: ProductRow, info: Info) -> list[str]:
        result: list[str] = await info.context.loader("product_tags", tags_loader).load(root.id)
        return result

    @strawberry.field(description="The product's category; null when it has none.")
    @staticmethod
    async def category(root: ProductRow, info: Info) -> Category | None:
        if root.category_id is None:
            return None
        found: Category | None = await info.context.loader("category", category_loader).load(
            root.category_id
        )
        return found

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, ProductRow)
