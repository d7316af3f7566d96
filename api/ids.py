"""Opaque global ids (``base64url("User:42")``) and keyset cursors."""

from __future__ import annotations

import base64
import binascii


class BadId(ValueError):
    pass


def encode_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_id(value: str, expected: str | None = None) -> tuple[str, int]:
    if len(value) > 100:
        raise BadId("id is too long")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        type_name, _, pk = raw.partition(":")
        number = int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadId(f"not a valid id: {value!r}") from exc
    if expected is not None and type_name != expected:
        raise BadId(f"id {value!r} is not a {expected}")
    if number <= 0 or number >= 2**63:
        raise BadId(f"not a valid id: {value!r}")
    return type_name, number


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"k:{pk}".encode()).decode().rstrip("=")


def decode_cursor(value: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        prefix, _, pk = raw.partition(":")
        if prefix != "k":
            raise ValueError(prefix)
        number = int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadId(f"not a valid cursor: {value!r}") from exc
    if number < 0 or number >= 2**63:
        raise BadId(f"not a valid cursor: {value!r}")
    return number
