"""Value checks shared by services and importers: each returns the normalised value or raises."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

from domain.errors import FieldError

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
TAG = re.compile(r"^[a-z0-9][a-z0-9_:.-]{0,63}$")
LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class Invalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def external_id(value: Any) -> str:
    if not isinstance(value, str) or not EXTERNAL_ID.match(value):
        raise Invalid(
            "INVALID_EXTERNAL_ID",
            "external id must be 1-128 characters: letters, digits and . _ : @ / -",
        )
    return value


def email(value: str) -> str:
    if len(value) > 254:
        raise Invalid("INVALID_EMAIL", "email is longer than 254 characters")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid("INVALID_EMAIL", f"invalid email: {exc}") from exc
    return result.normalized.lower()


def phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise Invalid("INVALID_PHONE", "phone must be in E.164 form, e.g. +4915112345678") from exc
    if not phonenumbers.is_valid_number(number):
        raise Invalid("INVALID_PHONE", "phone number is not valid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone(value: str) -> str:
    if value not in _zones():
        raise Invalid("INVALID_TIMEZONE", f"unknown IANA time zone {value!r}")
    return value


def country(value: str) -> str:
    code = value.upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise Invalid("INVALID_COUNTRY", f"unknown ISO 3166-1 alpha-2 country {value!r}")
    return code


def currency(value: str) -> str:
    code = value.upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise Invalid("INVALID_CURRENCY", f"unknown ISO 4217 currency {value!r}")
    return code


def locale(value: str) -> str:
    if not LOCALE.match(value) or len(value) > 35:
        raise Invalid("INVALID_LOCALE", f"locale must be a BCP 47 tag like en-GB, got {value!r}")
    return value


def tag(value: str) -> str:
    if not TAG.match(value):
        raise Invalid(
            "INVALID_TAG", f"tag must be 1-64 lowercase letters, digits or _ : . - ({value!r})"
        )
    return value


def text(value: str, *, field_name: str, max_length: int, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise Invalid("REQUIRED", f"{field_name} is required")
    if len(value) > max_length:
        raise Invalid("TOO_LONG", f"{field_name} is longer than {max_length} characters")
    return value


def money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise Invalid("INVALID_PRICE", f"not a decimal amount: {value!r}") from exc
    if not amount.is_finite() or amount < 0 or amount >= Decimal("10000000000"):
        raise Invalid("INVALID_PRICE", "amount must be between 0 and 9,999,999,999.99")
    if amount != amount.quantize(Decimal("0.01")):
        raise Invalid("INVALID_PRICE", "amount has more than two decimal places")
    return amount.quantize(Decimal("0.01"))


def attributes(value: Any, *, max_bytes: int = 8192) -> dict[str, Any]:
    import orjson

    if not isinstance(value, dict):
        raise Invalid("INVALID_ATTRIBUTES", "attributes must be a JSON object")
    if len(orjson.dumps(value)) > max_bytes:
        raise Invalid("INVALID_ATTRIBUTES", f"attributes exceed {max_bytes} bytes")
    return value


def check(
    errors: list[FieldError],
    index: int | None,
    path: tuple[str, ...],
    fn: Any,
    *args: Any,
    **kw: Any,
) -> Any:
    """Run one check, collecting its failure as a ``FieldError`` instead of raising."""
    try:
        return fn(*args, **kw)
    except Invalid as exc:
        errors.append(FieldError(exc.code, str(exc), path, index))
        return None
