"""Compile a resolved definition to ONE SQL statement (SQLAlchemy Core) for SQLite and PostgreSQL.

``compile_members`` returns ``SELECT customer.id AS customer_id FROM customer WHERE <tree>``. Every
value is a bound parameter. Each leaf is a two-valued condition on the customer row (never NULL), so
``not`` is always the exact complement:

- customer columns compare directly (``x IS NOT NULL AND x = :v``; ``ne``/``not_in`` are the
  complement of ``eq``/``in``, so they include customers without a value);
- tags, consents, profiles, events, orders and static segments are semi-joins
  ``customer.id IN (SELECT customer_id FROM ... WHERE customer_id IS NOT NULL ...)`` with
  ``GROUP BY customer_id HAVING ...`` for count and sum bounds, and anti-joins ``NOT EXISTS``;
- referenced dynamic segments are inlined.

With ``customer_id`` given, ``customer_id = :cid`` is added inside every subquery too, so checking
one shopper reads only that shopper's rows (``ix_event_customer_id_occurred_at`` and friends).
Erased customers are deleted rows, so they never match.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Select,
    String,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from domain.catalog.models import Category, Product
from domain.consents.models import Consent
from domain.events.models import Event
from domain.orders.models import Order, OrderLine
from domain.profiles.models import CustomerProfile
from domain.segments import rfm
from domain.segments.definition import (
    And,
    Attribute,
    Behavior,
    Bounds,
    ConsentCond,
    Node,
    Not,
    Or,
    OrderCond,
    Profile,
    Resolved,
    SegmentRef,
    Tag,
    Window,
)
from domain.segments.models import SegmentMember
from domain.sql import table
from domain.users.models import Customer, CustomerTag

customer = table(Customer)
tags_t = table(CustomerTag)
consent_t = table(Consent)
profile_t = table(CustomerProfile)
event_t = table(Event)
order_t = table(Order)
line_t = table(OrderLine)
product_t = table(Product)
category_t = table(Category)
member_t = table(SegmentMember)
# Aliases built once (building one populates its column collection, a good part of the cost of
# compiling a definition); each use sits in its own subquery, so sharing them is safe.
consent_k = consent_t.alias("k")
consent_later = consent_t.alias("k_later")
category_root = category_t.alias("cat_root")
category_sub = category_t.alias("cat_sub")

CustomerId = int | BindParameter[int]
LIKE_ESCAPE = "!"
# Orders that never count: cancelled ones; refunded ones unless includeRefunded.
NEVER_COUNTED = ("cancelled",)
REFUNDED = ("refunded",)


def like_escape(text: str) -> str:
    """``text`` with LIKE wildcards made literal (escape character ``!``)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


# ---------------------------------------------------------------------------------------------
# JSON attribute probes: the same meaning on PostgreSQL (jsonb) and SQLite (JSON1).


