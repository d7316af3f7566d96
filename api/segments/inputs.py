"""The segment condition language as GraphQL input types, and their conversion to the definition
JSON that is stored and compiled (docs/segments.md, "Condition language").

The JSON keys are the GraphQL field names, so an error path in the JSON is the path in the input.
Enums are UPPER_CASE in GraphQL and lowercase strings (camelCase field names for the field enums)
in the JSON. Global ids are decoded to internal integers here; a product's external id or a
category's path is looked up and stored as ``productId`` / ``categoryId``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from api.consents.types import ConsentPurpose
from api.ids import BadId, decode_id, encode_id
from domain.catalog import repository as catalog
from domain.catalog.repository import PATH_SEPARATOR
from domain.catalog.service import category_path
from domain.errors import DomainError, FieldError
from domain.segments import service as segments
from domain.segments.definition import MAX_DEPTH
from domain.validation import Invalid

# Nesting past this many levels of and/or/not is not converted (an empty node stands in): the
# parser reports TOO_DEEP at MAX_DEPTH and never looks further down.
CONVERSION_DEPTH = MAX_DEPTH + 2
# A segment given by key has this id until the key is looked up (no segment has it).
UNRESOLVED = 2**31 - 1


@strawberry.enum(description="Comparison of a condition; which ones apply depends on the type.")
class ConditionOperator(Enum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    IS_SET = "is_set"
    IS_NOT_SET = "is_not_set"
    WITHIN_LAST_DAYS = "within_last_days"
    MORE_THAN_DAYS_AGO = "more_than_days_ago"


@strawberry.enum(
    description="A built-in user field a condition can test (email and phone are "
    "encrypted and cannot be segmented on)."
)
class UserAttributeField(Enum):
    EXTERNAL_ID = "externalId"
    COUNTRY = "country"
    REGION = "region"
    LOCALE = "locale"
    TIMEZONE = "timezone"
    GENDER = "gender"
    OCCUPATION = "occupation"
    FIRST_NAME = "firstName"
    LAST_NAME = "lastName"
    BIRTH_DATE = "birthDate"
    CREATED_AT = "createdAt"


@strawberry.enum(description="A computed profile value a condition can test.")
class ProfileField(Enum):
    R_SCORE = "rScore"
    F_SCORE = "fScore"
    M_SCORE = "mScore"
    RFM_GROUP = "rfmGroup"
    LIFECYCLE_STAGE = "lifecycleStage"
    SPEND_LEVEL = "spendLevel"
    CLV_HISTORICAL = "clvHistorical"
    CLV_PREDICTED = "clvPredicted"
    REVENUE = "revenue"
    AVERAGE_ORDER_VALUE = "averageOrderValue"
    ORDERS_COUNT = "ordersCount"
    EVENT_COUNT = "eventCount"
    RECENCY_DAYS = "recencyDays"
    PROBABILITY_ALIVE = "probabilityAlive"
    LAST_SEEN_AT = "lastSeenAt"
    FIRST_SEEN_AT = "firstSeenAt"
    LAST_ORDER_AT = "lastOrderAt"
    FIRST_ORDER_AT = "firstOrderAt"


@strawberry.enum(description="How the listed tags must match.")
class TagMatch(Enum):
    ANY = "any"
    ALL = "all"
    NONE = "none"


@strawberry.enum(description="Which of the shopper's matching events the window applies to.")
class EventOccurrence(Enum):
    ANY = "any"
    FIRST = "first"
    LAST = "last"


@strawberry.input(
    description="A user field or custom attribute compared with a value. Give `field` (built-in) "
    "or `key` (custom attribute; a dotted path a.b reads nested JSON). `value` is a JSON scalar "
    "(a number, string or boolean; a date as an ISO string); `values` for IN, NOT_IN and BETWEEN "
    "([low, high], inclusive)."
)
class AttributeCondition:
    field: UserAttributeField | None = strawberry.UNSET
    key: str | None = strawberry.UNSET
    op: ConditionOperator
    value: JSON | None = strawberry.UNSET
    values: list[JSON] | None = strawberry.UNSET


@strawberry.input(description="The shopper's tags.")
class TagCondition:
    tags: list[str] = strawberry.field(description="At most 1000 tags.")
    match: TagMatch = TagMatch.ANY


@strawberry.input(
    description="The shopper's current consent for a purpose (the latest record wins; no record "
    "counts as not granted)."
)
class ConsentCondition:
    purpose: ConsentPurpose
    granted: bool = True


@strawberry.input(
    description="Membership of another segment, given by `segmentId` or by `segmentKey` (a "
    'built-in segment\'s key, e.g. "builtin:at_risk"): a dynamic one is evaluated live, a '
    "static one by its member list. Cycles are refused (CYCLE)."
)
class SegmentReference:
    segment_id: strawberry.ID | None = strawberry.UNSET
    segment_key: str | None = strawberry.field(
        default=strawberry.UNSET, description="Stored as the segment's id."
    )
    member: bool = True


@strawberry.input(
    description="A computed profile value (RFM, lifecycle, CLV, spend, recency). A shopper "
    "without a profile matches no profile condition. Enum values (rfmGroup, lifecycleStage, "
    'spendLevel) are lowercase strings, e.g. "at_risk".'
)
class ProfileCondition:
    field: ProfileField
    op: ConditionOperator
    value: JSON | None = strawberry.UNSET
    values: list[JSON] | None = strawberry.UNSET


@strawberry.input(description="Bounds on a number of events or orders; both inclusive.")
class CountRange:
    min: int | None = strawberry.UNSET
    max: int | None = strawberry.UNSET


@strawberry.input(description='Bounds on an amount, inclusive ("200.00").')
class AmountRange:
    min: Decimal | None = strawberry.UNSET
    max: Decimal | None = strawberry.UNSET


@strawberry.input(
    description="Bounds on the sum of the matching events' values (inclusive); "
    "with `currency`, only events in that currency count."
)
class EventValueRange:
    min: Decimal | None = strawberry.UNSET
    max: Decimal | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET


@strawberry.input(
    description="A time range. Lower bound: at most one of lastDays, lastHours, from; upper "
    "bound: at most one of olderThanDays, olderThanHours, to. Relative bounds are evaluated when "
    "the segment is evaluated. Empty or inverted ranges are IMPOSSIBLE_WINDOW."
)
class TimeWindow:
    last_days: int | None = strawberry.UNSET
    last_hours: int | None = strawberry.UNSET
    from_: datetime | None = strawberry.field(default=strawberry.UNSET, name="from")
    to: datetime | None = strawberry.UNSET
    older_than_days: int | None = strawberry.UNSET
    older_than_hours: int | None = strawberry.UNSET


@strawberry.input(
    description="Did (or did not) do an event: of a type, optionally for a product, a category "
    "(with its sub-categories) or a brand, with count or value bounds, within a window. "
    "occurrence FIRST / LAST: the shopper's first (last) matching event ever falls inside the "
    "window (no count or value bounds then)."
)
class BehaviorCondition:
    did: bool = True
    event_type: str = strawberry.field(
        description='A built-in type (view, add_to_cart, purchase, message_open, ...) or "custom:<name>".'
    )
    product_id: strawberry.ID | None = strawberry.UNSET
    product_external_id: str | None = strawberry.field(
        default=strawberry.UNSET, description="The store's product id, instead of productId."
    )
    category_id: strawberry.ID | None = strawberry.UNSET
    category_path: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description='A category by its names, root first (["Shoes", "Running"]), as in '
        "upsertProducts; instead of categoryId.",
    )
    brand: str | None = strawberry.UNSET
    count: CountRange | None = strawberry.field(
        default=strawberry.UNSET, description="Default: at least one."
    )
    value: EventValueRange | None = strawberry.UNSET
    window: TimeWindow | None = strawberry.UNSET
    occurrence: EventOccurrence = EventOccurrence.ANY


@strawberry.input(
    description="Did (or did not) place orders, with count and value bounds, within a window. "
    "Cancelled and refunded orders do not count unless includeRefunded."
)
class OrderCondition:
    did: bool = True
    count: CountRange | None = strawberry.UNSET
    order_value: AmountRange | None = strawberry.field(
        default=strawberry.UNSET, description="Every counted order's total must be inside."
    )
    total_value: AmountRange | None = strawberry.field(
        default=strawberry.UNSET, description="The sum of the counted orders' totals."
    )
    currency: str | None = strawberry.UNSET
    coupon_code: str | None = strawberry.UNSET
    window: TimeWindow | None = strawberry.UNSET
    include_refunded: bool = False


@strawberry.input(
    one_of=True,
    description="One node of a segment definition: exactly one of the fields. `and`/`or` take "
    "1 or more conditions, `not` one. Limits: 12 levels of and/or/not (counting referenced "
    "segments), 300 nodes, 1000 values per list, 256 characters per value.",
)
class SegmentCondition:
    and_: list[SegmentCondition] | None = strawberry.field(default=strawberry.UNSET, name="and")
    or_: list[SegmentCondition] | None = strawberry.field(default=strawberry.UNSET, name="or")
    not_: SegmentCondition | None = strawberry.field(default=strawberry.UNSET, name="not")
    attribute: AttributeCondition | None = strawberry.UNSET
    tag: TagCondition | None = strawberry.UNSET
    consent: ConsentCondition | None = strawberry.UNSET
    segment: SegmentReference | None = strawberry.UNSET
    profile: ProfileCondition | None = strawberry.UNSET
    behavior: BehaviorCondition | None = strawberry.UNSET
    order: OrderCondition | None = strawberry.UNSET


# Conversion -------------------------------------------------------------------------------------

# Python attribute -> JSON key where they differ beyond snake_case -> camelCase.
_RENAMED = {"and_": "and", "or_": "or", "not_": "not", "from_": "from"}


def _camel(name: str) -> str:
    if name in _RENAMED:
        return _RENAMED[name]
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass
class _Lookups:
    """External ids, category paths and segment keys to resolve, with the JSON node and path of
    each."""

    products: list[tuple[str, dict[str, Any], tuple[str, ...]]] = field(default_factory=list)
    categories: list[tuple[str, dict[str, Any], tuple[str, ...]]] = field(default_factory=list)
    segments: list[tuple[str, dict[str, Any], tuple[str, ...]]] = field(default_factory=list)


@dataclass
class _Converter:
    errors: list[FieldError] = field(default_factory=list)
    lookups: _Lookups = field(default_factory=_Lookups)

    def error(self, code: str, message: str, path: tuple[str, ...]) -> None:
        self.errors.append(FieldError(code, message, path))

    def node(self, cond: SegmentCondition, path: tuple[str, ...], depth: int) -> dict[str, Any]:
        if depth > CONVERSION_DEPTH:
            return {}
        out: dict[str, Any] = {}
        for key in ("and_", "or_"):
            children = getattr(cond, key)
            if children is not strawberry.UNSET and children is not None:
                name = _camel(key)
                out[name] = [
                    self.node(c, (*path, name, str(i)), depth + 1) for i, c in enumerate(children)
                ]
        if cond.not_ is not strawberry.UNSET and cond.not_ is not None:
            out["not"] = self.node(cond.not_, (*path, "not"), depth + 1)
        for key in ("attribute", "tag", "consent", "profile", "order"):
            leaf = getattr(cond, key)
            if leaf is not strawberry.UNSET and leaf is not None:
                out[key] = self.plain(leaf)
        if cond.segment is not strawberry.UNSET and cond.segment is not None:
            out["segment"] = self.reference(cond.segment, (*path, "segment"))
        if cond.behavior is not strawberry.UNSET and cond.behavior is not None:
            out["behavior"] = self.behavior(cond.behavior, (*path, "behavior"))
        return out

    def reference(self, ref: SegmentReference, path: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"member": ref.member}
        given_id = ref.segment_id is not strawberry.UNSET and ref.segment_id is not None
        given_key = ref.segment_key is not strawberry.UNSET and ref.segment_key is not None
        if given_id == given_key:
            self.error("INVALID", "give segmentId or segmentKey (one of them)", path)
        elif given_id:
            out["segmentId"] = self.pk(str(ref.segment_id), "Segment", (*path, "segmentId"))
        else:
            out["segmentId"] = UNRESOLVED  # replaced once looked up, after the structure check
            self.lookups.segments.append((str(ref.segment_key), out, (*path, "segmentKey")))
        return out

    def behavior(self, b: BehaviorCondition, path: tuple[str, ...]) -> dict[str, Any]:
        out = self.plain(
            b, skip=("product_id", "category_id", "product_external_id", "category_path")
        )
        for attr, type_name in (("product_id", "Product"), ("category_id", "Category")):
            value = getattr(b, attr)
            if value is not strawberry.UNSET and value is not None:
                out[_camel(attr)] = self.pk(value, type_name, (*path, _camel(attr)))
        if b.product_external_id is not strawberry.UNSET and b.product_external_id is not None:
            self.both(out, "productId", "productExternalId", path)
            self.lookups.products.append((b.product_external_id, out, (*path, "productExternalId")))
        if b.category_path is not strawberry.UNSET and b.category_path is not None:
            self.both(out, "categoryId", "categoryPath", path)
            try:
                names = category_path(b.category_path)
            except Invalid as exc:
                self.error("INVALID_VALUE", str(exc), (*path, "categoryPath"))
            else:
                joined = PATH_SEPARATOR.join(names)
                self.lookups.categories.append((joined, out, (*path, "categoryPath")))
        return out

    def both(self, out: dict[str, Any], id_key: str, other: str, path: tuple[str, ...]) -> None:
        if id_key in out:
            self.error("INVALID", f"give {id_key} or {other}, not both", (*path, other))

    def pk(self, value: str, type_name: str, path: tuple[str, ...]) -> int:
        try:
            return decode_id(str(value), type_name)[1]
        except BadId as exc:
            self.error("INVALID_VALUE", str(exc), path)
            return 0

    def plain(self, obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """An input object (and the input objects in it) as JSON: fields not sent are left out,
        enums become their values, datetimes ISO strings."""
        out: dict[str, Any] = {}
        for name, value in vars(obj).items():
            if name in skip or value is strawberry.UNSET or value is None:
                continue
            out[_camel(name)] = self.value(value)
        return out

    def value(self, value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        if hasattr(value, "__strawberry_definition__"):
            return self.plain(value)
        return value


def to_definition(cond: SegmentCondition, path: tuple[str, ...]) -> tuple[dict[str, Any], _Lookups]:
    """The definition JSON of ``cond`` (ids decoded); raises ``DomainError`` with every bad id."""
    converter = _Converter()
    doc = converter.node(cond, path, 0)
    if converter.errors:
        raise DomainError(converter.errors)
    return doc, converter.lookups


async def resolve_definition(
    session: AsyncSession,
    cond: SegmentCondition,
    path: tuple[str, ...],
    *,
    check: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, Any]:
    """``to_definition``, then ``check`` (the structure and limits, before any lookup), then the
    product external ids and category paths looked up (NOT_FOUND for an unknown one). Raises
    ``DomainError`` with every error found."""
    doc, lookups = to_definition(cond, path)
    if check is not None:
        check(doc)
    errors: list[FieldError] = []
    if lookups.products:
        found = await catalog.by_external_ids(
            session, sorted({x for x, _, _ in lookups.products if "\x00" not in x})
        )
        for external_id, node, at in lookups.products:
            product = found.get(external_id)
            if product is None or product.id is None:
                errors.append(FieldError("NOT_FOUND", "no product with this external id", at))
            else:
                node["productId"] = product.id
    if lookups.categories:
        paths = await catalog.categories_by_paths(
            session, sorted({x for x, _, _ in lookups.categories if "\x00" not in x})
        )
        for category_path, node, at in lookups.categories:
            category = paths.get(category_path)
            if category is None or category.id is None:
                errors.append(FieldError("NOT_FOUND", "no category with this path", at))
            else:
                node["categoryId"] = category.id
    for key, node, at in lookups.segments:
        segment = None if "\x00" in key else await segments.get_by_key(session, key[:64])
        if segment is None or segment.id is None or segment.status != "active":
            errors.append(FieldError("NOT_FOUND", "no active segment with this key", at))
        else:
            node["segmentId"] = segment.id
    if errors:
        raise DomainError(errors)
    return doc


# The other way: stored JSON -> the input form (UPPER_CASE enums, global ids) -------------------

_ENUMS: dict[str, dict[str, type[Enum]]] = {
    "attribute": {"field": UserAttributeField, "op": ConditionOperator},
    "profile": {"field": ProfileField, "op": ConditionOperator},
    "tag": {"match": TagMatch},
    "consent": {"purpose": ConsentPurpose},
    "behavior": {"occurrence": EventOccurrence},
}
_IDS = {"segmentId": "Segment", "productId": "Product", "categoryId": "Category"}


def _enum_name(enum: type[Enum], value: Any) -> Any:
    for member in enum:
        if member.value == value:
            return member.name
    return value


def to_input(doc: Any) -> Any:
    """A stored definition in the ``SegmentCondition`` input form: what a client can send back
    as is (enum names instead of values, global ids instead of internal ones)."""
    if not isinstance(doc, dict):
        return doc
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("and", "or") and isinstance(value, list):
            out[key] = [to_input(child) for child in value]
        elif key == "not":
            out[key] = to_input(value)
        elif isinstance(value, dict):
            enums = _ENUMS.get(key, {})
            leaf: dict[str, Any] = {}
            for name, item in value.items():
                if name in enums:
                    leaf[name] = _enum_name(enums[name], item)
                elif name in _IDS and isinstance(item, int):
                    leaf[name] = encode_id(_IDS[name], item)
                else:
                    leaf[name] = item
            out[key] = leaf
        else:
            out[key] = value
    return out
