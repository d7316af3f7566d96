"""Per-request context: the caller, a lazily opened session, DataLoaders and jobs to send after commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from api.auth.principal import Principal
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

    def has(self, *scopes: str) -> bool:
        return self.principal is not None and self.principal.has(*scopes)

    async def finish(self, *, commit: bool) -> None:
        session, self._session = self._session, None
        if session is None:
            if commit:
                await self.jobs.send(self.services.queue)
            return
        try:
            if commit:
                await session.commit()
        finally:
            await session.close()  # rolls back whatever was not committed
        if commit:
            await self.jobs.send(self.services.queue)
        else:
            self.jobs.clear()
