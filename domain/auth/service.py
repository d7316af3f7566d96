"""OAuth clients: create, list, disable, verify; token revocation records."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from domain.auth.models import OAuthClient, RevokedToken
from domain.auth.scopes import CLIENT_SCOPES, parse_scopes
from domain.columns import utcnow
from domain.sql import insert_ignoring_conflicts, table

GRANT_TYPES = frozenset({"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"})


class ClientError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NewClient:
    client: OAuthClient
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(client: OAuthClient, secret: str) -> bool:
    return hmac.compare_digest(client.secret_hash, hash_secret(secret))


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    scopes: str | list[str],
    grant_types: list[str] | None = None,
    client_id: str | None = None,
) -> NewClient:
    """Create a client; the plain secret is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ClientError("INVALID_NAME", "name must be 1 to 200 characters")
    try:
        parsed = parse_scopes(scopes, allowed=CLIENT_SCOPES)
    except ValueError as exc:
        raise ClientError("INVALID_SCOPE", str(exc)) from exc
    if not parsed:
        raise ClientError("INVALID_SCOPE", "a client needs at least one scope")
    grants = sorted(set(grant_types or ["client_credentials"]))
    bad = [g for g in grants if g not in GRANT_TYPES]
    if bad:
        raise ClientError("INVALID_GRANT_TYPE", "unsupported grant type(s): " + ", ".join(bad))
    secret = secrets.token_urlsafe(32)
    client = OAuthClient(
        id=client_id or "pc_" + secrets.token_hex(12),
        name=name,
        secret_hash=hash_secret(secret),
        scopes=" ".join(parsed),
        grant_types=" ".join(grants),
    )
    session.add(client)
    await session.flush()
    return NewClient(client=client, secret=secret)


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    return await session.get(OAuthClient, client_id)


async def list_clients(session: AsyncSession) -> list[OAuthClient]:
    rows = await session.scalars(select(OAuthClient).order_by(col(OAuthClient.created_at)))
    return list(rows)


async def disable_client(session: AsyncSession, client_id: str) -> OAuthClient:
    client = await session.get(OAuthClient, client_id)
    if client is None:
        raise ClientError("NOT_FOUND", f"no client {client_id}")
    if client.disabled_at is None:
        client.disabled_at = utcnow()
        await session.flush()
    return client


async def revoke_token(
    session: AsyncSession, *, jti: str, client_id: str, expires_at: datetime
) -> None:
    """Record a revoked access token until it would have expired anyway (idempotent)."""
    values = {"jti": jti, "client_id": client_id, "expires_at": expires_at, "revoked_at": utcnow()}
    await insert_ignoring_conflicts(session, table(RevokedToken), [values], key=["jti"])


async def revocation_state(session: AsyncSession) -> tuple[set[str], set[str]]:
    """Unexpired revoked token ids and disabled client ids."""
    now = utcnow()
    jtis = await session.scalars(
        select(col(RevokedToken.jti)).where(col(RevokedToken.expires_at) > now)
    )
    disabled = await session.scalars(
        select(col(OAuthClient.id)).where(col(OAuthClient.disabled_at).is_not(None))
    )
    return set(jtis), set(disabled)


async def purge_expired_revocations(session: AsyncSession) -> int:
    result = await session.execute(
        delete(RevokedToken).where(col(RevokedToken.expires_at) <= utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


__all__ = [
    "ClientError",
    "NewClient",
    "create_client",
    "disable_client",
    "get_client",
    "list_clients",
    "revocation_state",
    "revoke_token",
    "secret_matches",
]
