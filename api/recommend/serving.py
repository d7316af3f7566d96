"""Serving recommendations: ``recommendations``, ``similarProducts``, ``boughtTogether`` and
``trendingProducts`` (scope recommendations:read; shopper tokens carry it).

The work is in :mod:`domain.recommend.serving` (one process-wide ``RecommendationServer``); here:
input validation with typed errors (nothing served, nothing written), who may ask for whom (a
shopper token only for itself), and the answer as GraphQL types. Products come from the server's
catalogue cache (no query per item); their categories are primed into the request's loader.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.catalog.loaders import category_loader
from api.catalog.types import Money, Product
from api.errors import error_type
from api.execution import fast_resolver
from api.ids import BadId, decode_id, encode_id
from domain.catalog.models import Product as ProductRow
from domain.recommend import serving as domain
from domain.recommend.serving import Answer, Ask, Filter, Item

MAX_FIRST = 50
MAX_IDS = 50  # cart, recent, categories, brands
MAX_ANONYMOUS_ID = 128

RecommendationsError, RecommendationsErrorCode = error_type(
    "Recommendations",
    ["INVALID", "INVALID_ID", "TOO_MANY", "TOO_LONG", "FORBIDDEN"],
    "Why nothing was served (INVALID_ID: an id that does not decode; TOO_MANY: `first` over "
    f"{MAX_FIRST} or a list over {MAX_IDS}; FORBIDDEN: a shopper token asked for someone "
    "else); no impression was written.",
)


@strawberry.enum(description="Where the list is shown; decides how the blend weighs its parts.")
class RecommendationScenario(Enum):
    HOME = "HOME"
    PRODUCT = "PRODUCT"
    CART = "CART"
    EMAIL = "EMAIL"


@strawberry.enum(description="Why an answer is not personal.")
class RecommendationFallback(Enum):
    NO_CONSENT = "NO_CONSENT"
    UNKNOWN_SHOPPER = "UNKNOWN_SHOPPER"
    ANONYMOUS = "ANONYMOUS"
    NO_MODEL = "NO_MODEL"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"


@strawberry.enum(description="What put an item in the list (`reason` says it in words).")
class RecommendationReason(Enum):
    PERSONAL = "PERSONAL"
    VIEWED = "VIEWED"
    SIMILAR = "SIMILAR"
    TOGETHER = "TOGETHER"
    CONTENT = "CONTENT"
    TRENDING = "TRENDING"
    POPULAR = "POPULAR"
    NEW = "NEW"


@strawberry.input(description="Both bounds inclusive, in each product's own currency.")
class PriceRangeInput:
    min: Decimal | None = None
    max: Decimal | None = None


@strawberry.input(description="Narrows any list; a filter that excludes everything returns [].")
class RecommendationFilter:
    categories: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Category ids; a category includes its sub-categories."
    )
    brands: list[str] | None = strawberry.field(
        default=None, description="Brand names (case-insensitive)."
    )
    price_range: PriceRangeInput | None = None
    in_stock_only: bool = strawberry.field(
        default=False,
        description="Only products whose stock is tracked and above zero (out-of-stock products "
        "are never recommended anyway; this also drops untracked ones).",
    )
    exclude_purchased: bool = strawberry.field(
        default=False, description="Leave out what the shopper bought before (personal only)."
    )


@strawberry.input(
    description="Who the list is for: `userId`, `me` (a shopper token's own customer) or "
    "`anonymousId`, at most one; none: non-personal (a shopper token means itself)."
)
class RecommendationsInput:
    user_id: strawberry.ID | None = None
    me: bool = False
    anonymous_id: str | None = strawberry.field(
        default=None, description="A visitor not logged in (server tokens only)."
    )
    scenario: RecommendationScenario = RecommendationScenario.HOME
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="PRODUCT: the product on screen."
    )
    cart_product_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="CART: the cart's products."
    )
    recent_product_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Products seen in this visit, newest first (merged with stored events).",
    )
    first: int = strawberry.field(default=10, description=f"At most {MAX_FIRST}.")
    filter: RecommendationFilter | None = None


@strawberry.type(description="One recommended product and why.")
class RecommendedItem:
    product: Product
    score: float = strawberry.field(description="Higher is better; comparable within a list.")
    reason: str = strawberry.field(description='e.g. "Because you viewed X", "Popular in Y".')
    reason_code: RecommendationReason
    reason_product: Product | None = strawberry.field(
        description="The product the reason names (viewed, similar, bought with), if any."
    )


@strawberry.type(description="A recommendation answer.")
class RecommendationsPayload:
    recommendation_id: str | None = strawberry.field(
        description="Send it with the click's view event and the purchase (trackEvents "
        "recommendationId) for attribution; null when nothing was served."
    )
    model_version: int | None = strawberry.field(
        description="The model version that ranked; null on the database fallback."
    )
    personal: bool = strawberry.field(description="Whether the shopper's own data shaped it.")
    fallback: RecommendationFallback | None = strawberry.field(
        description="Why it is not personal (null when personal, or for item-to-item lists)."
    )
    items: list[RecommendedItem]
    errors: list[RecommendationsError]  # type: ignore[valid-type]


# -- answers as types ----------------------------------------------------------------------------

_CODES = {
    "personal": RecommendationReason.PERSONAL,
    "viewed": RecommendationReason.VIEWED,
    "similar": RecommendationReason.SIMILAR,
    "together": RecommendationReason.TOGETHER,
    "content": RecommendationReason.CONTENT,
    "trending": RecommendationReason.TRENDING,
    "popular": RecommendationReason.POPULAR,
    "new": RecommendationReason.NEW,
}


def reason_text(item: Item) -> str:
    src = item.source.title if item.source is not None else None
    where = item.category.name if item.category is not None else None
    reason = item.reason
    if reason in ("personal", "viewed"):
        return f"Because you viewed {src}" if src else "Recommended for you"
    if reason in ("similar", "content"):
        return f"Similar to {src}" if src else "Similar products"
    if reason == "together":
        return f"Often bought with {src}" if src else "Often bought together"
    if reason == "trending":
        return f"Trending in {where}" if where else "Trending"
    if reason == "popular":
        return f"Popular in {where}" if where else "Popular"
    if reason == "new":
        return f"New in {where}" if where else "New"
    return "Recommended for you"


def payload(info: Info, answer: Answer) -> RecommendationsPayload:
    loader = None
    categories = server(info).catalog.categories
    items = []
    for item in answer.items:
        product = item.product
        category_id = product.category_id
        if category_id is not None:
            node = categories.get(int(category_id))
            if node is not None:
                if loader is None:
                    loader = info.context.loader("category", category_loader)
                loader.prime(category_id, node.row)
        items.append(
            RecommendedItem(
                product=product,  # type: ignore[arg-type]
                score=item_score(item),
                reason=reason_text(item),
                reason_code=reason_code(item),
                reason_product=item.source,  # type: ignore[arg-type]
            )
        )
    return RecommendationsPayload(
        recommendation_id=answer.recommendation_id,
        model_version=answer.model_version,
        personal=answer.personal,
        fallback=fallback_of(answer),
        items=items,
        errors=[],
    )


def item_score(item: Item) -> float:
    return round(item.score, 6)


def reason_code(item: Item) -> RecommendationReason:
    return _CODES.get(item.reason, RecommendationReason.PERSONAL)


def fallback_of(answer: Answer) -> RecommendationFallback | None:
    return None if answer.fallback is None else RecommendationFallback(answer.fallback)


# The fields of ``payload``'s objects read straight from the domain ``Answer`` and its ``Item``s,
# with the same values (api/fastpath.py serialises answers with these, without ``payload``):
# (GraphQL type, field) -> reader.
ANSWER_FIELDS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("RecommendationsPayload", "recommendationId"): operator.attrgetter("recommendation_id"),
    ("RecommendationsPayload", "modelVersion"): operator.attrgetter("model_version"),
    ("RecommendationsPayload", "personal"): operator.attrgetter("personal"),
    ("RecommendationsPayload", "fallback"): fallback_of,
    ("RecommendationsPayload", "items"): operator.attrgetter("items"),
    ("RecommendationsPayload", "errors"): lambda answer: [],  # a ranked answer has none
    ("RecommendedItem", "product"): operator.attrgetter("product"),
    ("RecommendedItem", "score"): item_score,
    ("RecommendedItem", "reason"): lambda item: reason_text(item),  # looked up when called
    ("RecommendedItem", "reasonCode"): reason_code,
    ("RecommendedItem", "reasonProduct"): operator.attrgetter("source"),
}


def domain_category(info: Info, category_id: int) -> Any:
    node = server(info).catalog.categories.get(int(category_id))
    return None if node is None else node.row


def refused(code: str, message: str, *field: str) -> RecommendationsPayload:
    error = RecommendationsError(
        code=RecommendationsErrorCode[code], field=list(field), message=message
    )
    return RecommendationsPayload(
        recommendation_id=None,
        model_version=None,
        personal=False,
        fallback=None,
        items=[],
        errors=[error],
    )


class Refused(Exception):
    def __init__(self, code: str, message: str, *field: str) -> None:
        super().__init__(message)
        self.payload = refused(code, message, *field)


def server(info: Info) -> domain.RecommendationServer:
    found: domain.RecommendationServer = info.context.services.recommend
    return found


# -- validation ----------------------------------------------------------------------------------


# (global id, kind) -> primary key of ids that decoded: storefronts send the same product ids
# again and again (decoding is base64 and a parse, about 4 us); the oldest go first.
_PKS: dict[tuple[str, str], int] = {}
PKS_KEPT = 4096


def _pk(value: str, kind: str, *field: str) -> int:
    key = (value, kind)
    found = _PKS.get(key)
    if found is not None:
        return found
    try:
        pk = decode_id(str(value), kind)[1]
    except BadId as exc:
        raise Refused("INVALID_ID", str(exc), *field) from exc
    if len(_PKS) >= PKS_KEPT:
        del _PKS[next(iter(_PKS))]
    _PKS[key] = pk
    return pk


def _pks(values: list[strawberry.ID] | None, kind: str, *field: str) -> tuple[int, ...]:
    if not values:
        return ()
    if len(values) > MAX_IDS:
        raise Refused("TOO_MANY", f"at most {MAX_IDS} ids", *field)
    return tuple(_pk(v, kind, *field, str(i)) for i, v in enumerate(values))


def _first(first: int, *field: str) -> int:
    if first > MAX_FIRST:
        raise Refused("TOO_MANY", f"first is at most {MAX_FIRST}", *field)
    if first < 1:
        raise Refused("INVALID", "first must be at least 1", *field)
    return first


def _filter(flt: RecommendationFilter | None, *field: str) -> Filter:
    if flt is None:
        return Filter()
    categories = None
    if flt.categories is not None:
        categories = _pks(flt.categories, "Category", *field, "categories")
    brands = None
    if flt.brands is not None:
        if len(flt.brands) > MAX_IDS:
            raise Refused("TOO_MANY", f"at most {MAX_IDS} brands", *field, "brands")
        if any(len(b) > 100 for b in flt.brands):
            raise Refused("TOO_LONG", "a brand is at most 100 characters", *field, "brands")
        brands = tuple(flt.brands)
    low = high = None
    if flt.price_range is not None:
        low, high = flt.price_range.min, flt.price_range.max
        for name, value in (("min", low), ("max", high)):
            if value is not None and not value.is_finite():
                raise Refused("INVALID", "prices are finite numbers", *field, "priceRange", name)
        if low is not None and high is not None and low > high:
            raise Refused("INVALID", "min is above max", *field, "priceRange")
    return Filter(
        categories=categories,
        brands=brands,
        price_min=low,
        price_max=high,
        in_stock_only=flt.in_stock_only,
        exclude_purchased=flt.exclude_purchased,
    )


def _token_customer(info: Info) -> int | None:
    principal = info.context.principal
    return None if principal is None else principal.customer_id


def _who(info: Info, data: RecommendationsInput) -> tuple[int | None, str | None]:
    """(customer id, anonymous id) the answer is for; a shopper token only for itself."""
    mine = _token_customer(info)
    given = sum((data.user_id is not None, bool(data.me), data.anonymous_id is not None))
    if given > 1:
        raise Refused("INVALID", "give at most one of userId, me and anonymousId", "input")
    if data.me:
        if mine is None:
            raise Refused("FORBIDDEN", "`me` needs a shopper token", "input", "me")
        return mine, None
    if data.user_id is not None:
        pk = _pk(data.user_id, "User", "input", "userId")
        if mine is not None and pk != mine:
            raise Refused(
                "FORBIDDEN",
                "a shopper token may only ask for its own recommendations",
                "input",
                "userId",
            )
        return pk, None
    if data.anonymous_id is not None:
        if mine is not None:
            raise Refused(
                "FORBIDDEN", "a shopper token asks for itself (`me`)", "input", "anonymousId"
            )
        if not data.anonymous_id or len(data.anonymous_id) > MAX_ANONYMOUS_ID:
            raise Refused(
                "TOO_LONG",
                f"anonymousId is 1-{MAX_ANONYMOUS_ID} characters",
                "input",
                "anonymousId",
            )
        return None, data.anonymous_id
    return mine, None


# The request scope's key under which api/fastpath.py hands an answer it ranked (and could not
# serialise itself) to this path: the same ask is answered once, with one impression.
PRECOMPUTED = "precis.recommendations.answer"


def precomputed(info: Info, ask: Ask) -> Answer | None:
    """The answer the fast path already ranked for exactly this ask, if it handed one over."""
    scope = getattr(getattr(info.context, "request", None), "scope", None)
    found = scope.pop(PRECOMPUTED, None) if scope else None
    if found is None or found[0] != ask:
        return None
    answer: Answer = found[1]
    return answer


async def _serve(info: Info, ask: Ask) -> RecommendationsPayload:
    answer = precomputed(info, ask)
    if answer is None:
        # its own autocommit read, not the request's session
        answer = await server(info).answer(ask)
    return payload(info, answer)


def ask_for(info: Any, input: RecommendationsInput) -> Ask:
    """The validated ask of a ``recommendations`` input; raises ``Refused`` (nothing served)."""
    first = _first(input.first, "input", "first")
    customer, anonymous = _who(info, input)
    product = (
        None if input.product_id is None else _pk(input.product_id, "Product", "input", "productId")
    )
    cart = _pks(input.cart_product_ids, "Product", "input", "cartProductIds")
    recent = _pks(input.recent_product_ids, "Product", "input", "recentProductIds")
    flt = _filter(input.filter, "input", "filter")
    return Ask(
        surface="recommendations",
        scenario=input.scenario.value,
        customer_id=customer,
        anonymous_id=anonymous,
        product=product,
        cart=cart,
        recent=recent,
        first=first,
        filter=flt,
    )


async def recommendations(info: Any, input: RecommendationsInput) -> RecommendationsPayload:
    """The ``recommendations`` field (also reached by the fast path below)."""
    try:
        ask = ask_for(info, input)
    except Refused as exc:
        return exc.payload
    return await _serve(info, ask)


SCOPE = "recommendations:read"


@strawberry.type
class ServingQueries:
    @strawberry.field(
        permission_classes=[RequireScopes(SCOPE)],
        description="Products for a shopper (or a visitor), with score, reason and a "
        "recommendationId; non-personal without personalization consent, for unknown or erased "
        "shoppers, and when no model serves (then `fallback` says why).",
    )
    async def recommendations(
        self, info: Info, input: RecommendationsInput
    ) -> RecommendationsPayload:
        return await recommendations(info, input)

    @strawberry.field(
        permission_classes=[RequireScopes(SCOPE)],
        description="Products similar to one (behaviour and text; a product the model has not "
        "seen gets neighbours by its text).",
    )
    async def similar_products(
        self,
        info: Info,
        product_id: strawberry.ID,
        first: int = 10,
        filter: RecommendationFilter | None = None,
    ) -> RecommendationsPayload:
        try:
            k = _first(first, "first")
            pk = _pk(product_id, "Product", "productId")
            flt = _filter(filter, "filter")
        except Refused as exc:
            return exc.payload
        ask = Ask(
            surface="similar",
            scenario=None,
            customer_id=_token_customer(info),
            product=pk,
            first=k,
            filter=flt,
        )
        return await _serve(info, ask)

    @strawberry.field(
        permission_classes=[RequireScopes(SCOPE)],
        description="Products often bought together with these (order baskets, by lift).",
    )
    async def bought_together(
        self,
        info: Info,
        product_ids: list[strawberry.ID],
        first: int = 10,
        filter: RecommendationFilter | None = None,
    ) -> RecommendationsPayload:
        try:
            k = _first(first, "first")
            pks = _pks(product_ids, "Product", "productIds")
            flt = _filter(filter, "filter")
        except Refused as exc:
            return exc.payload
        ask = Ask(
            surface="together",
            scenario=None,
            customer_id=_token_customer(info),
            cart=pks,
            first=k,
            filter=flt,
        )
        return await _serve(info, ask)

    @strawberry.field(
        permission_classes=[RequireScopes(SCOPE)],
        description="Trending products, overall or in a category (sub-categories included).",
    )
    async def trending_products(
        self,
        info: Info,
        category: strawberry.ID | None = None,
        first: int = 10,
        filter: RecommendationFilter | None = None,
    ) -> RecommendationsPayload:
        try:
            k = _first(first, "first")
            cat = None if category is None else _pk(category, "Category", "category")
            flt = _filter(filter, "filter")
        except Refused as exc:
            return exc.payload
        ask = Ask(
            surface="trending",
            scenario=None,
            customer_id=_token_customer(info),
            category=cat,
            first=k,
            filter=flt,
        )
        return await _serve(info, ask)


def input_of(data: dict[str, Any]) -> RecommendationsInput:
    """``RecommendationsInput`` from graphql-core's coerced value (names as in the schema,
    defaults filled in), without Strawberry's per-field argument conversion (a millisecond per
    request on this machine, a third of the field's cost)."""
    flt = data.get("filter")
    built = None
    if flt is not None:
        price = flt.get("priceRange")
        built = RecommendationFilter(
            categories=flt.get("categories"),
            brands=flt.get("brands"),
            price_range=None
            if price is None
            else PriceRangeInput(min=price.get("min"), max=price.get("max")),
            in_stock_only=bool(flt.get("inStockOnly")),
            exclude_purchased=bool(flt.get("excludePurchased")),
        )
    scenario = data.get("scenario") or RecommendationScenario.HOME
    if not isinstance(scenario, RecommendationScenario):
        scenario = RecommendationScenario(getattr(scenario, "value", scenario))
    return RecommendationsInput(
        user_id=data.get("userId"),
        me=bool(data.get("me")),
        anonymous_id=data.get("anonymousId"),
        scenario=scenario,
        product_id=data.get("productId"),
        cart_product_ids=data.get("cartProductIds"),
        recent_product_ids=data.get("recentProductIds"),
        first=data.get("first", 10),
        filter=built,
    )


