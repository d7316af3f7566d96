"""Settings from the environment (prefix ``PRECIS_``; ``DATABASE_URL`` and ``REDIS_URL`` also work)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; raised at start-up with a message that says which."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRECIS_", env_file=".env", extra="ignore")

    env: Literal["dev", "prod"] = Field("dev", description="`dev` or `prod`.")
    var_dir: Path = Field(Path("var"), description="Where dev keys and the SQLite file live.")
    database_url: str = Field(
        "",
        validation_alias=AliasChoices("PRECIS_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; default sqlite+aiosqlite:///<var_dir>/precis.db.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("PRECIS_REDIS_URL", "REDIS_URL"),
        description="Redis for ARQ jobs; unset runs jobs in-process.",
    )
    queue_name: str = Field("precis:queue", description="ARQ queue name (and key prefix).")
    issuer: str = Field("http://127.0.0.1:8000", description="OAuth issuer URL (`iss`).")
    audience: str = Field("precis", description="Access-token audience (`aud`).")
    signing_keys: str | None = Field(
        None, description="JWKS JSON with private signing keys; required in prod."
    )
    encryption_keys: str | None = Field(
        None, description="Comma-separated Fernet keys, newest first; required in prod."
    )
    lookup_key: str | None = Field(
        None, description="Secret for keyed hashes of email and phone; required in prod."
    )
    access_token_ttl: int = Field(900, ge=60, le=86400, description="Access-token lifetime (s).")
    auth_cache_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="How often a process re-reads revocations and disabled clients.",
    )
    max_body_bytes: int = Field(1_000_000, description="Largest accepted request body.")
    max_depth: int = Field(10, description="Deepest selection set.")
    max_aliases: int = Field(30, description="Most aliases in one document.")
    max_tokens: int = Field(2_000, description="Most lexical tokens in one document.")
    max_cost: int = Field(50_000, description="Highest query cost (`first` multiplies).")
    statement_timeout_ms: int = Field(15_000, description="PostgreSQL statement timeout.")
    db_pool_size: int = Field(10, description="Connections per API process (PostgreSQL).")

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir}/precis.db"
        return self

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def require_secrets(self) -> None:
        """In prod every secret must come from the environment; in dev missing ones are generated."""
        if not self.is_prod:
            return
        missing = [
            f"PRECIS_{name.upper()}"
            for name in ("signing_keys", "encryption_keys", "lookup_key")
            if not getattr(self, name)
        ]
        if missing:
            raise ConfigurationError(
                "PRECIS_ENV=prod needs these settings from the environment: " + ", ".join(missing)
            )


@functools.cache
def get_settings() -> Settings:
    return Settings()
