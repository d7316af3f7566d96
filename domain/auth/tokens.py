"""Signing RFC 9068 access tokens with Authlib's generator and the newest signing key."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet

from domain.auth import service
from domain.auth.models import OAuthClient
from domain.auth.scopes import CLIENT_SCOPES, parse_scopes
from domain.db import Database
from domain.keys import Keys, build_keys
from domain.settings import Settings

DEV_CLIENT_ID = "precis-cli"


class TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, settings: Settings, keys: Keys) -> None:
        super().__init__(
            issuer=settings.issuer,
            alg="RS256",
            expires_generator=lambda client, grant_type: self.ttl_for(client),
        )
        self._audience = settings.audience
        self._ttl = settings.access_token_ttl
        # Only the newest key signs; older ones stay in the JWKS until their tokens have expired.
        self._signing = KeySet([keys.signing.get_by_kid(keys.signing_kid)])

    def ttl_for(self, client: Any) -> int:
        return int(getattr(client, "ttl", None) or self._ttl)

    def get_jwks(self) -> KeySet:
        return self._signing

    def get_audiences(self, client: Any, user: Any, scope: str) -> str:
        return self._audience

    def get_jti(self, client: Any, grant_type: str, user: Any, scope: str) -> str:
        # A shopper token's id is chosen beforehand so the exchange can audit it.
        jti = getattr(client, "jti", None)
        return str(jti) if jti else str(super().get_jti(client, grant_type, user, scope))

    def get_extra_claims(
        self, client: Any, grant_type: str, user: Any, scope: str
    ) -> dict[str, Any]:
        """Shopper tokens (token exchange) name their customer and, per RFC 8693 section 4.1, the
        client acting for the shopper."""
        customer_id = getattr(user, "customer_id", None)
        if customer_id is None:
            return {}
        return {"customer_id": int(customer_id), "act": {"sub": client.get_client_id()}}


class _DevClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, client_id: str, ttl: int) -> None:
        self.client_id = client_id
        self.ttl = ttl

    def get_client_id(self) -> str:
        return self.client_id

    def get_allowed_scope(self, scope: str) -> str:
        return scope


async def mint_dev_token(db: Database, settings: Settings, *, scopes: str | None, ttl: int) -> str:
    """A development token from the ``precis-cli`` client (created on first use, all scopes)."""
    wanted = parse_scopes(scopes, allowed=CLIENT_SCOPES) if scopes else sorted(CLIENT_SCOPES)
    async with db.unit_of_work() as session:
        row = await session.get(OAuthClient, DEV_CLIENT_ID)
        if row is None:
            await service.create_client(
                session,
                name="precis CLI (dev tokens)",
                scopes=sorted(CLIENT_SCOPES),
                client_id=DEV_CLIENT_ID,
            )
        elif row.disabled_at is not None:
            raise ValueError(f"client {DEV_CLIENT_ID} is disabled")
    generator = TokenGenerator(settings, build_keys(settings))
    token: dict[str, Any] = generator(
        grant_type="client_credentials",
        client=_DevClient(DEV_CLIENT_ID, ttl),
        user=None,
        scope=" ".join(wanted),
        include_refresh_token=False,
    )
    return str(token["access_token"])
