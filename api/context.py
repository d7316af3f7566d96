"""Per-request context: the caller, a lazily opened session, DataLoaders and jobs to send after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from api.auth.principal import Principal
from domain.audit import service as audit
from domain.audit.service import Actor
from jobs.queue import PendingJobs

if TYPE_CHECKING:
    from api.app import Services


@dataclass(slots=True)
class Context:
    request: Request
    response: Response | None
    services: Services
    principal: Principal | None
    auth_error: str | None = None
    jobs: PendingJobs = field(default_factory=PendingJobs)
    _session: AsyncSession | None = None
    _loaders: dict[str, Any] = field(default_factory=dict)
    _request_id: str | None = None
    # PII reads seen while resolving: (resource type, id) -> field names; written at the end.
    _pii_reads: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @property
    def request_id(self) -> str:
        """A random id for logs, made on first use (a uuid4 costs a system call)."""
        if self._request_id is None:
            self._request_id = uuid.uuid4().hex
        return self._request_id

    @property
    def session(self) -> AsyncSession:
        """The request's unit of work; opened on first use, committed or rolled back once."""
        if self._session is None:
            self._session = self.services.db.sessions()
        return self._session

    def loader(self, name: str, factory: Any) -> Any:
        found = self._loaders.get(name)
        if found is None:
            found = self._loaders[name] = factory(self)
        return found

    @property
    def actor(self) -> Actor:
        """The caller as the domain sees it (audit entries, row-level rules)."""
        p = self.principal
        if p is None:
            return Actor(client_id="anonymous", subject="anonymous", request_id=self.request_id)
        return Actor(
            client_id=p.client_id,
            subject=p.subject,
            request_id=self.request_id,
            customer_id=p.customer_id,
        )

    def audit_read(self, resource_type: str, resource_id: object, *fields: str) -> None:
        """Note a read of unmasked PII; entries are written when the request ends, whether or not
        the request changed anything."""
        self._pii_reads.setdefault((resource_type, str(resource_id)), set()).update(fields)

    def _pii_entries(self) -> list[dict[str, Any]]:
        reads, self._pii_reads = self._pii_reads, {}
        actor = self.actor
        return [
            audit.entry(actor, "pii.read", kind, rid, fields=names)
            for (kind, rid), names in reads.items()
        ]

    def has(self, *scopes: str) -> bool:
        return self.principal is not None and self.principal.has(*scopes)

    async def finish(self, *, commit: bool) -> None:
        reads = self._pii_entries() if self._pii_reads else []
        session, self._session = self._session, None
        if session is None:
            if reads:
                async with self.services.db.unit_of_work() as own:
                    await audit.record_many(own, reads)
            if commit:
                await self.jobs.send(self.services.queue)
            return
        try:
            if commit:
                await audit.record_many(session, reads)
                await session.commit()
        finally:
            await session.close()  # rolls back whatever was not committed
        if reads and not commit:
            # A query (or a failed mutation): the data was still read, so the reads are recorded.
            async with self.services.db.unit_of_work() as own:
                await audit.record_many(own, reads)
        if commit:
            await self.jobs.send(self.services.queue)
        else:
            self.jobs.clear()
