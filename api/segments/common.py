"""What the segment query and mutations share: the definition error codes and turning a
``SegmentCondition`` input into a checked definition JSON."""

from __future__ import annotations

from collections.abc import Callable
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


# Values in all the lists (values, tags) of one definition. Each becomes a bound parameter, and
# PostgreSQL takes at most 32,767 per statement: 300 conditions of 1000 values would not run.
MAX_TOTAL_VALUES = 10_000


def _count_values(doc: dict[str, Any], path: tuple[str, ...]) -> None:
    total = 0
    stack: list[Any] = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in ("values", "tags"):
                found = item.get(key)
                if isinstance(found, list):
                    total += len(found)
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    if total > MAX_TOTAL_VALUES:
        raise DomainError.one(
            "TOO_MANY",
            f"a definition has at most {MAX_TOTAL_VALUES} values in all its lists ({total} given)",
            *path,
        )


def _checks(path: tuple[str, ...]) -> Callable[[dict[str, Any]], object]:
    def check(doc: dict[str, Any]) -> None:
        definition.parse(doc, path=path)
        _count_values(doc, path)

    return check


async def checked_definition(
    session: AsyncSession, cond: SegmentCondition, path: tuple[str, ...]
) -> dict[str, Any]:
    """The definition JSON of ``cond``: ids decoded, structure and limits checked before any
    lookup, then product external ids and category paths resolved. References (products,
    categories, segments, cycles) are checked by ``definition.validate`` after this."""
    doc = await resolve_definition(session, cond, path, check=_checks(path))
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


def inlined_values(resolved: definition.Resolved) -> int:
    """The values of a resolved definition's lists with every referenced dynamic segment inlined,
    as often as it is referenced (which is how it is compiled)."""

    def count(tree: definition.Node, seen: frozenset[int]) -> int:
        total = 0
        for node in definition.walk(tree):
            total += len(getattr(node, "values", ()) or ()) + len(getattr(node, "tags", ()) or ())
            if isinstance(node, definition.SegmentRef) and node.segment_id not in seen:
                ref = resolved.segments.get(node.segment_id)
                if ref is not None and ref.kind == "dynamic" and ref.tree is not None:
                    total += count(ref.tree, seen | {node.segment_id})
        return total

    return count(resolved.tree, frozenset())


async def validated(
    session: AsyncSession,
    doc: dict[str, Any],
    path: tuple[str, ...],
    *,
    segment_id: int | None = None,
) -> definition.Resolved:
    """``definition.validate`` plus the values bound with referenced segments inlined."""
    resolved = await definition.validate(session, doc, segment_id=segment_id)
    total = inlined_values(resolved)
    if total > MAX_TOTAL_VALUES:
        raise DomainError.one(
            "TOO_MANY",
            f"with the segments it references, the definition has {total} values in its lists; "
            f"at most {MAX_TOTAL_VALUES}",
            *path,
        )
    return resolved
