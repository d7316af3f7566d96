"""A leaner path through graphql-core for plain leaf fields, which is most of a list's cost.

graphql-core executes every field the same way: it builds a ``GraphQLResolveInfo`` (Strawberry's is a
16-item tuple), calls the resolver, checks for an awaitable and walks ``complete_value``. For a
scalar or enum field read straight off the object (a Strawberry field without a resolver, or one of
the info-free resolvers registered with ``fast_resolver``) none of that is needed: the executor
here reads the value and coerces it directly. Anything unusual (an exception, ``null`` in a non-null
field, a value the scalar refuses, an awaitable) goes back through graphql-core's own path, so
errors, paths and locations are exactly what they were; plain resolvers have no side effects, so
reading a value twice is harmless. With resolver middleware (an extension's ``resolve`` hook) the
fast path is off.

graphql-core 3.3 cancels the sibling fields of a field that fails (``gather_with_cancel``). Here that
is harmful: a resolver cancelled in the middle of a database call leaves the request's connection
broken, and a DataLoader future shared with a field elsewhere in the document is cancelled with it,
so ``CancelledError`` escapes the request. Siblings are therefore left to finish (``gather_settled``)
and the first error is raised after; the work they did is rolled back with the request as before.

graphql-core also asks of every value whether it is awaitable; for an ORM row that question costs an
attribute miss through pydantic's ``__getattr__`` (about 8 us on the 2-core benchmark machine, per
row). Instances of mapped classes, and a few plain value types, are answered from a set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import operator
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeGuard

from graphql import GraphQLField, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, is_leaf_type
from graphql.execution import executor as _graphql_executor
from graphql.execution.executor import to_nodes
from graphql.pyutils import Undefined
from sqlalchemy.engine import Row
from sqlmodel import SQLModel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


async def gather_settled(*awaitables: Awaitable[Any]) -> list[Any]:
    """Like graphql-core's ``gather_with_cancel`` but without cancelling: every sibling runs to its
    end, then the first exception (in field order) is raised. Cancelling the caller still cancels
    them all (``asyncio.gather``)."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


_graphql_executor.gather_with_cancel = gather_settled  # type: ignore[attr-defined]

FAST_MARK = "_precis_fast"
# Per schema: type name -> field name -> (read, coerce, non_null, field); ``read(source)``.
Plans = dict[str, dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], bool, GraphQLField]]]


def fast_resolver(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a graphql-core resolver ``(root, info=None)`` that never uses ``info`` and has no
    effects; the fast path calls it with the root alone."""
    setattr(fn, FAST_MARK, True)
    return fn


def _reader(field: GraphQLField) -> Callable[[Any], Any] | None:
    """How to read the field's value from its source without ``info``, if it can be done."""
    resolve = field.resolve
    if getattr(resolve, FAST_MARK, False):
        return resolve
    # Strawberry marks the resolver of a field without a resolver function with ``_is_default``;
    # its basic-field wrapper (no arguments, extensions or permissions) ignores ``info`` and reads
    # the attribute with the configured default resolver.
    if not (getattr(resolve, "_is_default", False) and resolve.__name__ == "_get_basic_result"):  # type: ignore[union-attr]
        return None
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and definition.default_resolver is getattr
    ):
        return operator.attrgetter(definition.python_name)
    return lambda source: resolve(source, None)  # type: ignore[misc]


def plan(schema: GraphQLSchema) -> Plans:
    """The fields of ``schema`` that can take the fast path."""
    plans: Plans = {}
    for name, gql_type in schema.type_map.items():
        if name.startswith("__") or not isinstance(gql_type, GraphQLObjectType):
            continue
        fields = {}
        for field_name, field in gql_type.fields.items():
            read = None if field.args or field.resolve is None else _reader(field)
            field_type = field.type
            non_null = isinstance(field_type, GraphQLNonNull)
            inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
            if read is None or not is_leaf_type(inner):
                continue
            fields[field_name] = (read, inner.coerce_output_value, non_null, field)
        if fields:
            plans[name] = fields
    return plans