class json_kind(FunctionElement[str]):
    """The JSON type at a path of a document, normalised: 'string', 'number', 'true', 'false',
    'null', 'object', 'array', or 'missing'. Never NULL."""

    type = String()
    # The path is part of the cache key (it is rendered as a bound parameter at compile time).
    _traverse_internals = [
        *FunctionElement._traverse_internals,
        ("path", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, doc: Any, path: tuple[str, ...]) -> None:
        super().__init__(doc)
        self.doc = doc
        self.path = path


class json_value(FunctionElement[Any]):
    """The value at a path as text (``numeric=False``) or as a number; only meaningful where
    ``json_kind`` says it is a string (text) or a number."""

    _traverse_internals = [
        *FunctionElement._traverse_internals,
        ("path", InternalTraversal.dp_plain_obj),
        ("numeric", InternalTraversal.dp_boolean),
    ]

    def __init__(self, doc: Any, path: tuple[str, ...], *, numeric: bool) -> None:
        super().__init__(doc)
        self.doc = doc
        self.path = path
        self.numeric = numeric
        self.type = Float() if numeric else String()


def _sqlite_path(path: tuple[str, ...]) -> Any:
    # Keys are restricted to letters, digits, _ and - (definition.CUSTOM_KEY); still bound.
    return literal("$" + "".join(f'."{part}"' for part in path), String())


@compiles(json_kind, "postgresql")
def _json_kind_pg(element: json_kind, compiler: Any, **kw: Any) -> str:
    node = element.doc[element.path]
    typeof = func.jsonb_typeof(node)
    expr = func.coalesce(
        case((typeof == "boolean", node.as_string()), else_=typeof), literal("missing")
    )
    return str(compiler.process(expr, **kw))


@compiles(json_kind)
def _json_kind_sqlite(element: json_kind, compiler: Any, **kw: Any) -> str:
    typeof = func.json_type(element.doc, _sqlite_path(element.path))
    expr = func.coalesce(
        case(
            (typeof.in_(["integer", "real"]), literal("number")),
            (typeof == "text", literal("string")),
            else_=typeof,
        ),
        literal("missing"),
    )
    return str(compiler.process(expr, **kw))


@compiles(json_value, "postgresql")
def _json_value_pg(element: json_value, compiler: Any, **kw: Any) -> str:
    node = element.doc[element.path]
    if not element.numeric:
        return str(compiler.process(node.as_string(), **kw))
    # Cast only what jsonb says is a number: a string there must not fail the whole statement.
    guarded = case((func.jsonb_typeof(node) == "number", node.as_float()), else_=None)
    return str(compiler.process(guarded, **kw))


@compiles(json_value)
def _json_value_sqlite(element: json_value, compiler: Any, **kw: Any) -> str:
    path = _sqlite_path(element.path)
    extract = func.json_extract(element.doc, path)
    if not element.numeric:
        expr = case((func.json_type(element.doc, path) == "text", extract), else_=None)
    else:
        expr = case(
            (func.json_type(element.doc, path).in_(["integer", "real"]), extract), else_=None
        )
    return str(compiler.process(expr, **kw))


# ---------------------------------------------------------------------------------------------


def _defined(column: Any, cond: Any) -> ColumnElement[bool]:
    return and_(column.is_not(None), cond)


class _Compiler:
    def __init__(self, resolved: Resolved, now: datetime, customer_id: CustomerId | None) -> None:
        self.segments = resolved.segments
        self.now = now
        self.customer_id = customer_id

    # -- helpers --------------------------------------------------------------------------------

    def owner(self, column: Any) -> ColumnElement[bool]:
        """Rows of a customer: of the one shopper when restricted, else of any (never NULL)."""
        if self.customer_id is not None:
            return column == self.customer_id  # type: ignore[no-any-return]
        return column.is_not(None)  # type: ignore[no-any-return]

    def correlated(self, column: Any) -> ColumnElement[bool]:
        cond = column == customer.c.id
        if self.customer_id is not None:
            cond = and_(cond, column == self.customer_id)
        return cond  # type: ignore[no-any-return]

    def window(self, column: Any, window: Window | None) -> list[ColumnElement[bool]]:
        if window is None:
            return []
        lo, hi = window.bounds(self.now)
        conds = []
        if lo is not None:
            conds.append(column >= lo)
        if hi is not None:
            conds.append(column < hi)
        return conds

    def compare(
        self, column: Any, op: str, values: tuple[Any, ...], kind: str
    ) -> ColumnElement[bool]:
        """A two-valued comparison of a nullable column."""
        if op == "eq":
            return _defined(column, column == values[0])
        if op == "ne":
            return not_(_defined(column, column == values[0]))
        if op == "in":
            return _defined(column, column.in_(list(values)))
        if op == "not_in":
            return not_(_defined(column, column.in_(list(values))))
        if op in ("contains", "starts_with"):
            text = like_escape(str(values[0]).lower())
            pattern = f"%{text}%" if op == "contains" else f"{text}%"
            return _defined(column, func.lower(column).like(pattern, escape=LIKE_ESCAPE))
        if op == "gt":
            return _defined(column, column > values[0])
        if op == "gte":
            return _defined(column, column >= values[0])
        if op == "lt":
            return _defined(column, column < values[0])
        if op == "lte":
            return _defined(column, column <= values[0])
        if op == "between":
            return _defined(column, and_(column >= values[0], column <= values[1]))
        if op in ("is_set", "is_not_set"):
            present = column.is_not(None)
            if kind in ("str", "country"):
                present = and_(present, column != "")
            return present if op == "is_set" else not_(present)  # type: ignore[no-any-return]
        if op in ("within_last_days", "more_than_days_ago"):
            days = int(values[0])
            if kind == "date":
                today = self.now.date()
                edge: Any = today - timedelta(days=days)
                upper: Any = today
            else:
                edge = self.now - timedelta(days=days)
                upper = self.now
            if op == "within_last_days":
                return _defined(column, and_(column >= edge, column <= upper))
            return _defined(column, column < edge)
        raise AssertionError(op)

    # -- the tree -------------------------------------------------------------------------------

    def node(self, node: Node, neg: bool = False, conj: bool = True) -> ColumnElement[bool]:
        """``node`` (``neg``: its negation). Negations are pushed down to the leaves (De Morgan;
        every leaf is two-valued, so this is exact), so a negated leaf becomes an anti-join
        (``NOT EXISTS``) instead of ``NOT (x IN (subquery))``, which PostgreSQL cannot hash once
        the subquery outgrows work_mem. ``conj``: the node is reached from the root through
        ``and`` only, where a positive leaf is a plain semi-join ``customer.id IN (...)``; under
        an ``or`` leaves are ``EXISTS``, which PostgreSQL can hash or probe by index per row."""
        if isinstance(node, And | Or):
            if not node.children:
                return true() if isinstance(node, And) != neg else false()
            conjunction = isinstance(node, And) != neg
            parts = [self.node(c, neg, conj and conjunction) for c in node.children]
            return and_(*parts) if conjunction else or_(*parts)
        if isinstance(node, Not):
            return self.node(node.child, not neg, conj)
        if isinstance(node, Attribute):
            cond = self.attribute(node)
            return not_(cond) if neg else cond
        if isinstance(node, Tag):
            return self.tag(node, neg, conj)
        if isinstance(node, ConsentCond):
            return self.consent(node, neg, conj)
        if isinstance(node, SegmentRef):
            return self.segment(node, neg, conj)
        if isinstance(node, Profile):
            return self.profile(node, neg, conj)
        if isinstance(node, Behavior):
            return self.behavior(node, neg, conj)
        if isinstance(node, OrderCond):
            return self.order(node, neg, conj)
        raise AssertionError(type(node))

    def rows(
        self,
        key: Any,
        conds: Sequence[ColumnElement[bool]],
        having: Sequence[ColumnElement[bool]] | None,
        neg: bool,
        conj: bool,
    ) -> ColumnElement[bool]:
        """The customer has rows (``key`` = customer id) matching ``conds`` (grouped per customer
        and within ``having``, if given); ``neg``: has none.

        Positive where only ``and`` leads here: ``customer.id IN (SELECT key ...)`` (a semi-join).
        Negated: ``NOT EXISTS`` (an anti-join). Under ``or``: ``EXISTS``. A grouped condition is
        correlated through a derived table, ``EXISTS (SELECT 1 FROM (SELECT key ... GROUP BY key
        HAVING ...) g WHERE g.key = customer.id)``, which the planner can still turn into a
        (hashed) join."""
        if not neg and conj:
            sub = select(key).where(self.owner(key), *conds)
            if having:
                sub = sub.group_by(key).having(and_(*having))
            return customer.c.id.in_(sub)
        if having:
            grouped = (
                select(key.label("customer_id"))
                .where(self.owner(key), *conds)
                .group_by(key)
                .having(and_(*having))
                .subquery()
            )
            probe = exists().where(grouped.c.customer_id == customer.c.id)
        else:
            probe = exists().where(self.correlated(key), *conds)
        return ~probe if neg else probe

    def attribute(self, node: Attribute) -> ColumnElement[bool]:
        if node.column is not None:
            return self.compare(customer.c[node.column], node.op, node.values, node.kind)
        assert node.key is not None
        doc = customer.c.attributes
        kind = json_kind(doc, node.key)
        op = node.op
        if op in ("is_set", "is_not_set"):
            present = kind.not_in(["missing", "null"])
            return present if op == "is_set" else not_(present)
        if node.kind == "bool":
            cond = kind == ("true" if node.values[0] else "false")
            return cond if op == "eq" else not_(cond)
        typed = "number" if node.kind == "float" else "string"
        value = json_value(doc, node.key, numeric=node.kind == "float")
        if op in ("ne", "not_in"):
            positive = "eq" if op == "ne" else "in"
            return not_(and_(kind == typed, self.compare(value, positive, node.values, "json")))
        return and_(kind == typed, self.compare(value, op, node.values, "json"))

    def tag(self, node: Tag, neg: bool, conj: bool) -> ColumnElement[bool]:
        t = tags_t
        conds = [t.c.tag.in_(list(node.tags))]
        if node.match == "none":
            return self.rows(t.c.customer_id, conds, None, not neg, conj)
        having = None
        if node.match == "all" and len(node.tags) > 1:
            having = [func.count() == len(node.tags)]
        return self.rows(t.c.customer_id, conds, having, neg, conj)

    def consent(self, node: ConsentCond, neg: bool, conj: bool) -> ColumnElement[bool]:
        # Granted = the latest record of the purpose (highest id) says granted; no record = not.
        k, later = consent_k, consent_later
        conds = [
            k.c.purpose == node.purpose,
            k.c.granted.is_(True),
            ~exists().where(
                later.c.customer_id == k.c.customer_id,
                later.c.purpose == node.purpose,
                later.c.id > k.c.id,
            ),
        ]
        return self.rows(k.c.customer_id, conds, None, neg == node.granted, conj)

    def segment(self, node: SegmentRef, neg: bool, conj: bool) -> ColumnElement[bool]:
        ref = self.segments[node.segment_id]
        outside = neg == node.member
        if ref.kind == "static" or ref.tree is None:
            m = member_t
            return self.rows(
                m.c.customer_id, [m.c.segment_id == node.segment_id], None, outside, conj
            )
        return self.node(ref.tree, outside, conj)

    def profile(self, node: Profile, neg: bool, conj: bool) -> ColumnElement[bool]:
        p = profile_t
        if node.name == "rfmGroup":
            r, f = p.c.r_score, p.c.f_score
            cells = or_(
                *(
                    and_(r.in_(list(rs)), f.in_(list(fs)))
                    for g in node.values
                    for rs, fs in rfm.GRID[g]
                )
            )
            member = and_(r.is_not(None), f.is_not(None), cells)
            cond = member if node.op in ("eq", "in") else not_(member)
        else:
            cond = self.compare(p.c[node.column], node.op, node.values, node.kind)
        return self.rows(p.c.customer_id, [cond], None, neg, conj)

    def counted(
        self,
        key: Any,
        conds: list[ColumnElement[bool]],
        count: Bounds | None,
        sums: list[tuple[Any, Bounds | None]],
        neg: bool,
        conj: bool,
    ) -> ColumnElement[bool]:
        """Customers whose matching rows number within ``count`` (default at least one) and whose
        sums lie within their bounds; ``neg``: the others."""
        cmin = count.min if count is not None and count.min is not None else 1
        cmax = count.max if count is not None else None
        bounded = [(expr, b) for expr, b in sums if b is not None]
        having: list[ColumnElement[bool]] = []
        if cmin > 1:
            having.append(func.count() >= cmin)
        if cmax is not None:
            having.append(func.count() <= cmax)
        for expr, b in bounded:
            assert b is not None
            total = func.coalesce(func.sum(expr), 0)
            if b.min is not None:
                having.append(total >= b.min)
            if b.max is not None:
                having.append(total <= b.max)
        zero_ok = cmin == 0 and all(b is None or b.min is None or b.min <= 0 for _, b in bounded)
        if not zero_ok:
            return self.rows(key, conds, having or None, neg, conj)
        # No matching row at all also qualifies: (rows within bounds) or (no rows).
        if neg:
            return and_(
                self.rows(key, conds, having or None, True, conj),
                self.rows(key, conds, None, False, conj),
            )
        return or_(
            self.rows(key, conds, having or None, False, False),
            self.rows(key, conds, None, True, False),
        )

    def behavior(self, node: Behavior, neg: bool, conj: bool) -> ColumnElement[bool]:
        e: Any = event_t
        neg = neg == node.did
        conds: list[ColumnElement[bool]] = [e.c.type == node.event_type]
        products: list[ColumnElement[bool]] = []
        if node.product_id is not None:
            products.append(product_t.c.id == node.product_id)
        if node.category_id is not None:
            products.append(product_t.c.category_id.in_(self.subtree(node.category_id)))
        if node.brand is not None:
            products.append(product_t.c.brand == node.brand)
        if products:
            if node.product_id is not None and len(products) == 1:
                matching: ColumnElement[bool] = e.c.product_id == node.product_id
            else:
                matching = e.c.product_id.in_(select(product_t.c.id).where(*products))
            if node.event_type == "purchase":
                e = self.purchases(node, matching, products)
                conds = []
            else:
                conds.append(matching)
        if node.currency is not None:
            conds.append(e.c.currency == node.currency)
        if node.occurrence != "any":
            # The first (last) matching event ever falls inside [lo, hi) exactly when a matching
            # event falls inside and none came before lo (after hi): a semi-join on the window
            # and an anti-join on the edge, instead of grouping every matching event ever.
            lo, hi = node.window.bounds(self.now) if node.window else (None, None)
            inside_conds = conds + self.window(e.c.occurred_at, node.window)
            edge = lo if node.occurrence == "first" else hi
            if edge is None:
                return self.rows(e.c.customer_id, inside_conds, None, neg, conj)
            beyond = (
                e.c.occurred_at < edge if node.occurrence == "first" else e.c.occurred_at >= edge
            )
            if neg:  # not (inside and none beyond) = no event inside, or one beyond
                return or_(
                    self.rows(e.c.customer_id, inside_conds, None, True, False),
                    self.rows(e.c.customer_id, [*conds, beyond], None, False, False),
                )
            return and_(
                self.rows(e.c.customer_id, inside_conds, None, False, conj),
                self.rows(e.c.customer_id, [*conds, beyond], None, True, conj),
            )
        conds += self.window(e.c.occurred_at, node.window)
        return self.counted(
            e.c.customer_id, conds, node.count, [(e.c.value, node.value)], neg, conj
        )

    def purchases(
        self, node: Behavior, matching: ColumnElement[bool], products: list[ColumnElement[bool]]
    ) -> Any:
        """Purchase events of matching products, as one derived table: those that name the
        product (tracked per product) UNION ALL an order's purchase event (``recordOrders``
        writes one per order, naming no product) when one of the order's lines is a matching
        product. Two branches rather than ``named OR order line matches``: each is planned on
        its own (an index range on the window, then one probe of the order's lines per
        purchase), where the OR made PostgreSQL hash every matching order line ever."""
        e, line = event_t, line_t
        cols = [e.c.customer_id, e.c.occurred_at, e.c.value, e.c.currency]
        # The window and the shopper restriction go inside both branches (the outer conditions
        # would be pushed down too, but not by every SQLite version).
        common = [
            e.c.type == "purchase",
            self.owner(e.c.customer_id),
            *self.window(e.c.occurred_at, node.window if node.occurrence == "any" else None),
        ]
        # The matching products once, as a CTE both branches read (SQLAlchemy puts it at the
        # top of the statement; PostgreSQL computes it once and hashes it where it helps).
        wanted = select(product_t.c.id).where(*products).cte()
        named = select(*cols).where(*common, e.c.product_id.in_(select(wanted.c.id)))
        via_lines = select(*cols).where(
            *common,
            e.c.product_id.is_(None),
            e.c.order_id.in_(
                select(line.c.order_id).where(line.c.product_id.in_(select(wanted.c.id)))
            ),
        )
        return union_all(named, via_lines).subquery()

    def subtree(self, category_id: int) -> Select[Any]:
        """Ids of a category and all its sub-categories (paths are joined with " > ")."""
        root, sub = category_root, category_sub
        root_path = select(root.c.path).where(root.c.id == category_id).scalar_subquery()
        escaped = func.replace(
            func.replace(
                func.replace(root_path, "!", "!!", type_=String()), "%", "!%", type_=String()
            ),
            "_",
            "!_",
            type_=String(),
        )
        return select(sub.c.id).where(
            or_(sub.c.path == root_path, sub.c.path.like(escaped + " > %", escape=LIKE_ESCAPE))
        )

    def order(self, node: OrderCond, neg: bool, conj: bool) -> ColumnElement[bool]:
        o = order_t
        excluded = NEVER_COUNTED + (() if node.include_refunded else REFUNDED)
        conds: list[ColumnElement[bool]] = [
            o.c.status.not_in(list(excluded)),
            o.c.cancelled_at.is_(None),  # cancelled, as the profiles count it (docs/profiles.md)
        ]
        if node.currency is not None:
            conds.append(o.c.currency == node.currency)
        if node.coupon_code is not None:
            conds.append(o.c.coupon_code == node.coupon_code)
        if node.order_value is not None:
            if node.order_value.min is not None:
                conds.append(o.c.total >= node.order_value.min)
            if node.order_value.max is not None:
                conds.append(o.c.total <= node.order_value.max)
        conds += self.window(o.c.placed_at, node.window)
        return self.counted(
            o.c.customer_id,
            conds,
            node.count,
            [(o.c.total, node.total_value)],
            neg == node.did,
            conj,
        )


def compile_condition(
    resolved: Resolved, *, now: datetime, customer_id: CustomerId | None = None
) -> ColumnElement[bool]:
    """The WHERE condition on ``customer`` alone, for callers composing their own statement (e.g.
    one ``SELECT <condition 1>, <condition 2>, ... FROM customer WHERE id = :cid`` over many
    segments)."""
    return _Compiler(resolved, now, customer_id).node(resolved.tree)


def compile_members(
    resolved: Resolved, *, now: datetime, customer_id: CustomerId | None = None
) -> Select[Any]:
    """``SELECT customer.id AS customer_id FROM customer WHERE <definition>``.

    ``customer_id`` restricts the statement to one shopper, inside every subquery; it may be a
    ``bindparam("customer_id")`` so one built statement serves every shopper (execute it with
    ``{"customer_id": id}``)."""
    stmt = select(customer.c.id.label("customer_id")).where(
        compile_condition(resolved, now=now, customer_id=customer_id)
    )
    if customer_id is not None:
        stmt = stmt.where(customer.c.id == customer_id)
    return stmt