def install_fast_path(schema: Any) -> None:
    """Resolve ``Query.recommendations`` from graphql-core's coerced input (as trackEvents
    does): the same permission classes, then :func:`recommendations`."""
    from strawberry.permission import PermissionExtension
    from strawberry.schema.schema_converter import GraphQLCoreConverter
    from strawberry.types.field import StrawberryField

    field = schema.query_type.fields["recommendations"]
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or any(
        not isinstance(e, PermissionExtension) for e in definition.extensions
    ):
        raise RuntimeError(
            "recommendations is not the plain Strawberry field the fast path expects"
        )
    permissions = [cls() for cls in definition.permission_classes]

    async def resolve(root: Any, info: Any, input: dict[str, Any]) -> RecommendationsPayload:
        for permission in permissions:
            if not permission.has_permission(root, info):  # ours raise UNAUTHENTICATED/FORBIDDEN
                permission.on_unauthorized()
        return await recommendations(info, input_of(input))

    field.resolve = resolve


@fast_resolver
def product_global_id(root: Any, info: Any = None) -> str:
    """``Product.id`` without Strawberry's per-call wrapping (lists of recommended products)."""
    return encode_id("Product", root.id)


@fast_resolver
def product_in_stock(root: Any, info: Any = None) -> bool:
    return bool(root.stock is None or root.stock > 0)


@fast_resolver
def product_price(root: Any, info: Any = None) -> Money:
    """``Product.price`` without Strawberry's per-call wrapping (same value)."""
    return Money.of(root.price, root.currency)


@fast_resolver
def category_global_id(root: Any, info: Any = None) -> str:
    """``Category.id`` without Strawberry's per-call wrapping (categories of recommended products)."""
    return encode_id("Category", root.id)


async def product_category(root: Any, info: Any) -> Any:
    """``Product.category`` without Strawberry's per-call wrapping (same loader, primed for
    recommended products)."""
    if root.category_id is None:
        return None
    return await info.context.loader("category", category_loader).load(root.category_id)


FAST_RESOLVERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("Product", "id"): product_global_id,
    ("Product", "inStock"): product_in_stock,
    ("Product", "price"): product_price,
    ("Product", "category"): product_category,
    ("Category", "id"): category_global_id,
}

__all__ = ["FAST_RESOLVERS", "ProductRow", "ServingQueries"]
