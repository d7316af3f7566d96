"""The leaf fast path in ``api.execution`` answers exactly what graphql-core's own path answers: data,
errors, paths and locations, for plain values, nulls, refused values, awaitables and resolvers; it is
taken for plain leaves only and is off under resolver middleware."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, cast

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON

from api import execution


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    count: int
    ratio: float
    on: bool
    when: dt.datetime
    colour: Colour
    data: JSON
    maybe: str | None
    ident: strawberry.ID

    @strawberry.field
    def shout(self, suffix: str = "!") -> str:
        return self.name.upper() + suffix


class Loose:
    """A source object that breaks the type's promises in every way a resolver can."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class Lazy(Loose):
    """``maybe`` is a property making a new coroutine on every read (the worst case)."""

    @property
    def maybe(self) -> Any:
        return later()


async def later() -> str:
    return "awaited"


def good(n: int) -> Item:
    return Item(
        name=f"item{n}",
        count=n,
        ratio=n / 2,
        on=n % 2 == 0,
        when=dt.datetime(2024, 1, n % 28 + 1, tzinfo=dt.UTC),
        colour=Colour.RED if n % 2 else Colour.BLUE,
        data=cast(Any, {"n": n, "list": [1, 2]}),
        maybe=None if n % 3 else "x",
        ident=strawberry.ID(f"I{n}"),
    )


def bad_items() -> list[Any]:
    base = vars(good(1)).copy()
    return [
        Loose(**{**base, "name": None}),  # null in a non-null field
        Loose(**{**base, "count": "many"}),  # Int refuses a string
        Loose(**{**base, "ratio": float("nan")}),  # Float refuses NaN
        Loose(**{**base, "colour": "green"}),  # not an enum value
        Lazy(**{k: v for k, v in base.items() if k != "maybe"}),  # an awaitable
        Loose(**{k: v for k, v in base.items() if k != "count"}),  # missing attribute
        Loose(**{**base, "maybe": ["not", "a", "string"]}),  # String refuses a list
    ]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [good(n) for n in range(1, 6)]

    @strawberry.field
    def broken(self) -> list[Item | None]:
        return bad_items()  # type: ignore[return-value]

    @strawberry.field
    async def one(self) -> Item:
        return good(7)


FIELDS = "name count ratio on when colour data maybe ident"
QUERIES = [
    f"{{ items {{ {FIELDS} }} }}",
    f"{{ items {{ {FIELDS} shout }} }}",
    '{ items { a: name b: name shout(suffix: "?") __typename } }',
    f"{{ broken {{ {FIELDS} }} }}",
    "{ broken { name } }",
    "{ broken { maybe } }",
    f"{{ one {{ {FIELDS} }} }}",
    "{ items { ...F } } fragment F on Item { name count @include(if: false) colour }",
]


class Counter(SchemaExtension):
    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        return _next(root, info, *args, **kwargs)


def schemas(extensions: list[Any] | None = None) -> tuple[strawberry.Schema, strawberry.Schema]:
    plain = strawberry.Schema(query=Query, extensions=extensions or [])
    fast = strawberry.Schema(query=Query, extensions=extensions or [])
    fast.execution_context_class = execution.executor_for(fast._schema)
    return plain, fast


def as_dict(result: Any) -> dict[str, Any]:
    return {
        "data": result.data,
        "errors": [e.formatted for e in result.errors or []],
    }


@pytest.mark.parametrize("query", QUERIES)
async def test_same_answers_as_graphql_core(query: str) -> None:
    plain, fast = schemas()
    expected = as_dict(await plain.execute(query))
    got = as_dict(await fast.execute(query))
    assert got == expected
    if "broken" in query:
        assert expected["errors"], "the broken items must produce errors"


@pytest.mark.parametrize("query", QUERIES)
async def test_same_answers_with_middleware(query: str) -> None:
    plain, fast = schemas([Counter])
    assert as_dict(await fast.execute(query)) == as_dict(await plain.execute(query))


async def test_fast_path_is_taken_for_plain_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    _, fast = schemas()
    plans = fast.execution_context_class.plans  # type: ignore[union-attr, attr-defined]
    assert set(plans["Item"]) == {
        "name",
        "count",
        "ratio",
        "on",
        "when",
        "colour",
        "data",
        "maybe",
        "ident",
    }  # not ``shout`` (a resolver with arguments)
    infos = 0
    original = execution.FastExecutor.build_resolve_info

    def counting(self: Any, *args: Any) -> Any:
        nonlocal infos
        infos += 1
        return original(self, *args)

    monkeypatch.setattr(execution.FastExecutor, "build_resolve_info", counting)
    result = await fast.execute(f"{{ items {{ {FIELDS} }} }}")
    assert not result.errors
    assert infos == 1  # ``items`` only; none for the 45 leaves


async def test_fast_resolvers_must_exist() -> None:
    plain, _ = schemas()
    with pytest.raises(ValueError, match=r"no field Item\.nope"):
        execution.install(plain._schema, {("Item", "nope"): lambda root, info: None})
    with pytest.raises(ValueError, match="takes arguments"):
        execution.install(plain._schema, {("Item", "shout"): lambda root, info: None})


class Recorder(SchemaExtension):
    seen: list[str] = []

    def on_parse(self) -> Any:
        Recorder.seen.append("parse")
        yield

    def on_validate(self) -> Any:
        Recorder.seen.append("validate")
        yield

    async def on_execute(self) -> Any:
        Recorder.seen.append("execute")
        yield


async def test_lean_runner_still_runs_hooks_that_exist() -> None:
    from api.schema import PrecisSchema

    bare = PrecisSchema(query=Query)
    assert not (await bare.execute("{ one { name } }")).errors
    Recorder.seen = []
    hooked = PrecisSchema(query=Query, extensions=[Recorder])
    result = await hooked.execute("{ one { name } }")
    assert result.data == {"one": {"name": "item7"}}
    assert Recorder.seen == ["parse", "validate", "execute"]


async def test_a_failing_field_does_not_cancel_its_siblings(api: Any) -> None:
    """``users(first: 1000)`` fails and nulls the whole answer while two ``user`` fields share the
    tags DataLoader. With graphql-core's cancel-on-error, cancelling one sibling cancelled the shared
    loader future under the other and the request hung (SQLite) or died with CancelledError; now
    siblings finish, the error is reported, and the next requests work."""
    import asyncio

    body = await api.gql(
        'mutation { upsertUsers(input: {users: [{externalId: "a"}, {externalId: "b"}]}) '
        "{ errors { code } } }",
        scopes="users:write users:read",
    )
    assert body["data"]["upsertUsers"]["errors"] == []
    query = """{ users(first: 1000) { totalCount }
      a: user(externalId: "a") { tags } b: user(externalId: "b") { tags } }"""
    for _ in range(3):
        body = await asyncio.wait_for(api.gql(query, scopes="users:read"), 30)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    body = await asyncio.wait_for(
        api.gql("{ users(first: 5) { totalCount } }", scopes="users:read"), 30
    )
    assert body == {"data": {"users": {"totalCount": 2}}}
