"""Relay connections with opaque keyset cursors, and the ``Node`` interface."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError

from api.ids import BadId, decode_cursor, encode_cursor

T = TypeVar("T")
MAX_FIRST = 100


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


def _edges(root: Any) -> list[Edge[Any]]:
    return [Edge(cursor=encode_cursor(n.id), node=n) for n in root.nodes]


@strawberry.type(description="A page of results; pass `endCursor` as `after` for the next page.")
class Connection(Generic[T]):
    # Edges (a cursor per row) are built only when asked for; most clients read only ``nodes``.
    edges: list[Edge[T]] = strawberry.field(resolver=_edges)
    nodes: list[T]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items match the filter (one extra COUNT query).")
    async def total_count(self) -> int:
        return await self._count()


def check_first(first: int) -> None:
    if first < 0 or first > MAX_FIRST:
        raise GraphQLError(
            f"`first` must be between 0 and {MAX_FIRST}", extensions={"code": "BAD_USER_INPUT"}
        )


def parse_after(after: str | None) -> int | None:
    if after is None:
        return None
    try:
        return decode_cursor(after)
    except BadId as exc:
        raise GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT"}) from exc


def connection(
    rows: Sequence[Any], *, first: int, after: int | None, count: Callable[[], Awaitable[int]]
) -> Connection[Any]:
    """Build a connection from ``first + 1`` rows ordered by ``id``."""
    has_next = len(rows) > first
    nodes = list(rows[:first])
    return Connection(
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=after is not None,
            start_cursor=encode_cursor(nodes[0].id) if nodes else None,
            end_cursor=encode_cursor(nodes[-1].id) if nodes else None,
        ),
        _count=count,
    )
