"""GraphQL types of recommendation model versions (the artifact itself is never exposed)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from api.ids import encode_id
from domain.recommend.models import ModelVersion as ModelVersionRow


@strawberry.enum(description="Where a model version is in its life.")
class ModelStatus(Enum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    RETIRED = "retired"
    FAILED = "failed"


@strawberry.type(
    name="ModelVersion",
    description="One trained (or failed) recommendation model: its data, parameters and offline "
    "metrics under the evaluation protocol (docs/recommendations.md).",
)
class ModelVersion:
    algorithm: str = strawberry.field(description="The blended components, comma-separated.")
    parameters: JSON = strawberry.field(
        description="algorithms, tuned blend weights per scenario, tuned component parameters."
    )
    data_from: datetime | None = strawberry.field(description="Oldest interaction used.")
    data_to: datetime | None = strawberry.field(description="Newest interaction used.")
    interactions: int
    users: int
    items: int
    metrics: JSON = strawberry.field(
        description='The hybrid\'s "ndcg@10", "precision@10", "recall@10", "map@10", '
        '"hit_rate@10", "coverage", "diversity", "novelty"; "components" (each component\'s row), '
        '"best_single", "bootstrap" (hybrid - popularity NDCG@10 with its 95% interval).'
    )
    error: str | None = strawberry.field(description="Why training failed (status FAILED).")
    sha256: str | None = strawberry.field(description="Checksum of the stored artifact.")
    created_at: datetime
    trained_seconds: float | None
    promoted_at: datetime | None
    promoted_by: str | None = strawberry.field(description="client:subject that promoted it.")

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]
    @staticmethod
    def id(root: ModelVersionRow) -> strawberry.ID:
        return strawberry.ID(encode_id("ModelVersion", root.id or 0))

    @strawberry.field(description="The version's number (the task result's versionId).")
    @staticmethod
    def number(root: ModelVersionRow) -> int:
        return root.id or 0

    @strawberry.field
    @staticmethod
    def status(root: ModelVersionRow) -> ModelStatus:
        return ModelStatus(root.status)

    @strawberry.field(description="NDCG@10 of the hybrid, the figure promotion compares.")
    @staticmethod
    def ndcg_at_10(root: ModelVersionRow) -> float | None:
        value = (root.metrics or {}).get("ndcg@10")
        return float(value) if isinstance(value, int | float) else None
