"""The ``Profile`` type: what the recompute job derived about a shopper (docs/profiles.md)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry

from api.catalog.types import Money
from api.ids import encode_id
from domain.profiles.models import LIFECYCLE_STAGES, SPEND_LEVELS, CustomerProfile


@strawberry.enum(description="The rules are in docs/profiles.md.")
class LifecycleStage(Enum):
    NEW = "new"
    ACTIVE = "active"
    LOYAL = "loyal"
    AT_RISK = "at_risk"
    CHURNED = "churned"


@strawberry.enum(
    description="NONE without a paid order in the RFM window, else by the shopper's revenue "
    "quantile among paying customers (docs/profiles.md)."
)
class SpendLevel(Enum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    TOP = "top"


assert tuple(s.value for s in LifecycleStage) == LIFECYCLE_STAGES
assert tuple(s.value for s in SpendLevel) == SPEND_LEVELS


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    if amount is None or currency is None:
        return None
    return Money.of(amount, currency)


@strawberry.type(description="Recency, frequency and monetary value over the RFM window.")
class Rfm:
    recency_days: int | None = strawberry.field(
        description="Days since the last order (any time); null without orders."
    )
    frequency: int = strawberry.field(description="Orders in the window.")
    monetary: Money | None = strawberry.field(description="Net revenue in the window.")
    recency_score: int | None = strawberry.field(
        description="1..5 by quintile among buyers in the window; null without an order there."
    )
    frequency_score: int | None
    monetary_score: int | None


@strawberry.type(description="A category the shopper is most interested in, with its score.")
class CategoryAffinity:
    category_id: strawberry.ID = strawberry.field(description="Global id of the Category.")
    path: str = strawberry.field(description='Category path, e.g. "Shoes > Running".')
    score: int = strawberry.field(description="Weighted events plus order lines (docs).")


@strawberry.type(description="A brand the shopper is most interested in, with its score.")
class BrandAffinity:
    brand: str
    score: int


@strawberry.type(description="Derived facts about a shopper, kept current by the profile job.")
class Profile:
    def __init__(self, row: CustomerProfile) -> None:
        self.row = row

    @strawberry.field(description="RFM values and scores.")
    def rfm(self) -> Rfm:
        r = self.row
        return Rfm(
            recency_days=r.recency_days,
            frequency=r.rfm_frequency,
            monetary=_money(r.rfm_monetary, r.currency),
            recency_score=r.r_score,
            frequency_score=r.f_score,
            monetary_score=r.m_score,
        )

    @strawberry.field(description="Lifecycle stage.")
    def lifecycle_stage(self) -> LifecycleStage:
        return LifecycleStage(self.row.lifecycle_stage)

    @strawberry.field(description="Spend level.")
    def spend_level(self) -> SpendLevel:
        return SpendLevel(self.row.spend_level)

    @strawberry.field(description="Orders, all time (cancelled and fully refunded ones excluded).")
    def orders_count(self) -> int:
        return self.row.orders_count

    @strawberry.field(description="Net revenue (totals less refunds), all time.")
    def revenue(self) -> Money | None:
        return _money(self.row.revenue, self.row.currency)

    @strawberry.field(description="Net revenue / orders, all time.")
    def average_order_value(self) -> Money | None:
        return _money(self.row.average_order_value, self.row.currency)

    @strawberry.field(description="Historical CLV: average order value x purchase count.")
    def clv_historical(self) -> Money | None:
        return _money(self.row.clv_historical, self.row.currency)

    @strawberry.field(description="Predicted value of the orders expected within the horizon.")
    def clv_predicted(self) -> Money | None:
        return _money(self.row.clv_predicted, self.row.currency)

    @strawberry.field(description="Expected orders within the CLV horizon (BG/NBD).")
    def expected_purchases(self) -> float | None:
        return self.row.expected_purchases

    @strawberry.field(description="Probability the shopper is still a customer (BG/NBD).")
    def probability_alive(self) -> float | None:
        return self.row.probability_alive

    @strawberry.field(description="Top 5 categories by interest, best first.")
    def top_categories(self) -> list[CategoryAffinity]:
        return [
            CategoryAffinity(
                category_id=strawberry.ID(encode_id("Category", int(c["id"]))),
                path=str(c["name"]),
                score=int(c["score"]),
            )
            for c in _list(self.row.top_categories)
        ]

    @strawberry.field(description="Top 5 brands by interest, best first.")
    def top_brands(self) -> list[BrandAffinity]:
        return [
            BrandAffinity(brand=str(b["name"]), score=int(b["score"]))
            for b in _list(self.row.top_brands)
        ]

    @strawberry.field(
        description="24 event counts by hour of the shopper's local day (their time zone, else UTC)."
    )
    def active_hours(self) -> list[int]:
        hours = list(self.row.active_hours or [])
        return hours if len(hours) == 24 else [0] * 24

    @strawberry.field(description="Events linked to the shopper.")
    def event_count(self) -> int:
        return self.row.event_count

    @strawberry.field(description="Time of the shopper's first event.")
    def first_seen_at(self) -> datetime | None:
        return self.row.first_seen_at

    @strawberry.field(description="Time of the shopper's latest event.")
    def last_seen_at(self) -> datetime | None:
        return self.row.last_seen_at

    @strawberry.field(description="Time of the first counted order.")
    def first_order_at(self) -> datetime | None:
        return self.row.first_order_at

    @strawberry.field(description="Time of the latest counted order.")
    def last_order_at(self) -> datetime | None:
        return self.row.last_order_at

    @strawberry.field(
        description="When the recompute job last computed this profile; null if never."
    )
    def computed_at(self) -> datetime | None:
        return self.row.computed_at


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value or [] if isinstance(v, dict)]
