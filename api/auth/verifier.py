"""Access-token validation for the resource server (RFC 9068), cheap on the hot path.

Signature checks are done once per token string and cached until the token expires; the key set is
imported once per process. Revoked token ids and disabled clients are re-read from the database at
most every ``auth_cache_seconds`` by each process, and the process that revokes or disables updates
its own copy at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from api.auth.principal import Principal
from domain.auth import service as auth_service
from domain.db import Database
from domain.keys import Keys
from domain.settings import Settings

ACCEPTED_TYP = frozenset({"at+jwt", "application/at+jwt"})


class StrictValidator(JWTBearerTokenValidator):  # type: ignore[misc]
    """Authlib's RFC 9068 validator, with ``typ`` required rather than optional."""

    def __init__(self, issuer: str, audience: str, keys: KeySet) -> None:
        super().__init__(issuer=issuer, resource_server=audience)
        self._keys = keys

    def get_jwks(self) -> KeySet:
        return self._keys

    def claims(self, token: str) -> dict[str, Any]:
        try:
            claims = self.authenticate_token(token)
            typ = str(claims.header.get("typ") or "").lower()
            if typ not in ACCEPTED_TYP:
                raise InvalidTokenError()
            if claims.header.get("alg") != "RS256":
                raise InvalidTokenError()
            claims.validate()
        except (JoseError, ValueError) as exc:
            raise InvalidTokenError() from exc
        return dict(claims)


class TokenVerifier:
    def __init__(
        self, settings: Settings, keys: Keys, db: Database, *, cache_size: int = 10_000
    ) -> None:
        self.settings = settings
        public = KeySet.import_key_set(keys.public_jwks)  # type: ignore[arg-type]
        self.validator = StrictValidator(settings.issuer, settings.audience, public)
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        self._db = db
        self.revoked: set[str] = set()
        self.disabled: set[str] = set()
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < self.settings.auth_cache_seconds:
            return
        async with self._lock:
            if not force and time.monotonic() - self._loaded_at < self.settings.auth_cache_seconds:
                return
            async with self._db.read_only() as session:
                revoked, disabled = await auth_service.revocation_state(session)
            self.revoked, self.disabled = revoked, disabled
            self._loaded_at = time.monotonic()

    def decode(self, token: str) -> Principal:
        """Validate signature and claims; raises ``InvalidTokenError``. Cached per token string."""
        principal = self._cache.get(token)
        if principal is None:
            if len(token) > 8192:
                raise InvalidTokenError()
            claims = self.validator.claims(token)
            scope = claims.get("scope") or ""
            if not isinstance(scope, str):
                raise InvalidTokenError()
            customer = claims.get("customer_id")
            principal = Principal(
                client_id=str(claims["client_id"]),
                subject=str(claims["sub"]),
                scopes=frozenset(scope.split()),
                jti=str(claims["jti"]),
                expires_at=int(claims["exp"]),
                customer_id=int(customer) if isinstance(customer, int) else None,
            )
            self._cache[token] = principal
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if principal.expires_at <= time.time():
            self._cache.pop(token, None)
            raise InvalidTokenError()
        return principal

    async def verify(self, token: str) -> Principal:
        principal = self.decode(token)
        period = self.settings.auth_cache_seconds
        age = time.monotonic() - self._loaded_at
        # One request re-reads the lists; the others go on with the ones loaded less than two
        # periods ago instead of queueing behind that read (under load they all stalled on the
        # lock once a second: the p99 tail in docs/benchmarks.md). Older lists, the first load
        # and a period of 0 always wait for the read.
        if age >= period and (not self._lock.locked() or age >= 2 * period):
            await self.refresh()
        if principal.jti in self.revoked or principal.client_id in self.disabled:
            raise InvalidTokenError()
        return principal

    def note_revoked(self, jti: str) -> None:
        self.revoked.add(jti)

    def note_disabled(self, client_id: str) -> None:
        self.disabled.add(client_id)
