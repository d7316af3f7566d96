"""Catalog queries: thin resolvers over the catalog repository."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.catalog.loaders import category_loader, children_loader, product_loader
from api.catalog.types import Category, Product
from api.ids import BadId, decode_id
from api.relay import Connection, check_first, connection, parse_after
from domain import validation as v
from domain.catalog import repository
from domain.catalog.models import Category as CategoryRow
from domain.catalog.models import Product as ProductRow


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


@strawberry.input(description="Filters on products; all given filters must match.")
class ProductFilter:
    category: strawberry.ID | None = strawberry.field(
        default=None, description="A Category id; matches its sub-categories too."
    )
    brand: str | None = strawberry.field(default=None, description="Exact brand.")
    tag: str | None = None
    in_stock: bool | None = strawberry.field(
        default=None, description="True: stock untracked or above zero; false: sold out."
    )
    min_price: str | None = strawberry.field(default=None, description='Inclusive, e.g. "10.00".')
    max_price: str | None = strawberry.field(default=None, description="Inclusive.")
    include_archived: bool = strawberry.field(
        default=False, description="Also list archived products."
    )


def product_pk(id: str) -> int:
    try:
        return decode_id(id, "Product")[1]
    except BadId as exc:
        raise bad_input(str(exc)) from exc


def category_pk(id: str) -> int:
    try:
        return decode_id(id, "Category")[1]
    except BadId as exc:
        raise bad_input(str(exc)) from exc


async def find_product(
    info: Info, id: strawberry.ID | None, external_id: str | None
) -> ProductRow | None:
    if (id is None) == (external_id is None):
        raise bad_input("give exactly one of `id` and `externalId`")
    if id is not None:
        loaded: ProductRow | None = await info.context.loader("product", product_loader).load(
            product_pk(id)
        )
        return loaded
    found = await repository.by_external_ids(info.context.session, [str(external_id)])
    return found.get(str(external_id))


def _price(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return v.money(value)
    except v.Invalid as exc:
        raise bad_input(f"{name}: {exc}") from exc


def _filter(flt: ProductFilter | None) -> repository.ProductFilter:
    if flt is None:
        return repository.ProductFilter()
    return repository.ProductFilter(
        category_id=category_pk(flt.category) if flt.category is not None else None,
        brand=flt.brand,
        tag=flt.tag,
        in_stock=flt.in_stock,
        min_price=_price(flt.min_price, "minPrice"),
        max_price=_price(flt.max_price, "maxPrice"),
        include_archived=flt.include_archived,
    )


@strawberry.type
class CatalogQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("catalog:read")],
        description="One product by id or by the store's external id (archived ones too).",
    )
    async def product(
        self, info: Info, id: strawberry.ID | None = None, external_id: str | None = None
    ) -> Product | None:
        return await find_product(info, id, external_id)  # type: ignore[return-value]

    @strawberry.field(
        permission_classes=[RequireScopes("catalog:read")],
        description="Products in creation order, filtered; archived ones only on request.",
    )
    async def products(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: ProductFilter | None = None,
    ) -> Connection[Product]:
        check_first(first)
        cursor = parse_after(after)
        flt = _filter(filter)
        session = info.context.session
        rows = await repository.page(session, flt, first=first, after=cursor)
        return connection(
            rows, first=first, after=cursor, count=lambda: repository.count(session, flt)
        )

    @strawberry.field(
        permission_classes=[RequireScopes("catalog:read")],
        description="Every category as a flat list ordered by path; build the tree from "
        "`parent` or `children`.",
    )
    async def categories(self, info: Info) -> list[Category]:
        rows = await repository.categories(info.context.session)
        _prime(info, rows)
        return rows  # type: ignore[return-value]


def _prime(info: Info, rows: list[CategoryRow]) -> None:
    """The whole tree is at hand: answer `parent` and `children` without another query."""
    children: dict[int, list[CategoryRow]] = {r.id: [] for r in rows if r.id is not None}
    for row in rows:
        if row.parent_id in children:
            children[row.parent_id].append(row)
    info.context.loader("category", category_loader).prime_many({r.id: r for r in rows})
    info.context.loader("category_children", children_loader).prime_many(children)
