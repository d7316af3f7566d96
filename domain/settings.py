"""Settings from the environment (prefix ``PRECIS_``; ``DATABASE_URL`` and ``REDIS_URL`` also work)."""

from __future__ import annotations

import functools
from decimal import Decimal
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
    shopper_token_ttl: int = Field(
        900,
        ge=60,
        le=86400,
        description="Shopper-token lifetime (s), token exchange; capped at access_token_ttl.",
    )
    auth_cache_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="How often a process re-reads revocations and disabled clients (while one "
        "request re-reads them, others use the lists if under twice this old).",
    )
    max_body_bytes: int = Field(1_000_000, description="Largest accepted request body.")
    max_depth: int = Field(10, description="Deepest selection set.")
    max_aliases: int = Field(30, description="Most aliases in one document.")
    max_tokens: int = Field(2_000, description="Most lexical tokens in one document.")
    max_cost: int = Field(50_000, description="Highest query cost (`first` multiplies).")
    scheduler: Literal["auto", "off"] = Field(
        "auto",
        description="`auto`: recurring jobs run in the API process when no Redis is configured "
        "(with Redis, `precis worker` runs them); `off`: never in the API process.",
    )
    statement_timeout_ms: int = Field(15_000, description="PostgreSQL statement timeout.")
    gc_threshold: int = Field(
        20_000,
        ge=0,
        description="API process: allocations between two young-generation garbage collections "
        "(0: Python's default, 700).",
    )
    db_pool_size: int = Field(
        20,
        ge=1,
        description="Connections kept open per API process (PostgreSQL, SQLite file). On "
        "PostgreSQL the recommendations' shopper reads keep up to as many again of their own, "
        "opened as requests need them.",
    )
    db_max_overflow: int = Field(
        10,
        ge=0,
        description="Extra connections a process may open beyond db_pool_size at peaks (closed "
        "again when returned; past both, a request waits for a free connection).",
    )
    profile_rfm_window_days: int = Field(
        365, ge=1, le=3650, description="RFM scores count the orders of this many past days."
    )
    profile_at_risk_factor: float = Field(
        2.0, gt=0, description="At risk: no order for this many typical inter-purchase times."
    )
    profile_churned_factor: float = Field(
        4.0, gt=0, description="Churned: no order for this many typical inter-purchase times."
    )
    profile_loyal_min_orders: int = Field(
        3, ge=2, description="Loyal: at least this many orders and not at risk."
    )
    profile_default_interpurchase_days: float = Field(
        30.0,
        gt=0,
        description="Typical days between orders when too few repeat buyers exist to measure it.",
    )
    profile_clv_model: Literal["bgnbd", "off"] = Field(
        "bgnbd", description="Predictive CLV: BG/NBD + Gamma-Gamma (pymc-marketing) or off."
    )
    profile_clv_horizon_days: int = Field(
        365, ge=1, le=3650, description="Predictive CLV looks this many days ahead."
    )
    profile_chunk_size: int = Field(
        5000, ge=100, le=100_000, description="Customers per recompute chunk."
    )
    profile_touch_flush_ms: int = Field(
        250,
        ge=0,
        le=60_000,
        description="The API writes the profile counters of ingested events (first/last seen, "
        "event count) behind, coalesced per customer, every this many ms; 0: in each request.",
    )
    segment_refresh_minutes: int = Field(
        5,
        ge=1,
        le=60,
        description="Refresh dynamic segments every this many minutes (a divisor of 60 keeps "
        "the runs evenly spaced: they run at the minutes 0, n, 2n, ... of each hour).",
    )
    event_retention_days: int = Field(
        395, ge=1, description="Raw events older than this are rolled up into daily aggregates."
    )
    event_max_age_days: int = Field(
        395, ge=1, description="Events that occurred longer ago than this are rejected."
    )
    event_max_future_seconds: int = Field(
        600, ge=0, description="Events stamped further ahead than this (clock skew) are rejected."
    )
    event_properties_max_bytes: int = Field(
        4096, ge=64, description="Largest `properties` object of one event (compact JSON bytes)."
    )
    analytics_consent_default: bool = Field(
        True,
        description="Whether a shopper with no `analytics` consent record counts as consenting.",
    )
    privacy_due_days: int = Field(
        30, ge=1, le=90, description="Days to answer a privacy request (GDPR: one month)."
    )
    export_ttl_days: int = Field(7, ge=1, le=90, description="Days a data export can be fetched.")
    order_total_tolerance: Decimal = Field(
        Decimal("0.00"),
        ge=0,
        le=1,
        description="How far an order's subtotal and total may be from the sums of its parts.",
    )
    recommend_algorithms: str = Field(
        "",
        description="Components the refresh_model job trains and blends, as "
        "`precis recommend evaluate --algorithms` takes them; empty: the default hybrid.",
    )
    recommend_promote_tolerance: float = Field(
        0.002,
        ge=0,
        le=1,
        description="promoteModel refuses a candidate whose NDCG@10 is lower than the active "
        "version's by more than this (absolute), unless forced.",
    )
    recommend_min_interactions: int = Field(
        20, ge=1, description="Fewer usable interactions than this: training fails (TOO_SMALL)."
    )
    graphql_fast_path: bool = Field(
        True,
        description="API process: answer POST /graphql documents that ask only for "
        "`recommendations` with the compiled fast path (api/fastpath.py) instead of Strawberry and "
        "graphql-core (same response); false: every request takes the generic path.",
    )
    recommend_reload_seconds: float = Field(
        10,
        ge=0,
        le=3600,
        description="API process: check which model version is active (one cheap query) at most "
        "every this many seconds and load a newly promoted one without restart; 0: every request.",
    )
    recommend_catalog_max_age_ms: int = Field(
        1000,
        ge=0,
        le=600_000,
        description="API process: re-read products changed since the last read (by updated_at) "
        "at most every this many ms before answering recommendations; 0: every request.",
    )
    recommend_session_minutes: int = Field(
        30,
        ge=1,
        le=1440,
        description="Session signals: the shopper's product events of the last this many minutes "
        "(at most 20) shape the next recommendations without retraining.",
    )
    recommend_impression_flush_ms: int = Field(
        250,
        ge=0,
        le=60_000,
        description="API process: recommendation impressions are written behind in batches every "
        "this many ms (a crash loses at most one interval); 0: written before the answer.",
    )

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
