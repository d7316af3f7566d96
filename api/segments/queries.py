"""Segment queries: previewSegment, segment, segments."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.errors import error_type, to_errors
from api.ids import BadId, decode_id
from api.relay import Connection, check_first, connection, parse_after
from api.segments.common import DEFINITION_CODES, checked_definition, validated
from api.segments.inputs import SegmentCondition
from api.segments.loaders import segment_loader
from api.segments.types import Segment, SegmentKind, SegmentPreview, SegmentStatus
from domain.auth.scopes import ADMIN_SCOPE
from domain.errors import DomainError
from domain.segments import service
from domain.segments.models import Segment as SegmentRow
from domain.segments.preview import preview

MAX_SAMPLE = 100
DEFAULT_BUDGET_MS = 1000
MAX_BUDGET_MS = 10_000
MAX_PREVIEWS_PER_REQUEST = 3

PreviewSegmentError, PreviewSegmentErrorCode = error_type(
    "PreviewSegment",
    [*DEFINITION_CODES, "TIMEOUT"],
    "Why previewSegment could not answer: the definition is invalid (`field` is the path of the "
    "offending node from `definition`), or counting took longer than the budget (TIMEOUT).",
)


@strawberry.type(description="A preview, or why there is none.")
class SegmentPreviewResult:
    preview: SegmentPreview | None
    errors: list[PreviewSegmentError]  # type: ignore[valid-type]


@strawberry.input(description="Filters on segments; all given filters must match.")
class SegmentFilter:
    status: SegmentStatus | None = strawberry.field(
        default=None, description="ACTIVE when omitted; pass ARCHIVED for archived ones."
    )
    kind: SegmentKind | None = None
    builtin: bool | None = None
    search: str | None = strawberry.field(
        default=None, description="Part of the name, any case (at most 100 characters)."
    )


class RequestPreviews:
    """The previews of one request: they run one at a time, each on a connection of its own (so
    a request holds at most two), and there are at most ``MAX_PREVIEWS_PER_REQUEST`` (aliases
    would otherwise multiply the time budget)."""

    def __init__(self, ctx: Any) -> None:
        self.lock = asyncio.Lock()
        self.started = 0


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def segment_pk(id: str) -> int:
    try:
        return decode_id(id, "Segment")[1]
    except BadId as exc:
        raise bad_input(str(exc)) from exc


def _refused(exc: DomainError) -> SegmentPreviewResult:
    return SegmentPreviewResult(
        preview=None, errors=to_errors(PreviewSegmentError, PreviewSegmentErrorCode, exc)
    )


@strawberry.type
class SegmentQueries:
    @strawberry.field(
        permission_classes=[RequireScopes("segments:read")],
        description="How many shoppers a definition matches now, and a sample of them (the "
        "sample needs users:read too), within a time budget. Nothing is saved. Admins "
        "(clients:manage) also get the SQL cost and plan.",
    )
    async def preview_segment(
        self,
        info: Info,
        definition: SegmentCondition,
        sample: int = 10,
        budget_ms: Annotated[
            int | None,
            strawberry.argument(
                description=f"Give up after this many milliseconds (TIMEOUT); default "
                f"{DEFAULT_BUDGET_MS}, at most {MAX_BUDGET_MS}."
            ),
        ] = None,
    ) -> SegmentPreviewResult:
        ctx = info.context
        if not 0 <= sample <= MAX_SAMPLE:
            return _refused(
                DomainError.one("INVALID", f"sample must be between 0 and {MAX_SAMPLE}", "sample")
            )
        budget = DEFAULT_BUDGET_MS if budget_ms is None else budget_ms
        if not 1 <= budget <= MAX_BUDGET_MS:
            return _refused(
                DomainError.one(
                    "INVALID", f"budgetMs must be between 1 and {MAX_BUDGET_MS}", "budgetMs"
                )
            )
        previews: RequestPreviews = ctx.loader("segment_previews", RequestPreviews)
        previews.started += 1
        if previews.started > MAX_PREVIEWS_PER_REQUEST:
            return _refused(
                DomainError.one(
                    "TOO_MANY",
                    f"at most {MAX_PREVIEWS_PER_REQUEST} previews per request",
                    "definition",
                )
            )
        admin = ctx.has(ADMIN_SCOPE)
        try:
            # Its own read-only session: the request's session may be in use by other root
            # fields at the same time, and a preview's savepoint must not interleave with them.
            async with previews.lock, ctx.services.db.read_only() as session:
                doc = await checked_definition(session, definition, ("definition",))
                resolved = await validated(session, doc, ("definition",))
                result = await preview(
                    session, resolved, sample=sample, budget_ms=budget, explain=admin
                )
        except DomainError as exc:
            return _refused(exc)
        return SegmentPreviewResult(
            preview=SegmentPreview(
                count=result.count,
                elapsed_ms=round(result.elapsed_ms, 3),
                _sample_ids=list(result.sample_ids),
                _cost=result.cost if admin else None,
                _plan=result.plan if admin else None,
            ),
            errors=[],
        )

    @strawberry.field(
        permission_classes=[RequireScopes("segments:read")],
        description="One segment by id (archived ones too).",
    )
    async def segment(self, info: Info, id: strawberry.ID) -> Segment | None:
        found: SegmentRow | None = await info.context.loader("segment", segment_loader).load(
            segment_pk(id)
        )
        return found  # type: ignore[return-value]

    @strawberry.field(
        permission_classes=[RequireScopes("segments:read")],
        description="Segments by id, filtered (active ones unless `status` says otherwise).",
    )
    async def segments(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: SegmentFilter | None = None,
    ) -> Connection[Segment]:
        check_first(first)
        cursor = parse_after(after)
        flt = filter or SegmentFilter()
        if flt.search is not None and len(flt.search) > 100:
            raise bad_input("search is at most 100 characters")
        args: dict[str, Any] = {
            "status": (flt.status or SegmentStatus.ACTIVE).value,
            "kind": None if flt.kind is None else flt.kind.value,
            "builtin": flt.builtin,
            "search": flt.search,
        }
        session = info.context.session
        rows = await service.list_segments(session, **args, after=cursor, first=first + 1)
        return connection(  # type: ignore[return-value]
            rows,
            first=first,
            after=cursor,
            count=lambda: service.count_segments(session, **args),
        )
