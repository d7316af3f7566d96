"""Authorization declared on fields: ``permission_classes=[RequireScopes("users:read")]``."""

from __future__ import annotations

import functools
from typing import Any

from graphql import GraphQLError
from strawberry.permission import BasePermission
from strawberry.types import Info


class Unauthenticated(GraphQLError):
    def __init__(self, message: str = "a valid access token is required") -> None:
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


class Forbidden(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "FORBIDDEN"})


class _ScopePermission(BasePermission):
    scopes: tuple[str, ...] = ()

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated(info.context.auth_error or "a valid access token is required")
        missing = principal.missing(self.scopes)
        if missing:
            raise Forbidden("missing scope(s): " + " ".join(missing))
        return True


@functools.cache
def RequireScopes(*scopes: str) -> type[BasePermission]:
    """A permission class needing all of ``scopes`` (all-of semantics, one rule everywhere)."""
    return type(f"RequireScopes[{' '.join(scopes)}]", (_ScopePermission,), {"scopes": scopes})


class Authenticated(BasePermission):
    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if info.context.principal is None:
            raise Unauthenticated(info.context.auth_error or "a valid access token is required")
        return True


class ShopperOnly(BasePermission):
    """Only a shopper token (token exchange, bound to one customer) may use the field; list it
    after ``RequireScopes`` so a missing scope is reported first."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated(info.context.auth_error or "a valid access token is required")
        if principal.customer_id is None:
            raise Forbidden("only a shopper token (token exchange) has a `me`")
        return True
