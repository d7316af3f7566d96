"""The lifecycle every write-behind buffer of a long-lived process shares: a background task that
calls ``flush`` every ``interval`` seconds while started, and one last ``flush`` on ``stop``.
Subclasses hold what is pending and write it in ``flush`` (under ``self._lock``, so flushes never
overlap and the final one sees everything)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

from domain.db import Database


class WriteBehind(ABC):
    def __init__(self, db: Database, interval_ms: int) -> None:
        self.db = db
        self.interval = interval_ms / 1000
        self.failures = 0
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def flush(self) -> int:
        """Write what is pending; returns how much was written."""

    def start(self) -> None:
        """Flush periodically from now on (nothing to start with an interval of 0)."""
        if self._task is None and self.interval > 0:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            if not self._stopping.is_set():
                await self.flush()

    async def stop(self) -> None:
        """Stop the background task, then write what is still pending."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        await self.flush()
