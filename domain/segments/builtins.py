"""Built-in segments: dynamic segments every shop gets, keyed ``builtin:<name>``.

``seed`` creates the missing ones and brings changed ones to the definition below (a new version),
so it is safe to run at every migrate, demo load and ``precis segments seed``. Built-in segments
cannot be edited or archived through the API. The rules (docs/segments.md, "Built-in segments")
read the computed profile (docs/profiles.md) and behaviour events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.service import SYSTEM, Actor
from domain.segments import service


@dataclass(frozen=True)
class Builtin:
    name: str
    title: str
    description: str
    definition: dict[str, Any]

    @property
    def key(self) -> str:
        return f"builtin:{self.name}"


def _profile(field: str, op: str, value: Any = None, values: list[Any] | None = None) -> Any:
    leaf: dict[str, Any] = {"field": field, "op": op}
    if values is not None:
        leaf["values"] = values
    else:
        leaf["value"] = value
    return {"profile": leaf}


BUILTINS: tuple[Builtin, ...] = (
    Builtin(
        "new_customers",
        "New customers",
        "Bought once, recently: lifecycle stage new with at least one order (prospects without "
        "an order are not customers yet).",
        {"and": [_profile("lifecycleStage", "eq", "new"), _profile("ordersCount", "gte", 1)]},
    ),
    Builtin(
        "loyal",
        "Loyal customers",
        "Lifecycle stage loyal: at least PRECIS_PROFILE_LOYAL_MIN_ORDERS orders and buying at "
        "their usual pace.",
        _profile("lifecycleStage", "eq", "loyal"),
    ),
    Builtin(
        "potential",
        "Potential loyalists",
        "RFM group potential_loyalists: recent (R 4-5) with a few orders (F 2-3).",
        _profile("rfmGroup", "eq", "potential_loyalists"),
    ),
    Builtin(
        "at_risk",
        "At risk",
        "Lifecycle stage at_risk: no order for more than twice the shop's typical "
        "inter-purchase time.",
        _profile("lifecycleStage", "eq", "at_risk"),
    ),
    Builtin(
        "churned",
        "Churned",
        "Lifecycle stage churned: no order for more than four times the shop's typical "
        "inter-purchase time.",
        _profile("lifecycleStage", "eq", "churned"),
    ),
    Builtin(
        "high_value",
        "High value",
        "Spend level high or top: the top 20% of paying customers by revenue in the RFM window.",
        _profile("spendLevel", "in", values=["high", "top"]),
    ),
    Builtin(
        "cart_abandoners",
        "Cart abandoners",
        "Added to cart in the last 7 days but not in the last 24 hours alone, and no purchase "
        "event in the last 7 days.",
        {
            "and": [
                {
                    "behavior": {
                        "eventType": "add_to_cart",
                        "window": {"lastDays": 7, "olderThanHours": 24},
                    }
                },
                {"behavior": {"did": False, "eventType": "purchase", "window": {"lastDays": 7}}},
            ]
        },
    ),
    Builtin(
        "one_time_buyers",
        "One-time buyers",
        "Exactly one counted order, ever (cancelled and refunded orders do not count).",
        _profile("ordersCount", "eq", 1),
    ),
)


@dataclass(frozen=True)
class SeedResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


async def seed(session: AsyncSession, actor: Actor = SYSTEM) -> SeedResult:
    """Create or update the built-in segments in the caller's unit of work; idempotent."""
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for b in BUILTINS:
        seg = await service.get_by_key(session, b.key)
        if seg is None:
            await service.create_segment(
                session,
                actor,
                name=b.title,
                description=b.description,
                kind="dynamic",
                definition=b.definition,
                key=b.key,
                builtin=True,
            )
            created.append(b.name)
        elif (seg.name, seg.description, seg.definition) != (
            b.title,
            b.description,
            b.definition,
        ) or seg.status != "active":
            assert seg.id is not None
            if seg.status != "active":
                seg.status, seg.archived_at = "active", None
                await session.flush()
            await service.update_segment(
                session,
                actor,
                seg.id,
                name=b.title,
                description=b.description,
                definition=b.definition,
                allow_builtin=True,
            )
            updated.append(b.name)
        else:
            unchanged.append(b.name)
    return SeedResult(created, updated, unchanged)
