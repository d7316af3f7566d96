"""The segment condition language: parse (structure, types, limits) and validate (references).

A definition is JSON whose keys are the GraphQL input field names, so an error path in the JSON is
the path in the GraphQL input (docs/segments.md, "Condition language"). ``parse`` finds every
structural error at once; ``validate`` adds the checks that need the database (products, categories
and referenced segments exist; no cycles) and returns a ``Resolved`` the compiler needs nothing else
for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.catalog.models import Category, Product
from domain.consents.models import PURPOSES
from domain.errors import DomainError, FieldError
from domain.events.models import BUILTIN_TYPES, CUSTOM_TYPE
from domain.profiles.models import LIFECYCLE_STAGES, SPEND_LEVELS
from domain.segments import rfm
from domain.segments.models import Segment
from domain.validation import TAG

# Documented limits (docs/segments.md).
MAX_DEPTH = 12  # nesting of and/or/not, counting the trees of referenced dynamic segments
MAX_NODES = 300  # nodes of one definition
MAX_INLINED = 3000  # nodes with the trees of referenced dynamic segments inlined
MAX_LIST = 1000  # values of an "in"/"not_in" list, or tags of a tag condition
MAX_STRING = 256  # characters of one string value
MAX_DAYS = 3650  # the furthest a relative bound may reach back
MAX_INT = 2**31 - 1
MAX_DECIMAL = Decimal("1e12")

Path = tuple[str, ...]

STRING_OPS = frozenset(
    {"eq", "ne", "in", "not_in", "contains", "starts_with", "is_set", "is_not_set"}
)
NUMBER_OPS = frozenset(
    {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"}
)
DATE_OPS = frozenset(
    {
        "eq",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "within_last_days",
        "more_than_days_ago",
        "is_set",
        "is_not_set",
    }
)
ENUM_OPS = frozenset({"eq", "ne", "in", "not_in"})
ALL_OPS = STRING_OPS | NUMBER_OPS | DATE_OPS
BOOL_OPS = frozenset({"eq", "ne", "is_set", "is_not_set"})
CUSTOM_OPS = STRING_OPS | NUMBER_OPS

# Value kinds: str, country, int, score (int 1..5), decimal, float, date, datetime, enum.
ATTRIBUTE_FIELDS: dict[str, tuple[str, str]] = {
    "externalId": ("external_id", "str"),
    "country": ("country", "country"),
    "region": ("region", "str"),
    "locale": ("locale", "str"),
    "timezone": ("timezone", "str"),
    "gender": ("gender", "str"),
    "occupation": ("occupation", "str"),
    "firstName": ("first_name", "str"),
    "lastName": ("last_name", "str"),
    "birthDate": ("birth_date", "date"),
    "createdAt": ("created_at", "datetime"),
}
ENCRYPTED_FIELDS = frozenset({"email", "phone"})

PROFILE_FIELDS: dict[str, tuple[str, str]] = {
    "rScore": ("r_score", "score"),
    "fScore": ("f_score", "score"),
    "mScore": ("m_score", "score"),
    "rfmGroup": ("rfm_group", "enum"),
    "lifecycleStage": ("lifecycle_stage", "enum"),
    "spendLevel": ("spend_level", "enum"),
    "clvHistorical": ("clv_historical", "decimal"),
    "clvPredicted": ("clv_predicted", "decimal"),
    "revenue": ("revenue", "decimal"),
    "averageOrderValue": ("average_order_value", "decimal"),
    "ordersCount": ("orders_count", "int"),
    "eventCount": ("event_count", "int"),
    "recencyDays": ("recency_days", "int"),
    "probabilityAlive": ("probability_alive", "float"),
    "lastSeenAt": ("last_seen_at", "datetime"),
    "firstSeenAt": ("first_seen_at", "datetime"),
    "lastOrderAt": ("last_order_at", "datetime"),
    "firstOrderAt": ("first_order_at", "datetime"),
}
ENUMS: dict[str, tuple[str, ...]] = {
    "rfmGroup": tuple(rfm.GROUPS),
    "lifecycleStage": LIFECYCLE_STAGES,
    "spendLevel": SPEND_LEVELS,
}
OPS_BY_KIND = {
    "str": STRING_OPS,
    "country": STRING_OPS,
    "int": NUMBER_OPS,
    "score": NUMBER_OPS,
    "decimal": NUMBER_OPS,
    "float": NUMBER_OPS,
    "date": DATE_OPS,
    "datetime": DATE_OPS,
    "enum": ENUM_OPS,
}
# Custom attribute keys: a dotted path of plain names (each part is bound, never spliced into SQL).
CUSTOM_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
NODE_KINDS = (
    "and",
    "or",
    "not",
    "attribute",
    "tag",
    "consent",
    "segment",
    "profile",
    "behavior",
    "order",
)


# ---------------------------------------------------------------------------------------------
# The tree


@dataclass(frozen=True)
class Window:
    last_days: int | None = None
    last_hours: int | None = None
    from_: datetime | None = None
    to: datetime | None = None
    older_than_days: int | None = None
    older_than_hours: int | None = None

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """[lower, upper): the lower bound is inclusive, the upper exclusive."""
        lo: datetime | None = self.from_
        if self.last_days is not None:
            lo = now - timedelta(days=self.last_days)
        elif self.last_hours is not None:
            lo = now - timedelta(hours=self.last_hours)
        hi: datetime | None = self.to
        if self.older_than_days is not None:
            hi = now - timedelta(days=self.older_than_days)
        elif self.older_than_hours is not None:
            hi = now - timedelta(hours=self.older_than_hours)
        return lo, hi

    @property
    def relative(self) -> bool:
        return any(
            v is not None
            for v in (self.last_days, self.last_hours, self.older_than_days, self.older_than_hours)
        )


@dataclass(frozen=True)
class Bounds:
    min: Any = None
    max: Any = None


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class Not:
    child: Node
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class Attribute:
    """A built-in customer column (``column`` set) or a custom JSON attribute (``key`` set).

    ``kind`` is the value kind: for built-ins the field's, for custom keys "str", "float" or
    "bool" (from the values given) or "any" (is_set/is_not_set)."""

    op: str
    kind: str
    column: str | None = None
    key: tuple[str, ...] | None = None
    values: tuple[Any, ...] = ()
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class Tag:
    tags: tuple[str, ...]
    match: str
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class ConsentCond:
    purpose: str
    granted: bool
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class SegmentRef:
    segment_id: int
    member: bool
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class Profile:
    name: str  # the GraphQL field name (rfmGroup has no column)
    column: str
    kind: str
    op: str
    values: tuple[Any, ...] = ()
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class Behavior:
    event_type: str
    did: bool = True
    product_id: int | None = None
    category_id: int | None = None
    brand: str | None = None
    count: Bounds | None = None
    value: Bounds | None = None
    currency: str | None = None
    window: Window | None = None
    occurrence: str = "any"
    path: Path = field(default=(), compare=False)


@dataclass(frozen=True)
class OrderCond:
    did: bool = True
    count: Bounds | None = None
    order_value: Bounds | None = None
    total_value: Bounds | None = None
    currency: str | None = None
    coupon_code: str | None = None
    window: Window | None = None
    include_refunded: bool = False
    path: Path = field(default=(), compare=False)


Node = And | Or | Not | Attribute | Tag | ConsentCond | SegmentRef | Profile | Behavior | OrderCond
LEAVES = (Attribute, Tag, ConsentCond, SegmentRef, Profile, Behavior, OrderCond)


def walk(node: Node) -> Iterator[Node]:
    """Every node of a tree, parents before children (referenced segments are not entered)."""
    yield node
    if isinstance(node, And | Or):
        for child in node.children:
            yield from walk(child)
    elif isinstance(node, Not):
        yield from walk(node.child)


def logic_depth(node: Node) -> int:
    """Nesting of and/or/not (a leaf alone is 0)."""
    if isinstance(node, And | Or):
        return 1 + max((logic_depth(c) for c in node.children), default=0)
    if isinstance(node, Not):
        return 1 + logic_depth(node.child)
    return 0


# ---------------------------------------------------------------------------------------------
# parse


def _opt(body: dict[str, Any], name: str, default: Any) -> Any:
    """An optional field; an explicit null (as GraphQL inputs send) means "not given"."""
    value = body.get(name)
    return default if value is None else value


class _Parser:
    def __init__(self, now: datetime, root: Path) -> None:
        self.root = root
        self.errors: list[FieldError] = []
        self.nodes = 0
        self.too_many = False
        self.now = now

    def error(self, code: str, message: str, path: Path) -> None:
        self.errors.append(FieldError(code, message, path))

    # -- structure ------------------------------------------------------------------------------

    def node(self, doc: Any, path: Path, depth: int) -> Node | None:
        self.nodes += 1
        if self.nodes > MAX_NODES and not self.too_many:
            self.too_many = True
            self.error("TOO_MANY", f"a definition has at most {MAX_NODES} conditions", self.root)
        if not isinstance(doc, dict):
            self.error("INVALID", "a condition must be an object with exactly one key", path)
            return None
        keys = list(doc)
        unknown = [k for k in keys if k not in NODE_KINDS]
        for k in unknown:
            self.error("UNKNOWN_FIELD", f"unknown condition {str(k)[:40]!r}", (*path, str(k)))
        known = [k for k in keys if k in NODE_KINDS]
        if unknown:
            return None
        if len(known) != 1:
            self.error(
                "INVALID",
                "a condition must have exactly one of: " + ", ".join(NODE_KINDS),
                path,
            )
            return None
        kind = known[0]
        body = doc[kind]
        here = (*path, kind)
        if kind in ("and", "or"):
            if depth + 1 > MAX_DEPTH:
                self.error("TOO_DEEP", f"conditions nest at most {MAX_DEPTH} levels", here)
                return None
            if not isinstance(body, list):
                self.error("INVALID_VALUE", f"{kind} takes a list of conditions", here)
                return None
            if not body:
                self.error("EMPTY", f"{kind} needs at least one condition", here)
                return None
            if len(body) > MAX_NODES:
                self.error("TOO_MANY", f"a definition has at most {MAX_NODES} conditions", here)
                return None
            children = [self.node(c, (*here, str(i)), depth + 1) for i, c in enumerate(body)]
            if any(c is None for c in children):
                return None
            kept = tuple(c for c in children if c is not None)
            return And(kept, path) if kind == "and" else Or(kept, path)
        if kind == "not":
            if depth + 1 > MAX_DEPTH:
                self.error("TOO_DEEP", f"conditions nest at most {MAX_DEPTH} levels", here)
                return None
            child = self.node(body, here, depth + 1)
            return None if child is None else Not(child, path)
        if not isinstance(body, dict):
            self.error("INVALID_VALUE", f"{kind} takes an object", here)
            return None
        leaf: Callable[[dict[str, Any], Path], Node | None] = getattr(self, f"leaf_{kind}")
        return leaf(body, here)

    def fields(self, body: dict[str, Any], path: Path, allowed: tuple[str, ...]) -> bool:
        ok = True
        for k in body:
            if k not in allowed:
                self.error("UNKNOWN_FIELD", f"unknown field {str(k)[:40]!r}", (*path, str(k)))
                ok = False
        return ok

    def required(self, body: dict[str, Any], name: str, path: Path) -> Any:
        value = body.get(name)
        if value is None:
            self.error("REQUIRED", f"{name} is required", (*path, name))
        return value

    # -- scalars --------------------------------------------------------------------------------

    def string(self, value: Any, path: Path, *, what: str = "a string") -> str | None:
        if not isinstance(value, str):
            self.error("INVALID_VALUE", f"expected {what}", path)
            return None
        if len(value) > MAX_STRING:
            self.error("TOO_LONG", f"a value has at most {MAX_STRING} characters", path)
            return None
        return value

    def integer(self, value: Any, path: Path, *, lo: int = 0, hi: int = MAX_INT) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and re.fullmatch(r"-?\d{1,10}", value):
                value = int(value)
            else:
                self.error("INVALID_VALUE", "expected an integer", path)
                return None
        if not lo <= value <= hi:
            self.error("INVALID_VALUE", f"expected an integer from {lo} to {hi}", path)
            return None
        return int(value)

    def boolean(self, value: Any, path: Path) -> bool | None:
        if not isinstance(value, bool):
            self.error("INVALID_VALUE", "expected true or false", path)
            return None
        return value

    def decimal(self, value: Any, path: Path) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.error("INVALID_VALUE", "expected a decimal number", path)
            return None
        if isinstance(value, str) and len(value) > 40:
            self.error("INVALID_VALUE", "expected a decimal number", path)
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.error("INVALID_VALUE", "expected a decimal number", path)
            return None
        if not number.is_finite() or abs(number) >= MAX_DECIMAL:
            self.error("INVALID_VALUE", "expected a finite decimal number below 1e12", path)
            return None
        return number

    def number(self, value: Any, path: Path) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error("INVALID_VALUE", "expected a number", path)
            return None
        number = float(value)
        if number != number or abs(number) >= 1e15:
            self.error("INVALID_VALUE", "expected a finite number", path)
            return None
        return number

    def day(self, value: Any, path: Path) -> date | None:
        if isinstance(value, str) and len(value) <= 10:
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.error("INVALID_VALUE", "expected a date (YYYY-MM-DD)", path)
        return None

    def moment(self, value: Any, path: Path) -> datetime | None:
        if isinstance(value, str) and len(value) <= 40:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
        self.error("INVALID_VALUE", "expected an ISO 8601 date-time with an offset", path)
        return None

    def typed(self, kind: str, value: Any, path: Path, name: str) -> Any:
        """One comparison value of a value kind, or None (error recorded)."""
        if kind == "str":
            return self.string(value, path)
        if kind == "country":
            text = self.string(value, path)
            if text is None:
                return None
            if not re.fullmatch(r"[A-Za-z]{2}", text):
                self.error("INVALID_VALUE", "expected an ISO 3166-1 alpha-2 country code", path)
                return None
            return text.upper()
        if kind == "int":
            return self.integer(value, path)
        if kind == "score":
            return self.integer(value, path, lo=1, hi=5)
        if kind == "decimal":
            return self.decimal(value, path)
        if kind == "float":
            return self.number(value, path)
        if kind == "date":
            return self.day(value, path)
        if kind == "datetime":
            return self.moment(value, path)
        if kind == "enum":
            allowed = ENUMS[name]
            if isinstance(value, str) and value.lower() in allowed:
                return value.lower()
            self.error("INVALID_VALUE", f"expected one of: {', '.join(allowed)}", path)
            return None
        if kind == "bool":
            return self.boolean(value, path)
        raise AssertionError(kind)

    # -- comparisons (attribute and profile) -------------------------------------------------------

    def operands(
        self, body: dict[str, Any], path: Path, op: str, kind: str, name: str
    ) -> tuple[Any, ...] | None:
        """The values an operator takes: none, one ``value``, a ``values`` list or [lo, hi]."""
        has_value = body.get("value") is not None
        has_values = body.get("values") is not None
        if op in ("is_set", "is_not_set"):
            for extra in ("value", "values"):
                if body.get(extra) is not None:
                    self.error("INVALID", f"{op} takes no {extra}", (*path, extra))
                    return None
            return ()
        if op in ("within_last_days", "more_than_days_ago"):
            if has_values:
                self.error("INVALID", f"{op} takes value, not values", (*path, "values"))
                return None
            if not has_value:
                self.error("REQUIRED", "value is required", (*path, "value"))
                return None
            days = self.integer(body["value"], (*path, "value"), hi=36500)
            return None if days is None else (days,)
        if op in ("in", "not_in", "between"):
            if has_value:
                self.error("INVALID", f"{op} takes values, not value", (*path, "value"))
                return None
            if not has_values:
                self.error("REQUIRED", "values is required", (*path, "values"))
                return None
            raw = body["values"]
            where = (*path, "values")
            if not isinstance(raw, list):
                self.error("INVALID_VALUE", "values must be a list", where)
                return None
            if op == "between" and len(raw) != 2:
                self.error("INVALID_VALUE", "between takes exactly two values [low, high]", where)
                return None
            if not raw:
                self.error("INVALID_VALUE", "values must not be empty", where)
                return None
            if len(raw) > MAX_LIST:
                self.error("TOO_MANY", f"a list has at most {MAX_LIST} values", where)
                return None
            parsed = [self.typed(kind, v, (*where, str(i)), name) for i, v in enumerate(raw)]
            if any(v is None for v in parsed):
                return None
            if op == "between" and parsed[0] > parsed[1]:
                self.error("INVALID_VALUE", "between needs low <= high", where)
                return None
            return tuple(dict.fromkeys(parsed)) if op != "between" else tuple(parsed)
        if has_values:
            self.error("INVALID", f"{op} takes value, not values", (*path, "values"))
            return None
        if not has_value:
            self.error("REQUIRED", "value is required", (*path, "value"))
            return None
        one = self.typed(kind, body["value"], (*path, "value"), name)
        return None if one is None else (one,)

    def operator(self, body: dict[str, Any], path: Path, allowed: frozenset[str]) -> str | None:
        op = self.required(body, "op", path)
        if op is None:
            return None
        if not isinstance(op, str) or op.lower() not in ALL_OPS:
            self.error("INVALID_OPERATOR", f"unknown operator {str(op)[:40]!r}", (*path, "op"))
            return None
        op = op.lower()
        if op not in allowed:
            self.error(
                "INVALID_OPERATOR",
                f"{op} does not apply here; use one of: {', '.join(sorted(allowed))}",
                (*path, "op"),
            )
            return None
        return str(op)

    def leaf_attribute(self, body: dict[str, Any], path: Path) -> Node | None:
        if not self.fields(body, path, ("field", "key", "op", "value", "values")):
            return None
        if (body.get("field") is None) == (body.get("key") is None):
            self.error("INVALID", "give exactly one of field (built-in) or key (custom)", path)
            return None
        if body.get("field") is not None:
            name = body["field"]
            if isinstance(name, str) and name in ENCRYPTED_FIELDS:
                self.error(
                    "UNKNOWN_FIELD",
                    f"{name} is stored encrypted and cannot be used in segments",
                    (*path, "field"),
                )
                return None
            if not isinstance(name, str) or name not in ATTRIBUTE_FIELDS:
                self.error(
                    "UNKNOWN_FIELD",
                    f"unknown field {str(name)[:40]!r}; one of: {', '.join(ATTRIBUTE_FIELDS)}",
                    (*path, "field"),
                )
                return None
            column, kind = ATTRIBUTE_FIELDS[name]
            op = self.operator(body, path, OPS_BY_KIND[kind])
            if op is None:
                return None
            values = self.operands(body, path, op, kind, name)
            if values is None:
                return None
            return Attribute(op, kind, column=column, values=values, path=path)
        key = body["key"]
        if not isinstance(key, str) or not CUSTOM_KEY.match(key):
            self.error(
                "INVALID_VALUE",
                "a custom key is 1-8 dot-separated names of letters, digits, _ and -",
                (*path, "key"),
            )
            return None
        op = self.operator(body, path, CUSTOM_OPS)
        if op is None:
            return None
        custom = self.custom_kind(body, path, op)
        if custom is None:
            return None
        values = self.operands(body, path, op, custom, key) if custom != "any" else ()
        if values is None:
            return None
        return Attribute(op, custom, key=tuple(key.split(".")), values=values, path=path)

    def custom_kind(self, body: dict[str, Any], path: Path, op: str) -> str | None:
        """The JSON value type a custom attribute is compared as, decided by the values given."""
        if op in ("is_set", "is_not_set"):
            return "any"
        if op in ("contains", "starts_with"):
            return "str"
        if op in ("gt", "gte", "lt", "lte", "between"):
            return "float"
        sample = body.get("value")
        if op in ("in", "not_in"):
            values = body.get("values")
            sample = values[0] if isinstance(values, list) and values else None
        if isinstance(sample, bool):
            if op in ("in", "not_in"):
                self.error("INVALID_OPERATOR", "use eq or ne with true/false", (*path, "op"))
                return None
            return "bool"
        if isinstance(sample, int | float):
            return "float"
        return "str"  # a wrong type is reported by operands()

    def leaf_profile(self, body: dict[str, Any], path: Path) -> Node | None:
        if not self.fields(body, path, ("field", "op", "value", "values")):
            return None
        name = self.required(body, "field", path)
        if name is None:
            return None
        if not isinstance(name, str) or name not in PROFILE_FIELDS:
            self.error(
                "UNKNOWN_FIELD",
                f"unknown profile field {str(name)[:40]!r}; one of: {', '.join(PROFILE_FIELDS)}",
                (*path, "field"),
            )
            return None
        column, kind = PROFILE_FIELDS[name]
        op = self.operator(body, path, OPS_BY_KIND[kind])
        if op is None:
            return None
        values = self.operands(body, path, op, kind, name)
        if values is None:
            return None
        return Profile(name, column, kind, op, values, path)

    # -- other leaves ---------------------------------------------------------------------------

    def leaf_tag(self, body: dict[str, Any], path: Path) -> Node | None:
        if not self.fields(body, path, ("tags", "match")):
            return None
        tags = self.required(body, "tags", path)
        match = _opt(body, "match", "any")
        ok = True
        if isinstance(match, str) and match.lower() in ("any", "all", "none"):
            match = match.lower()
        else:
            self.error("INVALID_VALUE", "match is one of: any, all, none", (*path, "match"))
            ok = False
        if tags is None:
            return None
        where = (*path, "tags")
        if not isinstance(tags, list) or not tags:
            self.error("INVALID_VALUE", "tags must be a non-empty list", where)
            return None
        if len(tags) > MAX_LIST:
            self.error("TOO_MANY", f"a list has at most {MAX_LIST} values", where)
            return None
        parsed: list[str] = []
        for i, t in enumerate(tags):
            text = self.string(t, (*where, str(i)))
            if text is None:
                ok = False
            elif not TAG.match(text.lower()):
                self.error("INVALID_VALUE", "a tag is 1-64 of a-z 0-9 _ : . -", (*where, str(i)))
                ok = False
            else:
                parsed.append(text.lower())
        if not ok:
            return None
        return Tag(tuple(dict.fromkeys(parsed)), str(match), path)

    def leaf_consent(self, body: dict[str, Any], path: Path) -> Node | None:
        if not self.fields(body, path, ("purpose", "granted")):
            return None
        purpose = self.required(body, "purpose", path)
        granted = _opt(body, "granted", True)
        ok = True
        if purpose is not None and (
            not isinstance(purpose, str) or purpose.lower() not in PURPOSES
        ):
            self.error(
                "INVALID_VALUE", f"purpose is one of: {', '.join(PURPOSES)}", (*path, "purpose")
            )
            ok = False
        if self.boolean(granted, (*path, "granted")) is None:
            ok = False
        if purpose is None or not ok:
            return None
        return ConsentCond(purpose.lower(), bool(granted), path)

    def leaf_segment(self, body: dict[str, Any], path: Path) -> Node | None:
        if not self.fields(body, path, ("segmentId", "member")):
            return None
        raw = self.required(body, "segmentId", path)
        member = _opt(body, "member", True)
        segment_id = None if raw is None else self.integer(raw, (*path, "segmentId"), lo=1)
        member_ok = self.boolean(member, (*path, "member"))
        if segment_id is None or member_ok is None:
            return None
        return SegmentRef(segment_id, member_ok, path)

    def bounds(
        self, raw: Any, path: Path, parse: Callable[[Any, Path], Any], extra: tuple[str, ...] = ()
    ) -> tuple[Bounds | None, bool]:
        if raw is None:
            return None, True
        if not isinstance(raw, dict):
            self.error("INVALID_VALUE", "expected an object with min and/or max", path)
            return None, False
        if not self.fields(raw, path, ("min", "max", *extra)):
            return None, False
        lo = None if raw.get("min") is None else parse(raw["min"], (*path, "min"))
        hi = None if raw.get("max") is None else parse(raw["max"], (*path, "max"))
        if (raw.get("min") is not None and lo is None) or (
            raw.get("max") is not None and hi is None
        ):
            return None, False
        if lo is None and hi is None:
            self.error("INVALID_VALUE", "give min, max or both", path)
            return None, False
        if lo is not None and hi is not None and lo > hi:
            self.error("INVALID_VALUE", "min is greater than max", path)
            return None, False
        return Bounds(lo, hi), True

    def count(self, value: Any, path: Path) -> int | None:
        return self.integer(value, path, hi=1_000_000)

    def money(self, value: Any, path: Path) -> Decimal | None:
        number = self.decimal(value, path)
        if number is not None and number < 0:
            self.error("INVALID_VALUE", "expected an amount of at least 0", path)
            return None
        return number

    def currency(self, value: Any, path: Path) -> str | None:
        if not isinstance(value, str) or not CURRENCY.match(value.upper()):
            self.error("INVALID_VALUE", "expected an ISO 4217 currency code", path)
            return None
        return value.upper()

    def window(self, raw: Any, path: Path) -> tuple[Window | None, bool]:
        if raw is None:
            return None, True
        if not isinstance(raw, dict):
            self.error("INVALID_VALUE", "a window is an object", path)
            return None, False
        names = ("lastDays", "lastHours", "from", "to", "olderThanDays", "olderThanHours")
        if not self.fields(raw, path, names):
            return None, False
        given = {k: v for k, v in raw.items() if v is not None}
        lower = [k for k in ("lastDays", "lastHours", "from") if k in given]
        upper = [k for k in ("olderThanDays", "olderThanHours", "to") if k in given]
        if len(lower) > 1 or len(upper) > 1:
            self.error(
                "INVALID",
                "at most one of lastDays/lastHours/from and one of olderThanDays/olderThanHours/to",
                path,
            )
            return None, False
        ints: dict[str, int] = {}
        for k in ("lastDays", "lastHours", "olderThanDays", "olderThanHours"):
            if k in given:
                v = given[k]
                if isinstance(v, bool) or not isinstance(v, int):
                    self.error("INVALID_VALUE", "expected an integer", (*path, k))
                    return None, False
                ints[k] = v
        moments: dict[str, datetime] = {}
        for k in ("from", "to"):
            if k in given:
                parsed = self.moment(given[k], (*path, k))
                if parsed is None:
                    return None, False
                moments[k] = parsed
        if not given:
            self.error("IMPOSSIBLE_WINDOW", "an empty window matches nothing; omit it", path)
            return None, False
        if any(v < 0 for v in ints.values()):
            self.error("IMPOSSIBLE_WINDOW", "window lengths cannot be negative", path)
            return None, False
        if ints.get("lastDays", 0) > MAX_DAYS or ints.get("lastHours", 0) > MAX_DAYS * 24:
            self.error("IMPOSSIBLE_WINDOW", f"a window reaches back at most {MAX_DAYS} days", path)
            return None, False
        if "from" in moments and moments["from"] > self.now:
            self.error("IMPOSSIBLE_WINDOW", "from is in the future", path)
            return None, False
        window = Window(
            last_days=ints.get("lastDays"),
            last_hours=ints.get("lastHours"),
            from_=moments.get("from"),
            to=moments.get("to"),
            older_than_days=ints.get("olderThanDays"),
            older_than_hours=ints.get("olderThanHours"),
        )
        lo, hi = window.bounds(self.now)
        if (lo is not None and hi is not None and lo >= hi) or (lo is not None and lo >= self.now):
            self.error(
                "IMPOSSIBLE_WINDOW", "the window is empty: its start is not before its end", path
            )
            return None, False
        return window, True

    def leaf_behavior(self, body: dict[str, Any], path: Path) -> Node | None:
        allowed = (
            "did",
            "eventType",
            "productId",
            "categoryId",
            "brand",
            "count",
            "value",
            "window",
            "occurrence",
        )
        if not self.fields(body, path, allowed):
            return None
        ok = True
        did = self.boolean(_opt(body, "did", True), (*path, "did"))
        ok &= did is not None
        event_type = self.required(body, "eventType", path)
        if event_type is not None:
            text = self.string(event_type, (*path, "eventType"))
            if text is not None and text not in BUILTIN_TYPES and not CUSTOM_TYPE.match(text):
                self.error(
                    "INVALID_VALUE",
                    "eventType is a built-in type or custom:<name>",
                    (*path, "eventType"),
                )
                text = None
            event_type = text
        ok &= event_type is not None
        ids: dict[str, int | None] = {}
        for k in ("productId", "categoryId"):
            ids[k] = None
            if body.get(k) is not None:
                ids[k] = self.integer(body[k], (*path, k), lo=1)
                ok &= ids[k] is not None
        brand = None
        if body.get("brand") is not None:
            brand = self.string(body["brand"], (*path, "brand"))
            ok &= brand is not None
        count, good = self.bounds(body.get("count"), (*path, "count"), self.count)
        ok &= good
        raw_value = body.get("value")
        currency = None
        value = None
        if (
            isinstance(raw_value, dict)
            and raw_value.get("min") is None
            and raw_value.get("max") is None
            and raw_value.get("currency") is not None
            and self.fields(raw_value, (*path, "value"), ("min", "max", "currency"))
        ):
            pass  # a currency alone filters the events without bounding their sum
        else:
            value, good = self.bounds(raw_value, (*path, "value"), self.money, ("currency",))
            ok &= good
        if isinstance(raw_value, dict) and raw_value.get("currency") is not None:
            currency = self.currency(raw_value["currency"], (*path, "value", "currency"))
            ok &= currency is not None
        window, good = self.window(body.get("window"), (*path, "window"))
        ok &= good
        occurrence = _opt(body, "occurrence", "any")
        if not isinstance(occurrence, str) or occurrence.lower() not in ("any", "first", "last"):
            self.error(
                "INVALID_VALUE", "occurrence is one of: any, first, last", (*path, "occurrence")
            )
            ok = False
        else:
            occurrence = occurrence.lower()
            if occurrence != "any" and (count is not None or value is not None):
                self.error(
                    "INVALID",
                    "count and value bounds do not combine with a first/last occurrence",
                    (*path, "occurrence"),
                )
                ok = False
        if not ok or event_type is None or did is None:
            return None
        return Behavior(
            event_type=event_type,
            did=did,
            product_id=ids["productId"],
            category_id=ids["categoryId"],
            brand=brand,
            count=count,
            value=value,
            currency=currency,
            window=window,
            occurrence=str(occurrence),
            path=path,
        )

    def leaf_order(self, body: dict[str, Any], path: Path) -> Node | None:
        allowed = (
            "did",
            "count",
            "orderValue",
            "totalValue",
            "currency",
            "couponCode",
            "window",
            "includeRefunded",
        )
        if not self.fields(body, path, allowed):
            return None
        ok = True
        did = self.boolean(_opt(body, "did", True), (*path, "did"))
        refunded = self.boolean(_opt(body, "includeRefunded", False), (*path, "includeRefunded"))
        ok &= did is not None and refunded is not None
        count, good = self.bounds(body.get("count"), (*path, "count"), self.count)
        ok &= good
        order_value, good = self.bounds(body.get("orderValue"), (*path, "orderValue"), self.money)
        ok &= good
        total_value, good = self.bounds(body.get("totalValue"), (*path, "totalValue"), self.money)
        ok &= good
        currency = None
        if body.get("currency") is not None:
            currency = self.currency(body["currency"], (*path, "currency"))
            ok &= currency is not None
        coupon = None
        if body.get("couponCode") is not None:
            coupon = self.string(body["couponCode"], (*path, "couponCode"))
            ok &= coupon is not None
        window, good = self.window(body.get("window"), (*path, "window"))
        ok &= good
        if not ok:
            return None
        return OrderCond(
            did=bool(did),
            count=count,
            order_value=order_value,
            total_value=total_value,
            currency=currency,
            coupon_code=coupon,
            window=window,
            include_refunded=bool(refunded),
            path=path,
        )


def parse(doc: Any, *, path: Path = ("definition",), now: datetime | None = None) -> Node:
    """The tree of a definition; raises DomainError listing every error found (with its path)."""
    parser = _Parser(now or datetime.now(UTC), tuple(path))
    node = parser.node(doc, tuple(path), 0)
    if parser.errors or node is None:
        raise DomainError(parser.errors or [FieldError("INVALID", "invalid definition", path)])
    return node


# ---------------------------------------------------------------------------------------------
# validate


@dataclass(frozen=True)
class ReferencedSegment:
    id: int
    kind: str  # dynamic | static
    tree: Node | None  # dynamic: the parsed definition


@dataclass(frozen=True)
class Resolved:
    tree: Node
    segments: dict[int, ReferencedSegment] = field(default_factory=dict)


@dataclass(frozen=True)
class Deps:
    """What a definition reads: which changes can move a shopper in or out of the segment."""

    event_types: frozenset[str] = frozenset()
    orders: bool = False
    profile: bool = False
    consents: bool = False
    attributes: bool = False
    tags: bool = False
    static_segments: frozenset[int] = frozenset()
    time: bool = False


async def validate(session: AsyncSession, doc: Any, *, segment_id: int | None = None) -> Resolved:
    """``parse`` plus the references: products, categories and segments exist (active), and no
    segment reaches itself through its references (CYCLE) or nests deeper than MAX_DEPTH."""
    tree = parse(doc)
    errors: list[FieldError] = []
    leaves = [n for n in walk(tree) if isinstance(n, Behavior)]
    product_ids = {n.product_id for n in leaves if n.product_id is not None}
    category_ids = {n.category_id for n in leaves if n.category_id is not None}
    found_products = set(
        await session.scalars(select(col(Product.id)).where(col(Product.id).in_(product_ids)))
        if product_ids
        else []
    )
    found_categories = set(
        await session.scalars(select(col(Category.id)).where(col(Category.id).in_(category_ids)))
        if category_ids
        else []
    )
    for n in leaves:
        if n.product_id is not None and n.product_id not in found_products:
            errors.append(FieldError("NOT_FOUND", "no such product", (*n.path, "productId")))
        if n.category_id is not None and n.category_id not in found_categories:
            errors.append(FieldError("NOT_FOUND", "no such category", (*n.path, "categoryId")))

    # Load every segment reachable through references, breadth first.
    segments: dict[int, ReferencedSegment] = {}
    broken: set[int] = set()  # unknown, archived or with a stored definition that no longer parses
    pending = {n.segment_id for n in walk(tree) if isinstance(n, SegmentRef)}
    while pending:
        rows = (
            await session.execute(
                select(
                    col(Segment.id),
                    col(Segment.kind),
                    col(Segment.status),
                    col(Segment.definition),
                ).where(col(Segment.id).in_(pending))
            )
        ).all()
        by_id = {row.id: row for row in rows}
        nxt: set[int] = set()
        for sid in pending:
            row = by_id.get(sid)
            if row is None or row.status != "active":
                broken.add(sid)
                continue
            ref_tree: Node | None = None
            if row.kind == "dynamic":
                if sid == segment_id:
                    ref_tree = And((), ())  # a cycle; reported below
                else:
                    try:
                        ref_tree = parse(row.definition, path=("segment", str(sid)))
                    except DomainError:
                        broken.add(sid)
                        continue
                    nxt |= {
                        n.segment_id
                        for n in walk(ref_tree)
                        if isinstance(n, SegmentRef) and n.segment_id not in segments
                    }
            segments[sid] = ReferencedSegment(sid, row.kind, ref_tree)
        pending = nxt - set(segments) - broken

    inlined = [0]

    def check(node: Node, depth: int, stack: tuple[int, ...], top: SegmentRef | None) -> None:
        """Walk the tree with referenced dynamic trees inlined; report at the saved tree's path."""
        inlined[0] += 1
        if isinstance(node, And | Or):
            for c in node.children:
                check(c, depth + 1, stack, top)
            return
        if isinstance(node, Not):
            check(node.child, depth + 1, stack, top)
            return
        if not isinstance(node, SegmentRef):
            return
        at = top or node
        where = (*at.path, "segmentId")
        if node.segment_id in broken:
            message = (
                f"segment {node.segment_id} does not exist, is archived, or its definition "
                "no longer validates"
            )
            errors.append(FieldError("NOT_FOUND", message, where))
            return
        if node.segment_id == segment_id or node.segment_id in stack:
            chain = " -> ".join(str(s) for s in (*stack, node.segment_id))
            errors.append(FieldError("CYCLE", f"segment references form a cycle: {chain}", where))
            return
        ref = segments[node.segment_id]
        if ref.tree is None:
            return
        inner = logic_depth(ref.tree)
        if depth + inner > MAX_DEPTH:
            errors.append(
                FieldError(
                    "TOO_DEEP",
                    f"with segment {node.segment_id} inlined, conditions nest more than "
                    f"{MAX_DEPTH} levels",
                    where,
                )
            )
            return
        if inlined[0] > MAX_INLINED:
            errors.append(
                FieldError(
                    "TOO_MANY",
                    f"with referenced segments inlined, more than {MAX_INLINED} conditions",
                    where,
                )
            )
            return
        check(ref.tree, depth, (*stack, node.segment_id), at)

    root = (segment_id,) if segment_id is not None else ()
    check(tree, 0, root, None)
    if errors:
        raise DomainError(list(dict.fromkeys(errors)))
    return Resolved(tree, segments)


