"""The privacy request log: requests by type, a small state machine and due dates.

States: ``open`` -> ``in_progress`` -> ``completed`` | ``rejected``; an open request may also be
rejected at once (e.g. the person could not be verified). ``completed`` and ``rejected`` are final.
Erasure and data export complete their request themselves (from ``open`` or ``in_progress``).
A request is overdue while it is unresolved (open or in progress) past its due date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.audit import service as audit
from domain.audit.service import Actor
from domain.columns import utcnow
from domain.errors import DomainError
from domain.privacy.models import REQUEST_STATUSES, REQUEST_TYPES, PrivacyRequest
from domain.sql import count_matching, keyset_page
from domain.users.models import Customer

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "rejected"}),
    "in_progress": frozenset({"completed", "rejected"}),
    "completed": frozenset(),
    "rejected": frozenset(),
}
UNRESOLVED = ("open", "in_progress")
MAX_DETAILS = 4000
MAX_RESOLUTION = 4000


async def create_request(
    session: AsyncSession,
    actor: Actor,
    *,
    type: str,
    customer_id: int,
    details: str = "",
    due_days: int,
    status: str = "open",
) -> PrivacyRequest:
    if type not in REQUEST_TYPES:
        raise DomainError.one("INVALID", f"type must be one of {', '.join(REQUEST_TYPES)}", "type")
    if "\x00" in details:  # PostgreSQL text cannot hold NUL
        raise DomainError.one("INVALID", "details contains a NUL character", "input", "details")
    if len(details) > MAX_DETAILS:
        raise DomainError.one(
            "TOO_LONG", f"details is longer than {MAX_DETAILS} characters", "input", "details"
        )
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise DomainError.one("NOT_FOUND", "no such user", "input", "userId")
    now = utcnow()
    request = PrivacyRequest(
        type=type,
        status=status,
        customer_id=customer_id,
        customer_external_id=customer.external_id,
        details=details,
        requested_by_client_id=actor.client_id[:64],
        received_at=now,
        due_at=now + timedelta(days=due_days),
        updated_at=now,
    )
    session.add(request)
    await session.flush()
    await audit.record(
        session,
        actor,
        "privacy_request.create",
        "PrivacyRequest",
        request.id,
        fields=["type", "status", "details"],
        details={"type": type, "customer_id": customer_id},
    )
    return request


async def update_request(
    session: AsyncSession, actor: Actor, request_id: int, *, status: str, resolution: str | None
) -> PrivacyRequest:
    request = await session.get(PrivacyRequest, request_id)
    if request is None:
        raise DomainError.one("NOT_FOUND", "no such privacy request", "input", "id")
    if status not in REQUEST_STATUSES:
        raise DomainError.one("INVALID", "unknown status", "input", "status")
    if status not in TRANSITIONS[request.status]:
        allowed = ", ".join(sorted(TRANSITIONS[request.status])) or "none (final)"
        raise DomainError.one(
            "INVALID_TRANSITION",
            f"{request.status} -> {status} is not allowed; allowed: {allowed}",
            "input",
            "status",
        )
    if resolution is not None and "\x00" in resolution:
        raise DomainError.one(
            "INVALID", "resolution contains a NUL character", "input", "resolution"
        )
    if resolution is not None and len(resolution) > MAX_RESOLUTION:
        raise DomainError.one(
            "TOO_LONG",
            f"resolution is longer than {MAX_RESOLUTION} characters",
            "input",
            "resolution",
        )
    if status in ("completed", "rejected") and not (resolution or "").strip():
        raise DomainError.one("REQUIRED", "say how the request was resolved", "input", "resolution")
    before = request.status
    _move(request, status, resolution)
    await session.flush()
    await audit.record(
        session,
        actor,
        "privacy_request.update",
        "PrivacyRequest",
        request.id,
        fields=["status"] + (["resolution"] if resolution is not None else []),
        details={"from": before, "to": status},
    )
    return request


def _move(request: PrivacyRequest, status: str, resolution: str | None) -> None:
    now = utcnow()
    request.status = status
    if resolution is not None:
        request.resolution = resolution.strip()
    if status in ("completed", "rejected"):
        request.completed_at = now
    request.updated_at = now


async def complete(
    session: AsyncSession, request: PrivacyRequest, resolution: str
) -> PrivacyRequest:
    """Complete an unresolved request on behalf of the system (erasure, export)."""
    if request.status in UNRESOLVED:
        _move(request, "completed", resolution)
        await session.flush()
    return request


@dataclass(frozen=True)
class RequestFilter:
    status: str | None = None
    type: str | None = None
    overdue: bool | None = None
    customer_id: int | None = None


def filtered(flt: RequestFilter, now: datetime | None = None) -> Select[PrivacyRequest]:
    stmt = select(PrivacyRequest)
    if flt.status is not None:
        stmt = stmt.where(col(PrivacyRequest.status) == flt.status)
    if flt.type is not None:
        stmt = stmt.where(col(PrivacyRequest.type) == flt.type)
    if flt.customer_id is not None:
        stmt = stmt.where(col(PrivacyRequest.customer_id) == flt.customer_id)
    if flt.overdue is not None:
        late = col(PrivacyRequest.status).in_(UNRESOLVED) & (
            col(PrivacyRequest.due_at) < (now or utcnow())
        )
        stmt = stmt.where(late if flt.overdue else ~late)
    return stmt


async def page(
    session: AsyncSession, flt: RequestFilter, *, first: int, after: int | None
) -> list[PrivacyRequest]:
    """Oldest first (the order they must be answered in)."""
    return await keyset_page(
        session, filtered(flt), col(PrivacyRequest.id), first=first, after=after
    )


async def count(session: AsyncSession, flt: RequestFilter) -> int:
    return await count_matching(session, filtered(flt), col(PrivacyRequest.id))


def is_overdue(request: PrivacyRequest, now: datetime | None = None) -> bool:
    return request.status in UNRESOLVED and request.due_at < (now or utcnow())
