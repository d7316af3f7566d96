"""Turning Strawberry inputs into plain dicts of the fields the caller actually sent."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry


def provided(
    obj: Any, *, rename: dict[str, str] | None = None, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if value is strawberry.UNSET:
            continue
        out[(rename or {}).get(f.name, f.name)] = value
    return out
