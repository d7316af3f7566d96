"""Automatic persisted queries (Apollo APQ protocol): clients send the sha256 of a document instead of
the document; on a miss they resend it once with its hash and later calls are small.

Documents are kept in a bounded per-process LRU and, when Redis is configured, in Redis (shared by every
API process, expiring after a day of disuse).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

from graphql import GraphQLError
from redis.asyncio import Redis

HASH = re.compile(r"^[0-9a-f]{64}$")
TTL_SECONDS = 86_400
MAX_DOCUMENT_BYTES = 100_000


class PersistedQueryError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.error = GraphQLError(message, extensions={"code": code})


class PersistedQueries:
    def __init__(self, redis: Redis | None, prefix: str, *, size: int = 2_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self._local: OrderedDict[str, str] = OrderedDict()
        self._size = size

    async def resolve(self, query: str | None, persisted: Any) -> str:
        """The document to run; raises ``PersistedQueryError`` per the APQ protocol."""
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError(
                "unsupported persisted query version", "PERSISTED_QUERY_INVALID"
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not HASH.match(digest):
            raise PersistedQueryError(
                "sha256Hash must be 64 lowercase hex digits", "PERSISTED_QUERY_INVALID"
            )
        if query is not None:
            if len(query) > MAX_DOCUMENT_BYTES:
                raise PersistedQueryError(
                    "document too large to persist", "PERSISTED_QUERY_INVALID"
                )
            if hashlib.sha256(query.encode()).hexdigest() != digest:
                raise PersistedQueryError(
                    "provided sha does not match query", "PERSISTED_QUERY_INVALID"
                )
            await self._store(digest, query)
            return query
        found = await self._load(digest)
        if found is None:
            raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return found

    async def _store(self, digest: str, query: str) -> None:
        self._remember(digest, query)
        if self.redis is not None:
            await self.redis.set(f"{self.prefix}:apq:{digest}", query, ex=TTL_SECONDS)

    async def _load(self, digest: str) -> str | None:
        found = self._local.get(digest)
        if found is not None:
            self._local.move_to_end(digest)
            return found
        if self.redis is None:
            return None
        raw = await self.redis.getex(f"{self.prefix}:apq:{digest}", ex=TTL_SECONDS)
        if raw is None:
            return None
        query = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._remember(digest, query)
        return query

    def _remember(self, digest: str, query: str) -> None:
        self._local[digest] = query
        self._local.move_to_end(digest)
        if len(self._local) > self._size:
            self._local.popitem(last=False)
