"""graphql-core 3.3 walks every variable value before coercing it (``input_is_nested_too_deeply``)
to refuse values nested deeper than ``MAX_NESTING_DEPTH`` (200) before coercion recurses into
them. The walk only follows the variable's type: it goes one level down per list and per input
object field. For a type whose nesting is bounded (no input object that reaches itself again), no
value can get deeper than the type itself, so the walk can only answer "no"; for a 500-event
``trackEvents`` call it visited some 8,000 values, about 4 % of the server's time.

Here the answer for such a type is "no" without walking the value. A type that can nest without
bound (a recursive input type) is walked by graphql-core exactly as before. The bound of each named
input type is computed once (named types belong to the schema and live as long as it does).
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
)
from graphql.execution import values as _values
from graphql.language.parser import MAX_NESTING_DEPTH

_original = _values.input_is_nested_too_deeply
_UNBOUNDED = MAX_NESTING_DEPTH + 1
_bounds: dict[GraphQLInputObjectType, int] = {}


def depth_bound(type_: Any, visiting: frozenset[Any] = frozenset()) -> int:
    """How many levels graphql-core's walk can go below a value of ``type_`` (capped at
    ``MAX_NESTING_DEPTH + 1``, which also stands for "without bound")."""
    if isinstance(type_, GraphQLNonNull):
        return depth_bound(type_.of_type, visiting)
    if isinstance(type_, GraphQLList):
        return min(_UNBOUNDED, 1 + depth_bound(type_.of_type, visiting))
    if isinstance(type_, GraphQLInputObjectType):
        known = _bounds.get(type_)
        if known is not None:
            return known
        if type_ in visiting:
            return _UNBOUNDED  # reaches itself again: a value can nest as deep as it likes
        inner = visiting | {type_}
        deepest = max((depth_bound(f.type, inner) for f in type_.fields.values()), default=0)
        bound = min(_UNBOUNDED, 1 + deepest)
        if not visiting or bound < _UNBOUNDED:
            _bounds[type_] = bound
        return bound
    return 0  # scalars and enums: the walk stops here


def input_is_nested_too_deeply(value: Any, type_: GraphQLInputType) -> bool:
    if depth_bound(type_) <= MAX_NESTING_DEPTH:
        return False
    return _original(value, type_)


def install() -> None:
    """Replace graphql-core's check (the name ``coerce_variable_values`` calls)."""
    _values.input_is_nested_too_deeply = input_is_nested_too_deeply