def install(schema: GraphQLSchema, resolvers: dict[tuple[str, str], Callable[..., Any]]) -> None:
    """Replace Strawberry's resolver wrappers on these ``(type, field)`` with plain functions."""
    for (type_name, field_name), fn in resolvers.items():
        gql_type = schema.type_map.get(type_name)
        if not isinstance(gql_type, GraphQLObjectType) or field_name not in gql_type.fields:
            raise ValueError(f"no field {type_name}.{field_name} in the schema")
        field = gql_type.fields[field_name]
        if field.args:
            raise ValueError(f"{type_name}.{field_name} takes arguments")
        field.resolve = fn


_NO_FIELDS: dict[str, Any] = {}
_VALUE_TYPES = (
    type(None),
    str,
    int,
    float,
    bool,
    bytes,
    list,
    tuple,
    dict,
    dt.datetime,
    dt.date,
    dt.time,
    decimal.Decimal,
    uuid.UUID,
    Row,
)


def sync_types() -> frozenset[type]:
    """Types whose instances are never awaitable: mapped model classes and plain value types."""
    mapped = {mapper.class_ for mapper in SQLModel._sa_registry.mappers}
    return frozenset(t for t in (*mapped, *_VALUE_TYPES) if not hasattr(t, "__await__"))


class FastExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with the leaf fast path (``plans`` set per schema)."""

    plans: Plans = {}
    sync: frozenset[type] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        self._fast = not (middleware is not None and getattr(middleware, "middlewares", None))
        general = self.is_awaitable
        sync = self.sync

        def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
            return False if type(value) in sync else general(value)

        self.is_awaitable = is_awaitable  # type: ignore[method-assign]

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        # When every selected field of the object is a plain leaf (a row of a list, usually), the
        # whole result map is built here; on the first unusual value graphql-core does it all again.
        fast = self.plans.get(parent_type.name) if self._fast else None
        if fast is not None:
            results: dict[str, Any] = {}
            is_awaitable = self.is_awaitable
            sync = self.sync
            try:
                for response_name, field_details_list in grouped_field_set.items():
                    found = fast.get(field_details_list[0].node.name.value)
                    if found is None:
                        break
                    read, coerce, non_null, _ = found
                    value = read(source_value)
                    if value is None:
                        if non_null:
                            break
                        results[response_name] = None
                        continue
                    if type(value) not in sync and is_awaitable(value):
                        if isinstance(value, Coroutine):
                            value.close()  # never started; graphql-core reads the field again
                        break
                    coerced = coerce(value)
                    if coerced is None or coerced is Undefined:
                        break
                    results[response_name] = coerced
                else:
                    return results
            except Exception:  # graphql-core's own path reports it
                pass
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        if self._fast:
            node = field_details_list[0].node
            found = self.plans.get(parent_type.name, _NO_FIELDS).get(node.name.value)
            if found is not None:
                read, coerce, non_null, field = found
                try:
                    value = read(source)
                    if value is None:
                        if not non_null:
                            return None
                    elif self.is_awaitable(value):
                        info = self.build_resolve_info(
                            field, to_nodes(field_details_list), parent_type, path
                        )
                        return self.complete_awaitable_value(
                            field.type, field_details_list, info, path, value, position_context
                        )
                    else:
                        coerced = coerce(value)
                        if coerced is not None and coerced is not Undefined:
                            return coerced
                except Exception:  # graphql-core's own path reports it
                    pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )


def executor_for(schema: GraphQLSchema) -> type[FastExecutor]:
    """A ``FastExecutor`` subclass bound to the plans of ``schema`` (call after ``install``)."""
    return type("PrecisExecutor", (FastExecutor,), {"plans": plan(schema), "sync": sync_types()})
