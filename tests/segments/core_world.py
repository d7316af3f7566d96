"""A small world of shoppers, catalog, events, orders, consents, profiles and tags, inserted straight
into the tables, and a helper that evaluates a definition through validate + compile_members."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select

from domain.catalog.models import Category, Product
from domain.consents.models import Consent
from domain.db import Database
from domain.events.models import Event
from domain.orders.models import Order
from domain.profiles.models import CustomerProfile
from domain.segments.compiler import compile_members
from domain.segments.definition import validate
from domain.segments.models import Segment, SegmentMember
from domain.sql import table
from domain.users.models import Customer, CustomerTag

NOW = datetime.now(UTC).replace(microsecond=0)


def ago(days: float = 0, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


class World:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: dict[int, str] = {}

    def __getitem__(self, name: str) -> int:
        return self.ids[name]


async def _add(session: Any, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    t = table(model)
    ids = []
    for row in rows:
        result = await session.execute(insert(t).values(**row).returning(t.c.id))
        ids.append(int(result.scalar_one()))
    return ids


async def build_world(db: Database) -> World:
    w = World()
    async with db.unit_of_work() as s:
        customers: list[dict[str, Any]] = [
            dict(
                external_id="de1",
                country="DE",
                first_name="Anna",
                region="Bayern",
                birth_date=date(1990, 5, 1),
                created_at=ago(10),
                attributes={"plan": "gold", "vip": {"level": 5}, "beta": True, "score": "high"},
            ),
            dict(
                external_id="at1",
                country="AT",
                first_name="Bert",
                region="Tirol_100%",
                birth_date=NOW.date() - timedelta(days=3),
                created_at=ago(100),
                attributes={"plan": "silver", "vip": {"level": 2}, "beta": False, "score": 7},
            ),
            dict(
                external_id="fr1",
                country="FR",
                first_name="Zoe",
                region="",
                created_at=ago(400),
                attributes={"plan": "100%_off", "score": 7.5, "nothing": None},
            ),
            dict(external_id="none", created_at=ago(1), attributes={}),
        ]
        for row, pk in zip(customers, await _add(s, Customer, customers), strict=True):
            w.ids[row["external_id"]] = pk
            w.names[pk] = row["external_id"]
        # Categories: shoes > running > trail; "a_b" and "axb" check LIKE escaping of the path.
        [shoes] = await _add(s, Category, [dict(name="Shoes", path="Shoes", depth=0)])
        [running] = await _add(
            s, Category, [dict(name="Running", path="Shoes > Running", parent_id=shoes, depth=1)]
        )
        [trail] = await _add(
            s,
            Category,
            [dict(name="Trail", path="Shoes > Running > Trail", parent_id=running, depth=2)],
        )
        [ab, axb] = await _add(
            s, Category, [dict(name="a_b", path="a_b", depth=0), dict(name="axb", path="axb")]
        )
        [ab_c, axb_d] = await _add(
            s,
            Category,
            [
                dict(name="c", path="a_b > c", parent_id=ab, depth=1),
                dict(name="d", path="axb > d", parent_id=axb, depth=1),
            ],
        )
        w.ids.update(shoes=shoes, running=running, trail=trail, ab=ab, axb=axb)
        products = [
            ("p_run", running, "Nike"),
            ("p_trail", trail, "Salomon"),
            ("p_shoe", shoes, "Nike"),
            ("p_abc", ab_c, None),
            ("p_axbd", axb_d, None),
        ]
        pids = await _add(
            s,
            Product,
            [
                dict(
                    external_id=ext,
                    title=ext,
                    price=Decimal("10"),
                    currency="EUR",
                    category_id=cat,
                    brand=brand,
                )
                for ext, cat, brand in products
            ],
        )
        for (ext, _, _), pk in zip(products, pids, strict=True):
            w.ids[ext] = pk
        de, at, fr = w["de1"], w["at1"], w["fr1"]
        n = iter(range(1, 10_000))

        def ev(cid: int | None, type_: str, when: datetime, **kw: Any) -> dict[str, Any]:
            return dict(
                client_event_id=f"e{next(n)}",
                customer_id=cid,
                type=type_,
                occurred_at=when,
                source_client_id="test",
                **kw,
            )

        await _add(
            s,
            Event,
            [
                ev(
                    de,
                    "purchase",
                    ago(20),
                    product_id=w["p_run"],
                    value=Decimal("120"),
                    currency="EUR",
                ),
                ev(
                    de,
                    "purchase",
                    ago(5),
                    product_id=w["p_run"],
                    value=Decimal("100"),
                    currency="EUR",
                ),
                ev(de, "view", ago(1), product_id=w["p_abc"]),
                ev(de, "message_open", ago(10)),
                ev(de, "custom:quiz.done", ago(2)),
                ev(
                    at,
                    "purchase",
                    ago(5),
                    product_id=w["p_trail"],
                    value=Decimal("50"),
                    currency="USD",
                ),
                ev(at, "message_open", ago(40)),
                ev(at, "view", ago(300), product_id=w["p_axbd"]),
                ev(at, "view", ago(1), product_id=w["p_axbd"]),
                ev(
                    fr,
                    "purchase",
                    ago(200),
                    product_id=w["p_shoe"],
                    value=Decimal("300"),
                    currency="EUR",
                ),
                # An anonymous event: never anybody's.
                ev(None, "purchase", ago(1), product_id=w["p_run"], anonymous_id="anon-1"),
            ],
        )

        def order(cid: int, total: str, when: datetime, **kw: Any) -> dict[str, Any]:
            return dict(
                external_id=f"o{next(n)}",
                customer_id=cid,
                currency=kw.pop("currency", "EUR"),
                subtotal=Decimal(total),
                total=Decimal(total),
                source_client_id="test",
                placed_at=when,
                **kw,
            )

        await _add(
            s,
            Order,
            [
                order(de, "150", ago(20), status="paid"),
                order(de, "80", ago(5), status="fulfilled"),
                order(de, "500", ago(3), status="cancelled"),
                order(at, "300", ago(5), status="refunded"),
                order(fr, "300", ago(200), status="paid", coupon_code="SUMMER"),
            ],
        )

        def consent(cid: int, purpose: str, granted: bool) -> dict[str, Any]:
            return dict(
                customer_id=cid,
                purpose=purpose,
                granted=granted,
                source="test",
                policy_version="1",
                actor_client_id="test",
            )

        await _add(
            s,
            Consent,
            [
                consent(de, "push", True),
                consent(at, "push", False),
                consent(de, "email", True),
                consent(de, "push", False),  # latest wins: de1 no longer consents to push
                consent(at, "push", True),  # at1 does now
            ],
        )
        for profile in [
            dict(
                customer_id=de,
                r_score=5,
                f_score=5,
                m_score=4,
                lifecycle_stage="loyal",
                spend_level="high",
                revenue=Decimal("230"),
                orders_count=2,
                event_count=5,
                recency_days=5,
                probability_alive=0.9,
                clv_predicted=Decimal("400.50"),
                last_seen_at=ago(1),
                last_order_at=ago(5),
            ),
            dict(
                customer_id=at,
                r_score=1,
                f_score=3,
                m_score=2,
                lifecycle_stage="at_risk",
                spend_level="low",
                revenue=Decimal("0"),
                orders_count=0,
                event_count=4,
                recency_days=None,
                probability_alive=0.2,
                last_seen_at=ago(1),
            ),
            dict(customer_id=w["none"], lifecycle_stage="new", spend_level="none"),
        ]:
            await s.execute(insert(table(CustomerProfile)).values(**profile))
        await s.execute(
            insert(table(CustomerTag)),
            [
                dict(customer_id=de, tag="vip"),
                dict(customer_id=de, tag="newsletter"),
                dict(customer_id=at, tag="vip"),
            ],
        )
    return w


async def add_segment(
    db: Database,
    *,
    kind: str = "dynamic",
    definition: Any = None,
    status: str = "active",
    members: list[int] = (),  # type: ignore[assignment]
) -> int:
    async with db.unit_of_work() as s:
        [sid] = await _add(
            s,
            Segment,
            [
                dict(
                    name=f"s-{datetime.now(UTC).timestamp()}",
                    kind=kind,
                    status=status,
                    definition=definition,
                    created_by="test",
                )
            ],
        )
        if members:
            await s.execute(
                insert(table(SegmentMember)), [dict(segment_id=sid, customer_id=m) for m in members]
            )
    return sid


async def set_definition(db: Database, segment_id: int, definition: Any) -> None:
    async with db.unit_of_work() as s:
        seg = await s.get(Segment, segment_id)
        assert seg is not None
        seg.definition = definition


async def members(
    db: Database, w: World, doc: Any, *, customer_id: int | None = None, now: datetime = NOW
) -> set[str]:
    async with db.read_only() as s:
        resolved = await validate(s, doc)
        stmt = compile_members(resolved, now=now, customer_id=customer_id)
        ids = (await s.execute(stmt)).scalars().all()
        _ = select  # keep the import for callers composing statements
    return {w.names[i] for i in ids}
