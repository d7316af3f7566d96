"""The ``Segment`` type and what hangs off it: members with their entry time, the version history,
a preview, and ``User.segments``' membership entries."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.auth.permissions import RequireScopes
from api.ids import encode_cursor, encode_id
from api.relay import Connection, Node, PageInfo, check_first, connection, parse_after
from api.segments.inputs import to_input
from api.segments.loaders import history_loader, memberships_loader
from api.users.loaders import user_loader
from domain.segments import repository, service
from domain.segments.models import Segment as SegmentRow
from domain.segments.models import SegmentTransition as SegmentTransitionRow
from domain.segments.models import SegmentVersion as SegmentVersionRow

if TYPE_CHECKING:
    from api.users.types import User


@strawberry.enum(description="Dynamic: a condition tree evaluated in SQL. Static: a list.")
class SegmentKind(Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"


@strawberry.enum
class SegmentStatus(Enum):
    ACTIVE = "active"
    ARCHIVED = "archived"


@strawberry.type(description="A shopper in a segment, and since when.")
class SegmentMemberEdge:
    cursor: str
    entered_at: datetime = strawberry.field(
        description="When the shopper entered (this stay; a shopper who left and came back has "
        "the later time)."
    )
    node: Annotated[User, strawberry.lazy("api.users.types")]


@strawberry.type(description="A page of a segment's current members, by user id.")
class SegmentMemberConnection:
    edges: list[SegmentMemberEdge]
    page_info: PageInfo
    _count: strawberry.Private[int]

    @strawberry.field
    def nodes(self) -> list[Annotated[User, strawberry.lazy("api.users.types")]]:
        return [e.node for e in self.edges]

    @strawberry.field(description="How many members the segment has now.")
    def total_count(self) -> int:
        return self._count


@strawberry.enum
class SegmentTransitionKind(Enum):
    ENTER = "enter"
    EXIT = "exit"


@strawberry.type(
    description="A shopper entering or leaving a segment: the event campaigns trigger on."
)
class SegmentTransition:
    version: int = strawberry.field(description="The segment version whose evaluation caused it.")
    occurred_at: datetime

    @strawberry.field(description="Increasing with the order of writing (see Segment.transitions).")
    @staticmethod
    def id(root: SegmentTransitionRow) -> strawberry.ID:
        return strawberry.ID(encode_id("SegmentTransition", root.id or 0))

    @strawberry.field
    @staticmethod
    def kind(root: SegmentTransitionRow) -> SegmentTransitionKind:
        return SegmentTransitionKind(root.kind)

    @strawberry.field(description="The shopper; null once erased.")
    @staticmethod
    async def user(
        root: SegmentTransitionRow, info: Info
    ) -> Annotated[User, strawberry.lazy("api.users.types")] | None:
        found: Any = await info.context.loader("user", user_loader).load(root.customer_id)
        return found  # type: ignore[no-any-return]


@strawberry.type(description="One saved version of a segment (every create and update adds one).")
class SegmentVersion:
    version: int
    name: str
    description: str | None
    changed_by: str = strawberry.field(description="The OAuth client that saved it.")
    changed_at: datetime

    @strawberry.field(description="The definition in the SegmentCondition input form.")
    @staticmethod
    def definition(root: SegmentVersionRow) -> JSON | None:
        return to_input(root.definition) if root.definition is not None else None


@strawberry.type(
    description="A group of shoppers: dynamic (a definition evaluated in SQL, membership kept "
    "current by a refresh job and after each shopper's changes) or static (a list)."
)
class Segment(Node):
    key: str | None = strawberry.field(description='Built-in segments: "builtin:<name>".')
    name: str
    description: str | None
    builtin: bool = strawberry.field(description="Shipped with Precis; its rules are documented.")
    version: int = strawberry.field(description="Increases with every update.")
    member_count: int = strawberry.field(description="Members at the last refresh or change.")
    refreshed_at: datetime | None = strawberry.field(
        description="When membership was last computed."
    )
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    @strawberry.field(description="Opaque global id.")  # type: ignore[misc]
    @staticmethod
    def id(root: SegmentRow) -> strawberry.ID:
        return strawberry.ID(encode_id("Segment", root.id or 0))

    @strawberry.field
    @staticmethod
    def kind(root: SegmentRow) -> SegmentKind:
        return SegmentKind(root.kind)

    @strawberry.field
    @staticmethod
    def status(root: SegmentRow) -> SegmentStatus:
        return SegmentStatus(root.status)

    @strawberry.field(
        description="The definition in the SegmentCondition input form (enum names, global ids): "
        "it can be sent back as is to updateSegment or previewSegment. Null for static segments."
    )
    @staticmethod
    def definition(root: SegmentRow) -> JSON | None:
        return to_input(root.definition) if root.definition is not None else None

    @strawberry.field(
        permission_classes=[RequireScopes("segments:read", "users:read")],
        description="Current members by user id, with their entry time (needs users:read too; "
        "without it null, with a FORBIDDEN error).",
    )
    @staticmethod
    async def members(
        root: SegmentRow, info: Info, first: int = 20, after: str | None = None
    ) -> SegmentMemberConnection | None:
        check_first(first)
        cursor = parse_after(after)
        session = info.context.session
        rows = await service.members(session, root.id or 0, after=cursor, first=first)
        has_next = len(rows) > first
        rows = rows[:first]
        users = await info.context.loader("user", user_loader).load_many(
            [r.customer_id for r in rows]
        )
        edges = [
            SegmentMemberEdge(cursor=encode_cursor(r.customer_id), entered_at=r.entered_at, node=u)
            for r, u in zip(rows, users, strict=True)
            if u is not None
        ]
        return SegmentMemberConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=has_next,
                has_previous_page=cursor is not None,
                start_cursor=encode_cursor(rows[0].customer_id) if rows else None,
                end_cursor=encode_cursor(rows[-1].customer_id) if rows else None,
            ),
            _count=root.member_count,
        )

    @strawberry.field(
        permission_classes=[RequireScopes("segments:read", "users:read")],
        description="Shoppers entering and leaving, oldest first (by id; needs users:read too). "
        "Rows commit in transaction order, not strictly in id order: a reader following the log "
        "re-reads from a cursor a few seconds behind the newest row it has seen.",
    )
    @staticmethod
    async def transitions(
        root: SegmentRow, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[SegmentTransition] | None:
        check_first(first)
        cursor = parse_after(after)
        session = info.context.session
        segment_id = root.id or 0
        rows = await service.transitions(session, segment_id, after=cursor, first=first)
        return connection(  # type: ignore[return-value]
            rows,
            first=first,
            after=cursor,
            count=lambda: repository.count_transitions(session, segment_id),
        )

    @strawberry.field(description="Every saved version, newest first.")
    @staticmethod
    async def history(root: SegmentRow, info: Info) -> list[SegmentVersion]:
        rows: list[Any] = await info.context.loader("segment_history", history_loader).load(root.id)
        return rows

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        return isinstance(obj, SegmentRow)


@strawberry.type(description="A segment the user is in now, and since when.")
class SegmentMembership:
    segment: Segment
    entered_at: datetime


@strawberry.type(description="How many shoppers a definition matches now, and a few of them.")
class SegmentPreview:
    count: int
    elapsed_ms: float = strawberry.field(description="Time the database took, in milliseconds.")
    _sample_ids: strawberry.Private[list[int]]
    _cost: strawberry.Private[float | None]
    _plan: strawberry.Private[str | None]

    @strawberry.field(
        permission_classes=[RequireScopes("users:read")],
        description="Some matching users, lowest id first (needs users:read too; without it "
        "null, with a FORBIDDEN error).",
    )
    async def sample(
        self, info: Info
    ) -> list[Annotated[User, strawberry.lazy("api.users.types")]] | None:
        users = await info.context.loader("user", user_loader).load_many(self._sample_ids)
        return [u for u in users if u is not None]

    @strawberry.field(
        description="The planner's total cost estimate (PostgreSQL EXPLAIN); admins only "
        "(clients:manage), null for others and on SQLite."
    )
    def sql_cost(self) -> float | None:
        return self._cost

    @strawberry.field(
        description="The query plan (PostgreSQL EXPLAIN, SQLite EXPLAIN QUERY PLAN); admins only."
    )
    def plan(self) -> str | None:
        return self._plan


async def user_segments(info: Info, customer_id: int) -> list[SegmentMembership]:
    """``User.segments``: through a DataLoader, one query for every user of the response."""
    rows = await info.context.loader("user_segments", memberships_loader).load(customer_id)
    return [SegmentMembership(segment=seg, entered_at=at) for seg, at in rows]  # type: ignore[arg-type]
