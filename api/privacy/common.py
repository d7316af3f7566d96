"""Finding the shopper a privacy, consent or export input names (``userId`` or ``userExternalId``)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.users.queries import bad_input, find_user
from domain.errors import DomainError


async def target_user(info: Info, user_id: strawberry.ID | None, external_id: str | None) -> int:
    """The customer id, or a typed NOT_FOUND; giving both or neither is a top-level input error."""
    if (user_id is None) == (external_id is None):
        raise bad_input("give exactly one of `userId` and `userExternalId`")
    if external_id is not None and "\x00" in external_id:  # no external id holds NUL
        raise DomainError.one("NOT_FOUND", "no such user", "input", "userExternalId")
    found = await find_user(info, user_id, external_id)
    if found is None or found.id is None:
        raise DomainError.one("NOT_FOUND", "no such user", "input", "userId")
    return found.id
