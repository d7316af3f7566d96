"""Typed mutation errors: each mutation has its own error type and code enum, built from one shape."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from domain.errors import DomainError, FieldError


def error_type(name: str, codes: list[str], description: str) -> tuple[type, type[Enum]]:
    """Make ``<Name>Error`` with a ``<Name>ErrorCode`` enum of ``codes``."""
    code_enum: type[Enum] = strawberry.enum(Enum(f"{name}ErrorCode", {c: c for c in codes}))  # type: ignore[call-overload]

    cls = type(
        f"{name}Error",
        (),
        {
            "__annotations__": {
                "code": code_enum,
                "field": list[str],
                "message": str,
                "index": int | None,
            },
            "__doc__": description,
            "index": None,
        },
    )
    return strawberry.type(cls, description=description), code_enum


def to_errors(error_cls: type, code_enum: type[Enum], exc: DomainError) -> list[Any]:
    return [convert(error_cls, code_enum, e) for e in exc.errors]


def convert(error_cls: type, code_enum: type[Enum], e: FieldError) -> Any:
    code = code_enum[e.code] if e.code in code_enum.__members__ else code_enum["INVALID"]
    return error_cls(code=code, field=list(e.field), message=e.message, index=e.index)