def dependencies(resolved: Resolved) -> Deps:
    types: set[str] = set()
    statics: set[int] = set()
    flags = dict.fromkeys(("orders", "profile", "consents", "attributes", "tags", "time"), False)

    def visit(tree: Node, seen: frozenset[int]) -> None:
        for n in walk(tree):
            if isinstance(n, Behavior):
                types.add(n.event_type)
                flags["time"] |= n.window is not None and n.window.relative
            elif isinstance(n, OrderCond):
                flags["orders"] = True
                flags["time"] |= n.window is not None and n.window.relative
            elif isinstance(n, Profile):
                flags["profile"] = True
                flags["time"] |= n.op in ("within_last_days", "more_than_days_ago")
            elif isinstance(n, ConsentCond):
                flags["consents"] = True
            elif isinstance(n, Tag):
                flags["tags"] = True
            elif isinstance(n, Attribute):
                flags["attributes"] = True
                flags["time"] |= n.op in ("within_last_days", "more_than_days_ago")
            elif isinstance(n, SegmentRef):
                ref = resolved.segments.get(n.segment_id)
                if ref is None or n.segment_id in seen:
                    continue
                if ref.kind == "static":
                    statics.add(n.segment_id)
                elif ref.tree is not None:
                    visit(ref.tree, seen | {n.segment_id})

    visit(resolved.tree, frozenset())
    return Deps(
        event_types=frozenset(types),
        orders=flags["orders"],
        profile=flags["profile"],
        consents=flags["consents"],
        attributes=flags["attributes"],
        tags=flags["tags"],
        static_segments=frozenset(statics),
        time=flags["time"],
    )
