"""The compiled variable coercion (api/input_coercion.py) answers as graphql-core's own
``coerce_input_value`` does: the same value or the same ``Undefined``, for valid and invalid values
of every input type of the schema (random values from a fixed seed), of recursive and one-of types
and of fields with defaults; and a bad variable is still refused through the API with graphql-core's
own message."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    Undefined,
    graphql_sync,
)
from graphql.type import GraphQLDefaultInput

from api import input_coercion
from api.schema import build_schema
from domain.settings import Settings

NODE: GraphQLInputObjectType = GraphQLInputObjectType(
    "Node",
    lambda: {
        "name": GraphQLInputField(GraphQLNonNull(GraphQLString)),
        "next": GraphQLInputField(NODE),
        "tags": GraphQLInputField(GraphQLList(GraphQLNonNull(GraphQLString))),
    },
)
CHOICE = GraphQLInputObjectType(
    "Choice",
    {"a": GraphQLInputField(GraphQLString), "b": GraphQLInputField(GraphQLInt)},
    is_one_of=True,
)
COLOR = GraphQLEnumType("Color", {"RED": 1, "GREEN": 2})
DEFAULTS = GraphQLInputObjectType(
    "Defaults",
    {
        "size": GraphQLInputField(GraphQLNonNull(GraphQLInt), default=GraphQLDefaultInput(10)),
        "color": GraphQLInputField(COLOR, default_value=2),  # the deprecated internal default
        "label": GraphQLInputField(GraphQLString),
    },
    out_type=lambda value: ("out", tuple(sorted(value.items()))),
)
EXTRA_TYPES = [NODE, CHOICE, COLOR, DEFAULTS]


def schema_input_types() -> list[Any]:
    schema = build_schema(Settings(_env_file=None))  # type: ignore[call-arg]
    return [
        t
        for name, t in schema._schema.type_map.items()
        if not name.startswith("__")
        and isinstance(t, (GraphQLInputObjectType, GraphQLScalarType, GraphQLEnumType))
    ]


def junk(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(12 if depth < 2 else 9)
    if pick == 9:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    if pick == 10:
        return {"k": junk(rng, depth + 1)}
    if pick == 11:
        return (1, 2)
    return [
        None,
        rng.randint(-(2**40), 2**40),
        rng.random() * 100,
        True,
        "",
        "x" * rng.randrange(1, 5),
        "12.50",
        "2026-01-02T03:04:05+00:00",
        "not a date",
    ][pick]


def leaf_value(rng: random.Random, t: Any) -> Any:
    if isinstance(t, GraphQLEnumType):
        return rng.choice([*t.values, "NOPE", 1])
    plausible = {
        "String": lambda: rng.choice(["a", "é", "x" * 200]),
        "ID": lambda: rng.choice(["VXNlcjox", "17", 17]),
        "Int": lambda: rng.choice([0, 5, 2**31, -3]),
        "Float": lambda: rng.choice([1.5, 2, "3"]),
        "Boolean": lambda: rng.choice([True, False, 0]),
        "DateTime": lambda: rng.choice(
            [
                (datetime.now(UTC) - timedelta(hours=rng.randrange(50))).isoformat(),
                "2026-01-02T03:04:05",
                "2026-13-40",
            ]
        ),
        "Decimal": lambda: rng.choice(["19.90", "1e3", "abc", 5]),
        "JSON": lambda: rng.choice([{"page": "/p/1"}, [1, 2], "text", None]),
    }.get(t.name)
    if plausible is None or rng.random() < 0.15:
        return junk(rng)
    return plausible()


def value_for(rng: random.Random, t: Any, depth: int = 0) -> Any:
    """A random value for ``t``: mostly plausible, sometimes wrong in one place."""
    if rng.random() < 0.03:
        return junk(rng)
    if isinstance(t, GraphQLNonNull):
        return None if rng.random() < 0.03 else value_for(rng, t.of_type, depth)
    if isinstance(t, GraphQLList):
        if rng.random() < 0.1:
            return value_for(rng, t.of_type, depth)  # a list of one
        return [value_for(rng, t.of_type, depth + 1) for _ in range(rng.randrange(4))]
    if isinstance(t, GraphQLInputObjectType):
        if depth > 3:
            return None
        value = {}
        for name, f in t.fields.items():
            required = isinstance(f.type, GraphQLNonNull)
            if required or rng.random() < 0.5:
                if rng.random() > 0.02:  # sometimes a required field is missing
                    value[name] = value_for(rng, f.type, depth + 1)
        if rng.random() < 0.05:
            value["unknownField"] = 1
        if rng.random() < 0.05:
            value["skipped"] = Undefined  # ignored, as graphql-core ignores it
        return value
    return leaf_value(rng, t)


def outcome(coerce: Any, t: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", coerce(value, t)
    except Exception as exc:  # an out_type may raise (Strawberry's one-of check)
        return "raised", (type(exc), str(exc))


def same(t: Any, value: Any) -> None:
    expected = outcome(input_coercion._original, t, value)
    got = outcome(input_coercion.coerce_input_value, t, value)
    assert got == expected, (t, value)
    assert (got[1] is Undefined) == (expected[1] is Undefined), (t, value)


@pytest.mark.parametrize("seed", range(3))
def test_same_answers_as_graphql_core_for_every_input_type(seed: int) -> None:
    rng = random.Random(seed)
    types = schema_input_types() + EXTRA_TYPES
    assert any(t.name == "EventInput" for t in types)
    for named in types:
        for wrapped in (named, GraphQLNonNull(named), GraphQLList(GraphQLNonNull(named))):
            for _ in range(100):
                same(wrapped, value_for(rng, wrapped))


def test_valid_and_invalid_event_batches() -> None:
    types = {t.name: t for t in schema_input_types()}
    track = GraphQLNonNull(types["TrackEventsInput"])
    at = datetime.now(UTC).isoformat()
    event = {
        "clientEventId": "e-1",
        "type": "purchase",
        "userId": "VXNlcjox",
        "value": "19.90",
        "currency": "EUR",
        "occurredAt": at,
        "properties": {"a": [1, {"b": None}]},
    }
    valid = {"events": [event, {"clientEventId": "e-2", "type": "view"}] * 250}
    coerced = input_coercion.coerce_input_value(valid, track)
    assert coerced is not Undefined and len(coerced["events"]) == 500
    same(track, valid)
    cases: list[Any] = [
        {"events": [{**event, "clientEventId": None}]},  # null in a non-null field
        {"events": [{"type": "view"}]},  # a required field missing
        {"events": [{**event, "occurredAt": "yesterday"}]},  # a scalar refuses
        {"events": [{**event, "rating": "five"}]},
        {"events": [{**event, "color": "red"}]},  # an unknown field
        {"events": "not a list"},  # a list of one, which is not an object
        {"events": [event], "more": 1},
        {"events": None},
        [],
        None,
    ]
    for broken in cases:
        same(track, broken)
        assert input_coercion.coerce_input_value(broken, track) is Undefined


def test_recursive_one_of_and_defaults() -> None:
    chain: dict[str, Any] = {"name": "end"}
    for n in range(30):
        chain = {"name": str(n), "next": chain, "tags": ["t"]}
    same(NODE, chain)
    assert input_coercion.coerce_input_value(chain, NODE)["next"]["name"] == "28"
    broken = {"name": "top", "next": {"next": {"name": "x"}}}  # a name missing below
    same(NODE, broken)
    assert input_coercion.coerce_input_value(broken, NODE) is Undefined
    for value in ({"a": "x"}, {"b": 1}, {"a": "x", "b": 1}, {"a": None}, {}, {"a": Undefined}):
        same(CHOICE, value)
    for value in ({}, {"size": 3}, {"color": "RED", "label": None}, {"size": None}):
        same(DEFAULTS, value)
    assert input_coercion.coerce_input_value({}, DEFAULTS) == ("out", (("color", 2), ("size", 10)))


def test_a_bad_variable_is_refused_with_graphql_cores_message() -> None:
    input_coercion.install()
    schema = GraphQLSchema(
        GraphQLObjectType(
            "Query",
            {
                "echo": GraphQLField(
                    GraphQLString,
                    args={"node": GraphQLArgument(GraphQLNonNull(NODE))},
                    resolve=lambda _root, _info, node: node["name"],
                )
            },
        )
    )
    query = "query Q($n: Node!) { echo(node: $n) }"
    ok = graphql_sync(schema, query, variable_values={"n": {"name": "hi"}})
    assert ok.errors is None and ok.data == {"echo": "hi"}
    bad = graphql_sync(schema, query, variable_values={"n": {"next": {"name": "x"}}})
    assert bad.data is None and bad.errors
    assert [e.message for e in bad.errors] == [
        "Variable '$n' has invalid value: Expected value of type 'Node' to include required "
        "field 'name', found: {'next': {'name': 'x'}}."
    ]
