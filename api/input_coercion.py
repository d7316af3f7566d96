"""graphql-core's variable coercion, compiled once per input type.

graphql-core 3.3 coerces a variable value (``coerce_input_value``) by asking, at every value, what
kind of type it has (non-null, list, input object, leaf), and, at every input object, every field
whether it is required and what its default is, although none of that changes after the schema is
built. A 500-event ``trackEvents`` call has 500 input objects of 15 fields (about 7,500 field
visits and 3,000 leaf values): about 16 % of the server's time for such a request.

Here each type gets a function once, with those answers built in; the function does what
``coerce_input_value`` does, in the same order, with the same results: the same coerced values
(including defaults and ``out_type``), ``Undefined`` wherever graphql-core returns it (graphql-core
then explains the error with ``validate_input_value``, untouched). The leaf coercers (scalars and
enums) are the schema's own, called as graphql-core calls them. The functions of named types are
kept per type (named types belong to the schema and live as long as it does); wrapper types
(``[T]``, ``T!``) are cheap to compile and are built for each call, since a variable's type is a new
wrapper object for every request.

``tests/api/test_input_coercion.py`` compares the two over valid and invalid values of every input
type of the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    Undefined,
    is_leaf_type,
    is_required_input_field,
)
from graphql.execution import values as _values
from graphql.pyutils import is_iterable
from graphql.utilities.coerce_input_value import coerce_default_value

Coercer = Callable[[Any], Any]

_original = _values.coerce_input_value
_named: dict[Any, Coercer] = {}


def coercer(type_: Any) -> Coercer:
    """The function that coerces a value of ``type_`` as ``coerce_input_value`` would."""
    if isinstance(type_, GraphQLNonNull):
        inner = coercer(type_.of_type)

        def non_null(value: Any) -> Any:
            if value is None or value is Undefined:
                return Undefined
            return inner(value)

        return non_null
    if isinstance(type_, GraphQLList):
        item = coercer(type_.of_type)

        def list_of(value: Any) -> Any:
            if value is None or value is Undefined:
                return None
            if not is_iterable(value):  # a non-list value is a list of one
                one = item(value)
                return Undefined if one is Undefined else [one]
            coerced: list[Any] = []
            append = coerced.append
            for element in value:
                one = item(element)
                if one is Undefined:
                    return Undefined
                append(one)
            return coerced

        return list_of
    found = _named.get(type_)
    if found is None:
        if isinstance(type_, GraphQLInputObjectType):
            found = _input_object(type_)
        elif is_leaf_type(type_):
            found = _leaf(type_)
        else:  # not an input type: graphql-core's own answer (an error) at each call

            def found(value: Any) -> Any:
                return _original(value, type_)

        _named[type_] = found
    return found


def _leaf(type_: Any) -> Coercer:
    coerce = type_.coerce_input_value

    def leaf(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        try:
            return coerce(value)
        except Exception:  # as graphql-core: any error means "invalid"
            return Undefined

    return leaf


def _input_object(type_: GraphQLInputObjectType) -> Coercer:
    # Registered before its fields are compiled: a recursive type reaches itself through them.
    compiled: list[Coercer] = []

    def deferred(value: Any) -> Any:
        return compiled[0](value)

    _named[type_] = deferred
    fields = type_.fields
    names = frozenset(fields)
    # (name, out name, coercer, required, field with a default or None)
    plan = [
        (
            name,
            field.out_name or name,
            coercer(field.type),
            is_required_input_field(field),
            None if field.default is None and field.default_value is Undefined else field,
        )
        for name, field in fields.items()
    ]
    out_type = type_.out_type
    plain = out_type is GraphQLInputObjectType.out_type  # passes the dict on unchanged
    one_of = type_.is_one_of

    def input_object(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        if not isinstance(value, dict):
            return Undefined
        if not names.issuperset(value) and any(
            v is not Undefined and k not in names for k, v in value.items()
        ):
            return Undefined  # an unknown field
        coerced: dict[str, Any] = {}
        get = value.get
        for name, out_name, coerce, required, with_default in plan:
            given = get(name, Undefined)
            if given is Undefined:
                if required:
                    return Undefined
                if with_default is not None:
                    default = coerce_default_value(with_default)
                    if default is not Undefined:
                        coerced[out_name] = default
            else:
                one = coerce(given)
                if one is Undefined:
                    return Undefined
                coerced[out_name] = one
        if one_of:
            defined = sum(1 for v in value.values() if v is not Undefined)
            keys = list(coerced)
            if defined != 1 or len(keys) != 1 or coerced[keys[0]] is None:
                return Undefined
        return coerced if plain else out_type(coerced)

    compiled.append(input_object)
    return input_object


def coerce_input_value(input_value: Any, type_: Any) -> Any:
    """Drop-in for graphql-core's ``coerce_input_value`` (the name ``coerce_variable_values``
    calls)."""
    return coercer(type_)(input_value)


def install() -> None:
    """Replace the coercion of variable values (literals and defaults are coerced as before)."""
    _values.coerce_input_value = coerce_input_value
