"""Privacy mutations (``privacy:manage``): requests, data export and erasure."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.errors import error_type, to_errors
from api.privacy.common import target_user
from api.privacy.queries import request_pk
from api.privacy.types import (
    DataExportNode,
    PrivacyRequestNode,
    PrivacyRequestStatus,
    PrivacyRequestType,
)
from domain.errors import DomainError
from domain.privacy import erase, export, service

PrivacyError, PrivacyErrorCode = error_type(
    "Privacy",
    ["INVALID", "REQUIRED", "TOO_LONG", "NOT_FOUND", "INVALID_TRANSITION"],
    "Why a privacy mutation was refused.",
)


@strawberry.input
class CreatePrivacyRequestInput:
    type: PrivacyRequestType
    user_id: strawberry.ID | None = None
    user_external_id: str | None = None
    details: str = strawberry.field(default="", description="What was asked; at most 4000 chars.")


@strawberry.input
class UpdatePrivacyRequestInput:
    id: strawberry.ID
    status: PrivacyRequestStatus
    resolution: str | None = strawberry.field(
        default=None, description="Required to complete or reject."
    )


@strawberry.type
class PrivacyRequestPayload:
    privacy_request: PrivacyRequestNode | None
    errors: list[PrivacyError]  # type: ignore[valid-type]


@strawberry.input
class RequestDataExportInput:
    user_id: strawberry.ID | None = None
    user_external_id: str | None = None


@strawberry.type
class RequestDataExportPayload:
    data_export: DataExportNode | None
    privacy_request: PrivacyRequestNode | None
    errors: list[PrivacyError]  # type: ignore[valid-type]


@strawberry.input
class EraseUserInput:
    user_id: strawberry.ID | None = None
    user_external_id: str | None = None
    privacy_request_id: strawberry.ID | None = strawberry.field(
        default=None, description="An open erasure request to complete; else one is created."
    )


@strawberry.type
class EraseUserPayload:
    privacy_request: PrivacyRequestNode | None
    events_anonymised: int
    orders_anonymised: int
    errors: list[PrivacyError]  # type: ignore[valid-type]


def export_job_id(export_id: str) -> str:
    return f"export:{export_id}"


@strawberry.type
class PrivacyMutations:
    @strawberry.mutation(permission_classes=[RequireScopes("privacy:manage")])
    async def create_privacy_request(
        self, info: Info, input: CreatePrivacyRequestInput
    ) -> PrivacyRequestPayload:
        ctx = info.context
        try:
            customer_id = await target_user(info, input.user_id, input.user_external_id)
            row = await service.create_request(
                ctx.session,
                ctx.actor,
                type=input.type.value,
                customer_id=customer_id,
                details=input.details,
                due_days=ctx.services.settings.privacy_due_days,
            )
        except DomainError as exc:
            return PrivacyRequestPayload(
                privacy_request=None, errors=to_errors(PrivacyError, PrivacyErrorCode, exc)
            )
        return PrivacyRequestPayload(privacy_request=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(permission_classes=[RequireScopes("privacy:manage")])
    async def update_privacy_request(
        self, info: Info, input: UpdatePrivacyRequestInput
    ) -> PrivacyRequestPayload:
        ctx = info.context
        try:
            row = await service.update_request(
                ctx.session,
                ctx.actor,
                request_pk(input.id),
                status=input.status.value,
                resolution=input.resolution,
            )
        except DomainError as exc:
            return PrivacyRequestPayload(
                privacy_request=None, errors=to_errors(PrivacyError, PrivacyErrorCode, exc)
            )
        return PrivacyRequestPayload(privacy_request=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes("privacy:manage")],
        description="Queue a complete JSON export of one shopper (answers an access request).",
    )
    async def request_data_export(
        self, info: Info, input: RequestDataExportInput
    ) -> RequestDataExportPayload:
        ctx = info.context
        try:
            customer_id = await target_user(info, input.user_id, input.user_external_id)
            row, request = await export.request_export(
                ctx.session,
                ctx.actor,
                customer_id,
                due_days=ctx.services.settings.privacy_due_days,
            )
        except DomainError as exc:
            return RequestDataExportPayload(
                data_export=None,
                privacy_request=None,
                errors=to_errors(PrivacyError, PrivacyErrorCode, exc),
            )
        ctx.jobs.add("build_export", row.id, job_id=export_job_id(row.id))
        return RequestDataExportPayload(
            data_export=row,  # type: ignore[arg-type]
            privacy_request=request,  # type: ignore[arg-type]
            errors=[],
        )

    @strawberry.mutation(
        permission_classes=[RequireScopes("privacy:manage")],
        description="Erase a shopper: PII deleted, events and orders anonymised, in one step.",
    )
    async def erase_user(self, info: Info, input: EraseUserInput) -> EraseUserPayload:
        ctx = info.context
        try:
            customer_id = await target_user(info, input.user_id, input.user_external_id)
            done = await erase.erase_user(
                ctx.session,
                ctx.actor,
                customer_id,
                privacy_request_id=(
                    request_pk(input.privacy_request_id)
                    if input.privacy_request_id is not None
                    else None
                ),
                due_days=ctx.services.settings.privacy_due_days,
            )
        except DomainError as exc:
            return EraseUserPayload(
                privacy_request=None,
                events_anonymised=0,
                orders_anonymised=0,
                errors=to_errors(PrivacyError, PrivacyErrorCode, exc),
            )
        return EraseUserPayload(
            privacy_request=done.request,  # type: ignore[arg-type]
            events_anonymised=done.events,
            orders_anonymised=done.orders,
            errors=[],
        )
