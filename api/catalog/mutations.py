"""Catalog mutations: one input, a payload with the result and typed errors."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.catalog.queries import find_product
from api.catalog.types import Product
from api.errors import error_type, to_errors
from api.inputs import provided
from domain.audit import service as audit
from domain.catalog import service
from domain.errors import DomainError

UpsertProductsError, UpsertProductsErrorCode = error_type(
    "UpsertProducts",
    [
        "INVALID",
        "REQUIRED",
        "TOO_LONG",
        "TOO_MANY",
        "UNKNOWN_FIELD",
        "DUPLICATE",
        "INVALID_EXTERNAL_ID",
        "INVALID_PRICE",
        "INVALID_CURRENCY",
        "INVALID_STOCK",
        "INVALID_TAG",
        "INVALID_CATEGORY",
        "INVALID_ATTRIBUTES",
    ],
    "Why an item of upsertProducts was refused; `index` is the item's position.",
)
ArchiveProductError, ArchiveProductErrorCode = error_type(
    "ArchiveProduct", ["INVALID", "NOT_FOUND"], "Why archiveProduct was refused."
)


@strawberry.input(description="A product to create or update, matched on externalId.")
class ProductUpsertInput:
    external_id: str
    title: str | None = strawberry.field(
        default=strawberry.UNSET, description="Required for a new product."
    )
    description: str | None = strawberry.UNSET
    category_path: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description='Category names, root first, e.g. ["Shoes", "Running"]; missing levels are '
        "created; at most 6 levels; null or [] removes the category.",
    )
    brand: str | None = strawberry.UNSET
    tags: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces all tags when given."
    )
    price: str | None = strawberry.field(
        default=strawberry.UNSET,
        description='Decimal string with at most two places, e.g. "19.90"; required for a new '
        "product.",
    )
    currency: str | None = strawberry.field(
        default=strawberry.UNSET, description="ISO 4217 code; required for a new product."
    )
    stock: int | None = strawberry.field(
        default=strawberry.UNSET, description="Units in stock; null means not tracked."
    )
    active: bool | None = strawberry.UNSET
    attributes: JSON | None = strawberry.UNSET


@strawberry.input
class UpsertProductsInput:
    products: list[ProductUpsertInput] = strawberry.field(description="At most 100.")


@strawberry.type
class UpsertProductsPayload:
    products: list[Product] = strawberry.field(
        description="In input order; empty if any item failed."
    )
    errors: list[UpsertProductsError]  # type: ignore[valid-type]


@strawberry.input(description="The product to archive, by id or by externalId.")
class ArchiveProductInput:
    id: strawberry.ID | None = None
    external_id: str | None = None


@strawberry.type
class ArchiveProductPayload:
    product: Product | None
    errors: list[ArchiveProductError]  # type: ignore[valid-type]


@strawberry.type
class CatalogMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes("catalog:write")],
        description="Create or update up to 100 products by externalId; all-or-nothing.",
    )
    async def upsert_products(
        self, info: Info, input: UpsertProductsInput
    ) -> UpsertProductsPayload:
        items = [provided(p) for p in input.products]
        try:
            rows = await service.upsert_products(info.context.session, items)
        except DomainError as exc:
            return UpsertProductsPayload(
                products=[], errors=to_errors(UpsertProductsError, UpsertProductsErrorCode, exc)
            )
        actor = info.context.actor
        await audit.record_many(
            info.context.session,
            [
                audit.entry(actor, "product.upsert", "Product", row.id, fields=list(item))
                for row, item in zip(rows, items, strict=True)
            ],
        )
        return UpsertProductsPayload(products=rows, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes("catalog:write")],
        description="Hide a product from default lists and deactivate it; repeating is harmless.",
    )
    async def archive_product(
        self, info: Info, input: ArchiveProductInput
    ) -> ArchiveProductPayload:
        try:
            target = await find_product(info, input.id, input.external_id)
            if target is None:
                raise DomainError.one("NOT_FOUND", "no such product", "input", "id")
            row = await service.archive_product(info.context.session, target.id)  # type: ignore[arg-type]
        except DomainError as exc:
            return ArchiveProductPayload(
                product=None, errors=to_errors(ArchiveProductError, ArchiveProductErrorCode, exc)
            )
        await audit.record(
            info.context.session, info.context.actor, "product.archive", "Product", row.id
        )
        return ArchiveProductPayload(product=row, errors=[])  # type: ignore[arg-type]
