"""Online A/B experiments: ``startExperiment``, ``stopExperiment``, ``experiments`` and
``experimentReport`` (all need models:write; shopper tokens never carry it)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.catalog.types import Money
from api.errors import error_type, to_errors
from api.ids import BadId, decode_id, encode_id
from api.relay import Connection, check_first, connection, parse_after
from domain.errors import DomainError, FieldError
from domain.recommend import experiments
from domain.recommend.models import Experiment as ExperimentRow

SCOPE = "models:write"

StartExperimentError, StartExperimentErrorCode = error_type(
    "StartExperiment",
    [
        "INVALID",
        "INVALID_VALUE",
        "TOO_LONG",
        "TOO_FEW",
        "TOO_MANY",
        "DUPLICATE",
        "NOT_FOUND",
        "NOT_SERVABLE",
        "CONFLICT",
    ],
    "Why startExperiment was refused (`index` is the arm's position; NOT_SERVABLE: the version "
    "failed or has no serving bundle; CONFLICT: another experiment is running); nothing changed.",
)
StopExperimentError, StopExperimentErrorCode = error_type(
    "StopExperiment",
    ["INVALID", "INVALID_VALUE", "NOT_FOUND", "NOT_RUNNING"],
    "Why stopExperiment was refused; nothing changed.",
)


@strawberry.enum(description="Whether an experiment is splitting traffic now.")
class ExperimentStatus(Enum):
    RUNNING = "running"
    STOPPED = "stopped"


@strawberry.type(description="One arm: the model version and its share of shoppers.")
class ExperimentArm:
    version_id: strawberry.ID = strawberry.field(description="The ModelVersion's global id.")
    version_number: int = strawberry.field(description="The version's number.")
    weight: float = strawberry.field(description="Share of shoppers (the arms' weights sum to 1).")


def _arm(version_id: int, weight: float) -> ExperimentArm:
    return ExperimentArm(
        version_id=strawberry.ID(encode_id("ModelVersion", version_id)),
        version_number=version_id,
        weight=weight,
    )


@strawberry.type(
    name="Experiment",
    description="An online A/B test: shoppers split between model versions by a stable hash "
    "(docs/recommendations.md, Experiments).",
)
class Experiment:
    name: str
    started_at: datetime
    stopped_at: datetime | None
    created_by: str | None = strawberry.field(description="client:subject that started it.")

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]
    @staticmethod
    def id(root: ExperimentRow) -> strawberry.ID:
        return strawberry.ID(encode_id("Experiment", root.id or 0))

    @strawberry.field(description="The experiment's number (recommendation impressions name it).")
    @staticmethod
    def number(root: ExperimentRow) -> int:
        return root.id or 0

    @strawberry.field
    @staticmethod
    def status(root: ExperimentRow) -> ExperimentStatus:
        return ExperimentStatus(root.status)

    @strawberry.field(
        description="In order: the first arm is the control the report compares with."
    )
    @staticmethod
    def arms(root: ExperimentRow) -> list[ExperimentArm]:
        return [_arm(int(a["version_id"]), float(a["weight"])) for a in root.arms]


@strawberry.type(
    description="CTR of this arm minus the first arm's, with a 95% interval (two-proportion "
    "normal approximation)."
)
class CtrDifference:
    value: float | None = strawberry.field(description="Null when an arm has no impressions.")
    low: float | None = strawberry.field(description="Null with `note` when data are too few.")
    high: float | None
    note: str | None = strawberry.field(description='e.g. "not enough data: ..."')


@strawberry.type(description="What one arm's shoppers saw and did.")
class ExperimentArmReport:
    version_id: strawberry.ID
    version_number: int
    weight: float
    impressions: int = strawberry.field(description="Recommendation answers served by this arm.")
    shoppers: int = strawberry.field(
        description="Distinct customers and anonymous visitors among them."
    )
    clicks: int = strawberry.field(
        description="Impressions followed by a view, add_to_cart, favorite or message_click event "
        "carrying their recommendationId (each impression counted once)."
    )
    ctr: float | None = strawberry.field(description="clicks / impressions; null without any.")
    conversions: int = strawberry.field(
        description="Impressions followed by a purchase event carrying their recommendationId."
    )
    conversion_rate: float | None = strawberry.field(description="conversions / impressions.")
    revenue: list[Money] = strawberry.field(
        description="Sum of those purchases' values, one entry per currency."
    )
    ctr_difference: CtrDifference | None = strawberry.field(
        description="Against the first arm; null for the first arm itself."
    )


@strawberry.type(description="Per-arm figures of an experiment, computed when asked.")
class ExperimentReport:
    experiment: Experiment
    arms: list[ExperimentArmReport]
    other_impressions: int = strawberry.field(
        description="Impressions of the experiment served by a version outside its arms (a "
        "fallback when an arm could not serve)."
    )


def _report(found: experiments.Report) -> ExperimentReport:
    arms = []
    for a in found.arms:
        d = a.ctr_difference
        arms.append(
            ExperimentArmReport(
                version_id=strawberry.ID(encode_id("ModelVersion", a.version_id)),
                version_number=a.version_id,
                weight=a.weight,
                impressions=a.impressions,
                shoppers=a.shoppers,
                clicks=a.clicks,
                ctr=a.ctr,
                conversions=a.conversions,
                conversion_rate=a.conversion_rate,
                revenue=[Money.of(amount, cur) for cur, amount in a.revenue.items()],
                ctr_difference=None
                if d is None
                else CtrDifference(value=d.value, low=d.low, high=d.high, note=d.note),
            )
        )
    return ExperimentReport(
        experiment=found.experiment,  # type: ignore[arg-type]
        arms=arms,
        other_impressions=found.other_impressions,
    )


@strawberry.input
class ExperimentArmInput:
    version_id: strawberry.ID = strawberry.field(description="A ModelVersion's global id.")
    weight: float = strawberry.field(description="Above 0; the arms' weights are normalised.")


@strawberry.input
class StartExperimentInput:
    name: str = strawberry.field(description="1-200 characters.")
    arms: list[ExperimentArmInput] = strawberry.field(
        description="2-5 arms with distinct versions; put the control (usually the active "
        "version) first."
    )


@strawberry.type
class StartExperimentPayload:
    experiment: Experiment | None
    errors: list[StartExperimentError]  # type: ignore[valid-type]


@strawberry.input
class StopExperimentInput:
    id: strawberry.ID


@strawberry.type
class StopExperimentPayload:
    experiment: Experiment | None
    errors: list[StopExperimentError]  # type: ignore[valid-type]


def _arms_of(arms: list[ExperimentArmInput]) -> list[dict[str, Any]]:
    """The domain's arms; undecodable version ids are INVALID_VALUE errors. Over the arm limit the
    ids are not decoded at all (the domain refuses the count)."""
    if len(arms) > experiments.MAX_ARMS:
        return [{"version_id": n, "weight": a.weight} for n, a in enumerate(arms)]
    out, errors = [], []
    for n, arm in enumerate(arms):
        try:
            pk = decode_id(str(arm.version_id), "ModelVersion")[1]
        except BadId as exc:
            path = ("input", "arms", str(n), "versionId")
            errors.append(FieldError("INVALID_VALUE", str(exc), path, n))
            continue
        out.append({"version_id": pk, "weight": arm.weight})
    if errors:
        raise DomainError(errors)
    return out


def _experiment_pk(value: str, *path: str) -> int:
    try:
        return decode_id(value, "Experiment")[1]
    except BadId as exc:
        raise DomainError.one("INVALID_VALUE", str(exc), *path) from exc


@strawberry.type
class ExperimentMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes(SCOPE)],
        description="Start an online A/B test: recommendations split shoppers between the arms' "
        "model versions by a stable hash of the shopper (candidates allowed). At most one runs.",
    )
    async def start_experiment(
        self, info: Info, input: StartExperimentInput
    ) -> StartExperimentPayload:
        ctx = info.context
        try:
            arms = _arms_of(input.arms)
            row = await experiments.start(ctx.session, ctx.actor, input.name, arms)
        except DomainError as exc:
            errors = to_errors(StartExperimentError, StartExperimentErrorCode, exc)
            return StartExperimentPayload(experiment=None, errors=errors)
        return StartExperimentPayload(experiment=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes(SCOPE)],
        description="Stop a running experiment: recommendations go back to the active version. "
        "Its report stays readable.",
    )
    async def stop_experiment(
        self, info: Info, input: StopExperimentInput
    ) -> StopExperimentPayload:
        ctx = info.context
        try:
            pk = _experiment_pk(str(input.id), "input", "id")
            row = await experiments.stop(ctx.session, ctx.actor, pk)
        except DomainError as exc:
            errors = to_errors(StopExperimentError, StopExperimentErrorCode, exc)
            return StopExperimentPayload(experiment=None, errors=errors)
        return StopExperimentPayload(experiment=row, errors=[])  # type: ignore[arg-type]


@strawberry.type
class ExperimentQueries:
    @strawberry.field(
        permission_classes=[RequireScopes(SCOPE)],
        description="Online A/B experiments, newest first.",
    )
    async def experiments(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        status: ExperimentStatus | None = None,
    ) -> Connection[Experiment]:
        check_first(first)
        cursor = parse_after(after)
        value = None if status is None else status.value
        session = info.context.session
        rows = await experiments.list_experiments(
            session, status=value, after=cursor, first=first + 1
        )
        return connection(  # type: ignore[return-value]
            rows,
            first=first,
            after=cursor,
            count=lambda: experiments.count_experiments(session, status=value),
        )

    @strawberry.field(
        permission_classes=[RequireScopes(SCOPE)],
        description="Impressions, shoppers, clicks, CTR, conversions and revenue per arm of an "
        "experiment, with each arm's CTR difference to the first; null for an unknown id.",
    )
    async def experiment_report(self, info: Info, id: strawberry.ID) -> ExperimentReport | None:
        try:
            pk = decode_id(str(id), "Experiment")[1]
        except BadId as exc:
            raise GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT"}) from exc
        found = await experiments.report(info.context.session, pk)
        return None if found is None else _report(found)
