"""Consent types shared by ``setConsents``, ``me { setConsents }`` and ``User.consents``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from api.errors import error_type
from api.ids import encode_id
from api.relay import Connection, check_first, connection, parse_after
from domain.consents import service
from domain.consents.models import PURPOSES, Consent

if TYPE_CHECKING:
    from api.context import Context


@strawberry.enum(description="What a shopper consents to (or refuses).")
class ConsentPurpose(Enum):
    PERSONALIZATION = "personalization"
    ANALYTICS = "analytics"
    EMAIL = "email"
    PUSH = "push"
    SMS = "sms"
    INAPP = "inapp"
    THIRD_PARTY = "third_party"


assert tuple(p.value for p in ConsentPurpose) == PURPOSES

SetConsentsError, SetConsentsErrorCode = error_type(
    "SetConsents",
    [
        "INVALID",
        "REQUIRED",
        "TOO_LONG",
        "TOO_MANY",
        "UNKNOWN_FIELD",
        "INVALID_PURPOSE",
        "DUPLICATE",
        "NOT_FOUND",
    ],
    "Why setConsents was refused; `index` is the consent item's position.",
)


@strawberry.input(description="One consent decision; appended to the purpose's history.")
class ConsentInput:
    purpose: ConsentPurpose
    granted: bool
    source: str = strawberry.field(
        description="Where the decision was made, e.g. checkout, cookie_banner, app_settings."
    )
    policy_version: str = strawberry.field(description="The privacy policy version shown.")


def consent_items(inputs: Sequence[ConsentInput]) -> list[dict[str, Any]]:
    """``ConsentInput``s as the dicts ``domain.consents.service.set_consents`` takes."""
    return [
        {
            "purpose": i.purpose.value,
            "granted": i.granted,
            "source": i.source,
            "policy_version": i.policy_version,
        }
        for i in inputs
    ]


@strawberry.type(description="One recorded consent decision (history is append-only).")
class ConsentRecord:
    granted: bool
    source: str
    policy_version: str
    recorded_at: datetime

    @strawberry.field
    @staticmethod
    def id(root: Consent) -> strawberry.ID:
        return strawberry.ID(encode_id("Consent", root.id or 0))

    @strawberry.field
    @staticmethod
    def purpose(root: Consent) -> ConsentPurpose:
        return ConsentPurpose(root.purpose)

    @strawberry.field(description="The OAuth client that recorded it.")
    @staticmethod
    def recorded_by_client_id(root: Consent) -> str:
        return root.actor_client_id


@strawberry.type(description="The current state of one purpose: its latest record.")
class ConsentState:
    purpose: ConsentPurpose
    recorded: bool = strawberry.field(description="False if no decision was ever recorded.")
    granted: bool = strawberry.field(description="False when not recorded (no consent).")
    since: datetime | None = strawberry.field(description="When the latest record was made.")
    source: str | None
    policy_version: str | None


def states(by_purpose: dict[str, Consent]) -> list[ConsentState]:
    out = []
    for p in PURPOSES:
        c = by_purpose.get(p)
        out.append(
            ConsentState(
                purpose=ConsentPurpose(p),
                recorded=c is not None,
                granted=bool(c and c.granted),
                since=c.recorded_at if c else None,
                source=c.source if c else None,
                policy_version=c.policy_version if c else None,
            )
        )
    return out


def current_loader(ctx: Context) -> DataLoader[int, dict[str, Consent]]:
    async def load(ids: Sequence[int]) -> list[dict[str, Consent]]:
        found = await service.current(ctx.session, ids)
        return [found.get(i, {}) for i in ids]

    return DataLoader(load_fn=load)


@strawberry.type(description="A shopper's consents: the current state per purpose and history.")
class UserConsents:
    customer_id: strawberry.Private[int]

    @strawberry.field(description="Every purpose, in a fixed order, recorded or not.")
    async def current(self, info: Info) -> list[ConsentState]:
        found = await info.context.loader("consents_current", current_loader).load(self.customer_id)
        return states(found)

    @strawberry.field(description="Whether the purpose is currently granted.")
    async def granted(self, info: Info, purpose: ConsentPurpose) -> bool:
        found = await info.context.loader("consents_current", current_loader).load(self.customer_id)
        c = found.get(purpose.value)
        return bool(c and c.granted)

    @strawberry.field(description="Every record, newest first.")
    async def history(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        purpose: ConsentPurpose | None = None,
    ) -> Connection[ConsentRecord]:
        check_first(first)
        cursor = parse_after(after)
        session = info.context.session
        p = purpose.value if purpose is not None else None
        rows = await service.history_page(
            session, self.customer_id, purpose=p, first=first, after=cursor
        )
        return connection(
            rows,
            first=first,
            after=cursor,
            count=lambda: service.history_count(session, self.customer_id, p),
        )


@strawberry.type
class SetConsentsPayload:
    consents: list[ConsentRecord] = strawberry.field(
        description="The records written, in input order; empty if any item failed."
    )
    state: UserConsents | None = strawberry.field(
        description="The shopper's consents after the change; null if refused."
    )
    errors: list[SetConsentsError]  # type: ignore[valid-type]


async def record_consents(info: Any, customer_id: int, consents: list[Any]) -> SetConsentsPayload:
    """Run ``set_consents`` for ``customer_id`` as the caller and build the payload (shared by
    ``setConsents`` and ``me { setConsents }``)."""
    from domain.consents import service
    from domain.errors import DomainError

    try:
        rows = await service.set_consents(
            info.context.session, info.context.actor, customer_id, consent_items(consents)
        )
    except DomainError as exc:
        return refused_consents(exc)
    from domain.segments.membership import CONSENT_CHANGES, queue_reevaluation

    ctx = info.context
    queue_reevaluation(
        ctx.jobs, f"{ctx.request_id}:consents", CONSENT_CHANGES, customer_ids=[customer_id]
    )
    return SetConsentsPayload(
        consents=rows,  # type: ignore[arg-type]
        state=UserConsents(customer_id=customer_id),
        errors=[],
    )


def refused_consents(exc: Any) -> SetConsentsPayload:
    """The payload of a refused ``setConsents``: nothing recorded, the typed errors."""
    from api.errors import to_errors

    return SetConsentsPayload(
        consents=[], state=None, errors=to_errors(SetConsentsError, SetConsentsErrorCode, exc)
    )
