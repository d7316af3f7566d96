"""Segment mutations: create, update (versioned), archive, static membership (add, remove, CSV
import) and refresh. Each takes one ``input`` and returns a payload with typed ``errors``; a refused
mutation changes nothing."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.errors import error_type, to_errors
from api.ids import BadId, decode_id
from api.segments.common import DEFINITION_CODES, checked_definition, under_input, validated
from api.segments.inputs import SegmentCondition
from api.segments.types import Segment, SegmentKind
from domain.audit import service as audit
from domain.errors import DomainError, FieldError
from domain.segments import service
from domain.segments.membership import refresh_segment
from domain.users import repository as users

MAX_USERS = service.MAX_MEMBERS_PER_CALL
MAX_CSV_CHARS = 900_000

# Codes the segment service gives besides the definition's (domain/segments/service.py).
SEGMENT_CODES = ["CONFLICT", "BUILTIN", "ARCHIVED", "IN_USE", "NOT_STATIC"]

CreateSegmentError, CreateSegmentErrorCode = error_type(
    "CreateSegment",
    [*DEFINITION_CODES, *SEGMENT_CODES],
    "Why createSegment was refused (`field` is the path in `input`, e.g. "
    '["input", "definition", "and", "1", "behavior", "window"]); nothing was saved.',
)
UpdateSegmentError, UpdateSegmentErrorCode = error_type(
    "UpdateSegment",
    [*DEFINITION_CODES, *SEGMENT_CODES],
    "Why updateSegment was refused (CONFLICT: expectedVersion is not the current version); "
    "nothing was changed.",
)
ArchiveSegmentError, ArchiveSegmentErrorCode = error_type(
    "ArchiveSegment",
    ["INVALID", "INVALID_VALUE", "NOT_FOUND", *SEGMENT_CODES],
    "Why archiveSegment was refused (IN_USE: active segments reference it); nothing changed.",
)
SegmentUsersError, SegmentUsersErrorCode = error_type(
    "SegmentUsers",
    ["INVALID", "INVALID_VALUE", "REQUIRED", "NOT_FOUND", "TOO_MANY", *SEGMENT_CODES],
    "Why addUsersToSegment or removeUsersFromSegment was refused (`index` is the position in "
    "userIds or userExternalIds); nothing was changed.",
)
ImportSegmentUsersError, ImportSegmentUsersErrorCode = error_type(
    "ImportSegmentUsers",
    [
        "INVALID",
        "INVALID_VALUE",
        "REQUIRED",
        "NOT_FOUND",
        "TOO_MANY",
        "TOO_LONG",
        "TOO_LARGE",
        "INVALID_HEADER",
        *SEGMENT_CODES,
    ],
    "Why importSegmentUsers was refused (`index` is the CSV line number, the header being "
    "line 1; at most 100 bad rows are listed); nothing was changed.",
)
RefreshSegmentError, RefreshSegmentErrorCode = error_type(
    "RefreshSegment",
    [*DEFINITION_CODES, "TIMEOUT", "NOT_DYNAMIC", *SEGMENT_CODES],
    "Why refreshSegment was refused; membership is unchanged.",
)


@strawberry.enum(description="How an import treats the current members.")
class ImportMode(Enum):
    ADD = "add"
    REPLACE = "replace"


@strawberry.input(description="A new segment: dynamic with a definition, or static (a list).")
class CreateSegmentInput:
    name: str = strawberry.field(description="1 to 200 characters.")
    description: str | None = None
    kind: SegmentKind = SegmentKind.DYNAMIC
    definition: SegmentCondition | None = strawberry.field(
        default=None, description="Required for dynamic segments; none for static ones."
    )


@strawberry.input(description="Changes to a segment; fields left out stay as they are.")
class UpdateSegmentInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None
    definition: SegmentCondition | None = None
    expected_version: int | None = strawberry.field(
        default=None,
        description="The version the change was based on; CONFLICT if the segment has moved on.",
    )


@strawberry.input
class ArchiveSegmentInput:
    id: strawberry.ID


@strawberry.input(
    description=f"Shoppers of a static segment, by id or the store's external id (at most "
    f"{MAX_USERS} in all)."
)
class SegmentUsersInput:
    segment_id: strawberry.ID
    user_ids: list[strawberry.ID] | None = None
    user_external_ids: list[str] | None = None


@strawberry.input(
    description="A CSV file as text: a header row naming one of the columns external_id, "
    "user_id (global id) or email, then one shopper per row; other columns are ignored. At most "
    f"{MAX_CSV_CHARS:,} characters and 100,000 rows. All or nothing: one row naming no known "
    "shopper refuses the file."
)
class ImportSegmentUsersInput:
    segment_id: strawberry.ID
    csv: str
    mode: ImportMode = strawberry.field(
        default=ImportMode.ADD, description="REPLACE: shoppers not in the file leave the segment."
    )


@strawberry.input
class RefreshSegmentInput:
    id: strawberry.ID


@strawberry.type
class CreateSegmentPayload:
    segment: Segment | None
    errors: list[CreateSegmentError]  # type: ignore[valid-type]


@strawberry.type
class UpdateSegmentPayload:
    segment: Segment | None
    errors: list[UpdateSegmentError]  # type: ignore[valid-type]


@strawberry.type
class ArchiveSegmentPayload:
    segment: Segment | None
    errors: list[ArchiveSegmentError]  # type: ignore[valid-type]


@strawberry.type
class SegmentUsersPayload:
    segment: Segment | None
    changed: int = strawberry.field(
        description="Shoppers who entered (add) or left (remove); those already in (or not in) "
        "the segment do not count."
    )
    errors: list[SegmentUsersError]  # type: ignore[valid-type]


@strawberry.type
class ImportSegmentUsersPayload:
    segment: Segment | None
    rows: int = strawberry.field(description="Data rows read.")
    added: int = strawberry.field(description="Shoppers who entered the segment.")
    removed: int = strawberry.field(description="Shoppers who left it (REPLACE).")
    unchanged: int = strawberry.field(description="Rows naming a member already (or a repeat).")
    errors: list[ImportSegmentUsersError]  # type: ignore[valid-type]


@strawberry.type
class RefreshSegmentPayload:
    segment: Segment | None
    entered: int
    exited: int
    members: int
    errors: list[RefreshSegmentError]  # type: ignore[valid-type]


def _refresh_soon(info: Info, row: Any, doc: dict[str, Any] | None) -> None:
    """A new or changed definition is computed by a refresh job queued after the commit, not
    minutes later at the next scheduled refresh (one job per version: a repeat runs once)."""
    if doc is not None and row.kind == "dynamic":
        info.context.jobs.add(
            "refresh_segments", [row.id], job_id=f"segments:refresh:{row.id}:v{row.version}"
        )


def _segment_id(value: strawberry.ID, *path: str) -> int:
    try:
        return decode_id(str(value), "Segment")[1]
    except BadId as exc:
        raise DomainError.one("INVALID_VALUE", str(exc), "input", *path) from exc


async def _customer_ids(info: Info, input: SegmentUsersInput) -> list[int]:
    """The customers an input names; every bad or unknown one is an error with its index."""
    ids = input.user_ids or []
    external = input.user_external_ids or []
    if not ids and not external:
        raise DomainError.one("REQUIRED", "give userIds or userExternalIds", "input", "userIds")
    if len(ids) + len(external) > MAX_USERS:
        raise DomainError.one("TOO_MANY", f"at most {MAX_USERS} users per call", "input", "userIds")
    errors: list[FieldError] = []
    out: list[int] = []
    for i, value in enumerate(ids):
        try:
            out.append(decode_id(str(value), "User")[1])
        except BadId as exc:
            errors.append(FieldError("INVALID_VALUE", str(exc), ("input", "userIds", str(i)), i))
    if external:
        found = await users.by_external_ids(
            info.context.session, [x for x in external if "\x00" not in x]
        )
        for i, name in enumerate(external):
            row = found.get(name)
            if row is None or row.id is None:
                errors.append(
                    FieldError("NOT_FOUND", "no such user", ("input", "userExternalIds", str(i)), i)
                )
            else:
                out.append(row.id)
    if errors:
        raise DomainError(errors)
    return out


@strawberry.type
class SegmentMutations:
    @strawberry.mutation(
        permission_classes=[RequireScopes("segments:write")],
        description="Create a segment. A dynamic one's definition is validated first (typed "
        "errors with the path of the offending node); its membership is computed by a refresh "
        "job queued once the segment is saved (memberCount is 0 until it has run).",
    )
    async def create_segment(self, info: Info, input: CreateSegmentInput) -> CreateSegmentPayload:
        ctx = info.context
        try:
            doc = None
            if input.definition is not None:
                doc = await checked_definition(
                    ctx.session, input.definition, ("input", "definition")
                )
                await validated(ctx.session, doc, ("input", "definition"))
            row = await service.create_segment(
                ctx.session,
                ctx.actor,
                name=input.name,
                description=input.description,
                kind=input.kind.value,
                definition=doc,
            )
        except DomainError as exc:
            return CreateSegmentPayload(
                segment=None,
                errors=to_errors(CreateSegmentError, CreateSegmentErrorCode, under_input(exc)),
            )
        _refresh_soon(info, row, doc)
        return CreateSegmentPayload(segment=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes("segments:write")],
        description="Change a segment's name, description or definition; each change is a new "
        "version (see Segment.history), and a new definition is refreshed by a job queued once "
        "it is saved. Built-in segments cannot be changed.",
    )
    async def update_segment(self, info: Info, input: UpdateSegmentInput) -> UpdateSegmentPayload:
        ctx = info.context
        try:
            segment_id = _segment_id(input.id, "id")
            doc = None
            if input.definition is not None:
                doc = await checked_definition(
                    ctx.session, input.definition, ("input", "definition")
                )
                await validated(ctx.session, doc, ("input", "definition"), segment_id=segment_id)
            row = await service.update_segment(
                ctx.session,
                ctx.actor,
                segment_id,
                name=input.name,
                description=input.description,
                definition=doc,
                expected_version=input.expected_version,
            )
        except DomainError as exc:
            return UpdateSegmentPayload(
                segment=None,
                errors=to_errors(UpdateSegmentError, UpdateSegmentErrorCode, under_input(exc)),
            )
        _refresh_soon(info, row, doc)
        return UpdateSegmentPayload(segment=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes("segments:write")],
        description="Archive a segment: it is no longer refreshed, listed or usable in other "
        "definitions; its history stays. Refused while active segments reference it.",
    )
    async def archive_segment(
        self, info: Info, input: ArchiveSegmentInput
    ) -> ArchiveSegmentPayload:
        ctx = info.context
        try:
            row = await service.archive_segment(ctx.session, ctx.actor, _segment_id(input.id, "id"))
        except DomainError as exc:
            return ArchiveSegmentPayload(
                segment=None,
                errors=to_errors(ArchiveSegmentError, ArchiveSegmentErrorCode, under_input(exc)),
            )
        return ArchiveSegmentPayload(segment=row, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[RequireScopes("segments:write")],
        description="Add shoppers to a static segment (all or nothing); each one entering is "
        "recorded as a transition.",
    )
    async def add_users_to_segment(
        self, info: Info, input: SegmentUsersInput
    ) -> SegmentUsersPayload:
        return await _members(info, input, add=True)

    @strawberry.mutation(
        permission_classes=[RequireScopes("segments:write")],
        description="Remove shoppers from a static segment (all or nothing); each one leaving "
        "is recorded as a transition.",
    )
    async def remove_users_from_segment(
        self, info: Info, input: SegmentUsersInput
    ) -> SegmentUsersPayload:
        return await _members(info, input, add=False)

    @strawberry.mutation(
        permission_classes=[RequireScopes("segments:write")],
        description="Import a static segment's shoppers from CSV text (all or nothing); each "
        "one entering or leaving is recorded as a transition.",
    )
    async def import_segment_users(
        self, info: Info, input: ImportSegmentUsersInput
    ) -> ImportSegmentUsersPayload:
        ctx = info.context
        try:
            segment_id = _segment_id(input.segment_id, "segmentId")
            if len(input.csv) > MAX_CSV_CHARS:
                raise DomainError.one(
                    "TOO_LONG", f"at most {MAX_CSV_CHARS} characters", "input", "csv"
                )
            result = await service.import_members_csv(
                ctx.session,
                ctx.actor,
                segment_id,
                input.csv,
                mode=input.mode.value,
                keys=ctx.services.keys,
            )
            row = await service.get_segment(ctx.session, segment_id)
        except DomainError as exc:
            return ImportSegmentUsersPayload(
                segment=None,
                rows=0,
                added=0,
                removed=0,
                unchanged=0,
                errors=to_errors(
                    ImportSegmentUsersError, ImportSegmentUsersErrorCode, _csv_paths(exc)
                ),
            )
        return ImportSegmentUsersPayload(
            segment=row,  # type: ignore[arg-type]
            rows=result.rows,
            added=result.added,
            removed=result.removed,
            unchanged=result.unchanged,
            errors=[],
        )

    @strawberry.mutation(
        permission_classes=[RequireScopes("segments:write")],
        description="Recompute a dynamic segment's membership now (the refresh job does it every "
        "few minutes); returns who entered and left.",
    )
    async def refresh_segment(
        self, info: Info, input: RefreshSegmentInput
    ) -> RefreshSegmentPayload:
        ctx = info.context
        try:
            segment_id = _segment_id(input.id, "id")
            result = await refresh_segment(ctx.session, segment_id)
            if result.skipped is not None:
                archived = result.skipped.startswith("archived")
                raise DomainError.one(
                    "ARCHIVED" if archived else "NOT_DYNAMIC",
                    "the segment is archived"
                    if archived
                    else "a static segment changes only by adding, removing or importing users",
                    "id",
                )
            await audit.record(
                ctx.session,
                ctx.actor,
                "segment.refresh",
                "Segment",
                segment_id,
                details={
                    "version": result.version,
                    "entered": result.entered,
                    "exited": result.exited,
                    "members": result.members,
                },
            )
            row = await service.get_segment(ctx.session, segment_id)
        except DomainError as exc:
            return RefreshSegmentPayload(
                segment=None,
                entered=0,
                exited=0,
                members=0,
                errors=to_errors(RefreshSegmentError, RefreshSegmentErrorCode, _stored(exc)),
            )
        return RefreshSegmentPayload(
            segment=row,  # type: ignore[arg-type]
            entered=result.entered,
            exited=result.exited,
            members=result.members,
            errors=[],
        )


def _user_paths(exc: DomainError, input: SegmentUsersInput) -> DomainError:
    """The service names users by their position in the id list it was given (userIds, then
    userExternalIds): map each back to the input list it came from."""
    given = len(input.user_ids or [])
    out = []
    for e in exc.errors:
        if e.field[:1] == ("customerIds",) and e.index is not None:
            if e.index < given:
                at, index = ("input", "userIds"), e.index
            else:
                at, index = ("input", "userExternalIds"), e.index - given
            out.append(FieldError(e.code, e.message, (*at, str(index)), index))
        elif e.field[:1] == ("customerIds",):
            out.append(FieldError(e.code, e.message, ("input", "userIds"), e.index))
        else:
            out.append(e)
    return under_input(DomainError(out))


def _stored(exc: DomainError) -> DomainError:
    """A refresh names only the segment: a problem of its stored definition (a referenced segment
    gone, say) is reported at ``input.id``, with the definition path in the message."""
    return under_input(
        DomainError(
            [
                FieldError(e.code, f"{e.message} (at {'.'.join(e.field)})", ("id",), e.index)
                if e.field[:1] == ("definition",)
                else e
                for e in exc.errors
            ]
        )
    )


def _csv_paths(exc: DomainError) -> DomainError:
    """The service calls the CSV text ``file``; here it is ``input.csv``."""
    return under_input(
        DomainError(
            [
                FieldError(e.code, e.message, ("csv", *e.field[1:]), e.index)
                if e.field[:1] == ("file",)
                else e
                for e in exc.errors
            ]
        )
    )


async def _members(info: Info, input: SegmentUsersInput, *, add: bool) -> SegmentUsersPayload:
    ctx = info.context
    try:
        segment_id = _segment_id(input.segment_id, "segmentId")
        customer_ids = await _customer_ids(info, input)
        change: Any = service.add_members if add else service.remove_members
        changed = await change(ctx.session, ctx.actor, segment_id, customer_ids)
        row = await service.get_segment(ctx.session, segment_id)
    except DomainError as exc:
        return SegmentUsersPayload(
            segment=None,
            changed=0,
            errors=to_errors(SegmentUsersError, SegmentUsersErrorCode, _user_paths(exc, input)),
        )
    return SegmentUsersPayload(segment=row, changed=changed, errors=[])  # type: ignore[arg-type]
