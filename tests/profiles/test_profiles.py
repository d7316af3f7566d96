"""Profile recompute: hand-computed RFM scores, lifecycle stages and transitions, CLV, refunds and
cancellations, active hours in the shopper's zone, top categories and brands, idempotence, and
``User.profile`` over GraphQL. Every test runs on SQLite and PostgreSQL.

The fixture store (now = 2026-06-01 12:00 UTC, window 365 days, fewer than 10 repeat buyers so the
typical gap is the 30-day default: at risk after 60 days, churned after 120):

    customer  orders (days ago: net value)                 stage    R F M  spend
    a         10: 100 (line p1), 40: 50, 70: 30             loyal    4 5 4  high
    b         5: 20                                         new      5 1 1  low
    c         200: 40, 230: 60                              churned  1 2 3  medium
    d         20: 500 refunded 100; cancelled 1000;          new      2 1 5  top
              fully refunded 70
    e         500: 10 (outside the window)                  churned  - - -  none
    f         nothing                                       new      - - -  none
    g         90: 25, 100: 25                               at_risk  1 2 1  low
    h         15: 35, 45: 35                                active   3 2 2  low

Ranks among the 6 buyers in the window; score = 1 + floor(5 (rank - 1) / 6), ties share the lowest
rank: recency by last order c<g<d<h<a<b -> 1,1,2,3,4,5; frequency b=d(1) < c=g=h(2) < a(3) -> ranks
1,1,3,3,3,6 -> 1,1,2,2,2,5; monetary b20<g50<h70<c100<a180<d400 -> 1,1,2,3,4,5. Spend level by
cumulative share: b .17, g .33, h .50 low; c .67 medium; a .83 high; d 1.0 top.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from domain.catalog.models import Category, Product
from domain.db import Database
from domain.events.models import Event
from domain.orders.models import Order, OrderLine
from domain.profiles import service
from domain.profiles.models import CustomerProfile
from domain.settings import Settings
from domain.users.models import Customer
from tests.conftest import Api, count_rows, error_codes

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ORDERS: dict[str, list[tuple[int, str, str, dict[str, Any]]]] = {
    "a": [
        (10, "100", "placed", {"line": "p1"}),
        (40, "50", "paid", {}),
        (70, "30", "fulfilled", {}),
    ],
    "b": [(5, "20", "placed", {})],
    "c": [(200, "40", "placed", {}), (230, "60", "placed", {})],
    "d": [
        (20, "500", "partially_refunded", {"refunded": "100"}),
        (25, "1000", "cancelled", {}),
        (30, "70", "refunded", {"refunded": "70"}),
    ],
    "e": [(500, "10", "placed", {})],
    "f": [],
    "g": [(90, "25", "placed", {}), (100, "25", "placed", {})],
    "h": [(15, "35", "placed", {}), (45, "35", "placed", {})],
}
ZONES = {"a": "Europe/Berlin", "h": "America/New_York"}


def no_clv(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"profile_clv_model": "off", **changes})


async def seed(db: Database) -> dict[str, int]:
    """The store in the module docstring; returns customer ids by external id."""
    async with db.unit_of_work() as s:
        shoes = Category(name="Running", path="Shoes > Running", depth=1)
        bags = Category(name="Bags", path="Bags", depth=0)
        s.add_all([shoes, bags])
        await s.flush()
        p1 = Product(
            external_id="p1",
            title="Runner",
            category_id=shoes.id,
            brand="Acme",
            price=Decimal("100"),
            currency="EUR",
        )
        p2 = Product(
            external_id="p2",
            title="Tote",
            category_id=bags.id,
            brand="Zed",
            price=Decimal("20"),
            currency="EUR",
        )
        s.add_all([p1, p2])
        customers = {k: Customer(external_id=k, timezone=ZONES.get(k)) for k in ORDERS}
        s.add_all(customers.values())
        await s.flush()
        n = 0
        for key, orders in ORDERS.items():
            for days, total, status, extra in orders:
                n += 1
                order = Order(
                    external_id=f"o{n}",
                    customer_id=customers[key].id,
                    status=status,
                    currency="EUR",
                    subtotal=Decimal(total),
                    total=Decimal(total),
                    refunded_total=Decimal(extra.get("refunded", "0")),
                    source_client_id="test",
                    placed_at=NOW - timedelta(days=days),
                    cancelled_at=NOW - timedelta(days=days) if status == "cancelled" else None,
                )
                s.add(order)
                await s.flush()
                if "line" in extra:
                    s.add(
                        OrderLine(
                            order_id=order.id or 0,
                            line_no=1,
                            product_id=p1.id,
                            product_external_id="p1",
                            quantity=1,
                            unit_price=Decimal(total),
                            total=Decimal(total),
                        )
                    )
        a, b = customers["a"].id, customers["b"].id
        events = [
            # a is in Europe/Berlin: 07:30 UTC is 08:30 in winter and 09:30 in summer.
            (a, "view", p1.id, datetime(2026, 1, 15, 7, 30, tzinfo=UTC), None),
            (a, "view", p1.id, datetime(2026, 5, 20, 7, 30, tzinfo=UTC), None),
            (a, "add_to_cart", p2.id, datetime(2026, 5, 20, 7, 45, tzinfo=UTC), None),
            # A purchase event that came from an order: its lines count instead.
            (a, "purchase", p2.id, datetime(2026, 5, 22, 10, 0, tzinfo=UTC), 1),
            # b has no zone: UTC.
            (b, "view", p2.id, datetime(2026, 5, 20, 7, 30, tzinfo=UTC), None),
            (None, "view", p1.id, datetime(2026, 5, 20, 7, 30, tzinfo=UTC), None),
        ]
        for i, (cid, kind, pid, at, order_id) in enumerate(events):
            s.add(
                Event(
                    client_event_id=f"e{i}",
                    customer_id=cid,
                    anonymous_id=None if cid else "anon",
                    type=kind,
                    product_id=pid,
                    order_id=order_id,
                    source_client_id="test",
                    occurred_at=at,
                )
            )
        return {k: c.id for k, c in customers.items()}  # type: ignore[misc]


async def profiles(db: Database, ids: dict[str, int]) -> dict[str, CustomerProfile]:
    by_id = {v: k for k, v in ids.items()}
    async with db.read_only() as s:
        rows = await s.scalars(select(CustomerProfile))
        return {by_id[r.customer_id]: r for r in rows}


async def test_rfm_lifecycle_clv_and_spend_match_hand_computed_values(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    result = await service.recompute(db, no_clv(settings), now=NOW)
    assert result.customers == 8
    assert result.buyers == 7  # everyone but f
    assert result.ranked_buyers == 6  # e's only order is outside the window
    assert result.typical_interpurchase_days == 30.0
    got = await profiles(db, ids)

    def summary(p: CustomerProfile) -> tuple[Any, ...]:
        return (p.lifecycle_stage, p.r_score, p.f_score, p.m_score, p.spend_level)

    assert {k: summary(p) for k, p in got.items()} == {
        "a": ("loyal", 4, 5, 4, "high"),
        "b": ("new", 5, 1, 1, "low"),
        "c": ("churned", 1, 2, 3, "medium"),
        "d": ("new", 2, 1, 5, "top"),
        "e": ("churned", None, None, None, "none"),
        "f": ("new", None, None, None, "none"),
        "g": ("at_risk", 1, 2, 1, "low"),
        "h": ("active", 3, 2, 2, "low"),
    }
    a = got["a"]
    assert (a.orders_count, a.revenue, a.average_order_value, a.clv_historical) == (
        3,
        Decimal("180.00"),
        Decimal("60.00"),
        Decimal("180.00"),
    )
    assert (a.recency_days, a.rfm_frequency, a.rfm_monetary, a.currency) == (
        10,
        3,
        Decimal("180.00"),
        "EUR",
    )
    assert a.last_order_at == NOW - timedelta(days=10)
    assert a.first_order_at == NOW - timedelta(days=70)
    # e: all-time figures count, window figures do not.
    e = got["e"]
    assert (e.orders_count, e.clv_historical, e.rfm_frequency, e.rfm_monetary, e.recency_days) == (
        1,
        Decimal("10.00"),
        0,
        Decimal("0.00"),
        500,
    )
    f = got["f"]
    assert (f.orders_count, f.revenue, f.clv_historical, f.average_order_value) == (
        0,
        Decimal("0.00"),
        Decimal("0.00"),
        None,
    )
    assert (f.event_count, f.first_seen_at, f.active_hours) == (0, None, [0] * 24)
    assert result.stages == {"active": 1, "at_risk": 1, "churned": 2, "loyal": 1, "new": 3}


async def test_refunds_reduce_revenue_and_cancelled_or_fully_refunded_orders_do_not_count(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    await service.recompute(db, no_clv(settings), now=NOW)
    d = (await profiles(db, ids))["d"]
    # 500 - 100 refunded; the cancelled 1000 and the fully refunded 70 are not orders at all.
    assert (d.orders_count, d.revenue, d.clv_historical, d.average_order_value) == (
        1,
        Decimal("400.00"),
        Decimal("400.00"),
        Decimal("400.00"),
    )

    # When the store refunds more and cancels another order, the next recompute follows.
    async with db.unit_of_work() as s:
        order = await s.scalar(select(Order).where(col(Order.external_id) == "o7"))
        assert order is not None
        order.refunded_total = Decimal("450")
        b_order = await s.scalar(select(Order).where(col(Order.customer_id) == ids["b"]))
        assert b_order is not None
        b_order.status, b_order.cancelled_at = "cancelled", NOW
    await service.recompute(db, no_clv(settings), now=NOW)
    got = await profiles(db, ids)
    assert (got["d"].revenue, got["d"].clv_historical) == (Decimal("50.00"), Decimal("50.00"))
    b = got["b"]
    assert (b.orders_count, b.revenue, b.r_score, b.spend_level, b.lifecycle_stage) == (
        0,
        Decimal("0.00"),
        None,
        "none",
        "new",
    )


async def test_lifecycle_moves_from_loyal_to_at_risk_to_churned_as_time_passes(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    stages = []
    for later in (0, 55, 115):  # a's last order: 10, 65 (> 60) and 125 (> 120) days ago
        await service.recompute(db, no_clv(settings), now=NOW + timedelta(days=later))
        stages.append((await profiles(db, ids))["a"].lifecycle_stage)
    assert stages == ["loyal", "at_risk", "churned"]


async def test_lifecycle_thresholds_follow_the_settings(db: Database, settings: Settings) -> None:
    ids = await seed(db)
    changed = no_clv(settings, profile_default_interpurchase_days=100.0, profile_loyal_min_orders=2)
    await service.recompute(db, changed, now=NOW)
    got = await profiles(db, ids)
    # Gap 100: at risk after 200 days (c is exactly 200), churned after 400.
    assert {k: p.lifecycle_stage for k, p in got.items()} == {
        "a": "loyal",
        "b": "new",
        "c": "loyal",
        "d": "new",
        "e": "churned",
        "f": "new",
        "g": "loyal",
        "h": "loyal",
    }


def test_lifecycle_rules_at_their_edges(settings: Settings) -> None:
    life = service.lifecycle
    assert life(0, None, 30, settings) == "new"
    assert life(1, 60.0, 30, settings) == "new"
    assert life(1, 60.1, 30, settings) == "at_risk"
    assert life(5, 120.0, 30, settings) == "at_risk"
    assert life(5, 120.1, 30, settings) == "churned"
    assert life(2, 1, 30, settings) == "active"
    assert life(3, 1, 30, settings) == "loyal"


def test_quintile_scores_and_spend_levels() -> None:
    assert [service.score(r, 5) for r in range(1, 6)] == [1, 2, 3, 4, 5]
    assert [service.score(r, 10) for r in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert service.score(1, 1) == 1
    assert [service.spend_level(c) for c in (None, 0.5, 0.51, 0.8, 0.81, 0.95, 0.96)] == [
        "none",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "top",
    ]


async def test_active_hours_in_the_shoppers_zone_and_top_interests(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    await service.recompute(db, no_clv(settings), now=NOW)
    got = await profiles(db, ids)
    a, b = got["a"], got["b"]
    expected_a = [0] * 24
    expected_a[8] = 1  # 07:30 UTC in January = 08:30 CET
    expected_a[9] = 2  # 07:30 and 07:45 UTC in May = 09:xx CEST
    expected_a[12] = 1  # the purchase event at 10:00 UTC = 12:00 CEST
    assert a.active_hours == expected_a
    expected_b = [0] * 24
    expected_b[7] = 1
    assert b.active_hours == expected_b
    # Shoes: 2 views + 1 order line (5) = 7; Bags: add to cart 3 (the order's purchase event skipped).
    shoes, bags = await category_ids(db)
    assert a.top_categories == [
        {"id": shoes, "name": "Shoes > Running", "score": 7},
        {"id": bags, "name": "Bags", "score": 3},
    ]
    assert a.top_brands == [{"name": "Acme", "score": 7}, {"name": "Zed", "score": 3}]
    assert b.top_categories == [{"id": bags, "name": "Bags", "score": 1}]
    # First/last seen and the event count agree with the event table (the anonymous event is no one's).
    assert (a.event_count, a.first_seen_at, a.last_seen_at) == (
        4,
        datetime(2026, 1, 15, 7, 30, tzinfo=UTC),
        datetime(2026, 5, 22, 10, 0, tzinfo=UTC),
    )
    assert (b.event_count, got["c"].event_count) == (1, 0)


async def category_ids(db: Database) -> tuple[int, int]:
    async with db.read_only() as s:
        rows = {c.path: c.id for c in await s.scalars(select(Category))}
    return rows["Shoes > Running"], rows["Bags"]  # type: ignore[return-value]


async def test_recompute_is_idempotent_and_repairs_drifted_rows(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    await service.recompute(db, no_clv(settings), now=NOW)
    first = {k: dump(p) for k, p in (await profiles(db, ids)).items()}
    async with db.unit_of_work() as s:
        row = await s.get(CustomerProfile, ids["a"])
        assert row is not None
        row.event_count, row.lifecycle_stage, row.revenue = 999, "churned", Decimal("1")
    again = await service.recompute(db, no_clv(settings), now=NOW)
    assert again.customers == 8
    assert {k: dump(p) for k, p in (await profiles(db, ids)).items()} == first
    assert await count_rows(db, "customer_profile") == 8


def dump(p: CustomerProfile) -> dict[str, Any]:
    return {k: v for k, v in p.model_dump().items() if k != "updated_at"}


async def test_recompute_of_some_customers_touches_only_them(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    seen: list[tuple[int, int]] = []
    result = await service.recompute(
        db,
        no_clv(settings),
        now=NOW,
        customer_ids=[ids["a"], ids["d"], 10**9],
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result.customers == 2
    assert seen == [(0, 2), (2, 2)]
    got = await profiles(db, ids)
    assert sorted(got) == ["a", "d"]
    # Scores still rank a among every buyer, not among the two recomputed.
    assert (got["a"].r_score, got["a"].f_score, got["a"].m_score) == (4, 5, 4)


async def test_chunks_report_progress(db: Database, settings: Settings) -> None:
    await seed(db)
    seen: list[tuple[int, int]] = []
    result = await service.recompute(
        db,
        no_clv(settings, profile_chunk_size=100),
        now=NOW,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result.chunks == 1
    assert seen == [(0, 8), (8, 8)]


async def test_predictive_clv_fits_bgnbd_and_gamma_gamma(db: Database, settings: Settings) -> None:
    # 40 buyers: customer i orders every (10 + i) days, (i % 6) + 1 times, worth 10 + i each;
    # "gone" ordered 6 times 10 days apart, the last time 400 days ago.
    async with db.unit_of_work() as s:
        customers = [Customer(external_id=f"k{i}") for i in range(40)]
        gone = Customer(external_id="gone")
        s.add_all([*customers, gone])
        await s.flush()
        n = 0
        for i, c in enumerate(customers):
            for j in range(i % 6 + 1):
                n += 1
                s.add(
                    Order(
                        external_id=f"k{n}",
                        customer_id=c.id,
                        currency="EUR",
                        subtotal=Decimal(10 + i),
                        total=Decimal(10 + i),
                        source_client_id="test",
                        placed_at=NOW - timedelta(days=5 + j * (10 + i) + i),
                    )
                )
        for j in range(6):
            s.add(
                Order(
                    external_id=f"gone{j}",
                    customer_id=gone.id,
                    currency="EUR",
                    subtotal=Decimal(30),
                    total=Decimal(30),
                    source_client_id="test",
                    placed_at=NOW - timedelta(days=400 + 10 * j),
                )
            )
    result = await service.recompute(db, settings, now=NOW)
    assert result.clv["buyers"] == 41
    assert result.clv["repeat_buyers"] == 34
    assert result.clv["skipped"] is None
    assert set(result.clv["params"]) >= {"a", "b", "r", "alpha"}
    async with db.read_only() as s:
        rows = list(await s.scalars(select(CustomerProfile)))
    assert len(rows) == 41
    for row in rows:
        assert row.expected_purchases is not None and row.expected_purchases > 0
        assert row.probability_alive is not None and 0 < row.probability_alive <= 1
        assert row.clv_predicted is not None and row.clv_predicted > 0
    # Frequent buyers who stopped long ago are the least likely to be alive and to buy again.
    by_alive = sorted(rows, key=lambda r: r.probability_alive or 0)
    assert by_alive[0].customer_id == gone.id
    assert by_alive[0].probability_alive < 0.5  # type: ignore[operator]
    assert min(rows, key=lambda r: r.expected_purchases or 0).customer_id == gone.id


async def test_predictive_clv_is_skipped_with_too_few_buyers(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    result = await service.recompute(db, settings, now=NOW)
    assert result.clv["skipped"] is not None
    assert (await profiles(db, ids))["a"].clv_predicted is None


PROFILE = """
query($ext: String!) {
  user(externalId: $ext) {
    externalId
    profile {
      lifecycleStage spendLevel ordersCount eventCount
      rfm { recencyDays frequency monetary { amount currency } recencyScore frequencyScore monetaryScore }
      revenue { amount currency } averageOrderValue { amount currency }
      clvHistorical { amount currency } clvPredicted { amount } expectedPurchases probabilityAlive
      topCategories { categoryId path score } topBrands { brand score }
      activeHours firstSeenAt lastSeenAt firstOrderAt lastOrderAt computedAt
    }
  }
}"""


async def test_user_profile_over_graphql(api: Api, settings: Settings) -> None:
    await seed(api.db)
    before = await api.gql(PROFILE, {"ext": "a"}, scopes="users:read")
    assert "errors" not in before, before
    default = before["data"]["user"]["profile"]
    assert (default["lifecycleStage"], default["ordersCount"], default["computedAt"]) == (
        "NEW",
        0,
        None,
    )
    assert default["activeHours"] == [0] * 24

    await service.recompute(api.db, no_clv(settings), now=NOW)
    body = await api.gql(PROFILE, {"ext": "a"}, scopes="users:read")
    assert "errors" not in body, body
    p = body["data"]["user"]["profile"]
    assert p["lifecycleStage"] == "LOYAL" and p["spendLevel"] == "HIGH"
    assert p["rfm"] == {
        "recencyDays": 10,
        "frequency": 3,
        "monetary": {"amount": "180.00", "currency": "EUR"},
        "recencyScore": 4,
        "frequencyScore": 5,
        "monetaryScore": 4,
    }
    assert p["revenue"] == {"amount": "180.00", "currency": "EUR"}
    assert p["averageOrderValue"] == {"amount": "60.00", "currency": "EUR"}
    assert p["clvHistorical"] == {"amount": "180.00", "currency": "EUR"}
    assert (p["clvPredicted"], p["expectedPurchases"]) == (None, None)
    assert [c["path"] for c in p["topCategories"]] == ["Shoes > Running", "Bags"]
    assert p["topBrands"] == [{"brand": "Acme", "score": 7}, {"brand": "Zed", "score": 3}]
    assert p["lastOrderAt"] == "2026-05-22T12:00:00+00:00"
    assert p["lastSeenAt"] == "2026-05-22T10:00:00+00:00"
    assert p["computedAt"] == "2026-06-01T12:00:00+00:00"
    assert p["eventCount"] == 4


USERS = "{ users(first: 10) { edges { node { externalId profile { ordersCount } } } } }"


async def test_profiles_of_a_user_list_load_in_one_query(api: Api, settings: Settings) -> None:
    from sqlalchemy import event

    await seed(api.db)
    await service.recompute(api.db, no_clv(settings), now=NOW)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "customer_profile" in statement:
            statements.append(statement)

    engine = api.app.state.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        body = await api.gql(USERS, scopes="users:read")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert "errors" not in body, body
    orders = {
        e["node"]["externalId"]: e["node"]["profile"]["ordersCount"]
        for e in body["data"]["users"]["edges"]
    }
    assert orders == {"a": 3, "b": 1, "c": 2, "d": 1, "e": 1, "f": 0, "g": 2, "h": 2}
    assert len(statements) == 1


async def test_profile_needs_the_users_scope(api: Api) -> None:
    await seed(api.db)
    body = await api.gql(PROFILE, {"ext": "a"}, scopes="catalog:read")
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] == {"user": None}


ME_PROFILE = "{ me { user { externalId profile { ordersCount lifecycleStage } } } }"


async def test_a_shopper_reads_its_own_profile_and_no_other(api: Api, settings: Settings) -> None:
    from tests.me.helpers import shopper_token

    await seed(api.db)
    await service.recompute(api.db, no_clv(settings), now=NOW)
    token = await shopper_token(api, "a")
    body = await api.gql(ME_PROFILE, token=token)
    assert "errors" not in body, body
    assert body["data"]["me"]["user"] == {
        "externalId": "a",
        "profile": {"ordersCount": 3, "lifecycleStage": "LOYAL"},
    }
    other = await api.gql(PROFILE, {"ext": "d"}, token=token)
    assert error_codes(other) == ["FORBIDDEN"]
    assert other["data"] == {"user": None}


async def test_events_ingested_during_a_recompute_are_counted_once(
    db: Database, settings: Settings
) -> None:
    """Ingestion batches (events plus the live +n, one unit of work each, as trackEvents does)
    run while the recompute works through its chunks, for customers with and without a profile
    row; afterwards every profile's event count and last seen agree with the event table."""
    import asyncio
    import random

    from domain.profiles import live

    async with db.unit_of_work() as s:
        customers = [Customer(external_id=f"r{i}") for i in range(450)]
        s.add_all(customers)
    ids = [c.id or 0 for c in customers]
    small = no_clv(settings, profile_chunk_size=100)
    async with db.unit_of_work() as s:  # half of them have a profile row already
        await live.record_seen(s, {cid: live.Seen(NOW, NOW, 0) for cid in ids[::2]})
    rng = random.Random(7)

    async def ingest(batch: int) -> None:
        async with db.unit_of_work() as s:
            rows = []
            for j in range(20):
                at = NOW - timedelta(minutes=rng.randrange(10_000))
                cid = rng.choice(ids)
                rows.append((cid, at))
                s.add(
                    Event(
                        client_event_id=f"b{batch}-{j}",
                        customer_id=cid,
                        type="view",
                        source_client_id="test",
                        occurred_at=at,
                    )
                )
            await s.flush()
            await live.record_seen(s, dict(sorted(live.tally(rows).items())))
        await asyncio.sleep(0)

    async def ingestion() -> None:
        for batch in range(40):
            await ingest(batch)

    await asyncio.gather(service.recompute(db, small, now=NOW), ingestion())
    async with db.read_only() as s:
        by_customer = (
            select(col(Event.customer_id), func.count(), func.max(col(Event.occurred_at)))
            .where(col(Event.customer_id).is_not(None))
            .group_by(col(Event.customer_id))
        )
        stats = (await s.execute(by_customer)).all()
        counted: dict[int, int] = {cid or 0: n for cid, n, _ in stats}
        last: dict[int, datetime] = {cid or 0: at for cid, _, at in stats}
        rows = {r.customer_id: r for r in await s.scalars(select(CustomerProfile))}
    assert sum(counted.values()) == 800
    assert {cid: rows[cid].event_count for cid in ids if rows[cid].event_count} == counted
    assert {cid: rows[cid].last_seen_at for cid in counted} == {
        cid: at.replace(tzinfo=UTC) if at.tzinfo is None else at for cid, at in last.items()
    }


async def test_an_unknown_time_zone_counts_hours_in_utc(db: Database, settings: Settings) -> None:
    ids = await seed(db)
    async with db.unit_of_work() as s:
        a = await s.get(Customer, ids["a"])
        assert a is not None
        a.timezone = "Mars/Olympus_Mons"  # older rows may hold names no validation would pass
    await service.recompute(db, no_clv(settings), now=NOW)
    hours = (await profiles(db, ids))["a"].active_hours
    assert {h: n for h, n in enumerate(hours) if n} == {7: 3, 10: 1}


async def test_a_customer_erased_after_the_listing_gets_no_profile(
    db: Database, settings: Settings
) -> None:
    ids = await seed(db)
    last = ids["h"]
    async with db.unit_of_work() as s:
        # The recompute listed [last, last + 1]; customer last + 1 is gone when the chunk runs.
        rows = await service._chunk_rows(s, [last, last + 1], {}, {}, 30.0, settings, NOW)
        await service._upsert(s, rows)
    assert [r["customer_id"] for r in rows] == [last]
    assert await count_rows(db, "customer_profile") == 1
