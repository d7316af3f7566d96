"""``trainModel`` (queues the refresh_model job) and ``promoteModel``."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.errors import error_type, to_errors
from api.ids import BadId, decode_id
from api.recommend.types import ModelVersion
from api.tasks.queries import Task
from domain.errors import DomainError
from domain.recommend import service

PromoteModelError, PromoteModelErrorCode = error_type(
    "PromoteModel",
    ["INVALID", "INVALID_VALUE", "NOT_FOUND", "NOT_CANDIDATE", "WORSE_THAN_ACTIVE", "CONFLICT"],
    "Why promoteModel was refused (WORSE_THAN_ACTIVE names both NDCG@10 figures and the "
    "tolerance; CONFLICT: another promotion won a race); nothing changed.",
)


TrainModelError, TrainModelErrorCode = error_type(
    "TrainModel", ["INVALID", "TOO_LONG"], "Why trainModel was refused; nothing was queued."
)


@strawberry.input(description="The job trains the configured hybrid (PRECIS_RECOMMEND_ALGORITHMS).")
class TrainModelInput:
    reason: str | None = strawberry.field(
        default=None, description="Why (kept with the task and in the audit log; at most 500)."
    )


@strawberry.type
class TrainModelPayload:
    task: Task | None = strawberry.field(
        description="Poll it with `task(id)` (jobs:read): result.step, done/total, then "
        "result.versionId, or status failed with the error."
    )
    queued: bool = strawberry.field(
        description="False when a refresh was already queued or running: that task is returned."
    )
    errors: list[TrainModelError]  # type: ignore[valid-type]


@strawberry.input
class PromoteModelInput:
    version_id: strawberry.ID
    force: bool = strawberry.field(
        default=False, description="Promote even if its NDCG@10 is worse than the active one's."
    )


@strawberry.type
class PromoteModelPayload:
    version: ModelVersion | None
    previous: ModelVersion | None = strawberry.field(description="The version it replaced.")
    forced: bool = strawberry.field(
        description="True when it was worse than the active version and force made it through."
    )
    errors: list[PromoteModelError]  # type: ignore[valid-type]


@strawberry.type
class RecommendMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes("models:write")],
        description="Train, evaluate and register a candidate recommendation model (the "
        "refresh_model job, queued once this commits). Returns the task to poll.",
    )
    async def train_model(
        self, info: Info, input: TrainModelInput | None = None
    ) -> TrainModelPayload:
        ctx = info.context
        reason = input.reason if input is not None else None
        if reason is not None and len(reason) > 500:
            error = TrainModelError(
                code=TrainModelErrorCode["TOO_LONG"],
                field=["input", "reason"],
                message="reason is at most 500 characters",
            )
            return TrainModelPayload(task=None, queued=False, errors=[error])
        task, queued = await service.request_training(ctx.session, ctx.actor, reason=reason)
        if queued:
            ctx.jobs.add("refresh_model", task.id, job_id=task.id)
        return TrainModelPayload(task=task, queued=queued, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes("models:write")],
        description="Make a candidate the active model; the previous active one is retired. "
        "Refused when its NDCG@10 is below the active one's by more than "
        "PRECIS_RECOMMEND_PROMOTE_TOLERANCE, unless force.",
    )
    async def promote_model(self, info: Info, input: PromoteModelInput) -> PromoteModelPayload:
        ctx = info.context
        try:
            try:
                pk = decode_id(str(input.version_id), "ModelVersion")[1]
            except BadId as exc:
                raise DomainError.one("INVALID_VALUE", str(exc), "input", "versionId") from exc
            done = await service.promote(
                ctx.session, ctx.actor, ctx.services.settings, pk, force=input.force
            )
        except DomainError as exc:
            return PromoteModelPayload(
                version=None,
                previous=None,
                forced=False,
                errors=to_errors(PromoteModelError, PromoteModelErrorCode, exc),
            )
        return PromoteModelPayload(
            version=done.version,  # type: ignore[arg-type]
            previous=done.previous,  # type: ignore[arg-type]
            forced=done.forced,
            errors=[],
        )
