"""Who is calling: the validated claims of an access token."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    subject: str
    scopes: frozenset[str]
    jti: str
    expires_at: int
    # Set on shopper tokens (token exchange): the customer the token is bound to.
    customer_id: int | None = None

    def has(self, *scopes: str) -> bool:
        return all(s in self.scopes for s in scopes)

    def missing(self, scopes: tuple[str, ...]) -> list[str]:
        return [s for s in scopes if s not in self.scopes]
