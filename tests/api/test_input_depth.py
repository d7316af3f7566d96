"""The variable-depth check answers as graphql-core's own walk does: without walking for types
that cannot nest (every input type of the schema), by the walk for recursive ones; and a
too-deep value of a recursive type is still refused through the API's coercion."""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    graphql_sync,
)
from graphql.language.parser import MAX_NESTING_DEPTH

from api import input_depth
from api.schema import build_schema
from domain.settings import Settings

NODE: GraphQLInputObjectType = GraphQLInputObjectType(
    "Node", lambda: {"name": GraphQLInputField(GraphQLString), "next": GraphQLInputField(NODE)}
)
FLAT = GraphQLInputObjectType(
    "Flat",
    {
        "a": GraphQLInputField(GraphQLString),
        "b": GraphQLInputField(GraphQLList(GraphQLNonNull(GraphQLString))),
    },
)


def chain(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"name": "end"}
    for _ in range(depth):
        value = {"next": value}
    return value


# The schema's recursive input types (a segment definition is a tree): walked by graphql-core.
RECURSIVE = {"SegmentCondition", "CreateSegmentInput", "UpdateSegmentInput"}


def test_bounded_types_are_not_walked_and_answer_no() -> None:
    schema = build_schema(Settings(_env_file=None))  # type: ignore[call-arg]
    inputs = [t for t in schema._schema.type_map.values() if isinstance(t, GraphQLInputObjectType)]
    assert inputs
    unbounded = set()
    for named in inputs:
        bound = input_depth.depth_bound(GraphQLNonNull(GraphQLList(named)))
        if bound > MAX_NESTING_DEPTH:
            unbounded.add(named.name)
    assert unbounded == RECURSIVE
    flat = GraphQLNonNull(GraphQLList(FLAT))
    assert input_depth.depth_bound(flat) == 3
    value = [{"a": "x", "b": ["y"] * 5}] * 3
    assert input_depth.input_is_nested_too_deeply(value, flat) is False
    assert input_depth._original(value, flat) is False


def test_recursive_types_are_walked_as_before() -> None:
    assert input_depth.depth_bound(NODE) > MAX_NESTING_DEPTH
    for depth in (1, MAX_NESTING_DEPTH - 1, MAX_NESTING_DEPTH, MAX_NESTING_DEPTH + 5):
        value = chain(depth)
        assert input_depth.input_is_nested_too_deeply(value, NODE) == input_depth._original(
            value, NODE
        )
    assert input_depth.input_is_nested_too_deeply(chain(MAX_NESTING_DEPTH + 5), NODE) is True


def test_graphql_core_still_refuses_a_too_deep_recursive_value() -> None:
    build_schema(Settings(_env_file=None))  # type: ignore[call-arg]  # installs the check
    schema = GraphQLSchema(
        GraphQLObjectType(
            "Query",
            {
                "echo": GraphQLField(
                    GraphQLString,
                    args={"node": GraphQLArgument(NODE)},
                    resolve=lambda *_, **__: "ok",
                )
            },
        )
    )
    query = "query($n: Node) { echo(node: $n) }"
    ok = graphql_sync(schema, query, variable_values={"n": chain(3)})
    assert ok.errors is None and ok.data == {"echo": "ok"}
    deep = graphql_sync(schema, query, variable_values={"n": chain(MAX_NESTING_DEPTH + 5)})
    assert deep.errors and "nested too deeply" in deep.errors[0].message
