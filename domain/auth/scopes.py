"""OAuth scopes (``resource:action``). A field that lists several needs all of them."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "users:read": "Read shoppers (email and phone masked).",
    "users:write": "Create and change shoppers and their tags.",
    "users:pii": "Read unmasked email and phone.",
    "events:write": "Send behaviour events and orders.",
    "catalog:read": "Read products and categories.",
    "catalog:write": "Create, change and archive products.",
    "segments:read": "Read segments and membership.",
    "segments:write": "Create and change segments.",
    "recommendations:read": "Ask for recommendations.",
    "models:write": "Train and promote recommendation models.",
    "campaigns:read": "Read campaigns.",
    "campaigns:write": "Author campaigns.",
    "campaigns:approve": "Approve campaigns.",
    "coupons:read": "Read coupons.",
    "coupons:write": "Create coupons.",
    "coupons:redeem": "Redeem coupons.",
    "metrics:read": "Read KPIs.",
    "privacy:manage": "Handle privacy requests.",
    "audit:read": "Read the audit log.",
    "clients:manage": "Manage OAuth clients; admin (introspection of the schema in prod).",
    "jobs:read": "Read background task status.",
    "shoppers:delegate": "Mint shopper tokens by token exchange.",
    "me:read": "Shopper token: read own data.",
    "me:write": "Shopper token: change own data.",
}

ALL_SCOPES = frozenset(SCOPES)
# Scopes a server client may hold; me:* only ever appear on shopper tokens.
CLIENT_SCOPES = frozenset(s for s in SCOPES if not s.startswith("me:"))
ADMIN_SCOPE = "clients:manage"
# What a shopper token (token exchange) may carry, and what it gets when it asks for nothing.
SHOPPER_SCOPES = ("me:read", "me:write", "events:write", "recommendations:read")
DELEGATE_SCOPE = "shoppers:delegate"


class UnknownScopeError(ValueError):
    pass


def parse_scopes(
    value: str | list[str] | None, *, allowed: frozenset[str] = ALL_SCOPES
) -> list[str]:
    """Split, de-duplicate and check scopes; keeps a stable order."""
    if value is None:
        return []
    parts = value.split() if isinstance(value, str) else list(value)
    unknown = sorted({p for p in parts if p not in allowed})
    if unknown:
        raise UnknownScopeError("unknown scope(s): " + ", ".join(unknown))
    return sorted(set(parts))
