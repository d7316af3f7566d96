"""Erasure (GDPR article 17) in one unit of work.

The customer row is deleted, and with it (foreign-key cascades) tags, consents, profile, devices and
identity links. Events and orders are kept but anonymised (no customer, no anonymous id, event
properties emptied), so counts, revenue and every aggregate built on them stay correct. The
shopper's data exports are deleted. An ``erasure`` privacy request is completed (or created and
completed) and the audit entry ``user.erase`` names counts, never personal data.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.audit import service as audit
from domain.audit.service import Actor
from domain.errors import DomainError
from domain.events.models import Event, IdentityLink
from domain.orders.models import Order
from domain.privacy import service as privacy_requests
from domain.privacy.models import DataExport, PrivacyRequest
from domain.recommend.models import RecommendationImpression
from domain.sql import table
from domain.users.models import Customer


@dataclass(frozen=True)
class Erased:
    request: PrivacyRequest
    events: int
    orders: int
    exports: int


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def erase_user(
    session: AsyncSession,
    actor: Actor,
    customer_id: int,
    *,
    privacy_request_id: int | None = None,
    due_days: int,
) -> Erased:
    # Lock the customer row first (PostgreSQL; SQLite runs one writer at a time anyway): an event or
    # order being written for this customer holds a key-share lock on it, so erasure waits for it
    # and then anonymises it too; one arriving later fails its foreign-key check instead of
    # linking to a customer being erased.
    customer = (
        await session.execute(
            select(Customer).where(col(Customer.id) == customer_id).with_for_update()
        )
    ).scalar_one_or_none()
    if customer is None:
        raise DomainError.one("NOT_FOUND", "no such user", "input", "userId")
    request: PrivacyRequest | None = None
    if privacy_request_id is not None:
        request = await session.get(PrivacyRequest, privacy_request_id)
        if request is None:
            raise DomainError.one(
                "NOT_FOUND", "no such privacy request", "input", "privacyRequestId"
            )
        if request.type != "erasure" or request.customer_id != customer_id:
            raise DomainError.one(
                "INVALID",
                "the privacy request is not an erasure request for this user",
                "input",
                "privacyRequestId",
            )
        if request.status not in privacy_requests.UNRESOLVED:
            raise DomainError.one(
                "INVALID_TRANSITION",
                f"the privacy request is already {request.status}",
                "input",
                "privacyRequestId",
            )
    if request is None:
        request = await privacy_requests.create_request(
            session, actor, type="erasure", customer_id=customer_id, due_days=due_days
        )

    links = table(IdentityLink)
    anonymous_ids = list(
        await session.scalars(
            select(links.c.anonymous_id).where(links.c.customer_id == customer_id)
        )
    )
    ev = table(Event)
    ev_match = ev.c.customer_id == customer_id
    if anonymous_ids:
        ev_match = or_(ev_match, ev.c.anonymous_id.in_(anonymous_ids))
    events = _count(
        await session.execute(
            update(ev).where(ev_match).values(customer_id=None, anonymous_id=None, properties={})
        )
    )
    od = table(Order)
    od_match = od.c.customer_id == customer_id
    if anonymous_ids:
        od_match = or_(od_match, od.c.anonymous_id.in_(anonymous_ids))
    orders = _count(
        await session.execute(
            update(od).where(od_match).values(customer_id=None, anonymous_id=None)
        )
    )
    # Recommendation impressions keep their counts; the customer goes by ON DELETE SET NULL, the
    # visitor ids linked to the customer here.
    if anonymous_ids:
        imp = table(RecommendationImpression)
        await session.execute(
            update(imp).where(imp.c.anonymous_id.in_(anonymous_ids)).values(anonymous_id=None)
        )
    ex = table(DataExport)
    exports = _count(await session.execute(delete(ex).where(ex.c.customer_id == customer_id)))
    await session.execute(delete(table(Customer)).where(table(Customer).c.id == customer_id))
    session.expunge(customer)
    await privacy_requests.complete(session, request, "erased")
    await audit.record(
        session,
        actor,
        "user.erase",
        "User",
        customer_id,
        details={
            "privacy_request_id": request.id,
            "events_anonymised": events,
            "orders_anonymised": orders,
            "exports_deleted": exports,
        },
    )
    return Erased(request=request, events=events, orders=orders, exports=exports)
