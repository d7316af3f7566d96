"""OAuth clients and revoked access tokens."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from domain.columns import UTCDateTime, utcnow


class OAuthClient(SQLModel, table=True):
    __tablename__ = "oauth_client"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    # SHA-256 of a 256-bit random secret: secrets are never stored, and a slow password hash buys
    # nothing against a secret with that much entropy while costing every token request.
    secret_hash: str = Field(max_length=64)
    scopes: str = Field(description="space-separated allowed scopes")
    grant_types: str = Field(default="client_credentials")
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class RevokedToken(SQLModel, table=True):
    __tablename__ = "revoked_token"

    jti: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    revoked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
