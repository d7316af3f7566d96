"""What the segment query and mutations share: the definition error codes and turning a
``SegmentCondition`` input into a checked definition JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.segments.inputs import SegmentCondition, resolve_definition
from domain.errors import DomainError, FieldError
from domain.segments import definition

# Every code the definition checks can give (domain/segments/definition.py).
DEFINITION_CODES = [
    "INVALID",
    "REQUIRED",
    "UNKNOWN_FIELD",
    "INVALID_VALUE",
    "INVALID_OPERATOR",
    "IMPOSSIBLE_WINDOW",
    "TOO_DEEP",
    "TOO_MANY",
    "TOO_LONG",
    "NOT_FOUND",
    "CYCLE",
    "EMPTY",
]


async def checked_definition(
    session: AsyncSession, cond: SegmentCondition, path: tuple[str, ...]
) -> dict[str, Any]:
    """The definition JSON of ``cond``: ids decoded, structure and limits checked before any
    lookup, then product external ids and category paths resolved. References (products,
    categories, segments, cycles) are checked by ``definition.validate`` after this."""
    doc = await resolve_definition(
        session, cond, path, check=lambda d: definition.parse(d, path=path)
    )
    return doc


def under_input(exc: DomainError) -> DomainError:
    """Errors of a mutation's input: paths start at ``input`` (the services name the input's
    fields from the top: ``definition``, ``name``, ...)."""
    return DomainError(
        [
            e
            if e.field[:1] == ("input",)
            else FieldError(e.code, e.message, ("input", *e.field), e.index)
            for e in exc.errors
        ]
    )
